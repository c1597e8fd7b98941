"""Prompting: the instruction-tuned base, told in its chat template how strongly to lean to a pole.

The dial is a level from −2 (very much the low pole) to +2 (very much the high pole). A level's
instruction is a *wording* (a template, :data:`WORDINGS`) filled with the attribute's phrase for
that level (:data:`PHRASES`); both are data, and :func:`clm.methods.dev.choose_wording` picks the
wording on the development prompts. The prompt itself opens the assistant's turn, so the model
continues the prompt's text as every other method does::

    <chat template: [system], user = instruction, assistant turn opened> + prompt  →  continuation

Level 0 is, by default, no instruction at all: the plain prompt, so level 0 is the base model
exactly (``neutral="phrase"`` puts the neutral phrase in the template instead). A tokenizer
without a chat template (the pico model's) falls back to a plain prefix,
``"Instruction: <instruction>\\n\\n" + prompt``; :attr:`PromptingMethod.template` says which was used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from clm.errors import ConfigError
from clm.methods.base import Dial, GenConfig, check_attribute
from clm.methods.decode import LoopMethod, at_base, decode, device_of, model_step, pad_id

LEVELS: tuple[int, ...] = (-2, -1, 0, 1, 2)

#: The phrase for each attribute and level (−2 … +2, toward the high pole), an adjective phrase.
PHRASES: dict[str, dict[int, str]] = {
    "sentiment": {
        -2: "very negative",
        -1: "somewhat negative",
        0: "neutral in tone",
        1: "somewhat positive",
        2: "very positive",
    },
    "politeness": {
        -2: "very rude",
        -1: "somewhat impolite",
        0: "neither polite nor rude",
        1: "somewhat polite",
        2: "very polite",
    },
    "formality": {
        -2: "very informal",
        -1: "somewhat informal",
        0: "neither formal nor informal",
        1: "somewhat formal",
        2: "very formal",
    },
    "simplicity": {
        -2: "very complex and elaborate",
        -1: "somewhat complex",
        0: "of ordinary complexity",
        1: "somewhat simple",
        2: "very simple",
    },
    "humor": {
        -2: "completely serious",
        -1: "mostly serious",
        0: "neither funny nor serious",
        1: "somewhat funny",
        2: "very funny",
    },
}


@dataclass(frozen=True)
class Wording:
    """How a level's phrase becomes an instruction.

    Args:
        name: the wording's name (a key of :data:`WORDINGS`).
        user: the user turn, with ``{phrase}``.
        system: an optional system turn (may hold ``{phrase}`` too).
        neutral: level 0 as ``"none"`` (the plain prompt: the base model) or ``"phrase"``.
    """

    name: str
    user: str
    system: str | None = None
    neutral: Literal["none", "phrase"] = "none"

    def __post_init__(self) -> None:
        if "{phrase}" not in self.user + (self.system or ""):
            raise ConfigError(f"wording {self.name!r} never uses {{phrase}}")
        if self.neutral not in ("none", "phrase"):
            raise ConfigError(f"wording {self.name!r}: neutral must be 'none' or 'phrase', got {self.neutral!r}")


#: Candidate wordings; the chapter chooses one per attribute on the development prompts.
WORDINGS: dict[str, Wording] = {
    w.name: w
    for w in (
        Wording("story", "Write a short story. The story must be {phrase}."),
        Wording("continue", "Continue the text you are given. Your continuation must be {phrase}."),
        Wording("persona", "Continue the text.", system="You are a writer whose every sentence is {phrase}."),
    )
}


class PromptingMethod(LoopMethod):
    """Prompting as a generator: the dial is the level, per row (see the module docstring).

    Args:
        model: the (instruction-tuned) causal LM, or an InterpolatedModel (run at the base).
        tokenizer: its tokenizer; its chat template is used if it has one.
        attribute: one of the five attributes (or any name given in ``phrases``).
        wording: a :class:`Wording` or the name of one in :data:`WORDINGS`.
        phrases: level -> phrase for this attribute (default: :data:`PHRASES`).
        chosen: how the wording was chosen (recorded in the dial).
    """

    name = "prompting"

    def __init__(
        self,
        model,
        tokenizer,
        attribute: str,
        wording: Wording | str = "story",
        phrases: Mapping[int, str] | None = None,
        chosen: str = "default, not yet chosen on dev prompts",
    ):
        self.model, self.tokenizer = model, tokenizer
        self.attribute = attribute if phrases is not None else check_attribute(attribute, PHRASES)
        if isinstance(wording, str):
            if wording not in WORDINGS:
                raise ConfigError(f"unknown wording {wording!r}; known: {', '.join(WORDINGS)}")
            wording = WORDINGS[wording]
        self.wording = wording
        self.phrases = {int(k): v for k, v in (phrases or PHRASES[attribute]).items()}
        if sorted(self.phrases) != list(LEVELS):
            raise ConfigError(f"phrases must give levels {list(LEVELS)}, got {sorted(self.phrases)}")
        self.template = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
        self.dial = Dial(
            "level", tuple(float(x) for x in LEVELS), neutral=0.0 if wording.neutral == "none" else None, chosen=chosen
        )

    def instruction(self, level: float) -> tuple[str | None, str] | None:
        """(system, user) turns for a level, or None for no instruction (level 0, ``neutral="none"``)."""
        if level not in self.dial.grid:
            raise ConfigError(f"prompting: level {level!r} is not one of {list(LEVELS)}")
        if level == 0 and self.wording.neutral == "none":
            return None
        phrase = self.phrases[int(level)]
        system = None if self.wording.system is None else self.wording.system.format(phrase=phrase)
        return system, self.wording.user.format(phrase=phrase)

    def model_prompt(self, prompt: str, strength: float) -> str:
        turns = self.instruction(strength)
        if turns is None:
            return prompt
        system, user = turns
        if self.template == "plain":
            return f"Instruction: {(system + ' ') if system else ''}{user}\n\n{prompt}"
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        head = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return head + prompt

    def encode(self, texts: list[str], strengths: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded (N, T) ids and mask. A chat-templated text carries its own special tokens,
        so it is tokenized without adding any; a plain prompt as the engine tokenizes it."""
        tok = self.tokenizer
        rows = []
        for text, s in zip(texts, strengths):
            special = self.template == "plain" or self.instruction(s) is None
            rows.append(tok(text, add_special_tokens=special)["input_ids"])
        T, pad = max(map(len, rows)), pad_id(tok)
        ids = torch.full((len(rows), T), pad if pad is not None else 0, dtype=torch.long)  # (N, T)
        mask = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            if row:
                ids[r, T - len(row) :], mask[r, T - len(row) :] = torch.tensor(row), 1
        return ids, mask

    def generate_batch(self, texts: list[str], strengths: list[float], gen: GenConfig) -> list[list[int]]:
        with at_base(self.model) as hf:
            ids, mask = self.encode(texts, strengths)
            dev = device_of(hf)
            return decode(
                model_step(hf), ids.to(dev), mask.to(dev), gen, self.tokenizer.eos_token_id, pad_id(self.tokenizer)
            )

    def overhead_tokens(self, prompt: str = "") -> dict[float, int]:
        """Extra prompt tokens per level (what the instruction costs in context)."""
        base = len(self.tokenizer(prompt)["input_ids"])
        ids = self.encode([self.model_prompt(prompt, s) for s in self.dial.grid], list(self.dial.grid))[1]
        return {s: int(n) - base for s, n in zip(self.dial.grid, ids.sum(1).tolist())}

    @property
    def cost(self) -> dict[str, Any]:
        extra = max(self.overhead_tokens().values())
        return {
            "forward_passes_per_token": 1,
            "extra": f"up to {extra} instruction tokens in every prompt ({self.template} template)",
            "preparation": "none (a wording chosen on dev prompts)",
            "preparation_seconds": 0.0,
            "per_row": True,
            "setting_change": "O(prompt): the prompt itself changes",
            "kv_caches": 1,
        }

    def describe(self) -> dict[str, Any]:
        data = {"wording": asdict(self.wording), "phrases": self.phrases, "template": self.template}
        if self.template == "chat":
            data["chat_template"] = hashlib.sha1(str(self.tokenizer.chat_template).encode()).hexdigest()
        digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()
        return {"method": self.name, "attribute": self.attribute, "dial": self.dial.to_dict(), **data, "digest": digest}


def levels_prompts(method: PromptingMethod, prompt: str, levels: Sequence[float] = LEVELS) -> list[str]:
    """The model prompt at each level, e.g. to show them in the book."""
    return [method.model_prompt(prompt, float(s)) for s in levels]
