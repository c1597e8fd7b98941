"""Figures of the data and the scorers (chapters 1 and 3): corpus sizes and text lengths, scorer
accuracy against its bar, reliability diagrams."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from clm.core.attributes import ATTRIBUTES, POLES
from clm.plots.style import (
    POLE_COLORS,
    ROW_IN,
    attribute_colors,
    color_ticklabels,
    grid,
    outer_labels,
    shades,
    shared_legend,
    style,
)


def corpus_overview(sizes: Any, continuation_words: float | None = 24.0) -> Figure:
    """Training texts per source and pole (bars) and the length of a training text (boxes), the
    sources as rows named in their attribute's colour; the legend below.

    Args:
        sizes: :func:`clm.data.corpus_sizes`' table (attribute, source, pole, split, texts, words).
        continuation_words: a dashed line at this length (a 32-token continuation is about 24
            words); None for none.
    """
    train = sizes[sizes.split == "train"].copy()
    train["side"] = ["low" if ATTRIBUTES[a].low == p else "high" for a, p in zip(train.attribute, train.pole)]
    lengths = train.explode("words").astype({"words": float})
    with style():
        fig, axes, _ = grid(2, sharey=True, row_in=0.28 * train.source.nunique() + 1.2)
        sns.barplot(train, x="texts", y="source", hue="side", hue_order=POLES, palette=POLE_COLORS, ax=axes[0],
                    legend=False)  # fmt: skip
        axes[0].set(title="training texts per pole", xlabel="texts (train split)", ylabel="")
        sns.boxplot(lengths, x="words", y="source", hue="side", hue_order=POLES, palette=POLE_COLORS, ax=axes[1],
                    showfliers=False, legend=False, linewidth=0.8, medianprops=dict(color="white", lw=1.2))  # fmt: skip
        axes[1].set(title="length of a training text", xlabel="words", ylabel="")
        handles = [Patch(color=POLE_COLORS[p], label=f"{p} pole") for p in POLES]
        if continuation_words is not None:
            axes[1].axvline(continuation_words, color="k", ls="--", lw=1)
            handles.append(Line2D([], [], color="k", ls="--", lw=1, label="a 32-token continuation (≈24 words)"))
        color_ticklabels(axes[0].get_yticklabels())
        shared_legend(fig, handles)
    return fig


def scorer_accuracy(
    summary: Any, bar: Callable[[str], float] | None = None, ylim: tuple[float, float] = (0.4, 1.0)
) -> Figure:
    """Test accuracy of each scorer on its main source (the attribute's colour) and its second
    source (a light shade), with its bar dashed; the legend below the axes.

    Args:
        summary: :func:`clm.eval.scoring.evaluate`'s summary (attribute, source, accuracy).
        bar: attribute -> the accuracy it must reach (e.g. ``clm.experiments.claims.DEFAULT.bar``).
    """
    attrs = list(dict.fromkeys(summary.attribute))
    colors = attribute_colors(attrs)
    acc = summary.set_index(["attribute", "source"]).accuracy
    with style():
        fig, (ax,), _ = grid(1, row_in=2.6)
        x = np.arange(len(attrs))
        for i, a in enumerate(attrs):
            light = shades(colors[a], 3)[0]
            for dx, src, c in ((-0.2, "main", colors[a]), (0.2, "second", light)):
                if (a, src) in acc.index:
                    ax.bar(i + dx, float(acc[a, src]), width=0.38, color=c, edgecolor=colors[a], lw=0.8)
            if bar is not None:
                ax.hlines(bar(a), i - 0.42, i + 0.42, color="black", ls="--", lw=1)
        ax.set_xticks(x, attrs)
        color_ticklabels(ax.get_xticklabels())
        ax.set(ylim=ylim, ylabel="test accuracy")
        handles = [Patch(facecolor="0.35", label="main source (the paper's)"),
                   Patch(facecolor="0.8", edgecolor="0.35", label="second source")]  # fmt: skip
        if bar is not None:
            handles.append(Line2D([], [], color="black", ls="--", lw=1, label="the bar"))
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def calibration(rel: Any, summary: Any = None, attributes: Sequence[str] | None = None) -> Figure:
    """Reliability diagrams, one panel per attribute (three a row): the fraction of texts of the
    high pole against the mean predicted P(high) per bin, main source in the attribute's colour,
    second source in a light shade, marker area by the bin's size, the diagonal dotted; the ECE
    of each source in the panel's title; the legend in the grid's spare slot.

    Args:
        rel: :func:`clm.eval.scoring.evaluate`'s reliability table (attribute, source, mean_p, frac_high, n).
        summary: its summary (for the ECE in the titles), or None.
    """
    attrs = list(attributes) if attributes is not None else list(dict.fromkeys(rel.attribute))
    colors = attribute_colors(attrs)
    ece = summary.set_index(["attribute", "source"]).ece if summary is not None else None
    size = 60 / np.sqrt(max(float(rel.n.max()), 1.0))
    with style():
        fig, axes, spare = grid(len(attrs), row_in=ROW_IN * 1.05)
        for ax, a in zip(axes, attrs):
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
            for src, c, ls in (("main", colors[a], "-"), ("second", shades(colors[a], 3)[0], "--")):
                g = rel[(rel.attribute == a) & (rel.source == src)]
                ax.plot(g.mean_p, g.frac_high, ls=ls, color=c, lw=1.2)
                ax.scatter(g.mean_p, g.frac_high, s=size * np.sqrt(g.n), color=c, zorder=3, lw=0)
            head = f"{a}"
            if ece is not None and (a, "main") in ece.index:
                head += f"\nECE {ece[a, 'main']:.3f} / {ece.get((a, 'second'), float('nan')):.3f}"
            ax.set_title(head)
            ax.set(xlim=(0, 1), ylim=(0, 1))
        outer_labels(axes, "predicted P(high)", "fraction high", inner_ticks=False)
        handles = [Line2D([], [], color="0.3", marker="o", label="main source"),
                   Line2D([], [], color="0.7", marker="o", ls="--", label="second source"),
                   Line2D([], [], color="grey", ls=":", label="calibrated"),
                   Line2D([], [], ls="none", label="marker area: texts in bin")]  # fmt: skip
        shared_legend(fig, handles, spare, title="ECE: main / second" if ece is not None else None)
    return fig
