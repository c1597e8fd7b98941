"""Training the scorers: small heads on a frozen encoder (default), or fine-tuning (paper's).

Heads (:func:`train_heads`). For each attribute, the training texts of its paper's source and of
its second source are subsampled (at most ``max_per_pole`` per pole and source, seeded), and a
``val_fraction`` of them is held out. Every candidate head (logistic regression at a few C, a
one-hidden-layer MLP) is fitted on the rest; the one with the best held-out accuracy on the
paper's source wins (ties: the second source's). A temperature is then fitted on the held-out
texts of both sources (Guo et al. 2017). Test splits are never read here.

Each head is written as ``<attr>.safetensors`` with ``<attr>.json``: the encoder and its
fingerprint, the chosen head and every candidate's held-out accuracy, the data files with their
sha256 and how many texts were used, and the command. :func:`write_metrics` then scores the
test splits into ``metrics.json``.

    python -m clm scorers train --data-dir ../shared/data --out clm/assets/scorers
    python -m clm scorers evaluate --path clm/assets/scorers --data-dir ../shared/data

Fine-tuning (:func:`finetune`): any Hugging Face sequence-classification model (the paper:
``roberta-base``) with transformers' ``Trainer``; load the result with
:class:`clm.eval.scoring.HFScorer`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clm.core.attributes import ATTRIBUTES
from clm.data import attribute_file, read_texts
from clm.errors import ConfigError
from clm.eval.scoring import Head, accuracy, evaluate, get_encoder
from clm.io import atomic_write, atomic_write_text, sha256_file

CANDIDATES = ("lr:0.1", "lr:1", "lr:10", "mlp:256", "mlp:512")


@dataclass(frozen=True)
class HeadConfig:
    """How a head is trained."""

    encoder: str = "minilm"  # minilm | pico | a directory | a hub id
    sources: str = "both"  # "main": the paper's source only; "both": plus the second source
    max_per_pole: int = 4000  # training texts per pole and source (subsampled, seeded)
    val_fraction: float = 0.1  # held out of the training texts, to choose the head and temperature
    candidates: tuple[str, ...] = CANDIDATES  # "lr:<C>" or "mlp:<hidden>"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self):
        if self.sources not in ("main", "both"):
            raise ConfigError(f"sources must be 'main' or 'both', got {self.sources!r}")
        if self.max_per_pole < 4:
            raise ConfigError(f"max_per_pole must be at least 4, got {self.max_per_pole}")
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        for c in self.candidates:
            kind, _, arg = c.partition(":")
            if kind not in ("lr", "mlp") or not _is_number(arg):
                raise ConfigError(f"head candidate {c!r} is not 'lr:<C>' or 'mlp:<hidden>'")


def _is_number(s: str) -> bool:
    try:
        return float(s) > 0
    except ValueError:
        return False


# ---------------------------------------------------------------------- data
def training_split(data_dir: str | os.PathLike, attribute: str, cfg: HeadConfig) -> tuple[dict[str, Any], list[dict]]:
    """Subsample and split the training texts of an attribute.

    Returns:
        ({"train"|"val": {"texts", "y", "source"}}, files) where source is "main"/"second" per
        text and files lists each file with its sha256, rows and the number used.
    """
    a = ATTRIBUTES[attribute]
    rng = np.random.default_rng(cfg.seed)
    parts: dict[str, dict[str, list]] = {s: {"texts": [], "y": [], "source": []} for s in ("train", "val")}
    files = []
    sources = [("main", attribute)] + ([("second", a.second)] if cfg.sources == "both" else [])
    for kind, src in sources:
        for y, pole in enumerate((a.low, a.high)):
            path = attribute_file(data_dir, src, pole, "train")
            texts = read_texts(path)
            pick = rng.permutation(len(texts))[: cfg.max_per_pole]
            n_val = max(1, int(round(len(pick) * cfg.val_fraction)))
            for split, idx in (("val", pick[:n_val]), ("train", pick[n_val:])):
                parts[split]["texts"] += [texts[i] for i in idx]
                parts[split]["y"] += [y] * len(idx)
                parts[split]["source"] += [kind] * len(idx)
            files.append(
                dict(
                    file=f"attributes/{src}/{path.name}",
                    sha256=sha256_file(path),
                    rows=len(texts),
                    used=len(pick),
                    val=n_val,
                )
            )
    out = {s: {"texts": p["texts"], "y": np.array(p["y"]), "source": np.array(p["source"])} for s, p in parts.items()}
    return out, files


# ---------------------------------------------------------------------- heads
def fit_head(kind: str, X: np.ndarray, y: np.ndarray, seed: int = 0) -> Head:
    """Fit one candidate ("lr:<C>" or "mlp:<hidden>") on (N, d) embeddings and 0/1 labels."""
    name, _, arg = kind.partition(":")
    if name == "lr":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=float(arg), max_iter=3000, class_weight="balanced")
        clf.fit(X, y)
        return Head([(clf.coef_.T.copy(), clf.intercept_.copy())])  # (d, 1), (1,)
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(int(arg),), alpha=1e-3, early_stopping=True, max_iter=300, random_state=seed
    )
    clf.fit(X, y)
    return Head([(W.copy(), b.copy()) for W, b in zip(clf.coefs_, clf.intercepts_)])


def fit_temperature(head: Head, X: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimizing the held-out negative log-likelihood of sigmoid(logit / T)."""
    from scipy.optimize import minimize_scalar

    z = Head(head.layers).logit(X)  # (N,) uncalibrated

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, -s) * y + np.logaddexp(0, s) * (1 - y)))

    return float(np.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded").x))


def train_head(
    attribute: str, data_dir: str | os.PathLike, cfg: HeadConfig, progress: bool | None = None
) -> tuple[Head, dict]:
    """Train, choose and calibrate one attribute's head. Returns (head, config record)."""
    enc = get_encoder(cfg.encoder)
    split, files = training_split(data_dir, attribute, cfg)
    X = {s: enc.embed_cached(split[s]["texts"], batch_size=cfg.batch_size, progress=progress) for s in split}
    y = {s: split[s]["y"] for s in split}
    main, second = split["val"]["source"] == "main", split["val"]["source"] == "second"
    tried = []
    best: tuple[tuple[float, float], Head, str] | None = None
    for kind in cfg.candidates:
        head = fit_head(kind, X["train"], y["train"], cfg.seed)
        p = head.proba(X["val"])
        acc_main = accuracy(p[main], y["val"][main])
        acc_second = accuracy(p[second], y["val"][second]) if second.any() else float("nan")
        tried.append(dict(head=kind, val_main=acc_main, val_second=acc_second, n_params=head.n_params))
        key = (acc_main, 0.0 if np.isnan(acc_second) else acc_second)
        if best is None or key > best[0]:
            best = (key, head, kind)
    assert best is not None
    _, head, kind = best
    head.temperature = fit_temperature(head, X["val"], y["val"])
    a = ATTRIBUTES[attribute]
    record = dict(
        attribute=attribute,
        low=a.low,
        high=a.high,
        encoder=enc.id,
        encoder_fingerprint=enc.fingerprint,
        max_length=enc.max_length,
        head=kind,
        temperature=head.temperature,
        n_params=head.n_params,
        chosen_by="held-out accuracy on the paper's source (ties: second source); test splits unused",
        candidates=tried,
        n_train=int(len(y["train"])),
        n_val=int(len(y["val"])),
        data=files,
        train_config=asdict(cfg),
    )
    return head, record


def train_heads(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    attributes: list[str] | None = None,
    cfg: HeadConfig | None = None,
    progress: bool | None = None,
    command: str | None = None,
) -> dict[str, dict]:
    """Train heads for the attributes and write ``<out>/<attr>.{safetensors,json}``. Returns the records."""
    cfg = cfg or HeadConfig()
    attributes = list(attributes or ATTRIBUTES)
    for a in attributes:
        if a not in ATTRIBUTES:
            raise ConfigError(f"unknown attribute {a!r}; known: {', '.join(ATTRIBUTES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = {}
    for a in attributes:
        head, rec = train_head(a, data_dir, cfg, progress)
        rec["command"] = command
        atomic_write(out / f"{a}.safetensors", head.save)
        atomic_write_text(out / f"{a}.json", json.dumps(rec, indent=1))
        records[a] = rec
    return records


def write_metrics(
    path: str | os.PathLike,
    data_dir: str | os.PathLike,
    limit: int | None = None,
    progress: bool | None = None,
    command: str | None = None,
) -> dict:
    """Score the test splits with the heads in ``path``; write and return ``<path>/metrics.json``."""
    from clm.eval.scoring import load_scorers

    scorers = load_scorers(path=path)
    summary, rel = evaluate(scorers, data_dir, limit=limit, progress=progress)
    metrics: dict[str, Any] = {"command": command, "limit_per_pole": limit, "attributes": {}}
    for a, sc in scorers.items():
        rows = summary[summary.attribute == a].set_index("source")
        metrics["attributes"][a] = dict(
            head=sc.config.get("head"),
            encoder=sc.config.get("encoder"),
            train_command=sc.config.get("command"),
            test_accuracy_main=float(rows.loc["main", "accuracy"]),
            test_accuracy_second=float(rows.loc["second", "accuracy"]),
            ece_main=float(rows.loc["main", "ece"]),
            ece_second=float(rows.loc["second", "ece"]),
            n_test_main=int(rows.loc["main", "n"]),
            n_test_second=int(rows.loc["second", "n"]),
            truncated_main=float(rows.loc["main", "truncated"]),
            truncated_second=float(rows.loc["second", "truncated"]),
            bar=ATTRIBUTES[a].scorer_bar,
        )
        metrics["attributes"][a]["meets_bar"] = (
            metrics["attributes"][a]["test_accuracy_main"] >= metrics["attributes"][a]["bar"]
        )
    atomic_write_text(Path(path) / "metrics.json", json.dumps(metrics, indent=1))
    return metrics


# ---------------------------------------------------------------------- fine-tuning (paper's)
class _TextDataset:
    def __init__(self, texts: list[str], labels: np.ndarray, tokenizer, max_length: int):
        self.enc = tokenizer(list(texts), truncation=True, max_length=max_length)
        self.labels = [int(v) for v in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.labels[i]}


def finetune(
    attribute: str,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    model: str = "roberta-base",
    cfg: HeadConfig | None = None,
    epochs: float = 2.0,
    lr: float = 2e-5,
    batch_size: int = 16,
    max_steps: int = -1,
    max_length: int = 128,
) -> dict:
    """Fine-tune a sequence classifier on an attribute (the paper's scorers: roberta-base).

    Uses the same subsample and held-out split as the heads (``cfg``). Writes the model,
    tokenizer and ``clm_scorer.json`` to ``out``; returns the record (with held-out accuracy).
    """
    import shutil

    import torch
    from transformers import DataCollatorWithPadding, Trainer

    cfg = cfg or HeadConfig(sources="main")
    split, files = training_split(data_dir, attribute, cfg)
    tok, clf = _classifier(model, attribute)
    args = _finetune_args(out, cfg.seed, epochs, lr, batch_size, max_steps)
    train_ds = _TextDataset(split["train"]["texts"], split["train"]["y"], tok, max_length)
    trainer = Trainer(model=clf, args=args, train_dataset=train_ds, data_collator=DataCollatorWithPadding(tok))
    trainer.train()
    val_ds = _TextDataset(split["val"]["texts"], split["val"]["y"], tok, max_length)
    logits = trainer.predict(val_ds).predictions  # (N, 2)
    p = torch.softmax(torch.as_tensor(logits).float(), -1)[:, 1].numpy()
    main = split["val"]["source"] == "main"
    a = ATTRIBUTES[attribute]
    record = dict(
        attribute=attribute,
        low=a.low,
        high=a.high,
        model=model,
        val_main=accuracy(p[main], split["val"]["y"][main]),
        epochs=epochs,
        lr=lr,
        max_steps=max_steps,
        max_length=max_length,
        data=files,
        train_config=asdict(cfg),
    )
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    atomic_write_text(Path(out) / "clm_scorer.json", json.dumps(record, indent=1))
    shutil.rmtree(Path(out) / "_trainer", ignore_errors=True)
    return record


def _classifier(model: str, attribute: str):
    """(tokenizer, a fresh 2-label sequence classifier of ``model``) labelled low 0 / high 1."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    clf = AutoModelForSequenceClassification.from_pretrained(model, num_labels=2)
    a = ATTRIBUTES[attribute]
    clf.config.id2label, clf.config.label2id = {0: a.low, 1: a.high}, {a.low: 0, a.high: 1}
    return tok, clf


def _finetune_args(out: str | os.PathLike, seed: int, epochs: float, lr: float, batch_size: int, max_steps: int):
    """The ``TrainingArguments`` of :func:`finetune`: no checkpoints, scratch in ``out/_trainer``."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(Path(out) / "_trainer"),
        num_train_epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        save_strategy="no",
        report_to=[],
        seed=seed,
        logging_steps=50,
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
