"""Recalibrating a controller on the user's own prompts (:meth:`Controller.calibrate`).

Response curves shift with the prompt distribution (about 0.06 on the shipped endpoints between
the book's prompts and other story prompts) while their shape changes less. A calibration
generates at the base model and at a few α per attribute on the new prompts, scores them, and
moves the curves by the measured shift:

- ``mode="shift"`` (default): one shift per score, pooled over every calibration setting (the
  paired prompts make it precise from few prompts);
- ``mode="attribute"``: a shift per (attribute swept, score) and one for the base, from that
  attribute's own settings only (more freedom, more noise).

The shift's standard error joins the prediction intervals. The cost is counted in generations:
prompts × samples × (1 + attributes × α values).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.experiments.control_model import Model


def design(attributes: Sequence[str], alphas: Sequence[float]) -> list[tuple[str | None, Weights]]:
    """(attribute or None for the base, setting) for a calibration."""
    out: list[tuple[str | None, Weights]] = [(None, Weights.base())]
    for a in attributes:
        out += [(a, Weights({a: float(x)}, extrapolate=not 0.0 <= x <= 1.0)) for x in alphas]
    return out


def plan_cost(n_prompts: int, num_samples: int, attributes: Sequence[str], alphas: Sequence[float]) -> int:
    """Generations a calibration costs."""
    return n_prompts * num_samples * (1 + len(attributes) * len(alphas))


def measure(
    im: Any, prompts: list[str], scorers: Mapping[str, Any], settings: list[Weights], num_samples: int, gen: dict
) -> np.ndarray:
    """(settings, prompts, scores) mean score per prompt (over samples) at every setting."""
    from clm.eval.scoring import score_texts

    rows = [(s, p) for s in range(len(settings)) for p in range(len(prompts))]
    gens = im.generate(
        [prompts[p] for _, p in rows], weights=[settings[s] for s, _ in rows], num_samples=num_samples, **gen
    )
    df = score_texts([g.text for g in gens], dict(scorers), progress=False)
    vals = np.stack([df[f"score_{n}"].to_numpy(float) for n in scorers], axis=-1)  # (rows × samples, J')
    with np.errstate(invalid="ignore"):
        return np.nanmean(vals.reshape(len(settings), len(prompts), num_samples, -1), axis=2)


def measure_table(table: Any, settings: list[Weights], cols: list[str], n_prompts: int) -> np.ndarray:
    """(settings, prompts, scores) mean score per prompt (over samples) from a sweep table's rows
    (:func:`design`'s settings over prompts 0 … n_prompts − 1); a missing setting is an error."""
    out = []
    for w in settings:
        sub = table[(table.weights == w.to_json()) & (table.prompt_index < n_prompts)]
        if sub.prompt_index.nunique() < n_prompts:
            raise ConfigError(f"the calibration table lacks setting {w} for some of the first {n_prompts} prompts")
        out.append(sub.groupby("prompt_index")[cols].mean().sort_index().to_numpy(float))
    return np.stack(out)


def predicted(model: Model, settings: list[tuple[str | None, Weights]], cols: list[int]) -> np.ndarray:
    """(settings, J') the model's means at the calibration settings."""
    out = []
    for attr, w in settings:
        if attr is None:
            out.append(model.base[cols])
        else:
            out.append(model.curves[attr].at(np.array([w.alpha[attr]]))[0][cols])
    return np.array(out)


def calibrated(
    data: Mapping[str, Any],
    model: Model,
    im: Any,
    prompts: Sequence[str],
    scorers: Mapping[str, Any],
    *,
    budget: int | None = None,
    alphas: Sequence[float] = (0.0, 0.5, 1.0),
    attributes: Sequence[str] | None = None,
    mode: str = "shift",
    num_samples: int = 1,
    table: Any = None,
    **generate_kwargs: Any,
) -> dict[str, Any]:
    """A controller's statistics refitted on ``prompts`` (see the module docstring).

    ``budget`` caps the generations: prompts are dropped from the end until the design fits
    (at least 2 must remain). Returns the new data with ``calibration`` describing what ran.
    """
    if mode not in ("shift", "attribute"):
        raise ConfigError(f"mode must be 'shift' or 'attribute', got {mode!r}")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    names = list(data["scores"])
    scored = [n for n in names if n in scorers]
    if not scored:
        raise ConfigError(f"no scorer for any of the controller's scores {names}; got {sorted(scorers)}")
    attrs = list(attributes) if attributes is not None else [a for a in data["attributes"] if a in scorers]
    unknown = [a for a in attrs if a not in model.curves]
    if unknown:
        raise ConfigError(f"no response curve for {unknown[0]!r} to calibrate")
    per = plan_cost(1, num_samples, attrs, alphas)
    n = len(prompts) if budget is None else min(len(prompts), int(budget) // per)
    if n < 2:
        raise ConfigError(f"budget={budget} generations is too small: a calibration needs at least {2 * per} here")
    prompts = prompts[:n]
    settings = design(attrs, alphas)
    if table is not None:  # the calibration's generations from a sweep table (resumable, keyed)
        y = measure_table(table, [w for _, w in settings], [f"score_{s}" for s in scored], n)
        num_samples = int(table.groupby(["weights", "prompt_index"]).size().max())
    else:
        gen = {"seed": 0, "progress": False, **generate_kwargs}
        y = measure(im, prompts, {s: scorers[s] for s in scored}, [w for _, w in settings], num_samples, gen)
    cols = [names.index(s) for s in scored]
    resid = y - predicted(model, settings, cols)[:, None, :]  # (S, P, J')
    new = copy.deepcopy(dict(data))
    shifts = _shifts(resid, settings, mode)
    _apply(new, shifts, cols, mode)
    new["calibration"] = {
        "generations": int(plan_cost(n, num_samples, attrs, alphas)), "prompts": n, "samples": num_samples,
        "alphas": [float(a) for a in alphas], "attributes": attrs, "mode": mode, "scores": scored,
        "shift": {s: float(np.nanmean(resid[:, :, k])) for k, s in enumerate(scored)},
        "previous": data.get("calibration"),
    }  # fmt: skip
    return new


def _shifts(resid: np.ndarray, settings: list[tuple[str | None, Weights]], mode: str) -> dict[str | None, tuple]:
    """group (None: every setting / the base; else an attribute) -> (shift (J',), its variance (J',)).

    The standard error resamples prompts: each prompt's mean residual over the group's settings."""
    groups: dict[str | None, list[int]] = {}
    if mode == "shift":
        groups["*"] = list(range(len(settings)))
    else:
        for k, (attr, _) in enumerate(settings):
            groups.setdefault(attr, []).append(k)
    out = {}
    with np.errstate(invalid="ignore"):
        for g, idx in groups.items():
            per_prompt = np.nanmean(resid[idx], axis=0)  # (P, J')
            out[g] = (np.nanmean(per_prompt, axis=0), np.nanvar(per_prompt, axis=0, ddof=1) / per_prompt.shape[0])
    return out


def _apply(data: dict[str, Any], shifts: Mapping[Any, tuple], cols: list[int], mode: str) -> None:
    """Move the base and curve means by the shifts (in place) and add their variance."""
    extra = np.asarray(data["extra_var"], dtype=float)
    for group in [None, *data["curves"]]:
        key = "*" if mode == "shift" else group
        if key not in shifts:
            continue
        d, v = shifts[key]
        target = data["base"] if group is None else data["curves"][group]
        mean = np.asarray(target["mean"], dtype=float)
        mean[..., cols] += d
        target["mean"] = mean.tolist()
        for name in ("lo", "hi"):
            if name in target:
                arr = np.asarray(target[name], dtype=float)
                arr[..., cols] += d
                target[name] = arr.tolist()
    worst = np.max([v for _, v in shifts.values()], axis=0)
    extra[cols] += np.nan_to_num(worst)
    data["extra_var"] = extra.tolist()
