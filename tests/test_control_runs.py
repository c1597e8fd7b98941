"""The control chapter's experiment plumbing (clm.experiments.control_runs, report_control, and
calibration from a sweep table), on the synthetic tables of tests/test_control.py whose truth is
known exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.experiments import control_runs as runs
from clm.experiments.claims import Thresholds
from clm.experiments.control import Controller
from clm.experiments.control_calibrate import design
from clm.experiments.designs import Setting
from clm.experiments.report_control import NOT_MEASURED, control_line, control_rows
from tests.test_control import ATTRS, N_PROMPTS, OFFSETS, rows, synthetic_tables, truth


@pytest.fixture(scope="module")
def ctl() -> Controller:
    return Controller.fit(synthetic_tables(), endpoints="d" * 40)


def table_for(plans, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame([r for p in runs.plan_settings(plans, "target") for r in rows(p, truth(p.weights) + shift)])


def test_fit_designs_cover_base_singles_and_the_pair():
    d = runs.fit_designs(["sentiment", "formality", "humor"])
    assert list(d) == ["fit_base", "fit_single_sentiment", "fit_single_formality", "fit_single_humor", "fit_pair"]
    assert [s.weights.alpha["humor"] for s in d["fit_single_humor"]] == list(runs.FIT_ALPHAS)
    pair = [s.weights for s in d["fit_pair"]]
    assert len(pair) == 9 and all(w.lam_resolved() == {"sentiment": 0.5, "formality": 0.5} for w in pair)
    assert sorted({(w.alpha["sentiment"], w.alpha["formality"]) for w in pair}) == [
        (a, b) for a in runs.PAIR_ALPHAS for b in runs.PAIR_ALPHAS
    ]
    assert "fit_pair" not in runs.fit_designs(["sentiment", "humor"])  # formality missing: no pair grid


def test_spread_and_choose():
    assert runs.spread(0.2, 0.6, 5) == [0.24, 0.32, 0.4, 0.48, 0.56]  # the middle 80 %
    assert runs.spread(0.2, 0.6, 1) == [0.4]
    with pytest.raises(ConfigError, match="got 0"):
        runs.spread(0.0, 1.0, 0)
    assert runs.choose({"a": 0.3, "b": 0.25, "c": 0.1}, 0.25) == (["a", "b"], True)
    assert runs.choose({"a": 0.1, "b": -0.2}, 0.25) == (["b"], False)  # none reaches: the widest, flagged


def test_single_targets_are_met_and_achieved_measures_them(ctl):
    plans = runs.single_plans(ctl, ATTRS, 4, max_ppl_ratio=1.2, n_eval=N_PROMPTS)
    assert len(plans) == 8 and all(not p.clipped and p.error < 1e-3 for p in plans)
    for a in ATTRS:
        lo, hi = ctl.reachable(a, max_ppl_ratio=1.2)
        asked = [p.targets[a] for p in plans if a in p.targets]
        assert asked == runs.spread(lo, hi, 4) and all(lo <= t <= hi for t in asked)
    got = runs.achieved(table_for(plans, shift=0.01), plans)
    want = np.array([truth(p.weights)[ATTRS.index(a)] + 0.01 for p in plans for a in p.targets])
    assert np.allclose(got.achieved, want, atol=1e-12)  # per-prompt offsets average to zero
    assert np.allclose(got.error, want - got.requested, atol=1e-12)
    assert got.covered.tolist() == [bool(lo <= x <= hi) for lo, x, hi in zip(got.lo, got.achieved, got.hi)]
    s = runs.summary(got)
    assert s.targets.tolist() == [4, 4] and np.allclose(s.mae, got.error.abs().groupby(got.attribute).mean()[ATTRS])


def test_achieved_refuses_a_plan_without_rows(ctl):
    plans = runs.single_plans(ctl, ["sentiment"], 2, None, N_PROMPTS)
    with pytest.raises(ConfigError, match="no rows for plan 1"):
        runs.achieved(table_for(plans[:1]), plans)


def test_joint_beats_naive_on_the_synthetic_truth(ctl):
    both = runs.joint_plans(ctl, ATTRS, max_ppl_ratio=None, n_eval=N_PROMPTS)
    assert [p.method for p in both] == ["joint"] * 9 + ["naive"] * 9
    assert not any(p.clipped for p in both[:9])  # the grid is shrunk until every joint target is reachable
    rows_ = runs.achieved(table_for(both), both)
    assert np.allclose(rows_.predicted, rows_.achieved, atol=1e-12)  # the model is the truth
    got = runs.summary(rows_, by=["method"]).set_index("method")
    assert got.mae["joint"] < 1e-3 < got.mae["naive"]  # so the corrected solve is exact, the naive one is not


def test_calibration_from_a_table_recovers_a_known_shift(ctl):
    settings = [w for _, w in design(ATTRS, (0.0, 0.5, 1.0))]
    table = pd.DataFrame([r for w in settings for r in rows(Setting(w), truth(w) + np.array([0.04, -0.02]))])
    recal = ctl.calibrate(None, [f"p{i}" for i in range(N_PROMPTS)], {a: None for a in ATTRS}, table=table)
    assert recal.calibration["shift"] == pytest.approx({"sentiment": 0.04, "formality": -0.02}, abs=1e-9)
    assert recal.calibration["generations"] == N_PROMPTS * (1 + 2 * 3)
    p0, p1 = ctl.predict(Weights({"sentiment": 0.5}))[0], recal.predict(Weights({"sentiment": 0.5}))[0]
    assert p1["sentiment"] - p0["sentiment"] == pytest.approx(0.04, abs=1e-9)
    with pytest.raises(ConfigError, match="lacks setting"):
        ctl.calibrate(None, ["p0", "p1"], {a: None for a in ATTRS}, table=table[table.weights != settings[-1].to_json()])


def test_conclusions_rows_hold_at_the_bar_and_say_not_measured():
    rec = {"07_control": {
        "single": {"sentiment": {"mae": 0.05}, "formality": {"mae": 0.0501}}, "single_mae": 0.05005,
        "joint": {"joint": 0.03, "naive": 0.03}, "recalibration": {"before": 0.09, "after": 0.05, "generations": 280,
                                                                     "prompts": 20}}}  # fmt: skip
    table, per = control_rows(rec, Thresholds())
    assert [v.holds for v in per] == [True, False]  # exactly at the bar holds; just above fails
    assert table.holds.tolist() == ["no", "no", "yes"]  # one attribute misses; a tie is no win; after = bar
    assert "0.090 before, 0.050 after (280 generations)" in table.loc["prompts of another kind", "our finding"]
    empty, _ = control_rows({}, Thresholds())
    assert set(empty.holds) == {NOT_MEASURED} and control_line(empty).endswith(f"{NOT_MEASURED}.")
    rec["07_control"]["single"]["formality"]["mae"] = 0.04
    assert control_rows(rec, Thresholds(max_target_error=0.045))[0].holds.iloc[0] == "no"  # sentiment 0.05 > 0.045
