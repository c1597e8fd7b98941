"""Fitting a controller's statistics from tidy sweep tables (the tables of :func:`run_sweep`).

:func:`fit_data` reads the score rows (``weights``, ``prompt_index``, ``score_<attr>``) and the
perplexity rows (``wikitext_ppl``) and returns a JSON-ready dict: per attribute with a single-
attribute sweep (λ = 1) the mean of every score per α knot with bootstrap bands and covariance
over prompts; the base means; the mixing offsets fitted on any λ design rows (settings mixing
attributes); the perplexity ratio per α. :class:`clm.experiments.control.Controller` holds it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.experiments.control_model import Curves, Model, monotone, pairs
from clm.experiments.tables import read_table

VERSION = 1


def collect(tables: Any) -> list[Any]:
    """DataFrames from a DataFrame, a list or dict of them, a table file or a directory of them."""
    import pandas as pd

    if isinstance(tables, pd.DataFrame):
        return [tables]
    if isinstance(tables, Mapping):
        tables = list(tables.values())
    if isinstance(tables, (str, os.PathLike)):
        p = Path(tables)
        if p.is_dir():
            files = sorted([*p.glob("*.parquet"), *p.glob("*.csv")])
            if not files:
                raise ConfigError(f"no sweep tables (*.parquet, *.csv) in {str(p)!r}")
            return [read_table(f) for f in files]
        return [read_table(p)]
    if isinstance(tables, (list, tuple)) and tables:
        return [t for x in tables for t in collect(x)]
    raise ConfigError(f"cannot read sweep tables from {tables!r}; give DataFrames, files or a directory")


def _setting(text: str) -> Weights:
    return Weights.from_json(text)


def split(frames: list[Any]) -> tuple[Any, Any]:
    """(score rows, perplexity rows), each one DataFrame (perplexity: one row per setting)."""
    import pandas as pd

    score_parts, ppl_parts = [], []
    for df in frames:
        if "weights" not in df.columns:
            raise ConfigError(f"a sweep table needs a 'weights' column; got {list(df.columns)[:8]}…")
        if "prompt_index" in df.columns and any(c.startswith("score_") for c in df.columns):
            score_parts.append(df)
        if "wikitext_ppl" in df.columns:
            ppl_parts.append(df[["weights", "wikitext_ppl"] + (["context"] if "context" in df.columns else [])])
    if not score_parts:
        raise ConfigError("the tables hold no scored rows (prompt_index and score_<attr> columns)")
    scores = pd.concat(score_parts, ignore_index=True)
    ppl = pd.concat(ppl_parts, ignore_index=True).dropna(subset=["wikitext_ppl"]) if ppl_parts else None
    if ppl is not None:
        ppl = ppl.drop_duplicates(subset=["weights"], keep="last").reset_index(drop=True)
    return scores, ppl


def digest(scores: Any, ppl: Any) -> str:
    """A sha1 over the rows a controller is fitted on (order-independent)."""
    import pandas as pd

    h = hashlib.sha1()
    cols = ["weights", "prompt_index", *(["sample"] if "sample" in scores.columns else [])]
    cols += sorted(c for c in scores.columns if c.startswith("score_"))
    for df, keep in ((scores, cols), (ppl, ["weights", "wikitext_ppl"])):
        if df is None:
            continue
        part = df[keep].astype({"weights": str}).sort_values(keep[: 3 if len(keep) > 2 else 1]).reset_index(drop=True)
        h.update(",".join(keep).encode())
        h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    return h.hexdigest()


def endpoints_from_context(ppl: Any) -> str | dict[str, str] | None:
    """The endpoints digest the perplexity rows were measured with: one digest if they agree on
    one, else per attribute the digest of its single-attribute rows (None if neither)."""
    if ppl is None or "context" not in ppl.columns:
        return None
    per: dict[str, set] = {}
    for w, c in zip(ppl["weights"].astype(str), ppl["context"]):
        if isinstance(c, str) and c.startswith("{"):
            s = _setting(w)
            per.setdefault(s.attributes[0] if len(s.alpha) == 1 else "", set()).add(json.loads(c).get("endpoints"))
    every = set().union(*per.values()) if per else set()
    if len(every) == 1:
        return every.pop()
    out = {a: d.pop() for a, d in per.items() if a and len(d) == 1}
    return out or None


def _knot_stats(per_prompt: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    """Means, bootstrap band and covariance over prompts of a (m, P, J) array of per-prompt means."""
    m, P, J = per_prompt.shape
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(per_prompt, axis=1)  # (m, J)
        idx = rng.integers(0, P, size=(n_boot, P))
        draws = np.stack([np.nanmean(per_prompt[:, i, :], axis=1) for i in idx])  # (B, m, J)
    cov = np.stack([np.atleast_2d(np.cov(draws[:, :, j].T)) for j in range(J)])  # (J, m, m)
    return {
        "mean": mean.tolist(),
        "lo": np.quantile(draws, 0.025, axis=0).tolist(),
        "hi": np.quantile(draws, 0.975, axis=0).tolist(),
        "cov": cov.tolist(),
        "n_prompts": int(P),
    }


def fit_data(scores: Any, ppl: Any, n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """The controller's statistics (JSON-ready) from score rows and perplexity rows."""
    names = [c[len("score_") :] for c in scores.columns if c.startswith("score_")]
    cols = [f"score_{n}" for n in names]
    per = scores.groupby(["weights", "prompt_index"], sort=True)[cols].mean()  # mean over samples
    settings = {w: _setting(w) for w in per.index.get_level_values(0).unique()}
    base = [w for w, s in settings.items() if s.is_base]
    if not base:
        raise ConfigError("the tables have no base rows (setting 'base'): the controller needs the base model's scores")
    b = per.loc[base[0]].to_numpy(float)  # (P, J)
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {"version": VERSION, "scores": names, "curves": {}}
    data["base"] = {
        "mean": np.nanmean(b, 0).tolist(), "var": (np.nanvar(b, 0, ddof=1) / len(b)).tolist(), "n_prompts": len(b),
    }  # fmt: skip
    singles: dict[str, list[tuple[float, str]]] = {}
    for w, s in settings.items():
        if len(s.alpha) == 1 and abs(s.lam_resolved()[s.attributes[0]] - 1.0) < 1e-9:
            singles.setdefault(s.attributes[0], []).append((s.alpha[s.attributes[0]], w))
    ppl_of = {} if ppl is None else dict(zip(ppl["weights"].astype(str), ppl["wikitext_ppl"].astype(float)))
    base_ppl = next((v for w, v in ppl_of.items() if _setting(w).is_base), None)
    for attr, knots in singles.items():
        knots.sort()
        prompts = sorted({p for _, w in knots for p in per.loc[w].index})
        arr = np.stack([per.loc[w].reindex(prompts).to_numpy(float) for _, w in knots])  # (m, P, J)
        curve = {"alpha": [a for a, _ in knots], **_knot_stats(arr, n_boot, rng)}
        with_ppl = [(a, ppl_of[w]) for a, w in knots if w in ppl_of]
        curve["ppl_alpha"] = [a for a, _ in with_ppl] if base_ppl else []
        curve["ppl_ratio"] = [v / base_ppl for _, v in with_ppl] if base_ppl else []
        data["curves"][attr] = curve
    data["attributes"] = [a for a in names if a in data["curves"]] + [a for a in data["curves"] if a not in names]
    data["base"]["ppl"] = base_ppl
    data["mix"] = _fit_mix(data, per, settings)
    data["extra_var"] = [0.0] * len(names)
    return data


def _fit_mix(data: dict[str, Any], per: Any, settings: Mapping[str, Weights]) -> dict[str, Any]:
    """Mixing offsets m_j: least squares of the λ-linear model's residuals on Σ_{i≠k} λ_i λ_k over
    the settings that mix attributes with curves; and the residual variance left."""
    model = build_model({**data, "mix": {"coef": [0.0] * len(data["scores"]), "var": [0.0] * len(data["scores"])}})
    rows = []
    for w, s in settings.items():
        lam = s.lam_resolved()
        if len(s.alpha) < 2 or any(a not in model.curves for a in s.alpha):
            continue
        act = list(s.alpha)
        A, L = np.array([[s.alpha[a] for a in act]]), np.array([[lam[a] for a in act]])
        y = np.nanmean(per.loc[w].to_numpy(float), axis=0)
        rows.append((y - model.predict(act, A, L)[0], float(pairs(L)[0])))
    J = len(data["scores"])
    if not rows:
        return {"coef": [0.0] * J, "var": [0.0] * J, "n_settings": 0}
    R = np.array([r for r, _ in rows])  # (S, J)
    M = np.array([m for _, m in rows])  # (S,)
    coef = (R * M[:, None]).sum(0) / max((M * M).sum(), 1e-12)
    var = ((R - coef * M[:, None]) ** 2).mean(0)
    return {"coef": coef.tolist(), "var": var.tolist(), "n_settings": len(rows)}


def build_model(data: Mapping[str, Any]) -> Model:
    """The numpy :class:`Model` of a controller's statistics (own curves made monotone)."""
    names = list(data["scores"])
    curves = {}
    for attr, c in data["curves"].items():
        alphas = np.asarray(c["alpha"], dtype=float)
        F = np.asarray(c["mean"], dtype=float).reshape(len(alphas), len(names))
        own = names.index(attr) if attr in names else None
        sign = 1.0
        if own is not None:
            F = F.copy()
            F[:, own], sign = monotone(alphas, F[:, own])
        ratio = np.asarray(c.get("ppl_ratio", []), dtype=float)
        curves[attr] = Curves(
            alphas, F, np.asarray(c["cov"], dtype=float).reshape(len(names), len(alphas), len(alphas)),
            sign, own, np.asarray(c.get("ppl_alpha", []), dtype=float), np.log(ratio) if len(ratio) else ratio,
        )  # fmt: skip
    J = len(names)
    mix = data.get("mix", {})
    return Model(
        names, curves,
        np.asarray(data["base"]["mean"], dtype=float), np.asarray(data["base"]["var"], dtype=float),
        np.asarray(mix.get("coef", [0.0] * J), dtype=float), np.asarray(mix.get("var", [0.0] * J), dtype=float),
        np.asarray(data.get("extra_var", [0.0] * J), dtype=float),
    )  # fmt: skip
