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
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import Weights

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
METHODS = ("base", "fused", "merged", "peft-multi", "peft-cat", "paper", "dexperts")
TEXT = "Once upon a time in a small village by the sea, there lived an old fisherman who told stories every night to the children of the town"


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
    )
    info["label"] = label(info)
    return info


def label(info: dict[str, Any]) -> str:
    """How a figure names the machine: the GPU's name, or the CPU's model, cores and threads."""
    if info.get("gpu"):
        return f"{info['gpu']} (GPU)"
    return f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch thread{'s' if info['torch_threads'] != 1 else ''} (CPU)"


def random_endpoints(model, tokenizer, out: Path, attributes: int = 5, rank: int = 32, seed: int = 0):
    """2·attributes random non-zero PEFT adapters on ``model``, saved as clm endpoints at ``out``."""
    from peft import LoraConfig, get_peft_model

    import clm

    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=list(TARGETS), init_lora_weights=False, lora_dropout=0.0
    )
    peft_model = get_peft_model(model, cfg)
    ends = clm.Endpoints.create(out, base=model)
    tmp = Path(tempfile.mkdtemp(dir=out.parent))
    for a in range(attributes):
        dirs = []
        for pole in ("low", "high"):
            with torch.no_grad():
                for name, p in peft_model.named_parameters():
                    if "lora_" in name:
                        p.normal_(0, 0.02 if "lora_A" in name else 0.05)  # (r, d_in) / (d_out, r)
            d = tmp / f"a{a}-{pole}"
            peft_model.save_pretrained(d)
            dirs.append(d)
        ends.add(f"attr{a}", low=dirs[0], high=dirs[1])
    peft_model.unload()  # the model is the plain base again
    return clm.Endpoints.load(out)


def settings(attributes: list[str], rows: int, distinct: bool) -> list[Weights]:
    """One setting per row; every endpoint live (0 < α < 1, λ = 1/A)."""
    lam = {a: 1.0 / len(attributes) for a in attributes}
    out = []
    for i in range(rows):
        t = (i + 1) / (rows + 1) if distinct else 0.5
        out.append(
            Weights({a: round(0.15 + 0.7 * ((t + 0.13 * j) % 1.0), 4) for j, a in enumerate(attributes)}, lam=lam)
        )
    return out


def prompt_ids(tokenizer, rows: int, length: int) -> torch.Tensor:
    """(rows, length) token ids: equal lengths, so no padding; each row a different window."""
    ids = tokenizer(TEXT * 4, return_tensors="pt")["input_ids"][0]
    return torch.stack([ids[i : i + length] for i in range(rows)])  # (rows, length)


@torch.no_grad()
def greedy(forward: Callable, ids: torch.Tensor, new_tokens: int, cache: bool = True) -> torch.Tensor:
    """Greedy decoding with a KV cache (or, cache=False, a full forward pass per new token).

    ``forward(input_ids, past) -> (logits (N, T, V), past)``. Returns (N, new_tokens) ids.
    """
    out, past, seq = [], None, ids
    step_in = ids
    for _ in range(new_tokens):
        logits, past = forward(step_in if cache else seq, past if cache else None)
        nxt = logits[:, -1].argmax(-1, keepdim=True)  # (N, 1)
        out.append(nxt)
        seq = torch.cat([seq, nxt], 1)
        step_in = nxt
    return torch.cat(out, 1)  # (N, new_tokens)


def model_forward(model) -> Callable:
    def forward(ids, past):
        o = model(input_ids=ids, past_key_values=past, use_cache=True)
        return o.logits, o.past_key_values

    return forward


def nocache_forward(model) -> Callable:
    return lambda ids, past: (model(input_ids=ids, use_cache=False).logits, None)


class Bench:
    """Holds the models for every method and runs one job per call."""

    def __init__(
        self,
        model_name: str,
        methods: tuple[str, ...],
        attributes: int,
        rank: int,
        dtype: str,
        workdir: Path,
        endpoints: Path | None = None,
    ):
        from peft import PeftModel

        import clm

        self.methods = methods
        base, self.tok = clm.load_base(model_name, dtype=dtype)
        # one method alone (a memory probe) runs on the base model itself: one copy of the weights
        load = (lambda: base) if len(methods) == 1 else (lambda: clm.load_base(model_name, dtype=dtype)[0])
        if endpoints is not None:  # reuse (a memory probe)
            self.ends = clm.Endpoints.load(endpoints)
        else:
            self.ends = random_endpoints(base, self.tok, workdir / "endpoints", attributes, rank)
        self.attrs = self.ends.attributes
        self.slots = [(a, p) for a in self.attrs for p in ("low", "high")]
        self.base = base
        self.device = next(base.parameters()).device
        if {"fused", "merged"} & set(methods):
            self.im = clm.InterpolatedModel(load(), self.tok, self.ends, check_base=False)
        if {"peft-multi", "peft-cat", "paper"} & set(methods):
            names = [f"{a}_{p}" for a, p in self.slots]
            pm = PeftModel.from_pretrained(load(), self.ends.adapter_dir(*self.slots[0]), adapter_name=names[0])
            for n, (a, p) in zip(names[1:], self.slots[1:]):
                pm.load_adapter(self.ends.adapter_dir(a, p), adapter_name=n)
            self.pm, self.names = pm.eval(), names
            self.lora_layers = [mod for mod in pm.modules() if hasattr(mod, "scaling") and hasattr(mod, "lora_A")]
            self.s0 = [{n: mod.scaling[n] for n in names} for mod in self.lora_layers]

    # ---------------------------------------------------------------- setting changes
    def coefficients(self, w: Weights) -> list[float]:
        c = w.coefficients(self.attrs)
        return [c[a][0 if p == "low" else 1] for a, p in self.slots]

    def peft_scale(self, w: Weights) -> None:
        """PEFT multi-adapter: all endpoints active, scaling[k] = c_k · s_k in every LoRA layer."""
        cs = self.coefficients(w)
        self.pm.base_model.set_adapter(self.names)
        for mod, s0 in zip(self.lora_layers, self.s0):
            for n, c in zip(self.names, cs):
                mod.scaling[n] = c * s0[n]

    def peft_cat(self, w: Weights) -> None:
        """PEFT cat: rebuild one adapter of rank Σ r_k holding the weighted endpoints."""
        if "mix" in self.pm.peft_config:
            with warnings.catch_warnings():  # "Adapter mix was active which is now deleted"
                warnings.simplefilter("ignore")
                self.pm.delete_adapter("mix")
        for mod, s0 in zip(self.lora_layers, self.s0):
            for n in self.names:
                mod.scaling[n] = s0[n]
        self.pm.add_weighted_adapter(self.names, self.coefficients(w), "mix", combination_type="cat")
        self.pm.set_adapter("mix")

    # ---------------------------------------------------------------- one job
    def job(self, method: str, ids: torch.Tensor, ws: list[Weights], new_tokens: int) -> torch.Tensor:
        """Generate greedily for every row at its setting, the way ``method`` can. Returns ids."""
        distinct = len(set(ws)) > 1
        if method == "base":
            return greedy(model_forward(self.base), ids, new_tokens)
        if method == "fused":
            self.im.set_weights(ws)
            return greedy(model_forward(self.im.model), ids, new_tokens)
        if method == "merged":
            with self.im.merged(ws):
                return greedy(model_forward(self.im.model), ids, new_tokens)
        if method == "dexperts":
            return self.dexperts(ids, ws, new_tokens)
        change = {"peft-multi": self.peft_scale, "peft-cat": self.peft_cat, "paper": self.peft_scale}[method]
        fwd = (nocache_forward if method == "paper" else model_forward)(self.pm)
        groups = [[i] for i in range(len(ws))] if distinct else [list(range(len(ws)))]
        outs = []
        for rows in groups:  # one setting per model: distinct rows go one at a time
            change(ws[rows[0]])
            outs.append(greedy(fwd, ids[rows], new_tokens, cache=method != "paper"))
        return torch.cat(outs, 0)

    @torch.no_grad()
    def dexperts(self, ids: torch.Tensor, ws: list[Weights], new_tokens: int) -> torch.Tensor:
        """Per token: the base and every endpoint model run (own KV cache); logits mix per row as
        base + Σ_k c_k (endpoint_k − base)."""
        c = torch.tensor([self.coefficients(w) for w in ws], device=self.device)  # (N, K)
        mix = torch.cat([1 - c.sum(1, keepdim=True), c], 1)[:, :, None]  # (N, 1+K, 1)
        fwd = model_forward(self.base)
        pasts: list[Any] = [None] * mix.shape[1]
        step_in, out = ids, []
        for _ in range(new_tokens):
            logits = []
            for j in range(mix.shape[1]):
                lg, pasts[j] = fwd(step_in, pasts[j])
                logits.append(lg[:, -1])  # (N, V)
            nxt = (mix * torch.stack(logits, 1)).sum(1).argmax(-1, keepdim=True)  # (N, 1)
            out.append(nxt)
            step_in = nxt
        return torch.cat(out, 1)

    # ---------------------------------------------------------------- sizes
    def bound(self) -> dict[str, float]:
        """bytes_base / (bytes_base + bytes_adapters) for the fused path with every endpoint live."""
        seen, base_bytes = set(), 0
        for p in self.base.parameters():
            if id(p) not in seen:  # tied embeddings count once
                seen.add(id(p))
                base_bytes += p.numel() * p.element_size()
        elem = next(self.base.parameters()).element_size()
        adapter_bytes = (
            sum(f.A.numel() + f.B.numel() for a, p in self.slots for f in self.ends.factors(a, p).values()) * elem
        )
        return dict(
            bytes_base=base_bytes, bytes_adapters=adapter_bytes, bound=base_bytes / (base_bytes + adapter_bytes)
        )


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable, *args: Any) -> tuple[float, Any]:
    """(seconds, result) of ``fn(*args)``, synchronizing the GPU around it."""
    _sync()
    t = time.perf_counter()
    out = fn(*args)
    _sync()
    return time.perf_counter() - t, out


def change_latency(im, n: int = 200) -> dict[str, float]:
    """Median seconds of ``set_weights`` alone, and with the lazy per-module refresh it triggers."""
    from .engine import InterpolatedLinear

    attrs = im.attributes
    ws = [settings(attrs, 1, False)[0], settings(attrs, 3, True)[0]]
    dtype = next(im.model.parameters()).dtype
    mods = [m for m in im.model.modules() if isinstance(m, InterpolatedLinear)]
    alone, full = [], []

    def refresh(w):
        im.set_weights(w)
        for m in mods:
            m._live(dtype)

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
    import clm

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
                m2, t2 = clm.load_base(other, dtype=dtype)
                e2 = random_endpoints(m2, t2, Path(tmp) / f"ends-{other}", attributes, rank)
                latency[other] = change_latency(clm.InterpolatedModel(m2, t2, e2, check_base=False))
        plans = {}
        if "fused" in methods:
            from .merge import plan_for

            for n in batches:
                p = plan_for(b.im, settings(b.attrs, 1, False)[0], n, prompt_tokens, new_tokens)
                plans[str(n)] = dict(mode=p.mode, reason=p.reason)
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
                "cuda max_memory_allocated" if torch.cuda.is_available() else "max RSS of the whole process"
            )
    out["wall_s"] = time.time() - t0
    return out


def peak_memory(method: str, model: str, endpoints: Path, batch: int, new_tokens: int, dtype: str) -> float:
    """Peak memory (MiB) of one method alone, in a fresh subprocess: max RSS on the CPU (the
    whole process: Python, torch, model, caches), GPU memory allocated on CUDA."""
    import subprocess

    args = [
        sys.executable,
        "-m",
        "clm.bench",
        "--probe",
        method,
        "--model",
        model,
        "--endpoints",
        str(endpoints),
        "--batches",
        str(batch),
        "--new-tokens",
        str(new_tokens),
        "--dtype",
        dtype,
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _probe(args) -> None:
    """One job at the largest batch (distinct settings where the method can), then print the
    peak memory in MiB: GPU memory allocated on CUDA, else the process's max RSS."""
    import resource

    b = Bench(args.model, (args.probe,), 0, 0, args.dtype, Path("."), endpoints=args.endpoints)
    n = max(args.batches)
    b.job(
        args.probe,
        prompt_ids(b.tok, n, 16).to(b.device),
        settings(b.attrs, n, args.probe not in ("merged", "paper")),
        args.new_tokens,
    )
    if torch.cuda.is_available():
        print(torch.cuda.max_memory_allocated() / 2**20)
    else:
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


LABELS = {
    "base": "base (no adapters)",
    "fused": "clm fused",
    "merged": "clm merged",
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
    for n in sorted({r["batch"] for r in res["rows"]}):
        mode = res.get("planner", {}).get(str(n), {}).get("mode", "fused")
        r = by.get((mode, n, "shared"))
        add(
            f"one shared setting, batch {n}: clm ({mode}) / base",
            r and r["ratio_to_base"],
            ">= 0.95",
            r and r["ratio_to_base"] >= 0.95,
        )
    for model, lat in res.get("set_weights_latency", {}).items():
        t = lat["set_and_refresh_s"]
        add(f"change a setting ({model}, {lat['modules']} modules), ms", t * 1e3, "< 1 ms", t < 1e-3)
    for kind in ("shared", "distinct"):
        f, p = by.get(("fused", big, kind)), by.get(("peft-multi", big, kind))
        v = f["tokens_per_s"] / p["tokens_per_s"] if f and p else None
        add(f"batch {big}, {kind}: fused / PEFT multi-adapter", v, ">= 2", None if v is None else v >= 2)
    return out


def build_random_model(out: Path, **config: Any) -> Path:
    """A Llama built from a config with random weights (for timing only), saved with the pico
    tokenizer. Defaults give about 1.1B parameters (hidden 2048, 22 layers, GQA 32/4 heads)."""
    from .models import build_pico

    cfg = (
        dict(
            hidden_size=2048,
            intermediate_size=5632,
            num_hidden_layers=22,
            num_attention_heads=32,
            num_key_value_heads=4,
            vocab_size=32000,
            max_position_embeddings=2048,
        )
        | config
    )
    if not (Path(out) / "config.json").exists():
        build_pico(Path(out), **cfg)
    return Path(out)


def _memory_only(args) -> None:
    """Measure every method's peak memory and add it to the JSON at ``args.out`` (if any)."""
    import clm

    with tempfile.TemporaryDirectory() as tmp:
        base, tok = clm.load_base(args.model, dtype=args.dtype)
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
        "cuda max_memory_allocated" if torch.cuda.is_available() else "max RSS of the whole process"
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
    p.add_argument("--memory-only", action="store_true", help="only the memory probes, added to --out if it exists")
    p.add_argument("--probe", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--endpoints", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        return _probe(args)
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
    text = json.dumps(res, indent=1, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
