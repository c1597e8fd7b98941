"""Chapter 8 (interpolation against the alternatives) at preset tiny, in the session's pipeline run
(``book_run``: chapters 2-4 put pico endpoints, scorers and chapter 4's tables in the run dir).

The numbers are noise at tiny; the tests check that every method ran on every attribute it should,
that the dev choices were recorded, and that a second run of the chapter's work generates nothing
and rewrites no table (every batch, perplexity and mixture comparison is found by its key)."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

pytestmark = pytest.mark.notebooks

METHODS = {"interpolation", "prompting", "steering", "logit-linear", "logit-product", "mixture"}


def test_every_method_ran_and_the_chapter_recorded_its_reach(book_run):
    run = book_run.cfg.run_dir
    rec = json.loads((run / "metrics" / "08_alternatives.json").read_text())
    assert set(rec["reach"]) == {"sentiment", "formality"}  # None: every attribute of tiny's endpoints
    for a, per in rec["reach"].items():
        assert set(per) == METHODS, a
        assert all(math.isfinite(v) and v >= 0 for v in per.values())
    assert rec["budget"] == 1.5 and set(rec["wording"]) == {"sentiment", "formality"}
    dev = json.loads((run / "tables" / "compare" / "dev_choices.json").read_text())
    assert dev["layer"] == rec["layer"] and dev["n_dev"] == 3  # tiny: n_dev = n_prompts
    assert all(w["chosen"] in w["candidates"] for w in dev["wording"].values())
    assert set(rec["mixture"]) == {"sentiment", "formality"}
    for per in rec["mixture"].values():
        assert set(per) == {"0.25", "0.5", "0.75"} and all(0 < v["ratio"] < math.inf for v in per.values())


def test_a_second_run_generates_nothing_and_rewrites_no_table(book_run, monkeypatch):
    import clm
    from clm.book.chapters import chapter
    from clm.book.params import find_scorers, table_path
    from clm.eval.scoring import load_scorers
    from clm.experiments import compare_runs
    from clm.methods.decode import LoopMethod

    run = book_run.cfg.run_dir
    tables = sorted(p for p in (run / "tables" / "compare").rglob("*") if p.is_file())  # the vectors too
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tables}
    P = chapter("08_alternatives", preset="tiny", run_dir=str(run))
    base, tok = clm.load_base(P.model)
    im = clm.InterpolatedModel(base, tok, P.ends)
    generated = []
    monkeypatch.setattr(LoopMethod, "generate_batch", lambda self, *a, **k: generated.append(self.name))
    monkeypatch.setattr(clm.InterpolatedModel, "generate", lambda self, *a, **k: generated.append("im"))
    import clm.methods.steering as steering

    monkeypatch.setattr(steering, "mean_difference", lambda *a, **k: generated.append("steering vector"))
    res = compare_runs.run_all(P, im, load_scorers(path=find_scorers(P)), lambda n: table_path(P, "compare/" + n, P.ends), lambda n: table_path(P, n, P.ends),
                               log=lambda _: None)  # fmt: skip
    assert generated == []
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tables} == before
    assert set(res["mixture"]) == {"sentiment", "formality"}  # from the stored comparison, no adapter loaded
