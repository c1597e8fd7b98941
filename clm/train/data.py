"""The inputs of ``clm.train``, checked before anything is written: one pole's texts, read,
shuffled, tokenized, packed into blocks and split into train and held-out blocks; the base's
target modules; the work dir's earlier settings.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clm.data import pack_blocks, read_hub_texts, read_texts
from clm.errors import ConfigError, DataError
from clm.train.config import AttributeSpec, PoleSpec, TrainConfig


@dataclass
class PoleData:
    """One pole's packed blocks, split into train and held-out eval blocks."""

    attribute: str
    pole: str  # "low" | "high"
    name: str  # the pole's name, e.g. "negative"
    source: str
    train: list[list[int]]  # (n_train, block_size)
    eval: list[list[int]]  # (n_eval, block_size)
    n_texts: int
    n_tokens: int
    file_sha256: str | None
    texts_sha256: str

    def provenance(self) -> dict[str, Any]:
        blocks = hashlib.sha256(json.dumps([self.train, self.eval]).encode()).hexdigest()
        return dict(
            source=self.source,
            file_sha256=self.file_sha256,
            texts_sha256=self.texts_sha256,
            blocks_sha256=blocks,
            n_texts=self.n_texts,
            n_tokens=self.n_tokens,
            train_blocks=len(self.train),
            eval_blocks=len(self.eval),
        )


def read_pole_texts(cfg: TrainConfig, spec: PoleSpec) -> tuple[list[str], str | None]:
    """All texts of a pole's source, and the sha256 of its file (None for hub datasets)."""
    label = None if spec.label_value is None else str(spec.label_value)
    if spec.dataset is not None:
        return read_hub_texts(spec.dataset, spec.subset, spec.split, spec.field, spec.label_column, label), None
    path = cfg.resolve_path(spec)
    texts = read_texts(path, spec.field, spec.label_column, label)
    return texts, hashlib.sha256(path.read_bytes()).hexdigest()


def separator_ids(cfg: TrainConfig, tokenizer) -> list[int]:
    """The token ids put between packed texts: ``[EOS]`` for ``separator: eos``, else the
    tokens of the separator string."""
    if cfg.separator == "eos":
        if tokenizer.eos_token_id is None:
            raise ConfigError("separator 'eos': the tokenizer has no EOS token; give a string such as '\\n\\n'")
        return [tokenizer.eos_token_id]
    return list(tokenizer(cfg.separator, add_special_tokens=False)["input_ids"])


def load_pole(cfg: TrainConfig, attr: AttributeSpec, pole: str, tokenizer) -> PoleData:
    """Read, shuffle (seeded), cap at ``max_texts``, tokenize, pack and split one pole's data."""
    spec: PoleSpec = getattr(attr, pole)
    texts, file_sha = read_pole_texts(cfg, spec)
    rng = random.Random(f"{cfg.seed}/{attr.name}/{pole}")
    rng.shuffle(texts)
    texts = texts[: cfg.max_texts] if cfg.max_texts else texts
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    sep = separator_ids(cfg, tokenizer)
    blocks = pack_blocks(ids, cfg.block_size, sep)
    n_tokens = sum(len(x) + len(sep) for x in ids)
    need = 2 if cfg.eval_fraction > 0 else 1
    if len(blocks) < need:
        raise DataError(
            f"{attr.name}/{spec.name} ({spec.describe()}): {len(texts)} texts make {n_tokens} tokens, "
            f"fewer than the {need} block(s) of {cfg.block_size} tokens training needs"
        )
    rng.shuffle(blocks)
    n_eval = 0 if cfg.eval_fraction == 0 else min(len(blocks) - 1, max(1, round(cfg.eval_fraction * len(blocks))))
    texts_sha = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return PoleData(
        attr.name,
        pole,
        spec.name,
        spec.describe(),
        blocks[n_eval:],
        blocks[:n_eval],
        len(texts),
        n_tokens,
        file_sha,
        texts_sha,
    )


def check_targets(cfg: TrainConfig, modules: dict[str, list[int]], model_id: str) -> None:
    """Every target module must name Linear modules of the base (PEFT's suffix match)."""
    for t in cfg.target_modules:
        if not any(m == t or m.endswith("." + t) for m in modules):
            leaves = sorted({m.rsplit(".", 1)[-1] for m in modules})
            raise ConfigError(
                f"target module {t!r} is not in base {model_id!r}; its Linear modules end in: {', '.join(leaves)}"
            )


class Blocks:
    """A map-style dataset of equal-length blocks: labels = input_ids (the model shifts them)."""

    def __init__(self, blocks: list[list[int]]):
        import torch

        self.ids = torch.tensor(blocks, dtype=torch.long)  # (n, block_size)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def check_work(cfg: TrainConfig, attribute: str, pole: str, work: Path) -> None:
    """A finished or half-trained pole in the work dir must come from the same settings."""
    want = cfg.pole_sha256(attribute, pole)
    prov, mark = work / "adapter" / "clm_adapter.json", work / "pole_sha256"
    have = json.loads(prov.read_text()).get("pole_sha256") if prov.is_file() else None
    have = have or (mark.read_text().strip() if mark.is_file() else None)
    if have is not None and have != want:
        raise ConfigError(
            f"{str(work)!r} holds {attribute}/{work.name} trained with other settings; use another run_dir or delete it"
        )
