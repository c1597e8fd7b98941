"""Curves against α (response, perplexity) and the endpoints' training losses."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from clm.core.attributes import NAMES, POLES
from clm.errors import ConfigError, DataError
from clm.experiments import analysis
from clm.plots.style import (
    BASE_COLOR,
    POLE_COLORS,
    ROW_IN,
    attribute_colors,
    band_handles,
    grid,
    outer_labels,
    score_label,
    shade_bands,
    shades,
    shared_legend,
    style,
)


def _base_handle() -> Line2D:
    return Line2D([], [], ls="--", color=BASE_COLOR, lw=1, label="base model")


def response_curves(
    table: Any,
    attributes: Sequence[str] | None = None,
    by: str | None = None,
    score: str | None = None,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    title: str | None = None,
    ncols: int | None = None,
) -> Figure:
    """Mean score against α with bootstrap CIs, one panel per attribute (at most three a row); the
    interpolation band [0, 1] shaded and the extrapolation bands hatched; the base model's mean score
    (rows of setting ``"base"``, if any) dashed; one legend for all panels, outside the data.

    Args:
        table: a sweep table (:func:`clm.experiments.sweep.run_sweep`).
        attributes: the attributes varied (default: every targeted attribute with a score).
        by: a column giving one curve per value (e.g. ``"lam_sentiment"`` for the
            multi-attribute design), in shades of the attribute's colour (darker: larger);
            default one curve per panel.
        score: score another attribute than the one varied (e.g. for entanglement curves).
        ncols: panels per row (default: up to 3; 2 for four panels).
    """
    attributes = list(attributes) if attributes is not None else analysis.varied_attributes(table)
    if not attributes:
        raise ConfigError("response_curves: the table varies no scored attribute")
    colors, keys = attribute_colors(attributes), None
    with style():
        fig, axes, spare = grid(len(attributes), ncols=ncols, sharey=True)
        for ax, attr in zip(axes, attributes):
            r = analysis.response(table, attr, score=score, by=by, n_boot=n_boot, level=level, seed=seed)
            groups = list(r.groupby(by, sort=True)) if by else [(None, r)]
            keys = [k for k, _ in groups] if by else None
            for (_, g), c in zip(groups, shades(colors[attr], len(groups)) if by else [colors[attr]]):
                ax.fill_between(g.alpha, g.lo, g.hi, color=c, alpha=0.25, lw=0)
                ax.plot(g.alpha, g["mean"], "o-", color=c, ms=3.5, lw=1.5)
            base = table[f"score_{score or attr}"][table["setting"] == "base"] if "setting" in table.columns else []
            if len(base):
                ax.axhline(float(base.mean()), ls="--", color=BASE_COLOR, lw=1)
            shade_bands(ax)
            ax.set(title=attr if score is None else f"{attr} → {score}", xlabel=f"α ({attr})")
            ax.set_ylabel(score_label(score or attr))
        handles = []
        if by and keys:
            name = by.split("_")[0].replace("lam", "λ")
            grey = shades("#777777", len(keys))
            handles += [
                Line2D([], [], marker="o", ms=3.5, color=c, label=f"{name} = {k:g}") for k, c in zip(keys, grey)
            ]
        if "setting" in table.columns and (table["setting"] == "base").any():
            handles.append(_base_handle())
        shared_legend(fig, handles + band_handles(axes), spare)
        if title:
            fig.suptitle(title)
    return fig


def perplexity_curve(
    table: Any,
    attributes: Sequence[str] | None = None,
    column: str = "wikitext_ppl",
    base: float | None = None,
    log: bool = True,
    agg: str = "median",
) -> Figure:
    """Perplexity against α, one line per attribute, bands shaded; the base model dashed; the legend
    to the right of the axes.

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
        fig, (ax,), _ = grid(1, row_in=2.8)
        for attr in attributes:
            g = analysis.rows_for(t, attr).sort_values(f"alpha_{attr}")
            ax.plot(g[f"alpha_{attr}"], g[column], "o-", ms=3.5, color=colors[attr], label=attr)
        if base is not None:
            ax.axhline(base, ls="--", color=BASE_COLOR, lw=1, label="base model")
        if log:
            from matplotlib.ticker import FuncFormatter

            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        shade_bands(ax)
        ax.set(xlabel="α", ylabel="perplexity")
        handles = ax.get_legend_handles_labels()[0] + band_handles([ax])
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


@dataclass
class Facets:
    """A figure and its panels, as seaborn's ``FacetGrid`` has them: ``.figure``, ``.axes`` (an array,
    ``.axes.flat``) and ``.axes_dict`` (panel name -> axes)."""

    figure: Figure
    axes: np.ndarray
    axes_dict: dict[str, Any]


def loss_curves(path: str | os.PathLike) -> Facets:
    """Train loss (lines) and held-out loss (dots, dashed) per step: one panel per attribute (three
    a row, the paper's order), grey for the low pole and black for the high one; the legend in the
    grid's spare slot (or below it).

    Args:
        path: a run dir or an endpoints dir (:func:`clm.train.logs.loss_table`).

    Returns:
        The panels (:class:`Facets`; ``.figure`` is the matplotlib figure, :data:`WIDTH_IN` wide).
    """
    from clm.train.logs import loss_table

    df = loss_table(path)
    if df.empty:
        raise DataError(f"no training logs in {str(path)!r} (a run dir's train/ or an endpoints dir)")
    found = set(df.attribute)
    attrs = [a for a in NAMES if a in found] + sorted(found - set(NAMES))
    with style():
        fig, axes, spare = grid(len(attrs), row_in=ROW_IN * 1.1)
        for ax, attr in zip(axes, attrs):
            d = df[df.attribute == attr]
            for pole in POLES:
                tr = d[(d.pole == pole) & (d.split == "train")].sort_values("step")
                ev = d[(d.pole == pole) & (d.split == "eval")].sort_values("step")
                ax.plot(tr.step, tr.loss, color=POLE_COLORS[pole], lw=1)
                ax.plot(ev.step, ev.loss, "o--", color=POLE_COLORS[pole], ms=4, lw=1.2)
            names = d.drop_duplicates("pole").set_index("pole").pole_name
            ax.set_title(f"{attr}\n{names.get('low', '?')} → {names.get('high', '?')}")
        outer_labels(axes, "optimizer step", "loss (nats/token)")
        handles = [Line2D([], [], color=POLE_COLORS[p], lw=1, label=f"{p} pole: train") for p in POLES]
        handles += [Line2D([], [], color=POLE_COLORS[p], ls="--", marker="o", ms=4, lw=1.2, label=f"{p} pole: held-out")
                    for p in POLES]  # fmt: skip
        shared_legend(fig, handles, spare)
    return Facets(fig, np.array(axes, dtype=object), dict(zip(attrs, axes)))
