"""What every notebook of the book shares: its parameters, their validation, and the run dir.

Each notebook's ``parameters`` cell sets a few literals (``preset``, ``model``, ``data_dir``,
``run_dir``, ``seed``, plus its own); the next cell calls :func:`setup`, which validates them
with one-line errors and derives every other setting from the preset. Notebooks share results
only through files in the run dir::

    <run_dir>/endpoints/          the endpoints (clm.Endpoints) the experiments use
    <run_dir>/train/              training checkpoints and logs, per attribute and pole
    <run_dir>/scorers/            scorer heads trained in this run (else the shipped ones)
    <run_dir>/tables/             tidy sweep tables (Parquet)
    <run_dir>/metrics/<nb>.json   each notebook's key numbers, for tests and later chapters
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clm.errors import ConfigError
from clm.paths import ASSETS, REPO, default_data_dir


@dataclass(frozen=True)
class Preset:
    """The scale of a run. Everything else in a notebook is derived from it."""

    name: str
    model: str  # default base model
    train_preset: str  # clm.train preset
    n_prompts: int  # WritingPrompts prompts per setting
    samples: int  # continuations per prompt
    max_new_tokens: int
    alpha_grid: tuple[float, float, float]  # start, stop, step
    ppl_max_tokens: int | None  # WikiText-2 tokens for perplexity (None: all)
    batch_size: int
    note: str = ""
    # The sweeps of chapters 4-6: their cost grows with every value below.
    alphas: tuple[float, ...] | None = None  # α of the single-attribute sweeps (None: the alpha_grid)
    multi_alphas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # the target's α in the λ design (the paper's)
    simplex_step: float = 0.2  # λ grid step on the simplex (the paper's)
    fluency: bool = True  # each continuation's perplexity under the base model (one more forward pass)
    sweep_ppl_tokens: int | None = None  # WikiText-2 tokens per setting (None: ppl_max_tokens)
    sweep_ppl_window: int | None = None  # its window (None: the context); stride min(512, window / 2)

    @property
    def sweep_alphas(self) -> list[float]:
        """The α values of the single-attribute sweeps."""
        from clm.core.weights import grid

        return list(self.alphas) if self.alphas is not None else grid(*self.alpha_grid)


# cpu: on 2 CPU cores SmolLM2-135M costs ~0.6 s of one core per 32-token generation, ~0.3 s more
# for its fluency, and ~5 ms per WikiText-2 token; the full grid (13 α x 5 attributes x 100 prompts
# x 2 samples, 16k WikiText tokens per setting) would take ~5 hours for chapters 4-5. So the cpu
# preset keeps the minimum of the reference run (100 prompts x 2 samples, α from −1 to 2) on a
# coarser grid (fine inside [0, 1], where monotonicity is tested), without per-sample fluency,
# with 4k WikiText tokens per setting, and a coarser λ design and simplex: ~2 hours for 4-5.
PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny", "pico", "tiny", 3, 1, 8, (-1.0, 2.0, 0.5), 2048, 8, "pico model; for tests: minutes on 2 cores",
        sweep_ppl_tokens=1024, sweep_ppl_window=256,
    ),
    "cpu": Preset(
        "cpu", "smollm2-135m", "cpu", 100, 2, 32, (-1.0, 2.0, 0.25), 16384, 32, "embedded default on 2 CPU cores",
        alphas=(-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0), multi_alphas=(0.0, 0.5, 1.0), simplex_step=0.25,
        fluency=False, sweep_ppl_tokens=4096, sweep_ppl_window=1024,
    ),
    "gpu": Preset(
        "gpu", "smollm2-135m", "paper", 1000, 3, 32, (-1.0, 2.0, 0.25), None, 128, "the paper's scale on one CUDA GPU"
    ),
}  # fmt: skip


@dataclass(frozen=True)
class BookParams:
    preset: Preset
    model: str
    data_dir: Path
    run_dir: Path
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoints_dir(self) -> Path:
        return self.run_dir / "endpoints"

    def metrics_path(self, notebook: str) -> Path:
        return self.run_dir / "metrics" / f"{notebook}.json"

    def record(self, notebook: str, **numbers: Any) -> Path:
        """Merge key numbers into ``<run_dir>/metrics/<notebook>.json`` (atomic)."""
        path = self.metrics_path(notebook)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(numbers)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
        os.replace(tmp, path)
        return path

    def sweep_kwargs(self, n_prompts: int, n_samples: int, fluency: bool | None = None) -> dict[str, Any]:
        """The generation settings every chapter's sweeps share, for ``clm.experiments.sweep.run_sweep``.

        One place for them matters: a sweep resumes finished batches only when these settings
        are the same, so chapters that read each other's tables must build them identically.
        ``fluency`` None takes the preset's.
        """
        fluency = self.preset.fluency if fluency is None else fluency
        return dict(
            n_prompts=n_prompts,
            n_samples=n_samples,
            seeds=[self.seed],
            max_new_tokens=self.preset.max_new_tokens,
            batch_size=self.preset.batch_size,
            progress=False,
            fluency="base" if fluency else None,
        )

    def describe(self) -> str:
        d = asdict(self.preset)
        return f"preset={self.preset.name} model={self.model} data_dir={self.data_dir} run_dir={self.run_dir} seed={self.seed} ({d['note']})"


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot record {type(x).__name__} in metrics")


def setup(
    preset: str = "cpu",
    model: str | None = None,
    data_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    seed: int = 0,
    need_data: bool = True,
    **extra: Any,
) -> BookParams:
    """Validate a notebook's parameters and derive the rest from the preset.

    Raises :class:`ConfigError` with a one-line message naming the bad value.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ConfigError(f"model must be a name, directory or hub id, got {model!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    data = Path(data_dir).expanduser() if data_dir not in (None, "") else default_data_dir()
    if need_data and not (data / "attributes").is_dir():
        raise ConfigError(f"data_dir {str(data)!r} has no attributes/ folder; point it at the shared data")
    run = Path(run_dir).expanduser() if run_dir not in (None, "") else REPO / "runs" / preset
    run.mkdir(parents=True, exist_ok=True)
    if preset == "tiny":  # pico's matrices are tiny: threads cost more than they save (~10x on busy cores)
        import torch

        torch.set_num_threads(1)
    # absolute, but through symlinks as given (a run dir linked elsewhere keeps the name readers see)
    data, run = Path(os.path.abspath(data)), Path(os.path.abspath(run))
    return BookParams(p, model or p.model, data, run, seed, dict(extra))


# ---------------------------------------------------------------------- what the experiment chapters share
def find_endpoints(P: BookParams) -> Path:
    """The endpoints a chapter uses: the run dir's (chapter 2 puts them there), else the ones
    shipped for the base model (``clm/assets/endpoints/<model>``).

    Raises :class:`ConfigError` if neither exists."""
    for path in (P.endpoints_dir, ASSETS / "endpoints" / P.model):
        if (path / "manifest.json").is_file():
            return path
    raise ConfigError(
        f"no endpoints in {str(P.endpoints_dir)!r} and none shipped for {P.model!r}; run 02_finetune_endpoints first"
    )


def find_scorers(P: BookParams) -> Path:
    """The scorer heads a chapter uses: the run dir's (trained by chapter 3), else the shipped ones."""
    run = P.run_dir / "scorers"
    return run if any(run.glob("*.safetensors")) or any(run.glob("*/config.json")) else ASSETS / "scorers"


def check_count(name: str, value: Any, minimum: int = 1) -> int | None:
    """``value`` if it is None or an integer >= ``minimum``; else a one-line ConfigError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ConfigError(f"{name} must be an integer >= {minimum} or None, got {value!r}")
    return value


def check_names(name: str, value: Any, available: list[str], default: list[str] | None = None) -> list[str]:
    """A list of distinct names from ``available`` (None: ``default``, else all of ``available``)."""
    if value is None:
        return list(available if default is None else default)
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} must be a non-empty list of names or None, got {value!r}")
    unknown = [v for v in value if v not in available]
    if unknown:
        raise ConfigError(f"{name}: {unknown[0]!r} is not available here (choose from {', '.join(available)})")
    if len(set(value)) != len(value):
        raise ConfigError(f"{name}: {next(v for v in value if list(value).count(v) > 1)!r} is given twice")
    return list(value)


def table_path(P: BookParams, name: str, endpoints: Any = None) -> Path:
    """``<run_dir>/tables/<name>``, for a sweep's ``out``.

    If it does not exist yet, and the reference run's table is shipped with ``clm``
    (``clm/assets/tables/<model>/<name>``, with its ``_perplexity`` table), and ``endpoints``
    (a :class:`clm.Endpoints`) are the shipped ones, that copy is put there first. A sweep with the
    reference settings then finds every batch done; any other sweep recomputes what differs, since
    batches are keyed by their settings, prompts, generation settings and endpoints
    (:func:`clm.experiments.sweep.run_sweep`)."""
    out = P.run_dir / "tables" / name
    shipped = ASSETS / "tables" / P.model / name
    ends_dir = ASSETS / "endpoints" / P.model
    if out.exists() or not shipped.is_file() or endpoints is None or not (ends_dir / "manifest.json").is_file():
        return out
    from clm.core.endpoints import Endpoints

    same = endpoints.digest() == Endpoints.load(ends_dir).digest()
    if same:
        out.parent.mkdir(parents=True, exist_ok=True)
        ppl = shipped.with_name(f"{shipped.stem}_perplexity{shipped.suffix}")
        for src in (ppl, shipped) if ppl.is_file() else (shipped,):
            tmp = out.parent / f".{src.name}.{os.getpid()}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, out.parent / src.name)
    return out
