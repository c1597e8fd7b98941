"""The book's figure style: one width, fonts readable at it, a fixed colour per attribute, the
interpolation band shaded and the extrapolation bands hatched, legends outside the data.

Every figure is drawn :data:`WIDTH_IN` inches wide, the book's content width (680 CSS px at
100 px per inch, :mod:`clm.book.display`), so it is shown at its natural size and no text shrinks:
every font is at least :data:`MIN_FONT_PT` points (11 CSS px). At most three panels share a row.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from clm.core.attributes import ATTRIBUTES, NAMES

# A missing font is not the reader's business: matplotlib falls back to DejaVu Sans and logs
# "findfont: ..." at WARNING, which a notebook shows as a stderr block.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

#: Width of every figure in inches: the book's content width (680 CSS px at 100 px/in).
WIDTH_IN = 6.8
#: Height of one row of panels in inches.
ROW_IN = 2.5
#: The smallest font on any figure, in points (8 pt = 11 CSS px at 100 px/in).
MIN_FONT_PT = 8.0
#: One colour per attribute, the same in every chapter: Okabe-Ito's blue, orange, bluish green and
#: reddish purple, and Tol's wine; pairwise distinct also under deutan and protan colour vision.
ATTRIBUTE_COLORS = {
    "sentiment": "#0072b2",
    "politeness": "#e69f00",
    "formality": "#009e73",
    "simplicity": "#cc79a7",
    "humor": "#882255",
}
#: Colours for attributes beyond the paper's five (in order of appearance).
EXTRA_COLORS = ("#56b4e9", "#d55e00", "#999933", "#44aa99", "#332288")
#: Colours for series that are not attributes (settings, sources): none is an attribute's colour.
SERIES_COLORS = ("#d55e00", "#56b4e9", "#999933", "#44aa99", "#332288", "#aa4499")
#: The two poles of an attribute (low, high), wherever a figure tells them apart by colour.
POLE_COLORS = {"low": "#999999", "high": "#1a1a1a"}
BASE_COLOR = "0.2"  # the base model's line (dashed)
PALETTE = "colorblind"
INTERP_COLOR = "#e3eef9"  # the interpolation band α ∈ [0, 1]
EXTRAP_COLOR = "#fafafa"  # the extrapolation bands, hatched
HATCH_COLOR = "#c8c8c8"
_RC = {
    "figure.figsize": (WIDTH_IN, ROW_IN),
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "figure.constrained_layout.use": True,
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "legend.title_fontsize": 9,
    "figure.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.frameon": False,
    "hatch.linewidth": 0.6,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The book's figure style, as a context manager (nothing global changes)."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), **_RC}
    with plt.rc_context(rc), sns.color_palette(PALETTE):
        yield


def attribute_colors(attributes: Sequence[str]) -> dict[str, Any]:
    """The fixed colour of each attribute (:data:`ATTRIBUTE_COLORS`; others from :data:`EXTRA_COLORS`)."""
    extra = [a for a in dict.fromkeys(attributes) if a not in ATTRIBUTE_COLORS]
    return {
        a: ATTRIBUTE_COLORS[a] if a in ATTRIBUTE_COLORS else EXTRA_COLORS[extra.index(a) % len(EXTRA_COLORS)]
        for a in attributes
    }


def attribute_of(label: str) -> str | None:
    """The attribute a tick label names (``"humor"``, ``"humor/low"``, ``"sentiment-tweets"``), if any."""
    head = str(label).split("/")[0].split("-")[0].split("=")[0].strip()
    return head if head in ATTRIBUTES or head in NAMES else None


def color_ticklabels(labels: Sequence[Any]) -> None:
    """Colour tick labels that name an attribute in its colour."""
    for t in labels:
        a = attribute_of(t.get_text())
        if a:
            t.set_color(ATTRIBUTE_COLORS.get(a, "0.15"))


def score_label(attribute: str) -> str:
    """'P(positive)' for a known attribute, else 'score (<attribute>)'."""
    a = ATTRIBUTES.get(attribute)
    return f"P({a.high})" if a else f"score ({attribute})"


def shade_bands(ax: Any, interval: tuple[float, float] = (0.0, 1.0)) -> None:
    """Shade the interpolation band ``interval`` of an α axis (x) and hatch the extrapolation bands
    outside it (lightly, behind the data), unless one is only the axis' margin."""
    lo, hi = ax.get_xlim()
    ax.axvspan(interval[0], interval[1], facecolor=INTERP_COLOR, edgecolor="none", lw=0, zorder=0)
    for a, b in ((lo, interval[0]), (interval[1], hi)):
        if b - a > 0.06 * (hi - lo):  # not the axis margin beside data that stays in [0, 1]
            ax.axvspan(a, b, facecolor=EXTRAP_COLOR, edgecolor=HATCH_COLOR, hatch="///", lw=0, zorder=0)
    ax.set_xlim(lo, hi)


def band_handles(axes: Sequence[Any] = ()) -> list[Patch]:
    """Legend entries for :func:`shade_bands` (the hatched one only if one of ``axes``, when given,
    has a hatched band)."""
    hatched = not axes or any(p.get_hatch() for ax in axes for p in ax.patches)
    return [Patch(facecolor=INTERP_COLOR, edgecolor="none", label="α in [0, 1]: interpolation")] + (
        [Patch(facecolor=EXTRAP_COLOR, edgecolor=HATCH_COLOR, hatch="///", lw=0, label="hatched: extrapolation")]
        if hatched
        else []
    )


def shades(color: Any, n: int) -> list[Any]:
    """n clearly distinct shades of one colour, light to dark."""
    c = np.asarray(sns.color_palette([color])[0], dtype=float)
    if n <= 1:
        return [tuple(c)]
    light, dark = c + (1 - c) * 0.55, c * 0.5
    return sns.blend_palette([tuple(light), tuple(c), tuple(dark)], n)


def grid(n: int, ncols: int | None = None, row_in: float = ROW_IN, **kw: Any) -> tuple[Figure, list[Any], list[Any]]:
    """A figure :data:`WIDTH_IN` wide with ``n`` panels, at most three per row (two for four).

    Returns:
        (figure, the n panels in reading order, the spare slots of the last row, axis off: a
        place for a shared legend).
    """
    ncols = min(n, ncols or (2 if n == 4 else 3))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH_IN, row_in * nrows), squeeze=False, **kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_axis_off()
    return fig, flat[:n], flat[n:]


def outer_labels(axes: Sequence[Any], xlabel: str, ylabel: str, inner_ticks: bool = True) -> None:
    """Axis labels on the grid's outer panels only: the y label in the first column, the x label on
    each panel with none below it (so a short last row keeps its neighbours' x labels); with
    ``inner_ticks=False`` (panels on the same scale) the inner panels lose their tick labels too."""
    ncols = axes[0].get_subplotspec().get_gridspec().ncols if axes else 1
    for i, ax in enumerate(axes):
        bottom, left = i + ncols >= len(axes), i % ncols == 0
        ax.set(xlabel=xlabel if bottom else "", ylabel=ylabel if left else "")
        if not inner_ticks:
            ax.tick_params(labelbottom=bottom, labelleft=left)


def shared_legend(fig: Figure, handles: Sequence[Any], spare: Sequence[Any] = (), title: str | None = None) -> Any:
    """One legend for the whole figure, outside every panel's data: in a spare slot of the grid if
    there is one, else below the panels."""
    handles = list(handles)
    if spare:
        return spare[0].legend(handles=handles, loc="center", title=title)
    ncols = min(len(handles), 3 if max(len(h.get_label()) for h in handles) > 18 else 4)
    return fig.legend(handles=handles, loc="outside lower center", ncols=ncols, title=title)


def save(fig: Figure, path: str | os.PathLike, dpi: int = 200) -> None:
    """Save a figure as PNG (or by suffix) at a fixed dpi, creating the directory."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    from clm.io import atomic_write

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"  # the temp file's name has no suffix to go by
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))
