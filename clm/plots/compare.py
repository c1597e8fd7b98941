"""Figures of the comparison chapter (8): the control–fluency frontier of every method, the
off-target drift, and the mixture adapters against interpolation at α = m."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from clm.errors import ConfigError
from clm.plots.style import ROW_IN, SERIES_COLORS, WIDTH_IN, grid, score_label, shared_legend, style

#: Each method's colour and marker, the same in every figure of the chapter (interpolation, ours, in black).
METHOD_STYLES: dict[str, tuple[str, str]] = {
    "interpolation": ("#1a1a1a", "o"),
    "prompting": (SERIES_COLORS[0], "s"),
    "steering": (SERIES_COLORS[1], "^"),
    "logit-linear": (SERIES_COLORS[2], "D"),
    "logit-product": (SERIES_COLORS[3], "v"),
    "mixture": (SERIES_COLORS[5], "P"),
}


def method_style(method: str) -> tuple[str, str]:
    return METHOD_STYLES.get(method, (SERIES_COLORS[4], "X"))


def _order(values: Any, known: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [m for m in known if m in seen] + [m for m in seen if m not in known]


def frontier(fr: Any, attributes: Sequence[str] | None = None, methods: Sequence[str] | None = None,
             base_score: Mapping[str, float] | None = None, budget: float | None = None) -> Figure:  # fmt: skip
    """Mean score against the perplexity ratio, one panel per attribute, each method a line over
    its dial (in strength order, the highest strength marked by a larger marker) with 95 % intervals
    on both axes; the base model's score as a dotted line and the perplexity budget as a dashed one.

    Args:
        fr: :func:`clm.experiments.compare.frontier`'s table (method, attribute, strength,
            score_mean/lo/hi, ppl_ratio/lo/hi).
        base_score: attribute -> the base model's mean score (dotted).
        budget: a perplexity ratio to mark (dashed).
    """
    fr = fr.dropna(subset=["ppl_ratio"])
    if fr.empty:
        raise ConfigError("frontier: no rows with a perplexity ratio")
    attrs = list(attributes) if attributes is not None else list(dict.fromkeys(fr.attribute))
    methods = list(methods) if methods is not None else _order(fr.method, list(METHOD_STYLES))
    with style():
        n = len(attrs)
        ncols = min(n, 2 if n in (2, 4) else 3)
        fig, axes, spare = grid(n, ncols=ncols, row_in=ROW_IN * 1.15 + (0 if n % ncols else 0.5 / -(-n // ncols)))
        for ax, a in zip(axes, attrs):
            d = fr[fr.attribute == a]
            for m in methods:
                g = d[d.method == m].sort_values("strength")
                if g.empty:
                    continue
                color, marker = method_style(m)
                x, y = g.ppl_ratio.to_numpy(float), g.score_mean.to_numpy(float)
                ax.errorbar(x, y, yerr=[y - g.score_lo, g.score_hi - y], xerr=[x - g.ppl_lo, g.ppl_hi - x],
                            color=color, marker=marker, ms=3.5, lw=1.1, elinewidth=0.6, capsize=0, alpha=0.95)  # fmt: skip
                ax.plot(x[-1:], y[-1:], marker=marker, ms=7, color=color, mfc="white", mew=1.2, ls="none")
            if base_score and a in base_score:
                ax.axhline(base_score[a], color="0.45", ls=":", lw=0.9)
            if budget is not None:
                ax.axvline(budget, color="0.45", ls="--", lw=0.9)
            ax.set_xscale("log")
            ax.set(title=a, xlabel="perplexity ratio (log)", ylabel=f"mean {score_label(a)}")
            ticks = log_ticks(ax, (1, 1.5, 2, 4, 8, 0.8, 1.25, 3, 6))
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        handles = [Line2D([], [], color=method_style(m)[0], marker=method_style(m)[1], ms=4, label=m)
                   for m in methods if (fr.method == m).any()]  # fmt: skip
        handles.append(Line2D([], [], ls="none", marker="o", ms=7, mfc="white", mec="0.3", label="highest strength"))
        if base_score:
            handles.append(Line2D([], [], color="0.45", ls=":", lw=0.9, label="base model"))
        if budget is not None:
            handles.append(Line2D([], [], color="0.45", ls="--", lw=0.9, label=f"ratio {budget:g}"))
        shared_legend(fig, handles, spare)
    return fig


def log_ticks(ax: Any, candidates: Sequence[float], label_in: float = 0.34) -> list[float]:
    """The ``candidates`` (in order of preference) inside ``ax``'s log x-range that fit without
    their labels touching: each kept tick at least ``label_in`` inches from every other."""
    lo, hi = ax.get_xlim()
    fig = ax.get_figure()
    width_in = ax.get_position().width * fig.get_figwidth()
    per_in = (np.log10(hi) - np.log10(lo)) / max(width_in, 1e-6)  # log10 units per inch
    kept: list[float] = []
    for t in candidates:
        if lo <= t <= hi and all(abs(np.log10(t) - np.log10(k)) >= label_in * per_in for k in kept):
            kept.append(t)
    return sorted(kept)


def drift_matrix(metrics: Any, attributes: Sequence[str] | None = None, methods: Sequence[str] | None = None) -> Figure:
    """Off-target drift as a heat map: rows methods, columns attributes dialed, each cell the mean
    over the other attributes of the largest move of their mean score (:func:`clm.experiments.compare.metrics`'
    ``drift_mean``), written in the cell; blank where a method did not dial that attribute."""
    return method_matrix(metrics, "drift_mean", "drift", attributes, methods, decimals=3)


def method_matrix(metrics: Any, column: str, label: str, attributes: Sequence[str] | None = None,
                  methods: Sequence[str] | None = None, best: str | None = None, decimals: int = 2) -> Figure:  # fmt: skip
    """One metric as a heat map: rows methods, columns attributes, the value written in each cell
    to ``decimals`` places (blank where a method did not run on that attribute). ``best="max"``
    (or ``"min"``) outlines each column's best cell."""
    attrs = list(attributes) if attributes is not None else list(dict.fromkeys(metrics.attribute))
    methods = list(methods) if methods is not None else _order(metrics.method, list(METHOD_STYLES))
    m = np.full((len(methods), len(attrs)), np.nan)
    for i, me in enumerate(methods):
        for j, a in enumerate(attrs):
            v = metrics[(metrics.method == me) & (metrics.attribute == a)][column]
            if len(v):
                m[i, j] = float(v.iloc[0])
    with style():
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.42 * len(methods) + 1.0))
        top = np.nanmax(m) if np.isfinite(m).any() else 1.0
        im = ax.imshow(np.ma.masked_invalid(m), cmap="Greys", vmin=0, vmax=top * 1.6 if top > 0 else 1, aspect="auto")
        for i in range(len(methods)):
            for j in range(len(attrs)):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.{decimals}f}", ha="center", va="center", fontsize=8.5, color="black")
        if best in ("max", "min"):
            for j in range(len(attrs)):
                col = m[:, j]
                if np.isfinite(col).any():
                    i = int(np.nanargmax(col) if best == "max" else np.nanargmin(col))
                    ax.add_patch(plt.Rectangle((j - 0.48, i - 0.46), 0.96, 0.92, fill=False, lw=2, ec=SERIES_COLORS[0]))
        ax.set_xticks(range(len(attrs)), attrs)
        ax.set_yticks(range(len(methods)), methods)
        ax.tick_params(length=0)
        ax.grid(False)
        ax.set_xlabel("attribute dialed")
        fig.colorbar(im, ax=ax, label=label, shrink=0.9)
    return fig


def mixture_vs_interpolation(rows: Any) -> Figure:
    """Per trained attribute: the mean score of each mixture adapter against m, beside the
    interpolated model's at α = m (the endpoints at 0 and 1 shared), with 95 % intervals; and
    the relative distance of each mixture's ΔW from the interpolated ΔW (distance / the endpoints'
    distance) as bars on the right.

    Args:
        rows: one row per (attribute, source ∈ {"mixture", "interpolation"}, m): score_mean,
            score_lo, score_hi, and for the mixture rows ``ratio`` (NaN at the endpoints).
    """
    attrs = list(dict.fromkeys(rows.attribute))
    if not attrs:
        raise ConfigError("mixture_vs_interpolation: no rows")
    with style():
        fig, axes, _ = grid(2 * len(attrs), ncols=2, row_in=ROW_IN + 0.4 / len(attrs))
        for k, a in enumerate(attrs):
            ax, bx = axes[2 * k], axes[2 * k + 1]
            d = rows[rows.attribute == a]
            for src, shift in (("interpolation", -0.008), ("mixture", 0.008)):
                g = d[d.source == src].sort_values("m")
                color, marker = method_style(src)
                y = g.score_mean.to_numpy(float)
                ax.errorbar(g.m + shift, y, yerr=[y - g.score_lo, g.score_hi - y], color=color, marker=marker, ms=4,
                            lw=1.1, elinewidth=0.7, capsize=0, label="interpolation at α = m" if src == "interpolation"
                            else "mixture adapter")  # fmt: skip
            ax.set(title=f"{a}: score", xlabel="m (high-pole share) = α", ylabel=f"mean {score_label(a)}")
            g = d[(d.source == "mixture") & d.ratio.notna()].sort_values("m")
            bx.bar([f"{m:g}" for m in g.m], g.ratio, color=method_style("mixture")[0], width=0.55)
            for x, v in enumerate(g.ratio):
                bx.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8.5)
            bx.axhline(1.0, color="0.45", ls="--", lw=0.9)
            bx.set(title=f"{a}: ΔW distance from α = m", xlabel="m", ylabel="over the endpoints' distance",
                   ylim=(0, max(1.15, float(g.ratio.max()) * 1.15 if len(g) else 1.15)))  # fmt: skip
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    return fig
