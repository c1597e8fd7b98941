"""clm.plots: every figure function draws (Agg backend) from tidy tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from clm import plots
from clm.errors import ConfigError  # noqa: E402
from clm.experiments import analysis, designs, geometry, sweep_perplexity  # noqa: E402

ATTRS = ["sentiment", "formality", "humor"]


def fake_table(settings: list[designs.Setting], n: int = 3, seed: int = 0) -> pd.DataFrame:
    """A sweep table without a model: scores rise with each attribute's α·λ, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in settings:
        cols = designs.setting_columns(s, ATTRS)
        for k in range(n):
            scores = {
                f"score_{a}": float(
                    np.clip(
                        0.2
                        + 0.5 * s.weights.lam_resolved().get(a, 0) * s.weights.alpha.get(a, 0)
                        + rng.normal(0, 0.05),
                        0,
                        1,
                    )
                )
                for a in ATTRS
            }
            rows.append({**cols, "sample": k, **scores})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def single():
    return fake_table(
        [s for a in ATTRS for s in designs.single_attribute(a, [-1, -0.5, 0, 0.5, 1, 1.5, 2])] + designs.custom(["base"])
    )


def check(fig, tmp_path, name: str, n_axes: int | None = None) -> None:
    assert isinstance(fig, Figure)
    if n_axes is not None:
        assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == n_axes
    out = tmp_path / "figs" / f"{name}.png"
    plots.save(fig, out)
    assert out.stat().st_size > 5_000
    matplotlib.pyplot.close(fig)


def test_response_curves(single, tmp_path):
    fig = plots.response_curves(single, n_boot=200)
    check(fig, tmp_path, "response", n_axes=3)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "α (sentiment)" and ax.get_ylabel() == "P(positive)"
    assert len(ax.patches) == 3  # the interpolation band and two extrapolation bands
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base model"]
    multi = fake_table(designs.multi_attribute("humor", ATTRS))
    fig = plots.response_curves(multi, ["humor"], by="lam_humor", n_boot=100)
    assert len(fig.axes[0].get_legend().get_texts()) == 3  # λ = 0.2, 0.4, 0.8
    check(fig, tmp_path, "response_multi", n_axes=1)


def test_perplexity_curve(tmp_path):
    settings = [s for a in ATTRS[:2] for s in designs.single_attribute(a, [-1, 0, 1, 2])] + designs.custom(["base"])
    table = sweep_perplexity.perplexity_table(settings, lambda w: 20.0 + 5 * sum(abs(x - 0.5) for x in w.alpha.values()), ATTRS)
    fig = plots.perplexity_curve(table)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["sentiment", "formality", "base model"]
    check(fig, tmp_path, "ppl", n_axes=1)
    # a sweep table: each continuation's perplexity, combined per setting (median by default)
    rows = fake_table(designs.single_attribute("humor", [0, 1, 2]), n=3)
    rows["ppl"] = np.tile([10.0, 30.0, 1000.0], 3) * np.repeat([1, 2, 3], 3)
    fig = plots.perplexity_curve(rows, column="ppl", log=False)
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [30.0, 60.0, 90.0]
    check(fig, tmp_path, "ppl_samples", n_axes=1)


def test_heatmaps(single, tmp_path):
    ent = analysis.entanglement(single)
    check(plots.entanglement_heatmap(ent), tmp_path, "entanglement")
    G = pd.DataFrame(
        np.array([[1.0, 0.5, 0.0], [0.5, 2.0, -0.3], [0.0, -0.3, 1.5]]), index=list("abc"), columns=list("abc")
    )
    check(plots.cosine_heatmap(geometry.cosine_matrix(G)), tmp_path, "cosine")
    check(plots.distance_heatmap(geometry.distance_matrix(G)), tmp_path, "distance")


def test_spider(single, tmp_path):
    fig = plots.spider(single, by="setting", groups=["base", "sentiment=1", "humor=1"])
    assert len(fig.axes[0].get_lines()) == 3
    check(fig, tmp_path, "spider", n_axes=1)
    with pytest.raises(ConfigError, match=">= 3"):
        plots.spider(single, attributes=["sentiment", "humor"])


def test_ternary(tmp_path):
    table = fake_table(designs.simplex(ATTRS))
    fig = plots.ternary(table, ATTRS)
    check(fig, tmp_path, "ternary", n_axes=3)
    xy = plots.barycentric(np.eye(3))
    assert xy == pytest.approx(np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]]))
    with pytest.raises(ConfigError, match="exactly 3"):
        plots.ternary(table, ATTRS[:2])


def test_mds_scatter(tmp_path):
    G = pd.DataFrame(
        np.diag([1.0, 2.0, 1.5, 1.0, 0.7, 1.2]) + 0.1, index=[f"{a}/{p}" for a in ATTRS for p in ("low", "high")]
    )
    G.columns = G.index
    settings = [s for a in ATTRS for s in designs.single_attribute(a, [-1, 0, 0.5, 1, 2])]
    emb = geometry.mds_embedding(G, settings)
    fig = plots.mds_scatter(emb)
    assert "base" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    check(fig, tmp_path, "mds", n_axes=1)
