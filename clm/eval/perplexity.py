"""Perplexity and fluency: what an interpolation costs the model.

- :func:`sliding_window_perplexity`: perplexity of a model (plain, or an
  :class:`clm.InterpolatedModel` at any weights) on a long text, with the strided sliding window
  of Hugging Face's "Perplexity of fixed-length models" guide. The paper measures WikiText-2
  test perplexity with a window up to the context length and a stride of 512.
- :func:`continuation_perplexity`: perplexity of each generated continuation under the base
  model, given its prompt as context (only the continuation's tokens are scored).
- :func:`distinct_n`: distinct-1/2/3 (Li et al. 2016), the share of unique n-grams.
- :func:`alpha_tv_distance`: how far α moves the next-token distributions (total variation).

Model running is here; the math on log-probabilities is in small pure functions.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clm.errors import ConfigError, DataError


# ---------------------------------------------------------------------- pure helpers
def windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """The strided windows over a sequence: (begin, end, first scored position) each.

    Every position t >= 1 is scored exactly once, in the first window that reaches it, with
    the context ``[begin, t)`` of that window: at least ``window - stride`` tokens once the
    window has filled.
    """
    if window < 2 or stride < 1 or stride > window:
        raise ConfigError(f"need window >= 2 and 1 <= stride <= window, got window={window}, stride={stride}")
    out, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + window, n_tokens)
        first = max(prev_end, begin + 1)  # position 0 of the text has no context: never scored
        if end > first:
            out.append((begin, end, first))
        prev_end = end
        if end == n_tokens:
            break
    return out


def group_windows(spans: list[tuple[int, int, int]], batch_size: int) -> list[list[tuple[int, int, int]]]:
    """Consecutive windows of equal length grouped into batches of at most ``batch_size``."""
    groups: list[list[tuple[int, int, int]]] = []
    for s in spans:
        if groups and len(groups[-1]) < batch_size and groups[-1][-1][1] - groups[-1][-1][0] == s[1] - s[0]:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def token_nll(logits, targets):
    """Negative log-likelihood of each target: (..., V) logits, (...) ids -> (...) float32."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)  # (..., V)
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def tv_distance(p, q):
    """Total-variation distance ½ Σ |p − q| between distributions on the last axis: (..., V) -> (...)."""
    return 0.5 * (p - q).abs().sum(-1)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over the texts, on whitespace tokens (Li et al. 2016).

    NaN when the texts hold no n-gram.
    """
    grams = [tuple(w[i : i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def distinct(texts: Sequence[str], ns: Sequence[int] = (1, 2, 3)) -> dict[str, float]:
    """``{"distinct_1": ..., "distinct_2": ..., "distinct_3": ...}`` over a set of texts."""
    return {f"distinct_{n}": distinct_n(texts, n) for n in ns}


# ---------------------------------------------------------------------- running the model
def _unpack(model: Any, tokenizer: Any, weights: Any):
    """(HF model, tokenizer, context manager setting the weights) for a plain or interpolated model."""
    from clm.core.engine import InterpolatedModel

    if isinstance(model, InterpolatedModel):
        ctx = model.using(weights) if weights is not None else contextlib.nullcontext()
        return model.model, tokenizer or model.tokenizer, ctx
    if weights is not None:
        raise ConfigError("weights need an InterpolatedModel; got a plain model")
    if tokenizer is None:
        raise ConfigError("a plain model needs its tokenizer")
    return model, tokenizer, contextlib.nullcontext()


def _forward(model, ids, mask, keep: int):
    """Logits of the last ``keep`` positions: (N, T) -> (N, keep, V); all positions if unsupported."""
    try:
        return model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
    except TypeError:  # a model without logits_to_keep
        return model(input_ids=ids, attention_mask=mask).logits[:, -keep:]


@dataclass(frozen=True)
class Perplexity:
    """A perplexity measurement and how it was taken."""

    ppl: float
    nll: float  # mean negative log-likelihood per scored token (nats)
    n_scored: int  # tokens scored (all but the first)
    n_tokens: int  # tokens of the text used
    n_windows: int
    window: int
    stride: int
    weights: str | None = None


def sliding_window_perplexity(
    model: Any,
    text: str | None = None,
    *,
    path: str | os.PathLike | None = None,
    tokenizer: Any = None,
    weights: Any = None,
    window: int | None = None,
    stride: int = 512,
    max_tokens: int | None = None,
    batch_size: int = 1,
    progress: bool | None = None,
) -> Perplexity:
    """Perplexity of a long text with a strided sliding window.

    Args:
        model: a causal LM (then pass ``tokenizer``) or an :class:`clm.InterpolatedModel`.
        text: the text; or
        path: a UTF-8 text file (e.g. ``wikitext2_test.raw.txt``), its non-blank lines joined
            with newlines.
        weights: for an InterpolatedModel, the setting (None: its current one).
        window: tokens per forward pass (default: the model's context length).
        stride: how far the window moves (the paper: 512). Each token is scored once, with at
            least ``window - stride`` tokens of context once the window has filled.
        max_tokens: use only the first ``max_tokens`` tokens (CPU-scale runs).
        batch_size: windows per forward pass (windows of equal length only).

    Returns:
        :class:`Perplexity`; ``ppl = exp(mean NLL)`` over every token but the first.
    """
    hf, tok, ctx = _unpack(model, tokenizer, weights)
    ids = _text_ids(tok, text, path, max_tokens)
    context = int(getattr(hf.config, "max_position_embeddings", 0) or 0)
    window = int(window or context or 1024)
    if context and window > context:
        raise ConfigError(f"window {window} exceeds the model's context length {context}")
    stride = min(stride, window)
    spans = windows(len(ids), window, stride)
    with ctx:
        total, count = _windows_nll(hf, ids, group_windows(spans, batch_size), progress)
    nll = total / count
    w = getattr(model, "weights", None) if weights is None else weights
    return Perplexity(math.exp(nll), nll, count, len(ids), len(spans), window, stride, None if w is None else str(w))


def _text_ids(tok: Any, text: str | None, path: str | os.PathLike | None, max_tokens: int | None) -> list[int]:
    """The token ids of ``text`` or of the file ``path`` (non-blank lines), cut to ``max_tokens``."""
    if (text is None) == (path is None):
        raise ConfigError("give exactly one of text= and path=")
    if path is not None:
        from clm.io import read_utf8

        text = "\n".join(line for line in read_utf8(Path(path)).splitlines() if line.strip())
    ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if len(ids) < 2:
        raise DataError(f"perplexity needs at least 2 tokens, got {len(ids)}")
    return ids


def _windows_nll(hf: Any, ids: list[int], groups: list[list[tuple[int, int, int]]], progress: bool | None):
    """(summed NLL in nats, tokens scored) over the window groups, one forward pass per group."""
    import torch
    from tqdm import tqdm

    device = next(hf.parameters()).device
    all_ids = torch.tensor(ids, dtype=torch.long)
    total, count = 0.0, 0
    disable = not progress if progress is not None else None
    with torch.no_grad():
        for group in tqdm(groups, desc="perplexity", disable=disable, leave=False):
            x = torch.stack([all_ids[b:e] for b, e, _ in group]).to(device)  # (n, L)
            keep = max(e - f for _, e, f in group)  # scored positions per row, at most
            logits = _forward(hf, x, torch.ones_like(x), keep + 1)  # (n, keep+1, V); last predicts past the window
            for r, (_, e, f) in enumerate(group):
                n = e - f  # tokens f..e-1, predicted by positions f-1..e-2
                pred = logits[r, -(n + 1) : -1]  # (n, V)
                total += float(token_nll(pred, all_ids[f:e].to(device)).double().sum())
                count += n
    return total, count


def alpha_tv_distance(im: Any, prompts: Sequence[str], attributes: Sequence[str]) -> dict[str, float]:
    """Per attribute: how far the dial moves the model, as the mean total-variation distance
    between the next-token distributions at α = 0 and α = 1 (0: identical, 1: disjoint), over
    every non-padding position of the prompts.

    Args:
        im: an :class:`clm.InterpolatedModel`.
        prompts: the texts, run as one padded batch.
        attributes: the attributes whose α moves (one at a time, the others off).
    """
    import torch

    from clm.core.weights import Weights

    enc = im.tokenizer(list(prompts), return_tensors="pt", padding=True)
    mask = enc["attention_mask"].bool()  # (N, T)
    tv = {}
    with torch.no_grad():
        for attr in attributes:
            p0, p1 = (
                im.logits(enc["input_ids"], enc["attention_mask"], weights=Weights({attr: a})).softmax(-1)  # (N, T, V)
                for a in (0.0, 1.0)
            )
            tv[attr] = float(tv_distance(p0, p1)[mask.to(p0.device)].mean())
    return tv


def continuation_perplexity(
    model: Any,
    prompts: Sequence[str],
    continuations: Sequence[str] | Sequence[Sequence[int]],
    tokenizer: Any = None,
    weights: Any = None,
    batch_size: int = 16,
    progress: bool | None = None,
) -> np.ndarray:
    """Perplexity of each continuation given its prompt, scoring only the continuation's tokens.

    The fluency measure of a generation: pass the base model (or an InterpolatedModel, which is
    then run at ``weights``, default the base: α = 0 everywhere).

    Args:
        prompts: the prompts (tokenized as :meth:`InterpolatedModel.generate` does).
        continuations: texts (tokenized without special tokens) or token-id lists
            (``Generation.token_ids``).

    Returns:
        (N,) float64 perplexities; NaN for an empty continuation.
    """
    import torch
    from tqdm import tqdm

    from clm.core.engine import InterpolatedModel
    from clm.core.weights import Weights

    if len(prompts) != len(continuations):
        raise ConfigError(f"got {len(prompts)} prompts but {len(continuations)} continuations")
    if isinstance(model, InterpolatedModel) and weights is None:
        weights = Weights.base()
    hf, tok, ctx = _unpack(model, tokenizer, weights)
    rows = []
    for p, c in zip(prompts, continuations):
        p_ids = tok(p)["input_ids"]
        c_ids = tok(c, add_special_tokens=False)["input_ids"] if isinstance(c, str) else [int(i) for i in c]
        rows.append((p_ids, c_ids))
    out = np.full(len(rows), np.nan)
    todo = [i for i, (p, c) in enumerate(rows) if c and p]
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    device = next(hf.parameters()).device
    disable = not progress if progress is not None else None
    with ctx, torch.no_grad():
        for s in tqdm(range(0, len(todo), batch_size), desc="continuation ppl", disable=disable, leave=False):
            part = todo[s : s + batch_size]
            seqs = [rows[i][0] + rows[i][1] for i in part]
            L = max(map(len, seqs))
            x = torch.full((len(seqs), L), pad, dtype=torch.long)  # (n, L), right-padded
            mask = torch.zeros_like(x)
            for r, q in enumerate(seqs):
                x[r, : len(q)] = torch.tensor(q)
                mask[r, : len(q)] = 1
            spans = [(len(rows[i][0]), len(rows[i][1])) for i in part]
            nll = _continuation_nll(hf, x.to(device), mask.to(device), spans)
            for r, i in enumerate(part):
                out[i] = math.exp(float(nll[r].double().mean()))
    return out


def _continuation_nll(hf: Any, x: Any, mask: Any, spans: list[tuple[int, int]]) -> list[Any]:
    """Per row, the NLL of its continuation tokens: row r's tokens at positions p_len … p_len + c_len − 1,
    each scored by the logits of the position before it. Only those positions go through the
    output layer (the vocabulary is most of the work of a long prompt's logits); a model without
    ``get_decoder`` computes every position's logits instead."""
    import torch

    decoder = getattr(hf, "get_decoder", lambda: None)()
    head = hf.get_output_embeddings() if decoder is not None else None
    if decoder is None or head is None:
        logits = hf(input_ids=x, attention_mask=mask).logits  # (n, L, V)
        nll = token_nll(logits[:, :-1], x[:, 1:]).cpu()
        return [nll[r, p - 1 : p - 1 + c] for r, (p, c) in enumerate(spans)]
    hidden = decoder(input_ids=x, attention_mask=mask).last_hidden_state  # (n, L, d)
    rows = torch.cat([torch.full((c,), r) for r, (_, c) in enumerate(spans)])
    pos = torch.cat([torch.arange(p - 1, p - 1 + c) for p, c in spans])
    logits = head(hidden[rows.to(x.device), pos.to(x.device)])  # (Σ c, V)
    nll = token_nll(logits, x[rows.to(x.device), (pos + 1).to(x.device)]).cpu()
    return list(torch.split(nll, [c for _, c in spans]))
