"""The bench's figures: speed, setting-change latency and peak memory of a benchmark result
(:func:`clm.bench.run.run`), each labelled with the machine that measured it.

Each function returns a matplotlib Figure built from :mod:`clm.bench.report`'s tables, drawn in the
book's style (:mod:`clm.plots.style`: 6.8 in wide, fonts of 8 pt or more, legends outside the
data); the caller shows or saves it.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from clm.bench.report import LABELS, latency_table, memory_table, table
from clm.plots.style import WIDTH_IN, style


def _method_colors(methods: list[str]) -> dict[str, Any]:
    """One colour per method, the same in both panels of :func:`speed_figure`."""
    return dict(zip(methods, sns.color_palette("colorblind", max(len(methods), 10))))


def speed_figure(res: dict[str, Any], label: str) -> Figure:
    """Tokens/s per scenario and method (log scale, the fused path's bound dashed) above the same
    relative to the base model, with the bound and 90% of it; one legend below both."""
    d, bound = table(res), res["sizes"]["bound"]
    scenarios, methods = list(d["scenario"].unique()), list(d["method"].unique())
    colors = _method_colors(methods)
    with style():
        fig, axes = plt.subplots(2, 1, figsize=(WIDTH_IN, 5.6), sharex=True)
        sns.barplot(d, x="scenario", y="tokens_per_s", hue="method", order=scenarios, hue_order=methods,
                    palette=colors, ax=axes[0], legend=False)  # fmt: skip
        axes[0].set(yscale="log", ylabel="tokens / s (log)", xlabel="", title="generation speed")
        # plain numbers (50, not 5 x 10^1), labelling only 1, 2 and 5 of each decade
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "125" else "")
        axes[0].yaxis.set_major_formatter(plain)
        axes[0].yaxis.set_minor_formatter(plain)
        for i, sc in enumerate(scenarios):  # the fused path's bound, per scenario
            base = d[(d.scenario == sc) & (d.method == LABELS["base"])]["tokens_per_s"]
            if len(base):
                axes[0].hlines(float(base.iloc[0]) * bound, i - 0.45, i + 0.45, colors="k", linestyles="--", lw=1)
        others = [m for m in methods if m != LABELS["base"]]
        sns.barplot(d[d.method != LABELS["base"]], x="scenario", y="ratio_to_base", hue="method", order=scenarios,
                    hue_order=others, palette=colors, ax=axes[1], legend=False)  # fmt: skip
        axes[1].axhline(1, color="grey", lw=1)
        axes[1].axhline(bound, color="k", ls="--", lw=1)
        axes[1].axhline(0.9 * bound, color="k", ls=":", lw=1)
        axes[1].set(ylabel="speed / base", xlabel="", title="relative to the base model")
        handles = [Patch(color=colors[m], label=m) for m in methods]
        handles += [Line2D([], [], color="k", ls="--", lw=1, label="bound (fused)"),
                    Line2D([], [], color="k", ls=":", lw=1, label="90% of bound")]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncols=2)
        cfg = res["config"]
        fig.suptitle(f"{cfg['model']}, {cfg['endpoints']} endpoints of rank {cfg['rank']}\nmeasured on {label}")
    return fig


def latency_figure(res: dict[str, Any], label: str) -> Figure:
    """Seconds to change a setting (log scale), clm's and the alternatives', with 1 ms marked."""
    lat = latency_table(res)
    with style():
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.32 * len(lat) + 1.5))
        sns.barplot(lat, y="how", x="seconds", ax=ax, color="0.45")
        ax.axvline(1e-3, color="k", ls="--", lw=1, label="1 ms")
        fig.legend(loc="outside lower center")
        ax.set(xscale="log", ylabel="", xlabel="seconds (log)")
        # plain tick labels ("0.001", not mathtext 10^-3, whose glyph fallback logs findfont warnings)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        fig.suptitle(f"time to change a setting\nmeasured on {label}")
    return fig


def memory_figure(res: dict[str, Any], label: str) -> Figure | None:
    """Peak memory per method (MiB, of the kind the run measured); None if it was not measured."""
    mem = memory_table(res)
    if mem is None:
        return None
    with style():
        fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.3 * len(mem) + 1.3))
        sns.barplot(x=mem.values, y=mem.index, ax=ax, color="0.45")
        ax.set(xlabel=f"MiB ({res['peak_memory_kind']})", ylabel="")
        fig.suptitle(f"peak memory\nmeasured on {label}")
    return fig
