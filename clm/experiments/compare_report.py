"""What the comparison chapter (08_alternatives) shows and records, from its tidy table
(:func:`clm.experiments.compare_runs.share_rows`): the strongest fluent setting of each method,
example continuations, the mixture comparison, the cost table, the numbers of its findings and the
conclusions chapter's row. Decisions are taken on unrounded numbers (:mod:`clm.experiments.claims`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Table = Any  # a pandas DataFrame

#: The methods in the order the chapter shows them (ours first).
ORDER = ("interpolation", "prompting", "steering", "logit-linear", "logit-product", "mixture")
NOT_MEASURED = "not measured"


def order(methods: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(methods))
    return [m for m in ORDER if m in seen] + [m for m in seen if m not in ORDER]


def strongest_fluent(fr: Table, budget: float) -> Table:
    """Per (method, attribute): the strength with the highest mean score among those whose
    perplexity ratio is at most ``budget`` (``fluent`` False and the least-perplexing strength
    where none is), with its score and ratio; and ``low``: the lowest such mean (the dial's other
    end), so ``reach`` = high − low is the range a reader gets within the budget."""
    import pandas as pd

    rows = []
    for (m, a), g in fr.groupby(["method", "attribute"], sort=False):
        g = g.dropna(subset=["score_mean", "ppl_ratio"])
        if g.empty:
            continue
        ok = g[g.ppl_ratio <= budget]
        top = ok.loc[ok.score_mean.idxmax()] if len(ok) else g.loc[g.ppl_ratio.idxmin()]
        bottom = ok.loc[ok.score_mean.idxmin()] if len(ok) else top
        rows.append({"method": m, "attribute": a, "strength": float(top.strength), "score": float(top.score_mean),
                     "ppl_ratio": float(top.ppl_ratio), "fluent": bool(len(ok)), "low_strength": float(bottom.strength),
                     "low": float(bottom.score_mean), "reach": float(top.score_mean - bottom.score_mean),
                     "n_fluent": len(ok), "n_strengths": len(g)})  # fmt: skip
    return pd.DataFrame.from_records(rows)


def wikitext_reach(tidy: Table, base: Table, method: str, attributes: Sequence[str], budget: float) -> dict[str, float]:
    """attribute -> the range of ``method``'s mean score over the strengths whose model keeps its
    WikiText-2 perplexity within ``budget`` × the base model's (for a method that defines one
    model per setting; attributes without WikiText-2 measurements are left out)."""
    if "wikitext_ppl" not in tidy or "wikitext_ppl" not in base or not base["wikitext_ppl"].notna().any():
        return {}
    ref = float(base["wikitext_ppl"].dropna().median())
    out = {}
    for a in attributes:
        g = tidy[(tidy.method == method) & (tidy.attribute == a)]
        per = g.groupby("strength").agg(score=(f"score_{a}", "mean"), wiki=("wikitext_ppl", "median")).dropna()
        ok = per[per.wiki <= budget * ref]
        if len(ok):
            out[a] = float(ok.score.max() - ok.score.min())
    return out


def examples(tidy: Table, best: Table, attribute: str, prompt_index: int, sample: int = 0) -> tuple[str, list]:
    """(prompt, [(heading, continuation)]): the given prompt's continuation at each method's
    strongest fluent setting for ``attribute`` (:func:`strongest_fluent`), and the base model's."""
    d = tidy[(tidy.attribute == attribute) & (tidy.prompt_index == prompt_index)]
    items, prompt = [], None
    for _, b in best[best.attribute == attribute].set_index("method").loc[order(best.method)].iterrows():
        g = d[(d.method == b.name) & np.isclose(d.strength, b.strength)].sort_values("sample")
        if g.empty:
            continue
        row = g[g["sample"] == sample].iloc[0] if (g["sample"] == sample).any() else g.iloc[0]
        prompt = row.get("prompt", prompt)
        score = row[f"score_{attribute}"]
        dial = {"interpolation": "α", "prompting": "level", "steering": "c", "mixture": "m"}.get(b.name, "α")
        note = "" if b.fluent else f"; none within the budget, so its least perplexing (ratio {b.ppl_ratio:.1f})"
        items.append((f"{b.name}, {dial} = {b.strength:g} ({attribute} {score:.2f}{note})", str(row["continuation"])))
    return prompt, items


def mixture_rows(fr: Table, weights: Mapping[str, Mapping[float, Mapping[str, Any]]]) -> Table:
    """One row per (attribute, source, m) for :func:`clm.plots.compare.mixture_vs_interpolation`
    and the mixture table: the mixture's frontier rows (with the endpoints it shares) and the
    interpolation's at the same α, with the ΔW comparison of each mixture adapter."""
    import pandas as pd

    rows = []
    for a, per in weights.items():
        ms = sorted({0.0, 1.0, *(float(m) for m in per)})
        for src in ("mixture", "interpolation"):
            g = fr[(fr.method == src) & (fr.attribute == a)]
            for m in ms:
                r = g[np.isclose(g.strength, m)]
                if r.empty:
                    continue
                r = r.iloc[0]
                w = per.get(m, {}) if src == "mixture" and 0 < m < 1 else {}
                rows.append({"attribute": a, "source": src, "m": m, "score_mean": r.score_mean, "score_lo": r.score_lo,
                             "score_hi": r.score_hi, "ppl_ratio": r.ppl_ratio, "ratio": w.get("ratio", math.nan),
                             "cosine": w.get("cosine", math.nan), "train_seconds": w.get("train_seconds", math.nan)})  # fmt: skip
    return pd.DataFrame.from_records(rows)


def mixture_table(rows: Table) -> Table:
    """Per (attribute, m strictly inside (0, 1)): the mixture's and the interpolation's mean score
    (``mixture``, ``interp.``) and perplexity ratio (``ppl mix.``, ``ppl interp.``), the scores'
    difference, and the ΔW distance over the endpoints' distance and the cosine."""
    import pandas as pd

    out = []
    for (a, m), g in rows[(rows.m > 0) & (rows.m < 1)].groupby(["attribute", "m"], sort=False):
        mix, it = g[g.source == "mixture"], g[g.source == "interpolation"]
        if mix.empty or it.empty:
            continue
        mix, it = mix.iloc[0], it.iloc[0]
        out.append({"attribute": a, "m": m, "mixture": mix.score_mean, "interp.": it.score_mean,
                    "difference": mix.score_mean - it.score_mean, "ppl mix.": mix.ppl_ratio,
                    "ppl interp.": it.ppl_ratio, "ΔW distance": mix.ratio, "ΔW cosine": mix.cosine})  # fmt: skip
    return pd.DataFrame.from_records(out)


def monotone_share(metrics: Table, at_least: float) -> dict[str, float]:
    """method -> the share of its attributes whose Spearman ρ of mean score against the dial is
    at least ``at_least``."""
    return {m: float((g.spearman >= at_least).mean()) for m, g in metrics.groupby("method", sort=False)}


def winners(best: Table, metrics: Table) -> dict[str, dict[str, str]]:
    """attribute -> {"reach": the method with the largest reach within the budget, "drift": the
    smallest off-target drift, "linear": the highest R²} (unrounded numbers)."""
    out: dict[str, dict[str, str]] = {}
    for a in dict.fromkeys(best.attribute):
        b, m = best[best.attribute == a], metrics[metrics.attribute == a]
        out[a] = {
            "reach": str(b.loc[b.reach.idxmax(), "method"]),
            "drift": str(m.loc[m.drift_mean.idxmin(), "method"]) if m.drift_mean.notna().any() else "–",
            "linear": str(m.loc[m.r2.idxmax(), "method"]) if m.r2.notna().any() else "–",
        }
    return out


def conclusions_row(recorded: Mapping[str, Any]) -> Table:
    """The conclusions chapter's row for this comparison (from ``recorded["08_alternatives"]``)."""
    import pandas as pd

    rec = recorded.get("08_alternatives") or {}
    reach = rec.get("reach") or {}
    if not reach:
        finding, holds = NOT_MEASURED, NOT_MEASURED
    else:
        parts = []
        for a, per in reach.items():
            ranked = sorted(per.items(), key=lambda kv: -kv[1])
            parts.append(f"{a}: " + ", ".join(f"{m} {v:.2f}" for m, v in ranked))
        first = {a: max(per, key=per.get) for a, per in reach.items()}
        wins = [a for a, m in first.items() if m == "interpolation"]
        finding = "; ".join(parts)
        wiki = rec.get("wikitext_reach") or {}
        if wiki:
            dial = rec.get("dial")
            over = f" over its whole dial (α from {dial[0]:g} to {dial[1]:g})" if dial else ""
            finding += (f". Judged instead by the models' WikiText-2 perplexity (within the same ratio), interpolation "
                        f"reaches{over} " + ", ".join(f"{a} {v:.2f}" for a, v in wiki.items()))
        n = len(first)
        holds = ("no: for every attribute another method reaches further" if not wins
                 else f"yes, for all {n}" if len(wins) == n
                 else f"partly: interpolation reaches furthest for {', '.join(wins)} ({len(wins)} of {n})")  # fmt: skip
    return pd.DataFrame(
        [("interpolation against the alternatives", "score range reached while the continuations' perplexity "
          f"under the base stays within {rec.get('budget', '–')}× the base's own (not the WikiText-2 bar of "
          "chapter 4), on the same prompts and scorers", finding, holds)],
        columns=["claim", "our test", "our finding", "holds"],
    ).set_index("claim")  # fmt: skip


def conclusions_line(row: Table) -> str:
    """One sentence from :func:`conclusions_row`'s table, for the conclusions' findings."""
    r = row.iloc[0]
    if r["our finding"] == NOT_MEASURED:
        return f"chapter 8's comparison: {NOT_MEASURED}."
    holds = str(r["holds"])
    return (f"Within chapter 8's fluency budget ({r['our test']}), the score range each method reaches, per "
            f"attribute: {r['our finding']}. Does interpolation reach furthest? {holds[:1].upper() + holds[1:]}.")
