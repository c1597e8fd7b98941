"""Experimental designs: which settings of (α, λ) a sweep generates at.

The paper's designs (Kangaslahti & Alvarez-Melis, 2025, §4-5), each a list of :class:`Setting`
for :func:`clm.experiments.sweep.run_sweep`:

- :func:`single_attribute`: one attribute, α over a grid that covers the extrapolation bands;
- :func:`multi_attribute`: a target attribute at λ ∈ {0.8, 0.4, 0.2}, the others sharing 1 − λ
  equally at α = 1, the target's α ∈ {0, 0.2, …, 1};
- :func:`simplex`: λ over the 3-attribute simplex (step 0.2), every α = 1;
- :func:`custom`: any list of settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clm.core.weights import Weights, as_weights, grid
from clm.errors import ConfigError

#: The paper's λ for the target attribute in the multi-attribute design.
PAPER_LAMS: tuple[float, ...] = (0.8, 0.4, 0.2)


@dataclass(frozen=True)
class Setting:
    """A setting of the weights and where it comes from.

    Args:
        weights: the setting.
        design: the design that made it ("single", "multi", "simplex", "custom", ...).
        target: the attribute the design varies (None for a simplex or a custom list).
    """

    weights: Weights
    design: str = "custom"
    target: str | None = None

    def __str__(self) -> str:
        return str(self.weights)


# ---------------------------------------------------------------------- designs
def single_attribute(attribute: str, alphas: Sequence[float] | None = None, **flags: Any) -> list[Setting]:
    """(a) One attribute at λ = 1, α over a grid (default −1 … 2, step 0.25: both
    extrapolation bands). ``extrapolate`` is set only for α outside [0, 1]; ``flags`` (e.g.
    ``bounds=(-2, 3)``) go to :class:`Weights`."""
    alphas = grid(-1.0, 2.0, 0.25) if alphas is None else list(alphas)
    always = bool(flags.pop("extrapolate", False))
    return [
        Setting(Weights({attribute: a}, extrapolate=always or not 0 <= a <= 1, **flags), "single", attribute)
        for a in alphas
    ]


def multi_attribute(
    target: str,
    attributes: Sequence[str],
    lams: Sequence[float] = PAPER_LAMS,
    alphas: Sequence[float] | None = None,
    others_alpha: float = 1.0,
) -> list[Setting]:
    """(b) The paper's multi-attribute design: ``target`` at λ, the other attributes sharing
    1 − λ equally at α = ``others_alpha``; the target's α over ``alphas`` (default 0, 0.2, …, 1)."""
    others = [a for a in attributes if a != target]
    if not others:
        raise ConfigError(f"the multi-attribute design needs attributes besides {target!r}, got {list(attributes)}")
    alphas = grid(0.0, 1.0, 0.2) if alphas is None else list(alphas)
    out = []
    for lam in lams:
        rest = round((1.0 - lam) / len(others), 10)  # 0.2, not 0.19999999999999996
        for a in alphas:
            alpha = {target: a, **{o: others_alpha for o in others}}
            lam_d = {target: lam, **{o: rest for o in others}}
            out.append(Setting(Weights(alpha, lam_d, extrapolate=not 0 <= a <= 1), "multi", target))
    return out


def simplex(attributes: Sequence[str], step: float = 0.2, alpha: float = 1.0) -> list[Setting]:
    """(c) λ over the simplex of 3 (or more) attributes on a grid of ``step``, every α = ``alpha``.
    Points on the edges (some λ = 0) are included."""
    n = round(1.0 / step)
    if abs(n * step - 1.0) > 1e-9 or len(attributes) < 2:
        raise ConfigError(f"simplex needs >= 2 attributes and a step dividing 1, got {list(attributes)}, step={step}")

    def parts(k: int, total: int):  # compositions of total into k non-negative integers
        if k == 1:
            yield (total,)
            return
        for i in range(total, -1, -1):
            for rest in parts(k - 1, total - i):
                yield (i, *rest)

    return [
        Setting(
            Weights({a: alpha for a in attributes}, {a: round(c / n, 10) for a, c in zip(attributes, comp)}), "simplex"
        )
        for comp in parts(len(attributes), n)
    ]


def custom(settings: Iterable[Weights | str | Mapping[str, float] | None], design: str = "custom") -> list[Setting]:
    """(d) A user-given list of settings (Weights, their text form such as ``"base"``, or α dicts)."""
    return [s if isinstance(s, Setting) else Setting(as_weights(s), design) for s in settings]


def as_settings(settings: Any) -> list[Setting]:
    if isinstance(settings, (Setting, Weights, str, Mapping)) or settings is None:
        settings = [settings]
    out = custom(settings)
    if not out:
        raise ConfigError("a sweep needs at least one setting")
    return out


def setting_columns(s: Setting, attributes: Sequence[str]) -> dict[str, Any]:
    """The table columns describing a setting: design, target, setting (text), weights (JSON),
    and ``alpha_<attr>`` (NaN when inactive) and ``lam_<attr>`` (0 when inactive) per attribute."""
    w = s.weights
    lam = w.lam_resolved()
    cols: dict[str, Any] = {"design": s.design, "target": s.target, "setting": str(w), "weights": w.to_json()}
    for a in attributes:
        cols[f"alpha_{a}"] = w.alpha.get(a, float("nan"))
        cols[f"lam_{a}"] = lam.get(a, 0.0)
    return cols
