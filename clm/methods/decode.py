"""The decoding loop every method shares: left-padded prompts, a KV cache per model, sampling.

It reproduces ``transformers``' ``generate`` step for step (position ids from the attention mask,
pure sampling by ``torch.multinomial`` on the float32 softmax, finished rows padded), so at a
method's neutral strength its continuations are the base model's, token for token, for the same
seed (tests/test_methods.py checks this against :meth:`clm.core.engine.InterpolatedModel.generate`).
A method supplies one function, ``step(input_ids, attention_mask, position_ids) -> (N, V) logits``
of the last position, which owns its KV caches; :class:`LoopMethod` does the rest.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from clm.core.engine import trim_generated
from clm.errors import ConfigError
from clm.methods.base import Dial, GenConfig, MethodGeneration, Rows

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def encode(tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T) input ids and attention mask, padded on the left (as the engine pads)."""
    old = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    finally:
        tokenizer.padding_side = old
    return enc["input_ids"], enc["attention_mask"]


def pad_id(tokenizer) -> int | None:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def model_step(model) -> Step:
    """A step function for one causal LM with its own KV cache (one per call of this function)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel passes it on
    key = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
    state: dict[str, Any] = {"cache": None}

    def step(input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            **{key: state["cache"]},
        )
        state["cache"] = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        return out.logits[:, -1]  # (N, V)

    return step


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus), in ``transformers``' order; (N, V) -> (N, V)."""
    if temperature != 1.0:
        logits = logits / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        cum = sorted_logits.softmax(-1).cumsum(-1)  # (N, V) ascending
        remove = cum <= 1 - top_p
        remove[:, -1] = False  # keep at least the most likely token
        logits = logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    return logits


@torch.no_grad()
def decode(
    step: Step,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    gen: GenConfig,
    eos_id: int | None,
    pad: int | None,
) -> list[list[int]]:
    """Generate ``gen.max_new_tokens`` tokens per row (fewer if every row ends).

    Args:
        step: see the module docstring; called once on the prompts, then once per new token.
        input_ids, attention_mask: (N, T) left-padded prompts, on the model's device.
        eos_id, pad: EOS ends a row (when ``gen.stop_at_eos``); finished rows are filled with ``pad``.

    Returns:
        (N, new) token ids as lists (EOS and padding included; see :func:`clm.core.engine.trim_generated`).
    """
    mask, step_ids, out = attention_mask, input_ids, []
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # (N,)
    stop = gen.stop_at_eos and eos_id is not None
    for _ in range(gen.max_new_tokens):
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1] :]  # (N, t)
        logits = step(step_ids, mask, pos).float()  # (N, V)
        if gen.do_sample:
            probs = filter_logits(logits, gen.temperature, gen.top_k, gen.top_p).softmax(-1)
            nxt = torch.multinomial(probs, num_samples=1).squeeze(1)  # (N,)
        else:
            nxt = logits.argmax(-1)  # (N,)
        if stop:
            nxt = torch.where(unfinished, nxt, torch.full_like(nxt, pad if pad is not None else eos_id))
            unfinished &= nxt != eos_id
        out.append(nxt)
        step_ids, mask = nxt[:, None], torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        if stop and not bool(unfinished.any()):
            break
    return torch.stack(out, 1).tolist()  # (N, new)


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def plain_model(model_or_im: Any):
    """The causal LM itself: an InterpolatedModel's wrapped model, else the model given."""
    from clm.core.engine import InterpolatedModel

    return model_or_im.model if isinstance(model_or_im, InterpolatedModel) else model_or_im


@contextlib.contextmanager
def at_base(model_or_im: Any) -> Iterator[Any]:
    """The plain causal LM at the base model: an InterpolatedModel is held at the base setting
    (every coefficient 0) for the block and restored after it."""
    from clm.core.engine import InterpolatedModel

    if isinstance(model_or_im, InterpolatedModel):
        with model_or_im.using(None):
            yield model_or_im.model
    else:
        yield model_or_im


class LoopMethod:
    """Shared ``generate`` for methods built on :func:`decode`: rows, batches, seeds, records.

    A subclass sets ``name``, ``attribute``, ``dial``, ``per_row``, ``tokenizer`` and implements
    :meth:`generate_batch`; it may override :meth:`model_prompt` (what the model reads).
    """

    name: str
    attribute: str
    dial: Dial
    per_row: bool = True
    tokenizer: Any
    add_special_tokens: bool = True

    def model_prompt(self, prompt: str, strength: float) -> str:
        """The text the model continues for ``prompt`` at ``strength`` (the prompt itself here)."""
        return prompt

    def generate_batch(self, texts: list[str], strengths: list[float], gen: GenConfig) -> list[list[int]]:
        """(rows, new) token ids for model prompts ``texts`` at per-row ``strengths``."""
        raise NotImplementedError

    def generate(
        self,
        prompts: str | Sequence[str],
        strengths: float | Sequence[float],
        *,
        max_new_tokens: int = 32,
        do_sample: bool = True,
        seed: int | None = 0,
        num_samples: int = 1,
        batch_size: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        stop_at_eos: bool = True,
    ) -> list[MethodGeneration]:
        """Continue each prompt at its strength (one for all, or one per prompt).

        Seeds torch with ``seed + b`` before batch ``b`` (as the engine does), so a batch
        reproduces on its own. Returns one :class:`MethodGeneration` per (prompt, sample), prompt-major.
        """
        plan = Rows.plan(prompts, strengths, num_samples, batch_size)
        gen = GenConfig(max_new_tokens, do_sample, temperature, top_p, top_k, stop_at_eos)
        tok, results = self.tokenizer, []
        for b, batch in enumerate(plan.batches):
            ss = [plan.strengths[i] for i, _ in batch]
            texts = [self.model_prompt(plan.prompts[i], s) for (i, _), s in zip(batch, ss)]
            if seed is not None:
                torch.manual_seed(seed + b)
            new = self.generate_batch(texts, ss, gen)
            for (i, k), s, text, ids in zip(batch, ss, texts, new):
                ids, finished = trim_generated(ids, tok.eos_token_id, pad_id(tok), stop_at_eos)
                shown = None if text == plan.prompts[i] else text
                g = MethodGeneration(
                    plan.prompts[i],
                    tok.decode(ids, skip_special_tokens=True),
                    ids,
                    s,
                    i,
                    k,
                    finished,
                    self.name,
                    self.attribute,
                    shown,
                )
                results.append(g)
        return results

    def check_strengths(self, strengths: Sequence[float], lo: float, hi: float) -> None:
        bad = [s for s in strengths if not lo <= s <= hi]
        if bad:
            raise ConfigError(f"{self.name}: strength {bad[0]!r} is outside [{lo}, {hi}]")
