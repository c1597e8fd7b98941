"""Schedules: the dial turned over the text, α (and λ) as keyframes over the generated tokens.

A :class:`Schedule` gives, per attribute, keyframes ``(t, α)`` or ``(t, α, λ)`` over the index
t = 0, 1, … of the *generated* token, linear in between and held before the first and after the
last keyframe. ``s.at(t)`` is the :class:`~clm.core.weights.Weights` that token t is sampled at.
Like Weights it is a value: it prints, parses back (``Schedule.parse(str(s)) == s``), serializes
to JSON, compares and hashes, and a bad value is a one-line :class:`~clm.errors.WeightsError`.

    s = Schedule({"sentiment": [(0, 0.0), (47, 1.0)]})     # negative to positive over 48 tokens
    str(s)                                                # 'sentiment=0:0>47:1'
    outs = im.generate(prompts, weights=s, max_new_tokens=64)    # or a list, one per prompt

**What changes between decode steps.** Token t is drawn from the logits of the forward pass that
reads token t − 1 (for t = 0: the prompt's prefill), and that pass runs at ``s.at(t)``. Between
steps only the engine's coefficient table changes (:meth:`InterpolatedModel.set_weights`, O(1)):
the keys and values already in the cache, of the prompt and of earlier tokens, stay as they were
computed, at the setting of their own step. Nothing is re-prefilled, so a step from setting a to
setting b at token k equals k tokens at a, then continuing from the same cache at b (the test of
``tests/test_schedule.py``). Re-reading the whole text at b would be a different, slower model of
"turning the dial"; this module offers no such thing.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clm.core.attributes import NAME_RE
from clm.core.weights import STABLE_BOUNDS, Weights, as_weights
from clm.errors import WeightsError

Keyframe = tuple[int, float, "float | None"]  # (generated-token index, α, λ or None)


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WeightsError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")):
        raise WeightsError(f"{what} must be finite, got {x!r}")
    return x


def _fmt(x: float) -> str:
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def _keyframes(name: str, frames: Any) -> tuple[Keyframe, ...]:
    """Validate one attribute's keyframes: a number (constant) or a list of (t, α[, λ])."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise WeightsError(f"attribute name must be an identifier-like string, got {name!r}")
    if isinstance(frames, numbers.Real) and not isinstance(frames, bool):
        frames = [(0, frames)]
    if isinstance(frames, (str, bytes)) or not isinstance(frames, Sequence) or not frames:
        raise WeightsError(f"schedule[{name!r}] must be a number or a non-empty list of (t, alpha), got {frames!r}")
    out: list[Keyframe] = []
    for k, fr in enumerate(frames):
        if not isinstance(fr, (tuple, list)) or len(fr) not in (2, 3):
            raise WeightsError(f"schedule[{name!r}][{k}] must be (t, alpha) or (t, alpha, lam), got {fr!r}")
        t = fr[0]
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise WeightsError(f"schedule[{name!r}][{k}]: token index must be an integer >= 0, got {t!r}")
        if out and int(t) <= out[-1][0]:
            raise WeightsError(f"schedule[{name!r}]: token indices must increase, got {out[-1][0]} then {t}")
        a = _num(fr[1], f"schedule[{name!r}][{k}] alpha")
        lam = _num(fr[2], f"schedule[{name!r}][{k}] lam") if len(fr) == 3 else None
        out.append((int(t), a, lam))
    return tuple(out)


def _interp(frames: tuple[Keyframe, ...], t: int, i: int) -> float:
    """Value ``i`` (1: α, 2: λ) of the keyframes at token t: linear between, held outside."""
    if t <= frames[0][0]:
        return frames[0][i]
    for (t0, *v0), (t1, *v1) in zip(frames, frames[1:]):
        if t == t1:  # exactly the keyframe's value, not a rounding of it
            return v1[i - 1]
        if t < t1:
            x0, x1 = v0[i - 1], v1[i - 1]
            return x0 + (x1 - x0) * (t - t0) / (t1 - t0)
    return frames[-1][i]


@dataclass(frozen=True, eq=False)
class Schedule:
    """α (and optionally λ) per attribute as keyframes over the generated-token index.

    Args:
        alpha: attribute -> keyframes ``[(t, α), …]`` or ``[(t, α, λ), …]`` (λ at every keyframe of
            every attribute, or at none: then λ is the paper's default 1/n), or a number for a
            constant. Token indices are integers >= 0, increasing.
        extrapolate, bounds, simplex: as for :class:`Weights`, for every token.

    The setting at every keyframe time of any attribute is checked as a Weights; α and Σλ are
    piecewise linear between those times, so that checks every token.
    """

    alpha: Mapping[str, Any]
    extrapolate: bool = False
    bounds: tuple[float, float] = STABLE_BOUNDS
    simplex: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.alpha, Mapping):
            raise WeightsError(f"a schedule must be a mapping of attribute -> keyframes, got {self.alpha!r}")
        frames = {name: _keyframes(name, fr) for name, fr in self.alpha.items()}
        with_lam = {n for n, fr in frames.items() if any(f[2] is not None for f in fr)}
        partial = [n for n, fr in frames.items() if n in with_lam and any(f[2] is None for f in fr)]
        if partial or (with_lam and len(with_lam) != len(frames)):
            name = partial[0] if partial else next(n for n in frames if n not in with_lam)
            raise WeightsError(f"schedule[{name!r}] lacks lam at some keyframe; give lam at every keyframe or none")
        object.__setattr__(self, "alpha", frames)
        object.__setattr__(self, "extrapolate", bool(self.extrapolate))
        object.__setattr__(self, "simplex", bool(self.simplex))
        object.__setattr__(
            self, "bounds", tuple(self.bounds) if isinstance(self.bounds, (list, tuple)) else self.bounds
        )
        for t in self.times:  # raises a WeightsError naming the token
            self.at(t)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def constant(cls, weights: Weights | str | Mapping[str, float] | None) -> Schedule:
        """The schedule that stays at one setting."""
        w = as_weights(weights)
        lam = None if w.lam is None else w.lam
        frames = {a: [(0, x) if lam is None else (0, x, lam[a])] for a, x in w.alpha.items()}
        return cls(frames, extrapolate=w.extrapolate, bounds=w.bounds, simplex=w.simplex)

    # ------------------------------------------------------------------ the setting per token
    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.alpha)

    @property
    def times(self) -> list[int]:
        """Every keyframe time of any attribute (where the setting can bend), sorted."""
        return sorted({f[0] for fr in self.alpha.values() for f in fr} | {0})

    @property
    def is_constant(self) -> bool:
        return all(len({(a, lam) for _, a, lam in fr}) == 1 for fr in self.alpha.values())

    def at(self, t: int) -> Weights:
        """The setting that generated token ``t`` (0-based) is sampled at."""
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise WeightsError(f"token index must be an integer >= 0, got {t!r}")
        alpha = {a: _interp(fr, int(t), 1) for a, fr in self.alpha.items()}
        lam = None
        if self.alpha and next(iter(self.alpha.values()))[0][2] is not None:
            lam = {a: _interp(fr, int(t), 2) for a, fr in self.alpha.items()}
        try:
            return Weights(alpha, lam, extrapolate=self.extrapolate, bounds=self.bounds, simplex=self.simplex)
        except WeightsError as err:
            raise WeightsError(f"schedule {str(self)!r} at token {t}: {err}") from None

    def settings(self, n: int) -> list[Weights]:
        """``[s.at(0), …, s.at(n - 1)]``."""
        return [self.at(t) for t in range(n)]

    # ------------------------------------------------------------------ value semantics
    def _key(self) -> tuple:
        return (tuple(sorted(self.alpha.items())), self.extrapolate, tuple(self.bounds), self.simplex)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        def frame(f: Keyframe) -> str:
            return f"{f[0]}:{_fmt(f[1])}" + ("" if f[2] is None else f"@{_fmt(f[2])}")

        text = ",".join(f"{a}=" + ">".join(frame(f) for f in fr) for a, fr in self.alpha.items()) or "base"
        if self.extrapolate:
            text += ";extrapolate"
        if tuple(self.bounds) != STABLE_BOUNDS:
            text += f";bounds={_fmt(self.bounds[0])}:{_fmt(self.bounds[1])}"
        if not self.simplex:
            text += ";free_lam"
        return text

    def __repr__(self) -> str:
        return f"Schedule({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Parse ``"sentiment=0:0>47:1,formality=0:0.5"``: per attribute ``t:α`` keyframes joined
        by ``>`` (``t:α@λ`` gives λ; a bare ``α`` is a constant), then the options of
        :meth:`Weights.parse` (``;extrapolate``, ``;bounds=lo:hi``, ``;free_lam``)."""
        if not isinstance(text, str):
            raise WeightsError(f"cannot parse a schedule from {text!r}: expected a string")
        body, _, opts = text.strip().partition(";")
        flags = Weights.parse("base" + (";" + opts if opts else "")).to_dict()
        frames: dict[str, list[tuple]] = {}
        if body.strip() not in ("", "base"):
            for item in body.split(","):
                name, eq, value = (p.strip() for p in item.partition("="))
                if not eq or not name or not value:
                    raise WeightsError(
                        f"cannot parse {item.strip()!r} in schedule {text!r}; expected attribute=t:alpha>…"
                    )
                if name in frames:
                    raise WeightsError(f"attribute {name!r} appears twice in schedule {text!r}")
                frames[name] = [_parse_frame(name, f.strip(), text) for f in value.split(">")]
        return cls(frames, extrapolate=flags["extrapolate"], bounds=tuple(flags["bounds"]), simplex=flags["simplex"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` inverts it exactly."""
        alpha = {a: [list(f) if f[2] is not None else [f[0], f[1]] for f in fr] for a, fr in self.alpha.items()}
        return {"alpha": alpha, "extrapolate": self.extrapolate, "bounds": list(self.bounds), "simplex": self.simplex}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        if not isinstance(data, Mapping) or set(data) - {"alpha", "extrapolate", "bounds", "simplex"}:
            raise WeightsError(
                f"a schedule must be a JSON object with alpha, extrapolate, bounds, simplex; got {data!r}"
            )
        kw = dict(data)
        kw["alpha"] = {a: [tuple(f) for f in fr] for a, fr in dict(kw.get("alpha", {})).items()}
        if "bounds" in kw:
            kw["bounds"] = tuple(kw["bounds"])
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        try:
            return cls.from_dict(json.loads(text))
        except (TypeError, json.JSONDecodeError) as err:
            raise WeightsError(f"schedule JSON does not parse: {err}") from None


def _parse_frame(name: str, frame: str, text: str) -> tuple:
    t_text, colon, rest = frame.partition(":")
    if not colon:  # a bare α (or α@λ): constant from token 0
        t_text, rest = "0", frame
    a_text, at, l_text = rest.partition("@")
    try:
        t = int(t_text)
    except ValueError:
        raise WeightsError(f"token index must be an integer, got {t_text!r} in schedule {text!r}") from None
    try:
        values = [float(a_text)] + ([float(l_text)] if at else [])
    except ValueError:
        bad = a_text if not _is_float(a_text) else l_text
        raise WeightsError(f"schedule[{name!r}] value must be a number, got {bad.strip()!r} in {text!r}") from None
    return (t, *values)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def as_schedule(value: Any) -> Schedule:
    """A Schedule, its text form, a Weights (or its text, or an α dict) as a constant, or None (base)."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        return Schedule.parse(value)
    if value is None or isinstance(value, (Weights, Mapping)):
        if isinstance(value, Mapping) and any(not isinstance(v, numbers.Real) for v in value.values()):
            return Schedule(value)
        return Schedule.constant(value)
    raise WeightsError(f"cannot use {value!r} as a schedule; expected Schedule, Weights, str or dict")


# ---------------------------------------------------------------------- generating with a schedule
class ScheduleStepper:
    """A transformers logits processor that moves the engine to the next token's setting.

    ``generate`` calls it once per step, after the forward pass whose logits give token t and
    before the pass that reads token t; it leaves the scores alone and sets the coefficients
    for token t + 1 (``im.set_weights``, O(1)). The prompt's prefill runs at token 0's setting,
    which the caller sets before generating. ``steps[t]`` is the per-row list of settings of
    token t, or None where no row changes from token t − 1 (:func:`schedule_steps`).
    :meth:`InterpolatedModel.generate` adds one when given a schedule.
    """

    def __init__(self, im: Any, steps: list[list[Weights] | None]):
        self.im, self.steps, self.t = im, steps, 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.t += 1
        if self.t < len(self.steps) and self.steps[self.t] is not None:
            self.im.set_weights(self.steps[self.t])
        return scores


def schedule_steps(rows: Sequence[Schedule | Weights], n: int) -> list[list[Weights] | None]:
    """Per token t < n the per-row settings (rows: Schedules, or Weights held fixed), None where
    nothing changes from token t − 1. Entry 0 is always the rows' settings of token 0."""
    first = [r.at(0) if isinstance(r, Schedule) else r for r in rows]
    if all(not isinstance(r, Schedule) or r.is_constant for r in rows):
        return [first] + [None] * (n - 1)
    table = [r.settings(n) if isinstance(r, Schedule) and not r.is_constant else [f] * n for r, f in zip(rows, first)]
    out: list[list[Weights] | None] = [first]
    for t in range(1, n):
        ws = [row[t] for row in table]
        out.append(ws if ws != [row[t - 1] for row in table] else None)
    return out


class LogitsRecorder:
    """A logits processor that keeps, per call, a copy of the scores it is given: the model's
    float32 logits of each step (before sampling's temperature/top-k/top-p warpers, which
    transformers applies after the processors passed in; no penalty is configured)."""

    def __init__(self) -> None:
        self.steps: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.steps.append(scores.detach().clone())
        return scores

    def rows(self) -> list[Any]:
        """Per batch row, the (steps, vocab) logits."""
        import torch

        per_step = torch.stack(self.steps, dim=1)  # (rows, steps, vocab)
        return list(per_step.unbind(0))


def generate_scheduled(
    im: Any,
    prompts: str | Sequence[str],
    schedule: Any,
    *,
    num_samples: int = 1,
    batch_size: int | None = None,
    seed: int | None = 0,
    output_logits: bool = False,
    **generate_kwargs: Any,
) -> list[Any] | tuple[list[Any], list[Any]]:
    """``im.generate(prompts, weights=schedules, ...)``, with schedules also given as text, and
    optionally each row's logits; a thin convenience over the engine's own schedules.

    Args:
        im: an :class:`~clm.core.engine.InterpolatedModel`.
        schedule: one for every prompt, or a list with one per prompt; each a :class:`Schedule`,
            its text form, or a fixed setting (Weights, text, α dict) as a constant schedule.
        num_samples, batch_size, seed, generate_kwargs: as for ``im.generate``.
        output_logits: also return, per row, the (steps, vocab) float32 logits of every step
            (a :class:`LogitsRecorder` per batch; batches seeded ``seed + batch index`` as
            ``im.generate`` seeds them).

    Returns:
        The engine's Generation records (``.schedule`` set); with ``output_logits`` a pair
        (generations, logits per row).
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if isinstance(schedule, (list, tuple)):
        if len(schedule) != len(prompts):
            raise WeightsError(f"got {len(schedule)} schedules for {len(prompts)} prompts; give one per prompt or one")
        per_prompt = [as_schedule(s) for s in schedule]
    else:
        per_prompt = [as_schedule(schedule)] * len(prompts)
    kw = {"num_samples": num_samples, "batch_size": batch_size, "seed": seed, **generate_kwargs}
    if not output_logits:
        return im.generate(prompts, weights=per_prompt, **kw)
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise WeightsError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    rows = [(i, k) for i in range(len(prompts)) for k in range(num_samples)]
    bs = batch_size or len(rows)
    gens: list[Any] = []
    logits: list[Any] = []
    user = list(generate_kwargs.pop("logits_processor", None) or [])
    for b in range(0, len(rows), bs):
        batch, rec = rows[b : b + bs], LogitsRecorder()
        kw.update(num_samples=1, batch_size=None, seed=None if seed is None else seed + b // bs)
        kw.update(logits_processor=[rec, *user], progress=False)
        out = im.generate([prompts[i] for i, _ in batch], weights=[per_prompt[i] for i, _ in batch], **kw)
        for (i, k), g in zip(batch, out):
            g.prompt_index, g.sample_index = i, k
        gens.extend(out)
        logits.extend(rec.rows())
    return gens, logits
