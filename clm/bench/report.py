"""The bench's report: a result of :func:`clm.bench.run.run` (or its saved JSON) as the tables,
figures and summary that chapter 9 shows.

    res = report.load_saved()                      # the shipped run (clm/assets/bench/)
    print(report.describe(res))                    # where and how it was measured
    report.speed_table(res)                        # tokens/s per method and scenario
    display(Markdown(report.summary(res)))         # what it means, written from the numbers

Every number comes from ``res``; nothing here runs a model. A scenario is a batch size and
whether its rows share one setting ("shared") or each have their own ("distinct").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clm.paths import ASSETS

#: The saved benchmark of the embedded default on a CPU (``python -m clm.bench``; command inside).
SAVED = ASSETS / "bench" / "cpu-smollm2-135m.json"

LABELS = {
    "base": "base (no adapters)",
    "fused": "clm fused",
    "merged": "clm merged",
    "merged-held": "clm merged (merge held)",
    "peft-multi": "PEFT, all adapters active",
    "peft-cat": "PEFT cat, rebuilt",
    "paper": "paper's code (no KV cache)",
    "dexperts": "DExperts logit mixing",
}
CHANGE_LABELS = {
    "merged": "clm merge + restore",
    "peft-multi": "PEFT: set scaling of every adapter",
    "peft-cat": "PEFT cat: rebuild",
}


def load_saved(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """A saved benchmark result (default: the shipped CPU run, :data:`SAVED`)."""
    return json.loads(Path(path or SAVED).read_text())


def label(info: dict[str, Any]) -> str:
    """How a figure names the machine: the GPU's name, or the CPU's model, cores and threads."""
    if info.get("gpu"):
        return f"{info['gpu']} (GPU)"
    threads = info["torch_threads"]
    return f"{info['cpu']}, {info['cores']} cores, {threads} torch thread{'s' if threads != 1 else ''} (CPU)"


def _by(res: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """The rows keyed by (method, batch, settings)."""
    return {(r["method"], r["batch"], r["settings"]): r for r in res["rows"]}


def _tps(by: dict, method: str, batch: int, settings: str) -> float:
    r = by.get((method, batch, settings))
    return r["tokens_per_s"] if r else float("nan")


# ---------------------------------------------------------------------- what was measured
def describe(res: dict[str, Any]) -> str:
    """Where and how ``res`` was measured: machine, model, command, note and the machine's load."""
    m, cfg = res["machine"], res["config"]
    lines = [
        f"measured on: {label(m)}; torch {m['torch']}; {m['date']}",
        f"model: {cfg['model']} ({cfg['params'] / 1e6:.0f}M parameters, {cfg['dtype']}); "
        f"{cfg['endpoints']} endpoints of rank {cfg['rank']}; {cfg['new_tokens']} new tokens",
        f"command: `{_command(res)}`",  # as code: Markdown would set its "--" as a dash
    ]
    if res.get("note"):
        lines.append(f"note: {res['note']}")
    if m.get("load_average") and res.get("load_average_end"):
        lines.append(
            "load average (1/5/15 min) at start: "
            + "/".join(f"{v:.2f}" for v in m["load_average"])
            + f" on {m['cores']} cores; at the end: "
            + "/".join(f"{v:.2f}" for v in res["load_average_end"])
        )
    return "\n".join(lines)


def _command(res: dict[str, Any]) -> str:
    """The recorded command, its ``--note`` argument shortened to ``"…"`` (the note has a line of its own)."""
    cmd = str(res["command"])
    if res.get("note") and " --note " in cmd:
        cmd = cmd.split(" --note ", 1)[0] + ' --note "…"'
    return cmd.replace("`", "'")


def bound_text(res: dict[str, Any]) -> str:
    """The fused path's bound from the bytes read per step, and how much repeats of one job differed."""
    base_mb, ad_mb = res["sizes"]["bytes_base"] / 2**20, res["sizes"]["bytes_adapters"] / 2**20
    lines = [f"bound = {base_mb:.3g} MiB / ({base_mb:.3g} + {ad_mb:.3g}) MiB = {res['sizes']['bound']:.3f}"]
    spread = [(max(r["times"]) - min(r["times"])) / r["seconds"] for r in res["rows"] if len(r["times"]) > 1]
    if spread:
        lines.append(
            f"repeats of one job differed by up to {max(spread):.0%} of their median "
            f"(median spread {sorted(spread)[len(spread) // 2]:.0%}, over {len(spread)} rows with repeats)"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- tables
def table(res: dict[str, Any]):
    """The rows as a DataFrame, methods by their :data:`LABELS`, with a ``scenario`` column."""
    import pandas as pd

    df = pd.DataFrame(res["rows"])
    df["method"] = df["method"].map(LABELS)
    df["scenario"] = [f"batch {b}, {s}" for b, s in zip(df["batch"], df["settings"])]
    return df


def speed_table(res: dict[str, Any]):
    """Tokens per second: one row per method, one column per scenario."""
    return table(res).pivot_table(index="method", columns="scenario", values="tokens_per_s", sort=False).round(1)


def ratio_table(res: dict[str, Any]):
    """Speed relative to the base and to the bound, and the share of greedy tokens equal to the fused path's."""
    values = ["ratio_to_base", "ratio_to_bound", "same_tokens_as_fused"]
    return table(res).pivot_table(index="method", columns="scenario", values=values, sort=False).round(3)


def latency_table(res: dict[str, Any]):
    """Seconds to change a setting: clm's ``set_weights`` (alone and with the refresh) per model,
    then the alternatives (merge + restore, PEFT's scaling, PEFT cat's rebuild)."""
    import pandas as pd

    rows = []
    for name, lat in res.get("set_weights_latency", {}).items():
        rows.append((f"clm set_weights ({name})", lat["set_weights_s"]))
        rows.append((f"clm set + refresh ({name}, {lat['modules']} modules)", lat["set_and_refresh_s"]))
    rows += [(CHANGE_LABELS[k], v) for k, v in res.get("change_latency_s", {}).items()]
    return pd.DataFrame(rows, columns=["how", "seconds"])


def memory_table(res: dict[str, Any]):
    """Peak memory per method in MiB (a Series named "MiB"), or None when it was not measured."""
    import pandas as pd

    mem = res.get("peak_memory_mib")
    return pd.Series({LABELS[k]: v for k, v in mem.items()}, name="MiB") if mem else None


def held_ratios(res: dict[str, Any]) -> dict[int, float]:
    """Per batch size: the merged model's speed relative to the base with the merge held."""
    return {r["batch"]: r["ratio_to_base"] for r in res["rows"] if r["method"] == "merged-held"}


def merge_text(res: dict[str, Any]) -> str:
    """Per batch: a merged job's time, the generation inside the merge, the merge alone, and
    from how many new tokens the planner merges."""
    merge_s = res.get("change_latency_s", {}).get("merged")
    lines = []
    for r in res["rows"]:
        if r["method"] == "merged-held":
            job = next(j for j in res["rows"] if j["method"] == "merged" and j["batch"] == r["batch"])
            plan = res.get("planner", {}).get(str(r["batch"]), {})
            lines.append(
                f"batch {r['batch']}: merged job {job['seconds']:.2f} s ({job['ratio_to_base']:.2f}x the base), "
                f"generation inside the merge {r['seconds']:.2f} s ({r['ratio_to_base']:.2f}x the base); "
                f"merge + restore alone {merge_s:.2f} s; the planner merges jobs from "
                f"{plan.get('merges_from_new_tokens')} new tokens on"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------- targets
def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's four targets, each with the measured value and whether it is met.

    Shared settings count clm's planner choice (fused or merged) for that batch.
    """
    by = _by(res)
    big = max(r["batch"] for r in res["rows"])
    out = []

    def add(name, value, goal, ok):
        out.append(dict(target=name, measured=value, goal=goal, met=None if ok is None else bool(ok)))

    r = by.get(("fused", big, "distinct"))
    add(f"distinct settings, batch {big}: fused / bound", r and r["ratio_to_bound"], ">= 0.90", r and r["ratio_to_bound"] >= 0.9)
    tokens = res.get("config", {}).get("new_tokens")
    for n in sorted({r["batch"] for r in res["rows"]}):
        plan = res.get("planner", {}).get(str(n), {})
        mode = plan.get("mode", "fused")
        r = by.get((mode, n, "shared"))
        add(
            f"one shared setting, batch {n}, {tokens}-token jobs: clm ({mode}) / base",
            r and r["ratio_to_base"],
            ">= 0.95",
            r and r["ratio_to_base"] >= 0.95,
        )
        h = by.get(("merged-held", n, "shared"))
        if h:
            add(
                f"one shared setting, batch {n}, merge held (planned from {plan.get('merges_from_new_tokens')} "
                "new tokens): clm merged / base",
                h["ratio_to_base"],
                ">= 0.95",
                h["ratio_to_base"] >= 0.95,
            )
    for model, lat in res.get("set_weights_latency", {}).items():
        t = lat["set_and_refresh_s"]
        add(f"change a setting ({model}, {lat['modules']} modules), ms", t * 1e3, "< 1 ms", t < 1e-3)
    for kind in ("shared", "distinct"):
        f, p = by.get(("fused", big, kind)), by.get(("peft-multi", big, kind))
        v = f["tokens_per_s"] / p["tokens_per_s"] if f and p else None
        add(f"batch {big}, {kind}: fused / PEFT multi-adapter", v, ">= 2", None if v is None else v >= 2)
    return out


def targets_table(res: dict[str, Any]):
    """:func:`targets` as a DataFrame, the measured values rounded to 3 decimals, the goals as the
    book shows them (:func:`goal_text`)."""
    import pandas as pd

    tg = pd.DataFrame(targets(res))
    tg["measured"] = tg["measured"].astype(float).round(3)
    tg["goal"] = tg["goal"].map(goal_text)
    return tg


def planner_text(res: dict[str, Any]) -> str:
    """The machine and the merge planner's choice per batch size, with its reason."""
    return f"measured on {label(res['machine'])}; planner: " + "; ".join(
        f"batch {k}: {v['mode']} ({v['reason']})" for k, v in res["planner"].items()
    )


def metrics(res: dict[str, Any]) -> dict[str, Any]:
    """The key numbers of ``res`` as the chapter records them (``tokens_per_s`` etc. keyed
    ``"method|batch|settings"``)."""
    key = "{method}|{batch}|{settings}".format
    return dict(
        machine=label(res["machine"]),
        model=res["config"]["model"],
        new_tokens=res["config"]["new_tokens"],
        bound=res["sizes"]["bound"],
        tokens_per_s={key(**r): round(r["tokens_per_s"], 3) for r in res["rows"]},
        ratio_to_base={key(**r): r["ratio_to_base"] for r in res["rows"]},
        set_weights_s={k: v["set_weights_s"] for k, v in res.get("set_weights_latency", {}).items()},
        change_latency_s=res.get("change_latency_s", {}),
        targets={t["target"]: t["met"] for t in targets(res)},
        merged_held_ratio=held_ratios(res),
        merge_restore_s=res.get("change_latency_s", {}).get("merged"),
    )


# ---------------------------------------------------------------------- summary
def summary(res: dict[str, Any]) -> str:
    """What the run means, in Markdown: one bullet per target, written from the numbers of ``res``."""
    cfg = res["config"]
    lines = [
        f"Measured on {label(res['machine'])}: {cfg['model']} with {cfg['endpoints']} endpoints of rank "
        f"{cfg['rank']}, {cfg['new_tokens']} new tokens, medians of {cfg['repeats']} rounds "
        f"({cfg['slow_repeats']} for the paper's loop and DExperts).",
        "",
    ]
    for bullet in (_distinct_bullet, _shared_bullet, _change_bullet, _peft_bullet, _paper_bullet):
        text = bullet(res)
        if text:
            lines.append(text)
    return "\n".join(lines)


def _times(a: float, b: float) -> str:
    return f"{a / b:.2g}×"


def _verdict(oks: list) -> str:
    return "not measured" if not oks else "met" if all(oks) else "not met"


def _distinct_bullet(res: dict[str, Any]) -> str | None:
    """Distinct settings per row at the largest batch: fused against the bound, PEFT and DExperts."""
    by, cfg = _by(res), res["config"]
    big = max(r["batch"] for r in res["rows"])
    d = by.get(("fused", big, "distinct"))
    if not d:
        return None
    ok = {t["target"]: t["met"] for t in targets(res)}.get(f"distinct settings, batch {big}: fused / bound")
    fused = _tps(by, "fused", big, "distinct")
    return (
        f"* **Distinct settings on every row.** At batch {big} the fused path ran at {d['ratio_to_base']:.2f}× the "
        f"base model, {d['ratio_to_bound']:.2f}× the bound of {res['sizes']['bound']:.3f}: the target (≥ 90% of "
        f"the bound) is {'met' if ok else 'not met'}. PEFT has to run such a batch row by row: "
        f"{_times(fused, _tps(by, 'peft-multi', big, 'distinct'))} slower with its adapters "
        f"active, {_times(fused, _tps(by, 'peft-cat', big, 'distinct'))} with `cat`; "
        f"DExperts-style mixing ({2 * cfg['attributes'] + 1} forward passes per token) was "
        f"{_times(fused, _tps(by, 'dexperts', big, 'distinct'))} slower."
    )


def _shared_bullet(res: dict[str, Any]) -> str:
    """One shared setting: the planner's choice per batch, and what holding the merge buys."""
    by, cfg = _by(res), res["config"]
    shared = []
    for n in sorted({r["batch"] for r in res["rows"]}):
        mode = res.get("planner", {}).get(str(n), {}).get("mode", "fused")
        r = by.get((mode, n, "shared"))
        f, m = by.get(("fused", n, "shared")), by.get(("merged", n, "shared"))
        if r:
            shared.append(
                f"batch {n}: the planner chose {mode}, {r['ratio_to_base']:.2f}× the base"
                + (f" (fused {f['ratio_to_base']:.2f}×, merged {m['ratio_to_base']:.2f}×)" if f and m else "")
            )
    met = {t["target"]: t["met"] for t in targets(res)}
    ok_job = [v for k, v in met.items() if k.startswith("one shared setting") and "merge held" not in k]
    ok_held = [v for k, v in met.items() if k.startswith("one shared setting") and "merge held" in k]
    return (
        f"* **One shared setting** (target ≥ 0.95× the base: {_verdict(ok_job)} for single "
        f"{cfg['new_tokens']}-token jobs, {_verdict(ok_held)} with the merge held): "
        + "; ".join(shared)
        + "."
        + _held_clause(res)
    )


def _held_clause(res: dict[str, Any]) -> str:
    """The merge's one-off price and the merged model's speed with the merge held ('' if not run)."""
    merge_s, amortized = res.get("change_latency_s", {}).get("merged"), held_ratios(res)
    if merge_s is None or not amortized:
        return ""
    return (
        f" Merging restores the base's speed per step, but computing ΔW and restoring the weights took "
        f"{merge_s:.2f} s here, a one-off price inside a short job; with the merge held, the merged model ran at "
        + ", ".join(f"{v:.2f}× (batch {k})" for k, v in amortized.items())
        + " the base (measured), which is what a sweep with many batches at one setting gets inside one "
        "`im.merged(w)`; the planner merges single jobs from "
        + ", ".join(
            f"{res['planner'][str(k)].get('merges_from_new_tokens')} new tokens (batch {k})"
            for k in amortized
            if str(k) in res.get("planner", {})
        )
        + " on."
    )


def _change_bullet(res: dict[str, Any]) -> str | None:
    """How long a setting change took: clm's table rewrite against the alternatives' weight rewrites."""
    lat = res.get("set_weights_latency", {})
    if not lat:
        return None
    return (
        "* **Changing a setting** (target < 1 ms, independent of model size): `set_weights` took "
        + ", ".join(f"{v['set_weights_s'] * 1e6:.0f} µs on {k}" for k, v in lat.items())
        + "; with the refresh of every wrapped module "
        + ", ".join(f"{v['set_and_refresh_s'] * 1e3:.2f} ms ({v['modules']} modules, {k})" for k, v in lat.items())
        + ". The alternatives rewrite weights: "
        + ", ".join(f"{LABELS.get(k, k)} {v:.3g} s" for k, v in res.get("change_latency_s", {}).items())
        + "."
    )


def _peft_bullet(res: dict[str, Any]) -> str:
    """Fused against PEFT with every adapter active at the largest batch, and the base's ceiling."""
    by, cfg = _by(res), res["config"]
    big = max(r["batch"] for r in res["rows"])
    ratios = {k: _tps(by, "fused", big, k) / _tps(by, "peft-multi", big, k) for k in ("shared", "distinct")}
    return (
        f"* **Against PEFT with the {cfg['endpoints']} adapters active, at batch {big}** (target ≥ 2×): "
        f"{ratios['distinct']:.2f}× with distinct settings, {ratios['shared']:.2f}× with one shared setting. "
        "With one shared setting PEFT runs one batch too, so the gap is only the cost of its many small "
        "products against our two larger ones: small where compute dominates (a CPU), larger where each "
        "small product costs a kernel launch (a GPU). No method beats the base model, so on this machine "
        f"no method could be more than {_tps(by, 'base', big, 'shared') / _tps(by, 'peft-multi', big, 'shared'):.2f}× "
        "PEFT's speed with one shared setting (the base's speed over PEFT's)."
    )


def _paper_bullet(res: dict[str, Any]) -> str | None:
    """The paper's released loop (no KV cache) against the base ('' if it was not run)."""
    by, cfg = _by(res), res["config"]
    big, small = max(r["batch"] for r in res["rows"]), min(r["batch"] for r in res["rows"])
    if ("paper", small, "shared") not in by:
        return None
    return (
        f"* **The paper's released loop**, a full forward pass per new token without a KV cache, ran at "
        f"{by[('paper', small, 'shared')]['ratio_to_base']:.2f}× the base at batch {small}"
        + (
            f" and {by[('paper', big, 'shared')]['ratio_to_base']:.2f}× at batch {big}"
            if ("paper", big, "shared") in by
            else ""
        )
        + f" for only {cfg['new_tokens']} new tokens; its cost grows with the square of the text length."
    )


# ---------------------------------------------------------------------- control (python -m clm bench control)
def control_table(rec: dict[str, Any] | None):
    """The recorded control measurement (a bench JSON's ``"control"``) as rows of what, measured,
    goal and met; None when nothing was recorded."""
    import pandas as pd

    if not rec:
        return None
    sp, sv = rec.get("schedule_speed") or {}, rec.get("solve_time") or {}
    rows = []
    if sp:
        n, t = sp["batch"], sp["new_tokens"]
        rows += [
            (f"fixed setting, batch {n}, {t} tokens: tokens/s", sp["fixed_tokens_per_s"], "", None),
            (f"schedule (α moves every token), batch {n}: tokens/s", sp["schedule_tokens_per_s"], "", None),
            ("schedule / fixed", sp["ratio"], sp["goal"], sp["met"]),
        ]
    for r in sv.get("rows", []):
        what = ", ".join(f"{a} = {v:g}" for a, v in r["target"].items())
        rows.append((f"solve {r['kind']} ({what}): ms", r["median_ms"], sv["goal"], r["met"]))
    table = pd.DataFrame(rows, columns=["what", "measured", "goal", "met"])
    table["goal"] = table["goal"].map(goal_text)
    return table


def goal_text(goal: str | None) -> str | None:
    """A recorded goal (">= 0.95", "< 10 ms") as the book shows it: ≥ and no line break inside."""
    return goal if not goal else goal.replace(">=", "≥").replace("<=", "≤").replace(" ", "\u00a0")


def control_text(rec: dict[str, Any] | None) -> str:
    """One line: the schedule's speed against the fixed setting and the solve's time, with where
    and when they were measured, or that nothing was measured."""
    if not rec or not (rec.get("schedule_speed") or rec.get("solve_time")):
        return "Schedule speed and solve time: not measured (`python -m clm bench control`)"
    parts = []
    sp, sv = rec.get("schedule_speed"), rec.get("solve_time")
    if sp:
        parts.append(
            f"With a schedule that moves α on every token, batch {sp['batch']} decoded "
            f"{sp['schedule_tokens_per_s']:.1f} tokens/s against {sp['fixed_tokens_per_s']:.1f} at the fixed "
            f"setting, {sp['ratio']:.2f}× (goal {goal_text(sp['goal'])}: {'met' if sp['met'] else 'not met'})"
        )
    if sv:
        kinds = ", ".join(f"{r['median_ms']:.2g} ms {r['kind']}" for r in sv["rows"])
        verdict = "met" if sv["met"] else "not met"
        parts.append(f"{'s' if sp else 'S'}olving for a score took {kinds} (goal {goal_text(sv['goal'])}: {verdict})")
    where = label(rec["machine"]) if rec.get("machine") else "an unrecorded machine"
    return "; ".join(parts) + f"; measured on {where}, {rec.get('date', 'undated')}"
