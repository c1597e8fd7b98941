"""Train the endpoints or load what exists, and read the records that travel with them.

    ends, source = train_or_load(cfg, run_dir, run_dir / "endpoints", ["sentiment"], shipped=...)
    sel = read_selection(ends.path)                # selection.json of ``python -m clm tune``, or None
    selection_table(sel)                           # one row per candidate and attribute

A reader never retrains for hours to turn a dial: endpoints already in the run dir are used,
else (when allowed) the ones shipped for the base model, and only then is anything trained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clm.core.endpoints import Endpoints
from clm.train.config import TrainConfig
from clm.train.trainer import train_endpoints


def train_or_load(
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    endpoints_dir: str | os.PathLike,
    attributes: list[str],
    reuse: bool = True,
    shipped: str | os.PathLike | None = None,
) -> tuple[Endpoints, str]:
    """Endpoints holding ``attributes``, and where they came from.

    Args:
        cfg: the training config, used only when something is trained.
        run_dir: the run directory (:func:`clm.train.trainer.train_endpoints`).
        endpoints_dir: the run's endpoints directory.
        attributes: the attributes needed.
        reuse: use the ``shipped`` endpoints when the run's endpoints directory has none.
        shipped: the endpoints shipped for the base model (e.g. ``clm/assets/endpoints/<model>``).

    Returns:
        (endpoints, source): source is ``"run dir"`` when ``endpoints_dir`` holds every attribute,
        ``"shipped"`` when ``reuse`` is on, ``endpoints_dir`` holds none and ``shipped`` holds every
        attribute (used in place), else ``"trained"`` (the missing attributes are trained into
        ``endpoints_dir``; a rerun skips finished poles and resumes unfinished ones).
    """
    endpoints_dir = Path(endpoints_dir)
    have = Endpoints.load(endpoints_dir).attributes if endpoints_dir.exists() else []
    if all(a in have for a in attributes):
        return Endpoints.load(endpoints_dir), "run dir"
    if (
        reuse
        and not have
        and shipped is not None
        and (Path(shipped) / "manifest.json").is_file()
        and set(attributes) <= set(Endpoints.load(shipped).attributes)
    ):
        return Endpoints.load(shipped), "shipped"
    train_endpoints(cfg, run_dir, endpoints_dir, attributes=attributes, progress=False)
    return Endpoints.load(endpoints_dir), "trained"


# ---------------------------------------------------------------------- selection.json
def read_selection(endpoints_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``selection.json`` beside a set of endpoints (the candidates ``clm tune`` tried), or None."""
    path = Path(endpoints_dir) / "selection.json"
    return json.loads(path.read_text()) if path.is_file() else None


def selection_table(sel: dict[str, Any]):
    """One row per candidate and attribute: its config, held-out loss, share of empty
    continuations, development scores at α = 0 and 1, their range and the perplexity ratio."""
    import pandas as pd

    rows = []
    for cand, c in sel["candidates"].items():
        for attr, ctl in c["dev_control"].items():
            fl = c.get("dev_fluency", {})
            rows.append(
                {
                    "candidate": cand,
                    "attribute": attr,
                    "lr": f"{c['config'].get('learning_rate'):g}",
                    "separator": repr(c["config"].get("separator", "eos")),
                    "held-out loss (mean of poles)": sum(v["final_loss"] for v in c["held_out"][attr].values()) / 2,
                    "empty continuations α=0/1": "/".join(f"{v:.0%}" for v in ctl.get("empty_by_alpha", {}).values()),
                    "dev score α=0": ctl["by_alpha"]["0.0"],
                    "dev score α=1": ctl["by_alpha"]["1.0"],
                    "dev range": ctl["range"],
                    "dev ppl / base": max(fl[attr].values()) / fl["base"] if attr in fl else float("nan"),
                }
            )
    return pd.DataFrame(rows).set_index("candidate")


def selection_text(sel: dict[str, Any]) -> str:
    """The selection's rule and choice, then each revision's reason, rule and choice."""
    lines = [f"rule: {sel.get('rule', '')}\nchosen: {sel.get('choice')}: {sel.get('reason', '')}"]
    for rev in sel.get("revisions", []):
        lines.append(
            f"\nrevisited, {rev['attribute']}: {rev['why']}\nrule: {rev['rule']}\nchosen: {rev['choice']}: {rev['reason']}"
        )
    return "\n".join(lines)


def revision_numbers(sel: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per revisited attribute: the replaced and the chosen candidate's development range and
    perplexity ratio, with the test numbers that prompted the revision ([] without a selection)."""
    out = []
    for rev in sel.get("revisions", []) if sel else []:
        dev = {}
        for cand in (rev["replaced"], rev["choice"]):
            c = sel["candidates"][cand]
            fl = c["dev_fluency"]
            dev[cand] = {
                "range": c["dev_control"][rev["attribute"]]["range"],
                "ppl_ratio": max(fl[rev["attribute"]].values()) / fl["base"],
            }
        out.append({**{k: rev[k] for k in ("attribute", "replaced", "choice", "test_before")}, "dev": dev})
    return out
