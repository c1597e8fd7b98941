"""The values a controller answers with: :class:`Plan`, :class:`TargetError`, and target parsing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clm.core.weights import Weights
from clm.errors import ClmError


class TargetError(ClmError):
    """A target score is out of reach, or a controller does not fit the model."""


@dataclass(frozen=True)
class Plan:
    """What :meth:`Controller.weights_for` returns: the setting and what it predicts.

    Attributes:
        weights: the setting to generate at.
        predicted: attribute -> predicted mean score (every scored attribute).
        interval: attribute -> (lo, hi), the ``level`` prediction interval of that mean.
        ppl_ratio: predicted WikiText perplexity / the base model's (NaN if unknown).
        targets, reference: what was asked, and what untargeted attributes were held near.
        clipped: True if a target was out of reach and the closest setting was returned;
            ``message`` then says which and what is reachable.
    """

    weights: Weights
    predicted: dict[str, float]
    interval: dict[str, tuple[float, float]]
    ppl_ratio: float
    targets: dict[str, float]
    reference: dict[str, float]
    method: str = "joint"
    clipped: bool = False
    message: str | None = None
    level: float = 0.95
    error: float = field(default=0.0, repr=False)  # max |predicted − target|

    def __str__(self) -> str:
        parts = [
            f"{a} {self.predicted[a]:.3f} [{self.interval[a][0]:.3f}, {self.interval[a][1]:.3f}]" for a in self.targets
        ]
        text = f"{self.weights} -> " + ", ".join(parts) + f", ppl x{self.ppl_ratio:.2f}"
        return text + (f" (clipped: {self.message})" if self.clipped else "")


def log_or_none(ratio: float | None) -> float | None:
    return None if ratio is None else math.log(ratio)


def check_target(name: Any, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) <= 1.0:
        raise TargetError(f"target {name}={value!r} must be a score in [0, 1]")
    return float(value)


def parse_targets(targets: Any) -> dict[str, float]:
    if isinstance(targets, str):
        targets = dict(parse_target(item) for item in targets.split(",") if item.strip())
    if not isinstance(targets, Mapping) or not targets:
        raise TargetError(f"targets must be a non-empty dict of attribute -> score, got {targets!r}")
    return {str(k): check_target(k, v) for k, v in targets.items()}


def parse_target(item: str) -> tuple[str, float]:
    name, eq, value = (p.strip() for p in item.partition("="))
    try:
        return name, float(value) if eq else float("nan")
    except ValueError:
        raise TargetError(f"cannot parse target {item.strip()!r}; expected attribute=score") from None


def out_of_reach(attr: str, t: float, reach: tuple[float, float], max_ppl_ratio: float | None, others: Mapping) -> str:
    within = "α in [-1, 2]" + (f" and perplexity ratio <= {max_ppl_ratio:g}" if max_ppl_ratio is not None else "")
    jointly = (" with " + ",".join(f"{a}={v:g}" for a, v in others.items())) if others else ""
    if math.isnan(reach[0]):
        return f"targets {attr}={t:g}{jointly.replace(' with ', ',')} cannot be met together within {within}"
    return f"target {attr}={t:g} is out of reach: reachable [{reach[0]:.3f}, {reach[1]:.3f}] within {within}{jointly}"
