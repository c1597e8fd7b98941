"""One interface for every way of steering a model toward a pole: a generator with a strength dial.

Five methods implement it, on the same base model and the same prompts:

=====================  ==============================================  ========  =====================
method                 dial (strength)                                 per row   module
=====================  ==============================================  ========  =====================
``interpolation``      α of the endpoints (ours)                       yes       clm.methods.interpolation
``prompting``          level of an instruction, −2 … +2                yes       clm.methods.prompting
``steering``           coefficient c of a mean-difference vector       yes       clm.methods.steering
``logit-linear``       α in base + α·(high − low) (DExperts)           yes       clm.methods.logit_mix
``logit-product``      α in (1 − α)·log p_low + α·log p_high           yes       clm.methods.logit_mix
``mixture``            high-pole fraction m of the training data       no        clm.methods.mixture
=====================  ==============================================  ========  =====================

Every method's ``generate(prompts, strengths, ...)`` takes one strength for all rows or one per
prompt, and returns one :class:`MethodGeneration` per (prompt, sample), prompt-major, like
:meth:`clm.core.engine.InterpolatedModel.generate` (the sweep machinery reads ``text``,
``token_ids``, ``finished`` and ``prompt``). A higher strength always points toward the high pole.
``describe()`` is a JSON-ready dict that names everything that shapes the outputs (for sweep keys).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from clm.core.attributes import ATTRIBUTES
from clm.errors import ConfigError


@dataclass(frozen=True)
class Dial:
    """A method's strength dial.

    Args:
        name: what the strength is called ("alpha", "level", "c", "m").
        grid: the strengths a sweep visits, increasing (toward the high pole).
        neutral: the strength at which the method is the base model exactly (None if none).
        chosen: how the grid was chosen (e.g. "default, not yet chosen on dev prompts").
    """

    name: str
    grid: tuple[float, ...]
    neutral: float | None = None
    chosen: str = "default"

    def __post_init__(self) -> None:
        grid = tuple(float(x) for x in self.grid)
        if not grid or any(not math.isfinite(x) for x in grid) or list(grid) != sorted(set(grid)):
            raise ConfigError(f"dial {self.name!r}: grid must be finite, distinct and increasing, got {self.grid!r}")
        object.__setattr__(self, "grid", grid)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "grid": list(self.grid), "neutral": self.neutral, "chosen": self.chosen}


@dataclass
class MethodGeneration:
    """One continuation of one prompt at one strength."""

    prompt: str  # the prompt as given (fluency is measured against it)
    text: str
    token_ids: list[int]  # the generated tokens only, up to (not including) EOS
    strength: float
    prompt_index: int
    sample_index: int
    finished: bool  # True if the model emitted EOS before max_new_tokens
    method: str
    attribute: str
    model_prompt: str | None = None  # what the model saw, when it differs from ``prompt`` (prompting)


@dataclass(frozen=True)
class GenConfig:
    """Decoding settings shared by every method; the defaults are the paper's pure sampling."""

    max_new_tokens: int = 32
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or isinstance(self.max_new_tokens, bool) or self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        if not self.temperature > 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ConfigError(
                f"bad sampling settings: temperature={self.temperature}, top_p={self.top_p}, top_k={self.top_k}"
            )


@runtime_checkable
class Method(Protocol):
    """What a sweep needs from a method (see the module docstring)."""

    name: str
    attribute: str
    dial: Dial
    per_row: bool  # can rows of one batch have different strengths?

    @property
    def cost(self) -> dict[str, Any]: ...

    def describe(self) -> dict[str, Any]: ...

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
        **gen_kw: Any,  # temperature, top_p, top_k, stop_at_eos: as InterpolatedModel.generate
    ) -> list[MethodGeneration]: ...


# ---------------------------------------------------------------------- input checks
def check_attribute(attribute: str, known: Sequence[str] | None = None) -> str:
    """``attribute`` if it is one of ``known`` (default: the paper's five), else a ConfigError."""
    names = list(ATTRIBUTES) if known is None else list(known)
    if attribute not in names:
        raise ConfigError(f"unknown attribute {attribute!r}; known: {', '.join(names)}")
    return attribute


def check_prompts(prompts: str | Sequence[str]) -> list[str]:
    """A non-empty list of strings (one string is one prompt)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ConfigError("prompts must be a non-empty string or list of strings")
    return prompts


def strength_list(strengths: float | Sequence[float], n: int) -> list[float]:
    """One finite strength per prompt: a single number is shared; a list needs exactly ``n``."""
    values = list(strengths) if isinstance(strengths, (list, tuple)) else _as_list(strengths, n)
    if len(values) != n:
        raise ConfigError(f"got {len(values)} strengths for {n} prompts; give one per prompt or a single number")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ConfigError(f"a strength must be a finite number, got {v!r}")
        out.append(float(v))
    return out


def _as_list(value: Any, n: int) -> list[Any]:
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1:  # a tensor or array of strengths
        return list(value.tolist())
    return [value] * n


@dataclass
class Rows:
    """The rows of one ``generate`` call: (prompt index, sample index), prompt-major, in batches."""

    prompts: list[str]
    strengths: list[float]
    batches: list[list[tuple[int, int]]] = field(default_factory=list)

    @classmethod
    def plan(
        cls, prompts: str | Sequence[str], strengths: float | Sequence[float], num_samples: int, batch_size: int | None
    ) -> Rows:
        ps = check_prompts(prompts)
        ss = strength_list(strengths, len(ps))
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        rows = [(i, s) for i in range(len(ps)) for s in range(num_samples)]
        bs = batch_size or len(rows)
        if not isinstance(bs, int) or bs < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        return cls(ps, ss, [rows[i : i + bs] for i in range(0, len(rows), bs)])


