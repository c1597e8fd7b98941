"""Data-mixture fine-tuning: one adapter trained on a mixture of the two poles' texts.

Is interpolating two endpoints a stand-in for training on a mixture? The mixture adapter for a
high-pole fraction m is trained with the endpoints' own recipe (the same :class:`TrainConfig`, so
the same steps, batch and learning rate: the same budget) on N texts, round(m·N) of them from the
high pole and the rest from the low pole, where N is what the smaller endpoint trained on. The
texts are drawn from those the endpoints saw (the trainer's seeded shuffle and ``max_texts`` cap,
:func:`endpoint_texts`), and mixed by a seeded shuffle, so a mixture is deterministic.

Then compare it with the interpolated model at α = m in weight space, summed over modules::

    distance = sqrt(Σ_modules ‖ΔW_mix − ΔW(α=m)‖²_F),   ΔW(α) = α ΔW_high + (1 − α) ΔW_low
    scale    = sqrt(Σ_modules ‖ΔW_high − ΔW_low‖²_F)      (the two endpoints' distance)

``ratio = distance / scale``: 0 means the mixture is the interpolation, 1 means it is as far from
it as the endpoints are from each other.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clm.core.lora import delta_weight
from clm.errors import ConfigError
from clm.io import atomic_write_text
from clm.methods.base import Dial, GenConfig
from clm.methods.decode import LoopMethod, decode, device_of, encode, model_step, pad_id
from clm.train.config import AttributeSpec, PoleSpec, TrainConfig
from clm.train.data import read_pole_texts

FRACTIONS: tuple[float, ...] = (0.25, 0.5, 0.75)


def check_fraction(m: float) -> float:
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= float(m) <= 1.0:
        raise ConfigError(f"the high-pole fraction m must be a number in [0, 1], got {m!r}")
    return float(m)


def endpoint_texts(cfg: TrainConfig, attribute: str, pole: str) -> list[str]:
    """The texts one endpoint trains on, in the trainer's order: its source read, shuffled by
    ``Random(f"{seed}/{attribute}/{pole}")`` and cut at ``max_texts`` (as :func:`clm.train.data.load_pole`)."""
    spec = cfg.attribute(attribute)
    texts, _ = read_pole_texts(cfg, getattr(spec, pole))
    random.Random(f"{cfg.seed}/{attribute}/{pole}").shuffle(texts)
    return texts[: cfg.max_texts] if cfg.max_texts else texts


@dataclass
class Mixture:
    """A mixture's texts and how they were drawn."""

    attribute: str
    m: float
    texts: list[str]
    is_high: list[bool]  # per text: drawn from the high pole?
    seed: int

    @property
    def n_high(self) -> int:
        return sum(self.is_high)

    @property
    def fraction(self) -> float:
        return self.n_high / len(self.texts)

    @property
    def name(self) -> str:
        return f"mix{self.m:.2f}"

    def record(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "m": self.m,
            "n_texts": len(self.texts),
            "n_high": self.n_high,
            "n_low": len(self.texts) - self.n_high,
            "fraction": self.fraction,
            "seed": self.seed,
            "texts_sha256": hashlib.sha256("\n".join(self.texts).encode()).hexdigest(),
        }


def mixture(cfg: TrainConfig, attribute: str, m: float) -> Mixture:
    """The mixture of high-pole fraction ``m`` for ``attribute`` (see the module docstring)."""
    m = check_fraction(m)
    low, high = endpoint_texts(cfg, attribute, "low"), endpoint_texts(cfg, attribute, "high")
    n = min(len(low), len(high))
    n_high = round(m * n)
    rows = [(t, True) for t in high[:n_high]] + [(t, False) for t in low[: n - n_high]]
    random.Random(f"{cfg.seed}/{attribute}/mix/{m!r}").shuffle(rows)
    return Mixture(attribute, m, [t for t, _ in rows], [h for _, h in rows], cfg.seed)


def write_mixture(mix: Mixture, out_dir: str | os.PathLike) -> Path:
    """Write the mixture's texts (``texts.jsonl``) and record (``mixture.json``); returns the texts file.

    ``out_dir`` belongs to a run (never the repository: the texts are the shared data's)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "texts.jsonl"
    atomic_write_text(path, "".join(json.dumps({"text": t}) + "\n" for t in mix.texts))
    atomic_write_text(out / "mixture.json", json.dumps(mix.record(), indent=1))
    return path


def mixture_config(cfg: TrainConfig, attribute: str, texts_path: str | os.PathLike, name: str) -> TrainConfig:
    """The endpoints' config with ``attribute``'s high pole read from the mixture file (so the
    trainer's per-attribute steps and learning rate apply) and ``max_texts`` unchanged."""
    spec = cfg.attribute(attribute)
    mixed = AttributeSpec(name=attribute, low=spec.low, high=PoleSpec(name=name, path=str(Path(texts_path).resolve())))
    note = f"data mixture {name} of {attribute} (clm.methods.mixture); recipe: {cfg.note}"
    return cfg.replace(attributes=[mixed.model_dump(mode="json")], note=note)


def train_mixture(
    cfg: TrainConfig, attribute: str, m: float, run_dir: str | os.PathLike, progress: bool = False
) -> Path:
    """Train (or reuse) the mixture adapter for fraction ``m``; returns its adapter directory.

    Work files go to ``<run_dir>/mixture/<attribute>/mix<m>/`` (texts, record, the trainer's
    work dir); a finished adapter is reused. Uses the public :func:`clm.train.trainer.train_pole`.
    """
    from clm.core.models import load_base
    from clm.train.data import check_work, load_pole
    from clm.train.trainer import train_pole

    mix = mixture(cfg, attribute, m)
    work = Path(run_dir).expanduser() / "mixture" / attribute / mix.name
    path = write_mixture(mix, work)
    mcfg = mixture_config(cfg, attribute, path, mix.name)
    check_work(mcfg, attribute, "high", work / "train")
    if (work / "train" / "adapter").is_dir():
        return work / "train" / "adapter"
    _, tok = load_base(mcfg.model, dtype=mcfg.dtype, quantization=mcfg.quantization, device="cpu")
    data = load_pole(mcfg, mcfg.attribute(attribute), "high", tok)
    (work / "train").mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "train" / "pole_sha256", mcfg.pole_sha256(attribute, "high"))
    with warnings.catch_warnings():  # PEFT asks transformers a deprecated question (is_gradient_checkpointing)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return train_pole(mcfg, data, work / "train", progress=progress)


# ---------------------------------------------------------------------- weight space
def deltas(factors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """module -> ΔW = s·B·A (float64) for an adapter's factors (``Endpoints.factors`` / ``read_adapter``)."""
    return {name: delta_weight(f.A.double(), f.B.double(), f.scale) for name, f in factors.items()}


def interpolated(
    low: Mapping[str, torch.Tensor], high: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """module -> α ΔW_high + (1 − α) ΔW_low (a module one endpoint lacks counts as 0 there)."""
    out = {}
    for name in sorted(set(low) | set(high)):
        lo, hi = low.get(name), high.get(name)
        ref = lo if lo is not None else hi
        lo = torch.zeros_like(ref) if lo is None else lo
        hi = torch.zeros_like(ref) if hi is None else hi
        out[name] = (1.0 - alpha) * lo + alpha * hi
    return out


def frobenius_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """sqrt(Σ_modules ‖a − b‖²_F), a module missing on one side counting as 0 there."""
    total = 0.0
    for name in sorted(set(a) | set(b)):  # a fixed order: the same pairs give the same float sum
        x, y = a.get(name), b.get(name)
        diff = x if y is None else (-y if x is None else x - y)
        total += float((diff.double() ** 2).sum())
    return math.sqrt(total)


def compare_with_interpolation(
    adapter_factors: Mapping[str, Any], endpoints: Any, attribute: str, alpha: float
) -> dict[str, float]:
    """How far an adapter's ΔW is from the interpolation at ``alpha``, against the endpoints' distance.

    Args:
        adapter_factors: the adapter's factors (e.g. ``clm.core.endpoints.read_adapter(dir)``).
        endpoints: the :class:`clm.core.endpoints.Endpoints` holding ``attribute``.
        alpha: the α to compare with (the mixture's m).

    Returns:
        ``distance``, ``scale`` (endpoint to endpoint), ``ratio`` = distance / scale, the norms of
        both ΔW and their ``cosine`` (all summed over modules).
    """
    low, high = deltas(endpoints.factors(attribute, "low")), deltas(endpoints.factors(attribute, "high"))
    target, mine = interpolated(low, high, check_fraction(alpha)), deltas(adapter_factors)
    zero = {k: torch.zeros_like(v) for k, v in target.items()}
    distance, scale = frobenius_distance(mine, target), frobenius_distance(high, low)
    n_mine, n_target = frobenius_distance(mine, zero), frobenius_distance(target, zero)
    dot = sum(float((mine[k] * target[k]).sum()) for k in set(mine) & set(target))
    return {
        "distance": distance,
        "scale": scale,
        "ratio": distance / scale if scale else float("nan"),
        "norm": n_mine,
        "norm_interpolated": n_target,
        "cosine": dot / (n_mine * n_target) if n_mine and n_target else float("nan"),
    }


# ---------------------------------------------------------------------- generating
def adapter_name(m: float) -> str:
    """A PEFT adapter name for fraction m (no dots: PEFT keys modules by it)."""
    return f"m{round(check_fraction(m) * 1000):04d}"


def recipe(cfg: TrainConfig, attribute: str, m: float) -> dict[str, Any]:
    """What a mixture adapter is made from, without paths: the endpoints' training settings (less
    the attribute specs, note and data dir) and the mixture's record (its texts' digest). Two runs
    with the same recipe train the same adapter; a sweep keyed by it needs no adapter file."""
    settings = cfg.model_dump(mode="json", exclude={"attributes", "note", "data_dir", "preset"})
    return {"settings": settings, "mixture": mixture(cfg, attribute, m).record()}


class MixtureMethod(LoopMethod):
    """Mixture adapters as a generator: the dial is m, one adapter per forward pass (not per row).

    Warning: this **modifies** ``model``: the adapters are injected with PEFT
    (``PeftModel.from_pretrained``). Give it its own copy of the base (not one an
    InterpolatedModel wraps); :meth:`unwrap` takes the adapters out again.

    Args:
        model, tokenizer: the base model (a separate copy) and its tokenizer.
        attribute: the attribute the mixtures are of.
        adapters: m -> adapter directory, or a callable returning it (e.g. one that trains it with
            :func:`train_mixture`); m = 0 and 1 are the endpoints'
            (``Endpoints.adapter_dir(attribute, "low" / "high")``).
        train_seconds: m -> seconds its training took (from the adapter's training log), for the cost.
        recipes: m -> what the adapter is made from (:func:`recipe`). With recipes the method is
            keyed by them and loads (or trains) the adapters only when it first generates, so a
            sweep whose tables are complete never needs them; without, it is keyed by the files'
            digests and loads them now.
    """

    name = "mixture"
    per_row = False

    def __init__(
        self,
        model,
        tokenizer,
        attribute: str,
        adapters: Mapping[float, Any],
        train_seconds: Mapping[float, float] | None = None,
        recipes: Mapping[float, Any] | None = None,
    ):
        if not adapters:
            raise ConfigError("MixtureMethod needs at least one adapter")
        self.attribute, self.tokenizer, self.model = attribute, tokenizer, model
        self.adapters = {check_fraction(m): d for m, d in sorted(adapters.items())}
        self.recipes = None if recipes is None else {check_fraction(m): r for m, r in recipes.items()}
        if self.recipes is not None and set(self.recipes) != set(self.adapters):
            missing = sorted(set(self.adapters) ^ set(self.recipes))
            raise ConfigError(f"mixture: recipes and adapters differ at m = {missing[0]!r}")
        self.loaded = False
        self.dial = Dial(
            "m", tuple(self.adapters), neutral=None, chosen="the issue's fractions; 0 and 1 are the endpoints"
        )
        self.train_seconds = dict(train_seconds or {})
        if self.recipes is None:
            self.load()

    def load(self) -> None:
        """Resolve every adapter (calling the callables) and inject them into the model (once)."""
        from peft import PeftModel

        if self.loaded:
            return
        self.adapters = {m: Path(d() if callable(d) else d) for m, d in self.adapters.items()}
        items = list(self.adapters.items())
        with warnings.catch_warnings():  # PEFT asks transformers a deprecated question (is_gradient_checkpointing)
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.model = PeftModel.from_pretrained(self.model, str(items[0][1]), adapter_name=adapter_name(items[0][0]))
            for m, d in items[1:]:
                self.model.load_adapter(str(d), adapter_name=adapter_name(m))
        self.model.eval()
        self.loaded = True

    def generate_batch(self, texts: list[str], strengths: list[float], gen: GenConfig) -> list[list[int]]:
        unknown = sorted({s for s in strengths if s not in self.adapters})
        if unknown:
            raise ConfigError(f"mixture: no adapter for m = {unknown[0]!r}; have {sorted(self.adapters)}")
        self.load()
        out: list[list[int]] = [[] for _ in texts]
        dev = device_of(self.model)
        for m in dict.fromkeys(strengths):  # one adapter at a time: rows of one m together
            rows = [r for r, s in enumerate(strengths) if s == m]
            ids, mask = encode(self.tokenizer, [texts[r] for r in rows], self.add_special_tokens)
            self.model.set_adapter(adapter_name(m))
            new = decode(
                model_step(self.model),
                ids.to(dev),
                mask.to(dev),
                gen,
                self.tokenizer.eos_token_id,
                pad_id(self.tokenizer),
            )
            for r, ids_r in zip(rows, new):
                out[r] = ids_r
        return out

    def unwrap(self):
        """Take the adapters out and return the plain base model."""
        return self.model.unload() if self.loaded else self.model

    @property
    def cost(self) -> dict[str, Any]:
        return {
            "forward_passes_per_token": 1,
            "extra": "one LoRA adapter active per forward pass; rows of different m run one m at a time",
            "preparation": "one adapter trained per m (the endpoints' budget each)",
            "preparation_seconds": sum(self.train_seconds.values()) if self.train_seconds else None,
            "per_row": False,
            "setting_change": "switch adapter (O(1) in PEFT, but one m per pass)",
            "kv_caches": 1,
        }

    def describe(self) -> dict[str, Any]:
        out = {"method": self.name, "attribute": self.attribute, "dial": self.dial.to_dict()}
        if self.recipes is not None:
            out["recipes"] = {
                str(m): hashlib.sha1(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()
                for m, r in self.recipes.items()
            }
            return out
        digests = {}
        for m, d in self.adapters.items():
            f = d / "adapter_model.safetensors"
            digests[str(m)] = hashlib.sha1(f.read_bytes()).hexdigest() if f.is_file() else str(d)
        return {**out, "adapters": digests}


def fractions_grid(fractions: Sequence[float] = FRACTIONS) -> tuple[float, ...]:
    """The dial of the comparison: the endpoints (0, 1) and the mixtures between."""
    return tuple(sorted({0.0, 1.0, *(check_fraction(m) for m in fractions)}))
