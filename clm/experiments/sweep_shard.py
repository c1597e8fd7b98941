"""Sharding a sweep over processes: which rank this is, and waiting for the others.

Under ``torchrun`` (or any launcher that sets ``RANK`` and ``WORLD_SIZE``) the sweep joins the
``torch.distributed`` group (gloo on the CPU, NCCL when CUDA is there), unless the caller set one
up already, and synchronises with its barriers. Given ``rank`` and ``world`` without a process
group, each rank marks its share done with a file in the parts folder (naming the plan it ran),
and rank 0 waits for the others' marks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clm.errors import ConfigError
from clm.io import atomic_write_text


@dataclass(frozen=True)
class Shard:
    """This process's place in a sharded sweep."""

    rank: int = 0
    world: int = 1
    distributed: bool = False  # synchronise through torch.distributed (else through files)


def _dist() -> Any:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed
        return None
    return dist if dist.is_available() else None


def resolve_shard(rank: int | None, world: int | None, out: Any) -> Shard:
    """The shard of this process: ``rank``/``world`` as given, else the process group's, else the
    launcher's environment (joining its group), else a single process. A one-line ConfigError
    for bad values, or for a sharded sweep without ``out`` (ranks meet through its part files)."""
    dist = _dist()
    active = dist is not None and dist.is_initialized()
    if rank is None and world is None:
        env_world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if not active and env_world > 1 and dist is not None and "MASTER_ADDR" in os.environ:
            import torch

            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            active = True
        if not active:
            return Shard()
        rank, world = dist.get_rank(), dist.get_world_size()
    for name, value in (("rank", rank), ("world", world)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"rank must be in [0, world) and world >= 1, got rank={rank!r}, world={world!r}")
    if world > 1 and out is None:
        raise ConfigError("a sharded sweep (world > 1) needs out=: the ranks meet through its part files")
    if active and (dist.get_rank(), dist.get_world_size()) != (rank, world):
        raise ConfigError(
            f"rank={rank}, world={world} disagree with torch.distributed's {dist.get_rank()}/{dist.get_world_size()}"
        )
    return Shard(rank, world, active and world > 1)


def barrier(shard: Shard) -> None:
    """Wait for every rank (a no-op without a process group)."""
    if shard.distributed:
        _dist().barrier()


def _mark(parts: Path, rank: int) -> Path:
    return parts / f"rank{rank}.done"


def mark_done(shard: Shard, parts: Path, plan: str) -> None:
    """Record (without a process group) that this rank finished its share of the plan ``plan``."""
    if shard.world > 1 and not shard.distributed:
        atomic_write_text(_mark(parts, shard.rank), plan)


def wait_for_ranks(shard: Shard, parts: Path, plan: str, timeout: float = 24 * 3600.0, poll: float = 0.2) -> None:
    """On rank 0 without a process group: wait until every other rank marked ``plan`` done; a
    ConfigError after ``timeout`` seconds."""
    if shard.world == 1 or shard.distributed or shard.rank != 0:
        return
    end = time.monotonic() + timeout

    def ready(r: int) -> bool:
        try:
            return _mark(parts, r).read_text() == plan
        except OSError:
            return False

    while not all(ready(r) for r in range(1, shard.world)):
        if time.monotonic() > end:
            raise ConfigError(f"the other ranks did not finish their parts in {str(parts)!r} within {timeout:.0f} s")
        time.sleep(poll)


def clear_marks(parts: Path) -> None:
    """Remove the ranks' marks (rank 0, once their parts are folded into the table)."""
    for f in parts.glob("rank*.done"):
        f.unlink(missing_ok=True)
