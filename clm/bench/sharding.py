"""How much sharding a sweep across processes buys: 2 processes × 1 thread against 1 process × 2 threads.

Both runs are the same ``python -m clm sweep`` (one per process count, in fresh processes, so model
loading is timed too, as a user pays it); the sharded one goes through ``torchrun --standalone``
(gloo on a CPU). The two tables must be equal, or the measurement is refused. The record goes into a
bench JSON under ``"sharding"``, and ``python -m clm bench sharding --show`` prints it.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clm.errors import ConfigError
from clm.io import atomic_write_json


def _timed(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"the sweep failed ({' '.join(cmd[:4])} …): {last}")
    return time.perf_counter() - t0


def measure(sweep_args: list[str], processes: int = 2) -> dict[str, Any]:
    """Time one sweep as 1 process × ``processes`` threads and as ``processes`` processes × 1 thread.

    Args:
        sweep_args: the arguments of ``python -m clm sweep`` without ``--out`` (e.g. model,
            endpoints, design, prompts, counts).
        processes: the number of processes (and of threads in the single-process run).

    Returns:
        The record: both wall times, their ratio (single / sharded: above 1, sharding is faster),
        the command, the machine's CPU count and the date.
    """
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp) / "one.parquet", Path(tmp) / "many.parquet"
        single = _timed([sys.executable, "-m", "clm", "sweep", *sweep_args, "--out", str(one)], processes)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        sharded = _timed([*torchrun, "-m", "clm", "sweep", *sweep_args, "--out", str(many)], 1)
        a, b = pd.read_parquet(one), pd.read_parquet(many)
        if not a.equals(b):
            raise ConfigError("the sharded sweep's table differs from the single-process one: not a fair comparison")
        rows = len(a)
    return {
        "command": "python -m clm sweep " + " ".join(sweep_args),
        "rows": rows,
        "single_s": round(single, 2),
        "sharded_s": round(sharded, 2),
        "layout": {"single": f"1 process x {processes} threads", "sharded": f"{processes} processes x 1 thread"},
        "ratio": round(single / sharded, 3),
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def record(path: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Add ``result`` under ``"sharding"`` to the bench JSON at ``path`` (atomic; created if absent)."""
    import json

    p = Path(path)
    data = json.loads(p.read_text()) if p.is_file() else {}
    data["sharding"] = result
    return atomic_write_json(p, data)


def describe(result: dict[str, Any] | None) -> str:
    """One line for a reader: what sharding bought on the recorded machine."""
    if not result:
        return "no sharding measurement recorded (python -m clm bench sharding)"
    return (
        f"{result['layout']['sharded']}: {result['sharded_s']:.1f} s against {result['layout']['single']}: "
        f"{result['single_s']:.1f} s for {result['rows']} rows, a speed ratio of {result['ratio']:.2f} "
        f"({result['cpus']} CPUs, {result['date']})"
    )
