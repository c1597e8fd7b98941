"""Scoring a sweep's generations: ``score_<attr>`` and fluency (``ppl``) per batch of rows.

Scores and fluency are keyed apart from the generations (:mod:`clm.experiments.keys`): each row
records which scorer made each score (``scored_by``, a JSON object attribute -> fingerprint) and
which model its fluency (``ppl_by``). :meth:`Scoring.complete` keeps a stored value only where
that key equals the current one, and recomputes the rest on the kept generations, so new scorers
re-score a table without regenerating it, and turning fluency on measures it for kept rows.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clm.core.weights import Weights
from clm.errors import ConfigError
from clm.eval.scoring import HeadScorer
from clm.experiments.keys import fluency_fingerprint, scorer_fingerprint


def base_fluency(im: Any, batch_size: int = 16) -> Callable[[list[str], list[list[int]]], np.ndarray]:
    """Fluency = perplexity of each continuation under the base model (α = 0 everywhere),
    given its prompt (:func:`clm.eval.perplexity.continuation_perplexity`). Its ``fingerprint``
    names the base model (and the batch size, which pads the rows)."""

    def fluency(prompts: list[str], token_ids: list[list[int]]) -> np.ndarray:
        from clm.eval.perplexity import continuation_perplexity

        return continuation_perplexity(
            im, prompts, token_ids, weights=Weights.base(), batch_size=batch_size, progress=False
        )

    ends = getattr(im, "endpoints", None)
    if ends is not None:
        spec = json.dumps({"kind": "base-continuation-ppl/2", "base": ends.base_fingerprint, "batch_size": batch_size})
        fluency.fingerprint = hashlib.sha256(spec.encode()).hexdigest()[:20]
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


def _stored(old: Any, column: str) -> Any:
    """The one value of ``column`` over a stored batch's rows (None if absent or not one value)."""
    if old is None or column not in old.columns:
        return None
    values = old[column].dropna().unique()
    return values[0] if len(values) == 1 and len(old[column].dropna()) == len(old) else None


@dataclass
class Scoring:
    """The scorers and fluency of a sweep, with their fingerprints.

    Args:
        scorers: attribute -> scorer.
        fluency: ``(prompts, token_ids) -> array`` or None.
        tokenizer: tokenizes a kept continuation stored without its token ids (tables made
            before ``token_ids`` was recorded), for fluency.
    """

    scorers: Mapping[str, Any]
    fluency: Callable[[list[str], list[list[int]]], Any] | None
    tokenizer: Any = None
    fingerprints: dict[str, str | None] = field(init=False)
    fluency_fp: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprints = {a: scorer_fingerprint(s) for a, s in self.scorers.items()}
        self.fluency_fp = fluency_fingerprint(self.fluency) if self.fluency is not None else None

    def complete(self, df: Any, old: Any = None) -> bool:
        """Add the score and fluency columns to ``df`` (one batch's setting and generation columns),
        taking from ``old`` (the same rows as stored) each value whose key holds. Returns whether
        anything was computed."""
        texts = df["continuation"].tolist()
        stored = _stored(old, "scored_by")
        stored = json.loads(stored) if isinstance(stored, str) else {}
        keep = {
            a
            for a, fp in self.fingerprints.items()
            if fp is not None and stored.get(a) == fp and f"score_{a}" in old.columns
        }
        need = {a: s for a, s in self.scorers.items() if a not in keep}
        new = score_all(texts, need) if need else {}
        for a in self.scorers:
            df[f"score_{a}"] = old[f"score_{a}"].to_numpy(float) if a in keep else new[f"score_{a}"]
        df["scored_by"] = json.dumps(self.fingerprints)
        if self.fluency is None:
            return bool(need)
        fp = self.fluency_fp
        if fp is not None and "ppl" in getattr(old, "columns", ()) and _stored(old, "ppl_by") == fp:
            df["ppl"] = old["ppl"].to_numpy(float)
            df["ppl_by"] = fp
            return bool(need)
        df["ppl"] = np.asarray(self.fluency(df["prompt"].tolist(), self._token_ids(df)), dtype=float)
        df["ppl_by"] = fp
        return True

    def _token_ids(self, df: Any) -> list[list[int]]:
        ids = []
        for text, stored in zip(df["continuation"], df["token_ids"]):
            if isinstance(stored, str):
                ids.append(json.loads(stored))
            elif self.tokenizer is None:
                raise ConfigError("fluency of a stored continuation without token ids needs the model's tokenizer")
            else:
                ids.append(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids
