"""What control costs: decoding with a schedule against the fixed setting, and solving for a score.

    python -m clm bench control --threads 1 --out clm/assets/bench/cpu-smollm2-135m.json
    python -m clm bench control --show

- :func:`schedule_speed`: tokens per second of one batch (8 rows by default) at a fixed setting
  against a :class:`~clm.core.schedule.Schedule` that moves every attribute's α on every generated
  token (so the coefficient table is rewritten between every two decode steps), the same prompts,
  greedy, the same seed, every row running to ``new_tokens`` (no stop at EOS). α stays strictly
  inside (0, 1) on both (the schedule ramps from 0.25 to 0.75, the fixed setting sits at 0.5), so
  every endpoint is live on every token in both runs: they differ only in the table's rewrites.
  One warm-up of each, then ``repeats`` rounds alternating which goes first; medians. Goal ≥ 0.95×.
- :func:`solve_time`: milliseconds per :meth:`Controller.weights_for` for one target and for two
  solved jointly (``clip=True``: a target out of reach costs its search too); medians. Goal < 10 ms.

:func:`record` merges the result into a bench JSON under ``"control"``;
:func:`clm.bench.report.control_table` and :func:`clm.bench.report.control_text` read it.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clm.core.schedule import Schedule, schedule_steps
from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.io import atomic_write_json

#: The goals of issue 19, as the report prints them.
SPEED_GOAL, SOLVE_GOAL_MS = 0.95, 10.0
#: Prompts of the batch (cycled to ``batch`` rows).
PROMPTS = (
    "Once upon a time",
    "The letter said",
    "My neighbour told me that",
    "The review of the new phone",
    "Dear hiring manager,",
    "Yesterday at the station",
    "The recipe calls for",
    "In the last chapter of the book",
)


def settings(attributes: Sequence[str], new_tokens: int) -> tuple[Weights, Schedule]:
    """The fixed setting (every α at 0.5) and the schedule (every α 0.25 → 0.75 over the tokens)."""
    if not attributes:
        raise ConfigError("the model has no attributes to schedule")
    fixed = Weights({a: 0.5 for a in attributes})
    last = max(new_tokens - 1, 1)
    return fixed, Schedule({a: [(0, 0.25), (last, 0.75)] for a in attributes})


def _check(**counts: Any) -> None:
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def _timed(im: Any, prompts: list[str], weights: Any, new_tokens: int, seed: int) -> tuple[float, list[list[int]]]:
    from clm.bench.methods import timed

    kw = dict(max_new_tokens=new_tokens, do_sample=False, stop_at_eos=False, seed=seed, progress=False)
    dt, gens = timed(lambda: im.generate(prompts, weights=weights, **kw))
    return dt, [g.token_ids for g in gens]


def schedule_speed(
    im: Any, batch: int = 8, new_tokens: int = 32, repeats: int = 3, seed: int = 0, prompts: Sequence[str] = PROMPTS
) -> dict[str, Any]:
    """Tokens per second at the fixed setting and with the schedule (see the module), and their ratio.

    Args:
        im: an :class:`~clm.core.engine.InterpolatedModel`.
        batch: rows per batch (``prompts`` cycled).
        new_tokens: generated tokens per row (every row runs to the end).
        repeats: timed rounds of each (after one warm-up of each).
        seed: the seed of every job.

    Returns:
        A JSON-able dict: the settings' text, counts, each run's median seconds and its ``times``,
        ``fixed_tokens_per_s``, ``schedule_tokens_per_s``, ``ratio`` (schedule / fixed), the goal,
        whether it is met, ``table_changes`` (coefficient-table rewrites per job) and the share of
        greedy tokens the two runs agree on (they differ: the settings differ after token 0).
    """
    _check(batch=batch, new_tokens=new_tokens, repeats=repeats)
    rows = [prompts[i % len(prompts)] for i in range(batch)]
    fixed, sched = settings(list(im.attributes), new_tokens)
    for w in (fixed, sched):  # warm-up once (a short job of each)
        _timed(im, rows, w, min(new_tokens, 4), seed)
    times: dict[str, list[float]] = {"fixed": [], "schedule": []}
    tokens: dict[str, list] = {}
    for r in range(repeats):
        order = ("fixed", "schedule") if r % 2 == 0 else ("schedule", "fixed")
        for name in order:
            dt, tokens[name] = _timed(im, rows, fixed if name == "fixed" else sched, new_tokens, seed)
            times[name].append(dt)
    med = {k: statistics.median(v) for k, v in times.items()}
    tps = {k: batch * new_tokens / v for k, v in med.items()}
    ratio = tps["schedule"] / tps["fixed"]
    same = [a == b for x, y in zip(tokens["fixed"], tokens["schedule"]) for a, b in zip(x, y)]
    changes = sum(s is not None for s in schedule_steps([sched] * batch, new_tokens)[1:])
    return dict(
        batch=batch, new_tokens=new_tokens, repeats=repeats, seed=seed, decoding="greedy, no stop at EOS",
        fixed=str(fixed), schedule=str(sched), table_changes=changes,
        fixed_s=med["fixed"], schedule_s=med["schedule"], fixed_times=times["fixed"],
        schedule_times=times["schedule"], fixed_tokens_per_s=tps["fixed"], schedule_tokens_per_s=tps["schedule"],
        ratio=round(ratio, 4), goal=f">= {SPEED_GOAL}", met=bool(ratio >= SPEED_GOAL),
        same_tokens=sum(same) / len(same) if same else None,
    )  # fmt: skip


def default_targets(ctl: Any) -> list[dict[str, float]]:
    """One target for the controller's first attribute and (with two or more) a joint one for
    its first two: the middle of each attribute's reachable range alone."""
    attrs = list(ctl.attributes)[:2]
    if not attrs:
        raise ConfigError("the controller has no attributes to solve for")
    mids = {a: round(sum(ctl.reachable(a)) / 2, 3) for a in attrs}
    out = [{attrs[0]: mids[attrs[0]]}]
    return out + ([dict(mids)] if len(attrs) > 1 else [])


def solve_time(ctl: Any, targets: Sequence[Mapping[str, float]] | None = None, repeats: int = 50) -> dict[str, Any]:
    """Median milliseconds per ``ctl.weights_for(target, clip=True)``, per target.

    Args:
        ctl: a :class:`~clm.experiments.control.Controller`.
        targets: attribute -> score dicts (default :func:`default_targets`: one single, one joint).
        repeats: timed calls per target (after one warm-up call).

    Returns:
        A JSON-able dict: ``rows`` (per target: kind "single" or "joint", the target, median and
        max ms, whether it was clipped), the slowest median, the goal and whether it is met.
    """
    _check(repeats=repeats)
    targets = [dict(t) for t in (targets if targets is not None else default_targets(ctl))]
    if not targets:
        raise ConfigError("give at least one target to time")
    rows = []
    for tg in targets:
        plan = ctl.weights_for(tg, clip=True)  # warm-up
        ms = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ctl.weights_for(tg, clip=True)
            ms.append((time.perf_counter() - t0) * 1e3)
        rows.append(
            dict(kind="single" if len(tg) == 1 else "joint", target=tg, median_ms=statistics.median(ms),
                 max_ms=max(ms), clipped=bool(plan.clipped), weights=str(plan.weights),
                 met=bool(statistics.median(ms) < SOLVE_GOAL_MS))
        )  # fmt: skip
    worst = max(r["median_ms"] for r in rows)
    return dict(rows=rows, repeats=repeats, slowest_median_ms=worst, goal=f"< {SOLVE_GOAL_MS:g} ms",
                met=bool(worst < SOLVE_GOAL_MS))  # fmt: skip


def measure(im: Any, ctl: Any, batch: int = 8, new_tokens: int = 32, repeats: int = 3,
            solve_repeats: int = 50) -> dict[str, Any]:  # fmt: skip
    """Both measurements, with the machine (:func:`clm.bench.run.machine`) and the date."""
    from clm.bench.run import machine

    speed = schedule_speed(im, batch=batch, new_tokens=new_tokens, repeats=repeats)
    solve = solve_time(ctl, repeats=solve_repeats) if ctl is not None else None
    info = machine()
    return dict(machine=info, date=info["date"], schedule_speed=speed, solve_time=solve)


def record(path: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Add ``result`` under ``"control"`` to the bench JSON at ``path`` (atomic; created if absent)."""
    import json

    p = Path(path)
    data = json.loads(p.read_text()) if p.is_file() else {}
    data["control"] = dict(result)
    return atomic_write_json(p, data)
