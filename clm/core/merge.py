"""The merge planner: when every row shares one setting, fold it into the base weights.

The fused path (:class:`clm.core.engine.InterpolatedLinear`) adds ``B (g ⊙ A x)`` to every adapted
module on every forward step. When all rows share one setting, the same delta can instead be
merged once, ``W ← W0 + Σ_k c_k s_k B_k A_k``, after which the model runs at the base model's
speed. Merging has a one-off price, so it pays only for long enough jobs. The rule, per module
``d_in → d_out`` with ``R`` live rank components (endpoints at coefficient 0 are skipped):

* fused, per forward step over ``n`` tokens: ``2 n R (d_in + d_out)`` FLOPs, and the adapter
  weights ``R (d_in + d_out)`` are read once per step;
* merged, once: ``2 d_in d_out R`` FLOPs for ``B·diag(g)·A``, and ``4 d_in d_out`` weights
  moved (save a copy of W0, read and write W, copy W0 back on exit).

A step costs ``max(FLOPs / β, weights moved)``: β ("balance", FLOPs per weight read in the same
time) says whether the machine is compute- or bandwidth-bound. :func:`plan` merges when one
setting is shared, the base is not 4-bit, and the merge's cost is below the fused path's extra
cost summed over the job (a prefill step plus one step per new token).

A 4-bit base (bitsandbytes ``Linear4bit``) cannot be merged into: its weights are quantized
blocks, and dequantize → add → requantize would change the base's rounding and could not be
undone bit-exactly. There :func:`plan` answers ``"fused"`` and :func:`merged` runs the fused path.

Restoring is bit-exact because the original weights are kept (a clone of each adapted weight,
the size of those modules) and copied back; nothing is subtracted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from clm.core.fused import is_quantized
from clm.core.lora import rank_gains
from clm.core.plan import BALANCE, Mode, Plan, plan
from clm.core.weights import as_weights
from clm.errors import WeightsError

# The engine imports this module, never the reverse: ``im`` below is any object with the
# engine's public surface (an :class:`clm.core.engine.InterpolatedModel`).
InterpolatedModel = Any

def plan_for(
    im: InterpolatedModel, weights: Any, rows: int, prompt_tokens: int, new_tokens: int, balance: float | None = None
) -> Plan:
    """:func:`plan` for an :class:`InterpolatedModel` and a setting (or one setting per row)."""
    ws = [as_weights(w) for w in weights] if isinstance(weights, (list, tuple)) else [as_weights(weights)]
    table = im.coefficient_table(ws)  # (N, K)
    live = (table != 0).any(0).tolist()  # (K,)
    shapes, quantized = [], False
    for m in im.wrappers():
        quantized |= is_quantized(m.base_layer)
        r = sum(hi - lo for k, (lo, hi) in m.spans.items() if live[k])
        shapes.append((m.A.shape[1], m.B.shape[0], r))
    device = next(im.model.parameters()).device.type
    beta = balance if balance is not None else BALANCE.get(device, BALANCE["cuda"])
    return plan(
        shapes,
        settings=len(set(ws)),
        rows=rows,
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        quantized=quantized,
        balance=beta,
    )


@dataclass
class MergeState:
    """Yielded by :func:`merged`: the path in use, and why."""

    mode: Mode
    reason: str
    modules: int = 0  # weights merged into


@contextlib.contextmanager
def merged(im: InterpolatedModel, weights: Any = None) -> Iterator[MergeState]:
    """Merge one setting into the base weights for the duration of the context.

    Inside, the model runs at the setting with the base model's cost per step. The fused path
    stays installed and adds ``(c − c_merged)``: another setting (or per-row settings) set inside
    is still computed exactly, only without the speed-up. On exit every adapted weight is copied
    back from a saved clone (bit-exact) and the previous setting is restored. A 4-bit base is not
    merged: the context runs the fused path at ``weights`` (``state.mode == "fused"``).

    Args:
        im: the interpolated model (modified in place while the context lasts).
        weights: one setting (None: the current one, which must be shared by all rows).

    Yields:
        A :class:`MergeState`.
    """
    if weights is None:
        current = im.weights
        if isinstance(current, list):
            raise WeightsError(
                f"merging needs one setting shared by every row; the model has {len(current)} per-row settings"
            )
        weights = current
    if isinstance(weights, (list, tuple)):
        ws = {as_weights(w) for w in weights}
        if len(ws) != 1:
            raise WeightsError(f"merging needs one setting shared by every row; got {len(ws)} distinct settings")
        weights = ws.pop()
    w = as_weights(weights)
    coef = im.coefficients
    if coef.offset is not None:
        raise WeightsError("this model already has a setting merged in; nested merges are not supported")
    wrappers = im.wrappers()
    if any(is_quantized(m.base_layer) for m in wrappers):
        with im.using(w):
            yield MergeState("fused", "4-bit base: cannot merge in place and restore bit-exactly; using the fused path")
        return
    table = im.coefficient_table([w])  # (1, K) validates before anything changes
    old = im.weights_list()
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for m in wrappers:
                W = m.base_layer.weight  # (d_out, d_in)
                g = rank_gains(table.to(m.A.device), m.owner, m.scale.to(torch.float64))[0]  # (R,)
                idx = g.nonzero().flatten()  # live rank components
                if idx.numel() == 0:
                    continue
                saved.append((W, W.detach().clone()))
                Bg = m.B[:, idx] * g[idx].to(m.B.dtype)  # (d_out, R')
                W.add_((Bg @ m.A[idx]).to(W.dtype))  # (d_out, d_in): ΔW = Σ c s B A
        coef.offset = table
        im.set_weights(w)  # the fused path now adds c - c_merged = 0
        yield MergeState("merged", "one shared setting merged into the base weights", len(saved))
    finally:
        with torch.no_grad():
            for W, W0 in saved:
                W.copy_(W0)  # bit-exact restore
        coef.offset = None
        im.set_weights(old if len(old) > 1 else old[0])


def generate(
    im: InterpolatedModel,
    prompts: str | Sequence[str],
    weights: Any = None,
    mode: Literal["auto", "fused", "merged"] = "auto",
    **kwargs: Any,
):
    """:meth:`InterpolatedModel.generate`, merging first when the planner says it pays.

    Args:
        mode: "auto" asks :func:`plan_for`; "merged" merges whenever one setting is shared (a
            4-bit base still runs fused); "fused" never merges.
        kwargs: passed to :meth:`InterpolatedModel.generate`.

    Returns:
        The generations (a list of :class:`clm.Generation`).
    """
    if mode not in ("auto", "fused", "merged"):
        raise WeightsError(f"mode must be 'auto', 'fused' or 'merged', got {mode!r}")
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    w = im.weights if weights is None else weights
    ws = [as_weights(x) for x in w] if isinstance(w, (list, tuple)) else [as_weights(w)]
    if mode == "auto":
        rows = len(prompt_list) * kwargs.get("num_samples", 1)
        if kwargs.get("batch_size"):
            rows = min(rows, kwargs["batch_size"])
        longest = max(len(im.tokenizer(p)["input_ids"]) for p in prompt_list)
        mode = plan_for(im, ws, rows, longest, kwargs.get("max_new_tokens", 32)).mode
    if mode == "merged" and len(set(ws)) == 1:
        with merged(im, ws[0]):
            return im.generate(prompts, weights=weights, **kwargs)
    return im.generate(prompts, weights=weights, **kwargs)
