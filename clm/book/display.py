"""What a chapter shows its reader: numbered figures with captions and alt text, tables as HTML with
a few significant digits, continuations side by side, findings as Markdown built from numbers.

Every function returns an IPython display object (or displays it), so a chapter's cell is one call
and the rendered book, JupyterLab and the HTML checks all see the same thing:

    show.figure(fig, "4.1", "Response curves: mean score against α", alt="…")   # "Figure 4.1: …"
    show.table(df, caption="…")                                          # HTML, 3 significant digits
    show.continuations(rows, by="alpha")                                 # whole texts, side by side
    show.findings("The range is {range:.2f}.", range=r)                  # Markdown from numbers

Figures are embedded as PNG at a fixed width in CSS pixels (:data:`WIDTH_PX`, the book's content
width), rendered at twice that resolution; the ``<img>`` carries ``data-min-font-px``, the smallest
font on the figure in CSS pixels at that width, which the book's HTML checks read.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clm.paths import REPO

#: The book's content width in CSS pixels: a figure is drawn for it and never scaled up.
WIDTH_PX = 680
#: Rendered at this many device pixels per CSS pixel (sharp on high-density screens).
SCALE = 2
_TABLE_CSS = (
    "<style>.clm-table{border-collapse:collapse;font-size:0.85em;max-width:100%;table-layout:auto}"
    ".clm-table th,.clm-table td{padding:2px 5px;text-align:right;white-space:normal;"
    "overflow-wrap:break-word;vertical-align:top}.clm-table td.text,.clm-table th.text{text-align:left}"
    ".clm-table td.num{white-space:nowrap}"  # a number never splits; words in cells break only where they must
    ".clm-table.clm-wide{font-size:0.8em}"
    ".clm-table caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:4px}"
    ".clm-wrap{max-width:100%;overflow-x:auto}"
    ".clm-cont{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:8px}"
    ".clm-cont div{border:1px solid #ddd;border-radius:4px;padding:6px;white-space:pre-wrap;"
    "overflow-wrap:anywhere;font-size:0.85em}.clm-cont b{display:block;margin-bottom:4px}"
    ".clm-cont.clm-cols{grid-template-columns:repeat(var(--clm-cols),minmax(0,1fr))}"  # one row, side by side
    # a phone: smaller type; a table of many columns becomes one card per row, each cell under its
    # column's name (data-label), so no word or number has to split to fit a narrow column
    "@media (max-width:600px){.clm-table{font-size:0.75em}.clm-table th,.clm-table td{padding:2px 3px}"
    ".clm-table.clm-wide,.clm-table.clm-wide tbody,.clm-table.clm-wide tr,.clm-table.clm-wide td{display:block}"
    ".clm-table.clm-wide caption{display:block}.clm-table.clm-wide thead{display:none}"
    ".clm-table.clm-wide tr{border-top:1px solid #ccc;padding:3px 0}"
    ".clm-table.clm-wide td{text-align:left;white-space:normal;overflow-wrap:anywhere}"
    ".clm-table.clm-wide td::before{content:attr(data-label) ': ';font-weight:bold}"
    ".clm-cont.clm-cols{grid-template-columns:repeat(2,minmax(0,1fr))}}</style>"
)
#: A table with more columns than this shows as one card per row on a phone.
PHONE_COLUMNS = 3


def number(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, never in scientific notation.

    Integers print whole (``2624``), floats to ``digits`` significant digits (``0.635``, ``20.5``,
    ``1.30``); magnitudes below 10⁻⁴ print as ``0`` with a sign only if negative. None and NaN
    print as an en dash, and so does pandas' missing value (``pd.NA``, in an ``Int64`` column)."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or type(x).__name__ == "NAType":
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "item"):
        return str(x)
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, int):
        return f"{x:,}" if abs(x) >= 10000 else str(x)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) < 1e-4:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:,.{decimals}f}" if abs(x) >= 10000 else f"{x:.{decimals}f}"


def relative(path: str | os.PathLike, *bases: str | os.PathLike) -> str:
    """``path`` relative to the first of ``bases`` (then the repository) that holds it, else its name."""
    p = Path(os.path.abspath(path))
    for base in (*bases, REPO):
        try:
            return str(p.relative_to(Path(os.path.abspath(base))))
        except ValueError:
            continue
    return p.name


def min_font_pt(fig: Any) -> float:
    """The smallest font size (points) of any visible text on ``fig``."""
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
             if t.get_visible() and str(t.get_text()).strip()]  # fmt: skip
    return min(sizes) if sizes else 10.0


#: On a phone a figure keeps at least :data:`PHONE_PX` of its width (its smallest font ≥ 9 px) and
#: pans sideways inside its own box, as display math does; the page itself never scrolls.
PHONE_PX = 560
_FIGURE_CSS = (
    f"<style>@media (max-width:600px){{.clm-pan{{max-width:100%;overflow-x:auto;overflow-y:hidden}}"
    f".clm-pan img{{max-width:none!important;width:{PHONE_PX}px!important}}}}</style>"
)


def figure(fig: Any, label: str, caption: str, alt: str, close: bool = True) -> Any:
    """A numbered figure with its caption and alt text, drawn for the book's content width.

    The figure is resized to :data:`WIDTH_PX` CSS pixels wide (its aspect ratio kept) and saved as
    PNG at :data:`SCALE`× that; the HTML ``<figure>`` shows it at that width (never wider than the
    page; on a phone, :data:`PHONE_PX` wide in a box that pans sideways) with
    ``Figure <chapter>.<n>: caption`` below.

    Args:
        fig: a matplotlib Figure.
        label: its number, e.g. ``"4.1"`` (explicit, so rerunning a cell keeps it).
        caption: one or two sentences saying what the figure shows (Markdown-free text).
        alt: the alt text: what a reader who cannot see the figure should know from it.
        close: close the figure after rendering (so it is not shown twice).
    """
    from IPython.display import HTML

    w, h = fig.get_size_inches()
    fig.set_size_inches(WIDTH_PX / 100, WIDTH_PX / 100 * h / w)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100 * SCALE)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    font_px = min_font_pt(fig) * 100 / 72  # pt → CSS px at 100 px per inch
    return HTML(_figure_html(buf.getvalue(), WIDTH_PX, font_px, label, caption, alt))


def _figure_html(png: bytes, width: int, font_px: float, label: str, caption: str, alt: str) -> str:
    """The ``<figure>`` of :func:`figure` and :func:`picture`: the PNG shown ``width`` CSS px wide
    (panning on a phone), its smallest font at that width, and ``Figure <label>: caption``."""
    data = base64.b64encode(png).decode()
    return (
        f'{_FIGURE_CSS}<figure class="clm-figure" style="margin:1em 0;max-width:100%"><div class="clm-pan">'
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}" '
        f'width="{width}" style="max-width:100%;height:auto" data-min-font-px="{font_px:.1f}"></div>'
        f"<figcaption><b>Figure {html.escape(label)}:</b> {html.escape(caption)}</figcaption></figure>"
    )


_BREAKS = re.compile(r"([;=_/](?!\s)|,(?![\s\d]))")  # never inside a number such as 2,174


def _cell(value: Any, digits: int) -> tuple[str, bool]:
    """(HTML text, is_text) of one table cell."""
    if isinstance(value, str):  # long settings (a=1;b=2, file_names) may break after their separators
        return _BREAKS.sub(r"\1<wbr>", html.escape(value)).replace("\n", "<br>"), True
    if isinstance(value, (tuple, list)):
        return html.escape("[" + ", ".join(number(v, digits) for v in value) + "]"), True
    return html.escape(number(value, digits)), False


def table(df: Any, caption: str | None = None, digits: int = 3, index: bool = False,
          columns: Mapping[str, str] | None = None) -> Any:  # fmt: skip
    """A DataFrame as an HTML table that wraps long text instead of scrolling, numbers to ``digits``
    significant digits, an optional caption above it. ``columns`` renames columns for the reader."""
    from IPython.display import HTML

    if index and df.index.nlevels == 1 and df.index.name is None:
        df = df.rename_axis("")  # an unnamed index gets no 'index' header
    frame = df.reset_index() if index else df
    names = [str((columns or {}).get(c, c)) for c in frame.columns]
    rows, labels = [], [html.escape(n, quote=True) for n in names]
    for rec in frame.itertuples(index=False):
        cells = [_cell(v, digits) for v in rec]
        rows.append("<tr>" + "".join(f'<td class="{"text" if t else "num"}" data-label="{label}">{s}</td>'
                                     for (s, t), label in zip(cells, labels)) + "</tr>")  # fmt: skip
    head = "<tr>" + "".join(f'<th class="text">{html.escape(n)}</th>' for n in names) + "</tr>"
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    wide = " clm-wide" if len(names) > PHONE_COLUMNS else ""
    return HTML(f'{_TABLE_CSS}<div class="clm-wrap"><table class="clm-table{wide}">{cap}<thead>{head}</thead>'
                f"<tbody>{''.join(rows)}</tbody></table></div>")  # fmt: skip


def continuations(items: Sequence[tuple[str, str]], prompt: str | None = None, one_row: bool = False) -> Any:
    """Continuations side by side (wrapping to rows on a narrow page), each whole, newlines kept.

    Args:
        items: (heading, text) pairs, e.g. ``[("α = 0", text0), ("α = 1", text1)]``.
        prompt: shown above them.
        one_row: all of them in one row however narrow (two per row on a phone), e.g. one prompt
            across a dial, so that neighbours stay neighbours.
    """
    from IPython.display import HTML

    head = f"<p><b>Prompt:</b> {html.escape(prompt)}</p>" if prompt else ""
    boxes = "".join(f"<div><b>{html.escape(h)}</b>{html.escape(t.strip()) or '<i>(empty)</i>'}</div>" for h, t in items)
    cols = f' clm-cols" style="--clm-cols:{len(items)}' if one_row and items else ""
    return HTML(f'{_TABLE_CSS}{head}<div class="clm-cont{cols}">{boxes}</div>')


_FIELD = re.compile(r"\{(\w+)(?::([^}]*))?\}")


def findings(template: str, **numbers: Any) -> Any:
    """Markdown prose with numbers filled in from the cell's values: ``{name}`` prints with
    :func:`number` (3 significant digits), ``{name:.2f}`` with that format. Raises KeyError for a
    name not given, so a finding can't silently lose a number."""
    from IPython.display import Markdown

    def fill(m: re.Match) -> str:
        value = numbers[m.group(1)]
        return format(value, m.group(2)) if m.group(2) else number(value)

    return Markdown(_FIELD.sub(fill, template))


def setup_line(params: Any, *extra: str) -> Any:
    """A chapter's run settings as one Markdown line, with paths relative to the repository (the
    data dir relative to the folder above it): what ``params.describe()`` prints, minus the
    machine's absolute paths. ``extra`` sentences are appended."""
    from IPython.display import Markdown

    data = relative(params.data_dir, REPO.parent) if params.data_dir is not None else "–"
    text = (
        f"**This run:** preset `{params.preset.name}`, model `{params.model}`, data `{data}`, "
        f"run dir `{relative(params.run_dir)}`, seed {params.seed} ({params.preset.note})."
    )
    return Markdown(" ".join([text, *extra]))



_SCIENTIFIC = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)e([-+]?\d+)\b")


def plain_numbers(text: str) -> str:
    """``text`` with numbers in scientific notation written out (``lr 1.5e-3`` → ``lr 0.0015``).

    For recorded prose shown to readers (a preset's note, a selection rule): the records keep their
    exact text (their hashes name them), the book shows it in plain decimals. Tokens inside names
    (``D-humor-lr7.5e-4``) are left alone."""

    def plain(m: re.Match) -> str:
        return format(float(m.group(0)), "f").rstrip("0").rstrip(".")

    return _SCIENTIFIC.sub(plain, text)


def picture(path: str | os.PathLike, label: str, caption: str, alt: str, min_font_px: float) -> Any:
    """A numbered figure from a PNG file (a screenshot), like :func:`figure`: shown at its own
    width or the content width, whichever is smaller. ``min_font_px``: its smallest text in CSS px
    at its own width (the checks scale it by the rendered width)."""
    from IPython.display import HTML
    from PIL import Image

    data = Path(path).read_bytes()
    own = Image.open(io.BytesIO(data)).size[0]
    width = min(own, WIDTH_PX)
    return HTML(_figure_html(data, width, min_font_px * width / own, label, caption, alt))
