"""JupyterLab driven in headless Chromium, for tests: a server, a page, a notebook in it.

Reusable by any test that must see a chapter as a reader of JupyterLab does::

    with JupyterLab(root_dir, env={...}) as lab, Page() as page:
        nb = lab.open(page, "notebooks/01_data.ipynb")  # waits until the kernel is idle
        assert nb.dialogs() == [] and not nb.dirty()
        nb.run_all()                                    # Run > Run All Cells, waits for the end
        cells = nb.cells()  # per cell: prompt, stderr, images, widgets, errors, text as rendered
        page.click(".widget-slider .noUi-handle")       # a real mouse click; page.evaluate(js)
        nb.set_source(i, "alpha = 0.5"); nb.save(); nb.command("notebook:run-cell")

:class:`JupyterLab` starts the test environment's ``jupyter lab`` (``.venv/bin``) on 127.0.0.1
with a random free port and a random token, its settings in a temporary directory (no autosave,
no news, no update check, every cell in the DOM), and ``expose_app_in_browser`` so the page can
run JupyterLab's commands (the ones its menus run). It stops the server and every process it
started (its kernels) by PID. :class:`Page` is one Chromium tab over the DevTools protocol,
through ``websocket-client``: no Playwright and no browser download; the system Chromium
(Debian's ``chromium``) is used, and :data:`CHROMIUM` is None where it is absent (tests skip,
saying so).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
JUPYTER = Path(sys.executable).parent / "jupyter"  # the test environment's (.venv/bin/jupyter)

# JupyterLab user settings for a test: nothing may write a file or pop up on its own.
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    # every cell in the DOM, on screen or not, so prompts and outputs can be read
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """The PIDs of every process below ``pid`` (from /proc; children before grandchildren)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(0), [])
        out += kids
        todo += kids
    return out


def _stop(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM each PID, then SIGKILL what is still alive after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        end = time.time() + timeout
        while alive and time.time() < end:
            alive = [p for p in alive if is_alive(p)]
            time.sleep(0.1)
        if not alive:
            return


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Page:
    """One headless Chromium tab, driven over the DevTools protocol."""

    def __init__(self, chromium: str | None = CHROMIUM, size: tuple[int, int] = (1400, 1000), timeout: float = 30):
        import websocket  # websocket-client

        if chromium is None:
            raise RuntimeError("chromium is not installed")
        self.profile = tempfile.mkdtemp(prefix="jlab-chromium-")
        self.events: list[dict] = []  # every DevTools event received so far (dialogs, console, ...)
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--window-size={size[0]},{size[1]}",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        port_file, end = Path(self.profile) / "DevToolsActivePort", time.time() + timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.time() > end or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start its DevTools server")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        self._id = 0
        for domain in ("Page", "Runtime"):
            self.call(f"{domain}.enable")
        # a headless tab never has the focus, and JupyterLab follows focus for its current widget
        self.call("Emulation.setFocusEmulationEnabled", enabled=True)

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict:
        """Send one DevTools command and return its result (events meanwhile go to ``events``)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        end = time.time() + timeout
        while time.time() < end:
            self.ws.settimeout(max(0.1, end - time.time()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == "Page.javascriptDialogOpening" and msg["params"].get("type") == "beforeunload":
                    self._id += 1  # leaving a page with unsaved changes (goto): leave; the answer is ignored
                    self.ws.send(json.dumps({"id": self._id, "method": "Page.handleJavaScriptDialog",
                                             "params": {"accept": True}}))  # fmt: skip
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def evaluate(self, js: str, timeout: float = 60) -> Any:
        """The value of a JavaScript expression in the page (promises awaited, JSON-able values)."""
        res = self.call("Runtime.evaluate", timeout=timeout, expression=js, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise RuntimeError(f"JavaScript error: {d.get('exception', {}).get('description') or d.get('text')}")
        return res["result"].get("value")

    def wait(self, js: str, timeout: float = 60, what: str = "", interval: float = 0.25) -> Any:
        """Poll ``js`` until it is truthy; return its value. TimeoutError names ``what``."""
        end = time.time() + timeout
        while True:
            value = self.evaluate(js)
            if value:
                return value
            if time.time() > end:
                raise TimeoutError(f"waited {timeout:.0f} s for {what or js}")
            time.sleep(interval)

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the first element matching ``selector``."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise LookupError(f"no element matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def js_dialogs(self) -> list[str]:
        """Messages of the browser dialogs (alert, confirm, prompt) opened so far; "leave this
        page?" on :meth:`goto` is answered and left out."""
        return [
            e["params"].get("message", "")
            for e in self.events
            if e["method"] == "Page.javascriptDialogOpening" and e["params"].get("type") != "beforeunload"
        ]

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            _stop([*descendants(self.proc.pid), self.proc.pid], timeout=5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JupyterLab:
    """A JupyterLab server for one test, on 127.0.0.1 with a random port and token.

    Args:
        root_dir: what the server shows (its file browser root and the notebooks' base).
        env: extra environment for the server and so for its kernels (e.g. CLM_CACHE_DIR).
        timeout: seconds to wait for the server to answer.
    """

    def __init__(self, root_dir: Path, env: dict[str, str] | None = None, timeout: float = 120):
        self.root_dir = Path(root_dir)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.home = Path(tempfile.mkdtemp(prefix="jlab-home-"))
        for name, value in SETTINGS.items():
            path = self.home / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        full_env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces"),
            "IPYTHONDIR": str(self.home / "ipython"),
            **(env or {}),
        }
        cmd = [str(JUPYTER), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
               "--LabApp.expose_app_in_browser=True"]  # fmt: skip
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log_path = self.home / "server.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.kernel_pids: set[int] = set()
        end = time.time() + timeout
        while True:
            try:
                self.api("status")
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > end:
                    self.stop()
                    raise RuntimeError(f"JupyterLab did not start; its log: {self.log()[-2000:]}") from None
                time.sleep(0.3)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str) -> Any:
        """GET ``/api/<path>`` with the token; the decoded JSON."""
        req = urllib.request.Request(f"{self.base}/api/{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def url(self, path: str) -> str:
        """The JupyterLab page showing ``path`` (relative to root_dir), with a fresh workspace."""
        return f"{self.base}/lab/tree/{path}?reset&token={self.token}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def open(self, page: Page, path: str, timeout: float = 120) -> LabNotebook:
        """Open notebook ``path`` in ``page`` and wait until its kernel is ready."""
        page.goto(self.url(path))
        nb = LabNotebook(page, path)
        nb.wait_ready(timeout)
        self.kernel_pids.update(descendants(self.proc.pid))
        return nb

    def stop(self) -> None:
        """Stop the server and every process it started (its kernels), by PID."""
        if self.proc.poll() is None:
            self.kernel_pids.update(descendants(self.proc.pid))
            _stop([self.proc.pid])  # the server shuts its kernels down on SIGTERM
        _stop(sorted(self.kernel_pids))  # and whatever did not go with it
        self._log.close()

    def __enter__(self) -> JupyterLab:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


# JavaScript helpers run in the page; `nb()` is the notebook panel in front.
_JS = """
const app = window.jupyterapp;
const nb = () => app ? [...app.shell.widgets('main')].find(w => w.content && w.sessionContext
  && w.context && w.context.path === PATH) || null : null;
"""


class LabNotebook:
    """One notebook open in a JupyterLab page: its state as the reader sees it."""

    def __init__(self, page: Page, path: str):
        self.page, self.path = page, path

    def js(self, body: str, timeout: float = 60) -> Any:
        """Run ``body`` (a function body that may ``await`` and ``return``) with ``app`` and ``nb()``."""
        return self.page.evaluate(f"(async () => {{ {self._prelude} {body} }})()", timeout=timeout)

    @property
    def _prelude(self) -> str:
        return _JS.replace("PATH", json.dumps(self.path))

    def state(self) -> dict:
        """The readiness signals: execution indicator, toolbar kernel name, status bar text."""
        return self.js("""
            const w = nb(); if (!w) return {};
            const ind = w.node.querySelector('.jp-Notebook-ExecutionIndicator');
            const name = w.node.querySelector('.jp-KernelName, .jp-Toolbar-kernelName');
            const bar = document.querySelector('#jp-main-statusbar');
            const k = w.sessionContext.session && w.sessionContext.session.kernel;
            return {indicator: ind ? ind.dataset.status : null, kernel: name ? name.textContent.trim() : null,
                    statusbar: bar ? bar.textContent : '', path: w.context.path,
                    session: k ? k.status : null};""")

    def wait_ready(self, timeout: float = 120, settle: int = 4) -> dict:
        """Wait until the kernel is idle: the indicator, a kernel named in the toolbar, "Idle" in
        the status bar, and the session's kernel idle, all held for ``settle`` polls in a row.

        Right after a notebook opens, JupyterLab sends the kernel a few requests of its own
        (kernel info, the widget manager's comm info), so one idle poll can be followed by a
        short busy spell; only a settled idle is ready."""
        self.page.wait("!!window.jupyterapp", timeout, "JupyterLab to load")
        end, st, held = time.time() + timeout, {}, 0
        while time.time() < end:
            self.js("const w = nb(); if (w && app.shell.currentWidget !== w) app.shell.activateById(w.id);")
            st = self.state()
            ready = (
                st.get("indicator") == "idle"
                and st.get("kernel") not in (None, "", "No Kernel")
                and "Idle" in st.get("statusbar", "")
                and st.get("session") == "idle"
            )
            held = held + 1 if ready else 0
            if held >= settle:
                return st
            time.sleep(0.25)
        raise TimeoutError(f"{self.path}: the kernel was not ready in {timeout:.0f} s: {st} dialogs={self.dialogs()}")

    def dialogs(self) -> list[str]:
        """The text of every JupyterLab dialog shown, and of every browser dialog so far."""
        shown = self.page.evaluate("[...document.querySelectorAll('.jp-Dialog')].map(d => d.textContent.trim())")
        return shown + self.page.js_dialogs()

    def dismiss_dialogs(self) -> None:
        self.page.evaluate("document.querySelectorAll('.jp-Dialog .jp-mod-reject').forEach(b => b.click())")

    def dirty(self) -> bool:
        return bool(self.js("return nb().context.model.dirty;"))

    def command(self, name: str, args: dict | None = None, timeout: float = 60) -> Any:
        """Run a JupyterLab command (what its menus and shortcuts run), e.g. ``docmanager:save``."""
        return self.js(
            f"await app.commands.execute({json.dumps(name)}, {json.dumps(args or {})}); return true;", timeout
        )

    def save(self) -> None:
        """File > Save, and wait until it is written."""
        self.command("docmanager:save")
        self.page.wait(f"(async () => {{ {self._prelude} return !nb().context.model.dirty; }})()", 30, "the save")

    def run_all(self, timeout: float = 600) -> None:
        """Run > Run All Cells, then wait until every code cell has run (or one failed, which
        stops the run) and the kernel is idle."""
        # clear the prompts first, so the wait below cannot be met by the counts the file came with
        self.js("nb().content.widgets.forEach(c => { if (c.model.type === 'code') c.model.executionCount = null; });")
        self.js("app.commands.execute('notebook:run-all-cells'); return true;")  # not awaited: it ends with the run
        self.page.wait(
            f"""(async () => {{ {self._prelude} const w = nb();
              const cells = w.content.widgets.filter(c => c.model.type === 'code');
              const prompts = cells.map(c => c.node.querySelector('.jp-InputArea-prompt').textContent);
              const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
              return w.sessionContext.session.kernel.status === 'idle' && !prompts.some(p => p.includes('*'))
                && (failed || prompts.every(p => /\\[\\d+\\]/.test(p))); }})()""",
            timeout,
            f"{self.path}: every cell to run",
            interval=1.0,
        )
        self.wait_ready(60)

    def sources(self) -> list[str]:
        """Every cell's source, as the notebook model holds it."""
        return self.js("return nb().content.widgets.map(c => c.model.sharedModel.getSource());")

    def set_source(self, index: int, source: str) -> None:
        """Replace cell ``index``'s source, as a reader's edit does (the notebook becomes modified)."""
        self.js(f"nb().content.widgets[{index}].model.sharedModel.setSource({json.dumps(source)}); return true;")

    def cells(self) -> list[dict]:
        """Per cell, as rendered: type, prompt, stderr texts, number of images and widgets, errors
        (``ename: evalue``), text (markdown as rendered; a code cell's outputs)."""
        return self.js("""
            return nb().content.widgets.map(c => {
              const q = s => [...c.node.querySelectorAll(s)];
              return {type: c.model.type,
                      prompt: (c.node.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
                      stderr: q('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
                                .map(o => o.textContent),
                      images: q('.jp-OutputArea-output img').length,
                      widgets: q('.jp-OutputArea-output .jupyter-widgets').length,
                      errors: c.model.type !== 'code' ? [] : c.model.outputs.toJSON()
                                .filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`),
                      text: c.model.type === 'markdown'  // as rendered (jupyterlab-myst: .myst)
                            ? q('.jp-MarkdownOutput, .myst').map(o => o.textContent).join('\\n')
                            : q('.jp-OutputArea-output').map(o => o.textContent).join('\\n')};
            });""")

    def kernel(self) -> dict:
        """The running kernel's name and status, from the session."""
        return self.js("""const k = nb().sessionContext.session.kernel;
                          return {name: k.name, status: k.status, display: nb().sessionContext.kernelDisplayName};""")
