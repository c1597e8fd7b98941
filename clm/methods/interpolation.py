"""Weight interpolation (ours) behind the common interface: the dial is one attribute's α.

A thin wrapper over :meth:`clm.core.engine.InterpolatedModel.generate` (the engine the book's
sweeps already use), so its continuations are those of :func:`clm.experiments.sweep.run_sweep`
for the same prompts, settings and seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clm.core.weights import STABLE_BOUNDS, Weights
from clm.methods.base import Dial, MethodGeneration, Rows, check_attribute


class InterpolationMethod:
    """θ = θ0 + α ΔW_high + (1 − α) ΔW_low for one attribute (λ = 1), α per row.

    Args:
        im: the InterpolatedModel.
        attribute: one of its attributes.
        grid: the α values a sweep visits (outside [0, 1] extrapolates, within [−1, 2]).
    """

    name = "interpolation"
    per_row = True

    def __init__(self, im, attribute: str, grid: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)):
        self.im = im
        self.attribute = check_attribute(attribute, im.attributes)
        self.dial = Dial("alpha", tuple(grid), neutral=None, chosen="the paper's α grid")
        for a in self.dial.grid:
            self.weights(a)  # validates the grid

    def weights(self, alpha: float) -> Weights:
        return Weights({self.attribute: alpha}, extrapolate=not 0.0 <= alpha <= 1.0, bounds=STABLE_BOUNDS)

    def generate(
        self,
        prompts: str | Sequence[str],
        strengths: float | Sequence[float],
        *,
        max_new_tokens: int = 32,
        do_sample: bool = True,
        seed: int | None = 0,
        num_samples: int = 1,
        batch_size: int | None = None,
        **gen_kw: Any,
    ) -> list[MethodGeneration]:
        """Continue each prompt at its α (one for all, or one per prompt); see :meth:`InterpolatedModel.generate`."""
        plan = Rows.plan(prompts, strengths, num_samples, batch_size)
        gens = self.im.generate(
            plan.prompts,
            weights=[self.weights(a) for a in plan.strengths],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            seed=seed,
            num_samples=num_samples,
            batch_size=batch_size,
            progress=False,
            **gen_kw,
        )
        return [
            MethodGeneration(
                g.prompt,
                g.text,
                g.token_ids,
                plan.strengths[g.prompt_index],
                g.prompt_index,
                g.sample_index,
                g.finished,
                self.name,
                self.attribute,
            )
            for g in gens
        ]

    @property
    def cost(self) -> dict[str, Any]:
        return {
            "forward_passes_per_token": 1,
            "extra": "two rank-r products per adapted Linear for the live endpoints",
            "preparation": "two endpoint adapters per attribute (training)",
            "preparation_seconds": None,  # read from the endpoints' training logs
            "per_row": True,
            "setting_change": "O(1): a new (N, K) coefficient table",
            "kv_caches": 1,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "attribute": self.attribute,
            "dial": self.dial.to_dict(),
            "endpoints": self.im.endpoints.digest([self.attribute]),
        }
