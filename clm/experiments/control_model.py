"""The response model behind :class:`clm.experiments.control.Controller`: pure numpy, no tables.

For attributes i with single-attribute response curves f_ij(α) (mean score of attribute j at
α_i = α, λ_i = 1, the others inactive) and base means b_j, a setting (α, λ) is predicted by

    s_j = b_j + Σ_i λ_i (f_ij(α_i) − b_j) + m_j Σ_{i≠k} λ_i λ_k

the first-order (λ-linear) mix of the single-attribute effects, with one pairwise mixing offset
m_j per score fitted on the λ designs (on the simplex Σ_{i≠k} λ_i λ_k = 1 − Σ λ_i²; it is zero
for a single attribute, where at λ = 1 s_j = f_ij exactly).
The curve of attribute i on its own score is a monotone (isotonic, PAVA) piecewise-linear fit,
so it can be inverted; the cross curves (j ≠ i, the entanglement) are the measured means,
piecewise linear. Perplexity: log(ppl / ppl_base) = Σ_i λ_i log r_i(α_i), the λ-weighted
single-attribute log ratios (an assumption: no table holds the perplexity of a mixture).

:func:`solve` inverts the model for targets: a Gauss-Seidel fixed point in α, each active
attribute's α set so that its own score meets its target given the others' cross effects, over a
grid of λ on the simplex, keeping the λ whose result meets the targets with the least drift of
the other attributes from their reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

STABLE = (-1.0, 2.0)


def isotonic(y: Sequence[float], w: Sequence[float] | None = None) -> np.ndarray:
    """The non-decreasing least-squares fit to ``y`` (weights ``w``): pool adjacent violators."""
    y = np.asarray(y, dtype=float)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for yi, wi in zip(y, w):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks])


def monotone(alphas: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, float]:
    """(fit, sign): the isotonic fit of ``means`` in the direction of their linear trend."""
    slope = np.polyfit(alphas, means, 1)[0] if len(alphas) > 1 else 1.0
    sign = 1.0 if slope >= 0 else -1.0
    return sign * isotonic(sign * means), sign


def _interp_w(x: float, knots: np.ndarray) -> tuple[int, float]:
    """(k, w): x = (1 − w)·knots[k] + w·knots[k+1], clamped to the knot range."""
    if len(knots) == 1 or x <= knots[0]:
        return 0, 0.0
    if x >= knots[-1]:
        return len(knots) - 2, 1.0
    k = int(np.searchsorted(knots, x, side="right") - 1)
    return k, float((x - knots[k]) / (knots[k + 1] - knots[k]))


@dataclass
class Curves:
    """One attribute's curves on its α knots.

    Attributes:
        alphas: (m,) sorted α knots of the sweep.
        F: (m, J) the model's mean score per knot and score (own column: the monotone fit).
        cov: (J, m, m) bootstrap covariance of the knot means, per score.
        sign: +1 if the own score rises with α, −1 if it falls.
        own: the index of the attribute's own score in the score list (None: not scored).
        ppl_alphas, log_ratio: the perplexity curve (empty if unknown).
    """

    alphas: np.ndarray
    F: np.ndarray
    cov: np.ndarray
    sign: float
    own: int | None
    ppl_alphas: np.ndarray
    log_ratio: np.ndarray

    def at(self, a: np.ndarray) -> np.ndarray:
        """(C, J) curve values at (C,) α."""
        a = np.asarray(a, dtype=float)
        return np.stack([np.interp(a, self.alphas, self.F[:, j]) for j in range(self.F.shape[1])], axis=-1)

    def var_at(self, a: float) -> np.ndarray:
        """(J,) variance of the curve values at α (linear in two neighbouring knots)."""
        if len(self.alphas) == 1:
            return self.cov[:, 0, 0].copy()
        k, w = _interp_w(a, self.alphas)
        v = np.array([1.0 - w, w])
        return np.einsum("i,jik,k->j", v, self.cov[:, k : k + 2, k : k + 2], v)

    def log_ppl(self, a: np.ndarray) -> np.ndarray:
        if len(self.ppl_alphas) == 0:
            return np.full(np.shape(a), np.nan)
        return np.interp(a, self.ppl_alphas, self.log_ratio)

    def alpha_range(self, log_budget: float | None, bounds: tuple[float, float] = STABLE) -> tuple[float, float] | None:
        """The α interval within the knots, ``bounds`` and the perplexity budget, around the α
        of least perplexity (None if empty)."""
        lo, hi = max(bounds[0], self.alphas[0]), min(bounds[1], self.alphas[-1])
        if lo > hi:
            return None
        if log_budget is None:
            return lo, hi
        grid = np.linspace(lo, hi, max(2, int(round((hi - lo) / 0.005)) + 1))
        ok = self.log_ppl(grid) <= log_budget + 1e-12
        if not ok.any():
            return None
        best = int(np.nanargmin(self.log_ppl(grid)))
        left, right = best, best
        while left > 0 and ok[left - 1]:
            left -= 1
        while right < len(grid) - 1 and ok[right + 1]:
            right += 1
        return float(grid[left]), float(grid[right])

    def invert(self, y: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """α in [lo, hi] whose own score is y (clamped to the reachable values)."""
        own = self.sign * self.F[:, self.own] + 1e-9 * np.arange(len(self.alphas))  # strictly increasing
        ylo, yhi = np.interp([lo, hi], self.alphas, own)
        return np.interp(np.clip(self.sign * np.asarray(y), ylo, yhi), own, self.alphas)


@dataclass
class Model:
    """The fitted response model: curves per attribute, base means, mixing offsets."""

    scores: list[str]
    curves: dict[str, Curves]
    base: np.ndarray  # (J,)
    base_var: np.ndarray  # (J,)
    mix: np.ndarray  # (J,)
    mix_var: np.ndarray  # (J,)
    extra_var: np.ndarray  # (J,) e.g. of a calibration's shift

    def predict(self, act: Sequence[str], A: np.ndarray, L: np.ndarray) -> np.ndarray:
        """(C, J) predicted mean scores for C candidates: A, L of shape (C, n) over ``act``."""
        A, L = np.atleast_2d(A), np.atleast_2d(L)
        out = np.tile(self.base, (A.shape[0], 1))
        for k, name in enumerate(act):
            out += L[:, k : k + 1] * (self.curves[name].at(A[:, k]) - self.base)
        return out + self.mix * pairs(L)[:, None]

    def predict_one(self, act: Sequence[str], A: np.ndarray, L: np.ndarray, j: int) -> np.ndarray:
        """(C,) the predicted mean of score j only (what the fixed point needs)."""
        out = np.full(A.shape[0], self.base[j]) + self.mix[j] * pairs(L)
        for k, name in enumerate(act):
            c = self.curves[name]
            out += L[:, k] * (np.interp(A[:, k], c.alphas, c.F[:, j]) - self.base[j])
        return out

    def log_ppl(self, act: Sequence[str], A: np.ndarray, L: np.ndarray) -> np.ndarray:
        A, L = np.atleast_2d(A), np.atleast_2d(L)
        return sum((L[:, k] * self.curves[n].log_ppl(A[:, k]) for k, n in enumerate(act)), np.zeros(A.shape[0]))

    def variance(self, alpha: Mapping[str, float], lam: Mapping[str, float]) -> np.ndarray:
        """(J,) variance of the predicted means of one setting: the curves' (bootstrap over
        prompts) and the base's, plus the mixing model's residual when attributes are mixed."""
        total = sum(lam.values())
        v = (1.0 - total) ** 2 * self.base_var + self.extra_var
        for name, a in alpha.items():
            v = v + lam[name] ** 2 * self.curves[name].var_at(a)
        if len(alpha) > 1:
            v = v + self.mix_var
        return v


def pairs(L: np.ndarray) -> np.ndarray:
    """(C,) Σ_{i≠k} λ_i λ_k = (Σλ)² − Σλ² per row of (C, n) λ."""
    return L.sum(axis=1) ** 2 - (L * L).sum(axis=1)


def lam_grid(n: int, step: float) -> np.ndarray:
    """(C, n) λ on the simplex with every λ_i >= step (the interior grid)."""
    if n == 1:
        return np.ones((1, 1))
    k = round(1.0 / step)
    rows = [c for c in product(range(1, k), repeat=n - 1) if sum(c) < k]
    return np.array([[*c, k - sum(c)] for c in rows], dtype=float) / k


@dataclass
class Solution:
    alpha: np.ndarray  # (n,)
    lam: np.ndarray  # (n,)
    scores: np.ndarray  # (J,)
    log_ppl: float
    error: float  # max |score − target| over the targets


def solve(
    model: Model,
    act: Sequence[str],
    desired: np.ndarray,
    weight: np.ndarray,
    ranges: Sequence[tuple[float, float]],
    lams: np.ndarray,
    reference: np.ndarray,
    drift_weight: np.ndarray,
    log_budget: float | None = None,
    iters: int = 40,
) -> list[Solution]:
    """Solve for α per λ candidate; return the candidates sorted best first.

    Args:
        act: the active attributes; each must have a scored own curve.
        desired: (n,) the own score each should reach (a target, or a held reference).
        weight: (n,) 1 for targets, less for held attributes (soft).
        ranges: per active attribute the allowed α interval.
        lams: (C, n) λ candidates.
        reference, drift_weight: (J,) reference scores and how much drifting from them costs
            (0 for targets, held attributes are in ``weight``).
        log_budget: log of the perplexity-ratio budget; a candidate over it is last (with free
            λ the per-attribute α ranges alone do not keep the mixture within it).

    The order: candidates meeting every target (weight 1) within 1e-3 first, by the drift of the
    others plus a small perplexity term; then the rest, by their weighted squared error.
    """
    C = lams.shape[0]
    own = [model.curves[a].own for a in act]
    A = np.stack([model.curves[a].invert(np.full(C, desired[k]), *ranges[k]) for k, a in enumerate(act)], axis=1)
    for _ in range(iters):
        prev = A.copy()
        for k, a in enumerate(act):
            j = own[k]
            c = model.curves[a]
            pred = model.predict_one(act, A, lams, j)  # (C,)
            mine = lams[:, k] * (np.interp(A[:, k], c.alphas, c.F[:, j]) - model.base[j])
            need = model.base[j] + (desired[k] - (pred - mine)) / lams[:, k]
            A[:, k] = c.invert(need, *ranges[k])
        if np.max(np.abs(A - prev)) < 1e-7:
            break
    S = model.predict(act, A, lams)  # (C, J)
    err = S[:, own] - desired  # (C, n)
    targets = weight >= 1.0
    miss = np.abs(err[:, targets]).max(axis=1) if targets.any() else np.zeros(C)
    lp = np.nan_to_num(model.log_ppl(act, A, lams), nan=0.0)
    drift = ((S - reference) ** 2 * drift_weight).sum(axis=1) + ((err**2) * (weight * (~targets))).sum(axis=1)
    sse = (err**2 * weight).sum(axis=1)
    meets = miss <= 1e-3
    key = np.where(meets, drift + 1e-3 * np.abs(lp), 1e6 + sse)
    if log_budget is not None:
        over = lp > log_budget + 1e-9
        key = np.where(over, 1e12 + lp, key)
        miss = np.where(over, np.inf, miss)
    return [Solution(A[c], lams[c], S[c], float(lp[c]), float(miss[c])) for c in np.argsort(key, kind="stable")]


def effective_lambda(n: int, lam: str | Mapping[str, float], act: Sequence[str], step: float) -> np.ndarray:
    """The λ candidates for a solve: ``"auto"`` a simplex grid, ``"equal"`` 1/n, ``"free"`` a grid
    of λ_i in (0, 1] each (no simplex: an extrapolation of the model beyond the λ designs), or
    one given λ."""
    if isinstance(lam, Mapping):
        return np.array([[float(lam[a]) for a in act]])
    if lam == "free":
        levels = (0.25, 0.5, 0.75, 1.0) if n <= 3 else (0.5, 1.0)
        return np.array(list(product(levels, repeat=n)), dtype=float)
    if lam == "equal" or n == 1:
        return np.full((1, n), 1.0 / n)
    if lam != "auto":
        raise ValueError(f"lam must be 'auto', 'equal', 'free' or a dict, got {lam!r}")
    return lam_grid(n, step if n <= 2 else max(step, 0.1))  # n >= 3: 36+ candidates at 0.1
