"""Sweeps: generate at many settings of (α, λ), score every continuation, keep a tidy table.

A sweep is a list of :class:`Setting` (from a design below) × prompts × samples × seeds. Every
(setting, prompt, sample) row is one generation; rows of *different* settings run together in
one batch, each with its own weights (the engine's per-row coefficients), so a grid of 13 α
values costs what one setting costs at 13× the batch.

Designs (:mod:`clm.designs`, re-exported here): :func:`single_attribute`, :func:`multi_attribute`,
:func:`simplex`, :func:`custom`.

Running (:func:`run_sweep`) is resumable. The rows are cut into chunks of ``batch_size``; each
chunk is keyed by its content (settings, prompts, seed, generation settings, endpoints) and
written to ``<out>.parts/`` as soon as it is scored, so a crash loses at most one batch and a
rerun skips every finished chunk. The final table is written to ``out`` (Parquet or CSV).
Sampling is seeded per chunk (from its key), so a resumed sweep gives the table an
uninterrupted one would; keep ``batch_size`` and the generation settings fixed to resume, since
they change the chunks. Appending settings keeps the chunks before them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.eval.scoring import HeadScorer, Scorer
from clm.experiments.designs import Setting, as_settings, setting_columns
from clm.experiments.tables import check_out, endpoints_digest, read_table, write_table


# ---------------------------------------------------------------------- the plan
@dataclass
class SweepPlan:
    """What a sweep will do (its dry run)."""

    n_settings: int
    n_prompts: int
    n_samples: int
    seeds: list[int]
    n_generations: int
    n_done: int
    batch_size: int
    n_chunks: int
    n_chunks_todo: int
    max_new_tokens: int
    seconds_per_chunk: float | None = None
    chunks: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def est_seconds(self) -> float | None:
        return None if self.seconds_per_chunk is None else self.seconds_per_chunk * self.n_chunks_todo

    def __str__(self) -> str:
        est = "unknown" if self.est_seconds is None else f"~{_duration(self.est_seconds)}"
        return (
            f"{self.n_generations:,} generations ({self.n_settings} settings x {self.n_prompts} prompts x "
            f"{self.n_samples} samples x {len(self.seeds)} seeds, {self.max_new_tokens} new tokens); "
            f"{self.n_done:,} done; {self.n_chunks_todo}/{self.n_chunks} batches of {self.batch_size} to run, {est}"
        )


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")


def _read_prompts(prompts: Any, n_prompts: int | None) -> list[str]:
    if isinstance(prompts, (str, os.PathLike)):
        from clm.data import read_texts

        return read_texts(prompts, limit=n_prompts)
    out = list(prompts)[:n_prompts] if n_prompts is not None else list(prompts)
    if not out or not all(isinstance(p, str) and p for p in out):
        raise ConfigError("prompts must be a file path or a non-empty list of non-empty strings")
    return out


def plan_chunks(
    settings: Sequence[Setting],
    prompts: Sequence[str],
    n_samples: int,
    seeds: Sequence[int],
    batch_size: int,
    config: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Cut the rows (seed, setting, prompt, sample), in that order, into chunks of ``batch_size``.

    Each chunk: ``{"key": content hash, "seed": RNG seed for its batch, "rows": [(setting index,
    prompt index, sample, seed), ...]}``. The key depends only on what the chunk generates, so
    appending settings keeps the keys of the chunks before them."""
    rows = [
        (si, pi, k, seed)
        for seed in seeds
        for si in range(len(settings))
        for pi in range(len(prompts))
        for k in range(n_samples)
    ]
    head = json.dumps(config, sort_keys=True)
    chunks = []
    for start in range(0, len(rows), batch_size):
        part = rows[start : start + batch_size]
        h = hashlib.sha1(head.encode())
        for si, pi, k, seed in part:
            h.update(json.dumps([settings[si].weights.to_json(), prompts[pi], pi, k, seed]).encode())
        key = h.hexdigest()[:20]
        chunks.append({"key": key, "seed": int(key[:7], 16), "rows": part})
    return chunks


# ---------------------------------------------------------------------- running
def base_fluency(im: Any, batch_size: int = 16) -> Callable[[list[str], list[list[int]]], np.ndarray]:
    """Fluency = perplexity of each continuation under the base model (α = 0 everywhere),
    given its prompt (:func:`clm.eval.perplexity.continuation_perplexity`)."""

    def fluency(prompts: list[str], token_ids: list[list[int]]) -> np.ndarray:
        from clm.eval.perplexity import continuation_perplexity

        return continuation_perplexity(
            im, prompts, token_ids, weights=Weights.base(), batch_size=batch_size, progress=False
        )

    return fluency


def _score(scorer: Any, texts: list[str]) -> np.ndarray:
    """P(high) per text from a scorer (``.score(texts)`` or a callable); no progress bars."""
    fn = scorer.score if hasattr(scorer, "score") else scorer
    try:
        quiet = {"progress": False} if "progress" in inspect.signature(fn).parameters else {}
    except (TypeError, ValueError):  # a builtin without a signature
        quiet = {}
    out = np.asarray(fn(texts, **quiet), dtype=float).reshape(-1)
    if out.shape[0] != len(texts):
        raise ConfigError(f"scorer {scorer!r} returned {out.shape[0]} scores for {len(texts)} texts")
    return out


def score_all(texts: list[str], scorers: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``score_<name>`` -> P(high) per text for every scorer. clm's head scorers that share an
    encoder share one embedding pass (:func:`clm.eval.scoring.score_texts`)."""
    heads = {n: s for n, s in scorers.items() if isinstance(s, HeadScorer)}
    out: dict[str, np.ndarray] = {}
    if heads:
        from clm.eval.scoring import score_texts

        df = score_texts(texts, heads, progress=False)
        out.update({f"score_{n}": df[f"score_{n}"].to_numpy(float) for n in heads})
    for name, sc in scorers.items():
        if name not in heads:
            out[f"score_{name}"] = _score(sc, texts)
    return {f"score_{n}": out[f"score_{n}"] for n in scorers}


def _run_chunk(im, chunk, settings, prompts, attributes, scorers, fluency, gen_kw) -> Any:
    import pandas as pd

    rows = chunk["rows"]
    gens = im.generate(
        [prompts[pi] for _, pi, _, _ in rows],
        weights=[settings[si].weights for si, _, _, _ in rows],
        seed=chunk["seed"],
        num_samples=1,
        batch_size=None,
        progress=False,
        **gen_kw,
    )
    records = []
    for (si, pi, k, seed), g in zip(rows, gens):
        records.append(
            {
                **setting_columns(settings[si], attributes),
                "seed": seed,
                "prompt_index": pi,
                "prompt": prompts[pi],
                "sample": k,
                "continuation": g.text,
                "n_tokens": len(g.token_ids),
                "finished": g.finished,
                "chunk": chunk["key"],
            }
        )
    df = pd.DataFrame.from_records(records)
    for col, values in score_all([g.text for g in gens], scorers).items():
        df[col] = values
    if fluency is not None:
        df["ppl"] = np.asarray(fluency([g.prompt for g in gens], [g.token_ids for g in gens]), dtype=float)
    return df


def run_sweep(
    im: Any,
    settings: Any,
    prompts: str | os.PathLike | Sequence[str],
    scorers: Mapping[str, Scorer | Callable[[list[str]], Any]],
    *,
    out: str | os.PathLike | None = None,
    fluency: Callable[[list[str], list[list[int]]], Any] | str | None = "base",
    perplexity: Callable[[Weights], float] | None = None,
    n_prompts: int | None = None,
    n_samples: int = 1,
    seeds: Sequence[int] = (0,),
    max_new_tokens: int = 32,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    batch_size: int = 32,
    progress: bool | None = None,
    dry_run: bool = False,
    tokens_per_s: float | None = None,
) -> Any:
    """Generate, score and tabulate: one row per (seed, setting, prompt, sample).

    Args:
        im: an :class:`clm.InterpolatedModel`.
        settings: a list of :class:`Setting` (from a design), Weights, or their text forms.
        prompts: a prompts file (read with :func:`clm.data.read_texts`: the ``prompt`` field of
            a .jsonl) or a list of prompts; ``n_prompts`` keeps the first ones.
        scorers: attribute -> scorer (``.score(texts)`` or a callable) giving P(high); becomes
            column ``score_<attribute>``.
        out: the table's path (.parquet or .csv); finished batches go to ``<out>.parts/`` and a
            rerun skips them. None: in memory only, nothing resumable.
        fluency: ``"base"`` (perplexity of each continuation under the base model, column
            ``ppl``), a callable ``(prompts, token_ids) -> array``, or None.
        perplexity: ``weights -> float`` (e.g. WikiText-2 perplexity), measured once per
            setting; see :func:`perplexity_table`. Adds column ``wikitext_ppl``.
        n_samples, seeds: continuations per prompt, and the seeds to repeat the sweep with.
        max_new_tokens, do_sample, temperature, top_p, top_k: generation; the defaults are the
            paper's pure sampling with 32 new tokens.
        batch_size: rows per forward pass; rows of several settings share a batch.
        progress: a progress bar with ETA (default: when interactive).
        dry_run: plan only: return a :class:`SweepPlan` with the number of generations and a
            time estimate (from ``tokens_per_s``, else by timing one batch, which is not kept).

    Returns:
        The tidy table (a pandas DataFrame), or the :class:`SweepPlan` for a dry run.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    settings = as_settings(settings)
    prompts = _read_prompts(prompts, n_prompts)
    out = check_out(out)
    for name, value in (("n_samples", n_samples), ("batch_size", batch_size), ("max_new_tokens", max_new_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    attributes = list(im.attributes)
    for s in settings:
        s.weights.coefficients(attributes)  # unknown attributes fail here, before any work
    if fluency == "base":
        fluency = base_fluency(im, batch_size=batch_size)
    elif isinstance(fluency, str):
        raise ConfigError(f"fluency must be 'base', a callable or None, got {fluency!r}")
    gen_kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k)
    config = {**gen_kw, "endpoints": endpoints_digest(im), "attributes": attributes}
    chunks = plan_chunks(settings, prompts, n_samples, seeds, batch_size, config)

    parts_dir = None if out is None else out.with_name(out.name + ".parts")
    done: dict[str, Any] = {}  # chunk key -> its rows
    if out is not None and out.is_file():
        old = read_table(out)
        if "chunk" in old.columns:
            done.update({k: g for k, g in old.groupby("chunk", sort=False)})
    if parts_dir is not None and parts_dir.is_dir():
        for f in parts_dir.glob("*.parquet"):
            if f.stem not in done:
                done[f.stem] = pd.read_parquet(f)
    todo = [c for c in chunks if c["key"] not in done]
    n_rows = sum(len(c["rows"]) for c in chunks)
    plan = SweepPlan(
        len(settings),
        len(prompts),
        n_samples,
        seeds,
        n_rows,
        n_rows - sum(len(c["rows"]) for c in todo),
        batch_size,
        len(chunks),
        len(todo),
        max_new_tokens,
        chunks=chunks,
    )
    if dry_run:
        if not todo:
            plan.seconds_per_chunk = 0.0
        elif tokens_per_s:
            plan.seconds_per_chunk = batch_size * max_new_tokens / tokens_per_s
        elif todo:
            t0 = time.perf_counter()
            _run_chunk(im, todo[0], settings, prompts, attributes, scorers, fluency, gen_kw)
            plan.seconds_per_chunk = time.perf_counter() - t0
        return plan

    bar = tqdm(
        total=n_rows,
        initial=plan.n_done,
        desc="sweep",
        unit="gen",
        disable=(not progress) if progress is not None else None,
    )
    try:
        for c in todo:
            df = _run_chunk(im, c, settings, prompts, attributes, scorers, fluency, gen_kw)
            if parts_dir is not None:
                write_table(df, parts_dir / f"{c['key']}.parquet")
            done[c["key"]] = df
            bar.update(len(c["rows"]))
    finally:
        bar.close()
    for c in chunks:  # parts from earlier runs may lack a scorer added since
        df = done[c["key"]]
        for name, sc in scorers.items():
            if f"score_{name}" not in df.columns:
                df[f"score_{name}"] = _score(sc, df["continuation"].fillna("").astype(str).tolist())
    table = pd.concat([done[c["key"]] for c in chunks], ignore_index=True)
    if perplexity is not None:
        from clm.experiments.sweep_perplexity import perplexity_table

        ppl = perplexity_table(
            settings,
            perplexity,
            attributes,
            out=None if out is None else out.with_name(out.stem + "_perplexity" + out.suffix),
        )
        table = table.merge(ppl[["setting", "wikitext_ppl"]], on="setting", how="left")
    if out is not None:
        write_table(table, out)
        for f in parts_dir.glob("*.parquet") if parts_dir.is_dir() else ():
            f.unlink()
        if parts_dir.is_dir() and not any(parts_dir.iterdir()):
            parts_dir.rmdir()
        table = read_table(out)  # the same dtypes as any later read
    return table
