"""Sweeps in other processes on pico: killed with SIGKILL at random points, and sharded over ranks.

A small sweep (fluency and WikiText-style perplexity on) runs in a subprocess. Killed at random
points five times and then rerun, it must end with the table of an uninterrupted run, and no file
under a final name (the table, its perplexity table, a part) may ever be partial. Sharded over two
processes (torchrun with gloo, or two processes given rank and world), it must write the table a
single process writes.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

WORKER = r"""
import sys

import numpy as np
import torch

import clm
from clm.experiments import designs, sweep, sweep_perplexity


class Length:
    fingerprint = "length-mod-7"

    def score(self, texts):
        return np.array([len(t) % 7 / 7 for t in texts])


def main(pico_dir, ends_dir, out, text, rank=None, world=None):
    im = clm.InterpolatedModel(*clm.load_base(pico_dir), clm.Endpoints.load(ends_dir))
    settings = designs.single_attribute("sentiment", [0.0, 0.25, 0.5, 0.75, 1.0]) + designs.custom(
        ["base", "formality=0", "formality=1", "sentiment=0.5,formality=0.5"]
    )
    print("ready", flush=True)
    sweep.run_sweep(
        im, settings, ["Once upon a time", "The cat", "A long road"], {"sentiment": Length(), "formality": Length()},
        out=out, n_samples=2, max_new_tokens=6, batch_size=2, fluency="base", progress=False, rank=rank, world=world,
        perplexity=sweep_perplexity.wikitext_perplexity(im, text, max_tokens=64, window=32, stride=16),
    )
    print("done", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(*sys.argv[1:5], *map(int, sys.argv[5:7]))
"""


@pytest.fixture(scope="module")
def reference(pico_dir, endpoints_dir, tmp_path_factory):
    """An uninterrupted single-process run of the worker's sweep, here (one thread, as the
    workers): (its table's path, the text file, and how long the sweep took)."""
    import torch

    root = tmp_path_factory.mktemp("faults")
    text = root / "wiki.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n" * 6)
    ns: dict = {"__name__": "worker"}
    exec(compile(WORKER, "worker.py", "exec"), ns)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.monotonic()
        ns["main"](str(pico_dir), str(endpoints_dir), str(root / "ref" / "t.parquet"), str(text))
        took = time.monotonic() - t0
    finally:
        torch.set_num_threads(threads)
    return root / "ref" / "t.parquet", text, took


@pytest.fixture()
def worker(tmp_path, pico_dir, endpoints_dir, reference):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    text = reference[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

    def start(out: Path, *shard: int, launcher: tuple[str, ...] = (sys.executable,)) -> subprocess.Popen:
        args = [*launcher, str(script), str(pico_dir), str(endpoints_dir), str(out), str(text), *map(str, shard)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    return start


def finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    assert "done" in out


def final_files(out: Path) -> list[Path]:
    """Every file under a final name: the table, its perplexity table and the parts."""
    parts = out.with_name(out.name + ".parts")
    found = [p for p in (out, out.with_name(out.stem + "_perplexity" + out.suffix)) if p.exists()]
    return found + (sorted(parts.glob("*.parquet")) if parts.is_dir() else [])


def assert_complete(files: list[Path]) -> int:
    """Each file is a whole Parquet file (a partial one has no footer); returns how many were read."""
    n = 0
    for f in files:
        try:
            pq.read_metadata(f)
        except FileNotFoundError:  # folded into the table and removed meanwhile
            continue
        n += 1
    return n


def test_sigkill_at_random_points_then_rerun_gives_the_uninterrupted_table(tmp_path, worker, reference):
    ref, _, run_s = reference  # run_s: how long the sweep itself takes, after the imports
    out = tmp_path / "run" / "t.parquet"
    rng = random.Random(16)
    kills, seen = 0, 0
    for _ in range(5):
        proc = worker(out)
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + rng.uniform(0.0, run_s)
        while time.monotonic() < deadline and proc.poll() is None:
            seen += assert_complete(final_files(out))  # poll while it writes
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        seen += assert_complete(final_files(out))
    assert kills >= 3 and seen > 0  # most kills land inside the sweep; files were read while it wrote
    finish(worker(out))
    for name in ("t.parquet", "t_perplexity.parquet"):
        a, b = ref.with_name(name), out.with_name(name)
        pd.testing.assert_frame_equal(pd.read_parquet(b), pd.read_parquet(a))
        assert b.read_bytes() == a.read_bytes()
    assert not out.with_name("t.parquet.parts").exists()


def test_two_ranks_under_torchrun_write_the_single_process_table(tmp_path, worker, reference):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    one = reference[0]
    two = tmp_path / "two" / "t.parquet"
    launcher = (
        str(torchrun if torchrun.exists() else shutil.which("torchrun")),
        "--standalone",
        "--nproc_per_node",
        "2",
    )
    finish(worker(two, launcher=launcher))
    assert two.read_bytes() == one.read_bytes()
    assert not two.with_name("t.parquet.parts").exists()


def test_two_processes_given_rank_and_world_write_the_single_process_table(tmp_path, worker, reference):
    one = reference[0]
    two = tmp_path / "two" / "t.parquet"
    procs = [worker(two, rank, 2) for rank in (1, 0)]
    for p in procs:
        finish(p)
    assert two.read_bytes() == one.read_bytes()
    assert not two.with_name("t.parquet.parts").exists()
