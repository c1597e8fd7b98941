"""What dialing costs: clm's fused path and merge planner against the alternatives.

    python -m clm.bench --new-tokens 16 --repeats 3 --threads 1 --out clm/assets/bench/cpu-smollm2-135m.json
    python -m clm.bench --model smollm2-135m --memory-only --out clm/assets/bench/cpu-smollm2-135m.json

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

import argparse
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
    probe_main,
    prompt_ids,
    random_endpoints,
    settings,
    timed,
)
from clm.core.weights import Weights

__all__ = ["TARGETS", "METHODS", "LABELS", "run", "targets", "label", "machine", "build_random_model"]
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


def label(info: dict[str, Any]) -> str:
    """How a figure names the machine: the GPU's name, or the CPU's model, cores and threads."""
    if info.get("gpu"):
        return f"{info['gpu']} (GPU)"
    return f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch thread{'s' if info['torch_threads'] != 1 else ''} (CPU)"


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
    its batch-1 speed: that scenario is not run for it.
    """
    from clm.core.engine import InterpolatedModel
    from clm.core.models import load_base
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(model, methods, attributes, rank, dtype, Path(tmp))
        scenarios = [(n, d) for n in batches for d in ((False, True) if n > 1 else (False,))]
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
        rows = []
        for (m, n, distinct), ts in samples.items():
            med = statistics.median(ts)
            ref = tokens.get(("fused", n, distinct))
            same = (
                None
                if ref is None or m in ("base", "dexperts")
                else float((tokens[(m, n, distinct)] == ref).float().mean())
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
        sizes = b.bound()
        for r in rows:
            base = by.get(("base", r["batch"], r["settings"]))
            r["ratio_to_base"] = r["tokens_per_s"] / base["tokens_per_s"] if base else None
            r["ratio_to_bound"] = r["ratio_to_base"] / sizes["bound"] if base else None
        latency = {model: change_latency(b.im)} if "fused" in methods else {}
        for other in latency_models:
            if other != model:
                m2, t2 = load_base(other, dtype=dtype)
                e2 = random_endpoints(m2, t2, Path(tmp) / f"ends-{other}", attributes, rank)
                latency[other] = change_latency(InterpolatedModel(m2, t2, e2, check_base=False))
        plans = {}
        if "fused" in methods:
            from clm.core.merge import plan_for

            w1 = settings(b.attrs, 1, False)[0]
            for n in batches:
                p = plan_for(b.im, w1, n, prompt_tokens, new_tokens)
                # the shortest job (new tokens, doubling) from which the planner merges
                merge_from = next(
                    (t for t in (2**k for k in range(16)) if plan_for(b.im, w1, n, prompt_tokens, t).mode == "merged"),
                    None,
                )
                plans[str(n)] = dict(mode=p.mode, reason=p.reason, merges_from_new_tokens=merge_from)
        config = dict(
            model=model,
            params=sum(p.numel() for p in b.base.parameters()),
            layers=getattr(b.base.config, "num_hidden_layers", None),
            dtype=dtype,
            attributes=attributes,
            endpoints=2 * attributes,
            rank=rank,
            targets=list(TARGETS),
            new_tokens=new_tokens,
            prompt_tokens=prompt_tokens,
            repeats=repeats,
            slow_repeats=slow_repeats,
            slow_batches=slow_batches,
            methods=list(methods),
        )
        out = dict(
            machine=machine(),
            command=None,
            config=config,
            sizes=sizes,
            rows=rows,
            change_latency_s={k: statistics.median(v) for k, v in change.items()},
            set_weights_latency=latency,
            planner=plans,
        )
        b = None  # free the models before the memory probes
        gc.collect()
        if memory:
            out["peak_memory_mib"] = {
                m: peak_memory(m, model, Path(tmp) / "endpoints", max(batches), memory_tokens, dtype) for m in methods
            }
            out["peak_memory_kind"] = (
                "cuda max_memory_allocated" if torch.cuda.is_available() else "peak RSS (VmHWM) of the whole process"
            )
    out["wall_s"] = time.time() - t0
    out["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return out


LABELS = {
    "base": "base (no adapters)",
    "fused": "clm fused",
    "merged": "clm merged",
    "merged-held": "clm merged (merge held)",
    "peft-multi": "PEFT, all adapters active",
    "peft-cat": "PEFT cat, rebuilt",
    "paper": "paper's code (no KV cache)",
    "dexperts": "DExperts logit mixing",
}


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's four targets, each with the measured value and whether it is met.

    Shared settings count clm's planner choice (fused or merged) for that batch.
    """
    by = {(r["method"], r["batch"], r["settings"]): r for r in res["rows"]}
    big = max(r["batch"] for r in res["rows"])
    out = []

    def add(name, value, goal, ok):
        out.append(dict(target=name, measured=value, goal=goal, met=None if ok is None else bool(ok)))

    r = by.get(("fused", big, "distinct"))
    add(
        f"distinct settings, batch {big}: fused / bound",
        r and r["ratio_to_bound"],
        ">= 0.90",
        r and r["ratio_to_bound"] >= 0.9,
    )
    tokens = res.get("config", {}).get("new_tokens")
    for n in sorted({r["batch"] for r in res["rows"]}):
        plan = res.get("planner", {}).get(str(n), {})
        mode = plan.get("mode", "fused")
        r = by.get((mode, n, "shared"))
        add(
            f"one shared setting, batch {n}, {tokens}-token jobs: clm ({mode}) / base",
            r and r["ratio_to_base"],
            ">= 0.95",
            r and r["ratio_to_base"] >= 0.95,
        )
        h = by.get(("merged-held", n, "shared"))
        if h:
            add(
                f"one shared setting, batch {n}, merge held (planned from {plan.get('merges_from_new_tokens')} "
                "new tokens): clm merged / base",
                h["ratio_to_base"],
                ">= 0.95",
                h["ratio_to_base"] >= 0.95,
            )
    for model, lat in res.get("set_weights_latency", {}).items():
        t = lat["set_and_refresh_s"]
        add(f"change a setting ({model}, {lat['modules']} modules), ms", t * 1e3, "< 1 ms", t < 1e-3)
    for kind in ("shared", "distinct"):
        f, p = by.get(("fused", big, kind)), by.get(("peft-multi", big, kind))
        v = f["tokens_per_s"] / p["tokens_per_s"] if f and p else None
        add(f"batch {big}, {kind}: fused / PEFT multi-adapter", v, ">= 2", None if v is None else v >= 2)
    return out


def _memory_only(args) -> None:
    """Measure every method's peak memory and add it to the JSON at ``args.out`` (if any)."""
    from clm.core.models import load_base

    with tempfile.TemporaryDirectory() as tmp:
        base, tok = load_base(args.model, dtype=args.dtype)
        random_endpoints(base, tok, Path(tmp) / "endpoints", args.attributes, args.rank)
        base = None
        gc.collect()
        mem = {
            m: peak_memory(m, args.model, Path(tmp) / "endpoints", max(args.batches), args.memory_tokens, args.dtype)
            for m in args.methods
        }
    res = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    res["peak_memory_mib"] = mem
    res["peak_memory_kind"] = (
        "cuda max_memory_allocated" if torch.cuda.is_available() else "peak RSS (VmHWM) of the whole process"
    )
    res["memory_command"] = " ".join(["python -m clm.bench", *sys.argv[1:]])
    text = json.dumps(res, indent=1, default=str)
    if args.out:
        args.out.write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m clm.bench", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="base model: a name, checkpoint dir or hub id")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--attributes", type=int, default=5, help="endpoints = 2 x attributes")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--slow-repeats", type=int, default=1, help="repeats for paper and dexperts")
    p.add_argument("--slow-batches", type=int, nargs="+", help="batch sizes for paper and dexperts (default: all)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--latency-models", nargs="*", default=["pico"], help="other models to time set_weights on")
    p.add_argument("--memory", action="store_true", help="also measure each method's peak memory in a subprocess")
    p.add_argument("--memory-tokens", type=int, default=4, help="new tokens per memory probe (the models dominate)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (else only print it)")
    p.add_argument("--note", help="a remark saved with the run (e.g. what else the machine was doing)")
    p.add_argument("--memory-only", action="store_true", help="only the memory probes, added to --out if it exists")
    p.add_argument("--probe", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--endpoints", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        return probe_main(args)
    if args.memory_only:
        return _memory_only(args)
    res = run(
        model=args.model,
        methods=tuple(args.methods),
        attributes=args.attributes,
        rank=args.rank,
        batches=tuple(args.batches),
        new_tokens=args.new_tokens,
        prompt_tokens=args.prompt_tokens,
        repeats=args.repeats,
        slow_repeats=args.slow_repeats,
        slow_batches=tuple(args.slow_batches) if args.slow_batches else None,
        dtype=args.dtype,
        latency_models=tuple(args.latency_models),
        memory=args.memory,
        memory_tokens=args.memory_tokens,
    )
    res["command"] = " ".join(["python -m clm.bench", *(argv if argv is not None else sys.argv[1:])])
    if args.note:
        res["note"] = args.note
    text = json.dumps(res, indent=1, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
