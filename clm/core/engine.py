"""The engine: a base model that computes any interpolation of its endpoints, row by row.

:class:`InterpolatedModel` **modifies the model it is given**: every module that an endpoint
adapts is replaced by an :class:`InterpolatedLinear` wrapper holding the K endpoints' factors
concatenated along the rank. Base weights are never touched, so changing the setting is an O(1)
update of a small (rows × K) coefficient table: no reload, no re-merge, and a setting changed
and changed back gives bit-identical outputs. ``unwrap()`` puts the original modules back.
(The one exception is opt-in: :meth:`InterpolatedModel.merged` merges one shared setting into
the weights for the duration of a ``with`` block and restores them bit-exactly; see clm.core.merge.)

**Schedules.** ``generate(weights=schedule)`` (a :class:`~clm.core.schedule.Schedule`, or one per
prompt) passes a :class:`~clm.core.schedule.ScheduleStepper` to ``model.generate`` as a logits
processor. Between decode steps only the coefficient table changes (O(1), before the forward pass
that gives the next token): the keys and values of the prompt and of earlier tokens stay in the
cache as they were computed, at their own step's setting. Nothing is re-prefilled, silently or
otherwise; a constant schedule is the fixed setting bit for bit.

**Targets.** ``generate(target={"sentiment": 0.7})`` generates at the setting a controller solves
for (any object with ``check(im)`` and ``weights_for(target, max_ppl_ratio=, clip=)``). The engine
imports none: without ``controller=`` it asks :func:`clm.core.targets.find_controller`, where the
``clm`` facade registers the shipped controller (clm.experiments.control, layer 3).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clm.core.endpoints import POLES, Endpoints
from clm.core.fused import Coefficients, InterpolatedLinear
from clm.core.lora import concat_factors
from clm.core.merge import merged
from clm.core.models import BaseInfo
from clm.core.schedule import Schedule, ScheduleStepper, schedule_steps
from clm.core.targets import find_controller
from clm.core.weights import Weights, as_weights, as_weights_list
from clm.errors import EndpointsError, WeightsError


@dataclass
class Generation:
    """One generated continuation."""

    prompt: str
    text: str
    token_ids: list[int]  # the generated tokens only, up to (not including) EOS
    weights: Weights
    prompt_index: int
    sample_index: int
    finished: bool  # True if the model emitted EOS before max_new_tokens
    schedule: Schedule | None = None  # the row's schedule, if it had one (``weights`` is then its token 0)


class InterpolatedModel:
    """A base model plus endpoints, set to any (α, λ), per batch row if wanted.

    Warning: this modifies ``model`` in place (its adapted Linear modules are wrapped).
    Call :meth:`unwrap` to restore it.

    Args:
        model: a causal LM, e.g. from :func:`clm.load_base`.
        tokenizer: its tokenizer.
        endpoints: the adapters to interpolate.
        weights: the initial setting (default: the base model).
        check_base: compare the model's fingerprint with the endpoints' base.
    """

    def __init__(self, model, tokenizer, endpoints: Endpoints, weights: Any = None, check_base: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.endpoints = endpoints
        if check_base:
            self._check_base()
        self.attributes = endpoints.attributes
        # Endpoint k = (attribute, pole), ordered attribute-major, low then high.
        self.slots = [(a, p) for a in self.attributes for p in POLES]
        self._coef = Coefficients(len(self.slots))
        self._wrapped: dict[str, tuple[nn.Module, str, nn.Module]] = {}
        self._install()
        self._weights: list[Weights] = [Weights.base()]
        self.set_weights(weights)

    # ------------------------------------------------------------------ setup
    def _check_base(self) -> None:
        info = getattr(self.model, "clm_base", None)
        if not isinstance(info, BaseInfo):
            try:
                info = BaseInfo.of(self.model)
            except Exception:  # pragma: no cover - depends on how the model was built
                warnings.warn("cannot fingerprint this model; not checking it against the endpoints' base", stacklevel=3)
                return
        if info.fingerprint != self.endpoints.base_fingerprint:
            raise EndpointsError(
                f"model fingerprint {info.fingerprint[:16]}… ({info.id}) does not match the endpoints' base "
                f"{self.endpoints.base_fingerprint[:16]}… ({self.endpoints.base_id}); adapter for another base"
            )

    def _install(self) -> None:
        per_module: dict[str, list[tuple[int, Any]]] = {}
        for k, (attr, pole) in enumerate(self.slots):
            for module, f in self.endpoints.factors(attr, pole).items():
                per_module.setdefault(module, []).append((k, f))
        modules = dict(self.model.named_modules())
        for name, items in per_module.items():
            if name not in modules:
                raise EndpointsError(f"module {name!r} of the endpoints is not in this model; adapter for another base?")
            base = modules[name]
            d_in, d_out = getattr(base, "in_features", None), getattr(base, "out_features", None)
            for k, f in items:
                if f.A.shape[1] != d_in or f.B.shape[0] != d_out:
                    a, p = self.slots[k]
                    raise EndpointsError(
                        f"{a}/{p} adapts {name!r} as {f.A.shape[1]}->{f.B.shape[0]} but the model's is {d_in}->{d_out}"
                    )
        device = next(self.model.parameters()).device
        for name, items in per_module.items():
            A, B = concat_factors([(f.A, f.B) for _, f in items])  # (R, d_in), (d_out, R)
            owner = torch.cat([torch.full((f.rank,), k, dtype=torch.long) for k, f in items])  # (R,)
            scale = torch.cat([torch.full((f.rank,), f.scale, dtype=torch.float32) for _, f in items])  # (R,)
            parent_name, _, child = name.rpartition(".")
            parent = modules[parent_name] if parent_name else self.model
            base = getattr(parent, child)
            wrapper = InterpolatedLinear(base, A.to(device), B.to(device), owner.to(device), scale.to(device), self._coef)
            setattr(parent, child, wrapper)
            self._wrapped[name] = (parent, child, base)

    @property
    def coefficients(self) -> Coefficients:
        """The coefficient table every wrapped module reads (the merge planner sets its offset)."""
        return self._coef

    def wrappers(self) -> list[InterpolatedLinear]:
        """The wrapped modules, in model order."""
        return [m for m in self.model.modules() if isinstance(m, InterpolatedLinear)]

    def weights_list(self) -> list[Weights]:
        """The current setting per row (one entry when shared)."""
        return list(self._weights)

    def unwrap(self):
        """Restore the original modules and return the model (as it was before wrapping)."""
        for parent, child, base in self._wrapped.values():
            setattr(parent, child, base)
        self._wrapped.clear()
        return self.model

    # ------------------------------------------------------------------ weights
    def coefficient_table(self, weights: Sequence[Weights]) -> torch.Tensor:
        """(N, K) coefficients, one row per setting, one column per (attribute, pole) endpoint."""
        rows = []
        for w in weights:
            c = w.coefficients(self.attributes)
            rows.append([c[a][0 if p == "low" else 1] for a, p in self.slots])
        return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(self.slots))

    def set_weights(self, weights: Any) -> None:
        """Set one setting for every row, or a list with one setting per batch row. O(1) in model size."""
        if isinstance(weights, (list, tuple)):
            ws = [as_weights(w) for w in weights]
            if not ws:
                raise WeightsError("got an empty list of weights")
        else:
            ws = [as_weights(weights)]
        table = self.coefficient_table(ws)  # validates attributes before changing anything
        if len(set(ws)) == 1:
            table = table[:1]
        self._coef.set(table)
        self._weights = ws

    @property
    def weights(self) -> Weights | list[Weights]:
        return self._weights[0] if len(self._weights) == 1 else list(self._weights)

    @contextlib.contextmanager
    def using(self, weights: Any) -> Iterator[InterpolatedModel]:
        """Temporarily set weights; the previous setting is restored on exit."""
        old = list(self._weights)
        self.set_weights(weights)
        try:
            yield self
        finally:
            self.set_weights(old if len(old) > 1 else old[0])

    def reset(self) -> None:
        """Back to the base model (every coefficient 0)."""
        self.set_weights(None)

    def merged(self, weights: Any = None):
        """Context manager: merge one shared setting into the base weights, restored bit-exactly
        on exit (a 4-bit base falls back to the fused path). See :func:`clm.core.merge.merged`."""
        return merged(self, weights)

    # ------------------------------------------------------------------ running
    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, weights: Any = None) -> torch.Tensor:
        """(N, T, V) logits at ``weights`` (a setting or one per row; None keeps the current one)."""
        ctx = self.using(weights) if weights is not None else contextlib.nullcontext()
        with ctx:
            device = next(self.model.parameters()).device
            out = self.model(
                input_ids=input_ids.to(device),
                attention_mask=None if attention_mask is None else attention_mask.to(device),
            )
        return out.logits

    def __call__(self, *args, **kwargs):
        """Forward to the model at the current weights."""
        return self.model(*args, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        prompts: str | Sequence[str],
        weights: Any = None,
        *,
        target: Mapping[str, float] | str | None = None,
        max_ppl_ratio: float | None = None,
        clip: bool = False,
        controller: Any = None,
        max_new_tokens: int = 32,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = 0,
        num_samples: int = 1,
        batch_size: int | None = None,
        stop_at_eos: bool = True,
        progress: bool | None = None,
        logits_processor: Sequence[Any] | None = None,
    ) -> list[Generation]:
        """Continue each prompt at the given weights, schedule or target score.

        The defaults are the paper's: pure sampling (top-p 1.0, no top-k), 32 new tokens.

        Args:
            prompts: one prompt or a list.
            weights: one setting for all, or a list with one per prompt (each row its own). A
                setting is a Weights (or its text or α dict) or a :class:`~clm.core.schedule.Schedule`
                (α and λ over the generated tokens); a list may mix them. None uses the current
                setting (per-row settings need one prompt per row).
            target: instead of ``weights``, attribute -> mean score, e.g. ``{"sentiment": 0.7}``:
                the setting is ``controller.weights_for(target, max_ppl_ratio=, clip=)`` after
                ``controller.check(self)``; ``controller`` None asks the factory registered in
                :mod:`clm.core.targets` (after ``import clm``: the shipped controller of the
                endpoints' base). The records carry the solved Weights.
            num_samples: continuations per prompt; rows are prompt-major.
            seed: seeds torch before each batch (seed + batch index), so a batch reproduces
                on its own; None leaves the RNG alone.
            batch_size: rows per forward pass (default: all rows at once).
            progress: show a progress bar (default: when there is more than one batch).
            logits_processor: transformers logits processors, passed to ``model.generate``.

        A schedule changes only the coefficient table between decode steps; nothing is
        re-prefilled (see the module docstring).

        Returns:
            One :class:`Generation` per (prompt, sample), prompt-major.
        """
        prompts = _check_prompts(prompts, max_new_tokens, num_samples)
        if target is not None:
            weights = self._target_weights(weights, target, max_ppl_ratio, clip, controller)
        elif max_ppl_ratio is not None or clip or controller is not None:
            raise WeightsError("max_ppl_ratio=, clip= and controller= go with target=; got no target")
        per_prompt = self._per_prompt_settings(weights, len(prompts))
        gen_cfg = _generation_config(self.tokenizer, max_new_tokens, do_sample, temperature, top_p, top_k, stop_at_eos)
        run = (gen_cfg, stop_at_eos, list(logits_processor or []))
        return self._generate_rows(prompts, per_prompt, num_samples, batch_size, seed, progress, run)

    def _generate_rows(self, prompts, per_prompt, num_samples, batch_size, seed, progress, run) -> list[Generation]:
        """:meth:`generate` after its arguments are checked: every (prompt, sample) row, in batches,
        each seeded ``seed + batch index``; the setting held before is restored afterwards."""
        rows = [(i, s) for i in range(len(prompts)) for s in range(num_samples)]
        bs = batch_size or len(rows)
        batches = [rows[i : i + bs] for i in range(0, len(rows), bs)]
        plans = [schedule_steps([per_prompt[i] for i, _ in batch], run[0].max_new_tokens) for batch in batches]
        self.coefficient_table(list({w for plan in plans for ws in plan if ws for w in ws}))  # validate first
        bar = _progress_bar(len(batches) > 1 if progress is None else progress, len(rows))
        old_side, old_weights = self.tokenizer.padding_side, list(self._weights)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so every row continues its prompt
        results: list[Generation] = []
        try:
            for b, (batch, steps) in enumerate(zip(batches, plans)):
                batch_seed = None if seed is None else seed + b
                results.extend(self._generate_batch(prompts, per_prompt, batch, steps, batch_seed, *run))
                if bar is not None:
                    bar.update(len(batch))
        finally:
            self.tokenizer.padding_side = old_side
            self.set_weights(old_weights if len(old_weights) > 1 else old_weights[0])
            if bar is not None:
                bar.close()
        return results

    def _target_weights(self, weights: Any, target: Any, max_ppl_ratio: Any, clip: bool, controller: Any) -> Weights:
        """The setting a controller (given, else the registered factory's) solves ``target`` to."""
        if weights is not None:
            raise WeightsError("pass weights= or target=, not both")
        ctl = controller if controller is not None else find_controller(self)
        ctl.check(self)  # refuses a controller fitted on other endpoints (one line)
        return ctl.weights_for(target, max_ppl_ratio=max_ppl_ratio, clip=clip).weights

    def _per_prompt_settings(self, weights: Any, n: int) -> list[Weights | Schedule]:
        """One setting (Weights or Schedule) per prompt: ``weights`` spread over ``n`` prompts, or
        (None) the current one."""
        if isinstance(weights, Schedule):
            return [weights] * n
        if isinstance(weights, (list, tuple)) and any(isinstance(w, Schedule) for w in weights):
            if len(weights) != n:
                raise WeightsError(f"got {len(weights)} weights for {n} rows; give one per row or a single setting")
            return [w if isinstance(w, Schedule) else as_weights(w) for w in weights]
        if weights is not None:
            return as_weights_list(weights, n)
        if len(self._weights) == 1:
            return [self._weights[0]] * n
        if len(self._weights) != n:
            raise WeightsError(
                f"the model holds {len(self._weights)} per-row weights but generate got {n} prompts; "
                "pass weights= (one per prompt or a single setting)"
            )
        return list(self._weights)

    def _generate_batch(
        self,
        prompts: list[str],
        per_prompt: list[Weights | Schedule],
        batch: list[tuple[int, int]],
        steps: list[list[Weights] | None],
        seed: int | None,
        gen_cfg,
        stop_at_eos: bool,
        processors: list[Any],
    ) -> list[Generation]:
        """Generate the rows ``batch`` ((prompt index, sample index) pairs) in one ``model.generate`` call.

        ``steps`` is :func:`~clm.core.schedule.schedule_steps` of the rows; where a row's setting
        changes after token 0, a :class:`~clm.core.schedule.ScheduleStepper` moves the table.
        Leaves the model at the batch's last setting; :meth:`generate` restores the old one.
        """
        from transformers import LogitsProcessorList

        tok = self.tokenizer
        enc = tok([prompts[i] for i, _ in batch], return_tensors="pt", padding=True)
        self.set_weights(steps[0])  # the prompt's prefill and token 0
        if any(s is not None for s in steps[1:]):
            processors = [ScheduleStepper(self, steps), *processors]
        if seed is not None:
            torch.manual_seed(seed)
        device = next(self.model.parameters()).device
        out = self.model.generate(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            generation_config=gen_cfg,
            **({"logits_processor": LogitsProcessorList(processors)} if processors else {}),
        )
        new = out[:, enc["input_ids"].shape[1] :].tolist()  # (rows, new tokens)
        results = []
        for (i, s), w0, ids in zip(batch, steps[0], new):
            ids, finished = trim_generated(ids, tok.eos_token_id, gen_cfg.pad_token_id, stop_at_eos)
            sched = per_prompt[i] if isinstance(per_prompt[i], Schedule) else None
            text = tok.decode(ids, skip_special_tokens=True)
            results.append(Generation(prompts[i], text, ids, w0, i, s, finished, sched))
        return results

    def __repr__(self) -> str:
        return f"InterpolatedModel({self.endpoints!r}, modules={len(self._wrapped)}, weights={self.weights!r})"


def _check_prompts(prompts: str | Sequence[str], max_new_tokens: int, num_samples: int) -> list[str]:
    """``prompts`` as a non-empty list of strings (one string is one prompt); the counts checked."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise WeightsError("prompts must be a non-empty string or list of strings")
    for name, value, lo in (("max_new_tokens", max_new_tokens, 1), ("num_samples", num_samples, 1)):
        if not isinstance(value, int) or value < lo:
            raise WeightsError(f"{name} must be an integer >= {lo}, got {value!r}")
    return prompts


def _progress_bar(show: bool, total: int):
    """A tqdm bar over ``total`` generated rows, or None."""
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generate", unit="seq")


def _generation_config(
    tok, max_new_tokens: int, do_sample: bool, temperature: float, top_p: float, top_k: int, stop_at_eos: bool
):
    """The ``transformers.GenerationConfig`` of one :meth:`InterpolatedModel.generate` call."""
    from transformers import GenerationConfig

    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature if do_sample else None,
        top_p=top_p if do_sample else None,
        top_k=top_k if do_sample else None,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        eos_token_id=tok.eos_token_id if stop_at_eos else None,
        bos_token_id=tok.bos_token_id,
    )


def trim_generated(ids: list[int], eos_id: int | None, pad_id: int | None, stop_at_eos: bool) -> tuple[list[int], bool]:
    """A row's new tokens up to (not including) the first EOS, else without trailing padding.

    Args:
        ids: the generated token ids of one row.
        eos_id: the tokenizer's EOS id.
        pad_id: the padding id generation fills finished rows with (never stripped when it is EOS).
        stop_at_eos: whether generation stopped at EOS (else EOS is an ordinary token).

    Returns:
        (token ids, finished): finished is True when the row emitted EOS.
    """
    if stop_at_eos and eos_id is not None and eos_id in ids:
        return ids[: ids.index(eos_id)], True
    if pad_id is not None and pad_id != eos_id:
        while ids and ids[-1] == pad_id:
            ids.pop()
    return ids, False
