"""clm.plots.compare: the comparison chapter's figures, readable at the book's width, on fake tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from clm.errors import ConfigError  # noqa: E402
from clm.plots import compare as cplots  # noqa: E402
from tests.test_plots import check  # noqa: E402

METHODS = ["interpolation", "prompting", "steering", "logit-linear", "logit-product", "mixture"]


def fake_frontier(attrs=("sentiment", "formality")) -> pd.DataFrame:
    rows = []
    for i, a in enumerate(attrs):
        for j, m in enumerate(METHODS):
            for s in np.linspace(-1, 1, 5):
                score, ratio = 0.5 + 0.2 * s * (1 - 0.1 * j), 1 + 0.1 * j * s**2 + 0.02 * i
                rows.append(dict(method=m, attribute=a, strength=s, score_mean=score, score_lo=score - 0.03,
                                 score_hi=score + 0.03, ppl_ratio=ratio, ppl_lo=ratio * 0.97, ppl_hi=ratio * 1.03))  # fmt: skip
    return pd.DataFrame(rows)


def test_frontier_one_panel_per_attribute(tmp_path):
    fig = cplots.frontier(fake_frontier(), base_score={"sentiment": 0.5, "formality": 0.5}, budget=1.5)
    check(fig, tmp_path, "frontier", n_axes=2)
    fig = cplots.frontier(fake_frontier(("sentiment", "formality", "humor", "politeness", "simplicity")))
    check(fig, tmp_path, "frontier5", n_axes=5)
    with pytest.raises(ConfigError, match="no rows with a perplexity ratio"):
        cplots.frontier(fake_frontier().assign(ppl_ratio=np.nan))


def tick_boxes(ax):
    renderer = ax.get_figure().canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("n", [2, 5])
def test_frontier_tick_labels_never_touch_over_a_wide_perplexity_span(n):
    """Three panels a row over ratios 0.8-10 (the reference run's span) crowded 0.8, 1, 1.25, 1.5, 2."""
    attrs = ("sentiment", "formality", "humor", "politeness", "simplicity")[:n]
    fr = fake_frontier(attrs)
    fr.loc[fr.strength == fr.strength.max(), ["ppl_ratio", "ppl_lo", "ppl_hi"]] = [10.0, 9.0, 11.0]
    fr.loc[fr.strength == fr.strength.min(), ["ppl_ratio", "ppl_lo", "ppl_hi"]] = [0.82, 0.8, 0.85]
    fig = cplots.frontier(fr, budget=1.5)
    fig.canvas.draw()
    for ax in fig.axes:
        boxes = tick_boxes(ax)
        if not boxes:
            continue
        assert len(boxes) >= 3, [t.get_text() for t in ax.get_xticklabels()]
        for a, b in zip(boxes, boxes[1:]):
            assert b.x0 - a.x1 >= 2, [t.get_text() for t in ax.get_xticklabels()]


def test_drift_matrix_writes_every_measured_cell(tmp_path):
    m = pd.DataFrame([dict(method=me, attribute=a, drift_mean=0.01 * k) for k, (me, a) in
                      enumerate((me, a) for me in METHODS for a in ("sentiment", "formality"))])  # fmt: skip
    m = m[~((m.method == "mixture") & (m.attribute == "formality"))]  # a method that did not dial it: blank
    fig = cplots.drift_matrix(m)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 11 and "0.110" not in texts  # 12 cells less the blank one
    check(fig, tmp_path, "drift")


def test_reach_matrix_outlines_each_attributes_widest_method(tmp_path):
    attrs = ("sentiment", "politeness", "formality")
    m = pd.DataFrame([dict(method=me, attribute=a, reach=0.1 * i + 0.01 * j) for i, me in enumerate(METHODS)
                      for j, a in enumerate(attrs) if a != "politeness" or me in METHODS[:3]])  # fmt: skip
    m.loc[(m.method == "prompting") & (m.attribute == "politeness"), "reach"] = 0.9  # politeness' widest
    fig = cplots.method_matrix(m, "reach", "reach", list(attrs), best="max")
    ax = fig.axes[0]
    assert len(ax.texts) == 3 * 6 - 3
    boxes = sorted((round(r.get_x() + 0.48), round(r.get_y() + 0.46)) for r in ax.patches)
    assert boxes == [(0, 5), (1, 1), (2, 5)]  # (column, row): mixture, prompting, mixture
    check(fig, tmp_path, "reach")


def test_mixture_vs_interpolation_two_panels_per_attribute(tmp_path):
    rows = []
    for a in ("sentiment", "formality"):
        for src in ("mixture", "interpolation"):
            for m in (0.0, 0.25, 0.5, 0.75, 1.0):
                rows.append(dict(attribute=a, source=src, m=m, score_mean=0.3 + 0.4 * m, score_lo=0.25 + 0.4 * m,
                                 score_hi=0.35 + 0.4 * m, ratio=0.8 if src == "mixture" and 0 < m < 1 else np.nan))  # fmt: skip
    check(cplots.mixture_vs_interpolation(pd.DataFrame(rows)), tmp_path, "mixture", n_axes=4)
