"""Sweeps: generate at many settings of (α, λ), score every continuation, keep a tidy table.

A sweep is a list of :class:`Setting` (from a design below) × prompts × samples × seeds. Every
(setting, prompt, sample) row is one generation; rows of *different* settings run together in
one batch, each with its own weights (the engine's per-row coefficients), so a grid of 13 α
values costs what one setting costs at 13× the batch.

Designs live in :mod:`clm.experiments.designs` (:func:`~clm.experiments.designs.single_attribute`,
``multi_attribute``, ``simplex``, ``custom``); scoring and fluency in :mod:`clm.experiments.sweep_scoring`.
What generates at a setting and how a setting is keyed is a *source* (:mod:`clm.experiments.sweep_source`):
here weights on an InterpolatedModel; :mod:`clm.experiments.method_sweep` runs a method's dial on this loop.

Running (:func:`run_sweep`) is resumable and idempotent. The rows are cut into chunks of
``batch_size``; each chunk is keyed by what its generations depend on (the generation settings,
its rows' settings and prompt texts, and only the endpoints those settings use:
:mod:`clm.experiments.keys`) and written to ``<out>.parts/`` as soon as it is scored, so a crash
loses at most one batch and a rerun skips every finished chunk. Scores and fluency are keyed
apart, by the scorers' and the fluency model's fingerprints, so a kept chunk is re-scored, not
regenerated, when only they change (:mod:`clm.experiments.sweep_scoring`). The final table is
written to ``out`` (Parquet or CSV), atomically; a rerun with the same arguments writes the same
bytes. Sampling is seeded per chunk (from its key), so a resumed sweep gives the table an
uninterrupted one would; keep ``batch_size`` and the generation settings fixed to resume, since
they change the chunks. Appending settings keeps the chunks before them.

Sharded (``rank``/``world``, or from ``torch.distributed``, e.g. under ``torchrun``): chunk ``i``
belongs to rank ``i % world``; each rank writes its parts, and rank 0 merges them after a
barrier into the table a single process would write.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.eval.scoring import Scorer
from clm.experiments.designs import Setting, as_settings
from clm.experiments.keys import chunk_key, chunk_seed
from clm.experiments.sweep_scoring import Scoring, base_fluency
from clm.experiments.sweep_shard import barrier, clear_marks, mark_done, resolve_shard, wait_for_ranks
from clm.experiments.sweep_source import WeightsSource
from clm.experiments.tables import check_out, read_table, write_table

__all__ = [
    "Job", "SweepPlan", "check_counts", "execute", "load_done", "parts_dir", "plan_chunks", "read_prompts", "run_sweep",
]  # fmt: skip

#: A generation's columns, as stored (the setting columns are derived from the settings).
GEN_COLUMNS = ("seed", "prompt_index", "prompt", "sample", "continuation", "n_tokens", "finished", "chunk", "token_ids")


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


def read_prompts(prompts: Any, n_prompts: int | None) -> list[str]:
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
    gen_kw: Mapping[str, Any],
    source: Any,
) -> list[dict[str, Any]]:
    """Cut the rows (seed, setting, prompt, sample), in that order, into chunks of ``batch_size``.

    Each chunk: ``{"key": content hash, "seed": RNG seed for its batch, "rows": [(setting index,
    prompt index, sample, seed), ...]}``. The key (:func:`clm.experiments.keys.chunk_key`) covers
    ``gen_kw``, the rows (each setting as ``source.key(setting)``), and ``source.digest(settings of
    its rows)`` (:mod:`clm.experiments.sweep_source`; for weights: the digest of only the endpoints
    they use). Appending settings keeps the keys of the chunks before them."""
    rows = [
        (si, pi, k, seed)
        for seed in seeds
        for si in range(len(settings))
        for pi in range(len(prompts))
        for k in range(n_samples)
    ]
    chunks = []
    for start in range(0, len(rows), batch_size):
        part = rows[start : start + batch_size]
        digest = source.digest([settings[si] for si, _, _, _ in part])
        key = chunk_key(gen_kw, digest, [(source.key(settings[si]), prompts[pi], pi, k, s) for si, pi, k, s in part])
        chunks.append({"key": key, "seed": chunk_seed(key), "rows": part})
    return chunks


# ---------------------------------------------------------------------- one batch
@dataclass
class Job:
    """Everything a chunk needs: what generates (:mod:`clm.experiments.sweep_source`), the rows'
    settings and prompts, generation and scoring."""

    source: Any
    settings: list[Any]
    prompts: list[str]
    gen_kw: dict[str, Any]
    scoring: Scoring


def _generate(job: Job, chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate one chunk: its generation columns, one dict per row."""
    rows = chunk["rows"]
    gens = job.source.generate(
        [job.prompts[pi] for _, pi, _, _ in rows], [job.settings[si] for si, _, _, _ in rows], chunk["seed"], job.gen_kw
    )
    return [
        dict(
            seed=seed,
            prompt_index=pi,
            prompt=job.prompts[pi],
            sample=k,
            continuation=g.text,
            n_tokens=len(g.token_ids),
            finished=bool(g.finished),
            chunk=chunk["key"],
            token_ids=json.dumps(g.token_ids),
        )
        for (_, pi, k, seed), g in zip(rows, gens)
    ]


def _stored_rows(chunk: dict[str, Any], old: Any) -> list[dict[str, Any]] | None:
    """A stored chunk's generation columns, one dict per row; None unless they are its rows."""
    rows = chunk["rows"]
    if len(old) != len(rows) or not {"prompt_index", "sample", "seed", "continuation"} <= set(old.columns):
        return None
    if [tuple(map(int, r)) for r in zip(old["prompt_index"], old["sample"], old["seed"])] != [
        (pi, k, s) for _, pi, k, s in rows
    ]:
        return None
    tokens = old["token_ids"] if "token_ids" in old.columns else [None] * len(old)
    return [
        dict(
            seed=int(seed),
            prompt_index=int(pi),
            prompt=str(prompt),
            sample=int(k),
            continuation=cont if isinstance(cont, str) else "",  # a CSV reads "" as NaN
            n_tokens=int(n),
            finished=bool(fin),
            chunk=chunk["key"],
            token_ids=tok if isinstance(tok, str) else None,
        )
        for seed, pi, prompt, k, cont, n, fin, tok in zip(
            old["seed"], old["prompt_index"], old["prompt"], old["sample"], old["continuation"],
            old["n_tokens"], old["finished"], tokens,
        )
    ]  # fmt: skip


def _chunk_table(job: Job, chunk: dict[str, Any], old: Any = None) -> tuple[Any, bool]:
    """One chunk's rows, generated (``old`` None or not its rows) or kept from ``old`` and
    completed with the scores and fluency whose keys changed. Returns (table, computed anything)."""
    import pandas as pd

    records = None if old is None else _stored_rows(chunk, old)
    generated = records is None
    if generated:
        records, old = _generate(job, chunk), None
    df = pd.DataFrame.from_records(
        [{**job.source.columns(job.settings[si]), **rec} for (si, _, _, _), rec in zip(chunk["rows"], records)]
    )
    computed = job.scoring.complete(df, old)
    return df, generated or computed


# ---------------------------------------------------------------------- stored chunks
def parts_dir(out: Path | None) -> Path | None:
    return None if out is None else out.with_name(out.name + ".parts")


def load_done(out: Path | None, parts: Path | None) -> dict[str, Any]:
    """Chunk key -> its stored rows, from the table at ``out`` and then the parts (newer) beside it."""
    import pandas as pd

    done: dict[str, Any] = {}
    if out is not None and out.is_file():
        old = read_table(out, required=GEN_COLUMNS[:-1])  # token_ids: absent from older tables
        if "chunk" in old.columns:
            done.update({k: g.reset_index(drop=True) for k, g in old.groupby("chunk", sort=False)})
    if parts is not None and parts.is_dir():
        for f in sorted(parts.glob("*.parquet")):
            done[f.stem] = pd.read_parquet(f)
    return done


def _run_chunks(job: Job, chunks: list[dict[str, Any]], done: dict[str, Any], parts: Path | None, bar: Any) -> None:
    """Make every chunk of ``chunks`` complete in ``done``: generate what is missing, re-score what
    is stale, and write each chunk that changed to ``parts`` (atomically) as soon as it is done."""
    for c in chunks:
        old = done.get(c["key"])
        df, changed = _chunk_table(job, c, old)
        if changed and parts is not None:
            write_table(df, parts / f"{c['key']}.parquet")
        done[c["key"]] = df
        if old is None:
            bar.update(len(c["rows"]))


def _assemble(job: Job, chunks: list[dict[str, Any]], done: dict[str, Any]) -> Any:
    """The table: every chunk's rows in order, the columns in one order."""
    import pandas as pd

    table = pd.concat([done[c["key"]] for c in chunks], ignore_index=True)
    first = list(job.source.columns(job.settings[0])) + list(GEN_COLUMNS)
    scores = [f"score_{a}" for a in job.scoring.scorers] + ["scored_by"]
    fluency = ["ppl", "ppl_by"] if job.scoring.fluency is not None else []
    return table[first + scores + fluency]


def _finish(table: Any, out: Path, parts: Path) -> Any:
    """Write the table atomically, then remove the parts folded into it; the table as read back."""
    write_table(table, out)
    if parts.is_dir():
        clear_marks(parts)
        for f in parts.iterdir():  # its parts, and temp files of writes a kill interrupted
            if f.suffix == ".parquet" or (f.name.startswith(".") and f.name.endswith(".tmp")):
                f.unlink(missing_ok=True)
        if not any(parts.iterdir()):
            parts.rmdir()
    return read_table(out)  # the same dtypes as any later read


# ---------------------------------------------------------------------- running
def check_counts(n_samples: Any, batch_size: Any, max_new_tokens: Any, seeds: Any) -> list[int]:
    for name, value in (("n_samples", n_samples), ("batch_size", batch_size), ("max_new_tokens", max_new_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    return seeds


def _fluency(im: Any, fluency: Any, batch_size: int) -> Any:
    if fluency == "base":
        return base_fluency(im, batch_size=batch_size)
    if isinstance(fluency, str) or not (fluency is None or callable(fluency)):
        raise ConfigError(f"fluency must be 'base', a callable or None, got {fluency!r}")
    return fluency


def _plan(job: Job, chunks: list[dict[str, Any]], done: dict[str, Any], n_samples: int, seeds: list[int]) -> SweepPlan:
    todo = [c for c in chunks if c["key"] not in done]
    n_rows = sum(len(c["rows"]) for c in chunks)
    n_todo = sum(len(c["rows"]) for c in todo)
    bs = max((len(c["rows"]) for c in chunks), default=0)
    return SweepPlan(
        len(job.settings), len(job.prompts), n_samples, seeds, n_rows, n_rows - n_todo, bs, len(chunks), len(todo),
        job.gen_kw["max_new_tokens"], chunks=chunks,
    )  # fmt: skip


def _estimate(
    plan: SweepPlan, job: Job, done: dict[str, Any], batch_size: int, tokens_per_s: float | None
) -> SweepPlan:
    todo = [c for c in plan.chunks if c["key"] not in done]
    if not todo:
        plan.seconds_per_chunk = 0.0
    elif tokens_per_s:
        plan.seconds_per_chunk = batch_size * plan.max_new_tokens / tokens_per_s
    else:  # time one batch, which is not kept
        t0 = time.perf_counter()
        _chunk_table(job, todo[0])
        plan.seconds_per_chunk = time.perf_counter() - t0
    return plan


def _job(
    im: Any, settings: list[Setting], prompts: list[str], scorers: Any, fluency: Any, batch_size: int, gen_kw: dict
) -> Job:
    attributes = list(im.attributes)
    for s in settings:
        s.weights.coefficients(attributes)  # unknown attributes fail here, before any work
    scoring = Scoring(scorers, _fluency(im, fluency, batch_size), getattr(im, "tokenizer", None))
    return Job(WeightsSource(im, attributes), settings, prompts, gen_kw, scoring)


def _plan_id(job: Job, chunks: list[dict]) -> str:
    """What a sharded run's ranks must agree on: the chunks and the scoring keys."""
    keys = [c["key"] for c in chunks] + [job.scoring.fingerprints, job.scoring.fluency_fp]
    return hashlib.sha1(json.dumps(keys, default=str).encode()).hexdigest()


def execute(
    job: Job, chunks: list[dict], done: dict, out: Path | None, shard: Any, perplexity: Any, progress: Any
) -> Any:
    """Run this rank's chunks; on rank 0 (after the others, when sharded), assemble and write the table."""
    from tqdm.auto import tqdm

    parts = parts_dir(out)
    mine = chunks[shard.rank :: shard.world]
    total = sum(len(c["rows"]) for c in mine)
    todo = sum(len(c["rows"]) for c in mine if c["key"] not in done)
    with tqdm(
        total=total, initial=total - todo, desc="sweep", unit="gen", disable=None if progress is None else not progress
    ) as bar:
        _run_chunks(job, mine, done, parts, bar)
        if shard.world > 1:
            plan = _plan_id(job, chunks)
            mark_done(shard, parts, plan)
            wait_for_ranks(shard, parts, plan)
            barrier(shard)
            if shard.rank != 0:
                barrier(shard)  # while rank 0 writes the table
                return read_table(out) if shard.distributed else None
            done = load_done(out, parts)
            _run_chunks(job, chunks, done, None, bar)  # a no-op unless a rank failed or a scorer has no fingerprint
    table = _assemble(job, chunks, done)
    table = job.source.complete_table(table, job.settings, perplexity, out, progress)
    if out is not None:
        table = _finish(table, out, parts)
    if shard.world > 1:
        barrier(shard)
    return table


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
    rank: int | None = None,
    world: int | None = None,
) -> Any:
    """Generate, score and tabulate: one row per (seed, setting, prompt, sample).

    Args:
        im: an :class:`clm.InterpolatedModel`.
        settings: a list of :class:`Setting` (from a design), Weights, or their text forms.
        prompts: a prompts file (:func:`clm.data.read_texts`) or a list; ``n_prompts`` keeps the first.
        scorers: attribute -> scorer (``.score(texts)`` or a callable) giving P(high), column
            ``score_<attribute>``; kept across runs only with a fingerprint (:mod:`clm.experiments.keys`).
        out: the table (.parquet or .csv); finished batches go to ``<out>.parts/`` and a rerun
            skips them. None: in memory only.
        fluency: ``"base"`` (each continuation's perplexity under the base model, column ``ppl``),
            a callable ``(prompts, token_ids) -> array`` (kept with a ``fingerprint``), or None.
        perplexity: ``weights -> float`` (e.g. :func:`wikitext_perplexity`), once per setting,
            column ``wikitext_ppl`` (:func:`perplexity_table`).
        n_samples, seeds: continuations per prompt, and the seeds to repeat the sweep with.
        max_new_tokens, do_sample, temperature, top_p, top_k: generation (default: the paper's
            pure sampling, 32 new tokens).
        batch_size: rows per forward pass; rows of several settings share a batch.
        progress: a progress bar with ETA (default: when interactive).
        dry_run: return a :class:`SweepPlan` (time from ``tokens_per_s``, else one timed batch).
        rank, world: this process's share (default: ``torch.distributed``/``torchrun``'s, else
            one process); needs ``out``.

    Returns:
        The table (a DataFrame), or the :class:`SweepPlan`; None on ranks > 0 without torch.distributed.
    """
    settings, prompts, out = as_settings(settings), read_prompts(prompts, n_prompts), check_out(out)
    seeds = check_counts(n_samples, batch_size, max_new_tokens, seeds)
    gen_kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k)
    job = _job(im, settings, prompts, scorers, fluency, batch_size, gen_kw)
    chunks = plan_chunks(settings, prompts, n_samples, seeds, batch_size, gen_kw, job.source)
    shard = resolve_shard(rank, world, out)
    done = load_done(out, parts_dir(out))
    if dry_run:
        return _estimate(_plan(job, chunks, done, n_samples, seeds), job, done, batch_size, tokens_per_s)
    return execute(job, chunks, done, out, shard, perplexity, progress)
