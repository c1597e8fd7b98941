"""Figures of the control chapter (7): the controller's fitted response curves, requested against
achieved scores, joint against naive targeting of two attributes, and scheduled α over a
generation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from clm.errors import ConfigError
from clm.plots.style import (
    ROW_IN,
    SERIES_COLORS,
    attribute_colors,
    band_handles,
    grid,
    score_label,
    shade_bands,
    shades,
    shared_legend,
    style,
)

#: One marker per method (with :data:`SERIES_COLORS`), in order of appearance.
MARKERS = ("o", "s", "^", "D", "v", "P")
#: The two-sided normal quantile of a 95 % interval (error bars of ±1.96 standard errors).
Z95 = 1.96


def _order(values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


def method_styles(methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) of each method, fixed by its position in ``methods``."""
    return {m: (SERIES_COLORS[i % len(SERIES_COLORS)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def square_limits(values: Any, margin: float = 0.06) -> tuple[float, float]:
    """One (lo, hi) range for both axes of a requested-against-achieved panel, covering ``values``
    with a margin of ``margin`` of their span on each side."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    pad = margin * max(hi - lo, 0.05)
    return lo - pad, hi + pad


def control_curves(curves: Mapping[str, Any], targets: Mapping[str, Sequence[float]] | None = None,
                   ncols: int | None = None) -> Figure:  # fmt: skip
    """The controller's response curves, one panel per attribute (at most three a row): the
    measured mean score on the dev prompts at each α (dots), the monotone fit (line) and its
    bootstrap band (shaded), in the attribute's colour; the interpolation band [0, 1] shaded and
    the extrapolation bands hatched; requested scores, if given, as short ticks on the right edge.

    Args:
        curves: attribute -> a table with columns alpha, mean, fit, lo, hi
            (:meth:`clm.experiments.control.Controller.curve`).
        targets: attribute -> the scores asked for (e.g. the chapter's single-attribute targets).
        ncols: panels per row (default: up to 3; 2 for four panels).
    """
    attrs = list(curves)
    if not attrs:
        raise ConfigError("control_curves: no curves given")
    colors, targets = attribute_colors(attrs), dict(targets or {})
    with style():
        fig, axes, spare = grid(len(attrs), ncols=ncols)
        for ax, a in zip(axes, attrs):
            c = curves[a].sort_values("alpha")
            ax.fill_between(c.alpha, c.lo, c.hi, color=colors[a], alpha=0.25, lw=0)
            ax.plot(c.alpha, c.fit, color=colors[a], lw=1.6)
            ax.plot(c.alpha, c["mean"], "o", color=colors[a], ms=3.5, mec="white", mew=0.4)
            if targets.get(a) is not None and len(targets[a]):
                ax.hlines(list(targets[a]), 0.95, 1.0, transform=ax.get_yaxis_transform(), color="black", lw=1.6)
            shade_bands(ax)
            ax.set(title=a, xlabel=f"α ({a})", ylabel=score_label(a))
        handles = [Line2D([], [], ls="none", marker="o", ms=3.5, color="0.35", label="measured mean (dev prompts)"),
                   Line2D([], [], color="0.35", lw=1.6, label="monotone fit"),
                   Patch(facecolor="0.35", alpha=0.25, lw=0, label="bootstrap band of the fit")]  # fmt: skip
        if any(targets.get(a) is not None and len(targets[a]) for a in attrs):
            handles.append(Line2D([], [], color="black", lw=1.6, label="requested scores (right edge)"))
        shared_legend(fig, handles + band_handles(axes), spare)
    return fig


def _data_pixels(ax: Any, skip: int = 1) -> np.ndarray:
    """Display coordinates of the panel's data: every line's points (after the first ``skip``, the
    diagonal) and the ends and middle of every segment (error bars, intervals)."""
    pts = [np.c_[ln.get_xdata(), ln.get_ydata()] for ln in ax.lines[skip:]]
    for c in ax.collections:
        for seg in getattr(c, "get_segments", list)():
            seg = np.asarray(seg, dtype=float)
            pts.append(np.r_[seg, seg.mean(axis=0, keepdims=True)])
    return ax.transData.transform(np.concatenate(pts)) if pts else np.empty((0, 2))


def _mae_corner(ax: Any, lines: list[tuple[str, str]]) -> None:
    """The panel's MAE per method in the first corner off the diagonal (upper left, lower right)
    whose text covers no data (the figure drawn: its layout is final); else under the title."""
    renderer, pts = ax.figure.canvas.get_renderer(), _data_pixels(ax)
    for x, y, ha, va, step in ((0.0, 1.0, "left", "top", -11), (1.0, 0.0, "right", "bottom", 11)):
        texts = [ax.annotate(text, (x, y), xycoords="axes fraction", xytext=(4 if x == 0 else -4, step * k + step / 3),
                             textcoords="offset points", ha=ha, va=va, color=color, fontsize=8)
                 for k, (text, color) in enumerate(lines if step < 0 else lines[::-1])]  # fmt: skip
        boxes = [t.get_window_extent(renderer).padded(2) for t in texts]
        if not any(bb.contains(px, py) for bb in boxes for px, py in pts):
            return
        for t in texts:
            t.remove()
    ax.set_title(ax.get_title() + "\n" + " · ".join(text for text, _ in lines), fontsize=8.5)


def requested_vs_achieved(df: Any, methods: Sequence[str] | None = None, ncols: int | None = None) -> Figure:
    """Achieved mean score against the score asked for, one panel per attribute: the diagonal
    (perfect control) dashed, each plan's achieved mean with ±1.96 standard errors, the
    controller's predicted interval for it as a thin bar at the requested score, one colour and
    marker per method (methods side by side); both axes on one range; each panel's mean absolute
    error per method in an empty corner; one legend outside the data.

    Args:
        df: one row per (plan, attribute): attribute, requested, achieved, se, lo, hi, and
            optionally method (e.g. "joint", "naive", "before", "after"; default one method)
            (:func:`clm.experiments.control_runs.achieved`).
        methods: the methods to draw, in this order (default: as they appear).
        ncols: panels per row (default: up to 3, the last row's spare slots holding the legend).
    """
    df = df.copy()
    if "method" not in df.columns:
        df["method"] = "controller"
    methods = list(methods) if methods is not None else _order(df.method)
    attrs, styles = _order(df.attribute), method_styles(methods)
    if not attrs:
        raise ConfigError("requested_vs_achieved: the table has no rows")
    with style():
        n, ncols = len(attrs), min(len(attrs), ncols or 3)
        below = 0.0 if n % ncols else 0.6 / -(-n // ncols)  # no spare slot: room for the legend below
        fig, axes, spare = grid(n, ncols=ncols, row_in=ROW_IN * 0.96 + below)  # square panels, 3 a row
        notes: list[list[tuple[str, str]]] = []
        for ax, a in zip(axes, attrs):
            d = df[(df.attribute == a) & df.method.isin(methods)]
            lim = square_limits(np.r_[d.requested, d.achieved - Z95 * d.se, d.achieved + Z95 * d.se, d.lo, d.hi])
            ax.plot(lim, lim, ls="--", color="0.45", lw=0.9, zorder=1)
            width, lines = 0.012 * (lim[1] - lim[0]), []
            for i, m in enumerate(methods):
                g, (color, marker) = d[d.method == m], styles[m]
                if g.empty:
                    continue
                x = g.requested + (i - (len(methods) - 1) / 2) * width * 2
                ax.vlines(x, g.lo, g.hi, color=color, lw=3.5, alpha=0.3, zorder=2)
                ax.errorbar(x, g.achieved, yerr=Z95 * g.se, fmt=marker, color=color, ms=4, lw=1, capsize=0, zorder=3)
                mae = float(np.mean(np.abs(g.achieved - g.requested)))
                lines.append((f"MAE {mae:.3f}" if len(methods) == 1 else f"MAE {m} {mae:.3f}", shades(color, 3)[2]))
            ax.set(xlim=lim, ylim=lim, title=a, xlabel=f"requested {score_label(a)}", ylabel=f"achieved {score_label(a)}")
            ax.set_aspect("equal", adjustable="box")
            notes.append(lines)
        handles = [Line2D([], [], ls="none", marker=styles[m][1], color=styles[m][0], ms=4, label=m) for m in methods
                   if (df.method == m).any()] if len(methods) > 1 else []  # fmt: skip
        handles += [Line2D([], [], ls="none", marker="o", color="0.35", ms=4, label="achieved mean ± 1.96 s.e."),
                    Line2D([], [], color="0.35", lw=3.5, alpha=0.3, label="predicted interval"),
                    Line2D([], [], color="0.45", ls="--", lw=0.9, label="achieved = requested")]  # fmt: skip
        shared_legend(fig, handles, spare)
        fig.canvas.draw()
        for ax, lines in zip(axes, notes):
            _mae_corner(ax, lines)
    return fig


def joint_grid(df: Any, pair: Sequence[str], methods: Sequence[str] | None = None) -> Figure:
    """Two attributes targeted together: each plan's requested pair of scores (open squares) and,
    per method, an arrow from it to the pair achieved (a filled marker); both axes on one range;
    the legend to the right of the axes.

    Args:
        df: one row per (plan, attribute): plan, method ("joint" or "naive"), attribute,
            requested, achieved (:func:`clm.experiments.control_runs.achieved`); rows of other
            attributes are ignored.
        pair: the two attributes (x, y).
        methods: the methods to draw, in this order (default: as they appear).
    """
    if len(pair) != 2:
        raise ConfigError(f"joint_grid: pair needs exactly 2 attributes, got {list(pair)!r}")
    x, y = pair
    d = df[df.attribute.isin(pair)]
    wide = d.pivot_table(index=["plan", "method"], columns="attribute", values=["requested", "achieved"])
    wide.columns = [f"{v}_{a}" for v, a in wide.columns]
    wide = wide.dropna().reset_index() if len(wide.columns) == 4 else wide.iloc[:0].reset_index()
    if wide.empty:
        raise ConfigError(f"joint_grid: no plan has rows for both {x!r} and {y!r}")
    methods = list(methods) if methods is not None else _order(wide.method)
    styles, colors = method_styles(methods), attribute_colors(pair)
    rx, ry, gx, gy = f"requested_{x}", f"requested_{y}", f"achieved_{x}", f"achieved_{y}"
    with style():
        fig, (ax,), _ = grid(1, row_in=3.3)
        for m in methods:
            g, (color, marker) = wide[wide.method == m], styles[m]
            arrow = dict(arrowstyle="-|>", color=color, lw=1, alpha=0.8, shrinkA=3, shrinkB=2, mutation_scale=8)
            for x0, y0, x1, y1 in zip(g[rx], g[ry], g[gx], g[gy]):
                ax.annotate("", (x1, y1), (x0, y0), arrowprops=arrow)
            ax.plot(g[gx], g[gy], ls="none", marker=marker, color=color, ms=5, zorder=3)
        req = wide[[rx, ry]].drop_duplicates()
        ax.plot(req[rx], req[ry], ls="none", marker="s", mfc="none", mec="black", ms=7, mew=1.1, zorder=4)
        lim = square_limits(wide[[rx, ry, gx, gy]].to_numpy().ravel())
        ax.set(xlim=lim, ylim=lim, xlabel=f"{x}: {score_label(x)}", ylabel=f"{y}: {score_label(y)}")
        ax.xaxis.label.set_color(colors[x])
        ax.yaxis.label.set_color(colors[y])
        ax.set_aspect("equal", adjustable="box")
        handles = [Line2D([], [], ls="none", marker="s", mfc="none", mec="black", ms=7, mew=1.1, label="requested")]
        handles += [Line2D([], [], color=styles[m][0], marker=styles[m][1], ms=5, lw=1, label=f"{m}: achieved")
                    for m in methods if (wide.method == m).any()]  # fmt: skip
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.04, 0.5))
    return fig


def schedule_arc(df: Any, attribute: str = "sentiment", schedule: Any = None,
                 labels: Sequence[str] | None = None, band: str = "95% CI") -> Figure:  # fmt: skip
    """A score over the course of a generation: one line per label (e.g. a scheduled arc and the
    fixed α it moves between) of the mean score of a window of generated tokens against the
    window's end, with its band; the scheduled α, if given, dashed on a second y axis; the legend
    below the axes.

    Args:
        df: columns label, position (token index at the end of a window), mean, lo, hi.
        attribute: the attribute scored (for the y label).
        schedule: a table with columns position, alpha: the α the arc asks for at each token.
        labels: the labels to draw, in this order (default: as they appear).
        band: what lo..hi is, for the legend.
    """
    labels = list(labels) if labels is not None else _order(df.label)
    if not labels:
        raise ConfigError("schedule_arc: the table has no rows")
    with style():
        fig, (ax,), _ = grid(1, row_in=2.7)
        handles = []
        for i, lab in enumerate(labels):
            g, color = df[df.label == lab].sort_values("position"), SERIES_COLORS[i % len(SERIES_COLORS)]
            ax.fill_between(g.position, g.lo, g.hi, color=color, alpha=0.2, lw=0)
            ax.plot(g.position, g["mean"], "o-", color=color, ms=3, lw=1.4)
            handles.append(Line2D([], [], color=color, marker="o", ms=3, lw=1.4, label=lab))
        ax.set(xlabel="generated tokens (end of window)", ylabel=score_label(attribute))
        if schedule is not None:
            s = schedule.sort_values("position")
            twin = ax.twinx()
            twin.grid(False)
            twin.plot(s.position, s.alpha, ls="--", color="0.3", lw=1)
            twin.set_ylabel("scheduled α", color="0.3")
            handles.append(Line2D([], [], ls="--", color="0.3", lw=1, label="scheduled α (right axis)"))
        handles.append(Patch(facecolor="0.5", alpha=0.2, lw=0, label=f"band: {band}"))
        shared_legend(fig, handles)
    return fig
