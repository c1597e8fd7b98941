"""Figures over several attributes at once: spider (radar) plots and ternary maps of the λ simplex."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from clm.core.attributes import ATTRIBUTES
from clm.errors import ConfigError
from clm.plots.style import (
    BASE_COLOR,
    ROW_IN,
    SERIES_COLORS,
    attribute_colors,
    grid,
    score_label,
    shared_legend,
    style,
)


def _name(key: Any) -> str:
    return f"{key:g}" if isinstance(key, float) else str(key)


def spider_panels(groups: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Small multiples for :func:`spider`: the first group (the reference) goes in every panel; the
    others, named ``"<panel>, <curve>"`` (e.g. ``"λ=0.8, α=0"``), are grouped by ``<panel>`` and
    labelled ``<curve>``; if any has no ``", "``, all go in one panel under their own names.

    Returns:
        panel title -> {legend label: value of ``by``}, the reference excluded.
    """
    names = [_name(g) for g in groups[1:]]
    if not names or any(", " not in n for n in names):
        return {"": {n: g for n, g in zip(names, groups[1:])}}
    panels: dict[str, dict[str, Any]] = {}
    for n, g in zip(names, groups[1:]):
        head, _, rest = n.partition(", ")
        panels.setdefault(head, {})[rest] = g
    return panels


def _radar(ax: Any, means: Any, series: list[tuple[Any, str, Any, str]], attributes: Sequence[str]) -> None:
    """One radar panel: a polygon per (value of ``by``, label, colour, line style); the axes named
    by each attribute's high pole, in the attribute's colour."""
    angles = np.linspace(0, 2 * np.pi, len(attributes), endpoint=False)
    closed = np.append(angles, angles[:1])
    for key, lab, c, ls in series:
        v = means.loc[key].to_numpy(float)
        v = np.append(v, v[:1])
        ax.plot(closed, v, "o", ls=ls, color=c, ms=3, lw=1.5, label=lab)
        ax.fill(closed, v, color=c, alpha=0.06)
    ax.set_xticks(angles, [ATTRIBUTES[a].high if a in ATTRIBUTES else a for a in attributes])
    ax.tick_params(axis="x", pad=9)
    colors = attribute_colors(attributes)
    for t, a in zip(ax.get_xticklabels(), attributes):
        t.set_color(colors[a])
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75], ["", "0.5", ""])
    ax.set_rlabel_position(180 / len(attributes))  # between the first two axes


def spider(
    table: Any,
    by: str = "setting",
    attributes: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    title: str | None = None,
    panels: Mapping[str, Mapping[str, Any]] | None = None,
    reference: Any = None,
) -> Figure:
    """Radar plots: the mean score of every attribute (one axis each, named by its high pole), one
    polygon per value of ``by``. More than four polygons are split into small multiples
    (:func:`spider_panels`), the reference drawn in every panel; one legend below the panels.

    Args:
        table: a sweep table (``score_<attr>`` columns).
        by: the column whose values become polygons (e.g. ``"setting"`` or ``"alpha_humor"``).
        attributes: the axes (default: every ``score_`` column).
        groups: which values of ``by`` to draw, in this order (default: all, sorted).
        panels: panel title -> {legend label: value of ``by``}; overrides the split of ``groups``.
        reference: the value of ``by`` drawn in every panel (dashed); default the first group when
            the groups are split.
    """
    attributes = (
        list(attributes) if attributes is not None else [c[6:] for c in table.columns if c.startswith("score_")]
    )
    if len(attributes) < 3:
        raise ConfigError(f"a spider plot needs >= 3 scored attributes, got {attributes}")
    means = table.groupby(by, sort=True)[[f"score_{a}" for a in attributes]].mean()
    groups = list(groups) if groups is not None else list(means.index)
    if panels is None and len(groups) > 4:
        reference, panels = groups[0] if reference is None else reference, spider_panels(groups)
    elif panels is None:
        panels = {"": {_name(g): g for g in groups if g != reference}}
    labels = list(dict.fromkeys(lab for p in panels.values() for lab in p))
    colors = dict(zip(labels, SERIES_COLORS * (len(labels) // len(SERIES_COLORS) + 1)))
    with style():
        fig, axes, spare = grid(len(panels), row_in=ROW_IN * 1.15, subplot_kw=dict(projection="polar"))
        for ax, (head, members) in zip(axes, panels.items()):
            series = ([(reference, _name(reference), BASE_COLOR, "--")] if reference is not None else []) + [
                (g, lab, colors[lab], "-") for lab, g in members.items()
            ]
            _radar(ax, means, series, attributes)
            if head:
                ax.set_title(head)
        handles = ([Line2D([], [], ls="--", marker="o", ms=3, color=BASE_COLOR, label=_name(reference))]
                   if reference is not None else [])  # fmt: skip
        handles += [Line2D([], [], marker="o", ms=3, color=colors[lab], label=lab) for lab in labels]
        shared_legend(fig, handles, spare, title=None if len(panels) > 1 else by)
        if title:
            fig.suptitle(title)
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
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Ternary heatmaps over the simplex of λ for three attributes: the mean score of each
    attribute in ``scores`` (default the same three) at every λ point, one panel each, on one
    colour scale spanning the data (rounded out to 0.05) unless ``vmin``/``vmax`` are given; each
    corner named (in the attribute's colour) outside the triangle.

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
    values = means[[f"score_{s}" for s in scores]].to_numpy(float)
    finite = values[np.isfinite(values)]
    lo = vmin if vmin is not None else np.floor(finite.min() * 20) / 20 if finite.size else 0.0
    hi = vmax if vmax is not None else np.ceil(finite.max() * 20) / 20 if finite.size else 1.0
    hi = hi if hi > lo else lo + 0.05
    colors = attribute_colors(attributes + scores)
    with style():
        fig, axes, _ = grid(len(scores), row_in=3.1)
        for ax, s in zip(axes, scores):
            im = ax.tripcolor(tri, means[f"score_{s}"].to_numpy(float), shading="gouraud", cmap=cmap, vmin=lo, vmax=hi)
            ax.scatter(xy[:, 0], xy[:, 1], c="white", s=6, lw=0)
            ax.plot(*np.vstack([corners, corners[:1]]).T, color="0.2", lw=1)
            for (x, y), a, va, dy in zip(corners, attributes, ("top", "top", "bottom"), (-0.04, -0.04, 0.04)):
                ax.text(x, y + dy, a, ha="center", va=va, color=colors[a])
            ax.set(xlim=(-0.26, 1.26), ylim=(-0.16, np.sqrt(3) / 2 + 0.14), aspect="equal")
            ax.axis("off")
            ax.set_title(score_label(s), color=colors[s])
        fig.colorbar(im, ax=axes, shrink=0.8, label="mean score", location="right" if len(scores) < 3 else "bottom",
                     aspect=40)  # fmt: skip
        if title:
            fig.suptitle(title)
    return fig
