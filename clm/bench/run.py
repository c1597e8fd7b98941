"""What dialing costs: clm's fused path and merge planner against the alternatives.

    python -m clm bench --new-tokens 16 --repeats 3 --threads 1 --out clm/assets/bench/cpu-smollm2-135m.json
    python -m clm bench --model smollm2-135m --memory-only --out clm/assets/bench/cpu-smollm2-135m.json

(On a CPU shared with other jobs, ``--threads 1`` avoids oversubscription, which made two
threads up to 10x slower and far noisier on the 2-core machine of the saved run.)

Setup: a base model and 2·A random non-zero endpoint adapters (A attributes, rank r on
q/k/v/o, built with PEFT ``init_lora_weights=False``; values don't change timings). Every
setting activates all endpoints (α strictly inside (0, 1), λ on the simplex): the worst case.
Each job greedily generates ``new_tokens`` tokens for a batch of equal-length prompts; all
methods run interleaved in one process, repeats take the median.

Methods:
    base        the base model without adapters: the limit.
    fused       clm's fused path (per-row settings in one batch).
    merged      clm's merge planner forced on (one shared setting; merge + restore timed per job).
                Its row ``merged-held`` times the same jobs' generation alone, inside the merge:
                what jobs that reuse one merge (a sweep's batches at one setting) run at.
    peft-multi  PEFT with all endpoints active, each adapter's ``scaling`` set to c_k·s_k.
    peft-cat    PEFT ``add_weighted_adapter(combination_type="cat")`` rebuilt per setting.
    paper       the released code's approach: PEFT adapters active with the coefficients folded
                in, and a full forward pass per new token (no KV cache). (That loop also calls
                gc.collect() each step; not counted here, so this is an upper bound on its speed.)
    dexperts    logit mixing (Liu et al., 2021): one forward pass per model per token, base plus
                one per endpoint, each with its own KV cache. The endpoint models are stand-ins
                sharing the base's weights (a merged endpoint costs what the base costs).
PEFT and paper serve one setting per model: distinct settings per row run row by row.

The bound: decoding at small batch is memory-bandwidth bound, and the fused path reads
R·(d_in + d_out) adapter weights per module per step besides the base's, so its speed is at
most bytes_base / (bytes_base + bytes_adapters) of the base's. The FLOPs per token scale the
same way (2 per weight read), so the bound also holds for a compute-bound machine.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from clm.bench.methods import (
    TARGETS,
    Bench,
    build_random_model,
    peak_memory,
    prompt_ids,
    random_endpoints,
    settings,
    timed,
)
from clm.bench.report import label
from clm.core.weights import Weights

__all__ = ["TARGETS", "METHODS", "run", "run_and_save", "memory_only", "machine", "build_random_model"]
METHODS = ("base", "fused", "merged", "peft-multi", "peft-cat", "paper", "dexperts")


def machine() -> dict[str, Any]:
    """CPU model, cores, GPU (if any), versions and the date: what a figure must be labelled with."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformers

    info = dict(
        cpu=cpu,
        cores=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        python=platform.python_version(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # other work on the machine (1, 5 and 15 minute averages): a busy CPU slows every method
        load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    )
    info["label"] = label(info)
    return info


def change_latency(im, n: int = 200) -> dict[str, float]:
    """Median seconds of ``set_weights`` alone, and with the lazy per-module refresh it triggers."""
    from clm.core.fused import InterpolatedLinear

    attrs = im.attributes
    ws = [settings(attrs, 1, False)[0], settings(attrs, 3, True)[0]]
    dtype = next(im.model.parameters()).dtype
    mods = [m for m in im.model.modules() if isinstance(m, InterpolatedLinear)]
    alone, full = [], []

    def refresh(w):
        im.set_weights(w)
        for m in mods:
            m.live_factors(dtype)

    for i in range(n):
        alone.append(timed(im.set_weights, ws[i % 2])[0])
        full.append(timed(refresh, ws[(i + 1) % 2])[0])
    return dict(set_weights_s=statistics.median(alone), set_and_refresh_s=statistics.median(full), modules=len(mods))


def merge_restore(im, w: Weights) -> None:
    """Merge a setting into the base weights and restore them: the merged path's setting change."""
    with im.merged(w):
        pass


SLOW = ("paper", "dexperts")  # 10x or more slower: fewer repeats
#: What a peak memory measures here.
MEMORY_KIND = "cuda max_memory_allocated" if torch.cuda.is_available() else "peak RSS (VmHWM) of the whole process"


def run(
    model: str = "smollm2-135m",
    methods: tuple[str, ...] = METHODS,
    attributes: int = 5,
    rank: int = 32,
    batches: tuple[int, ...] = (1, 8),
    new_tokens: int = 32,
    prompt_tokens: int = 16,
    repeats: int = 3,
    slow_repeats: int = 1,
    slow_batches: tuple[int, ...] | None = None,
    dtype: str = "float32",
    latency_models: tuple[str, ...] = ("pico",),
    memory: bool = False,
    memory_tokens: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; returns a JSON-able dict (rows: one per method, batch and scenario).

    Every method first runs a short warmup job (2 tokens) in each scenario; then ``repeats``
    rounds run every method once per scenario, interleaved, so that a slow spell of a shared
    machine hits all methods alike (``slow_repeats`` rounds for paper and dexperts). The paper's
    approach serves one setting per model, so with distinct settings it would run row by row at
    its batch-1 speed: that scenario is not run for it. The tables, figures and summary of a
    result are :mod:`clm.bench.report`'s.
    """
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(model, methods, attributes, rank, dtype, Path(tmp))
        scenarios = [(n, d) for n in batches for d in ((False, True) if n > 1 else (False,))]
        samples, tokens, change = _time_jobs(
            b, methods, scenarios, repeats, slow_repeats, slow_batches, new_tokens, prompt_tokens, progress
        )
        sizes = b.bound()
        rows = _rows(samples, tokens, new_tokens, sizes["bound"])
        latency = {model: change_latency(b.im)} if "fused" in methods else {}
        latency.update(_other_latencies(model, latency_models, dtype, Path(tmp), attributes, rank))
        plans = _plans(b, batches, prompt_tokens, new_tokens) if "fused" in methods else {}
        config = dict(
            model=model, params=sum(p.numel() for p in b.base.parameters()),
            layers=getattr(b.base.config, "num_hidden_layers", None), dtype=dtype,
            attributes=attributes, endpoints=2 * attributes, rank=rank, targets=list(TARGETS),
            new_tokens=new_tokens, prompt_tokens=prompt_tokens, repeats=repeats, slow_repeats=slow_repeats,
            slow_batches=slow_batches, methods=list(methods),
        )  # fmt: skip
        change_s = {k: statistics.median(v) for k, v in change.items()}
        out = dict(
            machine=machine(), command=None, config=config, sizes=sizes, rows=rows,
            change_latency_s=change_s, set_weights_latency=latency, planner=plans,
        )  # fmt: skip
        b = None  # free the models before the memory probes
        gc.collect()
        if memory:
            out["peak_memory_mib"] = {
                m: peak_memory(m, model, Path(tmp) / "endpoints", max(batches), memory_tokens, dtype) for m in methods
            }
            out["peak_memory_kind"] = MEMORY_KIND
    out["wall_s"] = time.time() - t0
    out["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return out


def _time_jobs(b: Bench, methods, scenarios, repeats, slow_repeats, slow_batches, new_tokens, prompt_tokens, progress):
    """The timed rounds of :func:`run` (round -1 a 2-token warmup), every method interleaved per scenario.

    Returns:
        (seconds per (method, batch, distinct), the last job's tokens per key, setting-change
        seconds per method): one sample per round.
    """
    samples: dict[tuple, list[float]] = {}
    tokens: dict[tuple, torch.Tensor] = {}
    change: dict[str, list[float]] = {}
    for rep in range(-1, repeats):  # -1: warmup
        for n, distinct in scenarios:
            ids = prompt_ids(b.tok, n, prompt_tokens).to(b.device)
            ws = settings(b.attrs, n, distinct)
            for m in methods:
                if (m == "merged" or m == "paper") and distinct:
                    continue  # one setting per model
                if m in SLOW and (rep >= slow_repeats or (slow_batches is not None and n not in slow_batches)):
                    continue
                steps = 2 if rep < 0 else new_tokens
                dt, out = timed(b.job, m, ids, ws, steps)
                if rep >= 0:
                    samples.setdefault((m, n, distinct), []).append(dt)
                    tokens[(m, n, distinct)] = out
                    if m == "merged":  # the same job's generation alone: a merge reused across jobs
                        samples.setdefault(("merged-held", n, distinct), []).append(b.held_s)
                        tokens[("merged-held", n, distinct)] = out
                    if progress:
                        print(
                            f"[{rep}] {m:10s} batch {n} {'distinct' if distinct else 'shared'}: {n * new_tokens / dt:8.1f} tok/s",
                            file=sys.stderr,
                            flush=True,
                        )
        w = settings(b.attrs, 1, False)[0] if rep % 2 == 0 else settings(b.attrs, 2, True)[1]
        for m, fn in (("peft-multi", b.peft_scale), ("peft-cat", b.peft_cat)):
            if m in methods:
                change.setdefault(m, []).append(timed(fn, w)[0])
        if "merged" in methods:
            change.setdefault("merged", []).append(timed(merge_restore, b.im, w)[0])
    return samples, tokens, change


def _rows(samples: dict[tuple, list[float]], tokens: dict[tuple, torch.Tensor], new_tokens: int, bound: float):
    """One row per (method, batch, settings): median seconds, tokens/s, ratios to the base and to
    the bound, and the share of greedy tokens equal to the fused path's."""
    rows = []
    for (m, n, distinct), ts in samples.items():
        med = statistics.median(ts)
        ref = tokens.get(("fused", n, distinct))
        same = (
            None if ref is None or m in ("base", "dexperts") else float((tokens[(m, n, distinct)] == ref).float().mean())
        )
        rows.append(
            dict(
                method=m,
                batch=n,
                settings="distinct" if distinct else "shared",
                seconds=med,
                times=ts,
                tokens_per_s=n * new_tokens / med,
                same_tokens_as_fused=same,
            )
        )
    by = {(r["method"], r["batch"], r["settings"]): r for r in rows}
    for r in rows:
        base = by.get(("base", r["batch"], r["settings"]))
        r["ratio_to_base"] = r["tokens_per_s"] / base["tokens_per_s"] if base else None
        r["ratio_to_bound"] = r["ratio_to_base"] / bound if base else None
    return rows


def _other_latencies(model: str, others, dtype: str, tmp: Path, attributes: int, rank: int) -> dict[str, dict]:
    """:func:`change_latency` on each other model (random endpoints like the benchmark's)."""
    from clm.core.engine import InterpolatedModel
    from clm.core.models import load_base

    latency = {}
    for other in others:
        if other != model:
            m2, t2 = load_base(other, dtype=dtype)
            e2 = random_endpoints(m2, t2, tmp / f"ends-{other}", attributes, rank)
            latency[other] = change_latency(InterpolatedModel(m2, t2, e2, check_base=False))
    return latency


def _plans(b: Bench, batches, prompt_tokens: int, new_tokens: int) -> dict[str, dict]:
    """Per batch size: the merge planner's choice for one shared setting, and the shortest job
    (new tokens, doubling) from which it merges."""
    from clm.core.merge import plan_for

    plans = {}
    w1 = settings(b.attrs, 1, False)[0]
    for n in batches:
        p = plan_for(b.im, w1, n, prompt_tokens, new_tokens)
        merge_from = next(
            (t for t in (2**k for k in range(16)) if plan_for(b.im, w1, n, prompt_tokens, t).mode == "merged"),
            None,
        )
        plans[str(n)] = dict(mode=p.mode, reason=p.reason, merges_from_new_tokens=merge_from)
    return plans


def run_and_save(out_dir: str | os.PathLike, name: str | None = None, model_name: str | None = None, **kw: Any):
    """:func:`run` (``**kw``, no progress) with the call recorded as its ``command``, saved as JSON.

    Args:
        out_dir: the directory of the JSON (created if absent).
        name: its file name (default ``<cpu|gpu>-<model>.json``).
        model_name: what the result calls the model (default the ``model`` passed).

    Returns:
        The result.
    """
    from clm.io import atomic_write_text
    from clm.paths import safe_name

    res = run(**kw, progress=False)
    res["command"] = f"clm.bench.run(**{kw!r})"
    if model_name is not None:
        res["config"]["model"] = model_name
    name = name or f"{'gpu' if res['machine']['gpu'] else 'cpu'}-{safe_name(res['config']['model'])}.json"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out_dir) / name, json.dumps(res, indent=1))
    return res


def memory_only(
    model: str = "smollm2-135m",
    methods: tuple[str, ...] = METHODS,
    attributes: int = 5,
    rank: int = 32,
    batch: int = 8,
    new_tokens: int = 4,
    dtype: str = "float32",
    out: str | os.PathLike | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Measure every method's peak memory, each in a fresh subprocess (:func:`peak_memory`), and
    add it to the saved benchmark at ``out`` (if it exists; written when ``out`` is given).

    Returns the benchmark's JSON with ``peak_memory_mib`` (method -> MiB), ``peak_memory_kind``
    and ``memory_command`` (``command``) set.
    """
    from clm.core.models import load_base

    with tempfile.TemporaryDirectory() as tmp:
        base, tok = load_base(model, dtype=dtype)
        random_endpoints(base, tok, Path(tmp) / "endpoints", attributes, rank)
        base = None
        gc.collect()
        mem = {m: peak_memory(m, model, Path(tmp) / "endpoints", batch, new_tokens, dtype) for m in methods}
    path = Path(out) if out is not None else None
    res = json.loads(path.read_text()) if path is not None and path.exists() else {}
    res["peak_memory_mib"] = mem
    res["peak_memory_kind"] = (
        "cuda max_memory_allocated" if torch.cuda.is_available() else "peak RSS (VmHWM) of the whole process"
    )
    res["memory_command"] = command
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        from clm.io import atomic_write_text

        atomic_write_text(path, json.dumps(res, indent=1, default=str))
    return res
