"""The methods that clm.bench times: the models each holds, how each changes a setting, and one
generation job per call (greedy decoding with or without a KV cache). See :mod:`clm.bench`."""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from clm.core.weights import Weights

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


TEXT = "Once upon a time in a small village by the sea, there lived an old fisherman who told stories every night to the children of the town"


def random_endpoints(model, tokenizer, out: Path, attributes: int = 5, rank: int = 32, seed: int = 0):
    """2·attributes random non-zero PEFT adapters on ``model``, saved as clm endpoints at ``out``."""
    from peft import LoraConfig, get_peft_model

    from clm.core.endpoints import Endpoints

    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=list(TARGETS), init_lora_weights=False, lora_dropout=0.0
    )
    peft_model = get_peft_model(model, cfg)
    ends = Endpoints.create(out, base=model)
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
    return Endpoints.load(out)


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
    """``forward(ids, past) -> (logits, past)`` with a KV cache. Recent transformers name the cache
    ``cache`` (``past_key_values`` is deprecated there); older ones ``past_key_values``."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel passes it on
    if "cache" in inspect.signature(inner.forward).parameters:

        def forward(ids, past):
            o = model(input_ids=ids, cache=past, use_cache=True)
            return o.logits, o.cache

    else:

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

        from clm.core.endpoints import Endpoints
        from clm.core.engine import InterpolatedModel
        from clm.core.models import load_base

        self.methods = methods
        base, self.tok = load_base(model_name, dtype=dtype)
        # one method alone (a memory probe) runs on the base model itself: one copy of the weights
        load = (lambda: base) if len(methods) == 1 else (lambda: load_base(model_name, dtype=dtype)[0])
        if endpoints is not None:  # reuse (a memory probe)
            self.ends = Endpoints.load(endpoints)
        else:
            self.ends = random_endpoints(base, self.tok, workdir / "endpoints", attributes, rank)
        self.attrs = self.ends.attributes
        self.slots = [(a, p) for a in self.attrs for p in ("low", "high")]
        self.base = base
        self.device = next(base.parameters()).device
        if {"fused", "merged"} & set(methods):
            self.im = InterpolatedModel(load(), self.tok, self.ends, check_base=False)
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
                _sync()
                t = time.perf_counter()
                out = greedy(model_forward(self.im.model), ids, new_tokens)
                _sync()
                self.held_s = time.perf_counter() - t  # generation alone, the merge held
            return out
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


def peak_memory(method: str, model: str, endpoints: Path, batch: int, new_tokens: int, dtype: str) -> float:
    """Peak memory (MiB) of one method alone, in a fresh subprocess running :func:`probe`: peak RSS
    on the CPU (the whole process: Python, torch, model, caches), GPU memory allocated on CUDA."""
    import json
    import subprocess

    job = dict(method=method, model=model, endpoints=str(endpoints), batch=batch, new_tokens=new_tokens, dtype=dtype)
    code = "import json, sys; from clm.bench.methods import probe; probe(**json.loads(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the memory probe of {method!r} failed with exit code {out.returncode}: {last}")
    return float(out.stdout.strip().splitlines()[-1])


def probe(method: str, model: str, endpoints: str, batch: int, new_tokens: int, dtype: str) -> None:
    """The subprocess of :func:`peak_memory`: one job of ``method`` at ``batch`` (distinct settings
    where the method can), then print the peak memory in MiB: GPU memory allocated on CUDA, else
    this process's peak RSS."""
    b = Bench(model, (method,), 0, 0, dtype, Path("."), endpoints=Path(endpoints))
    b.job(
        method,
        prompt_ids(b.tok, batch, 16).to(b.device),
        settings(b.attrs, batch, method not in ("merged", "paper")),
        new_tokens,
    )
    if torch.cuda.is_available():
        print(torch.cuda.max_memory_allocated() / 2**20)
    else:
        print(peak_rss_mib())


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB. On Linux, VmHWM of /proc/self/status: the peak
    of this process's own address space. (``ru_maxrss`` survives fork and exec, so a probe started
    from a large parent would report the parent's peak.)"""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_random_model(out: Path, **config: Any) -> Path:
    """A Llama built from a config with random weights (for timing only), saved with the pico
    tokenizer. Defaults give about 1.1B parameters (hidden 2048, 22 layers, GQA 32/4 heads)."""
    from clm.core.models import build_pico

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
