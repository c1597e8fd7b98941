"""Activation steering: add c·v to the residual stream after one decoder layer.

The vector is the difference of mean residual activations between the two poles' training texts
(Turner et al. 2023, ActAdd; Rimsky et al. 2024, CAA; Vogel 2024, repeng use the same
mean-difference direction, the last two with PCA or contrastive pairs):

    v_L = mean_{x ∈ high} h_L(x) − mean_{x ∈ low} h_L(x),     h_L = hidden state after layer L

each text's activations averaged over its tokens first, so that every text weighs the same.
c = 1 moves the mean low activation onto the mean high one. Steering **modifies the model's
forward pass** through a hook on layer L, never its weights: ``with steer(model, v, c): ...`` or
``s = steer(...); ...; s.remove()``. c may be one number or one per batch row, an (N,) tensor.

``positions="all"`` adds c·v at every position (prompt included); ``"generated"`` only at the
last position of each forward call, which under KV-cache decoding is exactly the positions that
predict new tokens: the last prompt token, then every generated one (the prompt's other
positions stay unsteered). It needs cached decoding, as :mod:`clm.methods.decode` does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from clm.errors import ConfigError
from clm.methods.base import Dial, GenConfig, check_attribute
from clm.methods.decode import LoopMethod, at_base, decode, device_of, encode, model_step, pad_id, plain_model

Positions = Literal["all", "generated"]


def decoder_layers(model) -> nn.ModuleList:
    """The decoder layers of a causal LM (Llama-style ``model.model.layers`` or GPT-2's ``transformer.h``)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = inner
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ConfigError(f"cannot find the decoder layers of {type(inner).__name__}")


def check_layer(model, layer: int) -> int:
    n = len(decoder_layers(model))
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise ConfigError(f"layer must be an integer in [0, {n - 1}], got {layer!r}")
    return layer


@dataclass(frozen=True)
class SteeringVector:
    """A steering direction at one layer, with how it was made.

    ``vector`` is (d,) float32 on the CPU. Values compose like repeng's ControlVector:
    ``2 * v``, ``-v``, ``v + w`` (same layer).
    """

    attribute: str
    layer: int
    vector: torch.Tensor  # (d,)
    n_low: int = 0
    n_high: int = 0
    seconds: float = 0.0  # to compute it (with the other layers of the same pass)

    def __mul__(self, k: float) -> SteeringVector:
        return SteeringVector(self.attribute, self.layer, self.vector * float(k), self.n_low, self.n_high, self.seconds)

    __rmul__ = __mul__

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    def __add__(self, other: SteeringVector) -> SteeringVector:
        if other.layer != self.layer:
            raise ConfigError(f"cannot add steering vectors of layers {self.layer} and {other.layer}")
        return SteeringVector(f"{self.attribute}+{other.attribute}", self.layer, self.vector + other.vector)

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self + (-other)

    @property
    def norm(self) -> float:
        return float(self.vector.norm())

    def digest(self) -> str:
        """sha1 of the vector's bytes and layer (for sweep keys)."""
        h = hashlib.sha1(f"{self.attribute}/{self.layer}".encode())
        h.update(self.vector.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # older transformers return a tuple


@torch.no_grad()
def text_means(
    model, tokenizer, texts: Sequence[str], layers: Sequence[int], batch_size: int = 16, max_length: int = 128
) -> dict[int, torch.Tensor]:
    """Per text, its hidden state after each of ``layers`` averaged over its tokens: layer -> (n, d)."""
    mods = decoder_layers(model)
    grabbed: dict[int, torch.Tensor] = {}
    hooks = [mods[L].register_forward_hook(lambda m, a, o, L=L: grabbed.__setitem__(L, _hidden(o))) for L in layers]
    out: dict[int, list[torch.Tensor]] = {L: [] for L in layers}
    old = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for s in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[s : s + batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            )
            mask = enc["attention_mask"].to(device_of(model))  # (n, T)
            model(input_ids=enc["input_ids"].to(mask.device), attention_mask=mask)
            w = (mask / mask.sum(1, keepdim=True)).unsqueeze(-1).float()  # (n, T, 1)
            for L in layers:
                out[L].append((grabbed[L].float() * w).sum(1).cpu())  # (n, d)
    finally:
        tokenizer.padding_side = old
        for h in hooks:
            h.remove()
    return {L: torch.cat(v) for L, v in out.items()}


def mean_difference(
    model, tokenizer, low: Sequence[str], high: Sequence[str], attribute: str, layers: Sequence[int], **kw: Any
) -> dict[int, SteeringVector]:
    """One :class:`SteeringVector` per layer from the poles' texts, in one pass over them.

    Args:
        low, high: the two poles' texts (e.g. their training files, :func:`pole_texts`).
        layers: decoder layer indices (0-based); the vector is taken at each layer's output.
        kw: ``batch_size``, ``max_length`` (tokens per text) for :func:`text_means`.
    """
    if not low or not high:
        raise ConfigError("mean_difference needs texts for both poles")
    with at_base(model) as hf:
        layers = [check_layer(hf, L) for L in layers]
        t0 = time.perf_counter()
        lo, hi = text_means(hf, tokenizer, low, layers, **kw), text_means(hf, tokenizer, high, layers, **kw)
        seconds = time.perf_counter() - t0
    return {
        L: SteeringVector(attribute, L, hi[L].mean(0) - lo[L].mean(0), len(low), len(high), seconds) for L in layers
    }


def pole_texts(data_dir: Any, attribute: str, n: int | None = 500, seed: int = 0) -> tuple[list[str], list[str]]:
    """(low, high) training texts of an attribute: a seeded sample of ``n`` per pole (None: all)."""
    import random

    from clm.core.attributes import ATTRIBUTES
    from clm.data import attribute_file, read_texts

    a = ATTRIBUTES[check_attribute(attribute)]
    out = []
    for pole in (a.low, a.high):
        texts = read_texts(attribute_file(data_dir, attribute, pole, "train"))
        random.Random(f"{seed}/{attribute}/{pole}").shuffle(texts)
        out.append(texts if n is None else texts[:n])
    return out[0], out[1]


class Steer:
    """A reversible forward hook that adds ``coef · vector`` after one decoder layer (see the module docstring).

    Warning: while installed it changes what ``model`` computes; :meth:`remove` (or leaving the
    ``with`` block) takes it out. The weights are never touched.
    """

    def __init__(
        self,
        model,
        vector: SteeringVector | torch.Tensor,
        coef: float | Sequence[float] | torch.Tensor = 1.0,
        layer: int | None = None,
        positions: Positions = "all",
    ):
        if isinstance(vector, SteeringVector):
            layer = vector.layer if layer is None else layer
            vector = vector.vector
        if layer is None:
            raise ConfigError("give the layer (or a SteeringVector, which knows its layer)")
        if positions not in ("all", "generated"):
            raise ConfigError(f"positions must be 'all' or 'generated', got {positions!r}")
        self.model, self.layer, self.positions = model, check_layer(model, layer), positions
        self.vector = vector.detach().reshape(-1)  # (d,)
        self.set_coef(coef)
        self.handle = None

    def set_coef(self, coef: float | Sequence[float] | torch.Tensor) -> None:
        """One coefficient for every row, or one per batch row: (N,)."""
        c = torch.as_tensor(coef, dtype=torch.float32).reshape(-1)  # (N,) or (1,)
        if c.numel() == 0 or not torch.isfinite(c).all():
            raise ConfigError(f"steering coefficients must be finite numbers, got {coef!r}")
        self.coef = c

    def hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        h = _hidden(output)  # (N, T, d)
        if self.coef.shape[0] not in (1, h.shape[0]):
            raise ConfigError(f"{self.coef.shape[0]} steering coefficients for a batch of {h.shape[0]} rows")
        add = self.coef.to(h)[:, None, None] * self.vector.to(h)[None, None, :]  # (N, 1, d)
        h = h + add if self.positions == "all" else torch.cat([h[:, :-1], h[:, -1:] + add], 1)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    def install(self) -> Steer:
        if self.handle is None:
            self.handle = decoder_layers(self.model)[self.layer].register_forward_hook(self.hook)
        return self

    def remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def __enter__(self) -> Steer:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def steer(
    model,
    vector: SteeringVector | torch.Tensor,
    coef: Any = 1.0,
    layer: int | None = None,
    positions: Positions = "all",
) -> Steer:
    """Install a :class:`Steer` hook and return it (a context manager; or call ``.remove()``)."""
    return Steer(model, vector, coef, layer, positions).install()


class SteeringMethod(LoopMethod):
    """Activation steering as a generator: the dial is c, per row (see the module docstring).

    Args:
        model: a causal LM, or an InterpolatedModel (then run at the base setting).
        tokenizer: its tokenizer.
        vector: a :class:`SteeringVector` (its layer is used).
        grid: the c values a sweep visits (choose them on dev prompts: :func:`clm.methods.dev.choose_steering`).
        positions: "all" or "generated".
    """

    name = "steering"

    def __init__(
        self,
        model,
        tokenizer,
        vector: SteeringVector,
        grid: Sequence[float] = (-4, -2, -1, 0, 1, 2, 4),
        positions: Positions = "all",
        chosen: str = "default, not yet chosen on dev prompts",
    ):
        self.model, self.tokenizer, self.vector, self.positions = model, tokenizer, vector, positions
        self.attribute = vector.attribute
        self.dial = Dial("c", tuple(grid), neutral=0.0, chosen=chosen)
        Steer(plain_model(model), vector, 0.0, positions=positions)  # validates the layer and positions

    def generate_batch(self, texts: list[str], strengths: list[float], gen: GenConfig) -> list[list[int]]:
        with at_base(self.model) as hf:
            ids, mask = encode(self.tokenizer, texts, self.add_special_tokens)
            dev = device_of(hf)
            with steer(hf, self.vector, torch.tensor(strengths), positions=self.positions):
                return decode(
                    model_step(hf), ids.to(dev), mask.to(dev), gen, self.tokenizer.eos_token_id, pad_id(self.tokenizer)
                )

    @property
    def cost(self) -> dict[str, Any]:
        return {
            "forward_passes_per_token": 1,
            "extra": f"one (N, d) add after layer {self.vector.layer}",
            "preparation": "mean-difference vector: one forward pass over each pole's texts",
            "preparation_seconds": round(self.vector.seconds, 3),
            "per_row": True,
            "setting_change": "O(1): a new (N,) coefficient tensor",
            "kv_caches": 1,
        }

    def describe(self) -> dict[str, Any]:
        v = self.vector
        return {
            "method": self.name,
            "attribute": self.attribute,
            "dial": self.dial.to_dict(),
            "layer": v.layer,
            "positions": self.positions,
            "vector": v.digest(),
            "norm": round(v.norm, 6),
            "n_texts": [v.n_low, v.n_high],
        }
