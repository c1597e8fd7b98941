"""What each way of control costs at decoding time, on the real endpoints: the comparison's methods.

    python -m clm bench alternatives --threads 1 --out clm/assets/bench/cpu-smollm2-135m.json
    python -m clm bench alternatives --show

One batch (8 rows by default) of the same prompts, ``new_tokens`` sampled tokens per row with
the same seed and no stop at EOS (every row runs to the end), through each method's own
``generate`` (:mod:`clm.methods`), every row at a *different* strength where the method allows it
(per-row settings), else at one strength. Against the base model through the same decode loop
(prompting at level 0: the plain prompt, no adapters, no hook). One warm-up of every method, then
``repeats`` rounds, each round running the methods in a rotated order; medians.

Methods: ``interpolation`` (clm's fused path, the attribute's two endpoints live), ``prompting``
(the chosen instruction in the chat template: its extra prompt tokens are its cost), ``steering``
(one vector added after a layer, per-row c), ``logit-linear`` (base, low and high endpoint, three
KV caches), ``logit-product`` (low and high, two), ``mixture`` (one adapter, PEFT; one m per pass).

Memory is not timed but counted: the parameters each method holds beyond the base model's (the
adapters, a vector) and how many KV caches it decodes with, from the tensors' sizes.

:func:`record` merges the result into a bench JSON under ``"alternatives"``;
:func:`table` and :func:`text` read it.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clm.io import atomic_write_json

PROMPTS = (
    "The old lighthouse keeper climbed the stairs one last time",
    "Write about the day the rain stopped",
    "She opened the letter and read the first line",
    "In the city of glass, nobody ever",
)


def _strengths(method: Any, batch: int) -> list[float]:
    """Per-row strengths cycling over the dial (one strength for a method without per-row settings)."""
    grid = [s for s in method.dial.grid if s != method.dial.neutral] or list(method.dial.grid)
    if not getattr(method, "per_row", True):
        return [grid[len(grid) // 2]] * batch
    return [grid[i % len(grid)] for i in range(batch)]


def speeds(methods: Mapping[str, Any], base: Any, batch: int = 8, new_tokens: int = 32, repeats: int = 3,
           seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Tokens/s of each method and of ``base`` (a method at its neutral strength: the base model),
    and the ratio to the base's (see the module docstring)."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    kw = dict(max_new_tokens=new_tokens, do_sample=True, seed=seed, stop_at_eos=False)
    jobs: dict[str, Callable[[], Any]] = {"base": lambda: base.generate(prompts, 0.0, **kw)}
    for name, m in methods.items():
        s = _strengths(m, batch)
        jobs[name] = lambda m=m, s=s: m.generate(prompts, s, **kw)
    for fn in jobs.values():  # warm-up (lazy loads, first-call allocations)
        fn()
    times: dict[str, list[float]] = {k: [] for k in jobs}
    names = list(jobs)
    for r in range(repeats):
        for k in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            jobs[k]()
            times[k].append(time.perf_counter() - t0)
    tokens = batch * new_tokens
    out = {k: {"tokens_per_s": tokens / statistics.median(v), "times": v} for k, v in times.items()}
    for k, v in out.items():
        v["ratio"] = v["tokens_per_s"] / out["base"]["tokens_per_s"]
    return {"batch": batch, "new_tokens": new_tokens, "repeats": repeats, "methods": out}


def held(methods: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method: parameters held beyond the base (MiB, from tensor sizes), KV caches while decoding,
    per-row settings, preparation (seconds, as the method's ``cost`` reports it)."""
    out = {}
    for name, m in methods.items():
        c = m.cost
        out[name] = {"extra_mib": _extra_bytes(name, m) / 2**20, "kv_caches": c.get("kv_caches", 1),
                     "forward_passes_per_token": c.get("forward_passes_per_token"), "per_row": bool(c.get("per_row")),
                     "preparation": c.get("preparation"), "preparation_seconds": c.get("preparation_seconds")}  # fmt: skip
    return out


def _extra_bytes(name: str, m: Any) -> int:
    if name == "steering":
        v = m.vector.vector
        return v.numel() * v.element_size()
    if name in ("interpolation", "logit-linear", "logit-product"):
        ends, a = m.im.endpoints, m.attribute
        return sum((f.A.numel() + f.B.numel()) * f.A.element_size()
                   for p in ("low", "high") for f in ends.factors(a, p).values())  # fmt: skip
    if name == "mixture" and getattr(m, "loaded", False):
        return sum(p.numel() * p.element_size() for n, p in m.model.named_parameters() if "lora_" in n)
    return 0


def measure(methods: Mapping[str, Any], base: Any, batch: int = 8, new_tokens: int = 32, repeats: int = 3) -> dict:
    """Both parts, with the machine (:func:`clm.bench.run.machine`) and the date."""
    from clm.bench.run import machine

    info = machine()
    return dict(machine=info, date=info["date"], speed=speeds(methods, base, batch, new_tokens, repeats),
                held=held(methods))  # fmt: skip


def record(path: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Add ``result`` under ``"alternatives"`` to the bench JSON at ``path`` (atomic; created if absent)."""
    import json

    p = Path(path)
    data = json.loads(p.read_text()) if p.is_file() else {}
    data["alternatives"] = dict(result)
    return atomic_write_json(p, data)


def table(rec: Mapping[str, Any] | None) -> Any:
    """One row per method: tokens/s, × the base's, forward passes per token, KV caches, extra MiB,
    per-row settings, preparation; None when nothing was recorded."""
    import pandas as pd

    if not rec:
        return None
    sp, hd = rec["speed"]["methods"], rec.get("held", {})
    rows = []
    for name, v in sp.items():
        h = hd.get(name, {})
        prep = h.get("preparation_seconds")
        rows.append({"method": name, "tokens/s": v["tokens_per_s"], "× base": v["ratio"],
                     "passes / token": h.get("forward_passes_per_token", 1), "KV caches": h.get("kv_caches", 1),
                     "extra MiB": h.get("extra_mib", 0.0), "per-row settings": "yes" if h.get("per_row", True) else "no",
                     "preparation (s)": float("nan") if prep is None else prep})  # fmt: skip
    return pd.DataFrame.from_records(rows)


def text(rec: Mapping[str, Any] | None) -> str:
    """One line: each method's tokens/s as a multiple of the base's, where and when measured."""
    if not rec:
        return "The alternatives' decoding speed: not measured (`python -m clm bench alternatives`)"
    sp = rec["speed"]
    parts = ", ".join(f"{k} {v['ratio']:.2f}×" for k, v in sp["methods"].items() if k != "base")
    from clm.bench.report import label

    where = label(rec["machine"]) if rec.get("machine") else "an unrecorded machine"
    return (f"At batch {sp['batch']} ({sp['new_tokens']} sampled tokens a row), against the base model's "
            f"{sp['methods']['base']['tokens_per_s']:.1f} tokens/s: {parts}; measured on {where}, "
            f"{rec.get('date', 'undated')}")  # fmt: skip
