"""Analysis: pure functions on a sweep's tidy table (Kangaslahti & Alvarez-Melis, 2025, §4-6).

From the table of :func:`clm.experiments.sweep.run_sweep` (``alpha_<attr>``, ``score_<attr>``,
``target`` columns):

- :func:`response`: mean score per α with bootstrap confidence intervals;
- :func:`predictability`: per attribute, Spearman ρ between α and the mean score, the linear
  fit's slope and R², the score range between α = 0 and α = 1, each with a bootstrap 95% CI;
- :func:`entanglement`: how much moving α_i moves the score of attribute j, as a regression
  slope normalised by the on-diagonal effect.

The weight-space geometry of the endpoints is in :mod:`clm.experiments.geometry`; the checks
the book makes on these numbers are in :mod:`clm.experiments.claims`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from clm.errors import ConfigError
from clm.stats import spearman

Table = Any  # a pandas DataFrame (pandas is imported where used)


# ---------------------------------------------------------------------- small statistics
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

    attributes = list(attributes) if attributes is not None else varied_attributes(table)
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


def varied_attributes(table: Table) -> list[str]:
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

    attributes = list(attributes) if attributes is not None else varied_attributes(table)
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


def curve_from_means(means: Mapping[float, float], interval: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    """ρ and range of a response curve given only its mean score per α (e.g. a chapter's record).

    Args:
        means: α -> mean score.

    Returns:
        ``rho`` (Spearman ρ over the α in ``interval``; None if there are none, NaN for fewer
        than 3 or a flat curve), ``lo`` and ``hi`` (the means at the interval's ends, None if
        not on the grid) and ``range`` (hi − lo, None if either is missing).
    """
    inside = {a: m for a, m in sorted(means.items()) if interval[0] <= a <= interval[1]}
    rho = spearman(list(inside), list(inside.values())) if inside else None
    lo, hi = inside.get(interval[0]), inside.get(interval[1])
    return {"rho": rho, "lo": lo, "hi": hi, "range": hi - lo if lo is not None and hi is not None else None}


def simplex_corners(table: Table, attributes: Sequence[str]) -> Table:
    """Mean scores at the corners of a simplex sweep (one attribute at λ = 1).

    Returns:
        DataFrame: row a = the corner of attribute a, column ``score_<b>`` = the mean score of
        attribute b there.
    """
    import pandas as pd

    lam_cols = [f"lam_{a}" for a in attributes]
    corners = table.groupby(lam_cols)[[f"score_{a}" for a in attributes]].mean()
    return pd.DataFrame(
        {
            a: [corners.loc[tuple(float(a == b) for b in attributes), f"score_{b}"] for b in attributes]
            for a in attributes
        },
        index=pd.Index([f"score_{b}" for b in attributes], name="mean score at the corner of"),
    ).T


def simplex_means(table: Table, attributes: Sequence[str]) -> list[dict[str, float]]:
    """The mean score of every attribute at every λ point of a simplex sweep, JSON-ready:
    ``[{"lam_<a>": λ_a, ..., "score_<a>": mean, ...}, ...]``, sorted by λ."""
    lam_cols = [f"lam_{a}" for a in attributes]
    means = table.groupby(lam_cols)[[f"score_{a}" for a in attributes]].mean()
    return [{**{c: float(v) for c, v in zip(lam_cols, k)}, **row.to_dict()} for k, row in means.iterrows()]


def strongest_pairs(matrix: Table, raw: Table, n: int) -> Table:
    """The ``n`` off-diagonal entries of a normalised entanglement matrix with the largest |E|.

    Args:
        matrix, raw: :func:`entanglement` with and without ``normalize``.

    Returns:
        DataFrame with "alpha of", "score of", E, raw_slope; largest |E| first.
    """
    return (
        matrix.stack()
        .rename("E")
        .reset_index()
        .query("`alpha of` != `score of`")
        .assign(raw_slope=lambda d: [raw.loc[i, j] for i, j in zip(d["alpha of"], d["score of"])])
        .assign(abs_E=lambda d: d.E.abs())
        .sort_values("abs_E", ascending=False)
        .drop(columns="abs_E")
        .head(n)
        .reset_index(drop=True)
    )
