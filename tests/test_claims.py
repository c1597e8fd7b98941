"""clm.experiments.claims (and the tables of clm.experiments.report) on small synthetic numbers
whose verdicts are computed by hand, boundaries included: a value exactly at its bar passes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clm.core.attributes import ATTRIBUTES
from clm.errors import ConfigError
from clm.experiments import analysis, claims, report
from clm.experiments.claims import DEFAULT, Thresholds

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]


def sweep(means_by_attribute: dict[str, list[float]], noise: float = 0.02) -> pd.DataFrame:
    """Single-attribute sweeps over ALPHAS: 4 samples per α at mean ± noise (the mean is exact)."""
    rows = []
    for attr, means in means_by_attribute.items():
        for a, m in zip(ALPHAS, means):
            for k, d in enumerate([-noise, noise, -2 * noise, 2 * noise]):
                rows.append({"target": attr, f"alpha_{attr}": a, "sample": k, f"score_{attr}": m + d})
    return pd.DataFrame(rows)


def holds(table: pd.DataFrame, claim: str, attribute: str):
    (h,) = table.holds[(table.claim == claim) & (table.attribute == attribute)]
    return h


def test_the_defaults_are_the_books_bars_and_scorer_bars_come_from_the_attributes():
    t = Thresholds()
    assert (t.min_spearman, t.min_range, t.max_ppl_ratio, t.entangled_at, t.min_passing) == (0.9, 0.25, 1.3, 0.5, 4)
    assert t.band == (-1.0, 2.0) and t.interval == (0.0, 1.0)
    assert dict(t.scorer_bar) == {a: 0.95 if a == "simplicity" else 0.80 for a in ATTRIBUTES}
    assert t.bar("simplicity") == 0.95 and t.bar("humor") == 0.80 == ATTRIBUTES["humor"].scorer_bar
    with pytest.raises(TypeError):
        t.scorer_bar["humor"] = 0.1  # frozen, like the rest of the value
    with pytest.raises(ConfigError, match="no scorer bar for 'tone'"):
        t.bar("tone")
    assert Thresholds(scorer_bar={"tone": 0.7}).bar("tone") == 0.7


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_spearman": -0.1}, "min_spearman must be a positive number, got -0.1"),
        ({"max_ppl_ratio": float("nan")}, "max_ppl_ratio must be a positive number, got nan"),
        ({"min_range": True}, "min_range must be a positive number, got True"),
        ({"entangled_at": "0.5"}, "entangled_at must be a positive number, got '0.5'"),
        ({"scorer_bar": {"humor": 0}}, "scorer_bar\\['humor'\\] must be a positive number, got 0"),
        ({"band": (2.0, -1.0)}, "band must be \\(low, high\\) with low < high"),
        ({"min_passing": 2.5}, "min_passing must be an integer >= 0, got 2.5"),
    ],
)
def test_bad_thresholds_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Thresholds(**kwargs)


def test_a_curve_rising_in_order_passes_and_one_out_of_order_fails():
    table = sweep({"sentiment": [0.1, 0.2, 0.3, 0.4, 0.5], "humor": [0.1, 0.4, 0.2, 0.5, 0.3]})
    pred = analysis.predictability(table, ["sentiment", "humor"], n_boot=20).set_index("attribute")
    # humor's mean ranks are 1, 4, 2, 5, 3: ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·10/120 = 0.5; range 0.3 − 0.1
    assert pred.loc["sentiment", "rho"] == pytest.approx(1.0) and pred.loc["sentiment", "range"] == pytest.approx(0.4)
    assert pred.loc["humor", "rho"] == pytest.approx(0.5) and pred.loc["humor", "range"] == pytest.approx(0.2)
    v = claims.dial(pred["rho"], pred["range"], DEFAULT, max_ratio={"sentiment": 1.2, "humor": 1.31})
    assert list(v.columns) == ["claim", "attribute", "value", "bar", "holds"]
    assert v.claim.tolist() == ["monotone", "strong", "fluent", "passes"] * 2
    assert [holds(v, c, "sentiment") for c in ("monotone", "strong", "fluent", "passes")] == [True, True, True, True]
    assert [holds(v, c, "humor") for c in ("monotone", "strong", "fluent", "passes")] == [False, False, False, False]
    assert claims.failed(v, "humor") == ["monotone", "strong", "fluent"] and claims.failed(v, "sentiment") == []
    wide = claims.holds_table(v)
    assert list(wide.index) == ["sentiment", "humor"] and list(wide.columns) == [
        "monotone",
        "strong",
        "fluent",
        "passes",
    ]
    assert wide.dtypes.eq(bool).all() and wide.passes.tolist() == [True, False]


def test_values_exactly_at_the_bar_pass_and_just_past_it_fail():
    # ranks 1, 2, 3, 5, 4: Σd² = 2, so ρ = 1 − 12/120 = 0.9 exactly (9 / 10 in the Pearson form)
    rho = analysis.spearman(ALPHAS, [0.1, 0.2, 0.3, 0.5, 0.4])
    assert rho == 0.9
    assert claims.at_least("monotone", rho, DEFAULT.min_spearman).holds is True
    assert claims.at_least("strong", 0.5 - 0.25, DEFAULT.min_range).holds is True  # exactly 0.25
    assert claims.at_least("strong", 0.2499, DEFAULT.min_range).holds is False
    assert claims.fluent({0.0: 13.0 / 10.0, 1.0: 1.0}).holds is True  # 1.3× the base: at the bar
    assert claims.fluent({0.0: 13.1 / 10.0, 1.0: 1.0}).holds is False  # 1.31× fails
    # only α in [0, 1] count: far outside it the perplexity may be anything
    v = claims.fluent({-1.0: 9.0, 0.0: 1.1, 0.5: 1.2, 1.0: 1.05, 2.0: 4.0})
    assert v.value == 1.2 and v.bar == 1.3 and v.holds is True


def test_not_measured_is_none_and_nan_fails():
    assert claims.at_least("monotone", None, 0.9).holds is None
    assert claims.at_least("monotone", float("nan"), 0.9).holds is False  # a flat curve's undefined ρ
    assert claims.fluent({2.0: 1.0}).holds is None  # no α in [0, 1]
    v = claims.dial({"a": 1.0, "b": None}, {"a": 0.3, "b": 0.3})
    assert holds(v, "passes", "a") is True and holds(v, "passes", "b") is None and holds(v, "strong", "b") is True
    assert claims.holds_table(v).loc["b", "passes"] is None
    assert claims.count([True, None, False, True]) == (2, 3)


def test_acceptance_needs_four_of_five():
    assert claims.acceptance([True, True, True, True, False]).holds is True
    a = claims.acceptance([True, True, True, False, False])
    assert (a.value, a.bar, a.holds) == (3, 4, False)
    assert claims.acceptance([True] * 3, Thresholds(min_passing=3)).holds is True


def test_each_scorer_is_held_to_its_own_bar():
    v = claims.scorers({"sentiment": 0.80, "formality": 0.79, "simplicity": 0.94, "politeness": 0.96})
    assert v.bar.tolist() == [0.80, 0.80, 0.95, 0.80]
    assert v.holds.tolist() == [True, False, False, True]  # simplicity's 0.94 would pass a bar of 0.8


def test_entanglement_pairs_and_their_mean():
    m = pd.DataFrame([[1.0, 0.5, -0.2], [0.1, 1.0, -0.6], [0.0, 0.3, 1.0]], index=list("abc"), columns=list("abc"))
    pairs = claims.entanglement(m)
    assert list(zip(pairs.attribute, pairs.score_of)) == [
        ("a", "b"),
        ("a", "c"),
        ("b", "a"),
        ("b", "c"),
        ("c", "a"),
        ("c", "b"),
    ]
    assert pairs.holds.tolist() == [True, False, False, True, False, False]  # |0.5| at the bar counts
    assert claims.mean_abs_off_diagonal(pairs) == pytest.approx(1.7 / 6)
    line = report.entanglement_line(pairs)
    assert line == "mean |off-diagonal| = 0.28; entangled pairs (|effect| ≥ 0.5): α_a → b (+0.50), α_b → c (-0.60)"


def test_the_fluent_and_monotone_bands():
    ratio = {-1.0: 1.5, -0.5: 1.2, 0.0: 1.0, 0.5: 1.1, 1.0: 1.2, 1.5: 1.25, 2.0: 1.4}
    means = {-1.0: 0.0, -0.5: 0.1, 0.0: 0.2, 0.5: 0.3, 1.0: 0.4, 1.5: 0.35, 2.0: 0.5}
    # fluent: −1 (1.5) and 2 (1.4) are over 1.3; monotone: the mean falls from α = 1 to 1.5
    assert claims.bands(ratio, means) == ((-0.5, 1.5), (-0.5, 1.0))
    assert claims.extrapolation((-0.5, 1.5)).holds is False
    assert claims.extrapolation((-1.0, 2.0)).holds is True and claims.extrapolation(None).holds is False
    # a falling response is monotone too (its direction is the one between α = 0 and α = 1)
    assert claims.bands(ratio, {a: -v for a, v in means.items()})[1] == (-0.5, 1.0)
    # not fluent inside [0, 1]: no band at all
    assert claims.bands({**ratio, 0.5: 1.31}, means) == (None, None)
    assert report.fmt_band((-0.5, 1.5)) == "[-0.5, 1.5]" and report.fmt_band(None) == "none"


def test_what_falls_short():
    ratio = {0.0: 1.25, 0.5: 1.2, 1.0: 1.4}
    v = claims.shortfalls(
        "simplicity",
        accuracy=0.9,
        tv=0.14,
        tv_all={"simplicity": 0.14, "humor": 0.12},
        range_=0.2,
        rho=0.8,
        ratio=ratio,
    )
    got = dict(zip(v.claim, v.holds))
    # 0.9 < simplicity's bar 0.95; TV 0.14 < 1.25 × 0.12 = 0.15; the most fluent α (0.5, 1.2×) > 0.9 × 1.3
    assert got == {
        "weak scorer": True,
        "endpoints close": True,
        "small range": True,
        "out of order": True,
        "not fluent": True,
        "shared shift": True,
    }
    assert claims.most_fluent(ratio) == (0.5, 1.2)
    fine = claims.shortfalls("sentiment", accuracy=0.9, tv=0.2, tv_all={"sentiment": 0.2, "humor": 0.12}, range_=0.3,
                             rho=float("nan"), ratio={0.0: 1.1, 1.0: 1.0})  # fmt: skip
    assert not any(fine.holds)  # a NaN ρ is not "out of order": it is reported as undefined
    unknown = claims.shortfalls("humor")
    assert unknown.holds.isna().all()


def test_lambda_and_the_simplex():
    v = claims.grows_with_lam({0.8: 0.4, 0.2: 0.1, 0.4: 0.2})
    assert v.holds is True and v.value == pytest.approx(0.1)
    assert claims.grows_with_lam({0.2: 0.1, 0.4: 0.1, 0.8: 0.3}).holds is False  # strictly
    assert claims.grows_with_lam({0.5: 0.2}).holds is True and math.isinf(claims.grows_with_lam({0.5: 0.2}).value)
    c = claims.own_corner({"a": "a", "b": "a"}, {"a": 0.7, "b": 0.4})
    assert c.holds.tolist() == [True, False] and c.value.tolist() == [0.7, 0.4]
    assert claims.count(c.holds) == (1, 2)


def test_own_effect_is_clear_of_zero_unless_its_ci_contains_it():
    pred = pd.DataFrame(
        {"slope": [0.3, 0.01, -0.2], "slope_lo": [0.1, -0.05, -0.3], "slope_hi": [0.5, 0.07, 0.0]}, index=list("abc")
    )
    assert claims.own_effect(pred).holds.tolist() == [True, False, False]  # 0 on the CI's edge counts as inside


def records(acc_simplicity: float) -> dict:
    """Chapter records for two attributes: sentiment passes everything, simplicity is flat."""
    flat = {"0": 0.4, "0.5": 0.4, "1": 0.4}
    return {
        "03_attribute_scorers": {"accuracy_main": {"sentiment": 0.85, "simplicity": acc_simplicity}},
        "04_single_attribute": {
            "response": {
                "sentiment": {"mean_by_alpha": {"-1": 0.0, "0": 0.2, "0.5": 0.35, "1": 0.5, "2": 0.6}, "r2": 0.99},
                "simplicity": {"mean_by_alpha": flat, "r2": 0.0},
            },
            "perplexity": {
                "base": 10.0,
                "by_alpha": {"sentiment": {"-1": 12.0, "0": 11.0, "0.5": 11.0, "1": 13.0, "2": 12.5}},
            },
        },
    }


def test_chapter_8_tables_from_records():
    rec = records(acc_simplicity=0.9)
    claim1, dial = report.claim1_table(rec, DEFAULT)
    assert claim1.loc["sentiment", "claim holds"] == "yes" and claim1.loc["sentiment", "range"] == "0.300"
    assert (
        claim1.loc["simplicity", "Spearman ρ"] == "undefined (flat)" and claim1.loc["simplicity", "claim holds"] == "no"
    )
    assert claim1.loc["humor", "claim holds"] == report.NOT_MEASURED
    claim3, fluency = report.claim3_table(rec, DEFAULT)
    # 13 / 10 at α = 1 is exactly the bar; the whole grid is fluent and the mean rises throughout
    assert (
        claim3.loc["sentiment", "max ppl ratio on [0, 1]"] == "1.30" and holds(fluency, "fluent", "sentiment") is True
    )
    assert claim3.loc["sentiment", "monotone band"] == "[-1, 2]" and holds(fluency, "extrapolation band", "sentiment")
    short = report.shortfalls_table(rec, dial, fluency, DEFAULT).set_index("attribute")
    assert list(short.index) == ["politeness", "formality", "simplicity", "humor"]  # not measured: listed
    # simplicity's scorer (0.9) is under its own bar of 0.95 (it would pass a bar of 0.8)
    assert (
        short.loc["simplicity", "what falls short"]
        == "weak scorer (test accuracy 0.90 on its own source); small range (0.000)"
    )
    short = report.shortfalls_table(records(acc_simplicity=0.96), dial, fluency, DEFAULT).set_index("attribute")
    assert short.loc["simplicity", "what falls short"] == "small range (0.000)"
    summary = report.summary_table(claims.combine(dial, fluency), DEFAULT)["our finding"]
    assert summary["Predictable, monotone change with α"] == "1 of 2 measured attributes"
    assert summary["Fluent within [0, 1]"] == "1 of 1 measured attributes"
    assert summary["A stable extrapolation band around [−1, 2]"] == "1 of 1 measured attributes"
    assert summary["Little entanglement except for some pairs"] == report.NOT_MEASURED


def test_combine_keeps_extra_columns_and_none():
    a = claims.verdict_table([claims.Verdict("x", "a", None, 1.0, None)])
    b = claims.entanglement(pd.DataFrame(np.eye(2), index=list("ab"), columns=list("ab")))
    both = claims.combine(a, claims.verdict_table([]), b)
    assert list(both.columns) == ["claim", "attribute", "value", "bar", "holds", "score_of"]
    assert (
        len(both) == 3 and both.value[0] is None and both.holds[0] is None and both.score_of.tolist()[1:] == ["b", "a"]
    )
