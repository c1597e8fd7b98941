"""Schedules against fixed settings: generate at each, score the whole continuation, its halves and
its windows of generated tokens, keep a tidy table.

    sched = schedule_sweep(im, {"arc 0 → 1": Schedule({"sentiment": [(0, 0.0), (63, 1.0)]}),
                                "α = 0": Weights({"sentiment": 0.0})},
                           prompts, scorers, out="runs/cpu/tables/schedule.parquet", max_new_tokens=64)
    sched[sched.part == "window"].groupby(["label", "end"])["score_sentiment"].mean()

One row per (label, prompt, sample, seed, part). ``part`` is ``"all"`` (the whole continuation),
``"first half"`` and ``"second half"`` (generated tokens [0, n // 2) and [n // 2, n) of a
continuation of n tokens), or ``"window"``: consecutive windows [0, w), [w, 2w), … of ``window``
generated tokens, the last one shorter where n is not a multiple of w, so that the windows tile
the continuation. ``start`` and ``end`` are those token positions (end exclusive); ``text`` is the
tokenizer's decoding of that slice of the generated tokens (``token_ids``, JSON) and every scorer
scores it (``score_<attribute>``).

Resumable and keyed like :func:`clm.experiments.sweep.run_sweep` (:mod:`clm.experiments.keys`):
each label's rows are cut into batches of ``batch_size``, each keyed by the generation settings,
the rows' (setting, prompt text, prompt index, sample, seed) and the digest of only the endpoints
its setting uses, and sampled at a seed drawn from that key. A batch is written to ``<out>.parts/``
(atomically) as soon as it is scored and reused on a rerun while its key holds, so a rerun with
the same arguments generates nothing, and a changed schedule regenerates only its label's
batches. A setting is keyed by what its tokens are drawn at: a schedule by its JSON, a fixed
setting (or a constant schedule, which generates exactly what its setting does) by the Weights'
JSON; labels with the same key share their batches. The label is not part of the key (renaming
one regenerates nothing). Scores are keyed by the
scorers' fingerprints (column ``scored_by``; :mod:`clm.experiments.sweep_scoring`): new scorers, or
a new ``window``, re-score the kept generations instead of regenerating them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clm.core.schedule import Schedule, as_schedule
from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.experiments.keys import chunk_key, chunk_seed, endpoints_for
from clm.experiments.sweep import parts_dir
from clm.experiments.sweep_scoring import Scoring
from clm.experiments.tables import check_out, read_table, write_table

__all__ = ["PARTS", "schedule_sweep", "parts_of"]

#: The values of the ``part`` column, in the order a continuation's rows come.
PARTS = ("all", "first half", "second half", "window")
#: The columns before the scores.
COLUMNS = ("label", "schedule", "prompt_index", "prompt", "sample", "seed", "part", "start", "end", "text")
#: The stored columns after the scores.
TAIL = ("token_ids", "finished", "scored_by", "chunk")


# ---------------------------------------------------------------------- settings and their keys
def _setting(label: Any, value: Any) -> Schedule | Weights:
    """A label's setting: a Schedule, or a fixed Weights (text and α dicts parse as a schedule)."""
    if not isinstance(label, str) or not label:
        raise ConfigError(f"schedule labels must be non-empty strings, got {label!r}")
    if isinstance(value, (Schedule, Weights)):
        return value
    if isinstance(value, (str, Mapping)) or value is None:
        return as_schedule(value)
    raise ConfigError(f"schedules[{label!r}] must be a Schedule or Weights, got {value!r}")


def _key_json(setting: Schedule | Weights) -> str:
    """What a setting's tokens are drawn at, as JSON: a constant schedule is its Weights."""
    if isinstance(setting, Schedule):
        return setting.at(0).to_json() if setting.is_constant else "schedule:" + setting.to_json()
    return setting.to_json()


def _keyframe_weights(setting: Schedule | Weights) -> list[Weights]:
    """The settings a schedule bends at (α and λ are linear in between), or the fixed one."""
    return [setting.at(t) for t in setting.times] if isinstance(setting, Schedule) else [setting]


def parts_of(ids: Sequence[int], window: int) -> list[tuple[str, int, int]]:
    """``(part, start, end)`` of a continuation of ``len(ids)`` generated tokens (see the module)."""
    n = len(ids)
    out = [("all", 0, n), ("first half", 0, n // 2), ("second half", n // 2, n)]
    return out + [("window", s, min(s + window, n)) for s in range(0, n, window)]


# ---------------------------------------------------------------------- the plan
def _chunks(
    labels: list[str], settings: dict[str, Any], prompts: list[str], n_samples: int, seeds: list[int],
    batch_size: int, gen_kw: dict[str, Any], im: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per label, its rows (prompt index, sample, seed) cut into batches of ``batch_size``, each
    keyed (:func:`~clm.experiments.keys.chunk_key`) and seeded from its key."""
    out = []
    for label in labels:
        s = settings[label]
        text, digest = _key_json(s), endpoints_for(im, _keyframe_weights(s))
        rows = [(pi, k, seed) for seed in seeds for pi in range(len(prompts)) for k in range(n_samples)]
        for b in range(0, len(rows), batch_size):
            part = rows[b : b + batch_size]
            key = chunk_key(gen_kw, digest, [(text, prompts[pi], pi, k, seed) for pi, k, seed in part])
            out.append({"key": key, "seed": chunk_seed(key), "label": label, "rows": part})
    return out


# ---------------------------------------------------------------------- one batch
def _generate(im: Any, setting: Any, prompts: list[str], chunk: dict[str, Any], gen_kw: dict) -> list[dict]:
    """One batch's generations: per row its token ids, text and whether it stopped at EOS."""
    gens = im.generate(
        [prompts[pi] for pi, _, _ in chunk["rows"]], weights=setting, seed=chunk["seed"], num_samples=1,
        batch_size=None, progress=False, **gen_kw,
    )  # fmt: skip
    return [dict(ids=list(g.token_ids), text=g.text, finished=bool(g.finished)) for g in gens]


def _stored_gens(chunk: dict[str, Any], old: Any) -> list[dict] | None:
    """A stored batch's generations from its ``all`` rows; None unless they are its rows."""
    need = {"part", "prompt_index", "sample", "seed", "text", "token_ids", "finished"}
    if old is None or not need <= set(old.columns):
        return None
    whole = old[old["part"] == "all"]
    if [tuple(map(int, r)) for r in zip(whole["prompt_index"], whole["sample"], whole["seed"])] != chunk["rows"]:
        return None
    if not all(isinstance(t, str) for t in whole["token_ids"]):
        return None
    return [
        dict(ids=json.loads(t), text=x if isinstance(x, str) else "", finished=bool(f))  # a CSV reads "" as NaN
        for t, x, f in zip(whole["token_ids"], whole["text"], whole["finished"])
    ]


def _rows(chunk: dict, gens: list[dict], prompts: list[str], window: int, decode: Callable) -> list[dict]:
    """The tidy rows of one batch (without label and schedule), parts in :func:`parts_of` order."""
    out = []
    for (pi, k, seed), g in zip(chunk["rows"], gens):
        for part, a, b in parts_of(g["ids"], window):
            ids = g["ids"][a:b]
            text = g["text"] if part == "all" else decode(ids)
            out.append(
                dict(prompt_index=pi, prompt=prompts[pi], sample=k, seed=seed, part=part, start=a, end=b,
                     text=text, token_ids=json.dumps(ids), finished=g["finished"], chunk=chunk["key"])
            )  # fmt: skip
    return out


def _same_rows(df: Any, old: Any) -> bool:
    """Whether a stored batch holds exactly the rows (and texts) of ``df``, so its scores may be kept."""
    cols = ["prompt_index", "sample", "seed", "part", "start", "end", "text"]
    if old is None or len(old) != len(df) or not set(cols) <= set(old.columns):
        return False
    texts = old["text"].where(old["text"].map(lambda x: isinstance(x, str)), "")
    return list(map(tuple, df[cols].to_numpy().tolist())) == list(
        map(tuple, old[cols[:-1]].assign(text=texts).to_numpy().tolist())
    )


def _batch(job: dict[str, Any], chunk: dict[str, Any], old: Any) -> tuple[Any, bool]:
    """One batch's rows, generated (or kept from ``old``) and scored (or kept). Returns (table,
    whether anything was computed)."""
    import pandas as pd

    gens = _stored_gens(chunk, old)
    generated = gens is None
    if generated:
        gens = _generate(job["im"], job["settings"][chunk["label"]], job["prompts"], chunk, job["gen_kw"])
    df = pd.DataFrame.from_records(_rows(chunk, gens, job["prompts"], job["window"], job["decode"]))
    keep = None if generated or not _same_rows(df, old) else old
    scored = df.rename(columns={"text": "continuation"})
    computed = job["scoring"].complete(scored, keep)
    df = scored.rename(columns={"continuation": "text"})
    return df, generated or computed or keep is None


# ---------------------------------------------------------------------- stored batches
def _load_done(out: Path | None, parts: Path | None) -> dict[str, Any]:
    """Batch key -> its stored rows: from the table at ``out``, then the parts beside it (newer)."""
    import pandas as pd

    done: dict[str, Any] = {}
    if out is not None and out.is_file():
        old = read_table(out)
        if {"chunk", "label"} <= set(old.columns):  # labels that share a batch hold it once each
            for k, g in old.groupby("chunk", sort=False):
                done[k] = g[g["label"] == g["label"].iloc[0]].drop(columns=["label", "schedule"]).reset_index(drop=True)
    if parts is not None and parts.is_dir():
        for f in sorted(parts.glob("*.parquet")):
            done[f.stem] = pd.read_parquet(f)
    return done


def _finish(table: Any, out: Path, parts: Path) -> Any:
    """Write the table atomically, then remove the parts folded into it; the table as read back."""
    write_table(table, out)
    if parts.is_dir():
        for f in parts.iterdir():  # its parts, and temp files of writes a kill interrupted
            if f.suffix == ".parquet" or (f.name.startswith(".") and f.name.endswith(".tmp")):
                f.unlink(missing_ok=True)
        if not any(parts.iterdir()):
            parts.rmdir()
    back = read_table(out)
    back["text"] = back["text"].where(back["text"].map(lambda x: isinstance(x, str)), "")  # a CSV reads "" as NaN
    return back


# ---------------------------------------------------------------------- running
def _check(n_samples: Any, max_new_tokens: Any, window: Any, batch_size: Any, seeds: Any) -> list[int]:
    for name, value in (("n_samples", n_samples), ("max_new_tokens", max_new_tokens), ("window", window),
                        ("batch_size", batch_size)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    return seeds


def _prompts(prompts: Any) -> list[str]:
    if isinstance(prompts, (str, os.PathLike)):
        from clm.data import read_texts

        return read_texts(prompts)
    out = list(prompts)
    if not out or not all(isinstance(p, str) and p for p in out):
        raise ConfigError("prompts must be a file path or a non-empty list of non-empty strings")
    return out


def _settings(im: Any, schedules: Any) -> dict[str, Schedule | Weights]:
    if not isinstance(schedules, Mapping) or not schedules:
        raise ConfigError(f"schedules must be a non-empty mapping of label -> Schedule or Weights, got {schedules!r}")
    settings = {label: _setting(label, v) for label, v in schedules.items()}
    attributes = list(im.attributes)
    for s in settings.values():
        for w in _keyframe_weights(s):
            w.coefficients(attributes)  # unknown attributes fail here, before any work
    return settings


def schedule_sweep(
    im: Any,
    schedules: Mapping[str, Schedule | Weights],
    prompts: str | os.PathLike | Sequence[str],
    scorers: Mapping[str, Any],
    *,
    out: str | os.PathLike | None = None,
    n_samples: int = 1,
    seeds: Sequence[int] = (0,),
    max_new_tokens: int = 64,
    window: int = 16,
    batch_size: int = 32,
    do_sample: bool = True,
    top_p: float = 1.0,
    progress: bool | None = None,
) -> Any:
    """Generate at every schedule (or fixed setting), score every part, tabulate (see the module).

    Args:
        im: an :class:`~clm.core.engine.InterpolatedModel`.
        schedules: label -> a :class:`~clm.core.schedule.Schedule` or a fixed :class:`Weights`
            (text or α dicts parse as a schedule), e.g. ``{"arc 0 → 1": arc, "α = 0": Weights(...)}``.
        prompts: a list, or a prompts file (:func:`clm.data.read_texts`).
        scorers: attribute -> scorer (``.score(texts)`` or a callable), column ``score_<attribute>``;
            kept across runs only with a fingerprint (:mod:`clm.experiments.keys`).
        out: the table (.parquet or .csv); finished batches go to ``<out>.parts/``. None: in memory.
        n_samples, seeds: continuations per prompt, and the seeds the whole sweep repeats with.
        max_new_tokens, do_sample, top_p: generation (temperature 1, no top-k).
        window: generated tokens per ``"window"`` row.
        batch_size: rows per forward pass (rows of one label share a batch).
        progress: a progress bar over the generations (default: when interactive).

    Returns:
        The table (a DataFrame; read back from ``out`` when given): columns label, schedule (the
        setting's text), prompt_index, prompt, sample, seed, part, start, end, text,
        score_<attribute>…, token_ids, finished, scored_by, chunk.
    """
    seeds = _check(n_samples, max_new_tokens, window, batch_size, seeds)
    settings, prompts, out = _settings(im, schedules), _prompts(prompts), check_out(out)
    gen_kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=1.0, top_p=top_p, top_k=0)
    chunks = _chunks(list(settings), settings, prompts, n_samples, seeds, batch_size, gen_kw, im)
    tok = im.tokenizer
    job = dict(im=im, settings=settings, prompts=prompts, gen_kw=gen_kw, window=window,
               decode=lambda ids: tok.decode(ids, skip_special_tokens=True),
               scoring=Scoring(scorers, None, tok))  # fmt: skip
    parts = parts_dir(out)
    table = _run(job, chunks, _load_done(out, parts), parts, progress, list(scorers))
    return table if out is None else _finish(table, out, parts)


def _run(job: dict, chunks: list[dict], done: dict[str, Any], parts: Path | None, progress: Any, attrs: list) -> Any:
    """Complete every batch (generate what is missing, re-score what is stale, write each that
    changed to ``parts`` as soon as it is done) and assemble the table."""
    from tqdm.auto import tqdm

    total = sum(len(c["rows"]) for c in chunks)
    todo = sum(len(c["rows"]) for c in chunks if c["key"] not in done)
    tables = []
    with tqdm(total=total, initial=total - todo, desc="schedules", unit="gen",
              disable=None if progress is None else not progress) as bar:  # fmt: skip
        for c in chunks:
            old = done.get(c["key"])
            df, changed = _batch(job, c, old)
            if changed and parts is not None:
                write_table(df, parts / f"{c['key']}.parquet")
            done[c["key"]] = df
            tables.append(df.assign(label=c["label"], schedule=str(job["settings"][c["label"]])))
            if old is None:
                bar.update(len(c["rows"]))
    return _assemble(tables, attrs)


def _assemble(tables: list[Any], attributes: list[str]) -> Any:
    import pandas as pd

    table = pd.concat(tables, ignore_index=True)
    return table[[*COLUMNS, *(f"score_{a}" for a in attributes), *TAIL]]
