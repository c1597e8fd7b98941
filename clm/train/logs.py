"""Read the training logs back: per pole, the loss per step and the held-out losses.

:func:`clm.train.trainer.train_pole` writes ``<run_dir>/train/<attribute>/<pole>/log.json`` and
copies the same log into each adapter's ``clm_adapter.json``, so both a run dir and an endpoints
dir (the shipped ones included) can be read. The figure is :func:`clm.plots.loss_curves`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clm.errors import ClmError


def read_logs(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every pole's training log: ``<path>/train/*/*/log.json`` for a run dir, or the ``log`` in
    each adapter's ``clm_adapter.json`` for an endpoints dir (shipped endpoints carry theirs)."""
    p = Path(path)
    logs = [json.loads(f.read_text()) for f in sorted(p.glob("train/*/*/log.json"))]
    if not logs:
        provs = [json.loads(f.read_text()) for f in sorted(p.glob("*/*/clm_adapter.json"))]
        logs = [d for d in provs if isinstance(d.get("log"), list)]
    return logs


def loss_table(path: str | os.PathLike):
    """A tidy table of the training logs: attribute, pole (low/high), pole_name, step, split, loss."""
    import pandas as pd

    cols = ["attribute", "pole", "pole_name", "step", "split", "loss"]
    rows = []
    for log in read_logs(path):
        for e in log["log"]:
            for split, key in (("train", "loss"), ("eval", "eval_loss")):
                if key in e:
                    rows.append(
                        dict(zip(cols, (log["attribute"], log["pole"], log["pole_name"], e["step"], split, e[key])))
                    )
    return pd.DataFrame(rows, columns=cols)


def held_out_table(losses, attributes: Sequence[str]):
    """Per attribute and pole name: the first held-out loss (the base model's, at step 0) and the
    last (the trained adapter's), from a :func:`loss_table`."""
    import pandas as pd

    ev = losses[(losses.split == "eval") & losses.attribute.isin(attributes)].sort_values("step")
    first = ev.groupby(["attribute", "pole_name"]).loss.first()
    last = ev.groupby(["attribute", "pole_name"]).loss.last()
    return pd.DataFrame({"held-out loss, base (step 0)": first, "held-out loss, trained": last})


def held_out_losses(path: str | os.PathLike, attributes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per attribute and pole: the base model's held-out loss (step 0), the final one, the steps
    and the training throughput, from the training logs of a run dir or an endpoints dir
    (:func:`read_logs`)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in read_logs(path):
        attr = rec["attribute"]
        if attributes is not None and attr not in attributes:
            continue
        evals = [e for e in rec["log"] if "eval_loss" in e]
        out.setdefault(attr, {})[rec["pole_name"]] = dict(
            base_loss=evals[0]["eval_loss"] if evals and evals[0].get("step", 0) == 0 else None,
            final_loss=rec["final_eval_loss"],
            eval_curve=[(e.get("step"), round(e["eval_loss"], 4)) for e in evals],
            steps=rec["steps"],
            tokens_per_second=rec.get("tokens_per_second"),
        )
    if not out:
        raise ClmError(f"no finished poles under {str(path)!r}")
    return out
