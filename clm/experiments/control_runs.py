"""The control chapter's experiments: the fit sweeps on development prompts, the targets asked
for on the evaluation prompts, the recalibration, and the schedule arc, as sweep settings and
tidy results.

Everything generated goes through :func:`clm.experiments.sweep.run_sweep`, so each part resumes
and is keyed like the other chapters' sweeps; this module only says *which* settings, and turns
the tables into the chapter's numbers:

- :func:`fit_designs`: the base model, every attribute's α grid at λ = 1, and a pair grid of two
  attributes at λ = ½ each (for the controller's mixing term), all on the development prompts;
- :func:`single_targets` / :func:`joint_targets`: requested scores spread over what the
  controller says is reachable within the perplexity budget;
- :func:`plan_settings`: one setting per plan, labelled with what was asked;
- :func:`achieved`: requested against achieved mean score, with the interval's coverage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

import numpy as np

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.experiments.designs import Setting, custom, single_attribute

#: α grid of the fit sweeps: inside [0, 1] and one step into each extrapolation band.
FIT_ALPHAS: tuple[float, ...] = (-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
#: The two attributes whose joint targets the chapter asks for, and their pair grid's α.
PAIR: tuple[str, str] = ("sentiment", "formality")
PAIR_ALPHAS: tuple[float, ...] = (0.0, 0.5, 1.0)
#: Targets are spread over this inner fraction of the reachable interval (its ends are extrapolated).
INNER = 0.8


def fit_designs(
    attributes: Sequence[str], alphas: Sequence[float] = FIT_ALPHAS, pair: Sequence[str] | None = PAIR,
    pair_alphas: Sequence[float] = PAIR_ALPHAS,
) -> dict[str, list[Setting]]:  # fmt: skip
    """Table name -> settings of the fit sweeps: ``fit_base``, ``fit_single_<a>``, ``fit_pair``."""
    out = {"fit_base": custom(["base"], design="base")}
    for a in attributes:
        out[f"fit_single_{a}"] = single_attribute(a, alphas)
    if pair and all(a in attributes for a in pair):
        lam = {a: 1.0 / len(pair) for a in pair}
        grid = [Weights(dict(zip(pair, al)), lam) for al in product(pair_alphas, repeat=len(pair))]
        out["fit_pair"] = [Setting(w, "pair", None) for w in grid]
    return out


def spread(lo: float, hi: float, n: int, inner: float = INNER) -> list[float]:
    """``n`` evenly spaced values over the middle ``inner`` fraction of [lo, hi]."""
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    mid, half = (lo + hi) / 2, (hi - lo) * inner / 2
    return [round(float(x), 3) for x in np.linspace(mid - half, mid + half, n)] if n > 1 else [round(mid, 3)]


def single_targets(ctl: Any, attribute: str, n: int = 5, max_ppl_ratio: float | None = None) -> list[float]:
    """``n`` requested scores for ``attribute`` alone, over its reachable interval."""
    lo, hi = ctl.reachable(attribute, max_ppl_ratio=max_ppl_ratio)
    return spread(lo, hi, n)


def joint_targets(
    ctl: Any, pair: Sequence[str] = PAIR, k: int = 3, max_ppl_ratio: float | None = None
) -> list[dict[str, float]]:
    """A k × k grid of joint targets: each attribute over the range the joint solve reaches with
    the other at the middle of its own, over the middle 60 % of it, shrunk towards the centre
    (to 45 %, 30 %, 15 %) until every cell is reachable together."""
    a, b = pair
    mid = {x: float(np.mean(ctl.reachable(x, max_ppl_ratio=max_ppl_ratio))) for x in pair}
    reach = {x: ctl.reachable(x, {y: mid[y]}, max_ppl_ratio=max_ppl_ratio) for x, y in ((a, b), (b, a))}
    for inner in (0.6, 0.45, 0.3, 0.15):
        axes = {x: spread(*reach[x], k, inner=inner) for x in pair}
        grid = [{a: ta, b: tb} for ta, tb in product(axes[a], axes[b])]
        if not any(ctl.weights_for(t, max_ppl_ratio, clip=True).clipped for t in grid):
            break
    return grid


def plan_settings(plans: Sequence[Any], design: str) -> list[Setting]:
    """One setting per plan, its design naming the method; duplicates kept once."""
    seen, out = set(), []
    for p in plans:
        key = str(p.weights)
        if key not in seen:
            seen.add(key)
            out.append(Setting(p.weights, design, ",".join(p.targets)))
    return out


def achieved(table: Any, plans: Sequence[Any], ppl: Mapping[str, float] | None = None, base_ppl: float | None = None):
    """One row per (plan, targeted attribute): requested, predicted, interval, achieved mean
    (over prompts and samples), its standard error over prompts, covered, and perplexity ratio."""
    import pandas as pd

    rows = []
    for i, p in enumerate(plans):
        w = p.weights.to_json()
        sub = table[table.weights == w]
        if sub.empty:
            raise ConfigError(f"no rows for plan {i} ({p.weights}) in the table")
        for a, t in p.targets.items():
            per = sub.groupby("prompt_index")[f"score_{a}"].mean()
            lo, hi = p.interval[a]
            got = float(sub[f"score_{a}"].mean())
            ratio = (ppl or {}).get(w, float("nan")) / base_ppl if base_ppl else float("nan")
            rows.append({
                "plan": i, "method": p.method, "attribute": a, "requested": t, "predicted": p.predicted[a],
                "lo": lo, "hi": hi, "achieved": got, "se": float(per.std(ddof=1) / np.sqrt(len(per))),
                "error": got - t, "covered": bool(lo <= got <= hi), "ppl_ratio": ratio,
                "predicted_ppl_ratio": p.ppl_ratio, "setting": str(p.weights), "n": len(sub),
            })  # fmt: skip
    return pd.DataFrame(rows)


def ranges(ctl: Any, attributes: Sequence[str]) -> dict[str, float]:
    """Attribute -> the fitted curve's range on its own score between α = 0 and α = 1."""
    out = {}
    for a in attributes:
        c = ctl.curve(a)
        out[a] = float(np.interp(1.0, c.alpha, c.fit) - np.interp(0.0, c.alpha, c.fit))
    return out


def single_plans(ctl: Any, attributes: Sequence[str], n: int, max_ppl_ratio: float, n_eval: int) -> list[Any]:
    """``n`` target plans per attribute, alone, within the perplexity budget."""
    plans = []
    for a in attributes:
        for t in single_targets(ctl, a, n, max_ppl_ratio):
            plans.append(ctl.weights_for({a: t}, max_ppl_ratio, clip=True, n_eval=n_eval))
    return plans


def joint_plans(ctl: Any, pair: Sequence[str], max_ppl_ratio: float, n_eval: int, k: int = 3) -> list[Any]:
    """The k × k joint grid, solved twice: corrected for entanglement, and naively."""
    grid = joint_targets(ctl, pair, k, max_ppl_ratio)
    return [
        ctl.weights_for(t, max_ppl_ratio, clip=True, method=m, n_eval=n_eval) for m in ("joint", "naive") for t in grid
    ]


def summary(rows: Any, by: Sequence[str] = ("method", "attribute")) -> Any:
    """Mean absolute error, coverage and the worst perplexity ratio per group of :func:`achieved` rows."""
    g = rows.assign(abs_error=rows.error.abs()).groupby(list(by), sort=False)
    return g.agg(
        targets=("requested", "size"), mae=("abs_error", "mean"), max_error=("abs_error", "max"),
        coverage=("covered", "mean"), max_ppl_ratio=("ppl_ratio", "max"),
    ).reset_index()  # fmt: skip


def perplexities(table: Any) -> dict[str, float]:
    """weights text -> WikiText perplexity, from a sweep table's ``wikitext_ppl`` column."""
    if "wikitext_ppl" not in table.columns:
        return {}
    t = table.dropna(subset=["wikitext_ppl"]).drop_duplicates("weights")
    return dict(zip(t.weights.astype(str), t.wikitext_ppl.astype(float)))


def choose(rng: Mapping[str, float], min_range: float) -> tuple[list[str], bool]:
    """(attributes whose range reaches ``min_range``, True) — or, when none does (a tiny or
    untrained run), ([the attribute of the widest range], False), so the chapter still runs."""
    chosen = [a for a, r in rng.items() if r >= min_range]
    if chosen or not rng:
        return chosen, True
    return [max(rng, key=lambda a: abs(rng[a]))], False


#: Readers' names for :func:`summary`'s columns.
SUMMARY_NAMES = {
    "targets": "targets", "mae": "mean |error|", "max_error": "worst |error|", "coverage": "interval coverage",
    "max_ppl_ratio": "worst perplexity ratio",
}  # fmt: skip


def calibration_shifts(ctl: Any, table: Any, attributes: Sequence[str]) -> Any:
    """Per attribute: the mean residual of the calibration's generations against the controller's
    prediction at each setting (the shift a recalibration applies), and its standard error over
    prompts — what a calibration of this size can resolve."""
    import pandas as pd

    rows = []
    for a in attributes:
        per_prompt = []
        for w, sub in table.groupby("weights"):
            pred = ctl.predict(Weights.from_json(w))[0][a]
            per_prompt.append(sub.groupby("prompt_index")[f"score_{a}"].mean() - pred)
        r = pd.concat(per_prompt, axis=1).mean(axis=1)  # per prompt, averaged over the settings
        rows.append({"attribute": a, "shift": float(r.mean()), "se": float(r.std(ddof=1) / np.sqrt(len(r)))})
    return pd.DataFrame(rows)
