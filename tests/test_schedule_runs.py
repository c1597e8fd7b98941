"""clm.experiments.schedule_runs on pico: schedules against fixed settings, scored by part.

Exact identities: a constant schedule's rows are the fixed setting's (same texts, same tokens) under
the same seed; the windows tile the continuation and the halves split it; every text is the
decoding of its token slice; a rerun generates nothing and gives the same table; a changed
schedule regenerates only its label; new scorers re-score without regenerating.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import clm
from clm.errors import ConfigError, WeightsError
from clm.experiments.schedule_runs import PARTS, parts_of, schedule_sweep

PROMPTS = ["Once upon a time", "The cat"]
N = 9  # odd: the halves are 4 and 5 tokens


class Vowels:
    """A fake scorer with a fingerprint: the share of vowels; counts its calls."""

    def __init__(self, fingerprint: str = "vowels-v1"):
        self.fingerprint, self.calls = fingerprint, 0

    def score(self, texts):
        self.calls += 1
        return np.array([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts])


def count_generate(im, monkeypatch) -> list:
    calls, real = [], im.generate

    def wrapped(*args, **kwargs):
        calls.append(len(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(im, "generate", wrapped)
    return calls


def arc(end: float = 1.0) -> clm.Schedule:
    return clm.Schedule({"sentiment": [(0, 0.0), (N - 1, end)]})


def schedules(end: float = 1.0) -> dict:
    w = clm.Weights({"sentiment": 0.3, "formality": 0.8})
    return {"arc": arc(end), "fixed": w, "constant": clm.Schedule.constant(w)}


def run(im, out=None, scorers=None, **kw):
    kw = {"max_new_tokens": N, "window": 4, "n_samples": 2, "batch_size": 3, "progress": False, **kw}
    return schedule_sweep(
        im, kw.pop("sched", None) or schedules(), PROMPTS, scorers or {"sentiment": Vowels()}, out=out, **kw
    )


def test_a_constant_schedule_gives_the_fixed_settings_rows(im):
    t = run(im)
    cols = [c for c in t.columns if c not in ("label", "schedule")]
    fixed, const = (t[t.label == x][cols].reset_index(drop=True) for x in ("fixed", "constant"))
    pd.testing.assert_frame_equal(fixed, const)
    w = clm.Weights({"sentiment": 0.3, "formality": 0.8})
    assert t[t.label == "constant"].schedule.unique().tolist() == [str(clm.Schedule.constant(w))]
    assert t[t.label == "fixed"].schedule.unique().tolist() == [str(w)] != [str(clm.Schedule.constant(w))]
    # and the arc is not the fixed setting (the adapters are non-zero)
    whole = t[t.part == "all"]
    assert whole[whole.label == "arc"].text.tolist() != whole[whole.label == "fixed"].text.tolist()


def test_parts_tile_the_continuation_and_texts_decode_their_tokens(im):
    t = run(im)
    tok = im.tokenizer
    assert list(t.columns[:10]) == ["label", "schedule", "prompt_index", "prompt", "sample", "seed", "part",
                                    "start", "end", "text"]  # fmt: skip
    assert "score_sentiment" in t.columns and set(t.part) == set(PARTS)
    keys = ["label", "prompt_index", "sample", "seed"]
    assert len(t[t.part == "all"]) == 3 * len(PROMPTS) * 2
    for _, g in t.groupby(keys):
        ids = {p: [json.loads(x) for x in g[g.part == p].token_ids] for p in PARTS}
        whole = ids["all"][0]
        n = len(whole)
        rows = g.set_index("part")
        assert (rows.loc["all", "start"], rows.loc["all", "end"]) == (0, n)
        assert ids["first half"][0] + ids["second half"][0] == whole and len(ids["first half"][0]) == n // 2
        win = g[g.part == "window"]
        assert win.start.tolist() == list(range(0, n, 4)) and win.end.tolist() == [min(s + 4, n) for s in win.start]
        assert sum(ids["window"], []) == whole
        for text, tid in zip(g.text, g.token_ids):
            assert text == tok.decode(json.loads(tid), skip_special_tokens=True)
    full = t[t.part == "all"].set_index(keys)
    n_tokens = full.end
    assert (n_tokens <= N).all() and (n_tokens[~full.finished] == N).all()


def test_the_whole_continuation_is_im_generate_at_the_schedule(im):
    """Each row is what im.generate gives at its setting and the batch's seed (one batch per label)."""
    from clm.experiments import schedule_runs as sr

    t = run(im, n_samples=1, batch_size=8)
    gen_kw = dict(max_new_tokens=N, do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
    sets = schedules()
    chunks = sr._chunks(list(sets), sets, PROMPTS, 1, [0], 8, gen_kw, im)
    for c in chunks:
        gens = im.generate(PROMPTS, weights=sets[c["label"]], seed=c["seed"], **gen_kw)
        mine = t[(t.label == c["label"]) & (t.part == "all")]
        assert mine.text.tolist() == [g.text for g in gens]
        assert mine.chunk.unique().tolist() == [c["key"]]


def test_rerun_generates_nothing_and_a_changed_schedule_only_its_label(im, tmp_path, monkeypatch):
    out = tmp_path / "sched.parquet"
    calls = count_generate(im, monkeypatch)
    first = run(im, out)
    # 4 rows per label in batches of 3; the constant schedule shares the fixed setting's batches
    assert calls == [3, 1, 3, 1]
    assert out.is_file() and not (tmp_path / "sched.parquet.parts").exists()
    calls.clear()
    again = run(im, out)
    assert calls == []
    pd.testing.assert_frame_equal(first, again)
    changed = run(im, out, sched=schedules(end=0.5))
    assert sum(calls) == 4  # the arc's rows only
    same = ["fixed", "constant"]
    pd.testing.assert_frame_equal(
        first[first.label.isin(same)].reset_index(drop=True), changed[changed.label.isin(same)].reset_index(drop=True)
    )
    assert changed[changed.label == "arc"].schedule.unique().tolist() == [str(arc(0.5))]
    # renaming a label regenerates nothing
    calls.clear()
    renamed = run(im, out, sched={("ramp" if k == "arc" else k): v for k, v in schedules(0.5).items()})
    assert calls == [] and renamed.drop(columns="label").equals(changed.drop(columns="label"))


def test_parts_are_written_as_batches_finish_and_resume(im, tmp_path, monkeypatch):
    """A crash after the first label's batches leaves their parts; the rerun generates the rest only."""
    out = tmp_path / "s.csv"
    calls = count_generate(im, monkeypatch)
    real = im.generate

    def crash_on_fixed(*args, **kwargs):
        if isinstance(kwargs.get("weights"), clm.Weights):
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(im, "generate", crash_on_fixed)
    with pytest.raises(RuntimeError, match="killed"):
        run(im, out)
    parts = sorted((tmp_path / "s.csv.parts").glob("*.parquet"))
    assert len(parts) == 2 and not out.exists()  # the arc's two batches
    monkeypatch.setattr(im, "generate", real)
    calls = count_generate(im, monkeypatch)
    resumed = run(im, out)
    assert calls == [3, 1]  # the fixed setting's, which the constant schedule shares
    fresh = run(im, None)
    pd.testing.assert_frame_equal(resumed.drop(columns="schedule"), fresh.drop(columns="schedule"), check_dtype=False)


def test_new_scorers_and_windows_rescore_without_regenerating(im, tmp_path, monkeypatch):
    out = tmp_path / "s.parquet"
    first = run(im, out)
    calls = count_generate(im, monkeypatch)
    same = Vowels()
    run(im, out, scorers={"sentiment": same})
    assert same.calls == 0 and calls == []  # the fingerprint holds: the stored scores are kept
    other = Vowels("vowels-v2")
    t = run(im, out, scorers={"sentiment": same, "formality": other}, window=3)
    assert calls == [] and other.calls > 0
    win = t[t.part == "window"]
    assert (win.end - win.start).max() == 3 and np.allclose(t.score_formality, t.score_sentiment)
    whole = first[first.part == "all"].text.tolist()
    assert t[t.part == "all"].text.tolist() == whole


def test_parts_of_and_bad_input():
    assert parts_of([1, 2, 3], 2) == [("all", 0, 3), ("first half", 0, 1), ("second half", 1, 3),
                                      ("window", 0, 2), ("window", 2, 3)]  # fmt: skip
    assert parts_of([], 4) == [("all", 0, 0), ("first half", 0, 0), ("second half", 0, 0)]


@pytest.mark.parametrize(
    "kw,err,needle",
    [
        ({"window": 0}, ConfigError, "window must be an integer >= 1, got 0"),
        ({"sched": {"": arc()}}, ConfigError, "labels must be non-empty"),
        ({"sched": {"a": 3}}, ConfigError, "schedules['a'] must be a Schedule or Weights"),
        ({"sched": {"a": clm.Weights({"humor": 1.0})}}, Exception, "humor"),
        ({"sched": {"a": "sentiment=0:0>4:3"}}, WeightsError, "sentiment"),
        ({"seeds": []}, ConfigError, "seeds must be a non-empty list"),
    ],
)
def test_bad_input_is_one_line_before_any_work(im, monkeypatch, kw, err, needle):
    calls = count_generate(im, monkeypatch)
    with pytest.raises(err) as info:
        run(im, **kw)
    assert needle in str(info.value) and "\n" not in str(info.value) and calls == []
