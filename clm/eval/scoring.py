"""Attribute scorers: text -> P(high pole) in [0, 1], one per attribute, and their evaluation.

The paper scores each continuation with one RoBERTa classifier per attribute. The default
scorers here run offline: a frozen sentence encoder (all-MiniLM-L6-v2, :mod:`clm.eval.encoders`)
and a small head per attribute (logistic regression or a one-hidden-layer MLP on the
embedding, with a temperature), trained by :mod:`clm.eval.heads` and shipped in
``clm/assets/scorers/``. A head is a few hundred kB; the encoder is shared, so scoring a text
with all five scorers costs one embedding. Readers who are online can use the paper-faithful
backend instead: a fine-tuned Hugging Face sequence classifier (:class:`HFScorer`).

Defined behaviour:
    - an empty (or whitespace-only) text has no attribute: its score is NaN and ``empty_text`` is set;
      aggregate with ``np.nanmean``;
    - a text longer than the encoder's ``max_length`` is truncated (its tail is not seen) and
      ``truncated`` is set;
    - a non-UTF-8 data file raises a one-line :class:`clm.DataError` (:func:`clm.data.read_texts`).

    scorers = clm.eval.scoring.load_scorers()                   # the shipped heads
    p = scorers["sentiment"].score(["What a lovely day."])  # array([0.97...]) = P(positive)
    df = clm.eval.scoring.score_texts(texts, scorers)           # score_<attr>, empty_text, truncated
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clm.core.attributes import ATTRIBUTES
from clm.errors import ConfigError, DataError
from clm.paths import SHIPPED_SCORERS

SHIPPED = SHIPPED_SCORERS


class Scorer(Protocol):
    """What the sweep needs from a scorer."""

    attribute: str
    low: str
    high: str

    def score(self, texts: list[str], batch_size: int = 64, progress: bool | None = None) -> np.ndarray: ...


# ---------------------------------------------------------------------- heads (pure numpy)
@dataclass
class Head:
    """A small classifier on embeddings: ReLU layers, then one logit, divided by a temperature.

    ``layers[i] = (W, b)`` with W of shape (d_in, d_out); the last layer has d_out = 1.
    One layer is logistic regression.
    """

    layers: list[tuple[np.ndarray, np.ndarray]]
    temperature: float = 1.0

    def logit(self, X: np.ndarray) -> np.ndarray:
        """(N, d) embeddings -> (N,) calibrated logits of the high pole."""
        h = np.asarray(X, dtype=np.float64)
        for i, (W, b) in enumerate(self.layers):
            h = h @ W + b  # (N, d_out)
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0] / self.temperature

    def proba(self, X: np.ndarray) -> np.ndarray:
        """(N, d) -> (N,) P(high pole)."""
        return 1.0 / (1.0 + np.exp(-self.logit(X)))

    @property
    def n_params(self) -> int:
        return int(sum(W.size + b.size for W, b in self.layers))

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        tensors = {}
        for i, (W, b) in enumerate(self.layers):
            tensors[f"layers.{i}.weight"] = np.ascontiguousarray(W, dtype=np.float32)
            tensors[f"layers.{i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
        save_file(tensors, str(path), metadata={"temperature": repr(float(self.temperature))})

    @classmethod
    def load(cls, path: Path) -> Head:
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            n = len([k for k in f.keys() if k.endswith(".weight")])
            layers = [(f.get_tensor(f"layers.{i}.weight"), f.get_tensor(f"layers.{i}.bias")) for i in range(n)]
        return cls(layers, float(meta.get("temperature", 1.0)))


# ---------------------------------------------------------------------- encoders, shared
_ENCODERS: dict[tuple[str, str | None, int | None], Any] = {}


def get_encoder(name: str, device: str | None = None, max_length: int | None = None):
    """One :class:`clm.eval.encoders.Encoder` per (name, device, max_length), shared by all scorers."""
    from clm.eval.encoders import Encoder

    key = (name, device, max_length)
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(name, device=device, max_length=max_length)
    return _ENCODERS[key]


def _nonempty(texts: list[str]) -> np.ndarray:
    if isinstance(texts, str):
        raise DataError("score() takes a list of texts, got a single string")
    return np.array([isinstance(t, str) and bool(t.strip()) for t in texts], dtype=bool)


@dataclass
class HeadScorer:
    """A frozen encoder plus a trained :class:`Head` for one attribute."""

    attribute: str
    low: str
    high: str
    head: Head
    encoder: Any  # clm.eval.encoders.Encoder
    config: dict[str, Any] = field(default_factory=dict)

    def proba_from_embeddings(self, X: np.ndarray) -> np.ndarray:
        return self.head.proba(X)

    def score(self, texts: list[str], batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """P(high pole) per text, (N,) float64; NaN for an empty text."""
        ok = _nonempty(texts)
        out = np.full(len(texts), np.nan)
        if ok.any():
            X = self.encoder.embed([t for t, k in zip(texts, ok) if k], batch_size=batch_size, progress=progress)
            out[ok] = self.head.proba(X)
        return out

    def __repr__(self) -> str:
        return f"HeadScorer({self.attribute}: {self.low} -> {self.high}, encoder={self.encoder.id}, head={self.config.get('head', '?')})"


class HFScorer:
    """The paper-faithful backend: a fine-tuned sequence classifier (label 1 = high pole).

    Args:
        path: a directory saved by :func:`clm.eval.heads.finetune` (or any 2-label classifier).
        attribute: which attribute it scores (default: from ``clm_scorer.json``).
    """

    def __init__(
        self, path: str | os.PathLike, attribute: str | None = None, device: str | None = None, max_length: int = 256
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        meta_path = Path(path) / "clm_scorer.json"
        self.config = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.attribute = attribute or self.config.get("attribute")
        if self.attribute not in ATTRIBUTES:
            raise ConfigError(f"scorer at {str(path)!r} names no known attribute ({self.attribute!r})")
        a = ATTRIBUTES[self.attribute]
        self.low, self.high = a.low, a.high
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length
        self.id = str(path)

    def truncated(self, texts: list[str]) -> np.ndarray:
        return np.array([len(ids) > self.max_length for ids in self.tokenizer(list(texts))["input_ids"]])

    def score(self, texts: list[str], batch_size: int = 32, progress: bool | None = None) -> np.ndarray:
        import torch
        from tqdm import tqdm

        ok = _nonempty(texts)
        out = np.full(len(texts), np.nan)
        idx = np.flatnonzero(ok)
        disable = not progress if progress is not None else None
        for s in tqdm(range(0, len(idx), batch_size), desc=f"scoring {self.attribute}", disable=disable, leave=False):
            part = idx[s : s + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in part], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            with torch.no_grad():
                logits = self.model(**enc.to(self.device)).logits  # (n, 2)
            out[part] = torch.softmax(logits.float(), -1)[:, 1].cpu().numpy()
        return out


# ---------------------------------------------------------------------- loading
def load_scorers(
    attributes: list[str] | None = None,
    path: str | os.PathLike | None = None,
    device: str | None = None,
    encoder: str | None = None,
) -> dict[str, Scorer]:
    """Load one scorer per attribute from a directory (default: the shipped heads).

    Args:
        attributes: which ones (default: every attribute that has a scorer there).
        path: a directory holding ``<attr>.json`` + ``<attr>.safetensors`` heads, or
            ``<attr>/`` fine-tuned classifiers (:class:`HFScorer`).
        device: torch device for the encoder.
        encoder: override the encoder a head was trained with (only for tests: a head is
            only meaningful on its own encoder, whose fingerprint is checked otherwise).

    Returns:
        attribute -> scorer, in the registry's order.
    """
    root = Path(path) if path is not None else SHIPPED
    if not root.is_dir():
        raise ConfigError(f"scorer directory {str(root)!r} does not exist")
    found = [a for a in ATTRIBUTES if (root / f"{a}.json").exists() or (root / a / "config.json").exists()]
    wanted = list(attributes) if attributes is not None else found
    for a in wanted:
        if a not in ATTRIBUTES:
            raise ConfigError(f"unknown attribute {a!r}; known: {', '.join(ATTRIBUTES)}")
        if a not in found:
            raise ConfigError(f"no scorer for {a!r} in {str(root)!r} (found: {', '.join(found) or 'none'})")
    if not wanted:
        raise ConfigError(f"no scorers in {str(root)!r}")
    out: dict[str, Scorer] = {}
    for a in wanted:
        if (root / f"{a}.json").exists():
            cfg, head = _read_head(root, a)  # before the encoder: a damaged head fails fast, naming its file
            enc = get_encoder(encoder or cfg["encoder"], device=device, max_length=cfg.get("max_length"))
            if encoder is None and cfg.get("encoder_fingerprint") not in (None, enc.fingerprint):
                raise ConfigError(
                    f"scorer {a!r} was trained on encoder {cfg['encoder_fingerprint'][:12]}…, got {enc.fingerprint[:12]}…"
                )
            out[a] = HeadScorer(a, cfg["low"], cfg["high"], head, enc, cfg)
        else:
            out[a] = HFScorer(root / a, attribute=a, device=device)
    return out


def _read_head(root: Path, attribute: str) -> tuple[dict[str, Any], Head]:
    """``<root>/<attribute>.json`` (checked for its keys) and the head in ``<attribute>.safetensors``;
    a damaged or edited file is a one-line DataError naming it."""
    path, weights = root / f"{attribute}.json", root / f"{attribute}.safetensors"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"scorer config {str(path)!r} is not valid JSON: {err}") from None
    bad = [k for k in ("encoder", "low", "high") if not isinstance(cfg, dict) or not isinstance(cfg.get(k), str)]
    if bad:
        raise DataError(f"scorer config {str(path)!r} lacks {bad[0]!r} (a string); the file is damaged or edited")
    try:
        head = Head.load(weights)
        if not head.layers or head.layers[-1][0].shape[-1] != 1 or not np.isfinite(head.temperature):
            raise ValueError("not a head: no layers, no single logit or a non-finite temperature")
    except Exception as err:  # safetensors raises its own error types; a missing tensor is a KeyError
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise DataError(f"scorer head {str(weights)!r} is damaged or not a head: {first}") from None
    return cfg, head


def score_texts(texts: list[str], scorers: dict[str, Scorer], batch_size: int = 64, progress: bool | None = None):
    """Score texts with every scorer: a DataFrame with ``score_<attr>``, ``empty_text``, ``truncated``.

    Head scorers that share an encoder share one embedding pass.
    """
    import pandas as pd

    texts = list(texts)
    ok = _nonempty(texts)
    kept = [t for t, k in zip(texts, ok) if k]
    cols: dict[str, Any] = {}
    embedded: dict[int, np.ndarray] = {}
    truncated = np.zeros(len(texts), dtype=bool)
    for a, sc in scorers.items():
        col = np.full(len(texts), np.nan)
        if kept:
            if isinstance(sc, HeadScorer):
                key = id(sc.encoder)
                if key not in embedded:
                    embedded[key] = sc.encoder.embed(kept, batch_size=batch_size, progress=progress)
                    truncated[ok] |= sc.encoder.truncated(kept)
                col[ok] = sc.head.proba(embedded[key])
            else:
                col = sc.score(texts, batch_size=batch_size, progress=progress)
                if hasattr(sc, "truncated"):
                    truncated[ok] |= sc.truncated(kept)
        cols[f"score_{a}"] = col
    return pd.DataFrame({**cols, "empty_text": ~ok, "truncated": truncated})


# ---------------------------------------------------------------------- metrics (pure)
def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Fraction of texts on the right side of 0.5 (P(high) >= 0.5 means high)."""
    return float(np.mean((np.asarray(p) >= 0.5) == (np.asarray(y) == 1)))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10):
    """Reliability table over equal-width bins of P(high): bin, n, mean_p, frac_high.

    Returns a DataFrame with one row per non-empty bin.
    """
    import pandas as pd

    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    b = np.minimum((p * bins).astype(int), bins - 1)  # (N,) bin index
    rows = [
        dict(
            bin=i,
            lo=i / bins,
            hi=(i + 1) / bins,
            n=int((b == i).sum()),
            mean_p=float(p[b == i].mean()),
            frac_high=float(y[b == i].mean()),
        )
        for i in range(bins)
        if (b == i).any()
    ]
    return pd.DataFrame(rows)


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of P(high): sum_b (n_b / N) |frac_high_b - mean_p_b| (Guo et al. 2017)."""
    t = reliability(p, y, bins)
    return float((t.n * (t.frac_high - t.mean_p).abs()).sum() / t.n.sum())


def load_test_split(
    data_dir: str | os.PathLike, attribute: str, source: str | None = None, limit: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Texts and labels (1 = high pole) of ``<source>/<pole>.test.jsonl``; ``limit`` per pole (the first)."""
    from clm.data import attribute_file, read_texts

    a = ATTRIBUTES[attribute]
    texts: list[str] = []
    labels: list[int] = []
    for y, pole in enumerate((a.low, a.high)):
        t = read_texts(attribute_file(data_dir, source or attribute, pole, "test"), limit=limit)
        texts += t
        labels += [y] * len(t)
    return texts, np.array(labels)


def evaluate(
    scorers: dict[str, Scorer],
    data_dir: str | os.PathLike,
    limit: int | None = None,
    bins: int = 10,
    progress: bool | None = None,
):
    """Test accuracy and ECE of each scorer on its paper's source and its second source.

    Returns:
        (summary, reliability): a DataFrame with one row per (attribute, source) holding
        ``accuracy``, ``ece``, ``n``, ``truncated`` (fraction), and the tidy reliability table.
    """
    import pandas as pd

    rows, rel = [], []
    for a, sc in scorers.items():
        for kind, source in (("main", a), ("second", ATTRIBUTES[a].second)):
            texts, y = load_test_split(data_dir, a, source, limit)
            if isinstance(sc, HeadScorer):
                p = sc.head.proba(sc.encoder.embed_cached(texts, progress=progress))
            else:
                p = sc.score(texts, progress=progress)
            trunc = sc.encoder.truncated(texts) if isinstance(sc, HeadScorer) else sc.truncated(texts)
            rows.append(
                dict(
                    attribute=a,
                    source=kind,
                    data=source,
                    n=len(y),
                    accuracy=accuracy(p, y),
                    ece=ece(p, y, bins),
                    truncated=float(np.mean(trunc)),
                )
            )
            rel.append(reliability(p, y, bins).assign(attribute=a, source=kind))
    return pd.DataFrame(rows), pd.concat(rel, ignore_index=True)
