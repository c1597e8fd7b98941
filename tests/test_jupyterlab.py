"""Chapters stepped through in JupyterLab, as a reader does it (headless Chromium).

Two cheap chapters are executed by the pipeline at preset tiny into a temporary ``notebooks/``
(the .ipynb with its jupytext .py, as after the book's main command), then opened in a real
JupyterLab (``.venv/bin/jupyter lab``, tests/jlab.py). They must open with no dialog and not
modified, save unedited without changing a byte, run all their cells in the kernel they name
with no stderr output, show their figures, and leave both files as they were.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jlab import CHROMIUM, JupyterLab, Page, is_alive

from clm.book import pipeline

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]

# The cheapest chapters at tiny that show figures: 01 reads the data, 07 times a pico benchmark.
CHAPTERS = ("01_data", "09_cost_of_interpolation")
MYST_RAW = ("{cite", "{doc}", "```{", "{admonition}")  # MyST markup left unrendered


@pytest.fixture(scope="module")
def lab_dir(clm_cache, tmp_path_factory) -> Path:
    """``<tmp>/lab/notebooks/`` holding CHAPTERS as the pipeline writes them (run dir ``<tmp>/run``)."""
    root = tmp_path_factory.mktemp("jupyterlab")
    cfg = pipeline.Config(preset="tiny", run_dir=root / "run", out_dir=root / "lab" / "notebooks", only=CHAPTERS)
    pipeline.run_notebooks(cfg, log=lambda _: None)
    return root / "lab"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_the_pipeline_writes_pairs_that_jupytext_finds_in_sync(lab_dir):
    """jupytext's own rules, file times included: its contents manager reads each pair with no
    "more recent" error, saving it unedited changes no byte, and ``jupytext --sync`` has nothing
    to update."""
    from jupytext import TextFileContentsManager

    folder = lab_dir / "notebooks"
    assert sorted(digests(folder)) == sorted(f"{n}.{ext}" for n in CHAPTERS for ext in ("ipynb", "py"))
    before = digests(folder)
    cm = TextFileContentsManager(root_dir=str(folder))
    for name in CHAPTERS:
        ipynb, py = folder / f"{name}.ipynb", folder / f"{name}.py"
        assert ipynb.stat().st_mtime == py.stat().st_mtime  # written together
        model = cm.get(f"{name}.ipynb")
        nb = model["content"]
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert any("parameters" in t for t in tags) and not any("injected-parameters" in t for t in tags), name
        params = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert 'preset = "tiny"' in params and f'run_dir = "{lab_dir.parent / "run"}"' in params, params
        cm.save({"type": "notebook", "content": nb}, f"{name}.ipynb")
        assert digests(folder) == before, f"{name}: saving unedited rewrote a file"
        sync = subprocess.run(
            [sys.executable, "-m", "jupytext", "--sync", str(ipynb)], capture_output=True, text=True, timeout=120
        )
        assert sync.returncode == 0, sync.stderr
        assert f"Unchanged {ipynb}" in sync.stderr + sync.stdout and f"Unchanged {py}" in sync.stderr + sync.stdout
        assert "Updating" not in sync.stderr + sync.stdout
    assert digests(folder) == before


def test_chapters_open_run_and_stay_unchanged_in_jupyterlab(lab_dir, clm_cache):
    folder = lab_dir / "notebooks"
    before = digests(folder)
    run = lab_dir.parent / "run"
    env = {"CLM_CACHE_DIR": str(clm_cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env |= {"CLM_PRESET": "tiny", "CLM_RUN_DIR": str(run)}  # as a reader starts it (book/running.md)
    with JupyterLab(lab_dir, env=env) as lab, Page() as page:
        for name in CHAPTERS:
            nb = lab.open(page, f"notebooks/{name}.ipynb")
            assert nb.dialogs() == [], name
            assert not nb.dirty(), f"{name}: marked modified on opening"
            kernel = nb.kernel()
            assert kernel["name"] == "python3" and kernel["display"] == "Python 3", kernel
            assert kernel["status"] in ("idle", "busy"), kernel  # started; busy while answering Lab's own requests
            assert nb.wait_ready(60)["session"] == "idle", name  # and it settles to idle
            nb.save()  # File > Save with no edit
            assert digests(folder) == before, f"{name}: saving unedited rewrote a file"
            nb.run_all(timeout=600)
            assert nb.dialogs() == [], name
            cells = nb.cells()
            code = [c for c in cells if c["type"] == "code"]
            assert code and all(c["prompt"].strip("[]: ").isdigit() for c in code), [c["prompt"] for c in code]
            assert [c["stderr"] for c in code if c["stderr"]] == [], name
            assert sum(c["images"] for c in code) >= 1, f"{name}: no figure"
            raw = [m for c in cells if c["type"] == "markdown" for m in MYST_RAW if m in c["text"]]
            assert raw == [], f"{name}: MyST markup shown raw: {raw}"
            assert nb.state()["indicator"] == "idle" and "Idle" in nb.state()["statusbar"]
            # the parameters cell is what ran: its values, not the environment's and no injected cell's
            assert "This run: preset tiny, model pico, data " in "\n".join(c["text"] for c in code), name
            assert f"run dir {run.name}, seed 0" in "\n".join(c["text"] for c in code), name
        # a reader's edit of run_dir takes effect (and, unsaved, changes no file)
        i = next(i for i, src in enumerate(nb.sources()) if f'run_dir = "{run}"' in src)  # the parameters cell
        other = lab_dir.parent / "edited-run"
        nb.set_source(i, nb.sources()[i].replace(f'run_dir = "{run}"', f'run_dir = "{other}"'))
        nb.run_all(timeout=600)
        assert f"run dir {other.name}, seed 0" in "\n".join(c["text"] for c in nb.cells() if c["type"] == "code")
        assert (other / "metrics" / f"{CHAPTERS[-1]}.json").is_file()
        pids = {lab.proc.pid, *lab.kernel_pids}
        assert len(pids) > 1  # the kernels were seen, so stopping them is checked below
    assert not [p for p in pids if is_alive(p)], "a process survived stop()"
    assert digests(folder) == before, "files changed on disk"
    assert all(nbformat.read(folder / f"{n}.ipynb", as_version=4) for n in CHAPTERS)
