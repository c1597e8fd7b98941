"""Figures for the book and the paper: each function takes a tidy table and returns a Figure.

One style everywhere (:mod:`clm.plots.style`): every figure drawn 6.8 in wide (the book's content
width, :data:`WIDTH_IN`) with constrained layout, at most three panels a row, every font at least
8 pt, legends outside the data, one fixed colour per attribute (:data:`ATTRIBUTE_COLORS`), and
the interpolation band α ∈ [0, 1] shaded, the extrapolation bands hatched.

    import clm.plots as plots
    fig = plots.response_curves(table)          # then clm.book.display.figure(fig, "4.1", ...)

``clm`` does not import this package; ``import clm.plots`` loads matplotlib and seaborn.
"""

from clm.plots.control import control_curves, joint_grid, requested_vs_achieved, schedule_arc
from clm.plots.curves import loss_curves, perplexity_curve, response_curves
from clm.plots.data import calibration, corpus_overview, scorer_accuracy
from clm.plots.matrices import cosine_heatmap, distance_heatmap, entanglement_heatmap, mds_scatter
from clm.plots.simplex import barycentric, spider, spider_panels, ternary
from clm.plots.style import (
    ATTRIBUTE_COLORS,
    BASE_COLOR,
    EXTRAP_COLOR,
    INTERP_COLOR,
    MIN_FONT_PT,
    PALETTE,
    POLE_COLORS,
    ROW_IN,
    SERIES_COLORS,
    WIDTH_IN,
    attribute_colors,
    band_handles,
    grid,
    outer_labels,
    save,
    score_label,
    shade_bands,
    shades,
    shared_legend,
    style,
)

__all__ = [
    "ATTRIBUTE_COLORS", "BASE_COLOR", "EXTRAP_COLOR", "INTERP_COLOR", "MIN_FONT_PT", "PALETTE", "POLE_COLORS",
    "ROW_IN", "SERIES_COLORS", "WIDTH_IN", "attribute_colors", "band_handles", "barycentric", "calibration",
    "control_curves", "corpus_overview", "cosine_heatmap", "distance_heatmap", "entanglement_heatmap", "grid", "joint_grid", "loss_curves",
    "mds_scatter", "outer_labels", "perplexity_curve", "requested_vs_achieved", "response_curves", "save", "score_label", "scorer_accuracy", "shade_bands",
    "schedule_arc", "shades", "shared_legend", "spider", "spider_panels", "style", "ternary",
]  # fmt: skip
