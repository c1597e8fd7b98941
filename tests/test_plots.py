"""clm.plots: every figure function draws (Agg backend) from tidy tables, readable at the book's width.

Each figure is checked as the book shows it (:func:`clm.book.display.figure`, 6.8 in = 680 CSS px):
6.8 in wide, at most three panels a row, no font under 8 pt, no legend over any data artist, the
attributes in their fixed, distinct colours.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from clm import plots  # noqa: E402
from clm.book.display import min_font_pt  # noqa: E402
from clm.core.attributes import ATTRIBUTES, NAMES  # noqa: E402
from clm.errors import ConfigError  # noqa: E402
from clm.experiments import analysis, designs, geometry, sweep_perplexity  # noqa: E402

ATTRS = ["sentiment", "formality", "humor"]
ALL = list(NAMES)  # the paper's five


def fake_table(settings: list[designs.Setting], n: int = 3, seed: int = 0, attrs=ATTRS) -> pd.DataFrame:
    """A sweep table without a model: scores rise with each attribute's α·λ, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in settings:
        cols = designs.setting_columns(s, attrs)
        for k in range(n):
            lam, alpha = s.weights.lam_resolved(), s.weights.alpha
            scores = {
                f"score_{a}": float(np.clip(0.2 + 0.5 * lam.get(a, 0) * alpha.get(a, 0) + rng.normal(0, 0.05), 0, 1))
                for a in attrs
            }
            rows.append({**cols, "sample": k, **scores})
    return pd.DataFrame(rows)


def _panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _data_extents(fig) -> list:
    """Window extents of every data artist (lines, collections, bars; not the α bands) on visible axes."""
    out = []
    for ax in fig.axes:
        if not ax.axison and ax.name != "polar":
            continue
        arts = list(ax.lines) + list(ax.collections) + [p for p in ax.patches if p.zorder > 0]
        for a in arts:
            bb = a.get_window_extent(fig.canvas.get_renderer())
            if bb.width > 0 or bb.height > 0:
                out.append((a, bb.intersection(bb, ax.bbox) or bb))
    return out


def _colors(fig) -> set[str]:
    """Every colour on the figure (lines, markers, fills, texts), as hex."""
    found = set()
    for a in fig.findobj():
        for get in ("get_color", "get_facecolor", "get_edgecolor", "get_markerfacecolor"):
            try:
                c = getattr(a, get)() if hasattr(a, get) else None
                cs = (
                    [c]
                    if isinstance(c, str) or (np.ndim(c) == 1 and len(c) in (3, 4))
                    else list(c if c is not None else [])
                )
                found |= {mcolors.to_hex(x) for x in cs}
            except (ValueError, TypeError):
                pass
    return found


def assert_readable(fig, attributes=()) -> None:
    """What the book needs of a figure at 680 px (see the module docstring)."""
    fig.canvas.draw()
    assert fig.get_size_inches()[0] == pytest.approx(plots.WIDTH_IN)
    rows: dict[int, int] = {}
    for ax in _panels(fig):
        spec = ax.get_subplotspec()
        if spec is not None:
            rows[spec.rowspan.start] = rows.get(spec.rowspan.start, 0) + 1
    assert max(rows.values(), default=0) <= 3, rows
    assert min_font_pt(fig) >= plots.MIN_FONT_PT
    legends = [lg for lg in fig.legends] + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    data = _data_extents(fig)
    for lg in legends:
        box = lg.get_window_extent(fig.canvas.get_renderer())
        hits = [a for a, bb in data if bb.overlaps(box)]
        assert hits == [], f"legend {[t.get_text() for t in lg.get_texts()]} covers {hits}"
    want = {mcolors.to_hex(plots.ATTRIBUTE_COLORS[a]) for a in attributes}
    assert want <= _colors(fig), want - _colors(fig)


def check(fig, tmp_path, name: str, n_axes: int | None = None, attributes=()) -> None:
    assert isinstance(fig, Figure)
    assert_readable(fig, attributes)
    if n_axes is not None:
        assert len([ax for ax in _panels(fig) if ax.has_data()]) == n_axes
    out = tmp_path / "figs" / f"{name}.png"
    plots.save(fig, out)
    assert out.stat().st_size > 5_000
    plt.close(fig)


@pytest.fixture(scope="module")
def single():
    return fake_table(
        [s for a in ATTRS for s in designs.single_attribute(a, [-1, -0.5, 0, 0.5, 1, 1.5, 2])]
        + designs.custom(["base"])
    )


@pytest.fixture(scope="module")
def five():
    settings = [s for a in ALL for s in designs.single_attribute(a, [-1, 0, 0.5, 1, 2])] + designs.custom(["base"])
    return fake_table(settings, attrs=ALL)


def test_the_readability_check_can_fail():
    with plots.style():
        fig, ax = plt.subplots(figsize=(plots.WIDTH_IN, 2.5))
        ax.plot([0, 1], [0, 1], label="data")
        ax.legend(loc="center")  # over the line
    with pytest.raises(AssertionError, match="covers"):
        assert_readable(fig)
    ax.get_legend().remove()
    ax.set_title("tiny", fontsize=6)
    with pytest.raises(AssertionError):
        assert_readable(fig)
    fig4, _ = plt.subplots(1, 4, figsize=(plots.WIDTH_IN, 2))
    with pytest.raises(AssertionError):
        assert_readable(fig4)
    with pytest.raises(AssertionError):
        assert_readable(plt.figure(figsize=(10, 3)))
    plt.close("all")


def test_attribute_colors_are_fixed_and_distinct():
    c = plots.attribute_colors(ALL)
    assert len({mcolors.to_hex(v) for v in c.values()}) == 5
    assert plots.attribute_colors(["humor", "sentiment"]) == {"humor": c["humor"], "sentiment": c["sentiment"]}
    extra = plots.attribute_colors(["mood", "sentiment", "tone"])
    assert len(set(extra.values())) == 3 and extra["sentiment"] == c["sentiment"]


def test_shade_bands_hatches_extrapolation():
    fig, ax = plt.subplots()
    ax.set_xlim(-1, 2)
    plots.shade_bands(ax)
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(ax.patches) == 3 and len(hatched) == 2  # [0, 1] plain, both sides hatched
    assert sorted(round(p.get_x(), 6) for p in hatched) == [-1.0, 1.0] and ax.get_xlim() == (-1, 2)
    fig2, ax2 = plt.subplots()
    ax2.set_xlim(0, 1)
    plots.shade_bands(ax2)
    assert [p.get_hatch() for p in ax2.patches] == [None]  # no extrapolation band to hatch
    plt.close(fig), plt.close(fig2)


def test_response_curves(single, five, tmp_path):
    fig = plots.response_curves(single, n_boot=200)
    check(fig, tmp_path, "response", n_axes=3, attributes=ATTRS)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "α (sentiment)" and ax.get_ylabel() == "P(positive)"
    assert len(ax.patches) == 3 and sum(bool(p.get_hatch()) for p in ax.patches) == 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "base model", "α in [0, 1]: interpolation", "hatched: extrapolation"
    ]  # fmt: skip
    fig = plots.response_curves(five, n_boot=100)  # 3 + 2 panels, the legend in the sixth slot
    assert [ax.get_subplotspec().rowspan.start for ax in fig.axes] == [0, 0, 0, 1, 1, 1]
    assert fig.axes[5].get_legend() is not None and not fig.axes[5].axison
    check(fig, tmp_path, "response_five", n_axes=5, attributes=ALL)
    multi = fake_table(designs.multi_attribute("humor", ATTRS, alphas=[0, 0.5, 1]))
    fig = plots.response_curves(multi, ["humor"], by="lam_humor", n_boot=100)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["λ = 0.2", "λ = 0.4", "λ = 0.8", "α in [0, 1]: interpolation"]  # nothing hatched here
    check(fig, tmp_path, "response_multi", n_axes=1, attributes=["humor"])


def test_perplexity_curve(tmp_path):
    settings = [s for a in ALL for s in designs.single_attribute(a, [-1, 0, 1, 2])] + designs.custom(["base"])
    table = sweep_perplexity.perplexity_table(
        settings, lambda w: 20.0 + 5 * sum(abs(x - 0.5) for x in w.alpha.values()), ALL
    )
    fig = plots.perplexity_curve(table)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:6] == ALL + ["base model"]
    check(fig, tmp_path, "ppl", n_axes=1, attributes=ALL)
    # a sweep table: each continuation's perplexity, combined per setting (median by default)
    rows = fake_table(designs.single_attribute("humor", [0, 1, 2]), n=3)
    rows["ppl"] = np.tile([10.0, 30.0, 1000.0], 3) * np.repeat([1, 2, 3], 3)
    fig = plots.perplexity_curve(rows, column="ppl", log=False)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [30.0, 60.0, 90.0]
    check(fig, tmp_path, "ppl_samples", n_axes=1)


def test_loss_curves(tmp_path):
    for i, a in enumerate(ALL):
        for pole in ("low", "high"):
            log = [{"step": s, "loss": 4.0 - 0.01 * s + 0.1 * i} for s in range(0, 61, 2)]
            log += [{"step": s, "eval_loss": 4.1 - 0.01 * s} for s in (0, 20, 40, 60)]
            d = tmp_path / "run" / "train" / a / pole
            d.mkdir(parents=True)
            name = getattr(ATTRIBUTES[a], pole)
            (d / "log.json").write_text(json.dumps(dict(attribute=a, pole=pole, pole_name=name, log=log)))
    g = plots.loss_curves(tmp_path / "run")
    assert len(g.axes.flat) == 5 and g.axes.flat[0].get_title().startswith(g.axes.flat[0].get_title().split("\n")[0])
    check(g.figure, tmp_path, "loss", n_axes=5)


def test_heatmaps(single, five, tmp_path):
    ent = analysis.entanglement(five)
    check(plots.entanglement_heatmap(ent), tmp_path, "entanglement", attributes=ALL)
    G = pd.DataFrame(
        np.array([[1.0, 0.5, 0.0], [0.5, 2.0, -0.3], [0.0, -0.3, 1.5]]), index=list("abc"), columns=list("abc")
    )
    check(plots.cosine_heatmap(geometry.cosine_matrix(G)), tmp_path, "cosine")
    check(plots.distance_heatmap(geometry.distance_matrix(G)), tmp_path, "distance")


def test_spider(single, five, tmp_path):
    fig = plots.spider(single, by="setting", groups=["base", "sentiment=1", "humor=1"])
    assert len(fig.axes[0].get_lines()) == 3
    check(fig, tmp_path, "spider", n_axes=1, attributes=ATTRS)
    # seven polygons: small multiples, the reference in every panel, one legend
    t = five.copy()
    t["curve"] = ["base model" if s == "base" else f"λ={1 + i % 3:g}, α={i % 2}" for i, s in enumerate(t.setting)]
    groups = ["base model"] + [f"λ={lam}, α={a}" for lam in (1, 2, 3) for a in (0, 1)]
    assert list(plots.spider_panels(groups)) == ["λ=1", "λ=2", "λ=3"]
    fig = plots.spider(t, by="curve", groups=groups, title="target: humor")
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 3, 3]
    assert [ax.get_title() for ax in fig.axes] == ["λ=1", "λ=2", "λ=3"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["base model", "α=0", "α=1"]
    check(fig, tmp_path, "spider_panels", n_axes=3, attributes=ALL)
    with pytest.raises(ConfigError, match=">= 3"):
        plots.spider(single, attributes=["sentiment", "humor"])


def test_ternary(tmp_path):
    table = fake_table(designs.simplex(ATTRS))
    fig = plots.ternary(table, ATTRS)
    check(fig, tmp_path, "ternary", n_axes=3, attributes=ATTRS)
    lo, hi = fig.axes[0].collections[0].get_clim()
    means = table.groupby([f"lam_{a}" for a in ATTRS])[[f"score_{a}" for a in ATTRS]].mean().to_numpy()
    assert lo <= means.min() < lo + 0.05 and hi - 0.05 < means.max() <= hi  # the scale spans the data
    assert [c.get_label() for c in fig.axes if c.get_label() == "<colorbar>"] == ["<colorbar>"]
    xy = plots.barycentric(np.eye(3))
    assert xy == pytest.approx(np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]]))
    with pytest.raises(ConfigError, match="exactly 3"):
        plots.ternary(table, ATTRS[:2])


def test_mds_scatter(tmp_path):
    G = pd.DataFrame(
        np.diag([1.0, 2.0, 1.5, 1.0, 0.7, 1.2, 0.9, 1.1, 1.3, 0.8]) + 0.1,
        index=[f"{a}/{p}" for a in ALL for p in ("low", "high")],
    )
    G.columns = G.index
    settings = [s for a in ALL for s in designs.single_attribute(a, [-1, 0, 0.25, 0.5, 0.75, 1, 2])] + designs.custom(
        ["base"]
    )
    emb = geometry.mds_embedding(G, settings)
    fig = plots.mds_scatter(emb)
    assert "base" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert 0 < len(labels) <= 2 * len(ALL) and all("α=" in t for t in labels)  # only the paths' far ends
    fig.canvas.draw()
    ax = fig.axes[0]
    assert all(ax.bbox.x0 <= t.get_window_extent().x0 and t.get_window_extent().x1 <= ax.bbox.x1 for t in ax.texts)
    check(fig, tmp_path, "mds", n_axes=1, attributes=ALL)


def test_data_and_scorer_figures(tmp_path):
    rng = np.random.default_rng(0)
    sizes = pd.DataFrame(
        [dict(attribute=a, source=src, pole=getattr(ATTRIBUTES[a], side), split=split, texts=int(rng.integers(500, 9000)),
              words=list(rng.integers(3, 60, 20)), mean_words=20.0)
         for a in ALL for src in (a, f"{a}-second") for side in ("low", "high") for split in ("train", "test")]
    )  # fmt: skip
    check(plots.corpus_overview(sizes), tmp_path, "corpus", n_axes=2, attributes=ALL)
    summary = pd.DataFrame(
        [
            dict(attribute=a, source=s, accuracy=0.6 + 0.05 * i, ece=0.05, n=100)
            for i, a in enumerate(ALL)
            for s in ("main", "second")
        ]
    )
    check(plots.scorer_accuracy(summary, bar=lambda a: 0.7), tmp_path, "accuracy", n_axes=1, attributes=ALL)
    rel = pd.DataFrame(
        [dict(attribute=a, source=s, mean_p=(b + 0.5) / 10, frac_high=min(1, (b + 0.5) / 10 + rng.normal(0, 0.05)), n=10 + b)
         for a in ALL for s in ("main", "second") for b in range(10)]
    )  # fmt: skip
    fig = plots.calibration(rel, summary)
    assert fig.axes[0].get_title() == "sentiment\nECE 0.050 / 0.050"
    check(fig, tmp_path, "calibration", n_axes=5, attributes=ALL)
