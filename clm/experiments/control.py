"""Ask for a score instead of an α: a controller fitted on the sweep tables.

    ctl = Controller.fit(tables)                     # single-attribute α sweeps, base rows, λ designs
    plan = ctl.weights_for({"sentiment": 0.7, "formality": 0.4}, max_ppl_ratio=1.3)
    plan.weights, plan.predicted, plan.interval, plan.ppl_ratio
    outs = im.generate(prompts, weights=plan.weights)

The model (:mod:`clm.experiments.control_model`): per attribute a monotone response curve of its
mean score against α (isotonic, piecewise linear) with bootstrap bands over prompts; the
cross-effects of α_i on every other score (the entanglement); the WikiText perplexity ratio per
α; and a λ-linear mix of those effects, with one mixing offset per score fitted on the λ designs.
Several targets are solved jointly (a fixed point in α over a grid of λ), correcting each target
for the others' cross effects; attributes not named stay as near their reference (the base model
by default) as the λ grid allows, or are held there actively with ``hold=``.

Intervals are for the mean score over a new set of prompts from the fit's distribution (``n_eval``
of them, the fit's count by default): the curves' bootstrap variance, the new prompts' own noise,
and for mixed settings the mixing model's residual. Prompts of another kind shift the curves
(by about 0.06 on the shipped endpoints): :meth:`Controller.calibrate` refits the level on the
user's prompts from a few α per attribute, at a cost counted in generations.

A controller is a value: :meth:`save`/:meth:`load` JSON carrying the digest of the tables it was
fitted on and the endpoints' digest; :meth:`check` refuses a model with other endpoints.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from clm.core.weights import Weights, as_weights
from clm.errors import ClmError, ConfigError
from clm.experiments.control_fit import VERSION, build_model, collect, digest, endpoints_from_context, fit_data, split
from clm.experiments.control_model import effective_lambda, solve
from clm.experiments.control_targets import Plan, TargetError, check_target, log_or_none, out_of_reach, parse_targets
from clm.io import atomic_write_json
from clm.paths import cache_dir, safe_name, shipped_dir

HOLD_WEIGHT = 0.3  # an actively held attribute's error counts this much against a target's


class Controller:
    """Response curves of the sweep tables, inverted for target scores. See the module docstring.

    Build one with :meth:`fit`, :meth:`load` or :func:`shipped_controller`; ``data`` is the
    JSON-ready statistics (see :mod:`clm.experiments.control_fit`).
    """

    def __init__(self, data: Mapping[str, Any]):
        if not isinstance(data, Mapping) or data.get("version") != VERSION:
            raise ConfigError(f"not a controller of version {VERSION}: {str(data)[:60]!r}")
        self.data = json.loads(json.dumps(data))  # a private, JSON-clean copy
        self.model = build_model(self.data)
        self.scores: list[str] = list(self.data["scores"])
        self.attributes: list[str] = [a for a in self.data["attributes"] if self.model.curves[a].own is not None]

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(
        cls, tables: Any, *, endpoints: Any = None, n_boot: int = 200, seed: int = 0, level: float = 0.95
    ) -> Controller:
        """Fit on sweep tables (DataFrames, files or a directory of them).

        Args:
            tables: score rows (single-attribute α sweeps and base rows; λ designs where present)
                and perplexity rows (``wikitext_ppl``).
            endpoints: the endpoints the tables were generated with (an Endpoints or its digest);
                default: the digest recorded in the perplexity rows' context, if any.
            n_boot: bootstrap resamples of the prompts for the bands and intervals.
            level: the intervals' coverage.
        """
        scores, ppl = split(collect(tables))
        data = fit_data(scores, ppl, n_boot=n_boot, seed=seed)
        ends = endpoints
        if hasattr(endpoints, "digest"):
            ends = {a: endpoints.digest([a]) for a in data["curves"] if a in endpoints.attributes}
        data.update(
            level=float(level), tables_digest=digest(scores, ppl), calibration=None,
            endpoints=ends if ends is not None else endpoints_from_context(ppl),
        )  # fmt: skip
        return cls(data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the controller as JSON (atomically)."""
        return atomic_write_json(path, self.data, indent=None, sort_keys=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Controller:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"controller file {str(p)!r} does not exist")
        try:
            return cls(json.loads(p.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise ConfigError(f"controller file {str(p)!r} is not JSON: {err}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Controller) and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    @property
    def tables_digest(self) -> str:
        return self.data["tables_digest"]

    @property
    def endpoints(self) -> str | dict[str, str] | None:
        return self.data.get("endpoints")

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.data.get("calibration")

    def check(self, im: Any) -> None:
        """Refuse (one line) a model whose endpoints are not the ones the controller was fitted on.

        ``im``: an InterpolatedModel, an Endpoints, or a digest. A controller records either the
        endpoints' digest or, per attribute, ``Endpoints.digest([attribute])``."""
        ends = getattr(im, "endpoints", im)
        rec = self.endpoints
        if rec is None:
            raise TargetError(
                "this controller records no endpoints digest; fit it with endpoints= to use it on a model"
            )
        if isinstance(rec, str):
            have = ends.digest() if hasattr(ends, "digest") else str(ends)
            if have != rec:
                raise TargetError(f"controller fitted on endpoints {rec[:12]}…, the model has {have[:12]}…")
            return
        if not hasattr(ends, "digest"):
            raise TargetError(
                "this controller records a digest per attribute; check it against an Endpoints or a model"
            )
        for a, d in rec.items():
            if a not in ends.attributes:
                raise TargetError(f"controller fitted on endpoints with {a!r}, the model's endpoints have no {a!r}")
            if ends.digest([a]) != d:
                raise TargetError(
                    f"controller fitted on {a!r} endpoints {d[:12]}…, the model's are {ends.digest([a])[:12]}…"
                )

    def __repr__(self) -> str:
        cal = ", calibrated" if self.calibration else ""
        return f"Controller(attributes={self.attributes}, tables={self.tables_digest[:12]}{cal})"

    def calibrate(
        self, im: Any, prompts: Sequence[str], scorers: Mapping[str, Any], budget: int | None = None, **kw: Any
    ) -> Controller:
        """A new controller refitted on the user's prompts from a few α per attribute (the old one
        is unchanged). Its cost: ``.calibration["generations"]``. Keywords: ``alphas`` (default
        0, 0.5, 1), ``attributes``, ``mode`` ("shift" or "attribute"), ``num_samples``, and
        ``im.generate``'s (max_new_tokens, seed, batch_size, …); see
        :mod:`clm.experiments.control_calibrate`. ``table=``: take the generations from a sweep
        table of :func:`clm.experiments.control_calibrate.design`'s settings over ``prompts``
        (resumable and keyed, as in the control chapter) instead of generating them here."""
        from clm.experiments.control_calibrate import calibrated

        if self.endpoints is not None and im is not None:
            self.check(im)
        return Controller(calibrated(self.data, self.model, im, prompts, scorers, budget=budget, **kw))

    # ------------------------------------------------------------------ reading the fit
    def curve(self, attribute: str, score: str | None = None) -> Any:
        """The response curve as a DataFrame: alpha, mean (measured), fit (the model), lo, hi
        (the bootstrap band over prompts), ppl_ratio."""
        import pandas as pd

        c, j = self._curve(attribute), self.scores.index(score or attribute)
        raw = self.data["curves"][attribute]
        ppl = np.interp(c.alphas, c.ppl_alphas, np.exp(c.log_ratio)) if len(c.ppl_alphas) else np.nan
        return pd.DataFrame(
            {"alpha": c.alphas, "mean": np.asarray(raw["mean"])[:, j], "fit": c.F[:, j],
             "lo": np.asarray(raw["lo"])[:, j], "hi": np.asarray(raw["hi"])[:, j], "ppl_ratio": ppl}
        )  # fmt: skip

    def entanglement(self, interval: tuple[float, float] = (0.0, 1.0)) -> Any:
        """Slopes of every score's mean against each attribute's α over ``interval`` (rows: α of,
        columns: score of); the solve uses the whole cross curves, these slopes summarise them."""
        import pandas as pd

        from clm.experiments.analysis import linear_fit

        m = pd.DataFrame(
            np.nan, index=pd.Index(self.attributes, name="alpha of"), columns=pd.Index(self.scores, name="score of")
        )
        for a in self.attributes:
            c = self.model.curves[a]
            keep = (c.alphas >= interval[0] - 1e-9) & (c.alphas <= interval[1] + 1e-9)
            for j, s in enumerate(self.scores):
                m.loc[a, s] = linear_fit(c.alphas[keep], np.asarray(self.data["curves"][a]["mean"])[keep, j])[0]
        return m

    def _curve(self, attribute: str):
        if attribute not in self.attributes:
            raise TargetError(f"no response curve for {attribute!r}; the controller has: {', '.join(self.attributes)}")
        return self.model.curves[attribute]

    # ------------------------------------------------------------------ predicting
    def predict(
        self, weights: Any, n_eval: int | None = None
    ) -> tuple[dict[str, float], dict[str, tuple[float, float]], float]:
        """(predicted scores, intervals, perplexity ratio) of a setting."""
        w = as_weights(weights)
        lam = w.lam_resolved()
        act = list(w.alpha)
        for a in act:
            self._curve(a)
        A, L = np.array([[w.alpha[a] for a in act]]), np.array([[lam[a] for a in act]])
        s = self.model.predict(act, A, L)[0] if act else self.model.base.copy()
        var = self.model.variance(dict(w.alpha), lam)
        n_fit = self.data["base"].get("n_prompts") or min(c["n_prompts"] for c in self.data["curves"].values())
        var = var * (1.0 + n_fit / (n_eval or n_fit))  # the curve's uncertainty + a new mean's own noise
        z = NormalDist().inv_cdf(0.5 + self.data["level"] / 2)
        half = z * np.sqrt(np.maximum(var, 0.0))
        lp = self.model.log_ppl(act, A, L)[0] if act else 0.0
        pred = {n: float(s[j]) for j, n in enumerate(self.scores)}
        return (
            pred,
            {n: (float(s[j] - half[j]), float(s[j] + half[j])) for j, n in enumerate(self.scores)},
            float(np.exp(lp)),
        )

    def _reference(self, reference: Any) -> np.ndarray:
        if isinstance(reference, str) and reference == "base":
            return self.model.base.copy()
        if isinstance(reference, Weights):
            return np.array([self.predict(reference)[0][n] for n in self.scores])
        if isinstance(reference, Mapping):
            ref = self.model.base.copy()
            for name, v in reference.items():
                ref[self.scores.index(self._score_name(name))] = check_target(name, v)
            return ref
        raise ConfigError(f"reference must be 'base', a Weights or a dict of scores, got {reference!r}")

    def _score_name(self, name: str) -> str:
        if name not in self.scores:
            raise TargetError(f"no scores of {name!r}; the controller scores: {', '.join(self.scores)}")
        return name

    def _ranges(self, act: Sequence[str], max_ppl_ratio: float | None) -> list[tuple[float, float]]:
        log_budget = None
        if max_ppl_ratio is not None:
            if not isinstance(max_ppl_ratio, (int, float)) or not max_ppl_ratio >= 1.0:
                raise ConfigError(f"max_ppl_ratio must be a number >= 1, got {max_ppl_ratio!r}")
            log_budget = math.log(max_ppl_ratio)
        out = []
        for a in act:
            c = self._curve(a)
            if log_budget is not None and len(c.ppl_alphas) == 0:
                raise ConfigError(
                    f"no perplexity curve for {a!r} in the tables; cannot keep to max_ppl_ratio={max_ppl_ratio}"
                )
            r = c.alpha_range(log_budget)
            if r is None:
                raise TargetError(f"no α of {a!r} keeps the perplexity ratio <= {max_ppl_ratio}")
            out.append(r)
        return out

    # ------------------------------------------------------------------ solving
    def weights_for(
        self,
        targets: Mapping[str, float],
        max_ppl_ratio: float | None = None,
        clip: bool = False,
        *,
        hold: Sequence[str] | None = None,
        reference: Any = "base",
        lam: str | Mapping[str, float] = "auto",
        method: str = "joint",
        n_eval: int | None = None,
        lam_step: float = 0.05,
    ) -> Plan:
        """The setting whose predicted mean scores meet ``targets``.

        Args:
            targets: attribute -> target mean score in [0, 1], one or several.
            max_ppl_ratio: a budget on the predicted WikiText perplexity / the base model's.
            clip: return the closest setting (``plan.clipped``, ``plan.message``) instead of raising
                a :class:`TargetError` when a target is out of reach.
            hold: untargeted attributes to hold actively at their reference (they are made
                active, with a softer weight than the targets).
            reference: what untargeted attributes stay near: ``"base"``, a Weights, or scores.
            lam: ``"auto"`` (search λ on the simplex), ``"equal"`` (1/n), ``"free"`` (λ_i in (0, 1]
                each, no simplex: beyond the λ designs the model extrapolates) or a λ per attribute.
            method: ``"joint"`` (corrected for entanglement) or ``"naive"`` (each α from its own
                curve alone, as if the others were absent; equal λ), for comparison.
            n_eval: the number of prompts the achieved mean will be measured on (for intervals).

        α stays in the stable band [−1, 2] (and within the sweep's α range) and, with a budget,
        where the attribute's perplexity ratio stays within it.
        """
        tg = parse_targets(targets)
        for a in tg:
            self._curve(a)
        held = [a for a in (hold or []) if a not in tg]
        for a in held:
            self._curve(a)
        ref = self._reference(reference)
        act = [*tg, *held]
        ranges = self._ranges(act, max_ppl_ratio)
        if method == "naive":
            return self._naive(tg, ranges, ref, clip, n_eval, max_ppl_ratio)
        if method != "joint":
            raise ConfigError(f"method must be 'joint' or 'naive', got {method!r}")
        best = self._solve(tg, held, ref, ranges, lam, lam_step, max_ppl_ratio)[0]
        message = None
        if best.error > 1e-3:
            message = self._unreachable(tg, best, max_ppl_ratio, held, reference, lam)
            if not clip:
                raise TargetError(message)
        return self._plan(act, best.alpha, best.lam, tg, ref, "joint", message, n_eval)

    def _solve(self, tg, held, ref, ranges, lam, lam_step, max_ppl_ratio):
        act = [*tg, *held]
        own = [self.model.curves[a].own for a in act]
        desired = np.array([*tg.values(), *(ref[own[len(tg) + k]] for k in range(len(held)))])
        weight = np.array([1.0] * len(tg) + [HOLD_WEIGHT] * len(held))
        drift = np.ones(len(self.scores))
        drift[own] = 0.0
        if isinstance(lam, Mapping):
            missing = [a for a in act if a not in lam]
            if missing:
                raise ConfigError(f"lam has no value for {missing[0]!r}")
        lams = effective_lambda(len(act), lam, act, lam_step)
        return solve(self.model, act, desired, weight, ranges, lams, ref, drift, log_or_none(max_ppl_ratio))

    def _plan(self, act, alpha, lam, tg, ref, method, message, n_eval) -> Plan:
        alpha = {a: round(float(x), 4) + 0.0 for a, x in zip(act, alpha)}
        lam_d = {a: round(float(x), 10) for a, x in zip(act, lam)}
        free = abs(sum(lam_d.values()) - 1.0) > 1e-6
        lam_d = None if len(act) == 1 and not free else lam_d
        w = Weights(alpha, lam_d, extrapolate=any(not 0.0 <= x <= 1.0 for x in alpha.values()), simplex=not free)
        pred, interval, ppl = self.predict(w, n_eval=n_eval)
        error = max((abs(pred[a] - t) for a, t in tg.items()), default=0.0)
        return Plan(
            w, pred, interval, ppl if any(len(self.model.curves[a].ppl_alphas) for a in act) else float("nan"),
            dict(tg), {n: float(ref[j]) for j, n in enumerate(self.scores)}, method, message is not None, message,
            self.data["level"], error,
        )  # fmt: skip

    def _naive(self, tg, ranges, ref, clip, n_eval, max_ppl_ratio) -> Plan:
        alpha, message = [], None
        for (a, t), r in zip(tg.items(), ranges):
            c = self.model.curves[a]
            x = float(c.invert(np.array([t]), *r)[0])
            reach = np.interp(list(r), c.alphas, c.F[:, c.own])
            if not min(reach) - 1e-3 <= t <= max(reach) + 1e-3 and message is None:
                message = out_of_reach(a, t, (min(reach), max(reach)), max_ppl_ratio, {})
            alpha.append(x)
        if message and not clip:
            raise TargetError(message)
        return self._plan(list(tg), alpha, [1.0 / len(tg)] * len(tg), tg, ref, "naive", message, n_eval)

    def reachable(
        self,
        attribute: str,
        given: Mapping[str, float] | None = None,
        max_ppl_ratio: float | None = None,
        *,
        hold: Sequence[str] | None = None,
        reference: Any = "base",
        lam: str | Mapping[str, float] = "auto",
    ) -> tuple[float, float]:
        """The range of ``attribute``'s predicted mean that the controller can reach, alone or
        while meeting the targets ``given`` for other attributes (NaN where those cannot be met)."""
        given = {k: v for k, v in (parse_targets(given) if given else {}).items() if k != attribute}
        ref = self._reference(reference)
        held = [a for a in (hold or []) if a not in given and a != attribute]
        act = [*given, *held, attribute]
        ranges = self._ranges(act, max_ppl_ratio)
        own = self.model.curves[attribute].own
        out = []
        for far in (-1e3, 1e3):  # attribute soft at an unreachable extreme; the others met first
            desired = np.array([*given.values(), *(ref[self.model.curves[h].own] for h in held), far])
            weight = np.array([1.0] * len(given) + [HOLD_WEIGHT] * len(held) + [1e-6])
            drift = np.zeros(len(self.scores))
            lams = effective_lambda(len(act), lam, act, 0.05)
            best = solve(self.model, act, desired, weight, ranges, lams, ref, drift, log_or_none(max_ppl_ratio))[0]
            out.append(float(best.scores[own]) if best.error <= 1e-3 else float("nan"))
        return min(out), max(out)

    def _unreachable(self, tg, best, max_ppl_ratio, held, reference, lam) -> str:
        act = list(tg)
        errs = [abs(best.scores[self.model.curves[a].own] - t) for a, t in tg.items()]
        worst = act[int(np.argmax(errs))]
        others = {a: t for a, t in tg.items() if a != worst}
        lo, hi = self.reachable(worst, others, max_ppl_ratio, hold=held, reference=reference, lam=lam)
        return out_of_reach(worst, tg[worst], (lo, hi), max_ppl_ratio, others)


def shipped_controller(model_name: str = "smollm2-135m", refresh: bool = False) -> Controller:
    """The controller of the fit sweeps shipped for ``model_name``
    (``clm/assets/tables/<model>/control/fit_*``, on the development prompts), fitted once and cached as JSON under the cache directory, keyed by the tables' sha256."""
    from clm.io import sha256_file

    root = shipped_dir("tables", model_name) / "control"  # the fit sweeps, on the development prompts
    files = sorted(root.glob("fit_*.parquet")) if root.is_dir() else []
    if not files:
        raise ConfigError(f"no shipped sweep tables for {model_name!r} in {str(root)!r}")
    key = sha256_file_list(files, sha256_file)
    path = cache_dir() / "controllers" / f"{safe_name(model_name)}-{key[:16]}.json"
    if path.is_file() and not refresh:
        try:
            return Controller.load(path)
        except ClmError:
            pass  # a stale or partial cache: refit
    ctl = Controller.fit(files)
    ctl.save(path)
    return ctl


def sha256_file_list(files: Sequence[Path], sha: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{sha(f)}".encode())
    return h.hexdigest()
