"""Perplexity per setting: the fluency side of a sweep.

:func:`wikitext_perplexity` turns a text file (WikiText-2 test) into a ``weights -> perplexity``
callable that names what its values depend on (the endpoints, the text's sha256 and the window
settings); :func:`perplexity_table` measures it once per setting, resumably, reusing stored values
only in the same context. :func:`clm.experiments.sweep.run_sweep` calls them for its
``perplexity=``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clm.core.weights import Weights
from clm.experiments.designs import as_settings, setting_columns
from clm.experiments.keys import endpoints_for
from clm.experiments.tables import check_out, read_table, write_table


def wikitext_perplexity(im: Any, path: str | os.PathLike, **kwargs: Any) -> Callable[[Weights], float]:
    """``weights -> perplexity`` of ``im`` on a text file (e.g. WikiText-2 test), for
    :func:`perplexity_table` and ``run_sweep(perplexity=...)``. ``kwargs`` go to
    :func:`clm.eval.perplexity.sliding_window_perplexity` (``max_tokens``, ``stride``, ``window``...)."""

    text: list[str] = []  # the file's text, read once; cut after max_tokens when that is exact

    def perplexity(weights: Weights) -> float:
        from clm.eval.perplexity import sliding_window_perplexity

        if not text:
            text.append(text_for(im.tokenizer, path, kwargs.get("max_tokens")))
        return sliding_window_perplexity(im, text=text[0], weights=weights, progress=False, **kwargs).ppl

    # What a stored value depends on besides the weights: perplexity_table reuses only matches.
    # The endpoints are only those the setting uses (retraining one attribute keeps the others'
    # values); the text is named by its content, not its path, so tables measured on one machine
    # are reused on another that keeps the same file elsewhere.
    text_sha256 = hashlib.sha256(Path(path).read_bytes()).hexdigest()

    def context_for(weights: Weights) -> str:
        return json.dumps(
            {"endpoints": endpoints_for(im, [weights]), "text_sha256": text_sha256, "kwargs": kwargs},
            sort_keys=True,
            default=str,
        )

    perplexity.context_for = context_for
    perplexity.context = context_for(Weights.base())  # what the base setting's value depends on
    return perplexity


def text_for(tok: Any, path: str | os.PathLike, max_tokens: int | None) -> str:
    """The text :func:`clm.eval.perplexity.sliding_window_perplexity` reads from ``path`` (its non-blank
    lines), cut at the first line end after ``max_tokens`` tokens if the cut text gives the same
    first ``max_tokens`` tokens (so each setting does not re-tokenize a whole WikiText-2)."""
    from clm.io import read_utf8

    full = "\n".join(line for line in read_utf8(Path(path)).splitlines() if line.strip())
    if not max_tokens:
        return full
    ids = tok(full, add_special_tokens=False, verbose=False, return_offsets_mapping=True)
    if len(ids["input_ids"]) <= max_tokens:
        return full
    end = full.find("\n", ids["offset_mapping"][max_tokens][1])
    cut = full if end < 0 else full[:end]
    same = tok(cut, add_special_tokens=False, verbose=False)["input_ids"][:max_tokens] == ids["input_ids"][:max_tokens]
    return cut if same else full


def perplexity_table(
    settings: Any,
    perplexity: Callable[[Weights], float],
    attributes: Sequence[str] | None = None,
    *,
    out: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> Any:
    """One row per setting with ``wikitext_ppl = perplexity(weights)`` and the setting columns.

    Resumable: with ``out`` (.parquet or .csv), settings already measured there are skipped and
    the table is rewritten after each new setting."""
    import pandas as pd
    from tqdm.auto import tqdm

    settings = as_settings(settings)
    out = check_out(out)
    if attributes is None:
        attributes = list(dict.fromkeys(a for s in settings for a in s.weights.alpha))
    # Stored values are reused only when measured in the same context (the endpoints the setting
    # uses, text file and window settings), so retrained endpoints or another window never reuse
    # stale perplexities. ``perplexity.context_for(weights)`` gives it per setting, else
    # ``perplexity.context`` for all (a plain callable: "", reused by setting alone).
    per_setting = getattr(perplexity, "context_for", None)
    shared = str(getattr(perplexity, "context", ""))
    known: dict[tuple[str, str], float] = {}
    if out is not None and out.is_file():
        old = read_table(out, required=("weights", "wikitext_ppl", "context"))
        if "context" in old:
            known = {(w, str(c)): float(v) for w, c, v in zip(old["weights"], old["context"], old["wikitext_ppl"])}
    rows = []
    for s in tqdm(settings, desc="perplexity", disable=(not progress) if progress is not None else None):
        key = (s.weights.to_json(), per_setting(s.weights) if callable(per_setting) else shared)
        if key not in known:
            known[key] = float(perplexity(s.weights))
            if out is not None:
                write_table(_table(known), out)
        rows.append({**setting_columns(s, attributes), "wikitext_ppl": known[key], "context": key[1]})
    table = pd.DataFrame.from_records(rows).drop_duplicates("weights", ignore_index=True)
    if out is not None:
        write_table(table, out)
    return table


def _table(known: dict[tuple[str, str], float]) -> Any:
    """The values measured so far (written after each, so a crash loses at most one)."""
    import pandas as pd

    return pd.DataFrame(
        {"weights": [w for w, _ in known], "wikitext_ppl": list(known.values()), "context": [c for _, c in known]}
    )
