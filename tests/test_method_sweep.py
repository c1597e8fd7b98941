"""clm.experiments.method_sweep on pico: a method's dial through the sweep machinery.

Steering at c = 0 is the base model's continuations for the same seed; a rerun generates nothing
and writes the same bytes; another wording or layer regenerates, a longer grid keeps the batches
before it; new scorers re-score kept continuations; WikiText perplexity per strength is each
setting's model's.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

import clm
from clm.errors import ConfigError
from clm.experiments import method_sweep as ms
from clm.experiments import sweep_perplexity, sweep_scoring
from clm.experiments.keys import chunk_seed
from clm.methods.interpolation import InterpolationMethod
from clm.methods.prompting import PromptingMethod
from clm.methods.steering import SteeringMethod, mean_difference

PROMPTS = ["Once upon a time", "The letter said", "In the year 3000, robots"]
LOW = ["I hate this, it is awful.", "A dull, sad and broken day.", "Nothing works and it hurts."]
HIGH = ["I love this, it is wonderful!", "A bright and happy morning.", "Everything went great today."]


class Keyed:
    """A fake scorer with a fingerprint: text length mod ``mod``; counts its calls."""

    def __init__(self, mod: int, fingerprint: str):
        self.mod, self.fingerprint, self.calls = mod, fingerprint, 0

    def score(self, texts):
        self.calls += 1
        return np.array([len(t) % self.mod / self.mod for t in texts])


def scorers():
    return {"sentiment": Keyed(3, "s-v1"), "formality": Keyed(2, "f-v1")}


@pytest.fixture()
def vectors(im):
    return {L: v * 40.0 for L, v in mean_difference(im, im.tokenizer, LOW, HIGH, "sentiment", layers=[0, 1]).items()}


def count_calls(method, monkeypatch) -> list:
    """Wrap ``method.generate``; returns the list of every call's strengths."""
    calls, real = [], method.generate

    def wrapped(prompts, strengths, **kw):
        calls.append(list(strengths))
        return real(prompts, strengths, **kw)

    monkeypatch.setattr(method, "generate", wrapped)
    return calls


KW = dict(n_samples=2, max_new_tokens=6, progress=False)


def test_steering_at_zero_is_the_base_models_continuations_for_the_same_seed(im, vectors):
    method = SteeringMethod(im, im.tokenizer, vectors[1], grid=(-1.0, 0.0, 1.0))
    t = ms.run_method_sweep(method, [0.0], PROMPTS, scorers(), batch_size=4, **KW)
    assert len(t) == 6 and t.chunk.nunique() == 2  # 6 rows in batches of 4 and 2
    for key, g in t.groupby("chunk", sort=False):
        ref = im.generate(
            g.prompt.tolist(), weights=clm.Weights.base(), seed=chunk_seed(key), max_new_tokens=6, do_sample=True,
            num_samples=1, batch_size=None, progress=False,
        )  # fmt: skip
        assert g.continuation.tolist() == [r.text for r in ref]
        assert g.token_ids.tolist() == [json.dumps(r.token_ids) for r in ref]
    assert (t.n_tokens > 0).any()


def test_table_columns_and_one_row_per_seed_strength_prompt_sample(im, vectors):
    method = SteeringMethod(im, im.tokenizer, vectors[1], grid=(-1.0, 0.0, 1.0))
    t = ms.run_method_sweep(method, None, PROMPTS, scorers(), seeds=[0, 1], batch_size=5, **KW)
    assert len(t) == 2 * 3 * 3 * 2
    assert list(t.columns) == [
        "method", "attribute", "dial", "strength", "seed", "prompt_index", "prompt", "sample", "continuation",
        "n_tokens", "finished", "chunk", "token_ids", "model_prompt", "score_sentiment", "score_formality", "scored_by",
    ]  # fmt: skip
    assert t.groupby(["seed", "strength", "prompt_index", "sample"]).size().eq(1).all()
    assert set(t.method) == {"steering"} and set(t.dial) == {"c"} and sorted(set(t.strength)) == [-1.0, 0.0, 1.0]
    assert t.model_prompt.isna().all()  # steering reads the prompt itself
    assert t.score_sentiment.tolist() == [len(c) % 3 / 3 for c in t.continuation]
    # the rows of one strength differ from those of another (steering does steer)
    by = t.groupby("strength").continuation.apply(list)
    assert by[-1.0] != by[1.0]


def test_per_row_strengths_in_one_batch_equal_each_strength_alone(im, vectors):
    method = SteeringMethod(im, im.tokenizer, vectors[1], grid=(-1.0, 0.0, 1.0))
    kw = dict(n_samples=1, max_new_tokens=6, do_sample=False, progress=False)
    mixed = ms.run_method_sweep(method, [-1.0, 0.0, 1.0], PROMPTS, scorers(), batch_size=9, **kw)
    assert mixed.chunk.nunique() == 1
    for c in (-1.0, 0.0, 1.0):
        alone = ms.run_method_sweep(method, [c], PROMPTS, scorers(), batch_size=9, **kw)
        assert mixed[mixed.strength == c].continuation.tolist() == alone.continuation.tolist()


def test_rerun_generates_nothing_and_writes_the_same_bytes(im, vectors, tmp_path, monkeypatch):
    method = SteeringMethod(im, im.tokenizer, vectors[1], grid=(-1.0, 0.0, 1.0))
    fluency = sweep_scoring.base_fluency(im)
    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"steer{suffix}"
        first = ms.run_method_sweep(method, None, PROMPTS, scorers(), out=out, batch_size=4, fluency=fluency, **KW)
        assert not (tmp_path / f"steer{suffix}.parts").exists()
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        calls = count_calls(method, monkeypatch)
        again = ms.run_method_sweep(method, None, PROMPTS, scorers(), out=out, batch_size=4, fluency=fluency, **KW)
        assert calls == []
        pd.testing.assert_frame_equal(again, first)
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        monkeypatch.undo()
    assert np.isfinite(first.ppl[first.n_tokens > 0]).all() and set(first.ppl_by) == {fluency.fingerprint}


def test_a_changed_description_regenerates_and_a_longer_grid_keeps_the_batches_before(
    im, vectors, tmp_path, monkeypatch
):
    out = tmp_path / "t.parquet"
    kw = dict(out=out, batch_size=6, **KW)  # one strength per batch: 3 prompts x 2 samples
    a = SteeringMethod(im, im.tokenizer, vectors[1], grid=(0.0, 1.0))
    first = ms.run_method_sweep(a, None, PROMPTS, scorers(), **kw)
    calls = count_calls(a, monkeypatch)
    longer = ms.run_method_sweep(a, [0.0, 1.0, 2.0], PROMPTS, scorers(), **kw)
    assert calls == [[2.0] * 6]  # only the new strength's batch ran
    pd.testing.assert_frame_equal(longer[longer.strength < 2].reset_index(drop=True), first)
    other_layer = SteeringMethod(im, im.tokenizer, vectors[0], grid=(0.0, 1.0))
    calls = count_calls(other_layer, monkeypatch)
    moved = ms.run_method_sweep(other_layer, None, PROMPTS, scorers(), **kw)
    assert len(calls) == 2 and set(moved.chunk).isdisjoint(first.chunk)
    generated = SteeringMethod(im, im.tokenizer, vectors[1], grid=(0.0, 1.0), positions="generated")
    assert ms.method_key(generated) != ms.method_key(a) and ms.method_key(a) == ms.method_key(
        SteeringMethod(im, im.tokenizer, vectors[1], grid=(-5.0, 0.0, 1.0), chosen="on dev prompts")
    )  # the dial is not in the key


def test_prompting_wording_is_keyed_and_model_prompt_is_recorded(im, tmp_path, monkeypatch):
    out = tmp_path / "p.parquet"
    story = PromptingMethod(im, im.tokenizer, "sentiment", "story")
    t = ms.run_method_sweep(story, [-2.0, 0.0, 2.0], PROMPTS, scorers(), out=out, batch_size=6, **KW)
    assert t[t.strength == 0].model_prompt.isna().all()  # level 0: the plain prompt
    shown = t[t.strength != 0]
    assert shown.model_prompt.tolist() == [story.model_prompt(p, s) for p, s in zip(shown.prompt, shown.strength)]
    assert shown.model_prompt.str.contains("very positive").sum() == 6
    persona = PromptingMethod(im, im.tokenizer, "sentiment", "persona")
    calls = count_calls(persona, monkeypatch)
    other = ms.run_method_sweep(persona, [-2.0, 0.0, 2.0], PROMPTS, scorers(), out=out, batch_size=6, **KW)
    assert len(calls) == 3 and set(other.chunk).isdisjoint(t.chunk)


def test_new_scorers_rescore_kept_continuations_without_regenerating(im, vectors, tmp_path, monkeypatch):
    method = SteeringMethod(im, im.tokenizer, vectors[1], grid=(0.0, 1.0))
    kw = dict(out=tmp_path / "t.parquet", batch_size=4, **KW)
    first = ms.run_method_sweep(method, None, PROMPTS, {"sentiment": Keyed(3, "v1")}, **kw)
    calls = count_calls(method, monkeypatch)
    same = Keyed(5, "v1")
    pd.testing.assert_frame_equal(ms.run_method_sweep(method, None, PROMPTS, {"sentiment": same}, **kw), first)
    new = Keyed(5, "v2")
    t = ms.run_method_sweep(method, None, PROMPTS, {"sentiment": new}, **kw)
    assert calls == [] and same.calls == 0 and new.calls == first.chunk.nunique()
    assert t.continuation.tolist() == first.continuation.tolist()
    assert t.score_sentiment.tolist() == [len(c) % 5 / 5 for c in first.continuation]


def test_wikitext_perplexity_per_strength_is_each_settings_model(im, vectors, tmp_path, monkeypatch):
    text = tmp_path / "wiki.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\nA second line of text, to measure.\n" * 4)
    wiki = sweep_perplexity.wikitext_perplexity(im, text, window=32, stride=16)
    ours = InterpolationMethod(im, "sentiment", grid=(0.0, 1.0))
    out = tmp_path / "i.parquet"
    t = ms.run_method_sweep(ours, None, PROMPTS, scorers(), out=out, perplexity=ms.interpolation_perplexity(
        ours, text, window=32, stride=16), **KW)  # fmt: skip
    by = t.groupby("strength").wikitext_ppl.agg(["min", "max"])
    assert (by["min"] == by["max"]).all()  # one value per strength
    assert by["min"].to_dict() == {a: wiki(clm.Weights({"sentiment": a})) for a in (0.0, 1.0)}
    assert (tmp_path / "i_perplexity.parquet").is_file()
    counted = []

    def fake(a):
        counted.append(a)
        return 1.0

    fake.context = ms.interpolation_perplexity(ours, text, window=32, stride=16).context
    pd.testing.assert_frame_equal(
        ms.run_method_sweep(ours, None, PROMPTS, scorers(), out=out, perplexity=fake, **KW), t
    )
    assert counted == []  # kept, keyed by method, strength and context
    steering = SteeringMethod(im, im.tokenizer, vectors[1], grid=(0.0, 1.0))
    ppl = ms.steering_perplexity(steering, text, window=32, stride=16)
    assert ppl(0.0) == wiki(clm.Weights.base()) and not math.isclose(ppl(1.0), ppl(0.0))
    with pytest.raises(ConfigError, match="generated"):
        ms.steering_perplexity(SteeringMethod(im, im.tokenizer, vectors[1], positions="generated"), text)


def test_interpolation_fluency_base_and_errors(im, vectors):
    ours = InterpolationMethod(im, "sentiment", grid=(0.0, 1.0))
    t = ms.run_method_sweep(ours, None, PROMPTS, scorers(), fluency="base", **KW)
    ids = [json.loads(x) for x in t.token_ids]
    ref = sweep_scoring.base_fluency(im, batch_size=32)(t.prompt.tolist(), ids)
    np.testing.assert_array_equal(t.ppl.to_numpy(), np.asarray(ref, dtype=float))
    assert set(t.dial) == {"alpha"} and t.model_prompt.isna().all()
    with pytest.raises(ConfigError, match="Method"):
        ms.run_method_sweep(im, [0.0], PROMPTS, scorers())
    with pytest.raises(ConfigError, match="distinct"):
        ms.run_method_sweep(ours, [0.0, 0.0], PROMPTS, scorers())
    with pytest.raises(ConfigError, match="finite"):
        ms.run_method_sweep(ours, [float("nan")], PROMPTS, scorers())
    plain = SteeringMethod(im.model, im.tokenizer, vectors[1])
    with pytest.raises(ConfigError, match="fluency"):
        ms.run_method_sweep(plain, [0.0], PROMPTS, scorers(), fluency="base")
    with pytest.raises(ConfigError, match="parquet"):
        ms.run_method_sweep(ours, [0.0], PROMPTS, scorers(), out="t.json")
