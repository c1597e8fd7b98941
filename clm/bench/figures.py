"""The bench's figures: speed, setting-change latency and peak memory of a benchmark result
(:func:`clm.bench.run.run`), each labelled with the machine that measured it.

Each function returns a matplotlib Figure built from :mod:`clm.bench.report`'s tables; the
caller shows or saves it.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker
import seaborn as sns
from matplotlib.figure import Figure

from clm.bench.report import LABELS, latency_table, memory_table, table


def speed_figure(res: dict[str, Any], label: str) -> Figure:
    """Tokens/s per scenario and method (log scale, the fused path's bound dashed), and the same
    relative to the base model, with the bound and 90% of it."""
    d, bound = table(res), res["sizes"]["bound"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    sns.barplot(d, x="scenario", y="tokens_per_s", hue="method", ax=axes[0])
    axes[0].set(yscale="log", ylabel="tokens / s (log)", xlabel="", title="generation speed")
    # plain numbers (50, not 5 x 10^1), labelling only 1, 2 and 5 of each decade
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "125" else "")
    axes[0].yaxis.set_major_formatter(plain)
    axes[0].yaxis.set_minor_formatter(plain)
    for i, sc in enumerate(d["scenario"].unique()):  # the fused path's bound, per scenario
        base = d[(d.scenario == sc) & (d.method == LABELS["base"])]["tokens_per_s"]
        if len(base):
            axes[0].hlines(float(base.iloc[0]) * bound, i - 0.45, i + 0.45, colors="k", linestyles="--", lw=1)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    others = d[d.method != LABELS["base"]]
    palette = sns.color_palette()[1 : d.method.nunique()]
    sns.barplot(others, x="scenario", y="ratio_to_base", hue="method", ax=axes[1], palette=palette)
    axes[1].axhline(1, color="grey", lw=1)
    axes[1].axhline(bound, color="k", ls="--", lw=1, label="bound (fused)")
    axes[1].axhline(0.9 * bound, color="k", ls=":", lw=1, label="90% of bound")
    axes[1].set(ylabel="speed / base", xlabel="", title="relative to the base model")
    h2, l2 = axes[1].get_legend_handles_labels()
    axes[1].get_legend().remove()
    extra = [(h, lab) for h, lab in zip(h2, l2) if lab not in labels]
    fig.legend(
        handles + [h for h, _ in extra],
        labels + [lab for _, lab in extra],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        frameon=False,
    )
    cfg = res["config"]
    fig.suptitle(
        f"{cfg['model']}, {cfg['endpoints']} endpoints of rank {cfg['rank']} - measured on {label}", fontsize=10
    )
    fig.tight_layout()
    return fig


def latency_figure(res: dict[str, Any], label: str) -> Figure:
    """Seconds to change a setting (log scale), clm's and the alternatives', with 1 ms marked."""
    lat = latency_table(res)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(lat) + 1.2))
    sns.barplot(lat, y="how", x="seconds", ax=ax, color="C0")
    ax.axvline(1e-3, color="k", ls="--", lw=1, label="1 ms")
    ax.legend(loc="lower right", fontsize=8)
    ax.set(xscale="log", ylabel="", xlabel="seconds (log)", title=f"time to change a setting - measured on {label}")
    fig.tight_layout()
    return fig


def memory_figure(res: dict[str, Any], label: str) -> Figure | None:
    """Peak memory per method (MiB, of the kind the run measured); None if it was not measured."""
    mem = memory_table(res)
    if mem is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    sns.barplot(x=mem.values, y=mem.index, ax=ax, color="C2")
    ax.set(xlabel=f"MiB ({res['peak_memory_kind']})", ylabel="", title=f"peak memory - measured on {label}")
    fig.tight_layout()
    return fig
