"""clm.experiments.compare: metrics of synthetic tables, computed by hand; the adapter for chapter 4's
interpolation sweeps; and one pico run from a method sweep to the side-by-side table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clm.errors import ConfigError
from clm.experiments import compare, designs
from clm.experiments import method_sweep as ms
from clm.experiments.analysis import bootstrap_ci
from clm.experiments.sweep_scoring import base_fluency
from clm.methods.steering import SteeringMethod, mean_difference
from clm.paths import ASSETS

# (strength, prompt) -> (score_sentiment, score_formality, ppl, continuation); one sample each
M = {
    (-1.0, 0): (0.1, 0.4, 4.0, "a b a"), (-1.0, 1): (0.3, 0.6, 8.0, "b c"),
    (0.0, 0): (0.4, 0.6, 4.0, "a a a a"), (0.0, 1): (0.6, 0.6, 4.0, ""),
    (1.0, 0): (0.4, 0.1, 8.0, "x y z"), (1.0, 1): (0.8, 0.3, 16.0, "x y"),
}  # fmt: skip
WIKI = {-1.0: 10.0, 0.0: 10.0, 1.0: 15.0}
N = {-1.0: 0.5, 0.0: 0.1, 1.0: 0.3}  # method "n": its mean sentiment score per strength, equal over prompts


def synthetic() -> pd.DataFrame:
    rows = [
        dict(method="m", attribute="sentiment", dial="c", strength=s, prompt_index=p, sample=0, continuation=t,
             score_sentiment=a, score_formality=b, score_humor=0.5, ppl=q, wikitext_ppl=WIKI[s])
        for (s, p), (a, b, q, t) in M.items()
    ] + [
        dict(method="n", attribute="sentiment", dial="level", strength=s, prompt_index=p, sample=k, continuation="w",
             score_sentiment=v, score_formality=0.5, score_humor=0.5, ppl=4.0, wikitext_ppl=np.nan)
        for s, v in N.items() for p in (0, 1) for k in (0, 1)
    ]  # fmt: skip
    return pd.DataFrame.from_records(rows)


BASE = pd.DataFrame({"ppl": [2.0, 4.0, 6.0], "wikitext_ppl": [10.0, 10.0, 10.0]})


def test_metrics_are_the_hand_computed_ones():
    got = compare.metrics(synthetic(), base=BASE, neutral={"m": 0.0}).set_index("method")
    m = got.loc["m"]
    assert m["dial"] == "c" and m["n_strengths"] == 3 and m["n_prompts"] == 2 and m["reference"] == 0.0
    assert m["range"] == pytest.approx(0.4) and m["span"] == pytest.approx(0.4)  # means 0.2, 0.5, 0.6
    assert m["spearman"] == pytest.approx(1.0) and m["slope"] == pytest.approx(0.2)
    assert m["r2"] == pytest.approx(12 / 13)
    assert m["prompt_spread"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)
    assert m["drift_formality"] == pytest.approx(0.4) and m["drift_humor"] == 0.0  # from c = 0: 0.5, 0.6, 0.2
    assert m["drift_mean"] == pytest.approx(0.2)
    assert m["ppl_ratio_median"] == pytest.approx(6 / 4)  # median of 4, 8, 4, 4, 8, 16 over the base's 4
    assert m["ppl_ratio_mean"] == pytest.approx((44 / 6) / 4)
    assert m["ppl_ratio_max"] == pytest.approx(12 / 4)  # the medians per strength: 6, 4, 12
    assert m["wikitext_ratio_max"] == pytest.approx(1.5)
    assert m["distinct_1"] == pytest.approx((3 / 5 + 1 / 4 + 3 / 5) / 3)
    assert m["distinct_2"] == pytest.approx((1 + 1 / 3 + 2 / 3) / 3) and m["distinct_2_min"] == pytest.approx(1 / 3)
    n = got.loc["n"]
    assert n["range"] == pytest.approx(0.4) and n["span"] == pytest.approx(-0.2)
    assert n["spearman"] == pytest.approx(-0.5) and n["prompt_spread"] == 0.0 and n["drift_mean"] == 0.0
    assert n["ppl_ratio_median"] == 1.0 and math.isnan(n["wikitext_ratio_max"])
    assert n["distinct_1"] == pytest.approx(1 / 4) and math.isnan(n["distinct_2"])  # "w" x 4: no bigram
    # without a neutral strength, drift is measured from the lowest: 0.5, 0.6, 0.2 -> 0.3
    assert compare.metrics(synthetic()).set_index("method").loc["m", "drift_formality"] == pytest.approx(0.3)
    assert "ppl_ratio_median" not in compare.metrics(synthetic()).columns  # no base, no ratios


def test_frontier_per_strength_with_bootstrap_intervals():
    f = compare.frontier(synthetic(), base_ppl=pd.DataFrame({"ppl": [2.0, 8.0]}), n_boot=200)  # geometric mean 4
    m = f[f.method == "m"].set_index("strength")
    assert m["score_mean"].to_dict() == pytest.approx({-1.0: 0.2, 0.0: 0.5, 1.0: 0.6})
    assert (m["n_prompts"] == 2).all()
    assert m["ppl_ratio"].to_dict() == pytest.approx({-1.0: math.sqrt(32) / 4, 0.0: 1.0, 1.0: math.sqrt(128) / 4})
    lo, hi = bootstrap_ci([0.1, 0.3], n_boot=200)
    assert (m.loc[-1.0, "score_lo"], m.loc[-1.0, "score_hi"]) == (lo, hi) and 0.1 <= lo <= hi <= 0.3
    assert m.loc[0.0, "ppl_lo"] == m.loc[0.0, "ppl_hi"] == pytest.approx(1.0)  # equal ppl over prompts
    assert 4 / 4 <= m.loc[-1.0, "ppl_lo"] <= m.loc[-1.0, "ppl_ratio"] <= m.loc[-1.0, "ppl_hi"] <= 8 / 4
    n = f[f.method == "n"]
    assert (n.score_lo == n.score_mean).all() and (n.score_hi == n.score_mean).all()  # no spread over prompts
    assert list(f.strength) == [-1.0, 0.0, 1.0] * 2
    assert compare.frontier(synthetic().drop(columns="ppl"), 4.0).ppl_ratio.isna().all()
    with pytest.raises(ConfigError, match="base_ppl"):
        compare.frontier(synthetic(), 0.0)


def test_side_by_side_is_one_row_per_method_and_a_column_per_attribute_and_metric():
    t = synthetic()
    formality = t[t.method == "m"].assign(attribute="formality")
    met = compare.metrics(pd.concat([t, formality]), base=BASE)
    wide = compare.side_by_side(met, order=["n", "m"])
    assert list(wide.index) == ["n", "m"] and wide.columns.names == ["attribute", "metric"]
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == ["sentiment", "formality"]
    assert wide.loc["m", ("sentiment", "range")] == pytest.approx(0.4)
    assert wide.loc["n", ("sentiment", "Spearman ρ")] == pytest.approx(-0.5)
    assert wide.loc["m", ("formality", "range")] == pytest.approx(0.6 - 0.2)  # formality means 0.5, 0.6, 0.2
    assert math.isnan(wide.loc["n", ("formality", "range")])  # n was not run on formality
    assert ("sentiment", "WikiText ratio (max)") in wide.columns and ("sentiment", "distinct-2") in wide.columns
    with pytest.raises(ConfigError, match="continuation"):
        compare.metrics(t.drop(columns="continuation"))
    with pytest.raises(ConfigError, match="score_humor"):
        compare.by_strength(t.drop(columns="score_humor"), "humor")


def _chapter4_rows() -> pd.DataFrame:
    settings = [
        *designs.single_attribute("sentiment", [0.0, 1.0]),
        *designs.multi_attribute("sentiment", ["sentiment", "formality"], lams=[0.8], alphas=[0.0]),
        *designs.custom(["base"]),
    ]
    rows = []
    for i, s in enumerate(settings):
        for p in (0, 1):
            cols = designs.setting_columns(s, ["sentiment", "formality"])
            rows.append({**cols, "seed": 0, "prompt_index": p, "prompt": f"p{p}", "sample": 0,
                         "continuation": f"text {i} {p}", "n_tokens": 3, "finished": False, "chunk": "k",
                         "score_sentiment": 0.1 * i + 0.01 * p, "score_formality": 0.5, "wikitext_ppl": 10.0 + i})  # fmt: skip
    return pd.DataFrame.from_records(rows)


def test_from_interpolation_table_keeps_the_single_attribute_rows_with_strength_alpha():
    t = compare.from_interpolation_table(_chapter4_rows(), "sentiment")
    assert len(t) == 4 and t.strength.tolist() == [0.0, 0.0, 1.0, 1.0]  # not the multi or base rows
    assert set(t.method) == {"interpolation"} and set(t.dial) == {"alpha"} and set(t.attribute) == {"sentiment"}
    assert list(t.columns[:6]) == list(compare.TIDY)
    assert {"seed", "sample", "wikitext_ppl", "score_sentiment", "score_formality"} <= set(t.columns)
    assert "alpha_sentiment" not in t.columns and "weights" not in t.columns
    m = compare.metrics(t, base=pd.DataFrame({"wikitext_ppl": [10.0]})).iloc[0]
    assert m["range"] == pytest.approx(0.1) and m["wikitext_ratio_max"] == pytest.approx(11 / 10)
    with pytest.raises(ConfigError, match="alpha_humor"):
        compare.from_interpolation_table(_chapter4_rows(), "humor")


def test_shipped_chapter4_sweep_maps_to_the_tidy_form():
    table = pd.read_parquet(ASSETS / "tables" / "smollm2-135m" / "single_sentiment.parquet")
    t = compare.from_interpolation_table(table, "sentiment")
    assert len(t) == len(table) and sorted(set(t.strength)) == sorted(set(table.alpha_sentiment))
    m = compare.metrics(t).iloc[0]
    means = t.groupby("strength").score_sentiment.mean()
    assert m["range"] == pytest.approx(means.max() - means.min())
    assert m["n_strengths"] == table.alpha_sentiment.nunique()


def test_pico_steering_sweep_through_the_comparison(im, tmp_path):
    low, high = ["I hate this, it is awful.", "A sad day."], ["I love this, it is wonderful!", "A happy day."]
    vector = mean_difference(im, im.tokenizer, low, high, "sentiment", layers=[1])[1] * 40.0
    method = SteeringMethod(im, im.tokenizer, vector, grid=(-1.0, 0.0, 1.0))
    scorers = {
        "sentiment": lambda ts: [t.count("e") / max(len(t), 1) for t in ts],
        "formality": lambda ts: [len(t) % 2 for t in ts],
    }
    prompts = ["Once upon a time", "The letter said", "In the year 3000"]
    t = ms.run_method_sweep(method, None, prompts, scorers, out=tmp_path / "s.parquet", n_samples=2,
                            max_new_tokens=8, batch_size=6, fluency=base_fluency(im), progress=False)  # fmt: skip
    base = t[t.strength == 0.0]  # c = 0 is the base model (tests/test_method_sweep.py)
    met = compare.metrics(t, base=base, neutral={"steering": method.dial.neutral}).iloc[0]
    means = t.groupby(["strength", "prompt_index"]).score_sentiment.mean().groupby("strength").mean()
    assert met["range"] == pytest.approx(means.max() - means.min()) and met["reference"] == 0.0
    drift = t.groupby("strength").score_formality.mean()
    assert met["drift_formality"] == pytest.approx((drift - drift[0.0]).abs().max())
    assert met["ppl_ratio_max"] >= 1.0  # the median ratio at c = 0 is 1
    f = compare.frontier(t, base).set_index("strength")
    assert f.loc[0.0, "ppl_ratio"] == pytest.approx(1.0)
    assert f["score_mean"].to_dict() == pytest.approx(means.to_dict())
    wide = compare.side_by_side(compare.metrics(t, base=base))
    assert list(wide.index) == ["steering"] and wide.loc["steering", ("sentiment", "range")] == pytest.approx(
        met["range"]
    )
    assert ("sentiment", "WikiText ratio (max)") not in wide.columns  # steering's sweep measured none
