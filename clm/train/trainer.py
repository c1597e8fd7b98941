"""Fine-tune the endpoint adapters: one LoRA adapter per pole of each attribute.

    cfg = clm.train.config.TrainConfig.from_preset("cpu", attributes=["sentiment"])
    ends = clm.train.trainer.train_endpoints(cfg, run_dir="runs/cpu")     # -> clm.Endpoints

For each attribute and each pole, the pole's texts are joined with EOS and packed into blocks of
``block_size`` tokens (as in the paper); a seeded random fraction of the blocks is held out for an
eval loss. A LoRA adapter is trained on the rest with transformers' ``Trainer``, so the same code
runs data-parallel under ``torchrun`` / ``accelerate launch``. The work dir holds, per pole::

    <run_dir>/train/<attribute>/<pole>/checkpoints/   Trainer checkpoints every save_steps
    <run_dir>/train/<attribute>/<pole>/adapter/       the final adapter + clm_adapter.json
    <run_dir>/train/<attribute>/<pole>/log.json       loss per step, eval losses, tokens/s

A pole is finished when its ``adapter/`` exists (it is written to a temp dir and renamed, so it
is whole or absent); rerunning skips finished poles and resumes the others from their last
checkpoint. When both poles of an attribute are finished the attribute is added to the
endpoints directory (default ``<run_dir>/endpoints``), which is created if absent. All input is
validated (config, data, target modules) before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clm.core.attributes import POLES
from clm.errors import ClmError, ConfigError, DataError, EndpointsError
from clm.train.config import TrainConfig
from clm.train.data import (  # noqa: F401
    Blocks,
    PoleData,
    check_targets,
    check_work,
    load_pole,
    read_pole_texts,
    separator_ids,
)

_LOG_KEYS = ("step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm")


# ---------------------------------------------------------------------- training
def _rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) from the launcher's environment (torchrun / accelerate)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _load(cfg: TrainConfig):
    import torch

    from clm.core.models import load_base

    _, local, _ = _rank()
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    return load_base(cfg.model, dtype=cfg.dtype, quantization=cfg.quantization, device=device)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on ``path`` (POSIX flock; a no-op where there is none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def total_steps(cfg: TrainConfig, attribute: str, n_train: int, world: int = 1) -> int:
    """Optimizer steps for one pole: max_steps, else epochs x steps per epoch (at least 1)."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    per_epoch = max(1, math.ceil(n_train / (cfg.batch_size * world)) // _accum(cfg, world))
    return max(1, math.ceil(cfg.epochs_for(attribute) * per_epoch))


def _accum(cfg: TrainConfig, world: int) -> int:
    # Keep the effective batch when data-parallel: each process accumulates 1/world of it.
    return cfg.grad_accum // world if cfg.grad_accum % world == 0 else cfg.grad_accum


def train_pole(
    cfg: TrainConfig, data: PoleData, work: Path, progress: bool = True, callbacks: list | None = None
) -> Path:
    """Train one pole's adapter (resuming from the last checkpoint in ``work``); returns ``work/adapter``."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import Trainer, TrainingArguments, default_data_collator, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint

    rank, _, world = _rank()
    model, _ = _load(cfg)
    base = model.clm_base
    set_seed(cfg.seed)  # the LoRA init depends on it
    if cfg.quantization:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    ckpts = work / "checkpoints"
    last = get_last_checkpoint(str(ckpts)) if ckpts.is_dir() else None
    steps = total_steps(cfg, data.attribute, len(data.train), world)
    has_eval = len(data.eval) > 0
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(ckpts),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=_accum(cfg, world),
        learning_rate=cfg.learning_rate_for(data.attribute),
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=math.ceil(cfg.warmup_ratio * steps),
        weight_decay=cfg.weight_decay,
        max_steps=steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps or cfg.save_steps,
        eval_on_start=has_eval and last is None,
        logging_steps=cfg.logging_steps,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=cuda and cfg.dtype == "bfloat16",
        fp16=cuda and cfg.dtype == "float16",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=Blocks(data.train),
        eval_dataset=Blocks(data.eval) if has_eval else None,
        data_collator=default_data_collator,
        callbacks=[LossBar(f"{data.attribute}/{data.name}", progress and rank == 0), NoFinalSave(), *(callbacks or [])],
    )
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    start_step, t0 = (int(Path(last).name.split("-")[-1]) if last else 0), time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - t0
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    if has_eval and (not evals or evals[-1]["step"] != trainer.state.global_step):
        trainer.evaluate()
        evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    final = evals[-1] if evals else {}
    adapter = work / "adapter"
    if trainer.is_world_process_zero():
        world = trainer.args.world_size  # what the Trainer really ran with
        tokens = (trainer.state.global_step - start_step) * cfg.batch_size * _accum(cfg, world) * world * cfg.block_size
        record = dict(
            attribute=data.attribute,
            pole=data.pole,
            pole_name=data.name,
            base_id=base.id,
            base_fingerprint=base.fingerprint,
            steps=trainer.state.global_step,
            resumed_from=last and Path(last).name,
            world_size=world,
            train_seconds=round(seconds, 3),
            tokens_per_second=round(tokens / seconds, 1) if seconds else None,
            final_eval_loss=final.get("eval_loss"),
            data=data.provenance(),
            log=[
                {k: e[k] for k in _LOG_KEYS if k in e}
                for e in trainer.state.log_history
                if "loss" in e or "eval_loss" in e
            ],
        )
        _write_json(work / "log.json", record)
        tmp = work / f".adapter.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            peft_model.save_pretrained(str(tmp))
            _write_json(
                tmp / "clm_adapter.json",
                dict(
                    base_id=base.id,
                    base_fingerprint=base.fingerprint,
                    attribute=data.attribute,
                    pole=data.pole,
                    pole_name=data.name,
                    config=cfg.to_dict(),
                    config_sha256=cfg.sha256(),
                    pole_sha256=cfg.pole_sha256(data.attribute, data.pole),
                    data=data.provenance(),
                    steps=trainer.state.global_step,
                    final_eval_loss=final.get("eval_loss"),
                    versions=_versions(),
                    log=record["log"],  # the loss curve travels with the adapter into the endpoints
                ),
            )
            os.replace(tmp, adapter)  # atomic: the adapter dir is whole or absent
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if not cfg.keep_checkpoints:
            shutil.rmtree(ckpts, ignore_errors=True)  # the pole is finished; its optimizer states are not needed
    trainer.accelerator.wait_for_everyone()
    return adapter


def train_endpoints(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    endpoints_dir: str | os.PathLike | None = None,
    attributes: list[str] | None = None,
    progress: bool = True,
    callbacks: list | None = None,
):
    """Train the endpoint adapters of ``config`` and add them to an endpoints directory.

    Args:
        config: the training config (see :mod:`clm.config`).
        run_dir: the run directory; work files go to ``<run_dir>/train``.
        endpoints_dir: the endpoints directory (default ``<run_dir>/endpoints``); created if absent.
            Attributes already in it are skipped.
        attributes: train only these (names from the config); default all of them.
        progress: show a progress bar per pole (loss and ETA).
        callbacks: extra transformers ``TrainerCallback`` s (tests use one to kill a run).

    Returns:
        The :class:`clm.Endpoints`. Raises ConfigError / DataError / EndpointsError on bad input,
        before anything is written.
    """
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    if not progress:  # no "Loading weights" bars or info warnings in notebooks and logs
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            return _train_endpoints(config, run_dir, endpoints_dir, attributes, progress, callbacks)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _train_endpoints(config, run_dir, endpoints_dir, attributes, progress, callbacks):
    from clm.core.endpoints import Endpoints

    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    names = [a.name for a in config.attributes] if attributes is None else list(attributes)
    specs = [config.attribute(n) for n in names]
    run = Path(run_dir).expanduser()
    ends_path = Path(endpoints_dir).expanduser() if endpoints_dir is not None else run / "endpoints"
    ends = Endpoints.load(ends_path) if ends_path.exists() else None
    todo = [a for a in specs if ends is None or a.name not in ends]
    work = run / "train"

    # --- validate everything before writing anything
    model, tok = _load(config)
    base = model.clm_base
    if ends is not None and ends.base_fingerprint != base.fingerprint:
        raise EndpointsError(
            f"endpoints {str(ends_path)!r} are for base {ends.base_id!r}, not {base.id!r} (fingerprints differ)"
        )
    check_targets(config, base.modules, base.id)
    separator_ids(config, tok)  # fails now, before any work, if the tokenizer cannot join texts
    for a in todo:
        for p in POLES:
            check_work(config, a.name, p, work / a.name / getattr(a, p).name)
    data = {
        (a.name, p): load_pole(config, a, p, tok)
        for a in todo
        for p in POLES
        if not (work / a.name / getattr(a, p).name / "adapter").is_dir()
    }
    del model

    rank, _, _ = _rank()
    for a in todo:
        dirs = {p: work / a.name / getattr(a, p).name for p in POLES}
        for p in POLES:
            if (a.name, p) in data:
                dirs[p].mkdir(parents=True, exist_ok=True)
                if rank == 0:
                    (dirs[p] / "pole_sha256").write_text(config.pole_sha256(a.name, p))
                train_pole(config, data[(a.name, p)], dirs[p], progress, callbacks)
        if rank == 0:
            # Several runs (one attribute each) may share the endpoints: lock, reread, add.
            with _locked(ends_path.with_name(f".{ends_path.name}.lock")):
                ends = Endpoints.load(ends_path) if ends_path.exists() else Endpoints.create(ends_path, base=base)
                if a.name not in ends:
                    ends.add(
                        a.name,
                        low=dirs["low"] / "adapter",
                        high=dirs["high"] / "adapter",
                        low_name=a.low.name,
                        high_name=a.high.name,
                    )
        _barrier()
    return Endpoints.load(ends_path) if ends_path.exists() else None


# ---------------------------------------------------------------------- progress and records
try:
    from transformers import TrainerCallback as _Callback
except ImportError:  # pragma: no cover
    _Callback = object


class LossBar(_Callback):
    """A tqdm bar per pole: steps with ETA, and the latest train / eval loss."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled, self.bar, self.post = desc, enabled, None, {}

    def on_train_begin(self, args, state, control, **kw):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            desc=self.desc,
            unit="step",
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    def on_step_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kw):
        if self.bar is not None and logs:
            self.post.update({k: f"{logs[k]:.3f}" for k in ("loss", "eval_loss") if k in logs})
            self.bar.set_postfix(self.post, refresh=False)

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()


class NoFinalSave(_Callback):
    """Skip the Trainer's extra checkpoint at the last step: the adapter is written right after,
    and a full checkpoint (optimizer states included) would cost time for nothing."""

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= state.max_steps and state.global_step % args.save_steps != 0:
            control.should_save = False
        return control


def read_logs(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every pole's training log: ``<path>/train/*/*/log.json`` for a run dir, or the ``log`` in
    each adapter's ``clm_adapter.json`` for an endpoints dir (shipped endpoints carry theirs)."""
    p = Path(path)
    logs = [json.loads(f.read_text()) for f in sorted(p.glob("train/*/*/log.json"))]
    if not logs:
        provs = [json.loads(f.read_text()) for f in sorted(p.glob("*/*/clm_adapter.json"))]
        logs = [d for d in provs if isinstance(d.get("log"), list)]
    return logs


def loss_table(path: str | os.PathLike):
    """A tidy table of the training logs: attribute, pole (low/high), pole_name, step, split, loss."""
    import pandas as pd

    cols = ["attribute", "pole", "pole_name", "step", "split", "loss"]
    rows = []
    for log in read_logs(path):
        for e in log["log"]:
            for split, key in (("train", "loss"), ("eval", "eval_loss")):
                if key in e:
                    rows.append(
                        dict(zip(cols, (log["attribute"], log["pole"], log["pole_name"], e["step"], split, e[key])))
                    )
    return pd.DataFrame(rows, columns=cols)


def plot_loss_curves(path: str | os.PathLike):
    """Train loss (lines) and held-out loss (dots) per step: one panel per attribute, one colour per pole.

    Returns:
        The seaborn ``FacetGrid`` (``.figure`` is the matplotlib figure).
    """
    import seaborn as sns

    df = loss_table(path)
    if df.empty:
        raise DataError(f"no training logs in {str(path)!r} (a run dir's train/ or an endpoints dir)")
    palette = dict(zip(POLES, sns.color_palette("colorblind", 2)))
    g = sns.relplot(
        data=df[df.split == "train"],
        x="step",
        y="loss",
        hue="pole",
        hue_order=POLES,
        palette=palette,
        col="attribute",
        col_wrap=min(3, df.attribute.nunique()),
        kind="line",
        height=2.6,
        aspect=1.3,
        facet_kws=dict(sharey=False),
    )
    for attr, ax in g.axes_dict.items():
        ev = df[(df.split == "eval") & (df.attribute == attr)]
        sns.lineplot(
            data=ev,
            x="step",
            y="loss",
            hue="pole",
            hue_order=POLES,
            palette=palette,
            marker="o",
            linestyle="--",
            ax=ax,
            legend=False,
        )
        names = df[df.attribute == attr].drop_duplicates("pole").set_index("pole").pole_name
        ax.set_title(f"{attr}: {names.get('low', '?')} (low) / {names.get('high', '?')} (high)", fontsize=9)
    g.set_axis_labels("optimizer step", "loss (nats/token)")
    if g.legend is not None:
        g.legend.set_title("pole (dashed: held-out)")
    return g


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from clm.version import __version__

    return {
        "clm": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def held_out_losses(path: str | os.PathLike, attributes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per attribute and pole: the base model's held-out loss (step 0), the final one, the steps
    and the training throughput, from the training logs of a run dir or an endpoints dir
    (:func:`clm.train.trainer.read_logs`)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in read_logs(path):
        attr = rec["attribute"]
        if attributes is not None and attr not in attributes:
            continue
        evals = [e for e in rec["log"] if "eval_loss" in e]
        out.setdefault(attr, {})[rec["pole_name"]] = dict(
            base_loss=evals[0]["eval_loss"] if evals and evals[0].get("step", 0) == 0 else None,
            final_loss=rec["final_eval_loss"],
            eval_curve=[(e.get("step"), round(e["eval_loss"], 4)) for e in evals],
            steps=rec["steps"],
            tokens_per_second=rec.get("tokens_per_second"),
        )
    if not out:
        raise ClmError(f"no finished poles under {str(path)!r}")
    return out
