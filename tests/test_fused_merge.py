"""The fused path and the merge planner pass the core's exact identities (pico, non-zero adapters).

The reference for "an explicit merge" is built from the endpoint factors with
:func:`clm.core.lora.merged_weight` (W0 + Σ c·s·B·A) written into a fresh copy of the base; the
endpoint identities compare with PEFT running one adapter alone.
"""

from __future__ import annotations

import pytest
import torch

import clm
from clm.core.merge import BALANCE, merged, plan, plan_for

ATTRS = ("sentiment", "formality")
ATOL = 2e-5  # fp32; fused, merged and the reference sum in different orders


def _base(pico_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(pico_dir, dtype=torch.float32).eval()


def _explicit_merge(pico_dir, endpoints_dir, w: clm.Weights):
    """A fresh base with W0 + Σ_k c_k s_k B_k A_k written into every adapted weight."""
    ends = clm.Endpoints.load(endpoints_dir)
    model = _base(pico_dir)
    coef = w.coefficients(ends.attributes)
    terms: dict[str, list] = {}
    for attr in ends.attributes:
        for i, pole in enumerate(("low", "high")):
            for name, f in ends.factors(attr, pole).items():
                terms.setdefault(name, []).append((coef[attr][i], f.A, f.B, f.scale))
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, ts in terms.items():
            W = modules[name].weight
            W.copy_(clm.core.lora.merged_weight(W, ts))
    return model


@pytest.fixture(scope="module")
def batch():
    tok = clm.core.models.pico_tokenizer()
    return tok(["The cat sat on", "Once upon a ti", "A storm was on"], return_tensors="pt")["input_ids"]


def _weights_snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ---------------------------------------------------------------------- the planner's rule
def test_plan_rule_by_hand():
    shapes = [(64, 64, 8)]  # one square module, 8 live rank components
    # fused: per step max(2 n R (i+o) / β, R (i+o)); merged: max(2 i o R / β, 4 i o)
    p = plan(shapes, settings=1, rows=1, prompt_tokens=4, new_tokens=10, balance=1.0)
    assert p.fused_cost == 2 * 4 * 8 * 128 + 10 * 2 * 1 * 8 * 128
    assert p.merge_cost == 2 * 64 * 64 * 8
    assert p.mode == "fused"  # 28 672 < 65 536: too short to pay for the merge
    long = plan(shapes, settings=1, rows=1, prompt_tokens=4, new_tokens=100, balance=1.0)
    assert long.mode == "merged" and long.merge_cost < long.fused_cost
    # bandwidth-bound machine (large β): the per-step adapter reads dominate, a merge pays sooner
    assert plan(shapes, settings=1, rows=1, prompt_tokens=4, new_tokens=20, balance=1.0).mode == "fused"
    assert plan(shapes, settings=1, rows=1, prompt_tokens=4, new_tokens=20, balance=1000.0).mode == "merged"


@pytest.mark.parametrize(
    "kw, why",
    [
        (dict(settings=8), "8 distinct settings"),
        (dict(quantized=True), "4-bit base"),
    ],
)
def test_plan_never_merges_per_row_or_4bit(kw, why):
    args = dict(settings=1, rows=8, prompt_tokens=64, new_tokens=1000, balance=BALANCE["cpu"]) | kw
    p = plan([(576, 576, 320)] * 4, **args)
    assert p.mode == "fused" and why in p.reason


def test_plan_for_counts_only_live_endpoints(im):
    one = plan_for(im, "sentiment=0.5", rows=1, prompt_tokens=4, new_tokens=8)
    both = plan_for(im, "sentiment=0.5,formality=0.5", rows=1, prompt_tokens=4, new_tokens=8)
    assert 0 < one.fused_cost < both.fused_cost
    assert plan_for(im, None, rows=1, prompt_tokens=4, new_tokens=8).reason.startswith("every coefficient is 0")
    assert plan_for(im, ["sentiment=1", "formality=1"], rows=2, prompt_tokens=4, new_tokens=8).mode == "fused"


# ---------------------------------------------------------------------- identities
@pytest.mark.parametrize("path", ["fused", "merged"])
@pytest.mark.parametrize("attr", ATTRS)
@pytest.mark.parametrize("alpha, pole", [(1.0, "high"), (0.0, "low")])
def test_endpoint_equals_peft_adapter_alone(im, pico_dir, adapters, batch, path, attr, alpha, pole):
    from peft import PeftModel

    w = clm.Weights({attr: alpha}, lam={attr: 1.0})
    if path == "fused":
        got = im.logits(batch, weights=w)
    else:
        with im.merged(w) as state:
            assert state.mode == "merged" and state.modules > 0
            got = im.logits(batch)
    with torch.no_grad():
        ref = PeftModel.from_pretrained(_base(pico_dir), adapters[f"{attr}/{pole}"]).eval()(batch).logits
        plain = _base(pico_dir)(batch).logits
    assert (ref - plain).abs().max() > 1e-2  # the adapter really moves the logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


SETTINGS = [
    clm.Weights({"sentiment": 0.7}),  # formality's endpoints are skipped (coefficient 0)
    clm.Weights({"formality": 0.25}),
    clm.Weights({"sentiment": 1.6, "formality": -0.4}, lam={"sentiment": 0.3, "formality": 0.7}, extrapolate=True),
    clm.Weights({"sentiment": 0.1, "formality": 0.9}, lam={"sentiment": 1.4, "formality": 0.6}, simplex=False),
]


def test_random_settings_equal_explicit_merge(im, pico_dir, endpoints_dir, batch):
    g = torch.Generator().manual_seed(0)
    rand = [
        clm.Weights({"sentiment": a, "formality": b}, lam={"sentiment": lam, "formality": 1 - lam}, extrapolate=True)
        for a, b, lam in (
            torch.rand(3, 3, generator=g) * torch.tensor([3.0, 3.0, 1.0]) - torch.tensor([1.0, 1.0, 0.0])
        ).tolist()
    ]
    for w in SETTINGS + rand:
        with torch.no_grad():
            ref = _explicit_merge(pico_dir, endpoints_dir, w)(batch).logits
        torch.testing.assert_close(im.logits(batch, weights=w), ref, atol=ATOL, rtol=0)
        with im.merged(w):
            torch.testing.assert_close(im.logits(batch), ref, atol=ATOL, rtol=0)


def test_per_row_equals_rows_alone_and_inside_a_merge(im, batch):
    ws = [SETTINGS[2], SETTINGS[1], clm.Weights.base()]
    together = im.logits(batch, weights=ws)
    for i, w in enumerate(ws):
        torch.testing.assert_close(together[i : i + 1], im.logits(batch[i : i + 1], weights=w), atol=1e-6, rtol=0)
    # with another setting merged in, per-row settings are still exact (the fused path adds c - c_merged)
    with im.merged(SETTINGS[0]):
        torch.testing.assert_close(im.logits(batch, weights=ws), together, atol=ATOL, rtol=0)


def test_merge_restores_base_weights_bit_exactly(im, batch):
    w = SETTINGS[2]
    before = _weights_snapshot(im.model)
    first = im.logits(batch, weights=w)
    with im.merged(w):
        changed = [n for n, p in im.model.named_parameters() if not torch.equal(p, before[n])]
        assert len(changed) == 8  # q/k/v/o of two layers
        assert im.weights == w
    for n, p in im.model.named_parameters():
        assert torch.equal(p, before[n]), n
    assert torch.equal(im.logits(batch, weights=w), first)
    assert im.weights == clm.Weights.base()  # the setting before the merge is back


def test_weights_changed_and_changed_back_are_bit_identical(im, batch):
    w = SETTINGS[3]
    first = im.logits(batch, weights=w)
    for other in (SETTINGS[0], [SETTINGS[1], w, SETTINGS[2]], None, SETTINGS[1]):
        im.set_weights(other)
        im.logits(batch)
        with im.merged(SETTINGS[0]):
            im.logits(batch)
    assert torch.equal(im.logits(batch, weights=w), first)
    with im.merged(w):
        merged_once = im.logits(batch)
    with im.merged(SETTINGS[1]):
        pass
    with im.merged(w):
        assert torch.equal(im.logits(batch), merged_once)


def test_merged_generation_matches_fused(im):
    from clm.core.merge import generate

    prompts = ["The cat", "Once upon a time"]
    w = SETTINGS[2]
    fused = im.generate(prompts, weights=w, max_new_tokens=10, do_sample=False, stop_at_eos=False)
    for mode in ("merged", "auto"):
        outs = generate(im, prompts, weights=w, mode=mode, max_new_tokens=10, do_sample=False, stop_at_eos=False)
        assert [g.token_ids for g in outs] == [g.token_ids for g in fused]
    assert im.weights == clm.Weights.base()


def test_merge_refuses_per_row_settings_and_nesting(im):
    with pytest.raises(clm.WeightsError, match="got 2 distinct settings"):
        with im.merged(["sentiment=1", "formality=1"]):
            pass
    im.set_weights(["sentiment=1", "formality=1"])
    with pytest.raises(clm.WeightsError, match="the model has 2 per-row settings"):
        with merged(im):
            pass
    with im.merged("sentiment=1"):
        with pytest.raises(clm.WeightsError, match="nested merges"):
            with im.merged("formality=1"):
                pass
    with pytest.raises(clm.WeightsError, match="mode must be"):
        clm.core.merge.generate(im, "x", mode="fast")


def test_four_bit_base_falls_back_to_fused(tmp_path):
    """bitsandbytes NF4 on the CPU needs d_in >= 64: a hidden-64 pico."""
    from conftest import make_adapter

    from clm.core.models import build_pico

    base_dir = tmp_path / "pico64"
    build_pico(base_dir, hidden_size=64, intermediate_size=128)
    ends = clm.Endpoints.create(tmp_path / "ends", base=str(base_dir))
    ends.add(
        "sentiment",
        low=make_adapter(base_dir, tmp_path / "lo", seed=5, r=4),
        high=make_adapter(base_dir, tmp_path / "hi", seed=6, r=4),
    )
    model, tok = clm.load_base(str(base_dir), quantization="nf4")
    im = clm.InterpolatedModel(model, tok, ends)
    ids = tok(["The cat sat", "A dog ran!!"], return_tensors="pt")["input_ids"]
    im.logits(ids)  # bitsandbytes repacks its CPU state on the first forward
    before = _weights_snapshot(
        model
    )  # the packed 4-bit data (bitsandbytes' CPU path rewrites some absmax states on its own)
    w = clm.Weights({"sentiment": 0.8})
    assert plan_for(im, w, rows=2, prompt_tokens=4, new_tokens=10_000).mode == "fused"
    fused = im.logits(ids, weights=w)
    with im.merged(w) as state:
        assert state.mode == "fused" and "4-bit" in state.reason
        inside = im.logits(ids)
    assert torch.equal(inside, fused)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_cast_and_moved_models_drop_cached_factors(im, batch):
    """The fused path caches A and B in the activations' dtype; after casting the model it is still exact."""
    w = SETTINGS[2]
    ref = im.logits(batch, weights=w)
    im.model.to(torch.float64)
    got = im.logits(batch, weights=w)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.float(), ref, atol=ATOL, rtol=0)
    mod = next(m for m in im.model.modules() if isinstance(m, clm.core.engine.InterpolatedLinear))
    assert mod._active[1][1].dtype == torch.float64 and mod.A.dtype == torch.float64
