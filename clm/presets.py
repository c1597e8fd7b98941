"""The presets: every scale the project runs at, each in one place.

A preset is the book's scale (how many prompts, samples, α values, WikiText-2 tokens; which base
model), the training recipe of its endpoints (the values of a :class:`clm.train.config.TrainConfig`)
and the pipeline's cell timeout. Adding a preset is one edit: one more :class:`Preset` in
:data:`PRESETS`. The book's chapters (:mod:`clm.book.params`), ``TrainConfig.from_preset`` and the
pipeline read it from here, and nothing else branches on a preset's name::

    PRESETS["mini"] = Preset(name="mini", note="...", model="smollm2-135m", train={...}, ...)

Plain data in the bottom layer: no torch, no pydantic, nothing from the rest of ``clm``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

PAPER_ALPHAS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)  # the paper's α grid


@dataclass(frozen=True, kw_only=True)
class Preset:
    """One scale of a run. Everything else in a chapter is derived from it and a few parameters.

    ``train`` holds :class:`~clm.train.config.TrainConfig` values (``attributes`` absent: every
    attribute of :data:`clm.core.attributes.ATTRIBUTES`); its ``"preset"`` names the training
    preset (absent: this preset's name), which ``TrainConfig.from_preset`` takes.
    """

    name: str
    note: str  # what the scale is for, shown by every chapter
    model: str  # the default base model
    train: Mapping[str, Any]  # the endpoints' training recipe (TrainConfig values)
    cell_timeout: int  # seconds per notebook cell in the pipeline: the slowest cell at this scale
    # numbers mean nothing: each chapter's quick variant (throwaway scorer heads, a seconds-long benchmark)
    smoke: bool = False
    threads: int | None = None  # torch threads in the chapters (None: torch's default)
    # generation (chapters 1-6)
    n_prompts: int  # WritingPrompts prompts per setting
    samples: int  # continuations per prompt
    max_new_tokens: int
    batch_size: int
    # the sweeps of chapters 4-6: their cost grows with every value below
    alphas: tuple[float, ...] = PAPER_ALPHAS  # α of the single-attribute sweeps
    multi_targets: tuple[str, ...] | None = ("sentiment", "formality")  # chapter 5's targets (None: every attribute)
    multi_alphas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # the target's α in the λ design (the paper's)
    simplex_step: float = 0.2  # λ grid step on the simplex (the paper's)
    fluency: bool = True  # each continuation's perplexity under the base model (one more forward pass)
    # perplexity
    ppl_max_tokens: int | None  # WikiText-2 tokens for the base model's perplexity (None: all)
    sweep_ppl_tokens: int | None = None  # WikiText-2 tokens per setting of a sweep (None: ppl_max_tokens)
    sweep_ppl_window: int | None = None  # its window (None: the context); stride min(512, window / 2)
    scorer_ppl_window: int | None = 2048  # chapter 3's perplexity window (None: the context)

    def __post_init__(self) -> None:
        # frozen: the training part gets its name and becomes read-only
        object.__setattr__(self, "train", MappingProxyType({"preset": self.name, **self.train}))
        object.__setattr__(self, "alphas", tuple(self.alphas))

    @property
    def train_preset(self) -> str:
        """The name ``TrainConfig.from_preset`` knows this preset's training recipe by."""
        return self.train["preset"]

    @property
    def sweep_alphas(self) -> list[float]:
        """The α values of the single-attribute sweeps."""
        return list(self.alphas)


class _TrainPresets(Mapping):
    """A live, read-only view: training preset name -> its TrainConfig values (read at each call,
    so a preset added to :data:`PRESETS` is found at once)."""

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        for p in PRESETS.values():
            if p.train_preset == name:
                return p.train
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(p.train_preset for p in PRESETS.values()))

    def __len__(self) -> int:
        return len(set(p.train_preset for p in PRESETS.values()))


TRAIN: Mapping[str, Mapping[str, Any]] = _TrainPresets()

_QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")

# The paper's recipe (Kangaslahti & Alvarez-Melis 2025, Sec. 4 / App. A), on our default base.
_PAPER = dict(
    preset="paper",
    note=(
        "the paper's recipe: QLoRA (NF4 base), r=32, alpha=16, dropout 0.1, lr 5e-5, effective batch 64, "
        "block 128, q/k/v/o, 1 epoch (20 for sentiment); texts joined by a blank line, not EOS (the "
        "paper's run_clm-style packing with Llama-2's tokenizer puts BOS, not EOS, between texts, so "
        "its endpoints did not learn to stop after every sentence)"
    ),
    model="smollm2-135m",
    quantization="nf4",
    dtype="bfloat16",
    r=32,
    lora_alpha=16,
    lora_dropout=0.1,
    target_modules=_QKVO,
    learning_rate=5e-5,
    batch_size=16,
    grad_accum=4,
    block_size=128,
    separator="\n\n",
    epochs=1,
    epochs_by_attribute={"sentiment": 20},
    eval_fraction=0.05,
    save_steps=200,
)
# The embedded default (SmolLM2-135M) on 2 CPU cores, about 5-10 minutes per pole.
_CPU = dict(
    preset="cpu",
    note=(
        "2 CPU cores train SmolLM2-135M with LoRA at about 200-270 tokens/s with a bfloat16 base "
        "(1.5× fp32's rate; no NF4, whose de-quantization is slower on a CPU; the adapters stay "
        "fp32 and are applied to the fp32 base), so each pole gets a fixed budget instead of the "
        "paper's epochs: 60 steps × 8 blocks × 128 tokens (about 61k tokens, 1.2 epochs of 3,000 "
        "texts, 4 min). r = 8 (not 32) keeps the 10 fp32 adapters at 37 MB, under the repository's "
        "50 MB with the scorer heads; lora_alpha = 2r (update scale 2, 4× the paper's) and learning "
        "rate 1.5e-3, so that few steps move far enough; texts joined by a blank line, not EOS. The "
        "separator and the learning rate were chosen on sentiment's development prompts "
        "(python -m clm.tune; every candidate's result is in the selection table below). Humor "
        "alone trains at learning rate 7.5e-4, chosen on development data only, by a rule written "
        "before measuring it, after its test perplexity missed the book's 1.3× bar (also below)"
    ),
    model="smollm2-135m",
    quantization=None,
    dtype="bfloat16",
    r=8,
    lora_alpha=16,
    lora_dropout=0.05,
    target_modules=_QKVO,
    learning_rate=1.5e-3,
    learning_rate_by_attribute={"humor": 7.5e-4},
    lr_scheduler="linear",
    warmup_ratio=0.05,
    batch_size=8,
    grad_accum=1,
    block_size=128,
    separator="\n\n",
    max_texts=3000,
    max_steps=60,
    eval_fraction=0.05,
    save_steps=20,
)
# For tests and the tiny book run: the pico model, a few steps.
_TINY = dict(
    preset="tiny",
    note="pico model for tests: a few steps at a high lr so that the adapters move the logits",
    model="pico",
    quantization=None,
    dtype="float32",
    attributes=("sentiment", "formality"),
    r=4,
    lora_alpha=8,
    lora_dropout=0.1,
    target_modules=_QKVO,
    learning_rate=1e-2,
    batch_size=4,
    grad_accum=1,
    block_size=32,
    max_texts=120,
    max_steps=6,
    eval_fraction=0.1,
    save_steps=2,
    logging_steps=1,
)

# cpu: on 2 CPU cores SmolLM2-135M costs ~0.6 s of one core per 32-token generation, ~0.3 s more
# for its fluency, and ~5 ms per WikiText-2 token; the full grid (13 α x 5 attributes x 100 prompts
# x 2 samples, 16k WikiText tokens per setting) would take ~5 hours for chapters 4-5. So the cpu
# preset keeps the minimum of the reference run (100 prompts x 2 samples, α from −1 to 2) on a
# coarser grid (fine inside [0, 1], where monotonicity is tested), without per-sample fluency,
# with 4k WikiText tokens per setting, and a coarser λ design and simplex: ~2 hours for 4-5.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="tiny", note="pico model; for tests: minutes on 2 cores", model="pico", train=_TINY,
            cell_timeout=300, smoke=True, threads=1,  # pico's matrices are tiny: threads cost more than they save
            n_prompts=3, samples=1, max_new_tokens=8, batch_size=8,
            alphas=(-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
            ppl_max_tokens=2048, sweep_ppl_tokens=1024, sweep_ppl_window=256, scorer_ppl_window=256,
        ),
        Preset(
            name="cpu", note="embedded default on 2 CPU cores", model="smollm2-135m", train=_CPU,
            cell_timeout=4 * 3600,
            n_prompts=100, samples=2, max_new_tokens=32, batch_size=32,
            alphas=(-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0), multi_alphas=(0.0, 0.5, 1.0), simplex_step=0.25,
            fluency=False, ppl_max_tokens=16384, sweep_ppl_tokens=4096, sweep_ppl_window=1024,
        ),
        Preset(
            name="gpu", note="the paper's scale on one CUDA GPU", model="smollm2-135m", train=_PAPER,
            cell_timeout=12 * 3600,
            n_prompts=1000, samples=3, max_new_tokens=32, batch_size=128,
            multi_targets=None, ppl_max_tokens=None, scorer_ppl_window=None,
        ),
    )
}  # fmt: skip
