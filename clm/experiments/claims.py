"""The book's claims as code: every check a chapter makes, with the bars in one :class:`Thresholds`.

Kangaslahti & Alvarez-Melis (TMLR 2025) claim that an attribute's score moves predictably and
monotonically with its α, that the attributes are little entangled, that the text stays fluent
within [0, 1] and in a band around it, and that λ sets how far each attribute moves. This module
turns each claim into a check with a bar that was set before measuring. A check takes numbers
(or tidy tables of them) and returns :class:`Verdict` values, decided on the **unrounded**
numbers; :func:`verdict_table` lays them out as a tidy DataFrame (claim, attribute, value, bar,
holds). ``holds`` is None where the number was not measured; a NaN value fails (it never
passes a bar). Nothing here reads printed text.

Chapters pass one :class:`Thresholds` on: chapter 4 uses :data:`DEFAULT`, chapter 10 builds one
from its parameters, chapter 3 reads each scorer's bar from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from clm.core.attributes import ATTRIBUTES
from clm.core.weights import STABLE_BOUNDS
from clm.errors import ConfigError

Table = Any  # a pandas DataFrame (pandas is imported where used)
Band = tuple[float, float]
COLUMNS = ["claim", "attribute", "value", "bar", "holds"]


def _scorer_bars() -> Mapping[str, float]:
    return MappingProxyType({a.name: a.scorer_bar for a in ATTRIBUTES.values()})


@dataclass(frozen=True)
class Thresholds:
    """Every bar the book's checks use; the defaults are those this project set before measuring.

    Attributes:
        min_spearman: monotone: Spearman ρ of the mean score per α over ``interval``.
        min_range: strong enough: mean score at α = 1 minus α = 0.
        max_ppl_ratio: fluent: WikiText-2 perplexity / the base model's, at every α in ``interval``.
        scorer_bar: per attribute, the test accuracy its scorer must reach on its own source
            (from :data:`clm.core.attributes.ATTRIBUTES`: 0.80, 0.95 for simplicity).
        entangled_at: an off-diagonal |entanglement| (relative to the diagonal) counted as entangled.
        band: the paper's extrapolation band that the fluent and monotone band must contain.
        interval: the interpolation band where the dial is tested.
        min_passing: chapter 4's acceptance: attributes (of the five) that must pass.
        close_endpoints: endpoints count as close together if their TV distance is below this
            multiple of the smallest attribute's.
        shared_shift: the perplexity shift counts as shared by both poles if even the most fluent
            α in ``interval`` is above this fraction of ``max_ppl_ratio``.
        max_target_error: control (chapter 7): the mean absolute error between requested and
            achieved mean scores that a controller must stay within, per attribute.
    """

    min_spearman: float = 0.9
    min_range: float = 0.25
    max_ppl_ratio: float = 1.3
    scorer_bar: Mapping[str, float] = field(default_factory=_scorer_bars)
    entangled_at: float = 0.5
    band: Band = STABLE_BOUNDS
    interval: Band = (0.0, 1.0)
    min_passing: int = 4
    close_endpoints: float = 1.25
    shared_shift: float = 0.9
    max_target_error: float = 0.05

    def __post_init__(self) -> None:
        for name in ("min_spearman", "min_range", "max_ppl_ratio", "entangled_at", "close_endpoints", "shared_shift",
                     "max_target_error"):
            _check_positive(name, getattr(self, name))
        for a, bar in dict(self.scorer_bar).items():
            _check_positive(f"scorer_bar[{a!r}]", bar)
        for name in ("band", "interval"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ConfigError(f"{name} must be (low, high) with low < high, got {getattr(self, name)!r}")
        if isinstance(self.min_passing, bool) or not isinstance(self.min_passing, int) or self.min_passing < 0:
            raise ConfigError(f"min_passing must be an integer >= 0, got {self.min_passing!r}")
        object.__setattr__(self, "scorer_bar", MappingProxyType(dict(self.scorer_bar)))

    def bar(self, attribute: str) -> float:
        """The scorer bar of ``attribute``."""
        if attribute not in self.scorer_bar:
            raise ConfigError(f"no scorer bar for {attribute!r}; known: {', '.join(self.scorer_bar)}")
        return self.scorer_bar[attribute]


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


#: The bars this project set itself before measuring.
DEFAULT = Thresholds()


@dataclass(frozen=True)
class Verdict:
    """One check: ``claim`` about ``attribute`` holds (True / False), or was not measured (None)."""

    claim: str
    attribute: str | None
    value: Any  # a number; a band (lo, hi) for the extrapolation check; None: not measured
    bar: Any
    holds: bool | None


def verdict_table(verdicts: Iterable[Verdict]) -> Table:
    """The tidy table of ``verdicts``: claim, attribute, value, bar, holds."""
    import pandas as pd

    # object columns: a value or verdict that was not measured stays None (a float column would make it NaN)
    rows = [[v.claim, v.attribute, v.value, v.bar, v.holds] for v in verdicts]
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object)


def combine(*tables: Table) -> Table:
    """One tidy verdict table from several (extra columns, e.g. ``score_of``, kept; empty ones skipped)."""
    import pandas as pd

    columns = list(dict.fromkeys([*COLUMNS, *(c for t in tables for c in t.columns)]))
    rows = [r for t in tables for r in t.to_dict("records")]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def at_least(claim: str, value: float | None, bar: float, attribute: str | None = None) -> Verdict:
    """``value >= bar`` (NaN fails; None: not measured)."""
    return Verdict(claim, attribute, value, bar, None if value is None else bool(value >= bar))


def at_most(claim: str, value: float | None, bar: float, attribute: str | None = None) -> Verdict:
    """``value <= bar`` (NaN fails; None: not measured)."""
    return Verdict(claim, attribute, value, bar, None if value is None else bool(value <= bar))


def all_hold(claim: str, verdicts: Sequence[Verdict], attribute: str | None = None) -> Verdict:
    """Holds if every one of ``verdicts`` holds; None if any was not measured."""
    held = [v.holds for v in verdicts]
    holds = None if any(h is None for h in held) else all(held)
    return Verdict(claim, attribute, sum(bool(h) for h in held), len(held), holds)


# ---------------------------------------------------------------------- claim 1: the dial
def dial(
    rho: Mapping[str, float | None],
    range_: Mapping[str, float | None],
    t: Thresholds = DEFAULT,
    max_ratio: Mapping[str, float | None] | None = None,
) -> Table:
    """Per attribute: ``monotone`` (ρ ≥ min_spearman), ``strong`` (range ≥ min_range), with
    ``max_ratio`` also ``fluent`` (max perplexity ratio on the interval ≤ max_ppl_ratio), and
    ``passes`` (all of them).

    Args:
        rho, range_, max_ratio: attribute -> unrounded number (None: not measured); a dict or a
            pandas Series indexed by attribute. The attributes are ``rho``'s, in its order.

    Returns:
        The tidy verdict table, four (or three) rows per attribute.
    """
    rho, range_ = dict(rho), dict(range_)
    ratio = None if max_ratio is None else dict(max_ratio)
    out = []
    for a in rho:
        checks = [at_least("monotone", rho[a], t.min_spearman, a), at_least("strong", range_.get(a), t.min_range, a)]
        if ratio is not None:
            checks.append(at_most("fluent", ratio.get(a), t.max_ppl_ratio, a))
        out += [*checks, all_hold("passes", checks, a)]
    return verdict_table(out)


def holds_table(verdicts: Table) -> Table:
    """Wide view of a tidy verdict table: one row per attribute, one column per claim, the
    ``holds`` values (bool where every one was measured, else None where not)."""
    wide = verdicts.pivot(index="attribute", columns="claim", values="holds")
    wide = wide.loc[list(dict.fromkeys(verdicts.attribute)), list(dict.fromkeys(verdicts.claim))]
    wide.columns.name = None
    return wide.astype(bool) if wide.notna().all().all() else wide


def acceptance(passes: Iterable[bool | None], t: Thresholds = DEFAULT) -> Verdict:
    """Chapter 4's acceptance: at least ``t.min_passing`` attributes pass."""
    n = sum(bool(p) for p in passes)
    return at_least("acceptance", n, t.min_passing)


def failed(verdicts: Table, attribute: str) -> list[str]:
    """The claims ``attribute`` fails, in the table's order (``passes`` left out)."""
    rows = verdicts[(verdicts.attribute == attribute) & (verdicts.claim != "passes")]
    return [c for c, h in zip(rows.claim, rows.holds) if h is False]


def scorers(accuracy: Mapping[str, float | None], t: Thresholds = DEFAULT) -> Table:
    """Per attribute: its scorer's test accuracy on its own source reaches its bar."""
    return verdict_table(at_least("scorer meets its bar", v, t.bar(a), a) for a, v in dict(accuracy).items())


# ---------------------------------------------------------------------- claim 2: entanglement
def entanglement(matrix: Table, t: Thresholds = DEFAULT) -> Table:
    """Every off-diagonal entry of the entanglement matrix (rows: α of; columns: score of), in
    row order: claim ``entangled`` holds where |E_ij| ≥ ``t.entangled_at``.

    Returns:
        The tidy verdict table with a ``score_of`` column (``attribute`` is the α's attribute).
    """
    rows = [(i, j, matrix.loc[i, j]) for i in matrix.index for j in matrix.columns if i != j]
    table = verdict_table(
        Verdict("entangled", i, float(v), t.entangled_at, bool(abs(v) >= t.entangled_at)) for i, _, v in rows
    )
    table.insert(2, "score_of", [j for _, j, _ in rows])
    return table


def mean_abs_off_diagonal(pairs: Table) -> float:
    """The mean |E_ij| over the off-diagonal entries of :func:`entanglement`'s table."""
    off = [abs(v) for v in pairs.value]
    return sum(off) / len(off)


def own_effect(pred: Table) -> Table:
    """Per attribute: its own slope's bootstrap CI excludes 0, so the entanglement row normalised
    by that slope is meaningful (``pred``: :func:`clm.experiments.analysis.predictability`
    indexed by attribute; value: the slope, bar: its CI)."""
    return verdict_table(
        Verdict("own effect clear of 0", a, r.slope, (r.slope_lo, r.slope_hi), not (r.slope_lo <= 0 <= r.slope_hi))
        for a, r in pred.iterrows()
    )


# ---------------------------------------------------------------------- claim 3: fluency and the band
def _inside(alphas: Iterable[float], t: Thresholds) -> list[float]:
    return [a for a in alphas if t.interval[0] <= a <= t.interval[1]]


def fluent(ratio: Mapping[float, float], t: Thresholds = DEFAULT, attribute: str | None = None) -> Verdict:
    """Perplexity within ``t.max_ppl_ratio`` of the base's at every α of the interval.

    Args:
        ratio: α -> perplexity / the base model's (unrounded); no α in the interval: not measured.
    """
    inside = [ratio[a] for a in _inside(ratio, t)]
    return at_most("fluent", max(inside) if inside else None, t.max_ppl_ratio, attribute)


def widen(grid: Sequence[float], step, t: Thresholds = DEFAULT) -> Band | None:
    """Widen the interval along the sorted α ``grid`` while ``step(a, b)`` holds between
    neighbours a < b (and ``step(a, a)`` at every α inside it); None if it fails inside."""
    inside = [i for i, a in enumerate(grid) if t.interval[0] <= a <= t.interval[1]]
    if not inside or not all(step(grid[i], grid[i]) for i in inside):
        return None
    lo, hi = inside[0], inside[-1]
    while lo > 0 and step(grid[lo - 1], grid[lo]):
        lo -= 1
    while hi < len(grid) - 1 and step(grid[hi], grid[hi + 1]):
        hi += 1
    return (grid[lo], grid[hi])


def bands(
    ratio: Mapping[float, float], means: Mapping[float, float], t: Thresholds = DEFAULT
) -> tuple[Band | None, Band | None]:
    """The fluent band (perplexity ratio within ``t.max_ppl_ratio`` at both neighbours) and the
    monotone band (also the mean score keeps the direction it has between α = 0 and α = 1).

    Args:
        ratio: α -> perplexity / the base's; its α values are the grid.
        means: α -> mean score.
    """
    lo, hi = t.interval
    up = 1.0 if means.get(hi, 0.0) >= means.get(lo, 0.0) else -1.0

    def is_fluent(a: float, b: float) -> bool:
        return ratio[a] <= t.max_ppl_ratio and ratio[b] <= t.max_ppl_ratio

    def is_monotone(a: float, b: float) -> bool:
        return is_fluent(a, b) and a in means and b in means and (a == b or up * (means[b] - means[a]) >= 0)

    grid = sorted(ratio)
    return widen(grid, is_fluent, t), widen(grid, is_monotone, t)


def extrapolation(band: Band | None, t: Thresholds = DEFAULT, attribute: str | None = None) -> Verdict:
    """The fluent and monotone ``band`` contains the paper's ``t.band`` (None: no band at all)."""
    holds = band is not None and band[0] <= t.band[0] and band[1] >= t.band[1]
    return Verdict("extrapolation band", attribute, band, t.band, holds)


# ---------------------------------------------------------------------- why a claim falls short
def shortfalls(
    attribute: str,
    accuracy: float | None = None,
    tv: float | None = None,
    tv_all: Mapping[str, float] | None = None,
    range_: float | None = None,
    rho: float | None = None,
    ratio: Mapping[float, float] | None = None,
    t: Thresholds = DEFAULT,
) -> Table:
    """What could explain a shortfall of ``attribute``: one row per possible cause, ``holds``
    where the cause is there (None: not measured).

    - ``weak scorer``: the scorer's test accuracy on its own source is below its bar;
    - ``endpoints close``: the endpoints' TV distance is below ``t.close_endpoints`` × the
      smallest of ``tv_all`` (every attribute's);
    - ``small range``, ``out of order`` (ρ below its bar; a NaN ρ is not counted), ``not fluent``;
    - ``shared shift``: not fluent, and even the most fluent α of the interval (value: its ratio,
      :func:`most_fluent`) is above ``t.shared_shift`` × the perplexity bar, so no mixture of the
      two poles is near the base's fluency.
    """
    bar = t.bar(attribute)
    tv_bar = min(tv_all.values()) * t.close_endpoints if tv is not None and tv_all else None
    flu = fluent(ratio or {}, t, attribute)
    lowest = most_fluent(ratio or {}, t)
    shared_bar = t.shared_shift * t.max_ppl_ratio
    causes = [
        ("weak scorer", accuracy, bar, lambda: accuracy < bar),
        ("endpoints close", tv, tv_bar, lambda: tv < tv_bar),
        ("small range", range_, t.min_range, lambda: range_ < t.min_range),
        ("out of order", rho, t.min_spearman, lambda: rho < t.min_spearman),
        ("not fluent", flu.value, flu.bar, lambda: not flu.holds),
        ("shared shift", lowest and lowest[1], shared_bar, lambda: not flu.holds and lowest[1] > shared_bar),
    ]
    return verdict_table(
        Verdict(claim, attribute, value, b, None if value is None or b is None else bool(cause()))
        for claim, value, b, cause in causes
    )


def most_fluent(ratio: Mapping[float, float], t: Thresholds = DEFAULT) -> tuple[float, float] | None:
    """(α, ratio) of the α in the interval with the lowest perplexity ratio (None if none)."""
    inside = _inside(ratio, t)
    return None if not inside else min(((a, ratio[a]) for a in inside), key=lambda p: (p[1], p[0]))


# ---------------------------------------------------------------------- mixing attributes with λ
def grows_with_lam(ranges: Mapping[float, float], attribute: str | None = None) -> Verdict:
    """The target's range grows strictly with its λ.

    Args:
        ranges: λ -> range (mean score at α = 1 minus α = 0); sorted by λ here.

    Returns:
        value: the smallest increase between neighbouring λ (inf for a single λ, vacuously
        growing); bar 0.
    """
    r = [ranges[lam] for lam in sorted(ranges)]
    steps = [b - a for a, b in zip(r, r[1:])]
    holds = all(a < b for a, b in zip(r, r[1:]))
    value = math.inf if not steps else (float("nan") if any(math.isnan(s) for s in steps) else min(steps))
    return Verdict("range grows with λ", attribute, value, 0.0, holds)


def own_corner(best: Mapping[str, str], own: Mapping[str, float] | None = None) -> Table:
    """Per simplex attribute: it scores highest at its own corner (``best[a] == a``).

    Args:
        best: attribute -> the corner (attribute) where its mean score is highest.
        own: attribute -> its mean score at its own corner (the verdict's value).
    """
    own = own or {}
    return verdict_table(Verdict("own corner highest", a, own.get(a), c, a == c) for a, c in best.items())


# ---------------------------------------------------------------------- counting
def count(verdicts: Iterable[Verdict | bool | None]) -> tuple[int, int]:
    """(how many hold, how many were measured)."""
    held = [v.holds if isinstance(v, Verdict) else v for v in verdicts]
    measured = [h for h in held if h is not None]
    return sum(bool(h) for h in measured), len(measured)
