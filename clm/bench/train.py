"""Benchmark: training tokens/s of ``clm.train`` against a plain PEFT + Trainer script.

Both train one pole (the same packed blocks of the same texts) with the same LoRA and optimiser
settings, back to back in one process; each figure is optimizer steps x effective batch x block
size over the wall time of ``Trainer.train()`` (model loading and data preparation excluded).
clm.train runs with checkpointing and eval switched off here so that both do the same work.
The command prints one JSON line. Not a test: run it by hand, e.g.::

    nice -n 10 python -m clm bench train --model smollm2-135m --steps 4
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def plain_peft(model_dir: Path, blocks: list[list[int]], cfg, steps: int, out: Path) -> float:
    """The reference: a plain PEFT + Trainer script, as a user would write it. Returns tokens/s."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator, set_seed

    class Blocks(torch.utils.data.Dataset):
        def __init__(self, b):
            self.ids = torch.tensor(b)

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "labels": self.ids[i]}

    set_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        max_steps=steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        logging_steps=1,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Blocks(blocks), data_collator=default_data_collator)
    t0 = time.perf_counter()
    trainer.train()
    return steps * cfg.effective_batch * cfg.block_size / (time.perf_counter() - t0)


def run(
    model: str = "smollm2-135m",
    preset: str = "cpu",
    attribute: str = "sentiment",
    steps: int = 4,
    repeats: int = 1,
    batch_size: int | None = None,
    grad_accum: int | None = None,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Train one pole (``attribute``'s high pole) with ``clm.train`` and with plain PEFT, ``steps``
    optimizer steps each, alternating ``repeats`` times; returns the medians and every run
    (``batch_size``, ``grad_accum``: override the preset's)."""
    import torch

    from clm.core.models import load_base, resolve_base
    from clm.train.config import TrainConfig
    from clm.train.trainer import load_pole, train_pole

    over = dict(batch_size=batch_size, grad_accum=grad_accum, data_dir=None if data_dir is None else str(data_dir))
    cfg = TrainConfig.from_preset(preset, model=model, attributes=[attribute], max_steps=steps, **over)
    cfg = cfg.replace(eval_fraction=0.0, save_steps=10**9, warmup_ratio=0.0)  # no eval, no checkpoints
    _, tok = load_base(cfg.model)
    data = load_pole(cfg, cfg.attributes[0], "high", tok)
    clm_runs, plain_runs = [], []
    for _ in range(repeats):  # alternate, so that a change in machine load hits both
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_pole(cfg, data, Path(tmp) / "clm", progress=False)
            clm_wall = time.perf_counter() - t0
            clm_runs.append(json.loads((Path(tmp) / "clm" / "log.json").read_text())["tokens_per_second"])
            plain_runs.append(plain_peft(resolve_base(cfg.model)[1], data.train, cfg, steps, Path(tmp) / "plain"))
    clm_tps, plain_tps = statistics.median(clm_runs), statistics.median(plain_runs)
    return dict(
        bench="train_tokens_per_second",
        model=cfg.model,
        preset=cfg.preset,
        steps=steps,
        batch_size=cfg.batch_size,
        grad_accum=cfg.grad_accum,
        block_size=cfg.block_size,
        r=cfg.r,
        clm_tokens_per_s=round(clm_tps, 1),
        plain_peft_tokens_per_s=round(plain_tps, 1),
        ratio=round(clm_tps / plain_tps, 3),
        clm_runs=[round(x, 1) for x in clm_runs],
        plain_peft_runs=[round(x, 1) for x in plain_runs],
        load_average=[round(x, 2) for x in os.getloadavg()],
        clm_wall_s_incl_load=round(clm_wall, 1),
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        device="cuda" if torch.cuda.is_available() else "cpu",
        torch=torch.__version__,
    )
