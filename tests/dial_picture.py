"""The book's static picture of the dial (chapter 7, Figure 7.6): a screenshot taken in JupyterLab.

    .venv/bin/python tests/dial_picture.py --out book/images/dial.png

writes a small temporary notebook that loads the embedded default as a reader would (the base,
the shipped endpoints, the shipped scorers and the shipped controller; without shipped control
tables it falls back to ``controller=None`` and says so), builds ``clm.widgets.Dial`` on a
WritingPrompts-like prompt, opens it in JupyterLab in headless Chromium at 1280 px wide (the
browser harness, tests/jlab.py), runs it, switches one attribute on and types its α into the
slider's readout, clicks Generate, waits for the continuations, and saves a PNG cropped to the
widget and its output (scaled to about ``--png-width`` pixels). A check at small scale::

    .venv/bin/python tests/dial_picture.py --out /tmp/dial.png --model pico \\
        --endpoints runs/tiny/endpoints --scorers runs/tiny/scorers

Not a test: it needs Debian's chromium and, for the default, the embedded model in clm's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

from jlab import CHROMIUM, JupyterLab, LabNotebook, Page

PROMPT = (
    "[WP] Every night at 3 a.m. your phone rings with a call from your own number. "
    "Tonight, for the first time, you answer it."
)
NOTE = "DIAL-PICTURE"  # the notebook prints this before what the script reports


def notebook_source(args: argparse.Namespace) -> str:
    """The one code cell a reader would write (paths given on the command line, else the shipped ones)."""
    ends = f"Path({str(args.endpoints)!r})" if args.endpoints else f"shipped_dir('endpoints', {args.model!r})"
    scorers = f"load_scorers(path={str(args.scorers)!r})" if args.scorers else "load_scorers()"
    return f"""\
from pathlib import Path

import clm
from clm.errors import ClmError
from clm.eval.scoring import load_scorers
from clm.experiments.control import shipped_controller
from clm.paths import shipped_dir
from clm.widgets import Dial

base, tok = clm.load_base({args.model!r})
im = clm.InterpolatedModel(base, tok, clm.Endpoints.load({ends}))
scorers = {scorers}
try:
    ctl = shipped_controller({args.model!r})
    print({NOTE!r}, "controller: the shipped one,", ", ".join(ctl.attributes))
except ClmError as err:
    ctl = None
    print({NOTE!r}, "controller: none (the target-score mode is off):", err)
knob = Dial(im, scorers, controller=ctl, prompt={args.prompt!r})
knob.tokens.value = {args.tokens}
knob"""


def write_notebook(folder: Path, source: str) -> Path:
    import nbformat

    from clm.book.pipeline import KERNELSPEC

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    path = folder / "dial.ipynb"
    nbformat.write(nb, path)
    return path


def q(selector: str) -> str:
    return f"document.querySelector({json.dumps('.jp-OutputArea-output .clm-dial ' + selector)})"


def press(page: Page, key: str, code: int) -> None:
    for kind in ("keyDown", "keyUp"):
        page.call("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code)


def turn(page: Page, attribute: str, alpha: float) -> None:
    """Switch ``attribute`` on and type ``alpha`` into its slider's readout, as a reader does."""
    page.click(f".jp-OutputArea-output .clm-dial .clm-dial-on-{attribute} input[type=checkbox]")
    readout = q(f".clm-dial-alpha-{attribute} .widget-readout")
    page.wait(f"{readout}.contentEditable === 'true'", 60, f"the {attribute} slider enabled")
    page.click(f".jp-OutputArea-output .clm-dial .clm-dial-alpha-{attribute} .widget-readout")
    page.evaluate(f"getSelection().selectAllChildren({readout})")
    page.type_text(f"{alpha:g}")
    press(page, "Enter", 13)
    page.wait(f"Math.abs(parseFloat({readout}.textContent) - {alpha}) < 1e-9", 60, f"α = {alpha:g} on the slider")


def generate(page: Page, timeout: float) -> str:
    before = page.evaluate(f"{q('.clm-dial-status')}.textContent.trim()")
    page.click(".jp-OutputArea-output .clm-dial .clm-dial-generate")
    now = f"{q('.clm-dial-status')}.textContent.trim()"
    return page.wait(f"{now} !== {json.dumps(before)} && /^(done|error)/.test({now}) && {now}", timeout, "Generate")


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def shoot(page: Page, out: Path, png_width: int, pad: int = 10) -> tuple[int, int]:
    """A PNG of the dial and its output, scaled so it is about ``png_width`` pixels wide. The
    margin is the dial's own (a white padding), so nothing around it shows at the edges."""
    import base64

    page.evaluate(
        "(() => { const d = document.querySelector('.jp-OutputArea-output .clm-dial');"
        f" d.style.padding = '{pad}px'; d.style.background = 'white'; d.scrollIntoView({{block: 'center'}}); }})()"
    )
    time.sleep(0.5)  # let the scroll and the last layout settle
    r = page.evaluate(
        "(() => { const r = document.querySelector('.jp-OutputArea-output .clm-dial').getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height, innerHeight]; })()"
    )
    x, y, w, h, inner = r
    if y < 0 or y + h > inner:
        raise RuntimeError(f"the dial ({h:.0f} px tall) does not fit the window ({inner} px); pass a larger --height")
    clip = {"x": x, "y": y, "width": w, "height": h, "scale": max(0.5, min(3.0, png_width / w))}
    data = page.call("Page.captureScreenshot", format="png", clip=clip)["data"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(data))
    return png_size(out)


def kernel_text(nb: LabNotebook) -> str:
    return "\n".join(c["text"] for c in nb.cells() if c["type"] == "code")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write (e.g. book/images/dial.png)")
    ap.add_argument("--model", default="smollm2-135m", help="base model (default: the embedded default)")
    ap.add_argument("--endpoints", type=Path, help="endpoints dir (default: the ones shipped for --model)")
    ap.add_argument("--scorers", type=Path, help="scorers dir (default: the shipped heads)")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--attribute", default="sentiment", help="the attribute switched on (else the first)")
    ap.add_argument("--alpha", type=float, default=0.9, help="the α typed into its slider")
    ap.add_argument("--tokens", type=int, default=40, help="tokens per continuation")
    ap.add_argument("--width", type=int, default=1280, help="browser window width in CSS px")
    ap.add_argument("--height", type=int, default=2000, help="browser window height in CSS px")
    ap.add_argument("--png-width", type=int, default=1300, help="about how wide the PNG is")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run and for Generate")
    args = ap.parse_args(argv)
    if CHROMIUM is None:
        sys.exit("dial_picture: Debian's chromium is not installed (apt-get install chromium)")
    out = args.out.resolve()
    args.endpoints = args.endpoints.resolve() if args.endpoints else None
    args.scorers = args.scorers.resolve() if args.scorers else None
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if os.environ.get("CLM_CACHE_DIR"):
        env["CLM_CACHE_DIR"] = os.environ["CLM_CACHE_DIR"]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="dial-picture-") as tmp:
        write_notebook(Path(tmp), notebook_source(args))
        with JupyterLab(Path(tmp), env=env) as lab, Page(size=(args.width, args.height)) as page:
            nb = lab.open(page, "dial.ipynb", timeout=args.timeout)
            nb.js("app.shell.collapseLeft(); app.shell.collapseRight(); return true;")
            nb.run_all(timeout=args.timeout)
            cell = nb.cells()[0]
            if cell["errors"] or not page.evaluate("!!document.querySelector('.jp-OutputArea-output .clm-dial')"):
                sys.exit(f"dial_picture: the notebook failed: {cell['errors'] or cell['text'][-2000:]}")
            for line in kernel_text(nb).splitlines():
                if line.startswith(NOTE):
                    print(line[len(NOTE) :].strip())
            attrs = page.evaluate(
                "[...document.querySelectorAll('.jp-OutputArea-output .clm-dial [class*=\"clm-dial-on-\"]')]"
                ".map(e => [...e.classList].find(c => c.startsWith('clm-dial-on-')).slice(12))"
            )
            attribute = args.attribute if args.attribute in attrs else attrs[0]
            turn(page, attribute, args.alpha)
            status = generate(page, args.timeout)
            print(f"status: {status}")
            if status.startswith("error"):
                sys.exit(f"dial_picture: Generate failed: {status}")
            size = shoot(page, out, args.png_width)
    print(f"wrote {out} ({size[0]} × {size[1]} px) in {time.time() - t0:.0f} s: {attribute} at α = {args.alpha:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
