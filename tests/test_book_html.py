"""The rendered book, checked as a reader's browser sees it (headless Chromium).

Uses the session fixture ``book_run`` (conftest.py): the notebooks executed at preset tiny and
the book built from them in a staging dir. Chromium is Debian's ``chromium`` package; the tests
that need it are skipped, saying so, where it is not installed (.ci/run installs it).
"""

from __future__ import annotations

import base64
import html as htmllib
import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

from clm.book.params import REPO

pytestmark = pytest.mark.notebooks

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
ARTIFACTS = REPO / "test-artifacts"
PNG = b"\x89PNG\r\n\x1a\n"

# Runs in the page after it loads; the result is written into the DOM, which Chromium dumps.
PROBE = """<script>window.addEventListener('load', function () {
  var imgs = [].slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                   .map(function (i) { return i.getAttribute('src'); });
  var h1 = document.querySelector('h1');
  document.body.setAttribute('data-probe', JSON.stringify({images: imgs.length, broken: broken,
    theme: document.documentElement.dataset.theme || '', h1: h1 ? h1.textContent : ''}));
});</script>"""


def chromium(*args: str, timeout: int = 60) -> str:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout


def probe(page: Path) -> dict:
    """Load ``page`` in Chromium (a copy beside it, with PROBE added) and return what PROBE saw."""
    text = page.read_text(encoding="utf-8")
    copy = page.with_name(f"__probe__{page.name}")
    i = text.rindex("</body>")
    copy.write_text(text[:i] + PROBE + text[i:], encoding="utf-8")
    try:
        dom = chromium("--virtual-time-budget=5000", "--dump-dom", copy.as_uri())
    finally:
        copy.unlink()
    start = dom.find('data-probe="')
    assert start >= 0, f"{page.name}: the page did not finish loading in Chromium"
    return json.loads(htmllib.unescape(dom[start + 12 : dom.index('"', start + 12)]))


def toc_pages(html: Path) -> list[Path]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [c["file"] for c in part["chapters"]]
    return [html / f"{f}.html" for f in files]


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


# ---------------------------------------------------------------- without a browser


def test_no_internal_link_is_broken(book_run):
    html = book_run.html
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


def test_every_figure_is_present_and_non_empty(book_run):
    html = book_run.html
    images = [(page, src) for page in pages(html) for src in parse(page).imgs if not urlsplit(src).scheme]
    figures = [(p, s) for p, s in images if "_images/" in s]
    assert figures, "no notebook figure in the book"
    for page, src in images:
        f = (page.parent / unquote(urlsplit(src).path)).resolve()
        assert f.is_file() and f.stat().st_size > 0, f"{page.name}: image {src} missing or empty"
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == PNG, f"{f.name} is not a PNG"
    # every figure a notebook made is a real PNG and reached the book
    rendered = {f.read_bytes() for f in (html / "_images").glob("*.png")}
    for r in book_run.results:
        if r.status != "ran":
            continue
        nb = nbformat.read(book_run.cfg.out_dir / f"{r.name}.ipynb", as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}):
                    png = base64.b64decode(out["data"]["image/png"])
                    assert len(png) > 1000 and png[:8] == PNG, f"{r.name}: an empty or corrupt figure"
                    assert png in rendered, f"{r.name}: a figure is missing from the book"


# ---------------------------------------------------------------- in Chromium


@needs_chromium
def test_probe_detects_a_broken_image(tmp_path):
    page = tmp_path / "page.html"
    page.write_text('<html><body><h1>t</h1><img src="missing.png"></body></html>')
    seen = probe(page)
    assert seen["images"] == 1 and seen["broken"] == ["missing.png"]


@needs_chromium
def test_every_toc_page_loads_with_its_figures(book_run):
    from concurrent.futures import ThreadPoolExecutor

    pages = toc_pages(book_run.html)
    for page in pages:
        assert page.is_file(), f"{page.name} was not built"
    with ThreadPoolExecutor(max_workers=3) as pool:  # browsers mostly wait: overlap them
        seen_all = list(pool.map(probe, pages))
    for page, seen in zip(pages, seen_all):
        assert seen["theme"], f"{page.name}: the theme's scripts did not run"
        assert seen["h1"].strip(), f"{page.name}: no title"
        assert not seen["broken"], f"{page.name}: images that did not load: {seen['broken']}"
    assert seen_all[pages.index(book_run.html / "notebooks" / "01_data.html")]["images"] >= 1


@needs_chromium
def test_screenshots_of_two_pages(book_run):
    ARTIFACTS.mkdir(exist_ok=True)
    for name, page in (("book-intro.png", "book/intro.html"), ("book-01_data.png", "notebooks/01_data.html")):
        out = ARTIFACTS / name
        out.unlink(missing_ok=True)
        chromium("--window-size=1280,1600", "--hide-scrollbars", "--virtual-time-budget=5000",
                 f"--screenshot={out}", (book_run.html / page).as_uri())  # fmt: skip
        assert out.is_file() and out.stat().st_size > 20_000 and out.read_bytes()[:8] == PNG, name
