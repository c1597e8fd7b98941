"""The built book as a reader's browser shows it: headless Chromium over the DevTools protocol.

Full-page PNGs of every page of a built book, at each width::

    from clm.book.screenshots import screenshots
    shots = screenshots("_build/html", "test-artifacts/screens")   # {(page, width): png path}

:class:`Browser` is one headless tab of the system Chromium (Debian's ``chromium``; no browser
download, no Playwright), driven through ``websocket-client``; the book's HTML checks
(tests/test_book_html.py) use it too, one session per width for all pages. :func:`book_pages`
lists a build's pages in the order of its ``_toc.yml``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from clm.errors import ClmError
from clm.paths import REPO

#: The system Chromium, or None where it is not installed.
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
#: Viewports at most this wide are emulated as a phone (``mobile``: the page's viewport meta applies).
MOBILE_MAX_PX = 600
#: A full-page capture is cut at this height (CSS px), far beyond any chapter.
MAX_HEIGHT_PX = 60_000

# Resolves when the page has loaded, MathJax has typeset, images and fonts are in, and it was painted.
_READY = """(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const within = (p, ms) => Promise.race([p, sleep(ms)]);
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await within(MathJax.startup.promise, 20000); } catch (e) {}
  }
  await within(Promise.all([...document.images].map(i => i.complete ? 0 :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); }))), 15000);
  if (document.fonts) await within(document.fonts.ready, 5000);
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return true;
})()"""


class BrowserError(ClmError):
    """Chromium is missing, did not start, or a page did not load; the message says which."""


class Browser:
    """One headless Chromium tab at a fixed viewport width, driven over the DevTools protocol.

    Args:
        width: the viewport width in CSS pixels (a phone is emulated up to :data:`MOBILE_MAX_PX`).
        height: the viewport height.
        chromium: the executable (default :data:`CHROMIUM`).
        timeout: seconds to wait for Chromium to start and for each command.
    """

    def __init__(self, width: int = 1280, height: int = 900, chromium: str | None = None, timeout: float = 60):
        import websocket  # websocket-client

        exe = chromium or CHROMIUM
        if exe is None:
            raise BrowserError("chromium is not installed (apt-get install chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self.profile = tempfile.mkdtemp(prefix="clm-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--mute-audio", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--window-size={width},{height}", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            port = self._port(timeout)
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            url = next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
            self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        except Exception:
            self.close()
            raise
        self._id = 0
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=width <= MOBILE_MAX_PX)  # fmt: skip

    def _port(self, timeout: float) -> int:
        port_file, end = Path(self.profile) / "DevToolsActivePort", time.time() + timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.time() > end or self.proc.poll() is not None:
                raise BrowserError(f"chromium did not start its DevTools server in {timeout:.0f} s")
            time.sleep(0.1)
        return int(port_file.read_text().split()[0])

    def call(self, method: str, **params: Any) -> dict:
        """Send one DevTools command and return its result (events are not enabled, so none come)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        end = time.time() + self.timeout
        while time.time() < end:
            self.ws.settimeout(max(0.1, end - time.time()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
        raise BrowserError(f"{method}: no answer in {self.timeout:.0f} s")

    def evaluate(self, js: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited, JSON-able values)."""
        res = self.call("Runtime.evaluate", expression=js, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise BrowserError(f"JavaScript error: {d.get('exception', {}).get('description') or d.get('text')}")
        return res["result"].get("value")

    def open(self, page: str | os.PathLike) -> None:
        """Show ``page`` (a file or URL) and wait until it has loaded, typeset its math and painted."""
        url = page if isinstance(page, str) and "://" in page else Path(page).resolve().as_uri()
        self.evaluate("window.__clm_old_page = true")
        self.call("Page.navigate", url=url)
        end = time.time() + self.timeout
        while not self.evaluate("!window.__clm_old_page && document.readyState === 'complete'"):
            if time.time() > end:
                raise BrowserError(f"{url}: did not load in {self.timeout:.0f} s")
            time.sleep(0.05)
        self.evaluate(_READY)

    def full_page_png(self, path: str | os.PathLike) -> Path:
        """Save the whole page (not only the viewport) as a PNG at this width; return its path."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        height = min(MAX_HEIGHT_PX, max(self.height, int(size["height"] + 0.5)))
        # the viewport made as tall as the page, then one plain capture: a capture "beyond the
        # viewport" of a tall page can come out shifted sideways, which no reader ever sees
        mobile = self.width <= MOBILE_MAX_PX
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                  mobile=mobile)  # fmt: skip
        try:
            self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            shot = self.call("Page.captureScreenshot", format="png",
                             clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1})  # fmt: skip
        finally:
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=mobile)  # fmt: skip
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        """Quit Chromium (politely, then by its process group) and remove its profile."""
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close")
            except Exception:
                pass
            ws.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group start_new_session made for it
            self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def toc_files(toc: str | os.PathLike) -> list[str]:
    """The files of a Jupyter Book ``_toc.yml`` (root first), without suffixes, in reading order."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(re.sub(r"\.(md|ipynb|rst|py)$", "", node[key]))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)

    walk(yaml.safe_load(Path(toc).read_text(encoding="utf-8")))
    return out


def find_toc(html_dir: str | os.PathLike) -> Path | None:
    """The ``_toc.yml`` a build came from: the book root above ``<root>/_build/html``, else the repository's."""
    html = Path(html_dir).resolve()
    for toc in (html.parent.parent / "_toc.yml", REPO / "_toc.yml"):
        if toc.is_file():
            return toc
    return None


def book_pages(html_dir: str | os.PathLike, toc: str | os.PathLike | None = None) -> list[Path]:
    """The HTML pages of a built book in reading order: those of ``toc`` (default :func:`find_toc`)
    that were built, else every content page of the build (no ``_static``, search or index)."""
    html = Path(html_dir)
    toc = toc or find_toc(html)
    if toc is not None:
        listed = [html / f"{f}.html" for f in toc_files(toc)]
        if any(p.is_file() for p in listed):
            return [p for p in listed if p.is_file()]
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return [
        p
        for p in sorted(html.rglob("*.html"))
        if not {"_static", "_sources", "_images"} & set(p.relative_to(html).parts) and p.name not in skip
    ]


def shot_name(html_dir: str | os.PathLike, page: str | os.PathLike, width: int) -> str:
    """``notebooks__01_data-1280.png``: a page's path in the build, flattened, and the width."""
    rel = Path(page).resolve().relative_to(Path(html_dir).resolve()).with_suffix("")
    return f"{'__'.join(rel.parts)}-{width}.png"


def screenshots(
    html_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    widths: Sequence[int] = (1280, 400),
    pages: Iterable[str | os.PathLike] | None = None,
) -> dict[tuple[str, int], Path]:
    """Save a full-page PNG of every page of the built book at each viewport width.

    One Chromium session per width visits every page (math typeset, images loaded before the
    capture). Files are named by :func:`shot_name` (``book__intro-1280.png``).

    Args:
        html_dir: the built HTML (``_build/html``).
        out_dir: where the PNGs go (created).
        widths: viewport widths in CSS pixels; up to :data:`MOBILE_MAX_PX` a phone is emulated.
        pages: the pages to capture (default :func:`book_pages`).

    Returns:
        ``{(page path relative to html_dir, width): png path}``.
    """
    html, out = Path(html_dir), Path(out_dir)
    if not html.is_dir():
        raise BrowserError(f"no built book at {html}")
    todo = [Path(p) for p in pages] if pages is not None else book_pages(html)
    shots: dict[tuple[str, int], Path] = {}
    for width in widths:
        with Browser(width) as browser:
            for page in todo:
                browser.open(page)
                rel = page.resolve().relative_to(html.resolve()).as_posix()
                shots[(rel, width)] = browser.full_page_png(out / shot_name(html, page, width))
    return shots
