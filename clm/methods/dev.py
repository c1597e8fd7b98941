"""Choosing each method's hyper-parameters on development prompts, by rules written down first.

The development prompts are the **last** ``n`` WritingPrompts prompts (:func:`clm.data.dev_prompts`); the
book evaluates on the first ones, so they never meet. Each ``choose_*`` returns a JSON-ready
record (the rule in words, every candidate's numbers, the choice) for the chapter to ship.

Rules:

* **Prompting wording** (:func:`choose_wording`): the candidate that moves the mean dev score most
  between the extreme levels, range = mean(+2) − mean(−2) (only those two levels are generated:
  level 0 is the plain prompt for every wording); ties go to the earlier candidate.
* **Steering layer and c grid** (:func:`choose_steering`): for each candidate layer, c_max is the
  largest probe magnitude whose continuations, at +c and at −c, stay within ``max_ratio`` of the
  unsteered continuations' perplexity under the base (geometric means); the layer is the one with
  the largest dev range mean(+c_max) − mean(−c_max) (ties: the earlier layer), and the grid is
  c_max × (−1, −½, 0, ½, 1).

With ``out`` / ``out_dir``, every candidate's continuations go through
:func:`clm.experiments.method_sweep.run_method_sweep` into a keyed table, so a killed selection
resumes where it stopped and a rerun generates nothing; the record is computed from the tables.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clm.methods.base import Method
from clm.stats import spearman

STEERING_GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)


def _score(scorer: Any, texts: list[str]) -> np.ndarray:
    fn = scorer.score if hasattr(scorer, "score") else scorer
    return np.asarray(fn(texts), dtype=float).reshape(-1)


def base_fluency(model: Any, tokenizer: Any = None) -> Callable[[list[str], list[list[int]]], np.ndarray]:
    """Perplexity of each continuation under the base model, given its (plain) prompt."""
    from clm.eval.perplexity import continuation_perplexity

    def fluency(prompts: list[str], token_ids: list[list[int]]) -> np.ndarray:
        return continuation_perplexity(model, prompts, token_ids, tokenizer=tokenizer, progress=False)

    return fluency


def dev_response(
    method: Method,
    prompts: Sequence[str],
    scorer: Any,
    strengths: Sequence[float] | None = None,
    *,
    samples: int = 1,
    seed: int = 0,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    fluency: Callable[[list[str], list[list[int]]], Any] | str | None = None,
    out: Any = None,
    progress: bool | None = False,
) -> dict[str, Any]:
    """Mean score (and log-perplexity) per strength on ``prompts``; every strength in one run.

    With ``out`` (a table path) the continuations are generated, scored and kept by
    :func:`~clm.experiments.method_sweep.run_method_sweep` (resumable, keyed; ``fluency`` may be
    ``"base"``), else in memory.

    Returns ``{"score": {s: mean}, "log_ppl": {s: mean log ppl} (if fluency), "empty": {s:
    fraction of empty continuations}, "spearman": ρ(strength, mean score), "range": mean at the
    top strength − mean at the bottom one}``.
    """
    grid = list(method.dial.grid if strengths is None else strengths)
    if out is not None:
        return _response_from_table(method, grid, prompts, scorer, samples, seed, max_new_tokens, batch_size,
                                    fluency, out, progress)  # fmt: skip
    if isinstance(fluency, str):
        from clm.errors import ConfigError

        raise ConfigError(f"fluency {fluency!r} needs a table (out=...); in memory give a callable")
    rows_p = [p for s in grid for p in prompts]
    rows_s = [s for s in grid for _ in prompts]
    gens = method.generate(
        rows_p,
        rows_s,
        max_new_tokens=max_new_tokens,
        do_sample=True,
        seed=seed,
        num_samples=samples,
        batch_size=batch_size,
    )
    s = np.array([g.strength for g in gens])
    scores = _score(scorer, [g.text for g in gens])
    empty = np.array([not g.text.strip() for g in gens])
    out: dict[str, Any] = {
        "score": {float(v): float(np.nanmean(scores[s == v])) for v in grid},
        "empty": {float(v): float(empty[s == v].mean()) for v in grid},
    }
    if fluency is not None:
        ppl = np.asarray(fluency([g.prompt for g in gens], [g.token_ids for g in gens]), dtype=float)
        out["log_ppl"] = {float(v): float(np.nanmean(np.log(ppl[s == v]))) for v in grid}
    return _summarise(out, grid)


def _summarise(out: dict[str, Any], grid: Sequence[float]) -> dict[str, Any]:
    means = [out["score"][float(v)] for v in grid]
    out["spearman"] = spearman(grid, means)
    out["range"] = means[-1] - means[0]
    return out


def _response_from_table(
    method: Method, grid: list[float], prompts: Sequence[str], scorer: Any, samples: int, seed: int,
    max_new_tokens: int, batch_size: int, fluency: Any, out: Any, progress: bool | None,
) -> dict[str, Any]:  # fmt: skip
    from clm.experiments.method_sweep import run_method_sweep

    a = method.attribute
    t = run_method_sweep(
        method, grid, list(prompts), {a: scorer}, out=out, n_samples=samples, seeds=(seed,),
        max_new_tokens=max_new_tokens, batch_size=batch_size, fluency=fluency, progress=progress,
    )  # fmt: skip
    s = t["strength"].to_numpy(float)
    scores = t[f"score_{a}"].to_numpy(float)
    empty = np.array([not (isinstance(c, str) and c.strip()) for c in t["continuation"]])
    res: dict[str, Any] = {
        "score": {float(v): float(np.nanmean(scores[s == v])) for v in grid},
        "empty": {float(v): float(empty[s == v].mean()) for v in grid},
    }
    if fluency is not None:
        ppl = t["ppl"].to_numpy(float)
        res["log_ppl"] = {float(v): float(np.nanmean(np.log(ppl[s == v]))) for v in grid}
    return _summarise(res, grid)


def prompts_record(prompts: Sequence[str], source: str = "the last prompts of writing_prompts.jsonl") -> dict[str, Any]:
    return {"n": len(prompts), "source": source, "sha1": hashlib.sha1("\n".join(prompts).encode()).hexdigest()}


def choose_wording(
    model: Any,
    tokenizer: Any,
    attribute: str,
    prompts: Sequence[str],
    scorer: Any,
    candidates: Sequence[str] | None = None,
    out_dir: Any = None,
    **kw: Any,
) -> dict[str, Any]:
    """Pick the prompting wording for ``attribute`` on dev prompts (rule: the module docstring).

    Args:
        model, tokenizer: the instruction-tuned base (or an InterpolatedModel, run at the base).
        candidates: names in :data:`clm.methods.prompting.WORDINGS` (default: all).
        out_dir: keep each candidate's continuations in ``<out_dir>/wording_<attribute>_<name>.parquet``.
        kw: for :func:`dev_response` (samples, seed, max_new_tokens, batch_size, progress).

    Returns:
        ``{"rule", "prompts", "template", "candidates": {name: response}, "chosen": name}``.
    """
    from clm.methods.prompting import WORDINGS, PromptingMethod

    names = list(WORDINGS) if candidates is None else list(candidates)
    res, template = {}, None
    for name in names:
        method = PromptingMethod(model, tokenizer, attribute, name)
        template = method.template
        out = None if out_dir is None else Path(out_dir) / f"wording_{attribute}_{name}.parquet"
        res[name] = dev_response(method, prompts, scorer, [-2.0, 2.0], out=out, **kw)

    def key(name: str) -> float:
        r = res[name]["range"]
        return -math.inf if math.isnan(r) else r

    chosen = max(names, key=key)  # max keeps the first of equal keys
    rule = "the largest range mean(+2) - mean(-2) of the dev score, then the earlier candidate"
    return {"rule": rule, "prompts": prompts_record(prompts), "template": template, "candidates": res, "chosen": chosen}


def choose_steering(
    model: Any,
    tokenizer: Any,
    vectors: Mapping[int, Any],
    prompts: Sequence[str],
    scorer: Any,
    fluency: Callable[[list[str], list[list[int]]], Any],
    *,
    probe: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    max_ratio: float = 1.5,
    positions: str = "all",
    out_dir: Any = None,
    **kw: Any,
) -> dict[str, Any]:
    """Pick the steering layer and c grid on dev prompts (rule: the module docstring).

    Args:
        vectors: layer -> SteeringVector (:func:`clm.methods.steering.mean_difference`).
        fluency: ``(prompts, token_ids) -> perplexities`` under the base (:func:`base_fluency`).
        probe: the magnitudes of c tried, each at + and −, in one batch per layer (per-row c).
        max_ratio: the perplexity ratio to the unsteered continuations a setting may reach.
        out_dir: keep each layer's continuations in ``<out_dir>/steering_<attribute>_L<layer>.parquet``.

    Returns:
        ``{"rule", "prompts", "layers": {L: {"response", "ratio": {c: r}, "c_max", "range"}},
        "layer", "c_max", "grid"}``; ``layer`` is None if no probe stays fluent.
    """
    from clm.methods.steering import SteeringMethod

    probe = sorted(float(c) for c in probe)
    strengths = sorted({0.0, *probe, *(-c for c in probe)})
    layers: dict[int, dict[str, Any]] = {}
    for L, vec in vectors.items():
        method = SteeringMethod(model, tokenizer, vec, grid=strengths, positions=positions)
        out = None if out_dir is None else Path(out_dir) / f"steering_{vec.attribute}_L{int(L)}.parquet"
        r = dev_response(method, prompts, scorer, strengths, fluency=fluency, out=out, **kw)
        lp = r["log_ppl"]
        ratio = {c: math.exp(max(lp[c], lp[-c]) - lp[0.0]) for c in probe}
        fluent = [c for c in probe if ratio[c] <= max_ratio]
        c_max = max(fluent) if fluent else None
        rng = None if c_max is None else r["score"][c_max] - r["score"][-c_max]
        layers[int(L)] = {"response": r, "ratio": ratio, "c_max": c_max, "range": rng}
    ok = [L for L in layers if layers[L]["c_max"] is not None]
    best = max(ok, key=lambda L: layers[L]["range"]) if ok else None
    c_max = None if best is None else layers[best]["c_max"]
    rule = (
        f"per layer, c_max = the largest probe |c| whose continuations at +c and -c stay within {max_ratio}x the "
        "unsteered ones' base perplexity (geometric means); the layer with the largest range mean(+c_max) - mean(-c_max) "
        "(ties: the earlier layer); grid = c_max x (-1, -1/2, 0, 1/2, 1)"
    )
    grid = None if c_max is None else [round(c_max * g, 6) for g in STEERING_GRID]
    return {
        "rule": rule,
        "prompts": prompts_record(prompts),
        "positions": positions,
        "probe": probe,
        "max_ratio": max_ratio,
        "layers": layers,
        "layer": best,
        "c_max": c_max,
        "grid": grid,
    }
