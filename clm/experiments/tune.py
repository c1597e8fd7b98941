"""Choosing training hyper-parameters without touching the evaluation data.

Two signals decide between candidate training configs, and neither is an evaluation file:

* the **held-out loss** of each pole (the ``eval_fraction`` of its *training* file that
  :func:`clm.train.trainer.train_endpoints` holds out), against the base model's loss on the same blocks
  (the evaluation at step 0);
* **fluency on a development text**: perplexity at α = 0 and α = 1 on the first 4,096 tokens of
  ``attributes/simplicity-levels/complex.train.jsonl`` (OneStopEnglish news, a corpus none of
  the five attributes trains on), against the base model's;
* the **strength of control on development prompts**: the mean scorer output at α = 0 and α = 1
  on the *last* ``n`` WritingPrompts prompts. The book evaluates on the *first* ``n_prompts``
  (100 at the ``cpu`` preset), so with ``n ≤ 900`` the two sets are disjoint at the ``cpu`` scale.
  (At the ``gpu`` scale, 1,000 of the file's 1,002 prompts are evaluation prompts: tune there on
  another prompt file.) WikiText-2 is never used: it is the fluency *evaluation*.

::

    python -m clm tune --run-dir runs/tune-a --name a --attributes sentiment --out selection.json

appends candidate ``a`` (its config, per-pole held-out losses, dev means per α) to
``selection.json``; rerunning a name replaces its entry. The reference run's record ships as
``clm/assets/endpoints/<model>/selection.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clm.data import DEV_PROMPTS, dev_prompts
from clm.train.logs import held_out_losses


def dev_control(
    im: Any,
    attributes: Sequence[str],
    prompts: Sequence[str],
    scorers: dict[str, Any],
    *,
    alphas: Sequence[float] = (0.0, 1.0),
    samples: int = 2,
    seed: int = 0,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    out_dir: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """Mean score of each attribute's own scorer at each α (and for the base model) on ``prompts``.

    Returns ``{attribute: {"base": m, "by_alpha": {α: m}, "empty_by_alpha": {α: fraction of empty
    continuations}, "range": m(1) - m(0)}}`` (empty continuations have no score)."""
    from clm.experiments import designs, sweep

    settings = designs.custom(["base"], design="base")
    for a in attributes:
        settings += designs.single_attribute(a, alphas)
    out = None if out_dir is None else Path(out_dir) / "dev_control.parquet"
    table = sweep.run_sweep(
        im,
        settings,
        list(prompts),
        {a: scorers[a] for a in attributes},
        out=out,
        fluency=None,
        n_samples=samples,
        seeds=(seed,),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    res: dict[str, dict[str, Any]] = {}
    base = table[table.design == "base"]
    for a in attributes:
        rows = table[(table.design == "single") & (table.target == a)]
        by_alpha = {float(k): float(v) for k, v in rows.groupby(f"alpha_{a}")[f"score_{a}"].mean().items()}
        empty = (rows.continuation.fillna("").str.strip() == "").groupby(rows[f"alpha_{a}"]).mean()
        res[a] = dict(
            base=float(base[f"score_{a}"].mean()),
            by_alpha=by_alpha,
            empty_by_alpha={float(k): float(v) for k, v in empty.items()},
            range=by_alpha.get(1.0, float("nan")) - by_alpha.get(0.0, float("nan")),
        )
    return res


DEV_TEXT = "attributes/simplicity-levels/complex.train.jsonl"


def dev_fluency(
    im: Any,
    attributes: Sequence[str],
    path: str | os.PathLike,
    *,
    alphas: Sequence[float] = (0.0, 1.0),
    max_tokens: int = 4096,
) -> dict[str, Any]:
    """Perplexity on the development text (see the module docstring) for the base model and each
    attribute at each α: ``{"base": p, attribute: {α: p}}`` (window 1024, stride 512)."""
    from clm.core.weights import Weights
    from clm.data import read_texts
    from clm.eval.perplexity import sliding_window_perplexity

    text = "\n".join(read_texts(path))

    def ppl(w: Weights) -> float:
        kw = dict(text=text, weights=w, window=1024, stride=512, max_tokens=max_tokens, progress=False)
        return float(sliding_window_perplexity(im, **kw).ppl)

    out: dict[str, Any] = {"base": ppl(Weights.base())}
    for a in attributes:
        out[a] = {float(x): ppl(Weights({a: x}, extrapolate=not 0 <= x <= 1)) for x in alphas}
    return out


def add_candidate(
    run_dir: str | os.PathLike,
    name: str,
    attributes: Sequence[str],
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    n_prompts: int = DEV_PROMPTS,
    samples: int = 2,
    note: str = "",
    command: str | None = None,
) -> dict[str, Any]:
    """Measure candidate ``name`` (a finished training run in ``run_dir``) and add it to the JSON
    record ``out`` (rerunning a name replaces its entry).

    Args:
        run_dir: a finished ``python -m clm train`` run: its endpoints and training logs.
        name: the candidate's name in the record.
        attributes: the attributes to measure.
        out: the record (created if missing).
        data_dir: the shared data (default: :func:`clm.paths.default_data_dir`).
        n_prompts, samples: dev prompts (the file's last ones) and continuations per prompt.
        note, command: why this candidate, and the command that measured it (both recorded).

    Returns:
        The candidate's entry (``held_out``, ``dev_control``, ``dev_fluency``, ``config``, ...).
    """
    from clm.core.endpoints import Endpoints
    from clm.core.engine import InterpolatedModel
    from clm.core.models import load_base
    from clm.eval.scoring import load_scorers
    from clm.io import atomic_write_json
    from clm.paths import default_data_dir

    data_dir = Path(data_dir) if data_dir else default_data_dir()
    prompts = dev_prompts(data_dir / "prompts" / "writing_prompts.jsonl", n_prompts)
    run, attributes = Path(run_dir), list(attributes)
    losses = held_out_losses(run, attributes)
    ends = Endpoints.load(run / "endpoints")
    im = InterpolatedModel(*load_base(ends.base_id), ends)
    control = dev_control(im, attributes, prompts, load_scorers(attributes), samples=samples, out_dir=run / "tune")
    fluency = dev_fluency(im, attributes, data_dir / DEV_TEXT)
    configs = sorted((run / "train").glob("*/*/adapter/clm_adapter.json"))
    config = json.loads(configs[0].read_text())["config"] if configs else None
    out = Path(out)
    record = json.loads(out.read_text()) if out.is_file() else {"candidates": {}}
    entry = dict(
        note=note,
        command=command,
        run_dir=str(run),
        dev_prompts=f"last {len(prompts)} of prompts/writing_prompts.jsonl, {samples} samples, seed 0",
        held_out=losses,
        dev_control=control,
        dev_fluency=fluency,
        config={k: v for k, v in (config or {}).items() if k != "attributes"},
    )
    record["candidates"][name] = entry
    atomic_write_json(out, record)
    return entry
