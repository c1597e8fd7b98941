"""Logit arithmetic: mix the next-token predictions of the base and the two endpoints.

Two rules, with the endpoints as expert (high pole) and anti-expert (low pole):

* ``"linear"`` (DExperts, Liu et al. 2021):      z = z_base + α · (z_high − z_low)
* ``"product"`` (product of experts, as in language-model arithmetic, Dekoninck et al. 2024):
                                                 z = (1 − α) · log p_low + α · log p_high

z are logits, log p = log_softmax(z); sampling renormalises either. At α = 0 ``linear`` is the
base model exactly; at α = 1 ``product`` is the high endpoint's log-probabilities exactly.

The members are the same :class:`clm.core.engine.InterpolatedModel` at three settings: the base
(every coefficient 0), the low endpoint alone (``Weights({attribute: 0})``, λ = 1) and the high
endpoint alone (``Weights({attribute: 1})``). Each keeps its own KV cache, and every new token
costs one forward pass per member: three for ``linear`` (base, low, high), two for ``product``.
α may differ per batch row: the members run at shared settings and only the mix is per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.methods.base import Dial, GenConfig, check_attribute
from clm.methods.decode import LoopMethod, decode, device_of, encode, model_step, pad_id

Mode = Literal["linear", "product"]
MODES: tuple[Mode, Mode] = ("linear", "product")


def mix_logits(
    alpha: torch.Tensor, low: torch.Tensor, high: torch.Tensor, base: torch.Tensor | None = None, mode: Mode = "linear"
) -> torch.Tensor:
    """The mixed next-token logits, per row.

    Args:
        alpha: (N,) one α per row (or (1,) shared).
        low, high: (N, ..., V) the low and high endpoints' logits.
        base: (N, ..., V) the base model's logits (``linear`` only).
        mode: ``"linear"`` or ``"product"`` (see the module docstring).

    Returns:
        (N, ..., V) logits (for ``product``: unnormalised log-probabilities).
    """
    a = alpha.to(low.dtype).reshape(-1, *([1] * (low.dim() - 1)))  # (N, 1.., 1)
    if mode == "linear":
        if base is None:
            raise ConfigError("the linear mix needs the base model's logits")
        return base + a * (high - low)
    if mode == "product":
        return (1 - a) * torch.log_softmax(low, -1) + a * torch.log_softmax(high, -1)
    raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")


class LogitMix(LoopMethod):
    """Logit arithmetic as a generator: the dial is α, per row (see the module docstring).

    Args:
        im: an InterpolatedModel over endpoints that include ``attribute``. Its setting is
            changed while generating and restored afterwards.
        attribute: the attribute whose endpoints are the (anti-)expert.
        mode: ``"linear"`` (DExperts) or ``"product"`` (product of experts).
        grid: the α values a sweep visits; default −2 … 2 for linear, 0 … 1 for product.
    """

    def __init__(self, im, attribute: str, mode: Mode = "linear", grid: Sequence[float] | None = None):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        self.im, self.tokenizer, self.mode = im, im.tokenizer, mode
        self.attribute = check_attribute(attribute, im.attributes)
        self.name = f"logit-{mode}"
        default = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0) if mode == "linear" else (0.0, 0.25, 0.5, 0.75, 1.0)
        self.dial = Dial("alpha", tuple(grid or default), neutral=0.0 if mode == "linear" else None)
        self.members = {
            "base": Weights.base(),
            "low": Weights({attribute: 0.0}),
            "high": Weights({attribute: 1.0}),
        }
        if mode == "product":
            del self.members["base"]

    def member_steps(self) -> dict[str, Any]:
        """One step function per member; each sets the model to its member's setting, then runs
        with its own KV cache."""
        im, steps = self.im, {}
        for name, w in self.members.items():
            inner = model_step(im.model)

            def step(ids, mask, pos, w=w, inner=inner):
                im.set_weights(w)
                return inner(ids, mask, pos)

            steps[name] = step
        return steps

    def mixed_step(self, alpha: torch.Tensor):
        steps = self.member_steps()

        def step(ids, mask, pos):
            z = {name: s(ids, mask, pos).float() for name, s in steps.items()}  # each (N, V), mixed in float32
            return mix_logits(alpha.to(z["low"].device), z["low"], z["high"], z.get("base"), self.mode)

        return step

    @torch.no_grad()
    def logits(
        self,
        input_ids: torch.Tensor,
        alpha: float | Sequence[float] | torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(N, T, V) mixed logits at every position (one full pass per member, no cache)."""
        a = torch.as_tensor(alpha, dtype=torch.float32).reshape(-1)
        old, z = self.im.weights_list(), {}
        try:
            for name, w in self.members.items():
                z[name] = self.im.logits(input_ids, attention_mask, weights=w)
        finally:
            self.im.set_weights(old if len(old) > 1 else old[0])
        return mix_logits(a.to(z["low"].device), z["low"], z["high"], z.get("base"), self.mode)

    def generate_batch(self, texts: list[str], strengths: list[float], gen: GenConfig) -> list[list[int]]:
        ids, mask = encode(self.tokenizer, texts, self.add_special_tokens)
        dev = device_of(self.im.model)
        old = self.im.weights_list()
        try:
            step = self.mixed_step(torch.tensor(strengths, dtype=torch.float32))
            return decode(step, ids.to(dev), mask.to(dev), gen, self.tokenizer.eos_token_id, pad_id(self.tokenizer))
        finally:
            self.im.set_weights(old if len(old) > 1 else old[0])

    @property
    def cost(self) -> dict[str, Any]:
        n = len(self.members)
        return {
            "forward_passes_per_token": n,
            "extra": f"{n} KV caches ({', '.join(self.members)}); a mix of {n} (N, V) logit rows per token",
            "preparation": "none beyond the endpoints (shared with interpolation)",
            "preparation_seconds": 0.0,
            "per_row": True,
            "setting_change": "O(1): a new (N,) α tensor",
            "kv_caches": n,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "attribute": self.attribute,
            "dial": self.dial.to_dict(),
            "mode": self.mode,
            "endpoints": self.im.endpoints.digest([self.attribute]),
        }
