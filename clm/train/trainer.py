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
from pathlib import Path
from typing import Any

from clm.core.attributes import POLES
from clm.errors import ConfigError, EndpointsError
from clm.io import atomic_write_text
from clm.train.config import TrainConfig
from clm.train.data import Blocks, PoleData, check_targets, check_work, load_pole, separator_ids

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
    """Train one pole's adapter (resuming from the last checkpoint in ``work``); returns ``work/adapter``.

    Rank 0 writes ``work/log.json`` (:func:`_train_record`) and the adapter (:func:`_save_adapter`).
    """
    from transformers import Trainer, default_data_collator, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint

    rank, _, world = _rank()
    model, _ = _load(cfg)
    base = model.clm_base
    set_seed(cfg.seed)  # the LoRA init depends on it
    peft_model = _lora_model(cfg, model)
    ckpts = work / "checkpoints"
    last = get_last_checkpoint(str(ckpts)) if ckpts.is_dir() else None
    steps = total_steps(cfg, data.attribute, len(data.train), world)
    has_eval = len(data.eval) > 0
    trainer = Trainer(
        model=peft_model,
        args=_training_args(cfg, data.attribute, ckpts, steps, has_eval, last is None, world),
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
    final = _final_eval(trainer, has_eval)
    adapter = work / "adapter"
    if trainer.is_world_process_zero():
        record = _train_record(trainer, cfg, data, base, last, start_step, seconds, final)
        _write_json(work / "log.json", record)
        _save_adapter(peft_model, work, cfg, data, base, trainer.state.global_step, final, record["log"])
        if not cfg.keep_checkpoints:
            shutil.rmtree(ckpts, ignore_errors=True)  # the pole is finished; its optimizer states are not needed
    trainer.accelerator.wait_for_everyone()
    return adapter


def _lora_model(cfg: TrainConfig, model):
    """``model`` with fresh LoRA adapters of ``cfg`` (r, α, dropout, targets); a 4-bit base prepared first."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

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
    return get_peft_model(model, lora)


def _training_args(
    cfg: TrainConfig, attribute: str, ckpts: Path, steps: int, has_eval: bool, fresh: bool, world: int
):
    """The ``TrainingArguments`` of one pole: ``steps`` optimizer steps, checkpoints in ``ckpts``,
    an eval every ``eval_steps`` (and at step 0 on a ``fresh`` start) when there are held-out blocks."""
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(ckpts),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=_accum(cfg, world),
        learning_rate=cfg.learning_rate_for(attribute),
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
        eval_on_start=has_eval and fresh,
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


def _final_eval(trainer, has_eval: bool) -> dict[str, Any]:
    """The last eval log entry, evaluating once more if the last step has none ({} without eval)."""
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    if has_eval and (not evals or evals[-1]["step"] != trainer.state.global_step):
        trainer.evaluate()
        evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    return evals[-1] if evals else {}


def _train_record(trainer, cfg: TrainConfig, data: PoleData, base, last, start_step, seconds, final) -> dict[str, Any]:
    """The contents of a pole's ``log.json``: what was trained, how fast, and the loss per step."""
    world = trainer.args.world_size  # what the Trainer really ran with
    tokens = (trainer.state.global_step - start_step) * cfg.batch_size * _accum(cfg, world) * world * cfg.block_size
    return dict(
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
            {k: e[k] for k in _LOG_KEYS if k in e} for e in trainer.state.log_history if "loss" in e or "eval_loss" in e
        ],
    )


def _save_adapter(peft_model, work: Path, cfg: TrainConfig, data: PoleData, base, steps, final, log) -> None:
    """Write ``work/adapter`` (weights + ``clm_adapter.json``) through a temp dir and a rename:
    the adapter dir is whole or absent."""
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
                steps=steps,
                final_eval_loss=final.get("eval_loss"),
                versions=_versions(),
                log=log,  # the loss curve travels with the adapter into the endpoints
            ),
        )
        os.replace(tmp, work / "adapter")  # atomic: the adapter dir is whole or absent
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        config: the training config (see :mod:`clm.train.config`).
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
                    atomic_write_text(dirs[p] / "pole_sha256", config.pole_sha256(a.name, p))
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
    atomic_write_text(path, json.dumps(data, indent=1))
