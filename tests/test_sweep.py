"""clm.sweep on the pico model: designs, an end-to-end grid, crash and resume, batch = one by one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import clm
from clm.errors import ConfigError, WeightsError
from clm.experiments import designs, sweep, sweep_perplexity, sweep_scoring, tables

PROMPTS = ["Once upon a time", "The cat", "A long and winding road to"]


class Frac:
    """A fake scorer: the share of the text's characters that are in ``chars``."""

    def __init__(self, chars: str, fail_after: int | None = None):
        self.chars, self.fail_after, self.calls = set(chars), fail_after, 0

    def score(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("scorer crashed")
        return np.array([sum(c in self.chars for c in t) / max(len(t), 1) for t in texts])


def scorers(fail_after: int | None = None):
    return {"sentiment": Frac("aeiou", fail_after), "formality": lambda texts: [len(t) % 2 for t in texts]}


def count_generate(im, monkeypatch) -> list:
    """Wrap ``im.generate``; returns the list of every call's generations."""
    calls, real = [], im.generate

    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out)
        return out

    monkeypatch.setattr(im, "generate", wrapped)
    return calls


# ---------------------------------------------------------------------- designs
def test_single_attribute_design_covers_the_extrapolation_bands():
    s = designs.single_attribute("sentiment")
    alphas = [x.weights.alpha["sentiment"] for x in s]
    assert alphas == [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]
    assert [x.weights.extrapolate for x in s] == [not 0 <= a <= 1 for a in alphas]
    assert {x.design for x in s} == {"single"} and {x.target for x in s} == {"sentiment"}
    assert str(s[4]) == "sentiment=0" and str(s[0]) == "sentiment=-1;extrapolate"
    with pytest.raises(WeightsError, match="outside the extrapolation bounds"):
        designs.single_attribute("sentiment", [3.0])
    assert designs.single_attribute("sentiment", [3.0], bounds=(-2, 3))[0].weights.alpha["sentiment"] == 3.0


def test_multi_attribute_design_is_the_papers():
    s = designs.multi_attribute("sentiment", ["sentiment", "formality", "humor"])
    assert len(s) == 3 * 6
    for x in s:
        lam, alpha = x.weights.lam_resolved(), x.weights.alpha
        assert lam["sentiment"] in (0.8, 0.4, 0.2)
        assert lam["formality"] == lam["humor"] == pytest.approx((1 - lam["sentiment"]) / 2)
        assert alpha["formality"] == alpha["humor"] == 1.0
    assert sorted({x.weights.alpha["sentiment"] for x in s}) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    with pytest.raises(ConfigError, match="besides"):
        designs.multi_attribute("sentiment", ["sentiment"])


def test_simplex_design_step_02_has_21_points_summing_to_one():
    s = designs.simplex(["sentiment", "formality", "humor"])
    assert len(s) == 21 and len(set(x.weights for x in s)) == 21
    for x in s:
        assert sum(x.weights.lam.values()) == pytest.approx(1.0)
        assert set(x.weights.alpha.values()) == {1.0}
    with pytest.raises(ConfigError):
        designs.simplex(["a", "b", "c"], step=0.3)


def test_custom_design_and_setting_columns():
    s = designs.custom(["base", {"sentiment": 0.5}, clm.Weights({"formality": 1.0})])
    cols = designs.setting_columns(s[1], ["sentiment", "formality"])
    assert cols["setting"] == "sentiment=0.5" and cols["alpha_sentiment"] == 0.5 and cols["lam_sentiment"] == 1.0
    assert math.isnan(cols["alpha_formality"]) and cols["lam_formality"] == 0.0
    assert clm.Weights.from_json(cols["weights"]) == s[1].weights
    assert designs.setting_columns(s[0], ["sentiment"])["setting"] == "base"


# ---------------------------------------------------------------------- running
def test_small_grid_end_to_end(im, tmp_path):
    settings = designs.single_attribute("sentiment", [0.0, 0.5, 1.0]) + designs.custom(["base"])
    out = tmp_path / "t.parquet"
    kw = dict(n_samples=2, seeds=[0, 1], max_new_tokens=6, batch_size=12)

    def run(**more):
        return sweep.run_sweep(im, settings, PROMPTS[:2], scorers(), **kw, **more)

    plan = run(out=out, dry_run=True, progress=False)
    assert plan.n_generations == 4 * 2 * 2 * 2 and plan.n_chunks == 3  # 12 + 12 + 8 rows
    assert plan.n_done == 0 and plan.est_seconds > 0 and "32 generations" in str(plan)
    assert not out.exists() and not (tmp_path / "t.parquet.parts").exists()  # a dry run writes nothing
    assert run(dry_run=True, tokens_per_s=60.0).est_seconds == pytest.approx(3 * 12 * 6 / 60)

    t = run(out=out, progress=False)
    assert len(t) == 32
    assert t.groupby(["setting", "seed", "prompt_index", "sample"]).size().eq(1).all()
    assert t.setting.value_counts().to_dict() == {"sentiment=0": 8, "sentiment=0.5": 8, "sentiment=1": 8, "base": 8}
    assert set(t.design) == {"single", "custom"}
    for col in ["prompt", "continuation", "score_sentiment", "score_formality", "ppl", "n_tokens", "alpha_formality"]:
        assert col in t.columns
    assert t.score_sentiment.between(0, 1).all() and set(t.score_formality) <= {0, 1}
    assert (t.n_tokens <= 6).all() and (t.n_tokens > 0).any()
    assert np.isfinite(t.ppl[t.n_tokens > 0]).all() and (t.ppl[t.n_tokens > 0] > 1).all()
    assert t.prompt.tolist() == [PROMPTS[i] for i in t.prompt_index]
    pd.testing.assert_frame_equal(tables.read_table(out), t)
    assert not (tmp_path / "t.parquet.parts").exists()  # parts are folded into the table
    # a second run generates nothing and gives the same table
    again = run(out=out, progress=False, dry_run=True)
    assert again.n_chunks_todo == 0 and again.n_done == 32 and again.est_seconds == 0.0


def test_crash_then_rerun_skips_finished_batches(im, tmp_path, monkeypatch):
    settings = designs.single_attribute("sentiment", [0.0, 1.0, 2.0])
    kw = dict(n_samples=1, seeds=[3], max_new_tokens=5, batch_size=2, fluency=None, progress=False)
    ref = sweep.run_sweep(im, settings, PROMPTS, scorers(), **kw)  # uninterrupted, in memory; 9 rows, 5 batches
    out = tmp_path / "s.csv"
    with pytest.raises(RuntimeError, match="scorer crashed"):
        sweep.run_sweep(im, settings, PROMPTS, scorers(fail_after=3), out=out, **kw)
    parts = list((tmp_path / "s.csv.parts").glob("*.parquet"))
    assert len(parts) == 3 and not out.exists()  # the crash lost only the batch in flight

    calls = count_generate(im, monkeypatch)
    t = sweep.run_sweep(im, settings, PROMPTS, scorers(), out=out, **kw)
    assert len(calls) == 2  # only the 2 unfinished batches ran
    assert t.continuation.tolist() == ref.continuation.tolist()  # as if it never crashed
    assert np.allclose(t.score_sentiment, ref.score_sentiment)
    pd.testing.assert_frame_equal(
        tables.read_table(out)[["setting", "prompt_index", "seed"]], t[["setting", "prompt_index", "seed"]]
    )

    sweep.run_sweep(im, settings, PROMPTS, scorers(), out=out, **kw)
    assert len(calls) == 2  # all done: nothing generated
    # a grown sweep keeps the chunks it shares with the old one (settings appended at the end)
    more = settings + designs.single_attribute("sentiment", [-1.0])
    t2 = sweep.run_sweep(im, more, PROMPTS, {**scorers(), "humor": Frac("xyz")}, out=out, **kw)
    assert len(t2) == 12 and len(calls) == 2 + 2  # the last old batch (1 row) is regrouped, plus one new
    assert t2.continuation.tolist()[:8] == ref.continuation.tolist()[:8]
    assert t2.score_humor.notna().all()  # a scorer added later scores the old rows too


def test_batched_settings_equal_one_setting_at_a_time_greedy(im, monkeypatch):
    settings = designs.custom(["sentiment=0.3,formality=0.9", "sentiment=1", "formality=0", "base"])
    calls = count_generate(im, monkeypatch)
    t = sweep.run_sweep(
        im,
        settings,
        PROMPTS,
        scorers(),
        do_sample=False,
        max_new_tokens=8,
        batch_size=len(settings) * len(PROMPTS),
        fluency=None,
        progress=False,
    )
    assert len(calls) == 1  # every setting in one batch, one row each
    batched = calls[0]
    for i, s in enumerate(settings):
        alone = im.generate(PROMPTS, weights=s.weights, do_sample=False, max_new_tokens=8)
        rows = batched[i * len(PROMPTS) : (i + 1) * len(PROMPTS)]
        assert [g.token_ids for g in rows] == [g.token_ids for g in alone]
        assert t[t.setting == str(s)].continuation.tolist() == [g.text for g in alone]
    assert len({tuple(g.token_ids) for g in batched}) > 1  # the settings do differ


def test_perplexity_per_setting_is_measured_once_and_resumes(im, tmp_path):
    seen = []

    def ppl(w):
        seen.append(str(w))
        return 10.0 + w.alpha.get("sentiment", 0.0)

    settings = designs.single_attribute("sentiment", [0.0, 1.0])
    t = sweep.run_sweep(
        im,
        settings,
        PROMPTS[:2],
        scorers(),
        out=tmp_path / "p.parquet",
        perplexity=ppl,
        max_new_tokens=3,
        fluency=None,
        progress=False,
    )
    assert seen == ["sentiment=0", "sentiment=1"]
    assert t.groupby("setting").wikitext_ppl.first().to_dict() == {"sentiment=0": 10.0, "sentiment=1": 11.0}
    table = sweep_perplexity.perplexity_table(
        settings + designs.custom(["base"]), ppl, ["sentiment"], out=tmp_path / "p_perplexity.parquet"
    )
    assert seen == ["sentiment=0", "sentiment=1", "base"] and table.wikitext_ppl.tolist() == [10.0, 11.0, 10.0]
    assert table.alpha_sentiment.tolist()[:2] == [0.0, 1.0]


def test_perplexity_table_reuses_values_only_in_the_same_context(tmp_path):
    calls = []

    def make(ctx, offset):
        def ppl(w):
            calls.append((ctx, str(w)))
            return offset + w.alpha.get("sentiment", 0.0)

        ppl.context = ctx
        return ppl

    out = tmp_path / "ppl.parquet"
    settings = designs.single_attribute("sentiment", [0.0, 1.0])
    sweep_perplexity.perplexity_table(settings, make("ends-A", 10.0), ["sentiment"], out=out)
    again = sweep_perplexity.perplexity_table(settings, make("ends-A", 99.0), ["sentiment"], out=out)
    assert again.wikitext_ppl.tolist() == [10.0, 11.0] and len(calls) == 2  # same context: reused
    retrained = sweep_perplexity.perplexity_table(settings, make("ends-B", 20.0), ["sentiment"], out=out)
    assert retrained.wikitext_ppl.tolist() == [20.0, 21.0] and len(calls) == 4  # new context: measured


def test_wikitext_perplexity_context_names_endpoints_and_settings(im, tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("a b c\n")
    a = sweep_perplexity.wikitext_perplexity(im, f, window=64, stride=32)
    b = sweep_perplexity.wikitext_perplexity(im, f, window=32, stride=16)
    assert a.context != b.context and "window" in a.context
    moved = tmp_path / "elsewhere" / "w.txt"
    moved.parent.mkdir()
    moved.write_text("a b c\n")
    assert (
        sweep_perplexity.wikitext_perplexity(im, moved, window=64, stride=32).context == a.context
    )  # content, not path
    moved.write_text("a b d\n")
    assert sweep_perplexity.wikitext_perplexity(im, moved, window=64, stride=32).context != a.context


def test_bad_input_fails_before_any_work(im, tmp_path, monkeypatch):
    calls = count_generate(im, monkeypatch)
    with pytest.raises(ConfigError, match=r"\.parquet or \.csv"):
        sweep.run_sweep(im, ["sentiment=1"], PROMPTS, scorers(), out=tmp_path / "x.txt")
    with pytest.raises(WeightsError, match="unknown attribute 'humor'"):
        sweep.run_sweep(im, ["humor=1"], PROMPTS, scorers())
    with pytest.raises(ConfigError, match="n_samples"):
        sweep.run_sweep(im, ["sentiment=1"], PROMPTS, scorers(), n_samples=0)
    with pytest.raises(clm.DataError):
        sweep.run_sweep(im, ["sentiment=1"], tmp_path / "missing.jsonl", scorers())
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_prompts_file_is_read_with_read_texts(im, tmp_path):
    f = tmp_path / "prompts.jsonl"
    f.write_text('{"prompt": "Hello there"}\n{"prompt": "Second one"}\n{"prompt": "Third"}\n')
    t = sweep.run_sweep(im, ["base"], f, scorers(), n_prompts=2, max_new_tokens=2, fluency=None, progress=False)
    assert t.prompt.tolist() == ["Hello there", "Second one"]


def test_head_scorers_share_one_embedding_pass_per_batch():
    from clm.eval.scoring import Head, HeadScorer

    class Encoder:  # a stand-in for clm.encoders: 2 features per text
        id, calls = "fake", 0

        def embed(self, texts, batch_size=64, progress=None):
            Encoder.calls += 1
            return np.array([[len(t), t.count("a")] for t in texts], dtype=float)

        def truncated(self, texts):
            return np.zeros(len(texts), dtype=bool)

    enc = Encoder()
    heads = {
        "sentiment": HeadScorer(
            "sentiment", "negative", "positive", Head([(np.array([[0.1], [1.0]]), np.array([-1.0]))]), enc
        ),
        "formality": HeadScorer(
            "formality", "informal", "formal", Head([(np.array([[-0.2], [0.5]]), np.array([0.3]))]), enc
        ),
    }
    texts = ["a cat", "banana", "", "xyz"]
    scores = sweep_scoring.score_all(texts, {**heads, "humor": Frac("xyz")})
    assert list(scores) == ["score_sentiment", "score_formality", "score_humor"] and Encoder.calls == 1
    for name, sc in heads.items():
        np.testing.assert_allclose(scores[f"score_{name}"], sc.score(texts))
    assert np.isnan(scores["score_sentiment"][2])  # an empty continuation has no score


def test_wikitext_perplexity_callable_changes_with_the_weights(im, tmp_path):
    f = tmp_path / "wiki.txt"
    f.write_text("The quick brown fox jumps over the lazy dog.\n" * 8)
    ppl = sweep_perplexity.wikitext_perplexity(im, f, max_tokens=96, window=64, stride=32)
    base, pos = ppl(clm.Weights.base()), ppl(clm.Weights({"sentiment": 1.0}))
    assert 1 < base and 1 < pos and base != pos
    assert base == ppl(clm.Weights.base())


# ---------------------------------------------------------------------- reruns and keys
class Keyed:
    """A fake scorer with a fingerprint (its scores are kept while that holds): text length mod ``mod``."""

    def __init__(self, mod: int, fingerprint: str):
        self.mod, self.fingerprint, self.calls = mod, fingerprint, 0

    def score(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.array([len(t) % self.mod / self.mod for t in texts])


def wiki_ppl():
    def ppl(w):
        return 10.0 + sum(w.alpha.values())

    ppl.context = "fake-wikitext"
    return ppl


@pytest.mark.parametrize("with_ppl", [False, True], ids=["no-perplexity", "perplexity"])
@pytest.mark.parametrize("fluency", [None, "base"], ids=["no-fluency", "fluency"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_three_reruns_give_byte_identical_tables(im, tmp_path, with_ppl, fluency, suffix):
    """A rerun reuses its own output (the second rerun used to fail with a MergeError on
    wikitext_ppl) and writes the same bytes, with and without perplexity= and fluency."""
    settings = designs.single_attribute("sentiment", [0.0, 1.0]) + designs.custom(["base"])
    out = tmp_path / f"t{suffix}"
    kw = dict(n_samples=2, max_new_tokens=4, batch_size=5, fluency=fluency, progress=False)
    runs = []
    for _ in range(3):
        t = sweep.run_sweep(
            im, settings, PROMPTS[:2], scorers(), out=out, perplexity=wiki_ppl() if with_ppl else None, **kw
        )
        ppl = out.with_name(f"t_perplexity{suffix}")
        runs.append((out.read_bytes(), ppl.read_bytes() if with_ppl else b"", t))
    assert runs[0][:2] == runs[1][:2] == runs[2][:2]
    t = runs[-1][2]
    assert ("wikitext_ppl" in t.columns) == with_ppl and ("ppl" in t.columns) == (fluency is not None)
    assert not [c for c in t.columns if c.endswith(("_x", "_y"))]
    if with_ppl:
        assert t.groupby("setting").wikitext_ppl.first().to_dict() == {
            "base": 10.0,
            "sentiment=0": 10.0,
            "sentiment=1": 11.0,
        }


def test_a_rerun_of_a_table_with_the_old_merge_columns_repairs_it(im, tmp_path, monkeypatch):
    out = tmp_path / "t.parquet"
    kw = dict(max_new_tokens=3, fluency=None, progress=False, perplexity=wiki_ppl())
    t = sweep.run_sweep(im, ["sentiment=1"], PROMPTS[:2], scorers(), out=out, **kw)
    broken = t.rename(columns={"wikitext_ppl": "wikitext_ppl_x"}).assign(wikitext_ppl_y=t.wikitext_ppl)
    tables.write_table(broken, out)  # what the old merge left behind
    calls = count_generate(im, monkeypatch)
    again = sweep.run_sweep(im, ["sentiment=1"], PROMPTS[:2], scorers(), out=out, **kw)
    assert calls == [] and list(again.columns) == list(t.columns)
    pd.testing.assert_frame_equal(again, t)


def test_new_scorers_rescore_kept_generations_without_regenerating(im, tmp_path, monkeypatch):
    settings = designs.single_attribute("sentiment", [0.0, 1.0])
    out = tmp_path / "t.parquet"
    kw = dict(n_samples=2, max_new_tokens=5, batch_size=3, fluency=None, progress=False, out=out)
    first = sweep.run_sweep(im, settings, PROMPTS, {"sentiment": Keyed(3, "heads-v1")}, **kw)
    calls = count_generate(im, monkeypatch)
    same = Keyed(5, "heads-v1")  # the same fingerprint: its stored scores are kept, it is never called
    kept = sweep.run_sweep(im, settings, PROMPTS, {"sentiment": same}, **kw)
    assert calls == [] and same.calls == 0
    pd.testing.assert_frame_equal(kept, first)
    new = Keyed(5, "heads-v2")  # retrained: every kept continuation is re-scored
    rescored = sweep.run_sweep(im, settings, PROMPTS, {"sentiment": new}, **kw)
    assert calls == [] and new.calls == len(plan_chunks_of(first))
    assert rescored.continuation.tolist() == first.continuation.tolist()
    assert rescored.score_sentiment.tolist() == Keyed(5, "").score(first.continuation.tolist()).tolist()
    assert rescored.score_sentiment.tolist() != first.score_sentiment.tolist()
    assert set(rescored.scored_by) == {'{"sentiment": "heads-v2"}'}


def plan_chunks_of(table) -> list:
    return list(dict.fromkeys(table.chunk))


def test_fluency_turned_on_is_measured_for_kept_rows(im, tmp_path, monkeypatch):
    settings = designs.single_attribute("sentiment", [0.0, 1.0])
    kw = dict(n_samples=2, max_new_tokens=5, batch_size=4, progress=False)
    fresh = sweep.run_sweep(im, settings, PROMPTS, scorers(), fluency="base", **kw)  # in memory
    out = tmp_path / "t.parquet"
    sweep.run_sweep(im, settings, PROMPTS, scorers(), fluency=None, out=out, **kw)
    calls = count_generate(im, monkeypatch)
    t = sweep.run_sweep(im, settings, PROMPTS, scorers(), fluency="base", out=out, **kw)
    assert calls == [] and "ppl" in t.columns
    np.testing.assert_array_equal(t.ppl.to_numpy(), fresh.ppl.to_numpy())  # from the stored token ids
    # rows stored without token ids (older tables) are re-tokenized
    legacy = tables.read_table(out).drop(columns=["token_ids", "ppl", "ppl_by"])
    tables.write_table(legacy, out)
    t2 = sweep.run_sweep(im, settings, PROMPTS, scorers(), fluency="base", out=out, **kw)
    assert calls == [] and np.isfinite(t2.ppl[t2.n_tokens > 0]).all()


def test_retraining_one_attribute_keeps_and_does_not_reseed_the_others(
    im, pico_dir, endpoints_dir, adapters, tmp_path, monkeypatch
):
    import shutil

    settings = designs.custom(["base", "sentiment=1", "formality=0", "formality=1"])
    kw = dict(max_new_tokens=5, batch_size=3, fluency=None, progress=False)  # 4 chunks: 3 prompts each
    out = tmp_path / "t.parquet"
    before = sweep.run_sweep(im, settings, PROMPTS, scorers(), out=out, **kw)
    ends_dir = tmp_path / "ends"
    shutil.copytree(endpoints_dir, ends_dir)
    ends = clm.Endpoints.load(ends_dir)
    ends.add("sentiment", adapters["formality/low"], adapters["formality/high"], "negative", "positive", replace=True)
    im2 = clm.InterpolatedModel(*clm.load_base(str(pico_dir)), ends)  # a fresh base: im wraps its own
    calls = count_generate(im2, monkeypatch)
    after = sweep.run_sweep(im2, settings, PROMPTS, scorers(), out=out, **kw)
    assert len(calls) == 1 and [g.weights for g in calls[0]] == [clm.Weights({"sentiment": 1.0})] * 3
    same = after.setting != "sentiment=1"
    pd.testing.assert_frame_equal(after[same], before[same])  # kept: not regenerated, not re-seeded
    assert (after.chunk[~same] != before.chunk[~same]).all()
    # a new sweep from scratch on the new endpoints draws the same texts for the kept settings
    fresh = sweep.run_sweep(im2, settings, PROMPTS, scorers(), **kw)
    assert fresh.continuation.tolist() == after.continuation.tolist()


def test_scorer_fingerprints_name_head_weights_and_encoder():
    from clm.eval.scoring import Head, HeadScorer
    from clm.experiments.keys import scorer_fingerprint

    class Enc:
        def __init__(self, fp, max_length=64):
            self.fingerprint, self.max_length = fp, max_length

    head = Head([(np.array([[0.1], [1.0]]), np.array([-1.0]))], temperature=1.5)
    fp = scorer_fingerprint(HeadScorer("sentiment", "negative", "positive", head, Enc("e1")))
    assert fp == scorer_fingerprint(HeadScorer("sentiment", "negative", "positive", head, Enc("e1")))
    other_head = Head([(np.array([[0.1], [1.1]]), np.array([-1.0]))], temperature=1.5)
    other_temp = Head(head.layers, temperature=2.0)
    assert len({
        fp,
        scorer_fingerprint(HeadScorer("sentiment", "negative", "positive", other_head, Enc("e1"))),
        scorer_fingerprint(HeadScorer("sentiment", "negative", "positive", other_temp, Enc("e1"))),
        scorer_fingerprint(HeadScorer("sentiment", "negative", "positive", head, Enc("e2"))),
        scorer_fingerprint(HeadScorer("sentiment", "negative", "positive", head, Enc("e1", 128))),
    }) == 5  # fmt: skip
    assert scorer_fingerprint(lambda texts: texts) is None and scorer_fingerprint(Frac("a")) is None


def test_shipped_tables_are_keyed_for_the_shipped_endpoints_and_scorers():
    """The book reuses every shipped row at the cpu preset: each chunk key recomputes from its rows
    and the shipped endpoints it uses, each score names the shipped head that made it, and each
    perplexity its context."""
    import json

    from clm.core.weights import Weights
    from clm.eval.scoring import Head
    from clm.experiments.keys import chunk_key, head_fingerprint, used_attributes
    from clm.paths import ASSETS

    ends = clm.Endpoints.load(ASSETS / "endpoints" / "smollm2-135m")
    heads = {}
    for a in ends.attributes:
        cfg = json.loads((ASSETS / "scorers" / f"{a}.json").read_text())
        head = Head.load(ASSETS / "scorers" / f"{a}.safetensors")
        heads[a] = head_fingerprint(head, a, cfg["low"], cfg["high"], cfg["encoder_fingerprint"], cfg["max_length"])
    gen = dict(max_new_tokens=32, do_sample=True, temperature=1.0, top_p=1.0, top_k=0)  # the cpu preset
    files = sorted((ASSETS / "tables" / "smollm2-135m").glob("*.parquet"))
    assert len(files) == 15
    for f in files:
        t = tables.read_table(f)
        if f.stem.endswith("_perplexity"):
            for w, ctx in zip(t.weights, t.context):
                assert json.loads(ctx)["endpoints"] == ends.digest(used_attributes(Weights.from_json(w))), f.name
            continue
        assert set(t.scored_by) == {json.dumps(heads)}, f.name
        for key, g in t.groupby("chunk", sort=False):
            used = sorted({a for w in g.weights for a in used_attributes(Weights.from_json(w))})
            rows = zip(g.weights, g.prompt, g.prompt_index.astype(int), g["sample"].astype(int), g.seed.astype(int))
            assert chunk_key(gen, ends.digest(used), [list(map(_py, r)) for r in rows]) == key, f.name


def _py(x):
    return x.item() if hasattr(x, "item") else x
