"""Matrices (entanglement, cosine, distance) as heatmaps, and the MDS map of the weights."""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from clm.core.attributes import ATTRIBUTES
from clm.experiments import analysis
from clm.plots.style import BASE_COLOR, WIDTH_IN, attribute_colors, color_ticklabels, style


def _heatmap(
    matrix: Any, title: str | None, cmap: str, vmin: float | None, vmax: float | None, center: float | None, fmt: str
) -> Figure:
    n_rows, n_cols = matrix.shape
    with style():
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 1.6 + 0.42 * n_rows))
        with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib deprecates
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(
                matrix.astype(float), annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, center=center,
                square=False, cbar=True, ax=ax, linewidths=0.5, annot_kws={"fontsize": 8.5},
            )  # fmt: skip
        ax.tick_params(axis="x", rotation=35 if n_cols > 5 else 0)
        for t in ax.get_xticklabels():
            t.set_ha("right" if n_cols > 5 else "center")
        ax.tick_params(axis="y", rotation=0)
        color_ticklabels(ax.get_xticklabels() + ax.get_yticklabels())
        if title:
            ax.set_title(title)
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


def _sparse_labels(ax: Any, cands: list[tuple[float, float, str, Any]], centre: np.ndarray, gap: float) -> None:
    """Annotate the candidates (x, y, text, colour) farthest from ``centre`` first, skipping any within
    ``gap`` (data units) of one already placed; each text is pushed away from the centre."""
    placed: list[np.ndarray] = []
    for x, y, text, c in sorted(cands, key=lambda t: -np.hypot(t[0] - centre[0], t[1] - centre[1])):
        p = np.array([x, y])
        if any(np.linalg.norm(p - q) < gap for q in placed):
            continue
        placed.append(p)
        d = p - centre
        d = d / (np.linalg.norm(d) or 1.0)
        ax.annotate(text, (x, y), xytext=(9 * d[0], 9 * d[1]), textcoords="offset points", color=c,
                    ha="left" if d[0] >= 0 else "right", va="bottom" if d[1] >= 0 else "top")  # fmt: skip


def mds_scatter(embedding: Any, title: str | None = "MDS of interpolated weights", other_label: str = "other") -> Figure:
    """The MDS embedding (:func:`clm.experiments.geometry.mds_embedding`): each attribute's α path as a
    line in its colour, α in [0, 1] filled and outside it hollow, the base model a star; only each
    path's two far ends are labelled (pole name and α), away from the centre, except where a label
    would crowd another; the legend to the right, the rows of no attribute as ``other_label``."""
    attrs = list(embedding["target"].dropna().unique()) if "target" in embedding.columns else []
    colors = attribute_colors(attrs)
    span = float(np.ptp(embedding[["x", "y"]].to_numpy(float), axis=0).max()) if len(embedding) else 1.0
    centre = embedding[["x", "y"]].to_numpy(float).mean(axis=0) if len(embedding) else np.zeros(2)
    cands = []
    with style():
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 4.2))
        for attr in attrs:
            g = analysis.rows_for(embedding, attr).sort_values(f"alpha_{attr}")
            a = g[f"alpha_{attr}"].to_numpy()
            ax.plot(g.x, g.y, "-", color=colors[attr], lw=1, alpha=0.6)
            inside = (a >= 0) & (a <= 1)
            ax.scatter(g.x[inside], g.y[inside], color=colors[attr], s=20, label=attr, zorder=3)
            ax.scatter(g.x[~inside], g.y[~inside], facecolor="white", edgecolor=colors[attr], s=20, zorder=3)
            for i, pole in ((0, "low"), (len(a) - 1, "high")):
                name = getattr(ATTRIBUTES[attr], pole) if attr in ATTRIBUTES else pole
                cands.append((float(g.x.iloc[i]), float(g.y.iloc[i]), f"{name} (α={a[i]:g})", colors[attr]))
        rest = embedding[embedding["target"].isna()] if "target" in embedding.columns else embedding
        is_base = rest["setting"] == "base"
        if (~is_base).any():
            ax.scatter(rest.x[~is_base], rest.y[~is_base], color="0.6", s=14, label=other_label)
        if is_base.any():
            ax.scatter(rest.x[is_base], rest.y[is_base], marker="*", color=BASE_COLOR, s=120, label="base", zorder=4)
        _sparse_labels(ax, cands, centre, gap=0.12 * span)
        ax.set(xlabel="MDS 1", ylabel="MDS 2")
        ax.set_aspect("equal", adjustable="datalim")
        ax.margins(0.15)
        handles = ax.get_legend_handles_labels()[0]
        handles.append(Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", label="α outside [0, 1]"))
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5))
        if title:
            ax.set_title(title)
        _keep_inside(fig, ax)
    return fig


def _keep_inside(fig: Figure, ax: Any) -> None:
    """Turn a label that sticks out of the axes (over the tick labels) back towards the inside."""
    fig.draw_without_rendering()
    for t in ax.texts:
        bb = t.get_window_extent()
        if bb.x0 < ax.bbox.x0:
            t.set_ha("left")
            t.set_position((abs(t.get_position()[0]), t.get_position()[1]))
        elif bb.x1 > ax.bbox.x1:
            t.set_ha("right")
            t.set_position((-abs(t.get_position()[0]), t.get_position()[1]))
