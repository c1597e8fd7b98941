"""The rendered book, checked as a reader's browser sees it (headless Chromium).

By default the checks run on the session fixture ``book_run`` (conftest.py): the notebooks
executed at preset tiny and the book built from them in a staging dir. With ``CLM_BOOK_HTML``
pointing at a built HTML dir (e.g. the committed notebooks' ``_build/html``), the same checks run
on that build instead and nothing is executed::

    CLM_BOOK_HTML=_build/html .venv/bin/python -m pytest tests/test_book_html.py

Every page of ``_toc.yml`` is held to the reader checks of tests/htmlchecks.py (figures readable
at 1280 px, nothing wider than a 400 px phone, no sideways scrolling, no raw TeX, no machine path,
stderr block or scientific notation, captions and alt text, each chapter's "What we found"),
in one Chromium session per width; a full-page screenshot of each page at each width is kept
under test-artifacts/book-html/ (not committed). Each check is also run on small hand-written
pages, one good and one bad, so that it is known to fail. Chromium is Debian's ``chromium``
package; the tests that need it are skipped, saying so, where it is not installed (.ci/run
installs it).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import htmlchecks as hc
import nbformat
import pytest

from clm.book.params import REPO
from clm.book.screenshots import book_pages, find_toc, toc_files

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
ARTIFACTS = REPO / "test-artifacts"
SHOTS = ARTIFACTS / "book-html"
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.notebooks


class Links(HTMLParser):
    """Collects ids, hrefs and srcs of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag in ("a", "link") and a.get("href"):
            self.refs.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.refs.append(a["src"])
            if tag == "img":
                self.imgs.append(a["src"])


def parse(page: Path) -> Links:
    p = Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def pages(html: Path) -> list[Path]:
    return [p for p in sorted(html.rglob("*.html")) if not {"_static", "_sources"} & set(p.relative_to(html).parts)]


@pytest.fixture(scope="session")
def built(request):
    """The book to check: ``$CLM_BOOK_HTML`` (a built HTML dir) if set, else the tiny ``book_run``.

    A namespace: html (the HTML dir), toc (the ``_toc.yml`` it was built from), run (``book_run``,
    or None for a given build)."""
    given = os.environ.get("CLM_BOOK_HTML")
    if given:
        html = Path(given).expanduser()
        html = (html if html.is_absolute() else Path.cwd() / html).resolve()
        if not (html / "index.html").is_file() and not any(html.glob("*.html")):
            pytest.fail(f"CLM_BOOK_HTML={given}: no built book there")
        toc = find_toc(html)
        if toc is None:
            pytest.fail(f"CLM_BOOK_HTML={given}: no _toc.yml beside the build or in the repository")
        return SimpleNamespace(html=html, toc=toc, run=None)
    run = request.getfixturevalue("book_run")
    return SimpleNamespace(html=run.html, toc=run.book / "_toc.yml", run=run)


def toc_pages(built) -> list[Path]:
    return [built.html / f"{f}.html" for f in toc_files(built.toc)]


def is_chapter(html: Path, page: str, root: str) -> bool:
    """A page built from a notebook (its source in ``_sources`` is an .ipynb), the root page aside."""
    return page != root and (html / "_sources" / Path(page).with_suffix(".ipynb")).is_file()


CHECKS = {  # name: (check, width, applies to)
    "figure fonts": (hc.check_figure_fonts, hc.DESKTOP_PX, "all"),
    "phone figure fonts": (hc.check_figure_fonts, hc.MOBILE_PX, "all"),
    "phone sideways scroll": (hc.check_no_sideways_scroll, hc.MOBILE_PX, "all"),
    "phone overflow": (hc.check_no_overflow, hc.MOBILE_PX, "all"),
    "sideways scroll": (hc.check_no_sideways_scroll, hc.DESKTOP_PX, "all"),
    "raw TeX": (hc.check_no_raw_tex, hc.DESKTOP_PX, "all"),
    "clean output": (hc.check_clean_output, hc.DESKTOP_PX, "all"),
    "captions": (hc.check_captions, hc.DESKTOP_PX, "all"),
    "findings": (hc.check_findings, hc.DESKTOP_PX, "chapters"),
}


@pytest.fixture(scope="session")
def rendered(built):
    """Every built page of the toc, seen in Chromium at 1280 and 400 px (one session per width),
    each screenshotted into test-artifacts/book-html/; every check's failures, and the smallest
    figure font per page and width, are written to test-artifacts/book-html/report.json."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    listed = [p for p in toc_pages(built) if p.is_file()]
    shutil.rmtree(SHOTS, ignore_errors=True)
    seen = {w: hc.collect(built.html, listed, w, SHOTS) for w in (hc.DESKTOP_PX, hc.MOBILE_PX)}
    root = listed[0].relative_to(built.html).as_posix()
    chapters = {s["page"] for s in seen[hc.DESKTOP_PX] if is_chapter(built.html, s["page"], root)}
    failures = {}
    for name, (check, width, scope) in CHECKS.items():
        failures[name] = [f for s in seen[width] if scope == "all" or s["page"] in chapters for f in check(s)]
    fonts = {f"{s['page']} @ {w}": hc.smallest_font(s) for w in seen for s in seen[w]}
    report = {"html": str(built.html), "pages": [s["page"] for s in seen[hc.DESKTOP_PX]],
              "chapters": sorted(chapters), "failures": failures, "smallest_figure_font_px": fonts}  # fmt: skip
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return SimpleNamespace(seen=seen, failures=failures, chapters=chapters, fonts=fonts, pages=listed)


def assert_none(rendered, name: str) -> None:
    fails = rendered.failures[name]
    shown = "\n".join(fails[:80]) + (f"\n... and {len(fails) - 80} more" if len(fails) > 80 else "")
    assert not fails, (
        f"{len(fails)} failures of the {name} check (all in test-artifacts/book-html/report.json):\n{shown}"
    )


# ---------------------------------------------------------------- without a browser


def test_no_internal_link_is_broken(built):
    html = built.html
    parsed = {p: parse(p) for p in pages(html)}
    broken, checked = [], 0
    for page, links in parsed.items():
        for ref in links.refs:
            url = urlsplit(ref)
            if url.scheme or ref.startswith("//") or ref.startswith(("mailto:", "javascript:")):
                continue  # external: not checked offline
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file():
                broken.append(f"{page.relative_to(html)} -> {ref} (no file)")
            elif url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else parse(target).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{page.relative_to(html)} -> {ref} (no anchor)")
    assert checked > 50
    assert not broken, "broken internal links:\n" + "\n".join(broken[:20])


def test_every_figure_is_present_and_non_empty(built):
    html = built.html
    images = [(page, src) for page in pages(html) for src in parse(page).imgs if not urlsplit(src).scheme]
    for page, src in images:
        f = (page.parent / unquote(urlsplit(src).path)).resolve()
        assert f.is_file() and f.stat().st_size > 0, f"{page.name}: image {src} missing or empty"
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == PNG, f"{f.name} is not a PNG"
    # every figure a notebook made is a real PNG and reached the book (as a file or embedded)
    text = "".join(p.read_text(encoding="utf-8") for p in pages(html))
    rendered = {f.read_bytes() for f in (html / "_images").glob("*.png")} if (html / "_images").is_dir() else set()
    if built.run is not None:
        notebooks = [
            (r.name, built.run.cfg.out_dir / f"{r.name}.ipynb") for r in built.run.results if r.status == "ran"
        ]
    else:
        notebooks = [(p.stem, p) for p in sorted((html / "_sources").rglob("*.ipynb"))]
    assert notebooks, "no notebook in the book"
    found = 0
    for name, path in notebooks:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                for b64 in [data.get("image/png")] + embedded_pngs(data.get("text/html", "")):
                    if not b64:
                        continue
                    png = base64.b64decode(b64 if isinstance(b64, str) else "".join(b64))
                    found += 1
                    assert len(png) > 1000 and png[:8] == PNG, f"{name}: an empty or corrupt figure"
                    assert png in rendered or b64_text(b64) in text, f"{name}: a figure is missing from the book"
    assert found, "no notebook figure in the book"


def embedded_pngs(html_out) -> list[str]:
    """The base64 PNGs embedded in a text/html output (clm.book.display.figure)."""
    text = "".join(html_out) if isinstance(html_out, list) else html_out
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)


def b64_text(b64) -> str:
    return b64 if isinstance(b64, str) else "".join(b64)


# ---------------------------------------------------------------- in Chromium


@needs_chromium
def test_every_toc_page_loads_with_its_figures(built, rendered):
    for page in toc_pages(built):
        assert page.is_file(), f"{page.relative_to(built.html)} was not built"
    for seen in rendered.seen[hc.DESKTOP_PX]:
        assert seen["theme"], f"{seen['page']}: the theme's scripts did not run"
        assert seen["title"].strip(), f"{seen['page']}: no title"
        assert not seen["broken"], f"{seen['page']}: images that did not load: {seen['broken']}"
    first = [s for s in rendered.seen[hc.DESKTOP_PX] if s["page"] == "notebooks/01_data.html"]
    assert not first or first[0]["images"], "notebooks/01_data.html shows no figure"


@needs_chromium
def test_screenshots_of_every_page_at_both_widths(rendered):
    for width, seen_all in rendered.seen.items():
        for seen in seen_all:
            shot = Path(seen["screenshot"])
            assert shot.is_file() and shot.read_bytes()[:8] == PNG, shot
            assert png_size(shot)[0] == width and shot.stat().st_size > 5_000, f"{shot.name}: {png_size(shot)}"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[16:24]
    return int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")


@needs_chromium
def test_figures_are_readable_at_1280px(rendered):
    """Every figure's smallest font renders at 9 px or more; every image output is a clm figure."""
    assert_none(rendered, "figure fonts")


@needs_chromium
def test_no_figure_or_table_is_wider_than_a_phone(rendered):
    """At 400 px no figure or table overflows (figures shrink; their smallest fonts are in the report)."""
    phone = {k: v for k, v in rendered.fonts.items() if k.endswith(f"@ {hc.MOBILE_PX}") and v is not None}
    print("smallest figure font at 400 px:", {k: round(v, 1) for k, v in phone.items()})
    assert_none(rendered, "phone overflow")


@needs_chromium
def test_figures_are_readable_on_a_phone(rendered):
    """At 400 px a figure keeps its smallest font at 9 px or more: it pans sideways in its own box."""
    assert_none(rendered, "phone figure fonts")


@needs_chromium
def test_nothing_but_figures_and_math_scrolls_sideways_on_a_phone(rendered):
    assert_none(rendered, "phone sideways scroll")


@needs_chromium
def test_no_code_or_output_block_scrolls_sideways(rendered):
    assert_none(rendered, "sideways scroll")


@needs_chromium
def test_no_unrendered_tex(rendered):
    assert_none(rendered, "raw TeX")


@needs_chromium
def test_no_path_stderr_or_scientific_notation_in_outputs(rendered):
    assert_none(rendered, "clean output")


@needs_chromium
def test_every_figure_has_a_caption_and_alt_text(rendered):
    assert_none(rendered, "captions")


@needs_chromium
def test_every_chapter_states_what_it_found(rendered):
    assert rendered.chapters, "no page of the book was built from a notebook"
    assert_none(rendered, "findings")


# ---------------------------------------------------------------- each check fails where it should
# Small pages written here in the shape of a Jupyter Book page (article.bd-article, div.cell with
# .cell_input and .cell_output): one good page that every check passes, one bad page per check.


def tiny_png(w: int = 40, h: int = 30) -> str:
    """A grey ``w``×``h`` PNG, base64."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + b"\x80" * w for _ in range(h))
    png = PNG + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw))
    return base64.b64encode(png + chunk(b"IEND", b"")).decode()


def clm_figure(label: str, caption: str, alt: str, labelsize: float = 10) -> str:
    """The HTML clm.book.display.figure makes of a small matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clm.book import display

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1, 2], [0.2, 0.5, 0.4])
    ax.tick_params(labelsize=labelsize)
    ax.set_xlabel("α", fontsize=labelsize)
    return display.figure(fig, label, caption, alt).data


def cell(code: str | None, output: str, collapsed: bool = False) -> str:
    """A notebook cell as myst-nb renders it: ``code`` None for remove-input, ``collapsed`` hides the output."""
    inp = f'<div class="cell_input docutils container"><div class="highlight"><pre>{code}</pre></div></div>'
    hidden = " hidden" if collapsed else ""
    return (f'<div class="cell docutils container">{inp if code else ""}'
            f'<div class="cell_output docutils container"{hidden}>{output}</div></div>')  # fmt: skip


def stream(text: str, name: str = "stream") -> str:
    return f'<div class="output {name} highlight-myst-ansi"><div class="highlight"><pre>{text}</pre></div></div>'


def html_page(title: str, body: str) -> str:
    return (
        '<!doctype html><html data-theme="light"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title>'
        "<style>body{margin:0;font:16px sans-serif} article{max-width:720px;margin:0 auto;padding:0 8px}"
        " pre{overflow:auto;white-space:pre} .nowrap td{white-space:nowrap}"
        " @media (max-width:600px){pre{white-space:pre-wrap}}</style></head><body><main>"
        f'<article class="bd-article"><section id="top"><h1>{title}</h1>{body}</section></article>'
        "</main></body></html>"
    )


def findings_section(prose: str, output: str) -> str:
    return (f'<section id="what-we-found"><h2>What we found<a class="headerlink" href="#what-we-found">#</a></h2>'
            f"<p>{prose}</p>{cell(None, output)}</section>")  # fmt: skip


# a hide-input cell as sphinx-togglebutton renders it: its code in a closed <details>
HIDDEN_INPUT = (
    '<div class="cell tag_hide-input docutils container"><details class="hide above-input"><summary>Show code'
    '</summary><div class="cell_input docutils container"><div class="highlight"><pre>{code}</pre></div></div>'
    '</details><div class="cell_output docutils container"><p>out</p></div></div>'
)
# display math as MathJax renders it, wider than a phone
WIDE_MATH = (
    '<div class="math" style="{style}"><mjx-container display="true" style="display:block" aria-label="theta wide">'
    '<mjx-math style="display:inline-block;width:600px">θ</mjx-math></mjx-container></div>'
)


def synthetic_pages() -> dict[str, str]:
    """name: page HTML; "good" passes every check, each other page fails the check its name says."""
    import pandas as pd

    from clm.book import display

    img = tiny_png()
    table = display.table(pd.DataFrame({"attribute": ["formality", "politeness"], "score": [0.6349, 0.8173]})).data
    # nine columns of long words and numbers: a card per row on a phone, nothing split or scrolling
    cols = ["interpolation", "extrapolation", "recalibration", "entanglement", "preparations", "tokens/s",
            "perplexity ratio", "distinct-2", "WikiText ratio (max)"]  # fmt: skip
    wide = display.table(pd.DataFrame([["logit-product", "simplicity", 0.32612, 1.0, 2624, 111.2, 4.81, 0.92, 1.45]] * 3,
                                      columns=cols)).data  # fmt: skip
    good = (
        WIDE_MATH.format(style="overflow-x:auto")
        + "<p>Inline math <span class='math'><mjx-container>\\alpha = \\frac{1}{2}</mjx-container></span>"
        " and code <code>$\\beta$</code>; the run dir is runs/tmp/x.</p>"
        f'<figure><img src="data:image/png;base64,{img}" alt="The project logo"><figcaption>Our logo.</figcaption></figure>'
        f'<p><img src="data:image/png;base64,{img}" alt="logo"> a logo in the prose</p>'
        + cell(
            "fig = plots.curve(r)", clm_figure("1.1", "The mean score rises with α.", "A line rising from 0.2 to 0.5.")
        )
        + cell('ax.set_title("$\\alpha$")', table)
        + cell("show.table(metrics)", wide)
        + cell("print(summary)", stream("mean 0.630, 2,624 tokens, lr 0.00075 (B-lr7.5e-4)"))
        + findings_section(
            "As chapter 4 showed (<a href='#'>Figure 1.1</a>), the mean is 0.63 over 12 prompts.",
            "<p>The mean is 0.630 over 12 prompts.</p>",
        )  # fmt: skip
    )
    long_line = "x = " + "0.123 " * 80
    wide = "".join(f"<td>a-very-long-unbreakable-cell-{i}</td>" for i in range(8))
    big = ('<figure class="clm-figure"><img src="data:image/png;base64,' + img + '" alt="Wide panels" width="1360" '
           'style="max-width:100%;height:auto" data-min-font-px="12.0"><figcaption>Figure 3.2: Five panels.</figcaption></figure>')  # fmt: skip
    return {
        "good": html_page("Good", good),
        "bad_font": html_page(
            "Small fonts", cell("fig", clm_figure("2.1", "Tiny ticks.", "ticks", labelsize=5)) + cell("fig2", big)
        ),  # fmt: skip
        "bad_unwrapped": html_page(
            "Plain PNG",
            cell("plt.plot(x)", f'<img alt="_images/0a5956d79223.png" src="data:image/png;base64,{img}" width="300">'),
        ),  # fmt: skip
        "bad_phone": html_page(
            "Too wide",
            WIDE_MATH.format(style="")
            + cell("fig", big.replace("max-width:100%", "max-width:none"))
            + cell("t", f'<table class="nowrap"><tr>{wide}</tr></table>'),
        ),  # fmt: skip
        "bad_scroll": html_page(
            "Scrolls",
            cell("print(row)", stream(long_line))
            + cell(
                "t",
                f'<div class="pst-scrollable-table-container" style="overflow-x:auto">'
                f'<table class="nowrap"><tr>{wide}</tr></table></div>',
            )
            + HIDDEN_INPUT.format(code=long_line),
        ),  # fmt: skip
        "bad_tex": html_page(
            "Raw TeX",
            "<p>The weight is \\(\\alpha\\) and $$x^2$$ here.</p>"
            '<div class="math notranslate">\\[\\frac{a}{b}\\]</div>',
        ),  # fmt: skip
        "bad_output": html_page(
            "Noisy",
            cell("train()", stream("Downloading x.whl", "stderr"))
            + cell("print(p)", stream(f"wrote {REPO}/runs/cpu/table.csv"))
            + cell("print(m)", stream("mean 6.354e-01"))
            + cell("print(q)", stream("cache /root/.cache/clm/x"), collapsed=True),
        ),
        "bad_caption": html_page(
            "No captions",
            cell("fig", clm_figure("2.1", "", "")) + '<figure><img src="_images/0a5956d7922369e840ed7700b945a68b.png" '
            'alt="_images/0a5956d7922369e840ed7700b945a68b.png"><figcaption>A plot.</figcaption></figure>'
            + cell("img", f'<img src="data:image/png;base64,{img}" alt="x" width="100" data-min-font-px="12">'),
        ),  # fmt: skip
        "bad_findings_none": html_page("No findings", cell("print(m)", stream("mean 0.630"))),
        "bad_findings_numbers": html_page(
            "Typed findings",
            cell("print(m)", stream("mean 0.630"))
            + findings_section("The range is 0.71, the mean 0.63.", "<p>The scorer is weak.</p>"),
        ),  # fmt: skip
        "bad_image": html_page("Broken", '<p><img src="missing.png" alt="gone"></p>'),
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """What COLLECT sees on each synthetic page at 1280 and 400 px: {(name, width): seen}."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    root = tmp_path_factory.mktemp("synthetic-book")
    files = []
    for name, text in synthetic_pages().items():
        (root / f"{name}.html").write_text(text, encoding="utf-8")
        files.append(root / f"{name}.html")
    return {(s["page"][:-5], w): s for w in (hc.DESKTOP_PX, hc.MOBILE_PX) for s in hc.collect(root, files, w)}


def only(fails: list[str], *needles: str) -> None:
    """``fails`` is not empty and each of ``needles`` is in one of its lines."""
    assert fails, "the check passed a page it should fail"
    for needle in needles:
        assert any(needle in f for f in fails), f"{needle!r} not in:\n" + "\n".join(fails)


@needs_chromium
@pytest.mark.parametrize("name", list(CHECKS))
def test_the_good_page_passes_every_check(synthetic, name):
    check, width, _ = CHECKS[name]
    assert check(synthetic["good", width]) == []


@needs_chromium
def test_figure_font_check(synthetic):
    good = synthetic["good", hc.DESKTOP_PX]
    assert 13 < hc.smallest_font(good) < 15  # 10 pt at 100 px per inch, shown at its natural width
    only(hc.check_figure_fonts(synthetic["bad_font", hc.DESKTOP_PX]),
         "bad_font.html: cell 1 (`fig`): 'Figure 2.1: Tiny ticks.' renders its smallest font at 6.9 px",
         "bad_font.html: cell 2 (`fig2`): 'Figure 3.2: Five panels.' renders its smallest font at 5.")  # fmt: skip
    only(hc.check_figure_fonts(synthetic["bad_unwrapped", hc.DESKTOP_PX]),
         "bad_unwrapped.html: cell 1 (`plt.plot(x)`): an image output not made by clm.book.display.figure")  # fmt: skip


@needs_chromium
def test_phone_overflow_check(synthetic):
    phone = synthetic["good", hc.MOBILE_PX]
    assert phone["viewport"] == hc.MOBILE_PX and hc.smallest_font(phone) < hc.smallest_font(synthetic["good", 1280])
    fails = hc.check_no_overflow(synthetic["bad_phone", hc.MOBILE_PX])
    only(fails, "bad_phone.html: cell 1 (`fig`): figure 'Figure 3.2: Five panels.' is 1360 px wide",
         "bad_phone.html: cell 2 (`t`): table 'a-very-long",
         "bad_phone.html: section #top: display math 'theta wide' is 600 px wide in a 384 px column and is cut off",
         "bad_phone.html: the page scrolls sideways")  # fmt: skip


@needs_chromium
def test_sideways_scroll_check(synthetic):
    fails = hc.check_no_sideways_scroll(synthetic["bad_scroll", hc.DESKTOP_PX])
    only(fails, "bad_scroll.html: cell 1 (`print(row)`): output pre scrolls sideways", "'x = 0.123 0.123",
         "bad_scroll.html: cell 2 (`t`): output div.pst-scrollable-table-container scrolls sideways",
         "bad_scroll.html: cell 3 (`x = 0.123 0.123 0.123 0.123 0.123 0.123 0.123 0.12`): code pre (collapsed) scrolls")  # fmt: skip
    assert len(fails) == 3  # the innermost block only, not each of its ancestors


@needs_chromium
def test_raw_tex_check(synthetic):
    fails = hc.check_no_raw_tex(synthetic["bad_tex", hc.DESKTOP_PX])
    only(fails, "bad_tex.html: section #top: unrendered TeX '\\\\('", "unrendered TeX '\\\\['")


@needs_chromium
def test_clean_output_check(synthetic):
    fails = hc.check_clean_output(synthetic["bad_output", hc.DESKTOP_PX])
    only(fails, "bad_output.html: cell 1 (`train()`): a stderr block: 'Downloading x.whl'",
         f"bad_output.html: cell 2 (`print(p)`): an absolute path '{str(REPO)[:5]}",
         "bad_output.html: cell 3 (`print(m)`): scientific notation '6.354e-01'",
         "bad_output.html: cell 4 (`print(q)`): an absolute path (collapsed until clicked) '/root/'")  # fmt: skip


@needs_chromium
def test_caption_check(synthetic):
    fails = hc.check_captions(synthetic["bad_caption", hc.DESKTOP_PX])
    only(fails, "bad_caption.html: cell 1 (`fig`): a figure without a caption",
         "bad_caption.html: cell 1 (`fig`): figure 'Figure 2.1:' has no alt text (alt='')",
         "bad_caption.html: section #top: figure 'A plot.' has no alt text",
         "bad_caption.html: cell 2 (`img`): a clm figure image outside a <figure>")  # fmt: skip


@needs_chromium
def test_findings_check(synthetic):
    only(hc.check_findings(synthetic["bad_findings_none", hc.DESKTOP_PX]),
         "bad_findings_none.html: no 'What we found' section")  # fmt: skip
    fails = hc.check_findings(synthetic["bad_findings_numbers", hc.DESKTOP_PX])
    only(fails, "'What we found' has no cell output stating a number",
         "'What we found' states 0.71 in its prose, which no cell output shows")  # fmt: skip
    assert not any("0.63 " in f for f in fails)  # 0.63 in the prose is the output's 0.630


@needs_chromium
def test_a_broken_image_is_seen(synthetic):
    assert synthetic["bad_image", hc.DESKTOP_PX]["broken"] == ["missing.png"]
    assert synthetic["good", hc.DESKTOP_PX]["broken"] == []


@needs_chromium
def test_screenshots_saves_every_page_at_each_width(tmp_path):
    from clm.book.screenshots import screenshots

    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "intro.html").write_text(html_page("Intro", "<p>text</p>" * 200), encoding="utf-8")
    (html / "notebooks" / "ch.html").write_text(html_page("Chapter", cell("x", stream("1"))), encoding="utf-8")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/ch\n")
    assert book_pages(html, tmp_path / "_toc.yml") == [html / "intro.html", html / "notebooks" / "ch.html"]
    shots = screenshots(html, tmp_path / "shots", widths=(1280, 400), pages=book_pages(html, tmp_path / "_toc.yml"))
    assert sorted(shots) == [("intro.html", 400), ("intro.html", 1280), ("notebooks/ch.html", 400),
                             ("notebooks/ch.html", 1280)]  # fmt: skip
    assert shots["notebooks/ch.html", 400].name == "notebooks__ch-400.png"
    w, h = png_size(shots["intro.html", 400])
    assert w == 400 and h > 2000  # the whole page, not the 900 px viewport
    assert png_size(shots["intro.html", 1280])[0] == 1280
