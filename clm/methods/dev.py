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

With a ``respond`` that runs :func:`clm.experiments.method_sweep.run_method_sweep` (as
:mod:`clm.experiments.compare_runs` does), every candidate's continuations go into a keyed table,
so a killed selection resumes where it stopped and a rerun generates nothing; the record is
computed from the tables (:func:`response_from_table`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
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
    fluency: Callable[[list[str], list[list[int]]], Any] | None = None,
) -> dict[str, Any]:
    """Mean score (and log-perplexity) per strength on ``prompts``; every strength in one run, in memory
    (:func:`response_from_table` makes the same record from a keyed sweep table).

    Returns ``{"score": {s: mean}, "log_ppl": {s: mean log ppl} (if fluency), "empty": {s:
    fraction of empty continuations}, "spearman": ρ(strength, mean score), "range": mean at the
    top strength − mean at the bottom one}``.
    """
    grid = list(method.dial.grid if strengths is None else strengths)
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


def response_from_table(table: Any, attribute: str, grid: Sequence[float]) -> dict[str, Any]:
    """:func:`dev_response`'s record from a sweep table of one method
    (:func:`clm.experiments.method_sweep.run_method_sweep`): ``score_<attribute>`` per strength, and
    ``log_ppl`` where the table has ``ppl``."""
    s = table["strength"].to_numpy(float)
    scores = table[f"score_{attribute}"].to_numpy(float)
    empty = np.array([not (isinstance(c, str) and c.strip()) for c in table["continuation"]])
    res: dict[str, Any] = {
        "score": {float(v): float(np.nanmean(scores[s == v])) for v in grid},
        "empty": {float(v): float(empty[s == v].mean()) for v in grid},
    }
    if "ppl" in table.columns:
        ppl = table["ppl"].to_numpy(float)
        res["log_ppl"] = {float(v): float(np.nanmean(np.log(ppl[s == v]))) for v in grid}
    return _summarise(res, grid)


#: ``respond(method, strengths, fluency) -> record``: how a choice gets each candidate's dev
#: response (default :func:`dev_response` in memory; :mod:`clm.experiments.compare_runs` passes
#: one that keeps every candidate's continuations in a keyed table).
Respond = Callable[[Method, list[float], Any], dict[str, Any]]


def prompts_record(prompts: Sequence[str], source: str = "the last prompts of writing_prompts.jsonl") -> dict[str, Any]:
    return {"n": len(prompts), "source": source, "sha1": hashlib.sha1("\n".join(prompts).encode()).hexdigest()}


def choose_wording(
    model: Any,
    tokenizer: Any,
    attribute: str,
    prompts: Sequence[str],
    scorer: Any,
    candidates: Sequence[str] | None = None,
    respond: Respond | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """Pick the prompting wording for ``attribute`` on dev prompts (rule: the module docstring).

    Args:
        model, tokenizer: the instruction-tuned base (or an InterpolatedModel, run at the base).
        candidates: names in :data:`clm.methods.prompting.WORDINGS` (default: all).
        respond: how each candidate's response is obtained (:data:`Respond`; default in memory).
        kw: for :func:`dev_response` (samples, seed, max_new_tokens, batch_size).

    Returns:
        ``{"rule", "prompts", "template", "candidates": {name: response}, "chosen": name}``.
    """
    from clm.methods.prompting import WORDINGS, PromptingMethod

    names = list(WORDINGS) if candidates is None else list(candidates)
    res, template = {}, None
    for name in names:
        method = PromptingMethod(model, tokenizer, attribute, name)
        template = method.template
        levels = [-2.0, 2.0]
        res[name] = respond(method, levels, None) if respond else dev_response(method, prompts, scorer, levels, **kw)

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
    respond: Respond | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """Pick the steering layer and c grid on dev prompts (rule: the module docstring).

    Args:
        vectors: layer -> SteeringVector (:func:`clm.methods.steering.mean_difference`).
        fluency: ``(prompts, token_ids) -> perplexities`` under the base (:func:`base_fluency`).
        probe: the magnitudes of c tried, each at + and −, in one batch per layer (per-row c).
        max_ratio: the perplexity ratio to the unsteered continuations a setting may reach.
        respond: how each layer's response is obtained (:data:`Respond`; default in memory).

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
        if respond:
            r = respond(method, strengths, fluency)
        else:
            r = dev_response(method, prompts, scorer, strengths, fluency=fluency, **kw)
        layers[int(L)] = _layer_record(r, probe, max_ratio)
    ok = [L for L in layers if layers[L]["c_max"] is not None]
    best = max(ok, key=lambda L: layers[L]["range"]) if ok else None
    c_max = None if best is None else layers[best]["c_max"]
    rule = (
        f"per layer, c_max = the largest probe |c| whose continuations at +c and -c stay within {max_ratio}x the "
        "unsteered ones' base perplexity (geometric means); the layer with the largest range mean(+c_max) - mean(-c_max) "
        "(ties: the earlier layer); grid = c_max x (-1, -1/2, 0, 1/2, 1)"
    )
    grid = None if c_max is None else [round(c_max * g, 6) for g in STEERING_GRID]
    return {"rule": rule, "prompts": prompts_record(prompts), "positions": positions, "probe": probe,
            "max_ratio": max_ratio, "layers": layers, "layer": best, "c_max": c_max, "grid": grid}  # fmt: skip


def _layer_record(r: dict[str, Any], probe: Sequence[float], max_ratio: float) -> dict[str, Any]:
    """One layer's dev response, with each probe's perplexity ratio, its largest fluent c and that c's range."""
    lp = r["log_ppl"]
    ratio = {c: math.exp(max(lp[c], lp[-c]) - lp[0.0]) for c in probe}
    fluent = [c for c in probe if ratio[c] <= max_ratio]
    c_max = max(fluent) if fluent else None
    rng = None if c_max is None else r["score"][c_max] - r["score"][-c_max]
    return {"response": r, "ratio": ratio, "c_max": c_max, "range": rng}
