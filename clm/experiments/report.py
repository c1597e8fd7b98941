"""The book's summary tables: what chapters 4 and 8 show, built from sweep tables or from the
numbers the chapters recorded (``<run_dir>/metrics/<chapter>.json``), decided by
:mod:`clm.experiments.claims` on the unrounded numbers and only then formatted.

Every table function returns the display table and the tidy verdicts behind it
(:func:`clm.experiments.claims.verdict_table`), so a later section or a test reads verdicts, never
printed text. Where a chapter has not recorded a number, the display says :data:`NOT_MEASURED`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from clm.core.attributes import ATTRIBUTES, NAMES
from clm.experiments import analysis, claims
from clm.experiments.claims import DEFAULT, Thresholds

Table = Any  # a pandas DataFrame (pandas is imported where used)
NOT_MEASURED = "not measured"
#: The chapters whose records chapter 10 reads, in book order.
CHAPTERS = (
    "01_data",
    "02_finetune_endpoints",
    "03_attribute_scorers",
    "04_single_attribute",
    "05_multi_attribute",
    "06_entanglement_and_geometry",
    "07_control",
    "08_alternatives",
    "09_cost_of_interpolation",
)


# ---------------------------------------------------------------------- records
def load_records(metrics_path: Callable[[str], Path], chapters: Iterable[str] = CHAPTERS) -> dict[str, dict]:
    """What each chapter recorded (``P.record``), read from ``metrics_path(chapter)``; {} if it has not run."""
    out = {}
    for nb in chapters:
        path = Path(metrics_path(nb))
        out[nb] = json.loads(path.read_text()) if path.is_file() else {}
    return out


def recorded_table(recorded: Mapping[str, dict]) -> Table:
    """One row per chapter: whether it recorded anything, and which keys."""
    import pandas as pd

    return pd.DataFrame(
        [(nb, "yes" if m else "no", ", ".join(sorted(m)) or "-") for nb, m in recorded.items()],
        columns=["chapter", "recorded", "keys"],
    ).set_index("chapter")


def get(d: Any, *keys: str, default: Any = None) -> Any:
    """``d[k1][k2]...``, or ``default`` where any key is missing."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def by_alpha(d: Mapping[str, float] | None) -> dict[float, float]:
    """``{"0.25": x, ...}`` (JSON keys are strings) as ``{0.25: x, ...}``, sorted by α."""
    return dict(sorted((float(a), float(v)) for a, v in (d or {}).items()))


def fmt(x: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; :data:`NOT_MEASURED` for None or NaN."""
    return NOT_MEASURED if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_band(band: tuple[float, float] | None) -> str:
    return "none" if band is None else f"[{band[0]:g}, {band[1]:g}]"


def _band_text(band: tuple[float, float]) -> str:
    return fmt_band(band).replace("-", "−")  # a typographic minus in prose


def _holds_text(holds: bool | None) -> str:
    return NOT_MEASURED if holds is None else ("yes" if holds else "no")


def _verdict(verdicts: Table, claim: str, attribute: str) -> Any:
    rows = verdicts[(verdicts.claim == claim) & (verdicts.attribute == attribute)]
    return rows.iloc[0] if len(rows) else None


# ---------------------------------------------------------------------- chapter 4: the dial
def single_attribute_table(
    table: Table, base_table: Table, pred: Table, max_ratio: Any, t: Thresholds = DEFAULT
) -> tuple[Table, Table]:
    """Chapter 4's verdict: per swept attribute, its curve's numbers and the checks of the dial.

    Args:
        table: the single-attribute sweeps; base_table: the base model's rows.
        pred: :func:`clm.experiments.analysis.predictability` indexed by attribute.
        max_ratio: attribute -> max WikiText-2 perplexity / the base's over the interval.

    Returns:
        (display table: base model, α = 0, α = 1, range and ρ with CIs, R², max ppl ratio, then
        monotone / strong / fluent / passes; the tidy verdicts of :func:`claims.dial`).
    """
    import pandas as pd

    attributes = list(pred.index)
    lo, hi = (f"{x:g}" for x in t.interval)
    out = pd.DataFrame(
        {
            "base model": [float(base_table[f"score_{a}"].mean()) for a in attributes],
            f"α = {lo}": [analysis.mean_by_alpha(table, a)[lo] for a in attributes],
            f"α = {hi}": [analysis.mean_by_alpha(table, a)[hi] for a in attributes],
            "range": pred["range"],
            "range 95% CI": [f"[{a:.2f}, {b:.2f}]" for a, b in zip(pred.range_lo, pred.range_hi)],
            "ρ": pred["rho"],
            "ρ 95% CI": [f"[{a:.2f}, {b:.2f}]" for a, b in zip(pred.rho_lo, pred.rho_hi)],
            "R²": pred["r2"],
            f"max ppl / base on [{lo}, {hi}]": max_ratio,
        },
        index=pd.Index(attributes, name="attribute"),
    )
    verdicts = claims.dial(pred["rho"], pred["range"], t, max_ratio=out[f"max ppl / base on [{lo}, {hi}]"])
    return out.join(claims.holds_table(verdicts)), verdicts


_FAILURE = {"monotone": "not monotone", "strong": "too weak", "fluent": "not fluent"}


def single_attribute_lines(verdicts: Table, recorded: Mapping[str, dict], t: Thresholds = DEFAULT) -> list[str]:
    """Chapter 4's verdict in words: how many attributes pass, whether the acceptance is met, and
    for each one that falls short, why, with its scorer's accuracy (chapter 3) and its endpoints'
    TV distance (chapter 2) from ``recorded``."""
    passes = verdicts[verdicts.claim == "passes"]
    acc = claims.acceptance(passes.holds, t)
    lines = [
        f"{acc.value} of {len(passes)} attributes pass (ρ ≥ {t.min_spearman}, range ≥ {t.min_range}, "
        f"ppl ≤ {t.max_ppl_ratio}× base); the acceptance needs {t.min_passing} of 5: "
        f"{'met' if acc.holds else 'not met'}"
    ]
    m2, m3 = recorded.get("02_finetune_endpoints", {}), recorded.get("03_attribute_scorers", {})
    for a in passes.attribute[~passes.holds.astype(bool)]:
        why = [_FAILURE[c] for c in claims.failed(verdicts, a)]
        main, second = m3.get("accuracy_main", {}).get(a), m3.get("accuracy_second", {}).get(a)
        tv = m2.get("tv_alpha0_alpha1", {}).get(a)
        lines.append(
            f"  {a}: {', '.join(why)}; scorer test accuracy "
            + ("not recorded" if main is None else f"{main:.2f} (paper's source) / {second:.2f} (second source)")
            + ("" if tv is None else f"; next-token TV distance between the endpoints {tv:.3f}")
        )
    return lines


# ---------------------------------------------------------------------- chapter 10: claims 1-3
def claim1_table(recorded: Mapping[str, dict], t: Thresholds = DEFAULT) -> tuple[Table, Table]:
    """Claim 1 from chapter 4's means per α: ρ and range over the interval, recomputed unrounded.

    Returns:
        (display table, one row per attribute of :data:`NAMES`; tidy verdicts of :func:`claims.dial`).
    """
    import pandas as pd

    single, scorers = recorded.get("04_single_attribute", {}), recorded.get("03_attribute_scorers", {})
    curves = {
        a: analysis.curve_from_means(by_alpha(get(single, "response", a, "mean_by_alpha")), t.interval) for a in NAMES
    }
    verdicts = claims.dial({a: c["rho"] for a, c in curves.items()}, {a: c["range"] for a, c in curves.items()}, t)
    rows = []
    for a, c in curves.items():
        rho = c["rho"]
        rows.append(
            {
                "attribute": a,
                "scorer accuracy (main / second source)": f"{fmt(get(scorers, 'accuracy_main', a))} / "
                f"{fmt(get(scorers, 'accuracy_second', a))}",
                "base model": fmt(get(single, "base_score", a)),
                f"α = {t.interval[0]:g}": fmt(c["lo"]),
                f"α = {t.interval[1]:g}": fmt(c["hi"]),
                "range": fmt(c["range"], 3),  # 3 digits: 0.246 must not print as the 0.25 it misses
                "Spearman ρ": "undefined (flat)" if rho is not None and math.isnan(rho) else fmt(rho),
                "R²": fmt(get(single, "response", a, "r2")),
                "claim holds": _holds_text(_verdict(verdicts, "passes", a).holds),
            }
        )
    return pd.DataFrame(rows).set_index("attribute"), verdicts


def entanglement_matrix(recorded: Mapping[str, dict]) -> Table | None:
    """Chapter 6's entanglement matrix (rows: α of; columns: score of), None if not recorded."""
    import pandas as pd

    ent = recorded.get("06_entanglement_and_geometry", {}).get("entanglement") or {}
    if not ent.get("matrix"):
        return None
    names = ent.get("attributes") or list(NAMES)[: len(ent["matrix"])]
    return pd.DataFrame(ent["matrix"], index=names, columns=names).astype(float)


def entanglement_line(pairs: Table, t: Thresholds = DEFAULT) -> str:
    """The mean |off-diagonal| and the entangled pairs of :func:`claims.entanglement`'s table."""
    hits = pairs[pairs.holds.astype(bool)]
    return (
        f"mean |off-diagonal| = {claims.mean_abs_off_diagonal(pairs):.2f}; entangled pairs (|effect| ≥ {t.entangled_at}): "
        + (", ".join(f"α_{i} → {j} ({v:+.2f})" for i, j, v in zip(hits.attribute, hits.score_of, hits.value)) or "none")
    )


def base_perplexity(recorded: Mapping[str, dict]) -> float | None:
    """The base model's WikiText-2 perplexity: chapter 4's, else chapter 3's."""
    single, scorers = recorded.get("04_single_attribute", {}), recorded.get("03_attribute_scorers", {})
    return get(single, "perplexity", "base", default=scorers.get("wikitext2_ppl"))


def ppl_ratios(recorded: Mapping[str, dict]) -> dict[str, dict[float, float]]:
    """Per measured attribute: α -> WikiText-2 perplexity / the base's (unrounded)."""
    base = base_perplexity(recorded)
    single = recorded.get("04_single_attribute", {})
    out = {}
    for a in NAMES:
        ppl = by_alpha(get(single, "perplexity", "by_alpha", a))
        if ppl and base:
            out[a] = {x: p / base for x, p in ppl.items()}
    return out


def claim3_table(recorded: Mapping[str, dict], t: Thresholds = DEFAULT) -> tuple[Table, Table]:
    """Fluency on the interval and the extrapolation band, per attribute of :data:`NAMES`.

    Returns:
        (display table; tidy verdicts: ``fluent`` and ``extrapolation band`` per attribute,
        holds None where chapter 4 measured no perplexity).
    """
    import pandas as pd

    single, ratios = recorded.get("04_single_attribute", {}), ppl_ratios(recorded)
    lo, hi = (f"{x:g}" for x in t.interval)
    rows, verdicts = [], []
    for a in NAMES:
        row = {"attribute": a, f"max ppl ratio on [{lo}, {hi}]": NOT_MEASURED, "fluent band": NOT_MEASURED}
        row.update({"monotone band": NOT_MEASURED, "paper's band": str(list(t.band))})
        if a in ratios:
            flu = claims.fluent(ratios[a], t, a)
            fluent_band, monotone_band = claims.bands(
                ratios[a], by_alpha(get(single, "response", a, "mean_by_alpha")), t
            )
            row[f"max ppl ratio on [{lo}, {hi}]"] = fmt(flu.value)
            row["fluent band"], row["monotone band"] = fmt_band(fluent_band), fmt_band(monotone_band)
            verdicts += [flu, claims.extrapolation(monotone_band, t, a)]
        else:
            verdicts += [claims.Verdict("fluent", a, None, t.max_ppl_ratio, None)]
            verdicts += [claims.Verdict("extrapolation band", a, None, t.band, None)]
        rows.append(row)
    return pd.DataFrame(rows).set_index("attribute"), claims.verdict_table(verdicts)


# ---------------------------------------------------------------------- chapter 10: shortfalls
def _phrases(causes: Table, recorded: Mapping[str, dict], a: str, t: Thresholds) -> list[str]:
    """The causes of :func:`claims.shortfalls` that hold, in words."""
    tv_all = recorded.get("02_finetune_endpoints", {}).get("tv_alpha0_alpha1", {})
    lowest = claims.most_fluent(ppl_ratios(recorded).get(a, {}), t)
    text = {
        "weak scorer": lambda v: f"weak scorer (test accuracy {v:.2f} on its own source)",
        "endpoints close": lambda v: (
            f"endpoints close together (TV {v:.2f}, "
            + ("the smallest of the five)" if v <= min(tv_all.values()) else f"the smallest is {min(tv_all.values()):.2f})")
        ),
        "small range": lambda v: f"small range ({fmt(v, 3)})",
        "out of order": lambda v: f"means out of order on [0, 1] (ρ {fmt(v)})",
        "not fluent": lambda v: f"perplexity up to {fmt(v)}× the base's on [0, 1]",
        "shared shift": lambda v: (
            f"even the most fluent mixture (α = {lowest[0]:g}) is {v:.2f}× the base's: the shift is "
            f"shared by both poles, so it comes from their common training source ({ATTRIBUTES[a].source}), "
            "not from one pole"
        ),
    }
    return [text[c](v) for c, v, h in zip(causes.claim, causes.value, causes.holds) if h]


def shortfalls_table(recorded: Mapping[str, dict], dial: Table, fluency: Table, t: Thresholds = DEFAULT) -> Table:
    """For every attribute that misses claim 1 (``dial``'s ``passes``) or the fluency test
    (``fluency``'s ``fluent``): what could explain it, and each pole's held-out loss drop.

    Returns:
        DataFrame with attribute, "what falls short", "held-out loss drop per pole".
    """
    import pandas as pd

    endpoints, scorers = recorded.get("02_finetune_endpoints", {}), recorded.get("03_attribute_scorers", {})
    tv_all, ratios = endpoints.get("tv_alpha0_alpha1", {}), ppl_ratios(recorded)
    before, after = get(endpoints, "eval_loss_base", default={}), get(endpoints, "eval_loss_trained", default={})
    rows = []
    for a in NAMES:
        c1, flu = _verdict(dial, "passes", a), _verdict(fluency, "fluent", a)
        if c1 is not None and c1.holds is True and (flu is None or flu.holds is not False):
            continue
        rho, rng = _verdict(dial, "monotone", a).value, _verdict(dial, "strong", a).value
        causes = claims.shortfalls(
            a, get(scorers, "accuracy_main", a), tv_all.get(a), tv_all, rng, rho, ratios.get(a), t
        )
        drop = [before[k] - after[k] for k in before if k.startswith(f"{a}/") and k in after]
        rows.append(
            {
                "attribute": a,
                "what falls short": "; ".join(_phrases(causes, recorded, a, t)) or "see the tables above",
                "held-out loss drop per pole": ", ".join(f"{d:.2f}" for d in drop) or NOT_MEASURED,
            }
        )
    return pd.DataFrame(rows, columns=["attribute", "what falls short", "held-out loss drop per pole"])


# ---------------------------------------------------------------------- chapter 10: revisions
def revisions(
    recorded: Mapping[str, dict], dial: Table, t: Thresholds = DEFAULT
) -> tuple[Table | None, list, list[str]]:
    """Each revised attribute (chapter 2's ``revisions``): the replaced and the chosen endpoints
    side by side, on the development data that chose and on this run's test data.

    Returns:
        (display table or None; the numbers, JSON-ready, for the chapter's record; one line per
        revision on what changed and whether each meets the perplexity bar).
    """
    import pandas as pd

    ratios, rows, numbers, lines = ppl_ratios(recorded), [], [], []
    for rev in recorded.get("02_finetune_endpoints", {}).get("revisions", []):
        a, old, new, before = rev["attribute"], rev["replaced"], rev["choice"], rev["test_before"]
        if _verdict(dial, "strong", a) is None:
            continue
        rho, now_range = _verdict(dial, "monotone", a).value, _verdict(dial, "strong", a).value
        old_fluent, new_fluent = (
            claims.fluent(by_alpha(before["ppl_ratio_by_alpha"]), t),
            claims.fluent(ratios.get(a, {}), t),
        )
        for cand, dev, test in (
            (old, rev["dev"][old], {"ratio": old_fluent.value, "range": before["range"], "rho": before["rho"]}),
            (new, rev["dev"][new], {"ratio": new_fluent.value, "range": now_range, "rho": rho}),
        ):
            rows.append(
                {
                    "attribute": a,
                    "endpoints": f"{cand} ({'replaced' if cand == old else 'chosen'})",
                    "dev: ppl / base, max of α = 0, 1": fmt(dev["ppl_ratio"], 3),
                    "dev: range": fmt(dev["range"], 3),
                    "test: ppl / base, max on [0, 1]": fmt(test["ratio"], 3),
                    "test: range": fmt(test["range"], 3),
                    "test: ρ": fmt(test["rho"], 2),
                }
            )
        numbers.append(
            dict(
                attribute=a,
                replaced=old,
                chosen=new,
                test_ratio=[old_fluent.value, new_fluent.value],
                test_range=[before["range"], now_range],
                dev_range=[rev["dev"][old]["range"], rev["dev"][new]["range"]],
            )
        )
        d_dev = rev["dev"][new]["range"] - rev["dev"][old]["range"]
        d_test = NOT_MEASURED if now_range is None else f"{now_range - before['range']:+.3f}"
        lines.append(
            f"{a}: the chosen endpoints change the range by {d_dev:+.3f} on the development prompts and by "
            f"{d_test} on the test prompts; the perplexity ratio {'meets' if new_fluent.holds else 'misses'} the bar of "
            f"{t.max_ppl_ratio:g} on the test data, where the replaced endpoints {'met' if old_fluent.holds else 'missed'} it"
        )
    table = pd.DataFrame(rows).set_index(["attribute", "endpoints"]) if rows else None
    return table, numbers, lines


# ---------------------------------------------------------------------- chapter 10: λ and the summary
def mixing_table(recorded: Mapping[str, dict]) -> tuple[Table | None, Table, str]:
    """Chapter 5's λ design (each target's range per λ) and simplex (own corner highest).

    Returns:
        (display table per target, None if not recorded; tidy verdicts ``range grows with λ``
        per target and ``own corner highest`` per simplex attribute; a line on the simplex).
    """
    import pandas as pd

    multi = recorded.get("05_multi_attribute", {})
    rows, verdicts = [], []
    for target, by_lam in (multi.get("multi") or {}).items():
        ranges = {float(lam): by_lam[lam]["range"] for lam in by_lam}
        grows = claims.grows_with_lam(ranges, target)
        verdicts.append(grows)
        row = {"target": target, **{f"range at λ = {lam:g}": fmt(r, 3) for lam, r in sorted(ranges.items())}}
        rows.append({**row, "range grows with λ": _holds_text(grows.holds)})
    corners, own = multi.get("simplex_best_corner") or {}, multi.get("simplex_own_corner") or {}
    corner = claims.own_corner(corners, own)
    n_own, _ = claims.count(corner.holds)
    line = (
        f"simplex over {', '.join(corners)}: {n_own} of {len(corners)} attributes score highest at their own corner "
        "(mean score there: " + ", ".join(f"{a} {v:.2f}" for a, v in own.items()) + ")"
        if corners
        else f"chapter 5's simplex: {NOT_MEASURED}"
    )
    table = pd.DataFrame(rows).set_index("target") if rows else None
    return table, claims.combine(claims.verdict_table(verdicts), corner), line


def _count_text(verdicts: Table, claim: str, unit: str = "measured attributes") -> str:
    held, measured = claims.count(verdicts.holds[verdicts.claim == claim])
    return NOT_MEASURED if not measured else f"{held} of {measured} {unit}"


def summary_table(verdicts: Table, t: Thresholds = DEFAULT) -> Table:
    """One line per claim of the paper: the test and the finding, counted from the tidy
    ``verdicts`` of the sections (claims ``passes``, ``entangled``, ``fluent``, ``range grows
    with λ``, ``own corner highest``, ``extrapolation band``)."""
    import pandas as pd

    pairs = verdicts[verdicts.claim == "entangled"]
    grows, corner = verdicts[verdicts.claim == "range grows with λ"], verdicts[verdicts.claim == "own corner highest"]
    lo, hi = (f"{x:g}" for x in t.interval)
    n_entangled = int(pairs.holds.sum())
    entangled = (
        NOT_MEASURED
        if pairs.empty
        else f"mean |off-diagonal| {claims.mean_abs_off_diagonal(pairs):.2f}; {n_entangled} entangled pair{'' if n_entangled == 1 else 's'}"
    )
    mixing = [
        f"range grows in {claims.count(grows.holds)[0]} of {len(grows)} targets"
        if len(grows)
        else f"λ design {NOT_MEASURED}",
        f"{claims.count(corner.holds)[0]} of {len(corner)} attributes peak at their own corner"
        if len(corner)
        else f"simplex {NOT_MEASURED}",
    ]
    band = _band_text(t.band)
    rows = [
        (
            "Predictable, monotone change with α",
            f"ρ ≥ {t.min_spearman} and range ≥ {t.min_range}",
            _count_text(verdicts, "passes"),
        ),
        ("Little entanglement except for some pairs", f"|off-diagonal| < {t.entangled_at}", entangled),
        (f"Fluent within [{lo}, {hi}]", f"perplexity ≤ {t.max_ppl_ratio}× base", _count_text(verdicts, "fluent")),
        ("λ sets how far each attribute moves", "range grows with λ; own simplex corner highest", "; ".join(mixing)),
        (
            f"A stable extrapolation band around {band}",
            f"fluent and monotone band contains {band}",
            _count_text(verdicts, "extrapolation band"),
        ),
    ]
    return pd.DataFrame(rows, columns=["the paper's claim", "our test", "our finding"]).set_index("the paper's claim")
