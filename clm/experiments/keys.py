"""What a sweep table's rows depend on, as keys: reuse a stored value only where its key still holds.

Three kinds of value, keyed apart (:mod:`clm.experiments.sweep` stores the keys beside them):

- a **generation** (column ``chunk``): one batch of rows is keyed by the generation settings,
  each row's (setting, prompt text, prompt index, sample, seed) and the digest of only the
  endpoints its settings use (:func:`used_attributes`, ``Endpoints.digest(attributes)``); the
  batch's sampling seed comes from that key, so retraining one attribute neither regenerates
  nor re-seeds the batches of the others;
- a **score** (column ``scored_by``: attribute -> fingerprint): by the scorer's
  :func:`scorer_fingerprint` (head weights and encoder for a head, the weights of a fine-tuned
  classifier), so new scorers re-score kept generations instead of regenerating them;
- a **fluency** value (column ``ppl_by``): by the fluency model's fingerprint.

A value whose fingerprint is unknown (None: a plain callable) is recomputed on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clm.core.weights import Weights

#: The version of the chunk-key scheme (recorded in every key's header).
KEY_SCHEME = 2


def used_attributes(weights: Weights) -> tuple[str, ...]:
    """The attributes whose endpoints a setting uses: those it names with λ > 0, sorted."""
    lam = weights.lam_resolved()
    return tuple(sorted(a for a in weights.alpha if lam.get(a, 0.0) != 0.0))


def chunk_key(gen_kw: Mapping[str, Any], endpoints: str, rows: Iterable[Sequence[Any]]) -> str:
    """The key of one batch: a sha1 (20 hex digits) over the generation settings ``gen_kw``, the
    ``endpoints`` digest of the attributes its rows use, and its rows, each ``(weights JSON,
    prompt text, prompt index, sample, seed)``, in order."""
    head = json.dumps({"scheme": KEY_SCHEME, **gen_kw, "endpoints": endpoints}, sort_keys=True)
    h = hashlib.sha1(head.encode())
    for row in rows:
        h.update(json.dumps(list(row)).encode())
    return h.hexdigest()[:20]


def chunk_seed(key: str) -> int:
    """The sampling seed of a batch, from its key (so it depends on exactly what the key does)."""
    return int(key[:7], 16)


def endpoints_for(im: Any, weights: Iterable[Weights]) -> str:
    """The digest of the endpoints that ``weights`` use on ``im`` ("none" without endpoints)."""
    ends = getattr(im, "endpoints", None)
    if ends is None:
        return "none"
    return ends.digest(sorted({a for w in weights for a in used_attributes(w)}))


# ---------------------------------------------------------------------- fingerprints
def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def head_fingerprint(head: Any, attribute: str, low: str, high: str, encoder_fp: str, max_length: int) -> str:
    """A head scorer's fingerprint: its layers' bytes and temperature, its poles, and its encoder
    (fingerprint and max_length)."""
    h = hashlib.sha256()
    for W, b in head.layers:
        for a in (np.ascontiguousarray(W), np.ascontiguousarray(b)):
            h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    return _sha(
        {
            "kind": "head",
            "attribute": attribute,
            "poles": [low, high],
            "layers": h.hexdigest(),
            "temperature": repr(float(head.temperature)),
            "encoder": encoder_fp,
            "max_length": int(max_length),
        }
    )


_FILES: dict[tuple, str] = {}  # (path, (name, size, mtime) ...) -> sha256 of a classifier's files


def files_fingerprint(path: str | os.PathLike) -> str | None:
    """A sha256 over the weight and config files of a model directory (cached by size and mtime)."""
    from clm.io import sha256_file

    d = Path(path)
    if not d.is_dir():
        return None
    files = sorted(
        f for f in d.iterdir() if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model")
    )
    sig = (str(d.resolve()), *((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if sig not in _FILES:
        _FILES[sig] = _sha([[f.name, sha256_file(f)] for f in files])
    return _FILES[sig]


def scorer_fingerprint(scorer: Any) -> str | None:
    """What a scorer's scores depend on, or None if unknown (then they are recomputed each run).

    A ``fingerprint`` attribute (a string) is used as given; a :class:`~clm.eval.scoring.HeadScorer`
    is named by :func:`head_fingerprint`; an :class:`~clm.eval.scoring.HFScorer` by its files."""
    from clm.eval.scoring import HeadScorer, HFScorer

    own = getattr(scorer, "fingerprint", None)
    if isinstance(own, str) and own:
        return own
    if isinstance(scorer, HeadScorer):
        enc_fp = getattr(scorer.encoder, "fingerprint", None)
        if not isinstance(enc_fp, str):
            return None
        return head_fingerprint(
            scorer.head, scorer.attribute, scorer.low, scorer.high, enc_fp, scorer.encoder.max_length
        )
    if isinstance(scorer, HFScorer):
        files = files_fingerprint(scorer.id)
        return None if files is None else _sha({"kind": "hf", "files": files, "max_length": scorer.max_length})
    return None


def fluency_fingerprint(fluency: Callable[..., Any] | None) -> str | None:
    """The fluency model's fingerprint (its ``fingerprint`` attribute), or None if unknown."""
    own = getattr(fluency, "fingerprint", None)
    return own if isinstance(own, str) and own else None


def vector_key(base_fingerprint: str, attribute: str, low: Sequence[str], high: Sequence[str]) -> str:
    """The key of a kept steering vector: the recipe (mean difference of the layer outputs over
    the poles' texts), the base model, the attribute and the texts themselves."""
    h = hashlib.sha1(json.dumps({"kind": "mean-difference/1", "base": base_fingerprint, "attribute": attribute,
                                 "n_low": len(low), "n_high": len(high)}).encode())  # fmt: skip
    for t in (*low, "\0", *high):
        h.update(t.encode() + b"\0")
    return h.hexdigest()
