"""Sweeps over a method's strength dial: any :class:`clm.methods.base.Method`, run through the sweep machinery.

    t = run_method_sweep(SteeringMethod(im, tok, vector, grid=(-8, -4, 0, 4, 8)), None, prompts, scorers,
                         out="runs/cpu/tables/methods/steering_sentiment.parquet", n_samples=2,
                         fluency=base_fluency(im))

One row per (seed, strength, prompt, sample), columns::

    method, attribute, dial, strength,                      the method and its setting
    seed, prompt_index, prompt, sample, continuation, n_tokens, finished, chunk, token_ids,
    model_prompt,                                           what the model read, where it is not the prompt
    score_<attr>..., scored_by,                             one per scorer
    ppl, ppl_by                                             with ``fluency``: the continuation's perplexity
    wikitext_ppl                                            with ``perplexity``: one value per strength

It runs on :func:`clm.experiments.sweep.run_sweep`'s loop (:func:`clm.experiments.sweep.execute`)
with a :class:`MethodSource`, so it is resumable and keyed the same way (:mod:`clm.experiments.keys`):

- a **batch** is keyed by the generation settings, its rows' (strength, prompt text, prompt index,
  sample, seed) and the method's :func:`method_key` (its ``describe()`` as JSON, less the dial:
  the grid and how it was chosen do not shape a continuation at a given strength, so extending the
  grid keeps the batches before). Its sampling seed comes from that key, so another wording,
  layer, vector, template, adapter or endpoints regenerates, and nothing else does;
- finished batches go to ``<out>.parts/`` atomically and a rerun reuses them; a rerun with the
  same arguments generates nothing and writes the same bytes;
- **scores** are keyed by the scorers' fingerprints (``scored_by``) and fluency by the fluency
  callable's (``ppl_by``): new scorers re-score kept continuations instead of regenerating them.

``wikitext_ppl`` needs one model per setting. Interpolation (θ at α: :func:`interpolation_perplexity`),
activation steering with ``positions="all"`` (the forward pass with c·v added after layer L:
:func:`steering_perplexity`) and the mixture adapters (one adapter per m; pass a callable) each
define one. Logit arithmetic defines a next-token distribution per α too, but no single model
whose WikiText perplexity clm measures; prompting's instruction is a prompt, not a model, and
steering at generated positions only has no WikiText counterpart: these have no ``wikitext_ppl``.
Values are stored beside ``out`` (``<stem>_perplexity<suffix>``), keyed by the method, the strength
and the callable's ``context``, and reused on a rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clm.errors import ConfigError
from clm.experiments.sweep import Job, check_counts, execute, load_done, parts_dir, plan_chunks, read_prompts
from clm.experiments.sweep_scoring import Scoring, base_fluency
from clm.experiments.sweep_shard import Shard
from clm.experiments.tables import check_out, read_table, write_table
from clm.methods.base import Method, strength_list

__all__ = [
    "MethodSource", "interpolation_perplexity", "method_key", "mixture_perplexity", "run_method_sweep",
    "steering_perplexity",
]  # fmt: skip

#: The columns that describe a row's setting (before the generation columns).
SETTING_COLUMNS = ("method", "attribute", "dial", "strength")


def method_key(method: Method) -> str:
    """What a method's continuations depend on besides the strength: ``describe()`` less ``dial``, as sorted JSON."""
    return json.dumps({k: v for k, v in method.describe().items() if k != "dial"}, sort_keys=True, default=str)


def _sha(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


class MethodSource:
    """A method's strengths as a sweep's settings (:mod:`clm.experiments.sweep_source`): a setting is a float."""

    def __init__(self, method: Method):
        self.method, self.model_key = method, method_key(method)

    def key(self, strength: float) -> str:
        return json.dumps(float(strength))

    def digest(self, strengths: Sequence[float]) -> str:
        return self.model_key

    def columns(self, strength: float) -> dict[str, Any]:
        m = self.method
        return {"method": m.name, "attribute": m.attribute, "dial": m.dial.name, "strength": float(strength)}

    def generate(self, prompts: list[str], strengths: list[float], seed: int, gen_kw: dict[str, Any]) -> list[Any]:
        return self.method.generate(prompts, list(strengths), seed=seed, num_samples=1, batch_size=None, **gen_kw)

    def complete_table(
        self, table: Any, strengths: list[float], perplexity: Callable[[float], float] | None, out: Path | None,
        progress: Any,
    ) -> Any:  # fmt: skip
        """Add ``model_prompt`` (after ``token_ids``) and, with ``perplexity``, ``wikitext_ppl`` per strength."""
        shown = getattr(self.method, "model_prompt", None)
        model_prompts = [None] * len(table)
        if callable(shown):
            model_prompts = [shown(p, float(s)) for p, s in zip(table["prompt"], table["strength"])]
            model_prompts = [None if mp == p else mp for mp, p in zip(model_prompts, table["prompt"])]
        table.insert(list(table.columns).index("token_ids") + 1, "model_prompt", model_prompts)
        if perplexity is not None:
            side = None if out is None else out.with_name(out.stem + "_perplexity" + out.suffix)
            values = self.perplexities(strengths, perplexity, side)
            table["wikitext_ppl"] = table["strength"].map(values).astype(float)
        return table

    def perplexities(
        self, strengths: Sequence[float], perplexity: Callable[[float], float], out: Path | None = None
    ) -> dict[float, float]:
        """strength -> ``perplexity(strength)``, each keyed by (:func:`method_key`, strength, the
        callable's ``context``) and kept in the table ``out`` (rewritten after each new value)."""
        import pandas as pd

        context = str(getattr(perplexity, "context", ""))
        known: dict[str, float] = {}
        if out is not None and out.is_file():
            old = read_table(out, required=("key", "wikitext_ppl"))
            known = dict(zip(old["key"], old["wikitext_ppl"].astype(float)))
        values = {}
        for s in strengths:
            key = _sha({"model": self.model_key, "strength": float(s), "context": context})
            if key not in known:
                known[key] = float(perplexity(float(s)))
                if out is not None:
                    write_table(pd.DataFrame({"key": list(known), "wikitext_ppl": list(known.values())}), out)
            values[float(s)] = known[key]
        return values


# ---------------------------------------------------------------------- perplexity per setting
def interpolation_perplexity(method: Any, path: str | os.PathLike, **kwargs: Any) -> Callable[[float], float]:
    """``α -> perplexity`` on a text file of an :class:`~clm.methods.interpolation.InterpolationMethod`
    (:func:`clm.experiments.sweep_perplexity.wikitext_perplexity` at ``method.weights(α)``)."""
    from clm.experiments.sweep_perplexity import wikitext_perplexity

    ppl = wikitext_perplexity(method.im, path, **kwargs)

    def perplexity(alpha: float) -> float:
        return ppl(method.weights(alpha))

    perplexity.context = ppl.context
    return perplexity


def steering_perplexity(method: Any, path: str | os.PathLike, **kwargs: Any) -> Callable[[float], float]:
    """``c -> perplexity`` on a text file of a :class:`~clm.methods.steering.SteeringMethod` whose
    model is an InterpolatedModel, with c·v added at every position; ``positions="generated"``
    has no perplexity (a ConfigError)."""
    from clm.core.weights import Weights
    from clm.experiments.sweep_perplexity import wikitext_perplexity
    from clm.methods.decode import plain_model
    from clm.methods.steering import steer

    if method.positions != "all":
        raise ConfigError(f"steering at positions={method.positions!r} defines no model to measure perplexity of")
    ppl = wikitext_perplexity(method.model, path, **kwargs)

    def perplexity(c: float) -> float:
        with steer(plain_model(method.model), method.vector, float(c), positions="all"):
            return ppl(Weights.base())

    perplexity.context = ppl.context
    return perplexity


def mixture_perplexity(method: Any, path: str | os.PathLike, **kwargs: Any) -> Callable[[float], float]:
    """``m -> perplexity`` on a text file of a :class:`~clm.methods.mixture.MixtureMethod`: its
    adapter for m active (loaded, or trained, on the first call). ``kwargs`` as
    :func:`clm.experiments.sweep_perplexity.wikitext_perplexity`; ``context`` names the text by its
    content and the settings, so a stored value is reused without the adapters."""
    from clm.eval.perplexity import sliding_window_perplexity
    from clm.methods.mixture import adapter_name

    text_sha256 = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    text: list[str] = []

    def perplexity(m: float) -> float:
        from clm.experiments.sweep_perplexity import text_for

        if not text:
            text.append(text_for(method.tokenizer, path, kwargs.get("max_tokens")))
        method.load()
        method.model.set_adapter(adapter_name(m))
        return sliding_window_perplexity(method.model, text=text[0], tokenizer=method.tokenizer, progress=False,
                                         **kwargs).ppl  # fmt: skip

    perplexity.context = json.dumps({"text_sha256": text_sha256, "kwargs": kwargs}, sort_keys=True, default=str)
    return perplexity


# ---------------------------------------------------------------------- running
def _strengths(method: Method, strengths: Sequence[float] | None) -> list[float]:
    values = list(method.dial.grid) if strengths is None else strength_list(list(strengths), len(list(strengths)))
    if not values or len(set(values)) != len(values):
        raise ConfigError(f"strengths must be a non-empty list of distinct numbers, got {strengths!r}")
    return values


def _base_model(method: Any) -> Any:
    """The InterpolatedModel a method runs on (its ``im``, or a ``model`` that is one), else None."""
    from clm.core.engine import InterpolatedModel

    for m in (getattr(method, "im", None), getattr(method, "model", None)):
        if isinstance(m, InterpolatedModel):
            return m
    return None


def _fluency(method: Any, fluency: Any, batch_size: int) -> Any:
    if fluency == "base" and _base_model(method) is not None:
        return base_fluency(_base_model(method), batch_size=batch_size)
    if isinstance(fluency, str) or not (fluency is None or callable(fluency)):
        raise ConfigError(
            f"fluency must be a callable, None, or 'base' for a method on an InterpolatedModel, got {fluency!r}"
        )
    return fluency


def run_method_sweep(
    method: Method,
    strengths: Sequence[float] | None,
    prompts: str | os.PathLike | Sequence[str],
    scorers: Mapping[str, Any],
    *,
    out: str | os.PathLike | None = None,
    n_prompts: int | None = None,
    n_samples: int = 1,
    seeds: Sequence[int] = (0,),
    max_new_tokens: int = 32,
    do_sample: bool = True,
    top_p: float = 1.0,
    top_k: int = 0,
    temperature: float = 1.0,
    batch_size: int = 32,
    fluency: Callable[[list[str], list[list[int]]], Any] | str | None = None,
    perplexity: Callable[[float], float] | None = None,
    progress: bool | None = None,
) -> Any:
    """Generate at every strength of ``method``, score, tabulate (columns and keys: the module docstring).

    Args:
        method: a :class:`~clm.methods.base.Method` (interpolation, prompting, steering, logit
            arithmetic, mixture).
        strengths: the strengths (default: the method's ``dial.grid``).
        prompts: a prompts file (:func:`clm.data.read_texts`) or a list; ``n_prompts`` keeps the first.
        scorers: attribute -> scorer, column ``score_<attribute>`` (kept across runs with a fingerprint).
        out: the table (.parquet or .csv); batches go to ``<out>.parts/`` and a rerun reuses them.
        fluency: ``(prompts, token_ids) -> perplexities`` under the base, column ``ppl`` (e.g.
            :func:`clm.experiments.sweep_scoring.base_fluency`, which has a fingerprint, or
            :func:`clm.methods.dev.base_fluency`, recomputed each run); ``"base"`` for a method on
            an InterpolatedModel; None: no ``ppl``.
        perplexity: ``strength -> float``, column ``wikitext_ppl`` (:func:`interpolation_perplexity`,
            :func:`steering_perplexity`).
        n_samples, seeds, max_new_tokens, do_sample, top_p, top_k, temperature, batch_size,
        progress: as :func:`clm.experiments.sweep.run_sweep`.
    """
    if not isinstance(method, Method):
        raise ConfigError(f"run_method_sweep needs a clm.methods Method, got {type(method).__name__}")
    values, prompts, out = _strengths(method, strengths), read_prompts(prompts, n_prompts), check_out(out)
    seeds = check_counts(n_samples, batch_size, max_new_tokens, seeds)
    gen_kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k)
    tokenizer = getattr(method, "tokenizer", None) or getattr(_base_model(method), "tokenizer", None)
    source = MethodSource(method)
    job = Job(source, values, prompts, gen_kw, Scoring(scorers, _fluency(method, fluency, batch_size), tokenizer))
    chunks = plan_chunks(values, prompts, n_samples, seeds, batch_size, gen_kw, source)
    done = load_done(out, parts_dir(out))
    return execute(job, chunks, done, out, Shard(), perplexity, progress)
