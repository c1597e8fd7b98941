"""Comparing methods of control on the same work: metrics per (method, attribute) from tidy tables.

The tables are :func:`clm.experiments.method_sweep.run_method_sweep`'s (columns ``method``,
``attribute``, ``dial``, ``strength``, ``prompt_index``, ``continuation``, ``score_<attr>``, and
``ppl`` / ``wikitext_ppl`` where measured), or the interpolation sweeps of chapter 4 mapped to that
form by :func:`from_interpolation_table` (strength = α). Everything here is pandas and numpy.

Per (method, attribute), from the mean score at each strength (:func:`by_strength`; a strength's
mean is the mean over prompts of each prompt's mean over its samples and seeds):

- ``range``: max − min of the mean score over the dial; ``span``: mean at the highest strength −
  mean at the lowest (signed: positive when the dial moves the score the way it points);
- ``spearman``: Spearman ρ of the mean score against the strength; ``r2`` and ``slope``: the
  least-squares line's (:func:`clm.experiments.analysis.linear_fit`);
- ``prompt_spread``: the mean over strengths of the standard deviation (ddof = 0) of the
  per-prompt means: how much the score depends on the prompt at a fixed setting;
- ``drift_<b>``, for every other scored attribute b: max over strengths of |mean score_b at the
  strength − at the reference strength| (the method's neutral strength where given, else the
  lowest); ``drift_mean``: their mean (the off-target effect);
- ``ppl_ratio_median`` / ``ppl_ratio_mean``: the median / mean ``ppl`` of all the method's
  continuations over the base's (``base`` rows), ``ppl_ratio_max``: the largest per-strength
  median ratio; ``wikitext_ratio_max``: the largest ``wikitext_ppl`` over the base's (where defined);
- ``distinct_1``, ``distinct_2``: distinct n-grams / all n-grams of all the continuations at a
  strength (whitespace tokens, :func:`clm.eval.perplexity.distinct_n`), averaged over strengths;
  ``distinct_2_min``: the lowest strength's.

:func:`frontier` gives, per strength, the control–fluency curve with bootstrap intervals over
prompts; :func:`side_by_side` one wide table of the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clm.errors import ConfigError
from clm.eval.perplexity import distinct_n
from clm.experiments.analysis import bootstrap_ci, linear_fit, rows_for
from clm.stats import spearman

Table = Any  # a pandas DataFrame

#: The columns every tidy table has (``score_<attr>`` besides).
TIDY = ("method", "attribute", "dial", "strength", "prompt_index", "continuation")
#: Columns kept from a sweep table where it has them.
OPTIONAL = ("seed", "prompt", "sample", "n_tokens", "finished", "ppl", "wikitext_ppl")


def from_interpolation_table(table: Table, attribute: str, method: str = "interpolation") -> Table:
    """The rows of a chapter-4 interpolation sweep that dial ``attribute`` alone (λ = 1 on it, no
    other attribute active), in the tidy form: method, attribute, dial = "alpha", strength = α."""
    rows = rows_for(table, attribute)
    lam = f"lam_{attribute}"
    if lam in rows.columns:
        rows = rows[rows[lam] == 1.0]
    others = [c for c in rows.columns if c.startswith("alpha_") and c != f"alpha_{attribute}"]
    rows = rows[rows[others].isna().all(axis=1)] if others else rows
    out = rows.assign(
        method=method, attribute=attribute, dial="alpha", strength=rows[f"alpha_{attribute}"].astype(float)
    )
    keep = [*TIDY, *(c for c in OPTIONAL if c in out.columns), *(c for c in out.columns if c.startswith("score_"))]
    return out[keep].reset_index(drop=True)


def _check(table: Table) -> None:
    missing = [c for c in ("method", "attribute", "strength", "prompt_index", "continuation") if c not in table.columns]
    if missing:
        raise ConfigError(f"a method table needs column {missing[0]!r}; columns: {list(table.columns)}")


def _scores(table: Table) -> list[str]:
    return [c[len("score_") :] for c in table.columns if c.startswith("score_")]


def by_strength(rows: Table, attribute: str) -> Table:
    """One method's rows for one attribute -> one row per strength (sorted): ``score_mean`` (its
    attribute's, over prompts of per-prompt means), ``prompt_spread``, ``mean_<b>`` for every
    scored attribute, ``distinct_1``/``distinct_2``, ``ppl_median``/``ppl_mean`` and
    ``wikitext_ppl`` where the rows have them, and ``n_prompts``."""
    import pandas as pd

    col = f"score_{attribute}"
    if col not in rows.columns:
        raise ConfigError(f"the table has no column {col!r} to compare {attribute!r} on")
    names = _scores(rows)
    out = []
    for s, g in rows.groupby("strength", sort=True):
        per_prompt = g.groupby("prompt_index")[[f"score_{b}" for b in names]].mean()
        texts = [t if isinstance(t, str) else "" for t in g["continuation"]]
        rec = {"strength": float(s), "n_prompts": len(per_prompt), "score_mean": float(per_prompt[col].mean())}
        rec["prompt_spread"] = float(per_prompt[col].std(ddof=0))
        rec.update({f"mean_{b}": float(per_prompt[f"score_{b}"].mean()) for b in names})
        rec.update({"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2)})
        if "ppl" in g.columns:
            rec.update(ppl_median=float(g["ppl"].median()), ppl_mean=float(g["ppl"].mean()))
        if "wikitext_ppl" in g.columns:
            rec["wikitext_ppl"] = float(g["wikitext_ppl"].mean())
        out.append(rec)
    return pd.DataFrame.from_records(out)


def _base_values(base: Table | None) -> dict[str, float]:
    """The base's median and mean continuation ppl and its WikiText perplexity, where it has them."""
    if base is None:
        return {}
    out = {}
    if "ppl" in base.columns:
        out.update(median=float(base["ppl"].median()), mean=float(base["ppl"].mean()))
    if "wikitext_ppl" in base.columns and base["wikitext_ppl"].notna().any():
        out["wikitext"] = float(base["wikitext_ppl"].dropna().iloc[0])
    return out


def _metrics_row(rows: Table, attribute: str, neutral: float | None, base: dict[str, float]) -> dict[str, Any]:
    """The metrics of one (method, attribute) (see the module docstring)."""
    per = by_strength(rows, attribute)
    x, y = per["strength"].to_numpy(float), per["score_mean"].to_numpy(float)
    slope, _, r2 = linear_fit(x, y)
    ref = int(np.argmin(np.abs(x - neutral))) if neutral is not None and np.isclose(x, neutral).any() else 0
    rec: dict[str, Any] = {
        "dial": rows["dial"].iloc[0] if "dial" in rows.columns else None,
        "n_strengths": len(per), "strength_min": float(x[0]), "strength_max": float(x[-1]),
        "reference": float(x[ref]), "n_prompts": int(per["n_prompts"].max()),
        "range": float(y.max() - y.min()), "span": float(y[-1] - y[0]),
        "spearman": spearman(x, y), "r2": r2, "slope": slope,
        "prompt_spread": float(per["prompt_spread"].mean()),
    }  # fmt: skip
    others = [b for b in _scores(rows) if b != attribute]
    for b in others:
        m = per[f"mean_{b}"].to_numpy(float)
        rec[f"drift_{b}"] = float(np.max(np.abs(m - m[ref])))
    rec["drift_mean"] = float(np.mean([rec[f"drift_{b}"] for b in others])) if others else float("nan")
    if "ppl" in rows.columns and "median" in base:
        rec["ppl_ratio_median"] = float(rows["ppl"].median()) / base["median"]
        rec["ppl_ratio_mean"] = float(rows["ppl"].mean()) / base["mean"]
        rec["ppl_ratio_max"] = float(per["ppl_median"].max()) / base["median"]
    if "wikitext_ppl" in per.columns and "wikitext" in base:
        rec["wikitext_ratio_max"] = float(per["wikitext_ppl"].max()) / base["wikitext"]
    rec.update(distinct_1=float(per["distinct_1"].mean()), distinct_2=float(per["distinct_2"].mean()))
    rec["distinct_2_min"] = float(per["distinct_2"].min())
    return rec


def metrics(table: Table, base: Table | None = None, neutral: Mapping[str, float | None] | None = None) -> Table:
    """One row per (method, attribute) of ``table`` (one or more methods' tidy rows, concatenated).

    Args:
        table: tidy rows (:func:`run_method_sweep` tables, :func:`from_interpolation_table`).
        base: the base model's rows (``ppl``, and ``wikitext_ppl`` for the WikiText ratio), e.g. the
            base sweep table; without it there are no ratios.
        neutral: method -> the strength drift is measured from (its ``dial.neutral``); default the lowest.
    """
    import pandas as pd

    _check(table)
    ref = _base_values(base)
    rows = []
    for (method, attribute), g in table.groupby(["method", "attribute"], sort=False):
        n = (neutral or {}).get(method)
        rows.append({"method": method, "attribute": attribute, **_metrics_row(g, attribute, n, ref)})
    return pd.DataFrame.from_records(rows)


def _mean_log(values: Any) -> float:
    """The mean log of the finite values (NaN if none: an empty continuation has no perplexity)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.mean(np.log(v))) if len(v) else float("nan")


def geometric_ppl(values: Any) -> float:
    """exp(mean log ppl) of a table's ``ppl`` column or of an array of perplexities (finite ones)."""
    return math.exp(_mean_log(values["ppl"] if hasattr(values, "columns") else values))


def frontier(table: Table, base_ppl: float | Table, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Table:
    """The control–fluency curve of each (method, attribute): one row per strength.

    ``score_mean`` with a bootstrap ``level`` interval over prompts (``score_lo``, ``score_hi``) of
    the per-prompt mean score; ``ppl_ratio``: the geometric mean of the continuations' ``ppl``
    (each prompt's mean log ppl, averaged over prompts) over ``base_ppl`` (a number, or the base's
    rows, whose :func:`geometric_ppl` it takes), with its interval (``ppl_lo``, ``ppl_hi``) from
    the same bootstrap over prompts; NaN without a ``ppl`` column.
    """
    import pandas as pd

    _check(table)
    base = geometric_ppl(base_ppl) if hasattr(base_ppl, "columns") else float(base_ppl)
    if not base > 0:
        raise ConfigError(f"base_ppl must be a positive perplexity, got {base_ppl!r}")
    out = []
    for (method, attribute, s), g in table.groupby(["method", "attribute", "strength"], sort=False):
        per = g.groupby("prompt_index")
        score = per[f"score_{attribute}"].mean().to_numpy(float)
        score = score[np.isfinite(score)]  # a prompt whose every continuation was empty has no score
        rec = {"method": method, "attribute": attribute, "strength": float(s), "n_prompts": len(score)}
        rec["score_mean"] = float(score.mean())
        rec["score_lo"], rec["score_hi"] = bootstrap_ci(score, n_boot=n_boot, level=level, seed=seed)
        nan = (float("nan"),) * 3
        if "ppl" in g.columns:
            logs = per["ppl"].apply(_mean_log).to_numpy(float)  # NaN for a prompt without a finite ppl
            logs = logs[np.isfinite(logs)]
            lo, hi = bootstrap_ci(logs, n_boot=n_boot, level=level, seed=seed)
            nan = tuple(math.exp(v) / base for v in (float(np.nanmean(logs)), lo, hi))
        rec["ppl_ratio"], rec["ppl_lo"], rec["ppl_hi"] = nan
        out.append(rec)
    return pd.DataFrame.from_records(out).sort_values(["method", "attribute", "strength"], ignore_index=True)


#: The metrics :func:`side_by_side` shows, with their column labels.
SHOWN: dict[str, str] = {
    "range": "range",
    "span": "high − low",
    "spearman": "Spearman ρ",
    "r2": "R²",
    "prompt_spread": "prompt spread",
    "drift_mean": "off-target drift",
    "ppl_ratio_median": "ppl ratio (median)",
    "wikitext_ratio_max": "WikiText ratio (max)",
    "distinct_2": "distinct-2",
}


def side_by_side(table: Table, shown: Mapping[str, str] | None = None, order: Sequence[str] | None = None) -> Table:
    """The metrics (:func:`metrics`) as one wide table: a row per method (in ``order``, default as
    they come), a column per (attribute, metric) with readable labels; absent metrics are left out."""
    shown = dict(SHOWN if shown is None else shown)
    cols = [c for c in shown if c in table.columns]
    wide = table.pivot(index="method", columns="attribute", values=cols)
    wide = wide.swaplevel(0, 1, axis=1)
    attributes = list(dict.fromkeys(table["attribute"]))
    wide = wide.reindex(columns=[(a, c) for a in attributes for c in cols if (a, c) in wide.columns])
    wide = wide.rename(columns=shown, level=1).dropna(axis=1, how="all")
    methods = list(dict.fromkeys(table["method"])) if order is None else list(order)
    return wide.reindex(methods).rename_axis(index="method", columns=["attribute", "metric"])
