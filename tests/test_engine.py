"""The engine's exact identities on a pico model with non-zero adapters of mixed ranks.

The reference for every comparison is built independently of clm: PEFT merges each adapter
into a fresh copy of the base (``merge_and_unload``), ΔW_k is read off as W_k − W0, and the
reference model gets W0 + Σ_k c_k ΔW_k written into its weights.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clm

ATTRS = ("sentiment", "formality")
ATOL = 2e-5  # fp32; the fused path and an explicit merge sum in different orders


def _base(pico_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(pico_dir, dtype=torch.float32).eval()


def _peft(pico_dir, adapter_dir):
    from peft import PeftModel

    return PeftModel.from_pretrained(_base(pico_dir), adapter_dir).eval()


@pytest.fixture(scope="module")
def deltas(pico_dir, adapters):
    """(attribute, pole) -> {param name: ΔW} computed by PEFT's own merge."""
    w0 = _base(pico_dir).state_dict()
    out = {}
    for key, path in adapters.items():
        attr, pole = key.split("/")
        merged = _peft(pico_dir, path).merge_and_unload().state_dict()
        out[(attr, pole)] = {n: merged[n] - w0[n] for n in w0 if not torch.equal(merged[n], w0[n])}
    return out


def _reference(pico_dir, deltas, weights: clm.Weights):
    model = _base(pico_dir)
    coef = weights.coefficients(list(ATTRS))
    sd = model.state_dict()
    with torch.no_grad():
        for attr in ATTRS:
            for i, pole in enumerate(("low", "high")):
                for name, d in deltas[(attr, pole)].items():
                    sd[name] += coef[attr][i] * d
    model.load_state_dict(sd)
    return model


@pytest.fixture(scope="module")
def batch(pico_dir):
    tok = clm.core.models.pico_tokenizer()
    texts = ["The cat sat on", "Once upon a ti", "A storm was on"]  # equal lengths: no padding
    return tok(texts, return_tensors="pt")["input_ids"]


@pytest.mark.parametrize("attr", ATTRS)
@pytest.mark.parametrize("alpha, pole", [(1.0, "high"), (0.0, "low")])
def test_endpoint_equals_peft_adapter_alone(im, pico_dir, adapters, batch, attr, alpha, pole):
    got = im.logits(batch, weights=clm.Weights({attr: alpha}))
    with torch.no_grad():
        ref = _peft(pico_dir, adapters[f"{attr}/{pole}"])(batch).logits
        base = _base(pico_dir)(batch).logits
    assert (ref - base).abs().max() > 1e-2  # the adapter really moves the logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=st.floats(-1, 2),
    b=st.floats(-1, 2),
    lam=st.floats(0, 1),
)
def test_random_settings_equal_explicit_merge(im, pico_dir, deltas, batch, a, b, lam):
    w = clm.Weights({"sentiment": a, "formality": b}, lam={"sentiment": lam, "formality": 1 - lam}, extrapolate=True)
    got = im.logits(batch, weights=w)
    with torch.no_grad():
        ref = _reference(pico_dir, deltas, w)(batch).logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


def test_free_lambda_and_single_attribute_merge(im, pico_dir, deltas, batch):
    for w in (
        clm.Weights({"sentiment": 0.3}),
        clm.Weights({"sentiment": 1.0, "formality": 0.5}, lam={"sentiment": 1.5, "formality": 0.7}, simplex=False),
    ):
        with torch.no_grad():
            ref = _reference(pico_dir, deltas, w)(batch).logits
        torch.testing.assert_close(im.logits(batch, weights=w), ref, atol=ATOL, rtol=0)


def test_per_row_weights_equal_rows_alone(im, batch):
    ws = [clm.Weights({"sentiment": 0.9}), clm.Weights({"formality": 0.1, "sentiment": 0.5}), clm.Weights.base()]
    together = im.logits(batch, weights=ws)
    for i, w in enumerate(ws):
        alone = im.logits(batch[i : i + 1], weights=w)
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-6, rtol=0)
    # the base row is exactly the base model
    im.reset()
    torch.testing.assert_close(together[2:3], im.logits(batch[2:3]), atol=0, rtol=0)


def test_per_row_greedy_generation_equals_rows_alone(im):
    prompts = ["The cat", "Once upon a time", "Hello"]  # different lengths: left padding
    ws = [clm.Weights({"sentiment": 1.0}), clm.Weights({"formality": 0.0}), clm.Weights({"sentiment": 0.5, "formality": 0.5})]
    together = im.generate(prompts, weights=ws, max_new_tokens=12, do_sample=False)
    for p, w, g in zip(prompts, ws, together):
        alone = im.generate([p], weights=w, max_new_tokens=12, do_sample=False)[0]
        assert g.token_ids == alone.token_ids
        assert g.weights == w and g.prompt == p
    assert len({tuple(g.token_ids) for g in together}) > 1


def test_generation_matches_independently_merged_model(im, pico_dir, deltas):
    from transformers import GenerationConfig

    prompts = ["The cat", "Once upon a time", "Hello"]
    ws = [clm.Weights({"sentiment": 0.2, "formality": 0.7}), clm.Weights({"formality": 1.0}), clm.Weights({"sentiment": 1.5}, extrapolate=True)]
    outs = im.generate(prompts, weights=ws, max_new_tokens=10, do_sample=False, stop_at_eos=False)
    tok = im.tokenizer
    for p, w, g in zip(prompts, ws, outs):
        ref = _reference(pico_dir, deltas, w)
        ids = tok([p], return_tensors="pt")["input_ids"]
        cfg = GenerationConfig(max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None)
        with torch.no_grad():
            out = ref.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg)
        assert g.token_ids == out[0, ids.shape[1] :].tolist()


def test_change_and_change_back_is_bit_identical(im, batch):
    w = clm.Weights({"sentiment": 0.7, "formality": 0.4})
    first = im.logits(batch, weights=w)
    for other in ("sentiment=1", "formality=0.1", clm.Weights({"sentiment": -1.0}, extrapolate=True), None):
        im.set_weights(other)
        im.logits(batch)
    assert torch.equal(im.logits(batch, weights=w), first)
    with im.using(w):
        assert torch.equal(im.logits(batch), first)
    assert im.weights == clm.Weights.base()


def test_setting_change_touches_no_base_weight(im, batch):
    before = {n: p.clone() for n, p in im.model.named_parameters()}
    im.set_weights("sentiment=1,formality=0")
    im.logits(batch)
    for n, p in im.model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_unwrap_restores_the_model(pico, endpoints_dir, batch):
    model, tok = pico
    with torch.no_grad():
        ref = model(batch).logits
    names = [n for n, _ in model.named_modules()]
    im = clm.InterpolatedModel(model, tok, clm.Endpoints.load(endpoints_dir), weights="sentiment=1")
    assert not torch.equal(im.logits(batch), ref)
    restored = im.unwrap()
    assert [n for n, _ in restored.named_modules()] == names
    with torch.no_grad():
        assert torch.equal(restored(batch).logits, ref)


def test_mixed_ranks_and_targets(im):
    ranks = {}
    for name, mod in im.model.named_modules():
        if isinstance(mod, clm.core.engine.InterpolatedLinear):
            ranks[name.rsplit(".", 1)[-1]] = mod.A.shape[0]
    # q and v carry all four adapters (4 + 2 + 3 + 4); k and o skip formality/low (r=3)
    assert ranks == {"q_proj": 13, "k_proj": 10, "v_proj": 13, "o_proj": 10}


def test_sampling_is_seeded_and_samples_are_prompt_major(im):
    a = im.generate(["The cat", "A dog"], weights="sentiment=0.5", max_new_tokens=6, num_samples=3, seed=7)
    b = im.generate(["The cat", "A dog"], weights="sentiment=0.5", max_new_tokens=6, num_samples=3, seed=7)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [(g.prompt_index, g.sample_index) for g in a] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert all(g.text == im.tokenizer.decode(g.token_ids, skip_special_tokens=True) for g in a)


def test_bad_runtime_input(im, batch):
    with pytest.raises(clm.WeightsError, match="unknown attribute 'humor'"):
        im.set_weights({"humor": 0.5})
    with pytest.raises(clm.WeightsError, match="got 1 weights for 2 rows"):
        im.generate(["a", "b"], weights=["sentiment=1"])
    with pytest.raises(clm.WeightsError, match="max_new_tokens must be an integer >= 1, got 0"):
        im.generate(["a"], max_new_tokens=0)
    assert im.weights == clm.Weights.base()  # nothing changed


def test_per_row_weights_need_one_prompt_per_row(im):
    """generate(weights=None) with per-row weights held: one prompt per row, else an error naming both counts."""
    ws = [clm.Weights({"sentiment": 1.0}), clm.Weights({"formality": 0.0}), clm.Weights.base()]
    prompts = ["The cat", "Once upon a time", "Hello"]
    im.set_weights(ws)
    try:
        with pytest.raises(clm.WeightsError, match="holds 3 per-row weights but generate got 2 prompts"):
            im.generate(prompts[:2], max_new_tokens=4, do_sample=False)
        assert im.weights == ws  # nothing changed
        held = im.generate(prompts, max_new_tokens=6, do_sample=False)
        assert [g.weights for g in held] == ws
        assert [g.token_ids for g in held] == [g.token_ids for g in im.generate(prompts, weights=ws, max_new_tokens=6, do_sample=False)]
    finally:
        im.reset()


def test_four_bit_base_end_to_end(tmp_path, batch):
    """NF4 through bitsandbytes on the CPU (its blocks need d_in >= 64: a hidden-64 pico)."""
    from conftest import make_adapter
    from peft import PeftModel

    from clm.core.models import build_pico

    base_dir = tmp_path / "pico64"
    build_pico(base_dir, hidden_size=64, intermediate_size=128)
    low = make_adapter(base_dir, tmp_path / "low", seed=11, r=4)
    high = make_adapter(base_dir, tmp_path / "high", seed=12, r=8, targets=("q_proj", "v_proj"))
    ends = clm.Endpoints.create(tmp_path / "ends", base=str(base_dir))
    ends.add("sentiment", low=low, high=high)
    model, tok = clm.load_base(str(base_dir), quantization="nf4")
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    im = clm.InterpolatedModel(model, tok, ends)
    outs = im.generate(["The cat", "Hello"], weights=["sentiment=1", "sentiment=0.3"], max_new_tokens=5, do_sample=False)
    assert len(outs) == 2 and all(len(g.token_ids) <= 5 for g in outs)
    # α = 1 on the 4-bit base equals PEFT's high adapter on the same 4-bit base. bitsandbytes'
    # CPU kernel repacks a layer's quantisation state on its first forward, which changes later
    # numerics slightly (~1e-2), so both models get the same first forward (the base) first.
    q_base, _ = clm.load_base(str(base_dir), quantization="nf4")
    peft_model = PeftModel.from_pretrained(q_base, high).eval()
    fresh, _ = clm.load_base(str(base_dir), quantization="nf4")
    im = clm.InterpolatedModel(fresh, tok, ends)
    with torch.no_grad():
        with peft_model.disable_adapter():
            plain = peft_model(batch).logits
        assert torch.equal(im.logits(batch), plain)
        ref = peft_model(batch).logits
    assert (ref - plain).abs().max() > 1e-2
    torch.testing.assert_close(im.logits(batch, weights="sentiment=1"), ref, atol=ATOL, rtol=0)


class FakeController:
    """What generate(target=...) needs of a controller: check(im) and weights_for(...).weights."""

    def __init__(self, solved: str, refuse: str | None = None):
        self.solved, self.refuse, self.calls = clm.Weights.parse(solved), refuse, []

    def check(self, im) -> None:
        if self.refuse:
            raise clm.EndpointsError(self.refuse)

    def weights_for(self, target, max_ppl_ratio=None, clip=False):
        from types import SimpleNamespace

        self.calls.append((target, max_ppl_ratio, clip))
        return SimpleNamespace(weights=self.solved)


def test_target_generates_at_the_controllers_setting(im):
    ctl = FakeController("sentiment=0.8,formality=0.3")
    kw = {"max_new_tokens": 8, "do_sample": False}
    outs = im.generate(["The cat", "Hello"], target={"sentiment": 0.7}, max_ppl_ratio=1.3, controller=ctl, **kw)
    assert ctl.calls == [({"sentiment": 0.7}, 1.3, False)]
    assert all(g.weights == ctl.solved for g in outs)  # the records carry the solved setting
    assert [g.token_ids for g in outs] == [g.token_ids for g in im.generate(["The cat", "Hello"], weights=ctl.solved, **kw)]
    assert [g.token_ids for g in outs] != [g.token_ids for g in im.generate(["The cat", "Hello"], **kw)]


def test_target_uses_the_registered_factory(im, monkeypatch):
    from clm.core import targets

    ctl = FakeController("sentiment=0.2")
    monkeypatch.setattr(targets, "CONTROLLER_FACTORIES", [])
    with pytest.raises(clm.ConfigError, match="pass controller=") as err:
        im.generate("The cat", target={"sentiment": 0.3}, max_new_tokens=2)
    assert "\n" not in str(err.value)
    targets.register_controller_factory(lambda model: ctl if model is im else None)
    outs = im.generate("The cat", target={"sentiment": 0.3}, clip=True, max_new_tokens=4, do_sample=False)
    assert ctl.calls == [({"sentiment": 0.3}, None, True)] and outs[0].weights == ctl.solved


def test_the_facade_registers_the_shipped_controller(im):
    """After ``import clm`` a target needs no controller=: the shipped one of the endpoints' base
    (pico has no shipped tables, so the lookup itself is refused in one line)."""
    from clm.core.targets import CONTROLLER_FACTORIES

    assert CONTROLLER_FACTORIES and CONTROLLER_FACTORIES[0].__module__ == "clm"
    with pytest.raises(clm.ClmError, match="no shipped sweep tables") as err:
        im.generate("The cat", target={"sentiment": 0.3}, max_new_tokens=2)
    assert "\n" not in str(err.value)


def test_bad_target_input(im):
    with pytest.raises(clm.EndpointsError, match="other endpoints"):
        im.generate("a", target={"sentiment": 0.5}, controller=FakeController("sentiment=1", refuse="other endpoints"))
    with pytest.raises(clm.WeightsError, match="weights= or target=, not both"):
        im.generate("a", weights="sentiment=1", target={"sentiment": 0.5}, controller=FakeController("sentiment=1"))
    with pytest.raises(clm.WeightsError, match="go with target="):
        im.generate("a", weights="sentiment=1", max_ppl_ratio=1.2)
    assert im.weights == clm.Weights.base()
