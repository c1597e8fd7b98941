"""The controller (clm.experiments.control): fit on tidy sweep tables, solve for target scores.

Synthetic tables follow the controller's own model exactly (linear single-attribute curves, a
λ-linear mix with known pairwise offsets, per-prompt noise that averages to zero), so the fit and
the solve must recover the truth to rounding; the shipped tables and pico check the plumbing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import clm
from clm.core.weights import Weights
from clm.experiments.control import Controller, TargetError, shipped_controller
from clm.experiments.designs import Setting, setting_columns

ATTRS = ["sentiment", "formality"]
BASE = np.array([0.5, 0.4])
MIX = np.array([0.02, -0.03])
ALPHAS = [-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
N_PROMPTS = 6
OFFSETS = np.array([0.05, -0.05, 0.02, -0.02, 0.0, 0.0])  # per prompt; mean 0


def curve(attr: str, a: float) -> np.ndarray:
    """True mean scores (sentiment, formality) with only ``attr`` active at α = a, λ = 1."""
    if attr == "sentiment":
        return np.array([0.3 + 0.3 * a, 0.4 + 0.1 * a])
    return np.array([0.5 - 0.05 * a, 0.25 + 0.25 * a])


def truth(w: Weights) -> np.ndarray:
    lam = w.lam_resolved()
    out = BASE.copy()
    for a, x in w.alpha.items():
        out = out + lam[a] * (curve(a, x) - BASE)
    L = np.array(list(lam.values()))
    return out + MIX * (L.sum() ** 2 - (L * L).sum())


def ppl_ratio(a: float) -> float:
    return 1.0 + 0.1 * (a - 0.5) ** 2


def rows(setting: Setting, scores: np.ndarray) -> list[dict]:
    cols = setting_columns(setting, ATTRS)
    return [
        {**cols, "seed": 0, "prompt_index": p, "prompt": f"p{p}", "sample": 0, "continuation": "x",
         "score_sentiment": scores[0] + OFFSETS[p], "score_formality": scores[1] - OFFSETS[p]}
        for p in range(N_PROMPTS)
    ]  # fmt: skip


def synthetic_tables(with_mix: bool = True) -> dict[str, pd.DataFrame]:
    base = Setting(Weights.base(), "base")
    out = {"base": pd.DataFrame(rows(base, BASE))}
    ppl = [{**setting_columns(base, ATTRS), "wikitext_ppl": 20.0, "context": "{}"}]
    for a in ATTRS:
        sets = [Setting(Weights({a: x}, extrapolate=not 0 <= x <= 1), "single", a) for x in ALPHAS]
        out[f"single_{a}"] = pd.DataFrame([r for s in sets for r in rows(s, curve(a, s.weights.alpha[a]))])
        ppl += [{**setting_columns(s, ATTRS), "wikitext_ppl": 20.0 * ppl_ratio(s.weights.alpha[a])} for s in sets]
    out["perplexity"] = pd.DataFrame(ppl)
    if with_mix:
        mixes = [Weights({"sentiment": x, "formality": y}, {"sentiment": lam, "formality": 1 - lam})
                 for x in (0.0, 1.0) for y in (0.0, 0.5, 1.0) for lam in (0.2, 0.5, 0.8)]  # fmt: skip
        out["multi"] = pd.DataFrame([r for w in mixes for r in rows(Setting(w, "multi"), truth(w))])
    return out


@pytest.fixture(scope="module")
def ctl() -> Controller:
    return Controller.fit(synthetic_tables(), endpoints="d" * 40)


def test_fit_recovers_curves_mix_and_perplexity(ctl):
    c = ctl.curve("sentiment")
    np.testing.assert_allclose(c["fit"], [0.3 + 0.3 * a for a in ALPHAS], atol=1e-12)
    np.testing.assert_allclose(c["ppl_ratio"], [ppl_ratio(a) for a in ALPHAS], atol=1e-12)
    assert (c["lo"] <= c["mean"] + 1e-12).all() and (c["hi"] >= c["mean"] - 1e-12).all() and (c["hi"] > c["lo"]).all()
    np.testing.assert_allclose(ctl.curve("sentiment", "formality")["fit"], [0.4 + 0.1 * a for a in ALPHAS], atol=1e-12)
    np.testing.assert_allclose(ctl.data["mix"]["coef"], MIX, atol=1e-12)
    np.testing.assert_allclose(ctl.data["mix"]["var"], 0.0, atol=1e-20)
    ent = ctl.entanglement()
    assert ent.loc["sentiment", "formality"] == pytest.approx(0.1) and ent.loc[
        "formality", "sentiment"
    ] == pytest.approx(-0.05)


def test_a_non_monotone_own_curve_is_fitted_monotone():
    tables = synthetic_tables(with_mix=False)
    df = tables["single_sentiment"]
    df.loc[df["alpha_sentiment"] == 0.5, "score_sentiment"] -= 0.2  # a dip below α = 0.25's mean
    fit = Controller.fit(tables).curve("sentiment")["fit"].to_numpy()
    assert (np.diff(fit) >= 0).all() and fit[4] == pytest.approx(fit[3])


def test_single_target_inverts_the_curve(ctl):
    plan = ctl.weights_for({"sentiment": 0.45})
    assert plan.weights == Weights({"sentiment": 0.5})
    assert plan.predicted["sentiment"] == pytest.approx(0.45, abs=1e-12)
    assert plan.predicted["formality"] == pytest.approx(0.45, abs=1e-12)  # the cross effect
    lo, hi = plan.interval["sentiment"]
    assert lo < 0.45 < hi
    assert plan.ppl_ratio == pytest.approx(ppl_ratio(0.5)) and not plan.clipped
    extrap = ctl.weights_for({"sentiment": 0.81})
    assert extrap.weights == Weights({"sentiment": 1.7}, extrapolate=True)


def test_joint_targets_are_solved_through_the_entanglement(ctl):
    true = Weights({"sentiment": 0.8, "formality": 0.3}, {"sentiment": 0.6, "formality": 0.4})
    want = dict(zip(ATTRS, truth(true)))
    fixed = ctl.weights_for(want, lam={"sentiment": 0.6, "formality": 0.4})
    assert fixed.weights.alpha["sentiment"] == pytest.approx(0.8, abs=2e-4)
    assert fixed.weights.alpha["formality"] == pytest.approx(0.3, abs=2e-4)
    auto = ctl.weights_for(want)
    assert auto.error < 1e-3 and auto.method == "joint"
    naive = ctl.weights_for(want, method="naive", clip=True)
    err = max(abs(truth(naive.weights)[k] - want[a]) for k, a in enumerate(ATTRS))
    assert err > 0.02  # solving each alone misses; the prediction says so honestly
    assert naive.predicted["sentiment"] == pytest.approx(truth(naive.weights)[0], abs=1e-9)
    for plan in (fixed, auto):  # the model's prediction is the truth at the solved setting
        np.testing.assert_allclose([plan.predicted[a] for a in ATTRS], truth(plan.weights), atol=1e-9)


def test_out_of_reach_raises_one_line_or_clips(ctl):
    with pytest.raises(TargetError) as err:
        ctl.weights_for({"sentiment": 0.95})
    msg = str(err.value)
    assert "sentiment=0.95" in msg and "reachable [0.000, 0.900]" in msg and "\n" not in msg
    with pytest.raises(TargetError, match=r"perplexity ratio <= 1.1"):
        ctl.weights_for({"sentiment": 0.85}, max_ppl_ratio=1.1)
    plan = ctl.weights_for({"sentiment": 0.95}, clip=True)
    assert (
        plan.clipped
        and "out of reach" in plan.message
        and plan.weights == Weights({"sentiment": 2.0}, extrapolate=True)
    )
    budget = ctl.weights_for({"sentiment": 0.85}, max_ppl_ratio=1.1, clip=True)
    assert budget.ppl_ratio <= 1.1 + 1e-9 and budget.clipped
    lo, hi = ctl.reachable("sentiment", max_ppl_ratio=1.1)
    assert hi == pytest.approx(budget.predicted["sentiment"], abs=1e-9) and 0.0 < lo < 0.45 < hi < 0.9
    with pytest.raises(TargetError, match="humor"):
        ctl.weights_for({"humor": 0.5})
    with pytest.raises(TargetError, match=r"sentiment=1.5"):
        ctl.weights_for({"sentiment": 1.5})


def test_untargeted_attributes_stay_near_the_reference(ctl):
    free = ctl.weights_for({"sentiment": 0.6}, hold=["formality"])
    alone = ctl.weights_for({"sentiment": 0.6})
    ref = ctl.predict(Weights.base())[0]["formality"]
    assert abs(free.predicted["formality"] - ref) < abs(alone.predicted["formality"] - ref)
    assert free.predicted["sentiment"] == pytest.approx(0.6, abs=1e-3)
    assert free.reference["formality"] == pytest.approx(BASE[1])


def test_a_controller_is_a_value(ctl, tmp_path):
    path = ctl.save(tmp_path / "ctl.json")
    back = Controller.load(path)
    assert back == ctl and back.tables_digest == ctl.tables_digest and back.endpoints == "d" * 40
    assert str(back.weights_for({"sentiment": 0.6})) == str(ctl.weights_for({"sentiment": 0.6}))
    assert json.loads(path.read_text())["tables_digest"] == ctl.tables_digest
    other = synthetic_tables()
    other["base"].loc[0, "score_sentiment"] += 0.01
    assert Controller.fit(other).tables_digest != ctl.tables_digest
    assert Controller.fit(dict(reversed(list(synthetic_tables().items())))).tables_digest == ctl.tables_digest


def test_check_refuses_other_endpoints(ctl, im):
    with pytest.raises(TargetError, match="dddddddddddd"):
        ctl.check(im)
    mine = Controller.fit(synthetic_tables(), endpoints=im.endpoints)
    mine.check(im)
    with pytest.raises(TargetError, match="no endpoints digest"):
        Controller.fit(synthetic_tables()).check(im)
    tampered = Controller({**mine.data, "endpoints": {**mine.endpoints, "sentiment": "0" * 40}})
    with pytest.raises(TargetError) as err:
        tampered.check(im)
    assert "'sentiment'" in str(err.value) and "\n" not in str(err.value)


class ConstScorer:
    def __init__(self, attribute: str, value: float):
        self.attribute, self.low, self.high, self.value = attribute, "low", "high", value

    def score(self, texts, batch_size=64, progress=None):
        return np.full(len(texts), self.value)


def test_calibrate_shifts_to_the_new_prompts_and_counts_its_cost(im):
    ctl = Controller.fit(synthetic_tables(), endpoints=im.endpoints)
    calls = []
    real = im.generate
    im.generate = lambda prompts, **kw: calls.append(len(prompts) * kw.get("num_samples", 1)) or real(prompts, **kw)
    scorers = {"sentiment": ConstScorer("sentiment", 0.9), "formality": ConstScorer("formality", 0.1)}
    new = ctl.calibrate(im, ["a b", "c d", "e f"], scorers, alphas=(0.0, 1.0), max_new_tokens=2)
    assert new.calibration["generations"] == sum(calls) == 3 * (1 + 2 * 2)
    settings = [Weights.base()] + [Weights({a: x}) for a in ATTRS for x in (0.0, 1.0)]
    for a, c in [("sentiment", 0.9), ("formality", 0.1)]:
        before = np.mean([ctl.predict(w)[0][a] for w in settings])
        after = np.mean([new.predict(w)[0][a] for w in settings])
        assert after == pytest.approx(c, abs=1e-12) and new.calibration["shift"][a] == pytest.approx(c - before)
    assert ctl.calibration is None and new != ctl  # the old controller is unchanged
    calls.clear()
    cheap = ctl.calibrate(im, ["a b", "c d", "e f"], scorers, budget=10, alphas=(0.0, 1.0), max_new_tokens=2)
    assert cheap.calibration["generations"] == sum(calls) == 10 and cheap.calibration["prompts"] == 2
    with pytest.raises(clm.ConfigError, match="budget=5"):
        ctl.calibrate(im, ["a b", "c d"], scorers, budget=5, alphas=(0.0, 1.0))


def test_shipped_controller_fits_the_shipped_endpoints():
    ctl = shipped_controller("smollm2-135m")
    assert shipped_controller("smollm2-135m") == ctl  # the cached JSON
    assert set(ctl.attributes) == set(clm.core.attributes.ATTRIBUTES)
    lo, hi = ctl.reachable("sentiment", max_ppl_ratio=1.3)
    plan = ctl.weights_for({"sentiment": (lo + hi) / 2}, max_ppl_ratio=1.3)
    assert plan.predicted["sentiment"] == pytest.approx((lo + hi) / 2, abs=1e-3) and plan.ppl_ratio <= 1.3 + 1e-9
    from clm.core.endpoints import Endpoints
    from clm.paths import shipped_dir

    ctl.check(Endpoints.load(shipped_dir("endpoints", "smollm2-135m")))
