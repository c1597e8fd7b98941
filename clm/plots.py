"""Figures for the book and the paper: each function takes a tidy table and returns a Figure.

One style everywhere (:func:`style`): seaborn's whitegrid at "paper" scale with readable fonts,
one colour per attribute (the colorblind palette, in the order of :data:`clm.core.attributes.NAMES`),
and the interpolation band α ∈ [0, 1] told apart from the extrapolation bands by shading.

``clm`` does not import this module; ``import clm.plots`` loads matplotlib and seaborn.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from clm.core.attributes import ATTRIBUTES, NAMES
from clm.errors import ConfigError
from clm.experiments import analysis

PALETTE = "colorblind"
INTERP_COLOR = "#e8f1fa"  # the interpolation band α ∈ [0, 1]
EXTRAP_COLOR = "#f7f7f7"  # the extrapolation bands
_RC = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.titleweight": "bold",
    "legend.frameon": False,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The book's figure style, as a context manager (nothing global changes)."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.3), **_RC}
    with plt.rc_context(rc), sns.color_palette(PALETTE):
        yield


def attribute_colors(attributes: Sequence[str]) -> dict[str, Any]:
    """A fixed colour per attribute: the paper's five first, in order, then any others."""
    order = list(NAMES) + [a for a in attributes if a not in NAMES]
    pal = sns.color_palette(PALETTE, max(len(order), 10))
    return {a: pal[order.index(a) % len(pal)] for a in attributes}


def _label(attribute: str) -> str:
    """'P(positive)' for a known attribute, else 'score'."""
    a = ATTRIBUTES.get(attribute)
    return f"P({a.high})" if a else f"score ({attribute})"


def shade_bands(ax: Any, interval: tuple[float, float] = (0.0, 1.0)) -> None:
    """Shade the interpolation band and the extrapolation bands on an α axis (x)."""
    lo, hi = ax.get_xlim()
    ax.axvspan(interval[0], interval[1], color=INTERP_COLOR, zorder=0, lw=0)
    if lo < interval[0]:
        ax.axvspan(lo, interval[0], color=EXTRAP_COLOR, zorder=0, lw=0, hatch="//", ec="#dddddd")
    if hi > interval[1]:
        ax.axvspan(interval[1], hi, color=EXTRAP_COLOR, zorder=0, lw=0, hatch="//", ec="#dddddd")
    ax.set_xlim(lo, hi)


def _shades(color: Any, n: int) -> list[Any]:
    """n clearly distinct shades of one colour, light to dark."""
    c = np.asarray(color[:3], dtype=float)
    light, dark = c + (1 - c) * 0.6, c * 0.45
    return sns.blend_palette([tuple(light), tuple(c), tuple(dark)], max(n, 2))[:n] if n > 1 else [tuple(c)]


def _panels(n: int, width: float = 4.0, height: float = 3.2, **kw: Any) -> tuple[Figure, list[Any]]:
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, **kw)
    return fig, list(axes[0])


def response_curves(
    table: Any,
    attributes: Sequence[str] | None = None,
    by: str | None = None,
    score: str | None = None,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    title: str | None = None,
) -> Figure:
    """Mean score against α with bootstrap CIs, one panel per attribute; the interpolation band
    [0, 1] and the extrapolation bands shaded; the base model's mean score (rows of setting
    ``"base"``, if any) dashed.

    Args:
        table: a sweep table (:func:`clm.experiments.sweep.run_sweep`).
        attributes: the attributes varied (default: every targeted attribute with a score).
        by: a column giving one curve per value (e.g. ``"lam_sentiment"`` for the
            multi-attribute design); default one curve per panel.
        score: score another attribute than the one varied (e.g. for entanglement curves).
    """
    attributes = list(attributes) if attributes is not None else analysis.varied_attributes(table)
    if not attributes:
        raise ConfigError("response_curves: the table varies no scored attribute")
    colors = attribute_colors(attributes)
    with style():
        fig, axes = _panels(len(attributes), sharey=True)
        for ax, attr in zip(axes, attributes):
            r = analysis.response(table, attr, score=score, by=by, n_boot=n_boot, level=level, seed=seed)
            groups = list(r.groupby(by, sort=True)) if by else [(None, r)]
            shades = _shades(colors[attr], len(groups)) if by else [colors[attr]]
            for (key, g), c in zip(groups, shades):
                name = None if by is None else f"{by.split('_')[0].replace('lam', 'λ')} = {key:g}"
                ax.fill_between(g.alpha, g.lo, g.hi, color=c, alpha=0.25, lw=0)
                ax.plot(g.alpha, g["mean"], "o-", color=c, ms=4, label=name)
            base = table[f"score_{score or attr}"][table["setting"] == "base"] if "setting" in table.columns else []
            if len(base):
                ax.axhline(float(base.mean()), ls="--", color="0.3", lw=1, label="base model")
            shade_bands(ax)
            ax.set(title=attr, xlabel=f"α ({attr})", ylabel=_label(score or attr))
            if by or len(base):
                ax.legend(fontsize="small")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def perplexity_curve(
    table: Any,
    attributes: Sequence[str] | None = None,
    column: str = "wikitext_ppl",
    base: float | None = None,
    log: bool = True,
    agg: str = "median",
) -> Figure:
    """Perplexity against α, one line per attribute, bands shaded; the base model dashed.

    Args:
        table: one row per setting (:func:`clm.experiments.sweep.perplexity_table`), or a sweep table with
            ``column`` (e.g. ``"ppl"``, each continuation's perplexity under the base model);
            rows of attribute a are those with ``target == a``.
        base: the base model's perplexity (default: the setting ``"base"``, if present).
        agg: how rows of one setting are combined (median: robust to a few degenerate samples).
    """
    keep = {c: "first" for c in table.columns if c in ("target", "design") or c.startswith("alpha_")}
    t = table.groupby("setting", sort=False, dropna=False, as_index=False).agg({**keep, column: agg})
    attributes = list(attributes) if attributes is not None else [a for a in t["target"].dropna().unique()]
    if base is None and "setting" in t.columns and (t["setting"] == "base").any():
        base = float(t.loc[t["setting"] == "base", column].iloc[0])
    colors = attribute_colors(attributes)
    with style():
        fig, (ax,) = _panels(1, width=5.0, height=3.5)
        for attr in attributes:
            g = analysis.rows_for(t, attr).sort_values(f"alpha_{attr}")
            ax.plot(g[f"alpha_{attr}"], g[column], "o-", ms=4, color=colors[attr], label=attr)
        if base is not None:
            ax.axhline(base, ls="--", color="0.3", lw=1, label="base model")
        if log:
            from matplotlib.ticker import FuncFormatter

            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        shade_bands(ax)
        ax.set(xlabel="α", ylabel="perplexity")
        ax.legend(fontsize="small")
        fig.tight_layout()
    return fig


def loss_curves(path: str | os.PathLike):
    """Train loss (lines) and held-out loss (dots) per step: one panel per attribute, one colour per pole.

    Args:
        path: a run dir or an endpoints dir (:func:`clm.train.logs.loss_table`).

    Returns:
        The seaborn ``FacetGrid`` (``.figure`` is the matplotlib figure).
    """
    from clm.core.attributes import POLES
    from clm.errors import DataError
    from clm.train.logs import loss_table

    df = loss_table(path)
    if df.empty:
        raise DataError(f"no training logs in {str(path)!r} (a run dir's train/ or an endpoints dir)")
    palette = dict(zip(POLES, sns.color_palette("colorblind", 2)))
    g = sns.relplot(
        data=df[df.split == "train"],
        x="step",
        y="loss",
        hue="pole",
        hue_order=POLES,
        palette=palette,
        col="attribute",
        col_wrap=min(3, df.attribute.nunique()),
        kind="line",
        height=2.6,
        aspect=1.3,
        facet_kws=dict(sharey=False),
    )
    for attr, ax in g.axes_dict.items():
        ev = df[(df.split == "eval") & (df.attribute == attr)]
        sns.lineplot(
            data=ev,
            x="step",
            y="loss",
            hue="pole",
            hue_order=POLES,
            palette=palette,
            marker="o",
            linestyle="--",
            ax=ax,
            legend=False,
        )
        names = df[df.attribute == attr].drop_duplicates("pole").set_index("pole").pole_name
        ax.set_title(f"{attr}: {names.get('low', '?')} (low) / {names.get('high', '?')} (high)", fontsize=9)
    g.set_axis_labels("optimizer step", "loss (nats/token)")
    if g.legend is not None:
        g.legend.set_title("pole (dashed: held-out)")
    return g


def _heatmap(
    matrix: Any, title: str | None, cmap: str, vmin: float | None, vmax: float | None, center: float | None, fmt: str
) -> Figure:
    n_rows, n_cols = matrix.shape
    with style():
        fig, ax = plt.subplots(figsize=(2.0 + 0.9 * n_cols, 1.2 + 0.75 * n_rows))
        with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib deprecates
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(
                matrix.astype(float),
                annot=True,
                fmt=fmt,
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                center=center,
                square=True,
                cbar=True,
                ax=ax,
                linewidths=0.5,
                annot_kws={"fontsize": 9},
            )
        ax.tick_params(axis="x", rotation=45)
        ax.tick_params(axis="y", rotation=0)
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig


def entanglement_heatmap(matrix: Any, title: str | None = "entanglement") -> Figure:
    """The entanglement matrix (:func:`clm.experiments.analysis.entanglement`): rows the attribute whose α
    moves, columns the attribute scored; a diverging scale centred on 0."""
    m = float(np.nanmax(np.abs(matrix.to_numpy(dtype=float)))) if matrix.size else 1.0
    lim = max(1.0, m if np.isfinite(m) else 1.0)
    fig = _heatmap(matrix, title, "vlag", -lim, lim, 0.0, ".2f")
    fig.axes[0].set(ylabel="α of", xlabel="score of")
    return fig


def cosine_heatmap(matrix: Any, title: str | None = "cosine similarity of ΔW") -> Figure:
    """Cosine similarities (:func:`clm.experiments.geometry.cosine_matrix`) on a fixed [−1, 1] scale."""
    return _heatmap(matrix, title, "vlag", -1.0, 1.0, 0.0, ".2f")


def distance_heatmap(matrix: Any, title: str | None = "Frobenius distance of ΔW") -> Figure:
    """Distances (:func:`clm.experiments.geometry.distance_matrix`) on a sequential scale from 0."""
    return _heatmap(matrix, title, "rocket_r", 0.0, None, None, ".3g")


def spider(
    table: Any,
    by: str = "setting",
    attributes: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    title: str | None = None,
) -> Figure:
    """Radar plot: the mean score of every attribute, one polygon per value of ``by``.

    Args:
        table: a sweep table (``score_<attr>`` columns).
        by: the column whose values become polygons (e.g. ``"setting"`` or ``"alpha_humor"``).
        attributes: the axes (default: every ``score_`` column).
        groups: which values of ``by`` to draw, in this order (default: all, sorted).
    """
    attributes = (
        list(attributes) if attributes is not None else [c[6:] for c in table.columns if c.startswith("score_")]
    )
    if len(attributes) < 3:
        raise ConfigError(f"a spider plot needs >= 3 scored attributes, got {attributes}")
    means = table.groupby(by, sort=True)[[f"score_{a}" for a in attributes]].mean()
    if groups is not None:
        means = means.loc[list(groups)]
    angles = np.linspace(0, 2 * np.pi, len(attributes), endpoint=False)
    closed = np.append(angles, angles[:1])
    with style():
        fig = plt.figure(figsize=(5.0, 4.6))
        ax = fig.add_subplot(projection="polar")
        pal = sns.color_palette(PALETTE if len(means) <= 10 else "viridis", len(means))
        for (key, row), c in zip(means.iterrows(), pal):
            v = np.append(row.to_numpy(float), row.to_numpy(float)[:1])
            ax.plot(closed, v, "o-", color=c, ms=3, lw=1.5, label=f"{key:g}" if isinstance(key, float) else str(key))
            ax.fill(closed, v, color=c, alpha=0.08)
        ax.set_xticks(angles, [_label(a) for a in attributes])
        ax.set_ylim(0, 1)
        ax.set_yticks([0.25, 0.5, 0.75], ["0.25", "0.5", "0.75"], fontsize="small")
        ax.set_rlabel_position(180 / len(attributes))  # between the first two axes
        ax.legend(loc="upper left", bbox_to_anchor=(1.05, 1.0), fontsize="small", title=by)
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig


def barycentric(lam: np.ndarray) -> np.ndarray:
    """(n, 3) simplex points -> (n, 2) plane: vertex 0 at (0, 0), 1 at (1, 0), 2 at (½, √3/2)."""
    lam = np.asarray(lam, dtype=float)
    lam = lam / lam.sum(axis=1, keepdims=True)
    return np.stack([lam[:, 1] + 0.5 * lam[:, 2], np.sqrt(3) / 2 * lam[:, 2]], axis=1)  # (n, 2)


def ternary(
    table: Any,
    attributes: Sequence[str],
    scores: Sequence[str] | None = None,
    cmap: str = "viridis",
    title: str | None = None,
) -> Figure:
    """Ternary heatmaps over the simplex of λ for three attributes: the mean score of each
    attribute in ``scores`` (default the same three) at every λ point, one panel each.

    Args:
        table: a sweep table of the simplex design (``lam_<attr>`` columns).
        attributes: the three attributes whose λ span the simplex (the vertices).
    """
    import matplotlib.tri as mtri

    attributes = list(attributes)
    if len(attributes) != 3:
        raise ConfigError(f"a ternary plot needs exactly 3 attributes, got {attributes}")
    scores = list(scores) if scores is not None else attributes
    lam_cols = [f"lam_{a}" for a in attributes]
    means = table.groupby(lam_cols, sort=True)[[f"score_{s}" for s in scores]].mean().reset_index()
    xy = barycentric(means[lam_cols].to_numpy())
    tri = mtri.Triangulation(xy[:, 0], xy[:, 1])
    corners = barycentric(np.eye(3))
    with style():
        fig, axes = _panels(len(scores), width=3.8, height=3.6, layout="constrained")
        for ax, s in zip(axes, scores):
            v = means[f"score_{s}"].to_numpy(float)
            im = ax.tripcolor(tri, v, shading="gouraud", cmap=cmap, vmin=0, vmax=1)
            ax.scatter(xy[:, 0], xy[:, 1], c="white", s=6, lw=0)
            ax.plot(*np.vstack([corners, corners[:1]]).T, color="0.2", lw=1)
            for (x, y), a, dy in zip(corners, attributes, (-0.08, -0.08, 0.07)):
                ax.text(x, y + dy, f"λ {a}", ha="center", va="center", fontsize="small")
            ax.set(xlim=(-0.12, 1.12), ylim=(-0.14, np.sqrt(3) / 2 + 0.12), aspect="equal")
            ax.axis("off")
            ax.set_title(_label(s))
        fig.colorbar(im, ax=axes, shrink=0.75, label="mean score")
        if title:
            fig.suptitle(title)
    return fig


def mds_scatter(embedding: Any, title: str | None = "MDS of interpolated weights") -> Figure:
    """The MDS embedding (:func:`clm.experiments.geometry.mds_embedding`): each attribute's α path as a line
    (light in the extrapolation bands), its endpoints α = 0, 1 marked, the base model a star."""
    attrs = list(embedding["target"].dropna().unique()) if "target" in embedding.columns else []
    colors = attribute_colors(attrs)
    with style():
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        for attr in attrs:
            g = analysis.rows_for(embedding, attr).sort_values(f"alpha_{attr}")
            a = g[f"alpha_{attr}"].to_numpy()
            ax.plot(g.x, g.y, "-", color=colors[attr], lw=1, alpha=0.5)
            inside = (a >= 0) & (a <= 1)
            ax.scatter(g.x[inside], g.y[inside], color=colors[attr], s=18, label=attr, zorder=3)
            ax.scatter(g.x[~inside], g.y[~inside], facecolor="none", edgecolor=colors[attr], s=18, zorder=3)
            for pole, at in (("low", 0.0), ("high", 1.0)):
                hit = np.isclose(a, at)
                if hit.any():
                    name = getattr(ATTRIBUTES[attr], pole) if attr in ATTRIBUTES else pole
                    ax.annotate(
                        name,
                        (g.x[hit].iloc[0], g.y[hit].iloc[0]),
                        fontsize="x-small",
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        rest = embedding[embedding["target"].isna()] if "target" in embedding.columns else embedding
        is_base = rest["setting"] == "base"
        ax.scatter(rest.x[~is_base], rest.y[~is_base], color="0.5", s=14, label="other" if (~is_base).any() else None)
        ax.scatter(
            rest.x[is_base],
            rest.y[is_base],
            marker="*",
            color="black",
            s=120,
            label="base" if is_base.any() else None,
            zorder=4,
        )
        ax.set(xlabel="MDS 1", ylabel="MDS 2")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize="small", loc="best")
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig


def save(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> None:
    """Save a figure as PNG (or by suffix) at a fixed dpi, creating the directory."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    from clm.io import atomic_write

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"  # the temp file's name has no suffix to go by
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt))
