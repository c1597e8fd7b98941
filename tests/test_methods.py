"""clm.methods on pico with non-zero adapters: the alternatives' exact identities.

Steering and logit arithmetic at strength 0 are the base model bit for bit; the product of
experts at α = 1 is the high endpoint; per-row strengths in one batch equal each row alone;
an installed and removed hook leaves the model as it was; the shared decoding loop reproduces
the engine's generate token for token; prompting's levels are distinct prompts; a mixture has
its fraction; and the ΔW distances have their fixed points.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import clm
from clm.core.endpoints import LoraFactors
from clm.errors import ConfigError
from clm.methods.base import Method
from clm.methods.interpolation import InterpolationMethod
from clm.methods.logit_mix import LogitMix, mix_logits
from clm.methods.mixture import (
    FRACTIONS,
    compare_with_interpolation,
    endpoint_texts,
    mixture,
    mixture_config,
    write_mixture,
)
from clm.methods.prompting import LEVELS, PromptingMethod, Wording, levels_prompts
from clm.methods.steering import SteeringMethod, mean_difference, steer
from clm.train.config import TrainConfig

PROMPTS = ["Once upon a time", "The letter said", "In the year 3000, robots"]
LOW = ["I hate this, it is awful.", "A dull, sad and broken day.", "Nothing works and it hurts."]
HIGH = ["I love this, it is wonderful!", "A bright and happy morning.", "Everything went great today."]


def _ids(n: int = 3, t: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t), generator=g)  # (n, t) byte tokens, no padding


@pytest.fixture()
def vector(im):
    return mean_difference(im, im.tokenizer, LOW, HIGH, "sentiment", layers=[0, 1])[1] * 40.0


def _base_logits(im, ids):
    return im.logits(ids, weights=clm.Weights.base())


# ---------------------------------------------------------------------- steering
@pytest.mark.parametrize("positions", ["all", "generated"])
def test_steering_at_zero_is_the_base_exactly(im, vector, positions):
    ids = _ids()
    base = _base_logits(im, ids)
    with steer(im.model, vector, 0.0, positions=positions):
        assert torch.equal(_base_logits(im, ids), base)
    with steer(im.model, vector, torch.zeros(3), positions=positions):
        assert torch.equal(_base_logits(im, ids), base)
    with steer(im.model, vector, 1.0, positions=positions):
        assert not torch.allclose(_base_logits(im, ids)[:, -1], base[:, -1], atol=1e-3)  # it does steer


def test_steering_generated_positions_leave_the_prompt_alone(im, vector):
    ids = _ids()
    base = _base_logits(im, ids)
    with steer(im.model, vector, 2.0, positions="generated"):
        out = _base_logits(im, ids)
    assert torch.equal(out[:, :-1], base[:, :-1])  # the prompt's positions are untouched
    assert not torch.allclose(out[:, -1], base[:, -1], atol=1e-3)


def test_steering_installed_and_removed_is_bit_identical(im, vector):
    ids = _ids()
    before = _base_logits(im, ids)
    s = steer(im.model, vector, 3.0)
    during = _base_logits(im, ids)
    s.remove()
    assert not torch.equal(during, before)
    assert torch.equal(_base_logits(im, ids), before)
    with steer(im.model, vector, -2.0):
        pass
    assert torch.equal(_base_logits(im, ids), before)
    assert all(not m._forward_hooks for m in im.model.modules())  # no hook left behind


def test_steering_never_touches_the_weights(im, vector):
    before = {k: v.clone() for k, v in im.model.state_dict().items()}
    with steer(im.model, vector, 5.0):
        _base_logits(im, _ids())
        assert all(torch.equal(before[k], v) for k, v in im.model.state_dict().items())


def test_steering_per_row_equals_each_row_alone(im, vector):
    ids, cs = _ids(), [-2.0, 0.0, 3.0]
    with steer(im.model, vector, torch.tensor(cs)):
        batch = _base_logits(im, ids)
    for r, c in enumerate(cs):
        with steer(im.model, vector, c):
            alone = _base_logits(im, ids[r : r + 1])
        torch.testing.assert_close(batch[r : r + 1], alone, atol=1e-5, rtol=1e-5)
    method = SteeringMethod(im, im.tokenizer, vector, grid=cs)
    together = method.generate(PROMPTS, cs, max_new_tokens=12, do_sample=False)
    for r, c in enumerate(cs):
        (alone,) = method.generate([PROMPTS[r]], c, max_new_tokens=12, do_sample=False)
        assert together[r].token_ids == alone.token_ids
    assert len({tuple(g.token_ids) for g in together}) > 1


def test_steering_errors_name_the_bad_value(im, vector):
    with pytest.raises(ConfigError, match="layer"):
        steer(im.model, vector.vector, 1.0, layer=7)
    with pytest.raises(ConfigError, match="positions"):
        steer(im.model, vector, 1.0, positions="prompt")
    with steer(im.model, vector, [1.0, 2.0]), pytest.raises(ConfigError, match="2 steering coefficients"):
        _base_logits(im, _ids(3))
    assert vector.seconds > 0 and vector.n_low == 3 and torch.equal((2 * vector - vector).vector, vector.vector)


# ---------------------------------------------------------------------- the shared loop
@pytest.mark.parametrize("do_sample", [False, True])
def test_neutral_strength_generates_what_the_engine_generates(im, vector, do_sample):
    kw = dict(max_new_tokens=10, do_sample=do_sample, seed=5)
    ref = [g.token_ids for g in im.generate(PROMPTS, weights=clm.Weights.base(), **kw)]
    methods = [
        SteeringMethod(im, im.tokenizer, vector),
        LogitMix(im, "sentiment", "linear"),
        PromptingMethod(im, im.tokenizer, "sentiment"),
    ]
    for m in methods:
        assert [g.token_ids for g in m.generate(PROMPTS, m.dial.neutral, **kw)] == ref, m.name
    ours = InterpolationMethod(im, "sentiment").generate(PROMPTS, 1.0, **kw)
    assert [g.token_ids for g in ours] == [g.token_ids for g in im.generate(PROMPTS, weights="sentiment=1", **kw)]


# ---------------------------------------------------------------------- logit arithmetic
def test_logit_linear_at_zero_is_the_base_exactly(im):
    ids = _ids()
    mix = LogitMix(im, "sentiment", "linear")
    assert torch.equal(mix.logits(ids, 0.0), _base_logits(im, ids))
    assert torch.equal(mix.logits(ids, torch.zeros(3)), _base_logits(im, ids))
    assert not torch.allclose(mix.logits(ids, 1.0), _base_logits(im, ids), atol=1e-3)
    assert im.weights == clm.Weights.base()  # the setting is restored


def test_logit_product_at_one_is_the_high_endpoint(im):
    ids = _ids()
    mix = LogitMix(im, "sentiment", "product")
    high = im.logits(ids, weights="sentiment=1")
    low = im.logits(ids, weights="sentiment=0")
    out = mix.logits(ids, 1.0)
    assert torch.equal(out, torch.log_softmax(high, -1))
    torch.testing.assert_close(torch.log_softmax(out, -1), torch.log_softmax(high, -1), atol=1e-6, rtol=0)
    assert torch.equal(mix.logits(ids, 0.0), torch.log_softmax(low, -1))
    assert not torch.allclose(torch.log_softmax(high, -1), torch.log_softmax(low, -1), atol=1e-3)


def test_logit_mix_per_row_and_cached_decoding(im):
    ids, alphas = _ids(), torch.tensor([-1.0, 0.5, 2.0])
    for mode in ("linear", "product"):
        mix = LogitMix(im, "formality", mode)
        batch = mix.logits(ids, alphas)
        for r, a in enumerate(alphas.tolist()):
            assert torch.equal(batch[r], mix.logits(ids, a)[r])
    # cached decoding with three members (their own KV caches) = greedy on full recomputed logits
    mix = LogitMix(im, "sentiment", "linear")
    gens = mix.generate(["Hello there"], 1.5, max_new_tokens=6, do_sample=False, stop_at_eos=False)
    seq = im.tokenizer(["Hello there"], return_tensors="pt")["input_ids"]
    for _ in range(6):
        seq = torch.cat([seq, mix.logits(seq, 1.5)[:, -1].argmax(-1, keepdim=True)], 1)
    assert gens[0].token_ids == seq[0, -6:].tolist()
    together = mix.generate(PROMPTS, [-2.0, 0.0, 2.0], max_new_tokens=8, do_sample=False)
    for r, a in enumerate([-2.0, 0.0, 2.0]):
        assert together[r].token_ids == mix.generate([PROMPTS[r]], a, max_new_tokens=8, do_sample=False)[0].token_ids


def test_mix_logits_rules():
    z = torch.randn(3, 4, 7, dtype=torch.float64)
    lo, hi, base = z[0:1], z[1:2], z[2:3]
    a = torch.tensor([0.25])
    torch.testing.assert_close(mix_logits(a, lo, hi, base, "linear"), base + 0.25 * (hi - lo))
    lp = torch.log_softmax
    torch.testing.assert_close(mix_logits(a, lo, hi, mode="product"), 0.75 * lp(lo, -1) + 0.25 * lp(hi, -1))
    with pytest.raises(ConfigError, match="base"):
        mix_logits(a, lo, hi, mode="linear")


# ---------------------------------------------------------------------- prompting
def test_prompting_levels_are_distinct_prompts(pico):
    model, tok = pico
    method = PromptingMethod(model, tok, "formality")
    texts = levels_prompts(method, "The meeting")
    assert len(texts) == len(LEVELS) == 5 and len(set(texts)) == 5
    assert texts[2] == "The meeting"  # level 0: no instruction, the base model
    assert method.template == "plain" and all(t.startswith("Instruction: ") for i, t in enumerate(texts) if i != 2)
    assert "very formal" in texts[4] and "very informal" in texts[0] and all(t.endswith("The meeting") for t in texts)
    with pytest.raises(ConfigError, match="level"):
        method.model_prompt("x", 0.5)
    neutral = PromptingMethod(model, tok, "formality", wording=Wording("n", "Be {phrase}.", neutral="phrase"))
    assert len(set(levels_prompts(neutral, "x"))) == 5 and neutral.dial.neutral is None


def test_prompting_uses_a_chat_template_when_there_is_one(pico):
    model, tok = pico
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    method = PromptingMethod(model, tok, "humor", wording="persona")
    text = method.model_prompt("A cat", 2.0)
    assert method.template == "chat" and text.startswith("<|system|>") and text.endswith("<|assistant|>A cat")
    assert "very funny" in text and method.describe()["template"] == "chat"
    gens = method.generate(["A cat", "A dog"], [2.0, -2.0], max_new_tokens=4, do_sample=False)
    assert [g.model_prompt is not None for g in gens] == [True, True] and gens[0].prompt == "A cat"


# ---------------------------------------------------------------------- the interface
def test_every_method_has_the_interface(im, vector, pico):
    model, tok = pico
    methods = [
        InterpolationMethod(im, "sentiment"),
        PromptingMethod(model, tok, "sentiment"),
        SteeringMethod(im, im.tokenizer, vector),
        LogitMix(im, "sentiment", "linear"),
        LogitMix(im, "sentiment", "product"),
    ]
    for m in methods:
        assert isinstance(m, Method)
        assert {"forward_passes_per_token", "per_row", "preparation_seconds"} <= set(m.cost)
        json.dumps(m.describe())
        gens = m.generate(PROMPTS[:2], list(m.dial.grid[:2]), max_new_tokens=3, seed=1, num_samples=2)
        assert [(g.prompt_index, g.sample_index) for g in gens] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert [g.strength for g in gens] == [m.dial.grid[0]] * 2 + [m.dial.grid[1]] * 2
    assert [m.cost["forward_passes_per_token"] for m in methods] == [1, 1, 1, 3, 2]


# ---------------------------------------------------------------------- mixtures
@pytest.fixture()
def mix_cfg(tmp_path):
    d = tmp_path / "attributes" / "sentiment"
    d.mkdir(parents=True)
    for pole, n in (("negative", 48), ("positive", 40)):
        (d / f"{pole}.train.jsonl").write_text(
            "".join(json.dumps({"text": f"{pole} text {i}."}) + "\n" for i in range(n))
        )
    return TrainConfig.from_preset("tiny", attributes=["sentiment"], data_dir=str(tmp_path), max_texts=44)


def test_mixture_has_the_requested_fraction(mix_cfg, tmp_path):
    from clm.core.models import pico_tokenizer
    from clm.train.data import load_pole

    low, high = endpoint_texts(mix_cfg, "sentiment", "low"), endpoint_texts(mix_cfg, "sentiment", "high")
    assert (len(low), len(high)) == (44, 40)  # capped at max_texts, as the trainer caps
    spec = mix_cfg.attribute("sentiment")
    assert (
        hashlib.sha256("\n".join(low).encode()).hexdigest()
        == load_pole(mix_cfg, spec, "low", pico_tokenizer()).texts_sha256
    )
    for m in FRACTIONS:
        mix = mixture(mix_cfg, "sentiment", m)
        assert len(mix.texts) == 40 and mix.fraction == m and mix.n_high == round(40 * m)
        assert all((t in high) == h and (t in low) != h for t, h in zip(mix.texts, mix.is_high))
        assert mixture(mix_cfg, "sentiment", m).texts == mix.texts  # deterministic
    path = write_mixture(mixture(mix_cfg, "sentiment", 0.5), tmp_path / "run" / "mix0.50")
    cfg = mixture_config(mix_cfg, "sentiment", path, "mix0.50")
    assert cfg.attribute("sentiment").high.name == "mix0.50" and cfg.max_steps == mix_cfg.max_steps
    assert json.loads((path.parent / "mixture.json").read_text())["n_high"] == 20
    with pytest.raises(ConfigError, match="fraction"):
        mixture(mix_cfg, "sentiment", 1.5)


def _as_interpolation(ends, attribute: str, alpha: float) -> dict[str, LoraFactors]:
    """One adapter whose ΔW is (1 − α) ΔW_low + α ΔW_high: the factors concatenated along the rank."""
    low, high = ends.factors(attribute, "low"), ends.factors(attribute, "high")
    out = {}
    for name in set(low) | set(high):
        pairs = [(f, 1 - alpha) for f in [low.get(name)] if f] + [(f, alpha) for f in [high.get(name)] if f]
        parts = [(f.A.double(), (c * f.scale) * f.B.double()) for f, c in pairs]  # float64: exact to ~1e-16
        out[name] = LoraFactors(torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts], 1), 1.0)
    return out


@pytest.mark.parametrize("attribute", ["sentiment", "formality"])
def test_delta_distance_fixed_points(endpoints_dir, attribute):
    ends = clm.Endpoints.load(endpoints_dir)
    for m in FRACTIONS:
        same = compare_with_interpolation(_as_interpolation(ends, attribute, m), ends, attribute, m)
        assert same["distance"] == pytest.approx(0, abs=1e-9 * same["scale"]) and same["cosine"] == pytest.approx(1)
        other = compare_with_interpolation(_as_interpolation(ends, attribute, m), ends, attribute, 0.0)
        assert other["ratio"] == pytest.approx(m, rel=1e-9)  # ΔW(m) − ΔW(0) = m (ΔW_high − ΔW_low)
    ends_apart = compare_with_interpolation(ends.factors(attribute, "high"), ends, attribute, 0.0)
    assert ends_apart["distance"] == ends_apart["scale"] > 0 and ends_apart["ratio"] == 1.0


def test_train_mixture_then_generate_with_it(mix_cfg, tmp_path, pico_dir, endpoints_dir, im):
    from clm.core.endpoints import read_adapter
    from clm.core.models import load_base
    from clm.methods.mixture import MixtureMethod, train_mixture

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # pico's tiny matmuls: thread contention on busy cores costs ~10x
    try:
        adapter = train_mixture(mix_cfg, "sentiment", 0.5, tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert train_mixture(mix_cfg, "sentiment", 0.5, tmp_path / "run") == adapter  # finished: reused
    prov = json.loads((adapter / "clm_adapter.json").read_text())
    assert prov["steps"] == mix_cfg.max_steps and prov["pole_name"] == "mix0.50"
    ends = clm.Endpoints.load(endpoints_dir)
    cmp = compare_with_interpolation(read_adapter(adapter), ends, "sentiment", 0.5)
    assert 0 < cmp["ratio"] < float("inf") and cmp["norm"] > 0

    dirs = {0.0: ends.adapter_dir("sentiment", "low"), 0.5: adapter, 1.0: ends.adapter_dir("sentiment", "high")}
    method = MixtureMethod(load_base(str(pico_dir))[0], im.tokenizer, "sentiment", dirs)
    assert isinstance(method, Method) and not method.per_row and method.dial.grid == (0.0, 0.5, 1.0)
    kw = dict(max_new_tokens=8, do_sample=False)
    together = method.generate(PROMPTS, [1.0, 0.5, 0.0], **kw)
    for r, m in enumerate([1.0, 0.5, 0.0]):
        assert together[r].token_ids == method.generate([PROMPTS[r]], m, **kw)[0].token_ids
    ours = im.generate([PROMPTS[0], PROMPTS[2]], weights=["sentiment=1", "sentiment=0"], **kw)
    assert [together[0].token_ids, together[2].token_ids] == [g.token_ids for g in ours]  # endpoints = α 0, 1
    with pytest.raises(ConfigError, match="no adapter"):
        method.generate(PROMPTS[:1], 0.25, **kw)


# ---------------------------------------------------------------------- choosing on dev prompts
def test_dev_prompts_are_the_last_ones_and_never_the_test_ones(tmp_path):
    from clm.data import dev_prompts
    from clm.stats import spearman

    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(10)))
    assert dev_prompts(path, 3) == ["p7", "p8", "p9"]
    with pytest.raises(ConfigError, match="overlap"):
        dev_prompts(path, 6)
    assert spearman([0, 1, 2, 3], [0.1, 0.5, 0.4, 0.9]) == pytest.approx(0.8)
    assert spearman([0, 1, 2], [1.0, 1.0, 1.0]) != spearman([0, 1, 2], [1.0, 1.0, 1.0])  # NaN: constant


def test_choosing_wording_and_steering_records_the_rule(im, vector):
    from clm.methods.dev import base_fluency, choose_steering, choose_wording

    def scorer(texts):  # a stand-in scorer: the share of vowels
        return [sum(c in "aeiou" for c in t) / max(1, len(t)) for t in texts]

    kw = dict(max_new_tokens=4, samples=1, seed=0)
    rec = choose_wording(im, im.tokenizer, "sentiment", PROMPTS, scorer, candidates=["story", "continue"], **kw)
    assert rec["chosen"] in ("story", "continue") and rec["template"] == "plain" and rec["prompts"]["n"] == 3
    assert set(rec["candidates"]["story"]["score"]) == {-2.0, 2.0}
    best = max(rec["candidates"].values(), key=lambda r: r["range"])
    assert rec["candidates"][rec["chosen"]] is best
    r = rec["candidates"]["story"]
    assert r["range"] == pytest.approx(r["score"][2.0] - r["score"][-2.0])
    vecs = mean_difference(im, im.tokenizer, LOW, HIGH, "sentiment", layers=[0, 1])
    st = choose_steering(
        im,
        im.tokenizer,
        {L: v * 40 for L, v in vecs.items()},
        PROMPTS,
        scorer,
        base_fluency(im),
        probe=(0.5, 1.0),
        max_ratio=1e9,
        **kw,
    )
    assert st["layer"] in (0, 1) and st["c_max"] == 1.0 and st["grid"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert all(set(st["layers"][L]["ratio"]) == {0.5, 1.0} for L in (0, 1)) and "rule" in st
    json.dumps(rec), json.dumps(st)
    none = choose_steering(im, im.tokenizer, vecs, PROMPTS, scorer, base_fluency(im), probe=(1.0,), max_ratio=0.0, **kw)
    assert none["layer"] is None and none["grid"] is None
