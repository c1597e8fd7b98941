"""The pipeline killed with SIGKILL inside a chapter, then rerun.

``python -m clm book --preset tiny --only 01 NN --no-build`` runs in its own process group. Once
the second chapter's kernel is executing cells (its partial notebook in ``<run>/pipeline/``
holds an executed cell), the whole group and the kernel are killed with SIGKILL. The rerun
completes: the first chapter is skipped (done earlier), the second is run again. At every
moment, polled throughout, a notebook under its final name in the out dir is absent or a whole,
valid notebook. At the end, the recorded metrics (``<run>/metrics/<chapter>.json``) equal those
of an uninterrupted run in another run dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clm.paths import REPO

FIRST, KILLED = "01_data", "02_finetune_endpoints"  # the cheap pair at tiny: 01 reads the data, 02 trains pico


def command(root: Path) -> list[str]:
    return [
        sys.executable, "-m", "clm", "book", "--preset", "tiny", "--run-dir", str(root / "run"),
        "--out-dir", str(root / "out"), "--only", FIRST[:2], KILLED[:2], "--no-build",
    ]  # fmt: skip


@pytest.fixture()
def env(pico_dir) -> dict[str, str]:
    """This session's clm cache (holding pico), offline, one thread."""
    from conftest import SHARED_DATA

    return {**os.environ, "CLM_DATA_DIR": str(SHARED_DATA), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def whole_or_absent(out: Path) -> int:
    """Every notebook under a final name in ``out`` is a whole, valid notebook; returns how many were read."""
    import nbformat

    n = 0
    for name in (FIRST, KILLED):
        path = out / f"{name}.ipynb"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        nb = nbformat.reads(text, as_version=4)  # a partial file is not JSON
        nbformat.validate(nb)
        assert nb.cells and not any(
            c.get("metadata", {}).get("papermill", {}).get("status") == "running" for c in nb.cells
        )
        n += 1
    return n


def kill_point(run: Path) -> str | None:
    """Where the killed chapter is, once it is worth killing: "training" (the training cell runs
    and a pole's work dir exists; with "a checkpoint written" the rerun must resume from it), else
    "after training" (the training cell has completed), from the partial notebook that papermill
    saves as cells run."""
    if list(run.glob("train/*/*/checkpoints/checkpoint-*")):
        return "training, a checkpoint written"
    for partial in (run / "pipeline").glob(f"{KILLED}.*.partial.ipynb"):
        try:
            cells = json.loads(partial.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError):
            continue  # being written
        training = [c for c in cells if c["cell_type"] == "code" and "train_or_load(" in "".join(c["source"])]
        status = training[0].get("metadata", {}).get("papermill", {}).get("status") if training else None
        if status == "running" and list(run.glob("train/*/*")):
            return "training"
        if status == "completed":
            return "after training"
    return None


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the pipeline's process group and the kernels it started (each in a session of its own)."""
    import psutil

    kernels = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    for child in kernels:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)
    psutil.wait_procs(kernels, timeout=30)


def metrics(root: Path) -> dict[str, str]:
    """Each chapter's recorded metrics, with the run dir's own path replaced (the runs differ in it)."""
    run = root / "run"
    return {
        name: (run / "metrics" / f"{name}.json").read_text(encoding="utf-8").replace(str(run), "<run>")
        for name in (FIRST, KILLED)
    }


def test_sigkill_inside_a_chapter_then_rerun_gives_the_uninterrupted_metrics(tmp_path, env):
    ref = subprocess.run(command(tmp_path / "ref"), env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]

    root = tmp_path / "killed"
    out = root / "out"
    root.mkdir()
    log = root / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            command(root), env=env, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
    seen, deadline = 0, time.monotonic() + 300
    try:
        while (where := kill_point(root / "run")) is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the chapter's kernel never started"
            seen += whole_or_absent(out)
            time.sleep(0.01)
        assert f"{KILLED}: running" in log.read_text()
        seen += whole_or_absent(out)
    finally:
        kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    print(f"killed {KILLED} inside it: {where}")
    assert seen > 0 and whole_or_absent(out) == 1  # the first chapter was read while the second ran
    assert not (out / f"{KILLED}.ipynb").exists()

    with open(log, "w") as f:
        rerun = subprocess.Popen(command(root), env=env, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    while rerun.poll() is None:  # poll while it writes the notebooks again
        whole_or_absent(out)
        time.sleep(0.05)
    text = log.read_text()
    assert rerun.returncode == 0, text[-3000:]
    assert f"{FIRST}: done earlier" in text and f"{KILLED}: done in" in text
    assert whole_or_absent(out) == 2
    assert metrics(root) == metrics(tmp_path / "ref")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{e}" for n in (FIRST, KILLED) for e in ("ipynb", "py"))
