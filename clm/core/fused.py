"""The fused path: one wrapped Linear computes any per-row interpolation of its endpoints.

``y = W0·x + B·(g ⊙ A·x)`` with the K endpoints' factors concatenated along the rank
(A: R×d_in, B: d_out×R) and per-row gains g = c_k·s_k (:mod:`clm.core.lora`). The rank components
are scaled, never A and B separately, so there are no cross terms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clm.core.lora import fused_delta, rank_gains
from clm.errors import WeightsError


class Coefficients:
    """The coefficient table shared by every wrapped module: (N, K), N rows (1 = shared)."""

    def __init__(self, n_endpoints: int):
        self.table = torch.zeros(1, n_endpoints, dtype=torch.float64)
        self.version = 0
        self.active = False
        # (1, K) coefficients merged into the base weights by clm.core.merge (None: nothing merged).
        # The fused path then adds only the difference, so any setting stays exact while merged.
        self.offset: torch.Tensor | None = None
        self.cache: dict[Any, Any] = {}  # per-setting values shared by modules of one signature

    def set(self, table: torch.Tensor) -> None:
        if self.offset is not None:
            table = table - self.offset  # (N, K)
        self.table = table
        self.active = bool(table.abs().sum() > 0)
        self.cache = {}
        self.version += 1


_SIGNATURES: dict[tuple, int] = {}  # (owner, scale, device) of a module -> a small id (cheap to hash)


class InterpolatedLinear(nn.Module):
    """``y = base(x) + Σ_k c_k s_k B_k A_k x`` with per-row c, as two matrix products.

    Args:
        base_layer: the original Linear (or bitsandbytes Linear4bit); left untouched.
        A: (R, d_in) and B: (d_out, R): the endpoints' factors concatenated along the rank.
        owner: (R,) endpoint index of each rank component; scale: (R,) its LoRA scale.
        coefficients: the shared table set by :class:`InterpolatedModel`.
    """

    def __init__(self, base_layer: nn.Module, A, B, owner, scale, coefficients: Coefficients):
        super().__init__()
        self.base_layer = base_layer
        self.register_buffer("A", A, persistent=False)  # (R, d_in)
        self.register_buffer("B", B, persistent=False)  # (d_out, R)
        self.register_buffer("owner", owner, persistent=False)  # (R,)
        self.register_buffer("scale", scale, persistent=False)  # (R,)
        self._coefficients = coefficients
        # Endpoint k owns the contiguous rank components [lo, hi) (factors are concatenated in
        # endpoint order). Modules with the same ranks and scales share one signature, so a new
        # setting's gains are computed once per signature, not once per module.
        own, sc = owner.tolist(), scale.tolist()
        self._spans = {k: (own.index(k), len(own) - own[::-1].index(k)) for k in dict.fromkeys(own)}
        self._signature = _SIGNATURES.setdefault((tuple(own), tuple(sc), str(A.device)), len(_SIGNATURES))  # small int key
        self._cast: tuple[torch.Tensor, torch.Tensor] | None = None  # A, B cast to the activations' dtype
        self._active: tuple[int, Any] = (-1, None)  # (version, (gains, A, B) sliced) for the current setting

    @property
    def spans(self) -> dict[int, tuple[int, int]]:
        """Endpoint index k -> the contiguous rank components [lo, hi) it owns."""
        return dict(self._spans)

    def _apply(self, fn, *args, **kwargs):
        self._cast, self._active = None, (-1, None)  # moved or cast (model.to): drop the cached views
        return super()._apply(fn, *args, **kwargs)

    def gains(self, dtype: torch.dtype) -> torch.Tensor:
        """(N, R) per-row, per-rank-component gains c·s, cached until the setting changes."""
        c = self._coefficients
        key = (self._signature, dtype, self.A.device)
        if key not in c.cache:
            table = c.table.to(device=self.A.device, dtype=torch.float64)
            c.cache[key] = rank_gains(table, self.owner, self.scale.to(torch.float64)).to(dtype)
        return c.cache[key]

    def live_factors(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(gains, A, B) restricted to the span of rank components some row uses, or None.

        Endpoints whose coefficient is 0 in every row are skipped: the slices are views (no copy)
        of the smallest contiguous span covering the live endpoints, found on the CPU table.
        """
        c = self._coefficients
        if self._active[0] == c.version and (self._active[1] is None or self._active[1][0].dtype == dtype):
            return self._active[1]
        if "live" not in c.cache:
            c.cache["live"] = (c.table != 0).any(0).tolist()  # (K,) on the CPU: no device sync
        span_key = (self._signature, "span")
        if span_key not in c.cache:
            spans = [self._spans[k] for k in self._spans if c.cache["live"][k]]
            c.cache[span_key] = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
        span, out = c.cache[span_key], None
        if span is not None:
            if self._cast is None or self._cast[0].dtype != dtype:
                self._cast = (self.A.to(dtype), self.B.to(dtype))  # cast once, not on every forward
            (A, B), g, (lo, hi) = self._cast, self.gains(dtype), span
            if hi - lo < A.shape[0]:  # views of the live span (no copy): (N, R'), (R', d_in), (d_out, R')
                g, A, B = g[:, lo:hi], A[lo:hi], B[:, lo:hi]
            out = (g, A, B)
        self._active = (c.version, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)  # (N, T, d_out)
        if not self._coefficients.active:
            return y
        live = self.live_factors(x.dtype)
        if live is None:  # this module's endpoints are all at 0
            return y
        g, A, B = live
        if g.shape[0] not in (1, x.shape[0]):
            raise WeightsError(f"the weights have {g.shape[0]} rows but the batch has {x.shape[0]}")
        return y + fused_delta(x, A, B, g).to(y.dtype)


def is_quantized(layer: torch.nn.Module) -> bool:
    """True for a base layer whose weight is not a plain float tensor (bitsandbytes 4-bit)."""
    w = getattr(layer, "weight", None)
    return (
        not isinstance(layer, torch.nn.Linear)
        or type(layer).__name__ == "Linear4bit"
        or w is None
        or not w.dtype.is_floating_point
    )
