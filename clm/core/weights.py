"""A setting of the interpolation weights, in the paper's notation.

For attributes i with poles (low, high) the interpolated model is

    θ = θ0 + Σ_i λ_i [α_i ΔW_i,high + (1 − α_i) ΔW_i,low]

(Kangaslahti & Alvarez-Melis, 2025, eqs. 1-2). A :class:`Weights` holds α (per attribute) and
λ (the mix across attributes). It is a value: it prints, parses, serializes to JSON, compares and
hashes. It knows nothing about models; :meth:`Weights.coefficients` turns it into the
per-endpoint coefficients c that the engine multiplies each ΔW by.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from clm.core.attributes import NAME_RE
from clm.errors import WeightsError

#: The paper's "stable" extrapolation band for α.
STABLE_BOUNDS: tuple[float, float] = (-1.0, 2.0)
_SUM_TOL = 1e-6


def _number(value: Any, what: str) -> float:
    """Return ``value`` as a finite float or raise a one-line :class:`WeightsError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # numpy scalars are numbers.Real; strings, None and tensors are not.
        try:
            import numpy as np

            if isinstance(value, np.ndarray) and value.shape == ():
                return _number(value.item(), what)
        except ImportError:  # pragma: no cover
            pass
        raise WeightsError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise WeightsError(f"{what} must be finite, got {x!r}")
    return x


def _fmt(x: float) -> str:
    """Shortest text that parses back to the same float ('1' for 1.0)."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


@dataclass(frozen=True, eq=False)
class Weights:
    """α per attribute and (optionally) λ across attributes.

    Args:
        alpha: attribute name -> α. 0 is the low pole, 1 the high pole. Attributes that are not
            named are inactive (their coefficients are 0).
        lam: attribute name -> λ, or None for the paper's default: equal λ over the active
            attributes, summing to 1. When given it must name exactly the attributes in ``alpha``.
        extrapolate: allow α outside [0, 1], within ``bounds``.
        bounds: the allowed α range when extrapolating; the paper's stable band [-1, 2] by
            default. A wider band must be named explicitly.
        simplex: require Σλ = 1 (the paper's setting). Pass False to ask for free λ ≥ 0.
    """

    alpha: Mapping[str, float] = field(default_factory=dict)
    lam: Mapping[str, float] | None = None
    extrapolate: bool = False
    bounds: tuple[float, float] = STABLE_BOUNDS
    simplex: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, Mapping):
            raise WeightsError(f"alpha must be a mapping of attribute -> number, got {self.alpha!r}")
        lo, hi = (_number(b, "bounds") for b in self.bounds) if _is_pair(self.bounds) else (None, None)
        if lo is None or not (lo <= 0.0 and hi >= 1.0):
            raise WeightsError(f"bounds must be (lo, hi) with lo <= 0 <= 1 <= hi, got {self.bounds!r}")
        alpha: dict[str, float] = {}
        for name, value in self.alpha.items():
            _check_name(name)
            a = _number(value, f"alpha[{name!r}]")
            if not self.extrapolate and not 0.0 <= a <= 1.0:
                raise WeightsError(
                    f"alpha[{name!r}]={_fmt(a)} is outside [0, 1]; pass extrapolate=True to allow "
                    f"[{_fmt(lo)}, {_fmt(hi)}]"
                )
            if self.extrapolate and not lo <= a <= hi:
                raise WeightsError(
                    f"alpha[{name!r}]={_fmt(a)} is outside the extrapolation bounds "
                    f"[{_fmt(lo)}, {_fmt(hi)}]; name wider bounds to allow it"
                )
            alpha[name] = a
        lam: dict[str, float] | None = None
        if self.lam is not None:
            if not isinstance(self.lam, Mapping):
                raise WeightsError(f"lam must be a mapping of attribute -> number, got {self.lam!r}")
            lam = {}
            for name, value in self.lam.items():
                _check_name(name)
                if name not in alpha:
                    raise WeightsError(f"lam[{name!r}] is given but alpha has no {name!r}")
                x = _number(value, f"lam[{name!r}]")
                if x < 0:
                    raise WeightsError(f"lam[{name!r}]={_fmt(x)} is negative")
                lam[name] = x
            missing = [n for n in alpha if n not in lam]
            if missing:
                raise WeightsError(f"lam has no value for {missing[0]!r}, which alpha names")
            total = sum(lam.values())
            if alpha and total == 0.0:
                raise WeightsError(f"lam is all zero: {lam!r}")
            if self.simplex and abs(total - 1.0) > _SUM_TOL:
                raise WeightsError(
                    f"lam sums to {_fmt(total)}, not 1: {lam!r}; pass simplex=False for free λ"
                )
        object.__setattr__(self, "alpha", MappingProxyType(alpha))
        object.__setattr__(self, "lam", None if lam is None else MappingProxyType(lam))
        object.__setattr__(self, "bounds", (lo, hi))
        object.__setattr__(self, "extrapolate", bool(self.extrapolate))
        object.__setattr__(self, "simplex", bool(self.simplex))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def base(cls) -> Weights:
        """The base model: no attribute active, every coefficient 0."""
        return cls({})

    @classmethod
    def single(cls, attribute: str, alpha: float, **flags: Any) -> Weights:
        """One attribute at λ = 1."""
        return cls({attribute: alpha}, **flags)

    def replace(self, **changes: Any) -> Weights:
        """A copy with some fields changed (validated again)."""
        fields = {
            "alpha": dict(self.alpha),
            "lam": None if self.lam is None else dict(self.lam),
            "extrapolate": self.extrapolate,
            "bounds": self.bounds,
            "simplex": self.simplex,
        }
        fields.update(changes)
        return Weights(**fields)

    # ------------------------------------------------------------------ the math
    @property
    def attributes(self) -> tuple[str, ...]:
        """The active attributes, in the order given."""
        return tuple(self.alpha)

    @property
    def is_base(self) -> bool:
        return not self.alpha

    def lam_resolved(self) -> dict[str, float]:
        """λ with the paper's default filled in: 1/n for each of the n active attributes."""
        if self.lam is not None:
            return dict(self.lam)
        n = len(self.alpha)
        return {name: 1.0 / n for name in self.alpha}

    def coefficients(self, attributes: Sequence[str] | None = None) -> dict[str, tuple[float, float]]:
        """Per-attribute endpoint coefficients ``(c_low, c_high)``.

        c_high = λ_i α_i and c_low = λ_i (1 − α_i), so that θ = θ0 + Σ_i (c_low ΔW_low + c_high ΔW_high).

        Args:
            attributes: the attributes a set of endpoints provides. Every active attribute must be
                among them; attributes not active get (0, 0).

        Returns:
            attribute -> (c_low, c_high), in the order of ``attributes`` (or of α if None).
        """
        names = list(self.alpha) if attributes is None else list(attributes)
        unknown = [a for a in self.alpha if a not in names]
        if unknown:
            known = ", ".join(names) or "none"
            raise WeightsError(f"unknown attribute {unknown[0]!r}; the endpoints have: {known}")
        lam = self.lam_resolved()
        out: dict[str, tuple[float, float]] = {}
        for name in names:
            if name in self.alpha:
                a, l_ = self.alpha[name], lam[name]
                out[name] = (l_ * (1.0 - a), l_ * a)
            else:
                out[name] = (0.0, 0.0)
        return out

    # ------------------------------------------------------------------ value semantics
    def _key(self) -> tuple:
        lam = self.lam_resolved()
        return (
            tuple(sorted(self.alpha.items())),
            tuple(sorted(lam.items())),
            self.extrapolate,
            self.bounds,
            self.simplex,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Weights):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        if not self.alpha:
            text = "base"
        elif self.lam is None:
            text = ",".join(f"{n}={_fmt(a)}" for n, a in self.alpha.items())
        else:
            text = ",".join(f"{n}={_fmt(a)}@{_fmt(self.lam[n])}" for n, a in self.alpha.items())
        if self.extrapolate:
            text += ";extrapolate"
        if self.bounds != STABLE_BOUNDS:
            text += f";bounds={_fmt(self.bounds[0])}:{_fmt(self.bounds[1])}"
        if not self.simplex:
            text += ";free_lam"
        return text

    def __repr__(self) -> str:
        return f"Weights({str(self)!r})"

    @classmethod
    def parse(cls, text: str, **flags: Any) -> Weights:
        """Parse ``"sentiment=0.8,formality=0.2"``.

        ``attr=α@λ`` gives λ explicitly (then every attribute needs one); ``;extrapolate``,
        ``;bounds=lo:hi`` and ``;free_lam`` set the flags. ``"base"`` or ``""`` is the base model.
        Keyword flags override those in the text.
        """
        if not isinstance(text, str):
            raise WeightsError(f"cannot parse weights from {text!r}: expected a string")
        parts = [p.strip() for p in text.strip().split(";")]
        body, opts = parts[0], parts[1:]
        parsed: dict[str, Any] = {}
        for opt in opts:
            if opt == "extrapolate":
                parsed["extrapolate"] = True
            elif opt == "free_lam":
                parsed["simplex"] = False
            elif opt.startswith("bounds="):
                try:
                    lo, hi = (float(v) for v in opt[len("bounds=") :].split(":"))
                except ValueError:
                    raise WeightsError(f"cannot parse bounds from {opt!r}; expected bounds=lo:hi") from None
                parsed["bounds"] = (lo, hi)
            elif opt:
                raise WeightsError(f"unknown option {opt!r} in weights {text!r}")
        parsed.update(flags)
        alpha: dict[str, float] = {}
        lam: dict[str, float] = {}
        if body not in ("", "base"):
            for item in body.split(","):
                name, eq, value = item.partition("=")
                name = name.strip()
                if not eq or not name:
                    raise WeightsError(f"cannot parse {item.strip()!r} in weights {text!r}; expected attribute=alpha")
                if name in alpha:
                    raise WeightsError(f"attribute {name!r} appears twice in weights {text!r}")
                a_text, at, l_text = value.partition("@")
                alpha[name] = _parse_float(a_text, f"alpha[{name!r}]")
                if at:
                    lam[name] = _parse_float(l_text, f"lam[{name!r}]")
        if lam and len(lam) != len(alpha):
            missing = next(n for n in alpha if n not in lam)
            raise WeightsError(f"lam has no value for {missing!r} in weights {text!r}")
        return cls(alpha, lam or None, **parsed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it exactly."""
        return {
            "alpha": dict(self.alpha),
            "lam": None if self.lam is None else dict(self.lam),
            "extrapolate": self.extrapolate,
            "bounds": list(self.bounds),
            "simplex": self.simplex,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Weights:
        if not isinstance(data, Mapping):
            raise WeightsError(f"weights must be a JSON object, got {data!r}")
        allowed = {"alpha", "lam", "extrapolate", "bounds", "simplex"}
        extra = sorted(set(data) - allowed)
        if extra:
            raise WeightsError(f"unknown weights field {extra[0]!r}; expected {sorted(allowed)}")
        kwargs = dict(data)
        if "bounds" in kwargs:
            kwargs["bounds"] = tuple(kwargs["bounds"])
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Weights:
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise WeightsError(f"weights JSON does not parse: {err}") from None
        return cls.from_dict(data)


def as_weights(value: Weights | str | Mapping[str, float] | None) -> Weights:
    """Accept a Weights, its text form, an α mapping, or None (the base model)."""
    if value is None:
        return Weights.base()
    if isinstance(value, Weights):
        return value
    if isinstance(value, str):
        return Weights.parse(value)
    if isinstance(value, Mapping):
        return Weights(value)
    raise WeightsError(f"cannot use {value!r} as weights; expected Weights, str or dict")


def as_weights_list(value: Any, n: int) -> list[Weights]:
    """One Weights per row: a single setting is shared; a list must have exactly ``n`` entries."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise WeightsError(f"got {len(value)} weights for {n} rows; give one per row or a single setting")
        return [as_weights(v) for v in value]
    w = as_weights(value)
    return [w] * n


def _is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise WeightsError(f"attribute name must be an identifier-like string, got {name!r}")


def _parse_float(text: str, what: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise WeightsError(f"{what} must be a number, got {text.strip()!r}") from None


def grid(start: float, stop: float, step: float) -> list[float]:
    """Inclusive, rounding-safe grid of α values, e.g. ``grid(-1, 2, 0.25)``."""
    for v, what in ((start, "start"), (stop, "stop"), (step, "step")):
        _number(v, what)
    if step <= 0:
        raise WeightsError(f"step must be positive, got {step!r}")
    n = int(math.floor((stop - start) / step + 1e-9))
    return [round(start + k * step, 10) for k in range(n + 1)]


def unique(weights: Iterable[Weights]) -> list[Weights]:
    """Distinct settings in first-seen order."""
    seen: dict[Weights, None] = {}
    for w in weights:
        seen.setdefault(w, None)
    return list(seen)
