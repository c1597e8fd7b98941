"""Analysis: pure functions on a sweep's tidy table and on the endpoints' weights.

Behaviour (Kangaslahti & Alvarez-Melis, 2025, §4-6), from the table of :func:`clm.experiments.sweep.run_sweep`
(``alpha_<attr>``, ``score_<attr>``, ``target`` columns):

- :func:`response`: mean score per α with bootstrap confidence intervals;
- :func:`predictability`: per attribute, Spearman ρ between α and the mean score, the linear
  fit's slope and R², the score range between α = 0 and α = 1, each with a bootstrap 95% CI;
- :func:`entanglement`: how much moving α_i moves the score of attribute j, as a regression
  slope normalised by the on-diagonal effect.

Geometry, from the LoRA factors (ΔW = s·B·A per module, never materialised):

- :func:`endpoint_gram`: the Gram matrix ⟨ΔW_k, ΔW_l⟩ of the endpoints, every module's ΔW
  flattened into one vector per endpoint;
- :func:`cosine_matrix`, :func:`distance_matrix`: cosines and Frobenius distances from it;
- :func:`point_gram`, :func:`mds_embedding`: interpolated points Σ_k c_k ΔW_k are linear in the
  endpoints, so their Gram matrix is C G Cᵀ; classical MDS embeds them exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from clm.errors import ConfigError

Table = Any  # a pandas DataFrame (pandas is imported where used)


# ---------------------------------------------------------------------- small statistics
def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson correlation of the (average) ranks. NaN for fewer than 3 points
    (ρ of 2 points is always ±1) or if either side is constant."""
    import pandas as pd

    if len(x) < 3:
        return float("nan")
    rx = pd.Series(np.asarray(x, dtype=float)).rank().to_numpy()
    ry = pd.Series(np.asarray(y, dtype=float)).rank().to_numpy()
    return _pearson(rx, ry)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares line y ≈ slope·x + intercept.

    Returns:
        (slope, intercept, R²); R² is NaN when y is constant (and slope NaN when x is).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xc, yc = x - x.mean(), y - y.mean()
    sxx = (xc * xc).sum()
    if len(x) < 2 or sxx == 0:
        return float("nan"), float("nan"), float("nan")
    slope = float((xc * yc).sum() / sxx)
    syy = (yc * yc).sum()
    r2 = float(1.0 - ((yc - slope * xc) ** 2).sum() / syy) if syy > 0 else float("nan")
    return slope, float(y.mean() - slope * x.mean()), r2


def bootstrap_ci(
    values: Sequence[float],
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over ``values`` (resampled with replacement)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))  # (n_boot, n)
    boots = np.array([stat(v[i]) for i in idx]) if stat is not np.mean else v[idx].mean(axis=1)
    q = (1 - level) / 2
    return float(np.quantile(boots, q)), float(np.quantile(boots, 1 - q))


# ---------------------------------------------------------------------- behaviour
def rows_for(table: Table, attribute: str) -> Table:
    """The rows whose setting varies ``attribute``: ``target == attribute`` if the table has a
    ``target`` column, else every row where ``alpha_<attribute>`` is set."""
    col = f"alpha_{attribute}"
    if col not in table.columns:
        raise ConfigError(f"the table has no column {col!r}; columns: {list(table.columns)}")
    rows = table[table["target"] == attribute] if "target" in table.columns else table
    return rows[rows[col].notna()]


def _groups(rows: Table, attribute: str, score: str, interval: tuple[float, float] | None):
    """(α values, list of score arrays) per α, NaN scores dropped, α within ``interval``."""
    a, s = rows[f"alpha_{attribute}"].to_numpy(float), rows[f"score_{score}"].to_numpy(float)
    ok = ~np.isnan(s)
    if interval is not None:
        ok &= (a >= interval[0] - 1e-9) & (a <= interval[1] + 1e-9)
    alphas = np.unique(a[ok])
    return alphas, [s[ok & (a == x)] for x in alphas]


def response(
    table: Table,
    attribute: str,
    score: str | None = None,
    by: str | Sequence[str] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Table:
    """Mean score at each α of ``attribute`` with a bootstrap CI (the response curve).

    Args:
        table: a sweep table.
        attribute: the attribute whose α varies (rows from :func:`rows_for`).
        score: the attribute scored (default: the same one); column ``score_<score>``.
        by: extra grouping columns, e.g. ``"lam_sentiment"`` for the multi-attribute design.

    Returns:
        DataFrame with [*by, alpha, mean, lo, hi, sd, n], sorted by α.
    """
    import pandas as pd

    score = score or attribute
    by = [by] if isinstance(by, str) else list(by or [])
    rows = rows_for(table, attribute)
    out = []
    for key, g in rows.groupby(by, sort=True) if by else [((), rows)]:
        key = key if isinstance(key, tuple) else (key,)
        alphas, groups = _groups(g, attribute, score, None)
        for x, v in zip(alphas, groups):
            lo, hi = bootstrap_ci(v, n_boot=n_boot, level=level, seed=seed)
            sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            out.append(
                {
                    **dict(zip(by, key)),
                    "alpha": float(x),
                    "mean": float(v.mean()),
                    "lo": lo,
                    "hi": hi,
                    "sd": sd,
                    "n": len(v),
                }
            )
    return pd.DataFrame(out, columns=[*by, "alpha", "mean", "lo", "hi", "sd", "n"])


def mean_by_alpha(table: Table, attribute: str, score: str | None = None) -> dict[str, float]:
    """The mean score per α, JSON-ready (``{"0.25": 0.61, ...}``) for ``P.record``."""
    alphas, groups = _groups(rows_for(table, attribute), attribute, score or attribute, None)
    return {f"{a:g}": float(v.mean()) for a, v in zip(alphas, groups)}


def _curve_stats(alphas: np.ndarray, means: np.ndarray, interval: tuple[float, float]) -> dict[str, np.ndarray]:
    """ρ, R², slope and range of B curves at once.

    Args:
        alphas: (n,) distinct, sorted α values.
        means: (B, n) mean score per α for each of B curves (B = 1 or the bootstrap draws).
    """
    import pandas as pd

    x = alphas - alphas.mean()  # (n,)
    y = means - means.mean(axis=1, keepdims=True)  # (B, n)
    sxx, syy = (x * x).sum(), (y * y).sum(axis=1)  # (), (B,)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (y @ x) / sxx  # (B,)
        r2 = np.where(syy > 0, 1.0 - ((y - slope[:, None] * x) ** 2).sum(axis=1) / syy, np.nan)
        ry = pd.DataFrame(means).rank(axis=1).to_numpy()  # (B, n) average ranks; α ranks are 1..n
        ry = ry - ry.mean(axis=1, keepdims=True)
        rx = np.arange(len(alphas)) - (len(alphas) - 1) / 2
        rho = (ry @ rx) / np.sqrt((ry * ry).sum(axis=1) * (rx * rx).sum())
    lo, hi = np.flatnonzero(np.isclose(alphas, interval[0])), np.flatnonzero(np.isclose(alphas, interval[1]))
    rng = means[:, hi[0]] - means[:, lo[0]] if len(lo) and len(hi) else np.full(len(means), np.nan)
    if len(alphas) < 3:
        rho = np.full(len(means), np.nan)
    if len(alphas) < 2:
        slope = r2 = np.full(len(means), np.nan)
    return {"rho": rho, "r2": r2, "slope": slope, "range": rng}


def predictability(
    table: Table,
    attributes: Sequence[str] | None = None,
    interval: tuple[float, float] = (0.0, 1.0),
    by: str | Sequence[str] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Table:
    """How predictably each attribute's score follows its α, over α in ``interval``.

    Statistics are computed on the mean score per α (each α weighs the same): Spearman ρ, the
    least-squares slope and R², and the range mean(α = hi) − mean(α = lo). The CIs resample
    the samples within each α (a stratified bootstrap) and recompute every statistic.

    Args:
        attributes: default: every attribute with rows (``target``) and a score column.
        by: extra grouping columns (e.g. ``"lam_<attr>"``); a ``{by}`` column per group.

    Returns:
        One row per (attribute[, by]): attribute, rho, r2, slope, range, n_alpha, n, and
        ``<stat>_lo`` / ``<stat>_hi`` for each statistic.
    """
    import pandas as pd

    attributes = list(attributes) if attributes is not None else _varied(table)
    by = [by] if isinstance(by, str) else list(by or [])
    q = (1 - level) / 2
    out = []
    for attr in attributes:
        rows = rows_for(table, attr)
        for key, g in rows.groupby(by, sort=True) if by else [((), rows)]:
            key = key if isinstance(key, tuple) else (key,)
            alphas, groups = _groups(g, attr, attr, interval)
            if len(alphas) == 0:
                raise ConfigError(f"no scored rows of {attr!r} with α in {list(interval)}")
            means = np.array([v.mean() for v in groups])
            point = _curve_stats(alphas, means[None], interval)
            rec = {"attribute": attr, **dict(zip(by, key)), **{k: float(v[0]) for k, v in point.items()}}
            rng = np.random.default_rng(seed)
            # (n_boot, n_alpha) bootstrap means: resample each α's samples with replacement.
            boot = np.stack([v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1) for v in groups], axis=1)
            for name, draws in _curve_stats(alphas, boot.reshape(n_boot, len(alphas)), interval).items():
                draws = draws[~np.isnan(draws)]
                rec[f"{name}_lo"] = float(np.quantile(draws, q)) if len(draws) else float("nan")
                rec[f"{name}_hi"] = float(np.quantile(draws, 1 - q)) if len(draws) else float("nan")
            rec.update(n_alpha=len(alphas), n=int(sum(len(v) for v in groups)))
            out.append(rec)
    return pd.DataFrame(out)


def _varied(table: Table) -> list[str]:
    """Attributes that some rows vary and that have a score column."""
    scored = [c[len("score_") :] for c in table.columns if c.startswith("score_")]
    if "target" in table.columns:
        targets = set(table["target"].dropna())
        return [a for a in scored if a in targets and f"alpha_{a}" in table.columns]
    return [a for a in scored if f"alpha_{a}" in table.columns]


def entanglement(
    table: Table,
    attributes: Sequence[str] | None = None,
    scores: Sequence[str] | None = None,
    interval: tuple[float, float] | None = (0.0, 1.0),
    normalize: bool = True,
) -> Table:
    """The entanglement matrix: row i, column j = the effect of α_i on the score of attribute j.

    The effect is the least-squares slope of the mean score_j per α_i over the rows that vary
    attribute i (α_i in ``interval``). With ``normalize`` each row is divided by its diagonal
    effect (slope of score_i on α_i), so 1 on the diagonal and 0.5 off it means moving α_i moves
    j half as much as it moves i.

    Returns:
        DataFrame indexed by the varied attributes, columns the scored attributes.
    """
    import pandas as pd

    attributes = list(attributes) if attributes is not None else _varied(table)
    scores = (
        list(scores) if scores is not None else [c[len("score_") :] for c in table.columns if c.startswith("score_")]
    )
    m = pd.DataFrame(np.nan, index=pd.Index(attributes, name="alpha of"), columns=pd.Index(scores, name="score of"))
    for i in attributes:
        rows = rows_for(table, i)
        for j in scores:
            alphas, groups = _groups(rows, i, j, interval)
            m.loc[i, j] = linear_fit(alphas, [v.mean() for v in groups])[0]
    if normalize:
        for i in attributes:
            diag = m.loc[i, i] if i in scores else float("nan")
            m.loc[i] = m.loc[i] / diag if diag != 0 else float("nan")  # no on-diagonal effect: undefined
    return m


# ---------------------------------------------------------------------- weight-space geometry
def _factor_sets(endpoints: Any, attributes: Sequence[str] | None) -> dict[str, Mapping[str, Any]]:
    """label ("attr/pole") -> {module: factors with .A, .B, .scale}."""
    if isinstance(endpoints, Mapping):
        return dict(endpoints)
    attributes = list(attributes) if attributes is not None else endpoints.attributes
    return {f"{a}/{p}": endpoints.factors(a, p) for a in attributes for p in ("low", "high")}


def _select(modules: Sequence[str], which: str | Sequence[str] | Callable[[str], bool] | None) -> list[str]:
    if which is None:
        return list(modules)
    if isinstance(which, str):
        return [m for m in modules if re.search(which, m)]
    if callable(which):
        return [m for m in modules if which(m)]
    return [m for m in modules if m in set(which)]


def endpoint_gram(
    endpoints: Any,
    attributes: Sequence[str] | None = None,
    modules: str | Sequence[str] | Callable[[str], bool] | None = None,
    per_module: bool = False,
) -> Table:
    """Gram matrix G[k, l] = Σ_modules ⟨ΔW_k, ΔW_l⟩_F of the endpoints' weight deltas.

    Each endpoint is one vector: every module's ΔW = s·B·A flattened and concatenated (a module
    it does not adapt contributes zeros). The inner products use the low-rank factors,
    ⟨s_k B_k A_k, s_l B_l A_l⟩_F = s_k s_l Σ (B_kᵀ B_l) ⊙ (A_k A_lᵀ), so no ΔW is materialised:
    O(r² d) per module and pair instead of O(d²).

    Args:
        endpoints: a :class:`clm.Endpoints`, or a mapping label -> {module: factors (.A, .B, .scale)}.
        attributes: which attributes (default all); labels are ``"<attr>/<pole>"``.
        modules: restrict to modules matching a regex, in a list, or passing a predicate.
        per_module: return the long table of every module instead of the sum.

    Returns:
        (K, K) DataFrame indexed and columned by the endpoint labels, float64; or with
        ``per_module`` one row per (module, first, second) pair with first ≤ second: inner,
        cosine, distance (NaN cosine where an endpoint does not adapt the module).
    """
    import pandas as pd
    import torch

    sets = _factor_sets(endpoints, attributes)
    labels = list(sets)
    names = _select(sorted({m for f in sets.values() for m in f}), modules)
    if not names:
        raise ConfigError(f"no adapted module matches {modules!r}")
    G = np.zeros((len(labels), len(labels)))
    rows = []
    for m in names:
        Gm = np.zeros_like(G)  # (K, K) this module's inner products
        f64 = [(k, sets[lab][m]) for k, lab in enumerate(labels) if m in sets[lab]]
        f64 = [(k, f.A.to(torch.float64), f.B.to(torch.float64), float(f.scale)) for k, f in f64]
        for i, (k, Ak, Bk, sk) in enumerate(f64):
            for ll, Al, Bl, sl in f64[i:]:
                Gm[k, ll] = Gm[ll, k] = sk * sl * float(((Bk.T @ Bl) * (Ak @ Al.T)).sum())  # (r_k, r_l) ⊙ (r_k, r_l)
        G += Gm
        if per_module:
            gm = pd.DataFrame(Gm, index=labels, columns=labels)
            cos, dist = cosine_matrix(gm), distance_matrix(gm)
            for i, a in enumerate(labels):
                for b in labels[i:]:
                    rows.append(
                        {
                            "module": m,
                            "first": a,
                            "second": b,
                            "inner": Gm[labels.index(a), labels.index(b)],
                            "cosine": cos.loc[a, b],
                            "distance": dist.loc[a, b],
                        }
                    )
    if per_module:
        return pd.DataFrame(rows)
    return pd.DataFrame(G, index=labels, columns=labels)


def cosine_matrix(gram: Table) -> Table:
    """Cosine similarities G[k, l] / (‖ΔW_k‖ ‖ΔW_l‖) from a Gram matrix."""
    d = np.sqrt(np.diag(gram.to_numpy()))
    with np.errstate(invalid="ignore", divide="ignore"):
        return gram / np.outer(d, d)


def distance_matrix(gram: Table) -> Table:
    """Frobenius distances ‖ΔW_k − ΔW_l‖ = sqrt(G_kk + G_ll − 2 G_kl) from a Gram matrix."""
    G = gram.to_numpy()
    d = np.diag(G)
    return gram.__class__(
        np.sqrt(np.clip(d[:, None] + d[None, :] - 2 * G, 0, None)), index=gram.index, columns=gram.columns
    )


def coefficient_matrix(gram: Table, settings: Sequence[Any]) -> np.ndarray:
    """(P, K): each setting's coefficient on each endpoint of ``gram`` (labels ``attr/pole``)."""
    from clm.experiments.designs import custom

    labels = list(gram.index)
    attrs = list(dict.fromkeys(lab.split("/")[0] for lab in labels))
    C = np.zeros((len(settings), len(labels)))
    for p, s in enumerate(custom(settings)):
        coef = s.weights.coefficients(attrs)
        for k, lab in enumerate(labels):
            a, pole = lab.split("/")
            C[p, k] = coef[a][0 if pole == "low" else 1]
    return C


def point_gram(gram: Table, settings: Sequence[Any]) -> Table:
    """Gram matrix of interpolated points: ΔW(w) = Σ_k c_k(w) ΔW_k, so G_points = C G Cᵀ."""
    import pandas as pd

    from clm.experiments.designs import custom

    C = coefficient_matrix(gram, settings)  # (P, K)
    labels = [str(s) for s in custom(settings)]
    return pd.DataFrame(C @ gram.to_numpy() @ C.T, index=labels, columns=labels)


def classical_mds(distances: Any, n_components: int = 2) -> np.ndarray:
    """Classical (Torgerson) MDS: coordinates whose Euclidean distances match ``distances``
    exactly when they are Euclidean and of rank ≤ ``n_components``.

    Args:
        distances: (n, n) symmetric distance matrix (array or DataFrame).

    Returns:
        (n, n_components) coordinates, axes by decreasing variance (sign fixed so that each
        axis' largest-magnitude coordinate is positive).
    """
    D = np.asarray(distances, dtype=float)
    n = D.shape[0]
    J = np.eye(n) - 1.0 / n  # (n, n) centring
    B = -0.5 * J @ (D**2) @ J  # (n, n) double-centred Gram
    vals, vecs = np.linalg.eigh(B)
    order = np.argsort(vals)[::-1][:n_components]
    X = vecs[:, order] * np.sqrt(np.clip(vals[order], 0, None))  # (n, n_components)
    signs = np.sign(X[np.abs(X).argmax(axis=0), range(X.shape[1])])
    return X * np.where(signs == 0, 1, signs)


def mds_embedding(gram: Table, settings: Sequence[Any], n_components: int = 2, base: bool = True) -> Table:
    """Embed interpolated points (and the endpoints' origin, the base model) with classical MDS.

    Args:
        gram: the endpoints' Gram matrix (:func:`endpoint_gram`).
        settings: Settings, Weights or their text forms.
        base: add the base model (ΔW = 0) as a point if it is not among the settings.

    Returns:
        DataFrame with one row per point: the setting columns (design, target, setting,
        alpha_<attr>, lam_<attr>) and ``x``, ``y`` (and ``dim3``… beyond 2 components).
    """
    import pandas as pd

    from clm.experiments.designs import custom, setting_columns

    pts = custom(settings)
    if base and not any(s.weights.is_base for s in pts):
        pts = [*pts, *custom(["base"], design="base")]
    P = point_gram(gram, pts).to_numpy()
    d = np.diag(P)
    D = np.sqrt(np.clip(d[:, None] + d[None, :] - 2 * P, 0, None))
    X = classical_mds(D, n_components)
    attrs = list(dict.fromkeys(lab.split("/")[0] for lab in gram.index))
    names = ["x", "y", *[f"dim{i + 1}" for i in range(2, n_components)]][:n_components]
    rows = [{**setting_columns(s, attrs), **dict(zip(names, X[i]))} for i, s in enumerate(pts)]
    return pd.DataFrame(rows)
