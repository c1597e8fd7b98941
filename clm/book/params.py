"""What every chapter of the book shares: its parameters, the preset and the run dir.

Each chapter's ``parameters`` cell sets a few literals (``preset``, ``model``, ``data_dir``,
``run_dir``, ``seed``, plus its own); the next cell builds them into one validated object,
``P = clm.book.chapters.chapter("04_single_attribute", globals())`` (:mod:`clm.book.chapters`),
a :class:`BookParams` with typed fields. Notebooks share results only through files in the run
dir::

    <run_dir>/endpoints/          the endpoints (clm.Endpoints) the experiments use
    <run_dir>/train/              training checkpoints and logs, per attribute and pole
    <run_dir>/scorers/            scorer heads trained in this run (else the shipped ones)
    <run_dir>/tables/             tidy sweep tables (Parquet)
    <run_dir>/metrics/<nb>.json   each notebook's key numbers, for tests and later chapters

``preset`` and ``run_dir`` carry from one chapter to the next through the environment: left at
None, they are ``$CLM_PRESET`` and ``$CLM_RUN_DIR`` if set, else ``cpu`` and ``runs/<preset>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clm.book import checks
from clm.errors import ConfigError
from clm.io import atomic_write_json
from clm.paths import ASSETS, REPO, default_data_dir
from clm.presets import PRESETS, Preset

DEFAULT_PRESET = "cpu"
ENV = {"preset": "CLM_PRESET", "run_dir": "CLM_RUN_DIR"}  # parameter -> the variable it falls back to


@dataclass(frozen=True, kw_only=True)
class BookParams:
    """The parameters every chapter shares, validated, with the preset they derive from.

    A chapter's own parameters are fields of a subclass (:mod:`clm.book.chapters`)."""

    notebook: str = "book"  # the chapter these are for (names it in errors and metrics)
    preset: Preset
    model: str
    data_dir: Path
    run_dir: Path
    seed: int
    # "preset" / "run_dir" -> the environment variable it came from (absent: a parameter or the default)
    chosen_by: Mapping[str, str] = field(default_factory=dict)

    @property
    def endpoints_dir(self) -> Path:
        return self.run_dir / "endpoints"

    def metrics_path(self, notebook: str | None = None) -> Path:
        return self.run_dir / "metrics" / f"{notebook or self.notebook}.json"

    def record(self, notebook: str | None = None, **numbers: Any) -> Path:
        """Merge key numbers into ``<run_dir>/metrics/<notebook>.json`` (atomic; default: this chapter's)."""
        path = self.metrics_path(notebook)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(numbers)
        return atomic_write_json(path, data, default=_jsonable)

    def wikitext(self, im: Any, max_tokens: int | None = None, window: int | None = None) -> Any:
        """The sweeps' WikiText-2 perplexity of ``im`` per setting (``perplexity=`` of ``run_sweep``):
        the first ``max_tokens`` tokens (default: the preset's) in windows of ``window``, stride
        min(512, window / 2). One place for it, so that chapters sharing tables key them alike."""
        from clm.experiments.sweep_perplexity import wikitext_perplexity

        spec = self.wikitext_spec(max_tokens, window)
        return wikitext_perplexity(im, spec["path"], **spec["kwargs"])

    def wikitext_spec(self, max_tokens: int | None = None, window: int | None = None) -> dict[str, Any]:
        """``{"path": WikiText-2 test, "kwargs": {max_tokens, window, stride}}`` as :meth:`wikitext`
        measures it, for the methods' own perplexity callables (steering, mixture adapters)."""
        p = self.preset
        max_tokens = max_tokens or p.sweep_ppl_tokens or p.ppl_max_tokens
        window = window or p.sweep_ppl_window
        stride = 512 if window is None else min(512, window // 2)
        path = self.data_dir / "eval" / "wikitext2_test.raw.txt"
        return {"path": path, "kwargs": dict(max_tokens=max_tokens, window=window, stride=stride)}

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
        def by(name: str) -> str:
            return f" (${ENV[name]})" if name in self.chosen_by else ""

        return (
            f"preset={self.preset.name}{by('preset')} model={self.model} data_dir={self.data_dir} "
            f"run_dir={self.run_dir}{by('run_dir')} seed={self.seed} ({self.preset.note})"
        )


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot record {type(x).__name__} in metrics")


def shared(
    notebook: str,
    preset: Any = None,
    model: Any = None,
    data_dir: Any = None,
    run_dir: Any = None,
    seed: Any = 0,
    need_data: bool = True,
) -> dict[str, Any]:
    """Validate the parameters every chapter has and resolve them; creates nothing.

    Precedence, for ``preset`` and ``run_dir``: the parameter if not None, else the environment
    variable (``$CLM_PRESET``, ``$CLM_RUN_DIR``) if set, else the default (``cpu``;
    ``runs/<preset>`` in the repository). ``model`` None is the preset's, ``data_dir`` None is
    ``$CLM_DATA_DIR`` or ``../shared/data``. Returns the :class:`BookParams` fields.

    Raises :class:`~clm.book.checks.ParameterError`: one line naming the notebook, the parameter
    and the value.
    """
    chosen_by: dict[str, str] = {}
    if preset is None and os.environ.get(ENV["preset"]):
        preset, chosen_by["preset"] = os.environ[ENV["preset"]], ENV["preset"]
    preset = DEFAULT_PRESET if preset is None else preset
    if not isinstance(preset, str) or preset not in PRESETS:
        src = f" (from ${ENV['preset']})" if "preset" in chosen_by else ""
        hint = checks.closest(preset, PRESETS)
        hint = hint if hint.startswith(";") else ""
        raise checks.fail(notebook, "preset", f"must be one of {', '.join(PRESETS)}, got {preset!r}{src}{hint}")
    p = PRESETS[preset]
    checks.text(none=True).check(notebook, "model", model)
    checks.count(0).check(notebook, "seed", seed)
    checks.path().check(notebook, "data_dir", data_dir)
    checks.path().check(notebook, "run_dir", run_dir)
    data = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if data_dir is not None and not data.is_dir():
        raise checks.fail(notebook, "data_dir", f"must be an existing directory, got {str(data)!r}")
    if need_data and not (data / "attributes").is_dir():
        raise checks.fail(notebook, "data_dir", f"must hold the shared data (an attributes/ folder), got {str(data)!r}")
    if run_dir is None and os.environ.get(ENV["run_dir"]):
        run_dir, chosen_by["run_dir"] = os.environ[ENV["run_dir"]], ENV["run_dir"]
    run = Path(run_dir).expanduser() if run_dir is not None else REPO / "runs" / preset
    # absolute, but through symlinks as given (a run dir linked elsewhere keeps the name readers see)
    run = checks.writable_dir(notebook, "run_dir", Path(os.path.abspath(run)))
    return dict(
        notebook=notebook,
        preset=p,
        model=model or p.model,
        data_dir=Path(os.path.abspath(data)),
        run_dir=run,
        seed=seed,
        chosen_by=chosen_by,
    )


def start(P: BookParams) -> BookParams:
    """Create the run dir and apply the preset's torch threads: the only side effects of a setup."""
    P.run_dir.mkdir(parents=True, exist_ok=True)
    if P.preset.threads:
        import torch

        torch.set_num_threads(P.preset.threads)
    return P


def setup(
    preset: str | None = None,
    model: str | None = None,
    data_dir: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    seed: int = 0,
    need_data: bool = True,
) -> BookParams:
    """The shared parameters alone, for code outside a chapter (a chapter uses
    :func:`clm.book.chapters.chapter`). Raises a one-line :class:`ConfigError`."""
    return start(BookParams(**shared("book", preset, model, data_dir, run_dir, seed, need_data)))


# ---------------------------------------------------------------------- what the experiment chapters share
def find_endpoints(P: BookParams) -> Path:
    """The endpoints a chapter uses: the run dir's (chapter 2 puts them there), else the ones
    shipped for the base model (``clm/assets/endpoints/<model as a safe name>``).

    Raises :class:`ConfigError` if neither exists."""
    from clm.paths import safe_name

    for path in (P.endpoints_dir, ASSETS / "endpoints" / safe_name(P.model)):
        if (path / "manifest.json").is_file():
            return path
    raise ConfigError(
        f"no endpoints in {str(P.endpoints_dir)!r} and none shipped for {P.model!r}; run 02_finetune_endpoints first"
    )


def find_scorers(P: BookParams) -> Path:
    """The scorers every chapter uses: the run dir's (heads trained by chapter 3, ``<attr>.json``
    with ``<attr>.safetensors``, or fine-tuned classifiers ``<attr>/config.json``), else the shipped heads."""
    run = P.run_dir / "scorers"
    return run if any(run.glob("*.safetensors")) or any(run.glob("*/config.json")) else ASSETS / "scorers"


def table_path(P: BookParams, name: str, endpoints: Any = None) -> Path:
    """``<run_dir>/tables/<name>``, for a sweep's ``out``.

    If it does not exist yet and the reference run's table ships with ``clm``
    (``clm/assets/tables/<model>/<name>``, with its ``_perplexity`` table), it is copied there
    first (atomically) when ``endpoints`` (a :class:`clm.Endpoints`) share the shipped endpoints'
    base and at least one attribute's adapters. The sweep then reuses exactly the shipped rows
    whose keys still hold, as for any table of its own: generations by their settings, prompts,
    generation settings and the endpoints they use; scores by their scorers' fingerprints;
    perplexities by their context (:mod:`clm.experiments.keys`). Everything else is recomputed."""
    from clm.io import atomic_copy
    from clm.paths import safe_name

    out = P.run_dir / "tables" / name
    shipped = ASSETS / "tables" / safe_name(P.model) / name
    ends_dir = ASSETS / "endpoints" / safe_name(P.model)
    if out.exists() or endpoints is None or not shipped.is_file() or not (ends_dir / "manifest.json").is_file():
        return out
    if _shares_endpoints(endpoints, ends_dir):
        ppl = shipped.with_name(f"{shipped.stem}_perplexity{shipped.suffix}")
        for src in (ppl, shipped) if ppl.is_file() else (shipped,):
            if not (out.parent / src.name).exists():
                atomic_copy(src, out.parent / src.name)
    return out


_SHIPPED_ENDPOINTS: dict[tuple[str, int], Any] = {}  # (dir, manifest mtime) -> Endpoints, digests cached


def _shares_endpoints(endpoints: Any, ends_dir: Path) -> bool:
    """Do ``endpoints`` have the shipped ones' base and some attribute with the same adapters?"""
    from clm.core.endpoints import Endpoints

    sig = (str(ends_dir), (ends_dir / "manifest.json").stat().st_mtime_ns)
    if sig not in _SHIPPED_ENDPOINTS:
        _SHIPPED_ENDPOINTS[sig] = Endpoints.load(ends_dir)
    ref = _SHIPPED_ENDPOINTS[sig]
    if endpoints.base_fingerprint != ref.base_fingerprint:
        return False
    return any(a in ref and endpoints.digest([a]) == ref.digest([a]) for a in endpoints.attributes)
