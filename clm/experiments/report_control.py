"""The conclusions chapter's rows for chapter 7 (control in practice): what it recorded, checked
against the project's own bars (:class:`clm.experiments.claims.Thresholds`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from clm.experiments.claims import DEFAULT, Thresholds, at_most

NOT_MEASURED = "not measured"


def _f(x: Any) -> str:
    return NOT_MEASURED if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def control_rows(recorded: Mapping[str, Any], t: Thresholds = DEFAULT) -> tuple[Any, list[Any]]:
    """(table, verdicts): one row per new claim of chapter 7: target error per attribute, joint
    against naive, and recalibration; from ``recorded["07_control"]`` (empty if it has not run)."""
    import pandas as pd

    rec = recorded.get("07_control") or {}
    bar = t.max_target_error
    single = rec.get("single") or {}
    per = [at_most("target error", float(v["mae"]), bar, a) for a, v in single.items()]
    joint = rec.get("joint") or {}
    j, n = joint.get("joint"), joint.get("naive")
    recal = rec.get("recalibration") or {}
    after = recal.get("after")
    win = None if j is None or n is None or math.isnan(j) or math.isnan(n) else bool(j < n)
    rows = [
        ("ask for a score", f"mean |requested − achieved| ≤ {bar:g} per attribute whose range is ≥ "
         f"{t.min_range:g}, on the evaluation prompts", _targets_finding(per, rec),
         None if not per else all(v.holds for v in per)),
        ("two targets at once", "the entanglement-corrected solve has a smaller mean error than the naive one",
         f"corrected {_f(j)} against naive {_f(n)}", win),
        ("prompts of another kind", f"mean error ≤ {bar:g} on prompts of another kind, after recalibrating on "
         f"{recal.get('prompts', '–')} of them (whether recalibration itself helped: the finding's before and after)",
         f"{_f(recal.get('before'))} before, {_f(after)} after ({recal.get('generations', '–')} generations)"
         + _worst_after(recal.get("by_attribute") or {}),
         None if after is None or math.isnan(after) else bool(after <= bar)),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["claim", "our test", "our finding", "holds"])
    table["holds"] = table["holds"].map({True: "yes", False: "no", None: NOT_MEASURED})
    return table.set_index("claim"), per


def _targets_finding(per: list[Any], rec: Mapping[str, Any]) -> str:
    if not per:
        return NOT_MEASURED
    parts = ", ".join(f"{v.attribute} {v.value:.3f}" for v in per)
    return f"mean error {_f(rec.get('single_mae'))} ({parts})"


def control_line(table: Any) -> str:
    """One sentence per row of :func:`control_rows`' table, for the findings."""
    if table is None or not len(table) or (table["holds"] == NOT_MEASURED).all():
        return f"chapter 7's targets: {NOT_MEASURED}."
    parts = [f"{claim}: {row['our finding']} (holds: {row['holds']})" for claim, row in table.iterrows()]
    text = "; ".join(parts) + "."
    return text[:1].upper() + text[1:]


def _worst_after(by: Mapping[str, Any]) -> str:
    if not by:
        return ""
    a = max(by, key=lambda k: by[k]["after"])
    return f"; worst after: {a} {by[a]['after']:.3f} (was {by[a]['before']:.3f})"
