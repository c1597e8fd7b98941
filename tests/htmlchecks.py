"""Checks on a built book's pages as Chromium renders them (used by tests/test_book_html.py).

:data:`COLLECT` runs in a loaded page (a :class:`clm.book.screenshots.Browser`) and returns what
the checks need: figures and images with their rendered sizes, blocks that scroll sideways, the
visible text of each cell output, stderr blocks, text nodes that may hold TeX, tables and figures
wider than their column, and the "What we found" section. Each ``check_*`` function takes that
dict (``seen``) and returns one line per failure, naming the page and the element::

    notebooks/04_single_attribute.html: cell 5 (`fig = plots.response_curves(`): 'Figure 4.1: Response curves…'
        renders its smallest font at 4.2 px (< 9) at 1280 px

A cell is named by its number among the page's cells and the first line of its code, where
the page still has it (``remove-input`` cells have none).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from clm.book.screenshots import Browser, shot_name
from clm.paths import REPO, cache_dir, default_data_dir

#: The smallest font (CSS px) a figure may render at on a desktop screen.
MIN_FONT_PX = 9.0
DESKTOP_PX = 1280
MOBILE_PX = 400

COLLECT = r"""(() => {
  const root = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const cells = [...root.querySelectorAll('div.cell')];
  const clip = (s, n) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n);
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length)
                       && getComputedStyle(e).visibility !== 'hidden';
  // rendered now, not inside a collapsed toggle (a closed <details> keeps its content laid out)
  const shown = e => e.checkVisibility ? e.checkVisibility({visibilityProperty: true}) : visible(e);
  const text = e => {  // what the element says as shown (cells apart), without the theme's buttons
    if (shown(e)) return e.innerText;
    const c = e.cloneNode(true);
    c.querySelectorAll('button, .copybtn, .headerlink, script, style').forEach(x => x.remove());
    return c.textContent;
  };
  const where = e => {
    const c = e.closest('div.cell');
    if (!c) { const s = e.closest('section[id]'); return s ? `section #${s.id}` : 'the page'; }
    const code = c.querySelector('.cell_input pre');
    const first = code ? code.textContent.trim().split('\n')[0].slice(0, 50) : '';
    return `cell ${cells.indexOf(c) + 1}` + (first ? ` (\`${first}\`)` : ' (input hidden)');
  };
  const vw = document.documentElement.clientWidth;
  const figures = [...root.querySelectorAll('figure')].filter(visible).map(f => {
    const img = f.querySelector('img'), cap = f.querySelector('figcaption');
    return {where: where(f), caption: cap ? clip(text(cap), 200) : '', img: !!img,
            alt: img ? (img.getAttribute('alt') || '') : '', src: img ? clip(img.getAttribute('src'), 80) : ''};
  });
  const images = [...root.querySelectorAll('img')].filter(visible).map(img => {
    const r = img.getBoundingClientRect(), fig = img.closest('figure'), pan = img.closest('.clm-pan');
    const box = pan || (fig || img).parentElement;  // a figure that pans sideways is measured in its box
    const cap = fig ? fig.querySelector('figcaption') : null;
    return {where: where(img), clm: img.hasAttribute('data-min-font-px'),
            min_font_px: parseFloat(img.getAttribute('data-min-font-px')),
            natural: parseFloat(img.getAttribute('width')), rendered: r.width, left: r.left, right: r.right,
            column: box ? box.clientWidth : vw, in_output: !!img.closest('.cell_output'), in_figure: !!fig,
            pans: !!pan && ['auto', 'scroll'].includes(getComputedStyle(pan).overflowX),
            box_right: box ? box.getBoundingClientRect().right : r.right,
            label: cap ? clip(text(cap), 40) : clip(img.getAttribute('alt'), 40) || clip(img.getAttribute('src'), 60)};
  });
  const sel = 'pre, .cell_output, div.highlight, table, .clm-wrap, .pst-scrollable-table-container, .table-wrapper';
  let wide = [...root.querySelectorAll(sel)].filter(e => visible(e) && e.scrollWidth > e.clientWidth + 1);
  wide = wide.filter(e => !wide.some(o => o !== e && e.contains(o)));  // the innermost block that scrolls
  const part = e => e.closest('.cell_input') ? 'code ' : e.closest('.cell_output') ? 'output ' : '';
  const scrolling = wide.map(e => ({where: where(e), shown: shown(e), part: part(e), tag: e.tagName.toLowerCase() + (e.className ?
    '.' + String(e.className).trim().split(/\s+/)[0] : ''), text: clip(text(e), 60),
    scroll: e.scrollWidth, client: e.clientWidth}));
  const tables = [...root.querySelectorAll('table')].filter(visible).map(t => {
    const r = t.getBoundingClientRect(), box = t.parentElement;
    return {where: where(t), text: clip(text(t), 60), width: Math.max(r.width, t.scrollWidth),
            column: box.clientWidth || r.width, right: r.right};
  });
  const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
  const maths = [...root.querySelectorAll('mjx-container[display="true"], mjx-container[display="block"]')]
    .filter(visible).map(m => {
      const box = m.parentElement && m.parentElement.matches('div.math') ? m.parentElement : m;
      const inner = m.querySelector('mjx-math') || m;
      return {where: where(m), text: clip(m.getAttribute('aria-label') || text(m), 60),
              width: Math.max(inner.getBoundingClientRect().width, m.scrollWidth), column: box.clientWidth,
              scrolls: scrolls(m) || scrolls(box)};
    });
  const outputs = [...root.querySelectorAll('.cell_output')].map(o => ({where: where(o),
    shown: shown(o), text: text(o)}));
  const stderr = [...root.querySelectorAll('.cell_output .stderr, div.output.stderr')]
    .map(e => ({where: where(e), shown: shown(e), text: clip(text(e), 60)}));
  const skip = 'script, style, mjx-container, mjx-assistive-mml, .cell_input, code, .MathJax';
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const tex = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (/[\\$]/.test(n.nodeValue) && !n.parentElement.closest(skip)) tex.push({where: where(n.parentElement), text: n.nodeValue});
  }
  const heads = [...root.querySelectorAll('h1, h2, h3, h4')];
  const h = heads.find(x => /^\s*what we found/i.test(x.textContent));
  let findings = null;
  if (h) {
    const sec = h.closest('section') || h.parentElement, prose = [];
    const w = document.createTreeWalker(sec, NodeFilter.SHOW_TEXT);
    for (let n = w.nextNode(); n; n = w.nextNode()) {
      if (!n.parentElement.closest('div.cell, mjx-container, a, code, .headerlink, h1, h2, h3, h4, script, style'))
        prose.push(n.nodeValue);
    }
    findings = {heading: clip(h.textContent.replace(/#$/, ''), 60),
                outputs: [...sec.querySelectorAll('.cell_output')].map(text).join('\n'),
                prose: prose.join(' ')};
  }
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => clip(i.getAttribute('src'), 80));
  const page_width = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  let past = [];  // what makes the page wider than the screen: past its right edge, in no scrolling box
  if (page_width > vw + 1) {
    const boxed = e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).overflowX !== 'visible') return true; return false; };
    past = [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > vw + 1
      && getComputedStyle(e).position !== 'fixed' && !e.closest('.skip-link') && !boxed(e));
    past = past.filter(e => !past.some(o => o !== e && e.contains(o))).slice(0, 5)
      .map(e => `${where(e)}: ${e.tagName.toLowerCase()} ${JSON.stringify(clip(text(e), 50))}`);
  }
  return {page_width, past, maths, theme: document.documentElement.dataset.theme || '', broken, viewport: vw, figures, images, scrolling, tables, outputs, stderr, tex, findings,
          cells: cells.length, title: clip((document.querySelector('h1') || {}).textContent, 80)};
})()"""


def collect(html_dir: Path, pages: list[Path], width: int, shots: Path | None = None) -> list[dict]:
    """What :data:`COLLECT` sees on each page at ``width`` (one Chromium session for all), with
    ``page`` (its path in the build); a full-page screenshot of each goes to ``shots`` if given."""
    out = []
    with Browser(width) as browser:
        for page in pages:
            browser.open(page)
            seen = browser.evaluate(COLLECT)
            seen["page"] = Path(page).resolve().relative_to(Path(html_dir).resolve()).as_posix()
            if shots is not None:
                seen["screenshot"] = str(browser.full_page_png(shots / shot_name(html_dir, page, width)))
            out.append(seen)
    return out


def _page(seen: dict) -> str:
    return seen["page"]


def check_figure_fonts(seen: dict, min_px: float = MIN_FONT_PX) -> list[str]:
    """Every clm figure renders its smallest font at ``min_px`` or more (data-min-font-px scaled by
    rendered / natural width); every image in a cell output is a clm figure (display.figure)."""
    out = []
    for img in seen["images"]:
        if img["clm"]:
            natural = img["natural"] if img["natural"] and img["natural"] > 0 else img["rendered"]
            px = img["min_font_px"] * img["rendered"] / natural
            if not px >= min_px:
                out.append(f"{_page(seen)}: {img['where']}: {img['label']!r} renders its smallest font at "
                           f"{px:.1f} px (< {min_px:g}) at {seen['viewport']} px")  # fmt: skip
        elif img["in_output"]:
            out.append(f"{_page(seen)}: {img['where']}: an image output not made by clm.book.display.figure "
                       f"({img['label']}): no number, caption or font size")  # fmt: skip
    return out


def smallest_font(seen: dict) -> float | None:
    """The smallest rendered font (CSS px) of the page's clm figures, or None if it has none."""
    sizes = [i["min_font_px"] * i["rendered"] / (i["natural"] or i["rendered"]) for i in seen["images"] if i["clm"]]
    return min(sizes) if sizes else None


def check_no_overflow(seen: dict) -> list[str]:
    """No figure or table is wider than its column or reaches past the viewport's right edge; display
    math wider than its column scrolls inside its box; the page itself does not scroll sideways."""
    out, vw = [], seen["viewport"]
    if seen["page_width"] > vw + 1:
        what = "; ".join(seen["past"]) or "nothing in the article"
        out.append(f"{_page(seen)}: the page scrolls sideways ({seen['page_width']} px at a {vw} px viewport): {what}")
    for m in seen["maths"]:
        if m["width"] > m["column"] + 1 and not m["scrolls"]:
            out.append(f"{_page(seen)}: {m['where']}: display math {m['text']!r} is {m['width']:.0f} px wide in a "
                       f"{m['column']} px column and is cut off (no scrolling box) at {vw} px")  # fmt: skip
    for img in seen["images"]:
        if img.get("pans"):  # wider than its box on purpose: the box pans; the box itself must fit
            if img["box_right"] > vw + 1:
                out.append(f"{_page(seen)}: {img['where']}: the box of figure {img['label']!r} reaches past the "
                           f"viewport ({img['box_right']:.0f} > {vw} px)")  # fmt: skip
            continue
        if img["rendered"] > img["column"] + 1 or img["right"] > vw + 1 or img["left"] < -1:
            out.append(f"{_page(seen)}: {img['where']}: figure {img['label']!r} is {img['rendered']:.0f} px wide "
                       f"in a {img['column']} px column (viewport {vw} px)")  # fmt: skip
    for t in seen["tables"]:
        if t["width"] > t["column"] + 1 or t["right"] > vw + 1:
            out.append(f"{_page(seen)}: {t['where']}: table {t['text']!r} is {t['width']:.0f} px wide "
                       f"in a {t['column']} px column (viewport {vw} px)")  # fmt: skip
    return out


def check_no_sideways_scroll(seen: dict) -> list[str]:
    """No code block, output, table or table wrapper scrolls sideways."""
    return [
        f"{_page(seen)}: {b['where']}: {b['part']}{b['tag']}{'' if b['shown'] else ' (collapsed)'} scrolls sideways "
        f"({b['scroll']} > {b['client']} px): {b['text']!r}"
        for b in seen["scrolling"]
    ]


TEX = re.compile(
    r"\$\$|\\begin\{|\\end\{|\\[()\[\]]|\\(?:d?frac|alpha|beta|gamma|delta|epsilon|varepsilon|lambda|mu|sigma"
    r"|rho|theta|tau|phi|pi|omega|sum|prod|int|mathrm|mathbf|mathcal|mathbb|text|textbf|left|right|cdot|times"
    r"|approx|leq?|geq?|neq|sqrt|hat|bar|tilde|vec|operatorname|infty|in|to|quad|mid)(?![A-Za-z])"
)


def check_no_raw_tex(seen: dict) -> list[str]:
    """No text outside MathJax's output (and outside code) looks like TeX: ``$$``, ``\\frac``, ``\\(``..."""
    out = []
    for node in seen["tex"]:
        m = TEX.search(node["text"])
        if m:
            s = node["text"]
            ctx = s[max(0, m.start() - 20) : m.end() + 30].replace("\n", " ").strip()
            out.append(f"{_page(seen)}: {node['where']}: unrendered TeX {m.group()!r} in {ctx!r}")
    return out


# 6.354e-01, 5e-05, 1.5E+3 as a number; not inside a name such as lr7.5e-4
SCIENTIFIC = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][-+]\d+(?!\w)")


def path_pattern() -> re.Pattern:
    """Absolute paths a reader must not see: system roots, the checkout, the cache and data dirs."""
    roots = [r"/work/", r"/tmp/", r"/root/", r"/home/", r"/var/", r"/usr/", r"/opt/", r"/mnt/", r"/private/"]
    mine = {str(Path(p).expanduser().resolve()) for p in (REPO, cache_dir(), default_data_dir())}
    alts = [re.escape(r) for r in roots] + [re.escape(p) + r"(?=[/\s'\"]|$)" for p in sorted(mine, key=len)[::-1]]
    return re.compile(r"(?<![\w.~-])(?:" + "|".join(alts) + ")")


def _hidden(element: dict) -> str:
    return "" if element["shown"] else " (collapsed until clicked)"


def check_clean_output(seen: dict) -> list[str]:
    """No cell output shows an absolute path, a stderr block or a number in scientific notation
    (collapsed outputs count: a click shows them)."""
    out, paths = [], path_pattern()
    for e in seen["stderr"]:
        out.append(f"{_page(seen)}: {e['where']}: a stderr block{_hidden(e)}: {e['text']!r}")
    for o in seen["outputs"]:
        for what, rx in (("an absolute path", paths), ("scientific notation", SCIENTIFIC)):
            m = rx.search(o["text"])
            if m:
                ctx = " ".join(o["text"][max(0, m.start() - 40) : m.end() + 40].split())
                out.append(f"{_page(seen)}: {o['where']}: {what}{_hidden(o)} {m.group()!r} in {ctx!r}")
    return out


LABEL = re.compile(r"^\s*(?:Figure|Fig\.)\s*\d[\w.-]*\s*:?\s*")  # "Figure 4.1:", "Fig. 2"
BAD_ALT = re.compile(r"^(?:_images/)?[0-9a-f]{16,}\.\w+$|^(?:data:|_images/)")


def check_captions(seen: dict) -> list[str]:
    """Every figure has a non-empty caption and its image a real alt text (not a file name or hash);
    every clm figure image sits in a figure."""
    out = []
    for f in seen["figures"]:
        if not LABEL.sub("", f["caption"]).strip():
            out.append(f"{_page(seen)}: {f['where']}: a figure without a caption ({f['src']})")
        if not f["img"]:
            continue
        alt = f["alt"].strip()
        if not alt or BAD_ALT.search(alt):
            out.append(f"{_page(seen)}: {f['where']}: figure {f['caption'][:40]!r} has no alt text (alt={alt!r})")
    for img in seen["images"]:
        if img["clm"] and not img["in_figure"]:
            out.append(f"{_page(seen)}: {img['where']}: a clm figure image outside a <figure> (no caption)")
    return out


NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\w)|(?<![\w.])[-−]?\.\d+(?!\w)")
# numbers in prose that name things rather than state results: chapter, figure, table, section, equation
_REFERENCE = re.compile(
    r"\b(?:[Cc]hapters?|[Ff]ig(?:ure)?s?\.?|[Tt]ables?|[Ss]ections?|§|[Ee]q(?:uation)?s?\.?)\s*\(?$"
)


def numbers(text: str, skip_references: bool = False) -> list[str]:
    """The numbers in ``text`` (``1,234``, ``0.63``, ``−0.93``, ``.5``), as written."""
    found = []
    for m in NUMBER.finditer(text):
        if skip_references and _REFERENCE.search(text[max(0, m.start() - 12) : m.start()]):
            continue
        found.append(m.group())
    return found


def _value(token: str) -> float:
    t = token.replace(",", "").replace("−", "-").lstrip("-")
    return float(t)


def check_findings(seen: dict) -> list[str]:
    """A chapter has a "What we found" section whose cell output states at least one number, and
    every number in the section's prose (outside links, math and code) appears in a cell output of
    the page (as a number of equal value: ``0.63`` matches ``0.630``)."""
    f = seen["findings"]
    if f is None:
        return [f"{_page(seen)}: no 'What we found' section"]
    out = []
    if not numbers(f["outputs"]):
        out.append(f"{_page(seen)}: 'What we found' has no cell output stating a number (display.findings)")
    shown = {_value(n) for o in seen["outputs"] for n in numbers(o["text"])}
    for n in numbers(f["prose"], skip_references=True):
        v = _value(n)
        if not any(math.isclose(v, s, rel_tol=1e-9, abs_tol=1e-12) for s in shown):
            out.append(f"{_page(seen)}: 'What we found' states {n} in its prose, which no cell output shows")
    return out
