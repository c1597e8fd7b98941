"""The book's pipeline: execute the notebooks in table-of-contents order, then build the book.

    python -m clm book --preset cpu                    # run every notebook, build _build/html
    python -m clm book --preset tiny --run-dir /tmp/run --out-dir /tmp/nb   # a staged run
    python -m clm book --preset gpu --only 04_single_attribute -p 04_single_attribute:attributes '[sentiment]'

Sources are the jupytext ``py:percent`` files ``notebooks/NN_name.py``; each is read with
jupytext, given the ``python3`` kernelspec and executed with papermill, which injects the
parameters (``preset``, ``model``, ``data_dir``, ``run_dir``, ``seed`` and any ``-p`` extras) that
differ from the notebook's own (:func:`to_inject`). The executed ``.ipynb`` and its ``.py`` go to
``--out-dir`` (default: ``notebooks/`` itself, where the book reads it) as one jupytext pair
(:func:`write_pair`): the injected values folded into the parameters cell, volatile metadata
stripped, one modification time, so JupyterLab opens them clean. Notebooks share results only
through the run dir.

Resuming: after a notebook succeeds, ``<run_dir>/pipeline/<name>.json`` records a hash of its
source and parameters. A rerun skips a notebook whose hash is unchanged and whose output
exists, unless ``--force`` (or ``--from`` an earlier notebook) is given. A failing notebook stops
the pipeline with one line naming the notebook and the cell; the partly executed notebook is
kept in ``<run_dir>/pipeline/`` for inspection.

The book is built with Jupyter Book 1.x, which executes nothing (``execute_notebooks: "off"``)
and fails on any warning (``-W -n --keep-going``). When the executed notebooks are not in the
repository's ``notebooks/``, the sources of the book (``_config.yml``, ``_toc.yml``, ``book/``
and the executed notebooks) are staged in ``<run_dir>/book`` and built there, so a test or an
experimental run never touches the committed notebooks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clm.book.chapters import CHAPTERS, check_names
from clm.book.nbclean import (
    cell_defaults,
    paired_notebook,
    parameters_cell,
    same_value,
)
from clm.book.params import DEFAULT_PRESET, ENV
from clm.errors import ClmError, ConfigError
from clm.paths import REPO
from clm.presets import PRESETS

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PAIRING = "ipynb,py:percent"  # jupytext: each executed NN.ipynb is paired with its NN.py
# Quiet libraries inside the kernels: progress bars belong in a terminal, not in committed outputs.
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "JUPYTER_PREFER_ENV_PATH": "1",  # the kernel "python3" is this environment's Python
}


class NotebookError(ClmError):
    """A notebook failed to execute (the message names the notebook and the cell)."""


@dataclass
class Config:
    """One run of the pipeline. Paths default from ``root`` (the repository)."""

    preset: str = "cpu"
    run_dir: Path | None = None  # default <root>/runs/<preset>
    data_dir: Path | None = None  # default: clm.book.params.default_data_dir() inside the notebooks
    model: str | None = None  # default: the preset's model
    seed: int = 0
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # notebook or "*" -> extra params
    out_dir: Path | None = None  # executed notebooks; default <root>/notebooks
    root: Path = REPO  # holds _config.yml, _toc.yml, book/, notebooks/*.py
    only: tuple[str, ...] = ()  # run only these notebooks (names or NN prefixes)
    start: str | None = None  # rerun from this notebook onwards
    force: bool = False
    allow_missing: bool = False
    timeout: int | None = None  # per cell; default the preset's cell_timeout (clm/presets.py)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        self.root = Path(self.root).resolve()
        # abspath, not resolve: a run dir that is a symlink (e.g. runs/cpu -> a cache disk) keeps
        # its repository-relative name in the committed notebooks' parameters
        self.run_dir = Path(os.path.abspath(self.run_dir or self.root / "runs" / self.preset))
        self.out_dir = Path(self.out_dir or self.root / "notebooks").resolve()
        self.timeout = self.timeout or PRESETS[self.preset].cell_timeout
        for nb, given in self.params.items():  # `-p NB:name value`: a name NB does not have is an error
            if nb in CHAPTERS:
                check_names(nb, given)

    @property
    def src_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def in_place(self) -> bool:
        """Whether executed notebooks land beside their sources (the committed book)."""
        return self.out_dir == self.src_dir


@dataclass
class Result:
    name: str
    status: str  # "ran", "skipped" or "missing"
    seconds: float = 0.0


def toc_notebooks(root: Path) -> list[str]:
    """The notebooks listed in ``<root>/_toc.yml``, in order (names like ``01_data``)."""
    import yaml

    toc = root / "_toc.yml"
    if not toc.is_file():
        raise ConfigError(f"no table of contents at {str(toc)!r}")
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            f = node.get("file") or node.get("root")
            if isinstance(f, str) and f.startswith("notebooks/"):
                files.append(Path(f).stem)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(toc.read_text()))
    return files


def parameters(cfg: Config, name: str) -> dict[str, Any]:
    """Papermill parameters for notebook ``name``: the shared ones, then its ``-p`` extras.

    The default run dir (``runs/<preset>`` of this repository) is passed as None, the chapters'
    own default, so the committed parameters cells keep ``run_dir = None``; any other is relative
    to ``notebooks/`` where it lies inside the repository (portable in committed notebooks)."""
    default = cfg.root == REPO and cfg.run_dir == Path(os.path.abspath(REPO / "runs" / cfg.preset))
    run_dir = None if default else _relative_to(cfg.run_dir, cfg.src_dir)
    params: dict[str, Any] = {
        "preset": cfg.preset,
        "model": cfg.model,
        "data_dir": str(cfg.data_dir) if cfg.data_dir else None,
        "run_dir": run_dir,
        "seed": cfg.seed,
    }
    params.update(cfg.params.get("*", {}))
    params.update(cfg.params.get(name, {}))
    return params


def _relative_to(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base) if path.is_relative_to(base.parent) else str(path)
    except ValueError:  # another drive
        return str(path)


def source_hash(src: Path, params: dict[str, Any]) -> str:
    """sha256 over the notebook's source and its parameters: the resume key."""
    h = hashlib.sha256(src.read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _matches(name: str, wanted: tuple[str, ...]) -> bool:
    return any(name == w or name.split("_", 1)[0] == w for w in wanted)


def execute(cfg: Config, name: str, params: dict[str, Any], digest: str = "") -> None:
    """Execute ``notebooks/<name>.py`` with papermill into ``<out_dir>/<name>.ipynb`` and its
    ``<out_dir>/<name>.py`` (:func:`write_pair`).

    Raises :class:`NotebookError` naming the notebook and the failing cell.
    """
    import jupytext
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb = jupytext.read(cfg.src_dir / f"{name}.py")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("jupytext", {})["formats"] = PAIRING
    params = to_inject(nb, params)
    work = cfg.run_dir / "pipeline"
    work.mkdir(parents=True, exist_ok=True)
    partial = work / f"{name}.{digest[:12]}.partial.ipynb"  # per parameters: parallel jobs don't collide
    os.environ.update(QUIET_ENV)
    # tqdm.auto warns where ipywidgets is missing, then falls back to text bars (which we collapse)
    if "IProgress" not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(
            filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"])
        )
    try:
        # a preset or run dir left at None reads $CLM_PRESET / $CLM_RUN_DIR: this run's, never the shell's
        carried = {"preset": cfg.preset, "run_dir": str(cfg.run_dir)}
        with _kernel_env({ENV[k]: v if k in params else None for k, v in carried.items()}):
            pm.execute_notebook(
                nb,
                str(partial),
                parameters=params,
                kernel_name=KERNELSPEC["name"],
                cwd=str(cfg.src_dir),
                progress_bar=False,
                log_output=False,
                execution_timeout=cfg.timeout,
                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no "TCP without encryption" noise
            )
    except PapermillExecutionError as err:
        first = next((line for line in err.source.splitlines() if line.strip()), "")
        raise NotebookError(
            f"notebook {name} failed in cell {err.cell_index} (In [{err.exec_count}]: {first[:60]!r}): "
            f"{err.ename}: {err.evalue} (partial output: {partial})"
        ) from None
    except Exception as err:  # a timeout or a dead kernel: find the cell that was running
        cell = _running_cell(partial)
        raise NotebookError(f"notebook {name} failed in cell {cell}: {type(err).__name__}: {err}") from None
    write_pair(cfg, name, nbformat.read(partial, as_version=4), params)
    partial.unlink()


def write_pair(cfg: Config, name: str, executed: Any, params: dict[str, Any]) -> None:
    """Write ``<out_dir>/<name>.ipynb`` and its jupytext text ``<out_dir>/<name>.py`` together.

    The parameters cell of both holds the parameters as executed (papermill's injected cell is
    folded into it, :func:`clm.book.nbclean.paired_notebook`), and both files get one
    modification time, so jupytext finds them in sync: JupyterLab opens the notebook with no
    "more recent" error and saving it unedited rewrites neither file. In place, the source
    ``notebooks/<name>.py`` is rewritten only where the executed parameters differ from its own.
    """
    import nbformat

    paired, text = paired_notebook(executed, params)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    ipynb, py = cfg.out_dir / f"{name}.ipynb", cfg.out_dir / f"{name}.py"
    json_text = nbformat.writes(paired)
    json_text += "" if json_text.endswith("\n") else "\n"  # byte for byte as nbformat.write (Jupyter's save)
    for path, content in ((ipynb, json_text), (py, text)):
        if not (path.is_file() and path.read_text(encoding="utf-8") == content):
            from clm.io import atomic_write_text

            atomic_write_text(path, content)
    now = time.time()
    for path in (ipynb, py):
        os.utime(path, (now, now))


def to_inject(nb: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that differ from the notebook's own: only these are injected, and folded
    into its parameters cell, so a run with the defaults leaves the source as it is.

    ``preset`` None in the cell is the default preset (:data:`clm.book.params.DEFAULT_PRESET`);
    the default run dir is already None (:func:`parameters`)."""
    cell = parameters_cell(nb)
    defaults = cell_defaults(cell.source) if cell is not None else {}
    none_means = {"preset": DEFAULT_PRESET}
    return {
        k: v
        for k, v in params.items()
        if not (k in defaults and (same_value(defaults[k], v) or (defaults[k] is None and none_means.get(k) == v)))
    }


@contextmanager
def _kernel_env(env: dict[str, str | None]):
    """Set (a value) or unset (None) environment variables for the kernels started inside, and
    restore them after."""
    old = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _running_cell(partial: Path) -> str:
    try:
        cells = json.loads(partial.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return "?"
    for i, c in enumerate(cells):
        if c.get("metadata", {}).get("papermill", {}).get("status") == "running":
            first = next((line for line in "".join(c.get("source", "")).splitlines() if line.strip()), "")
            return f"{i} ({first[:60]!r})"
    return "?"


def run_notebooks(cfg: Config, log=print) -> list[Result]:
    """Execute the table of contents' notebooks in order, resuming finished ones."""
    names = toc_notebooks(cfg.root)
    if cfg.only:
        unknown = [w for w in cfg.only if not any(_matches(n, (w,)) for n in names)]
        if unknown:
            raise ConfigError(f"--only {unknown[0]!r} is not a notebook of the table of contents ({', '.join(names)})")
        names = [n for n in names if _matches(n, cfg.only)]
    if cfg.start and not any(_matches(n, (cfg.start,)) for n in names):
        raise ConfigError(f"--from {cfg.start!r} is not a notebook of the table of contents")
    missing = [n for n in names if not (cfg.src_dir / f"{n}.py").is_file()]
    if missing and not cfg.allow_missing:  # checked before anything runs
        raise NotebookError(
            f"notebook {missing[0]} is in _toc.yml but {cfg.src_dir / missing[0]}.py does not exist "
            "(pass --allow-missing to skip it)"
        )
    results, forcing = [], cfg.force
    for name in names:
        forcing = forcing or bool(cfg.start and _matches(name, (cfg.start,)))
        src = cfg.src_dir / f"{name}.py"
        if name in missing:
            log(f"WARNING: skipping {name}: {src.name} does not exist yet")
            results.append(Result(name, "missing"))
            continue
        params = parameters(cfg, name)
        digest, marker = source_hash(src, params), cfg.run_dir / "pipeline" / f"{name}.json"
        out = cfg.out_dir / f"{name}.ipynb"
        if not forcing and marker.is_file() and out.is_file():
            done = json.loads(marker.read_text())
            if done.get("hash") == digest and done.get("output") == str(out):
                log(f"{name}: done earlier ({done.get('seconds', 0):.0f} s), skipped")
                results.append(Result(name, "skipped"))
                continue
        log(f"{name}: running (preset {cfg.preset}, cell timeout {cfg.timeout} s) ...")
        t0 = time.perf_counter()
        execute(cfg, name, params, digest)
        seconds = time.perf_counter() - t0
        digest = source_hash(src, params)  # in place, its parameters cell may now say what ran
        from clm.io import atomic_write_text

        atomic_write_text(
            marker,
            json.dumps({"hash": digest, "output": str(out), "seconds": round(seconds, 1), "params": params}, indent=1),
        )
        log(f"{name}: done in {seconds:.0f} s -> {out}")
        results.append(Result(name, "ran", seconds))
    return results


def stage_book(cfg: Config, book_dir: Path | None = None) -> Path:
    """The directory to build the book from.

    In place (outputs in ``notebooks/``, every notebook present) that is the repository itself.
    Otherwise ``book_dir`` (default ``<run_dir>/book``) gets copies of ``_config.yml``,
    ``_toc.yml``, ``book/`` and the executed notebooks, and a placeholder page for each
    notebook that was not executed (so the TOC and every link stay valid).
    """
    names = toc_notebooks(cfg.root)
    present = [n for n in names if (cfg.out_dir / f"{n}.ipynb").is_file()]
    if cfg.in_place and present == names and book_dir is None:
        return cfg.root
    stage = Path(book_dir or cfg.run_dir / "book").resolve()
    for sub in ("book", "notebooks"):
        shutil.rmtree(stage / sub, ignore_errors=True)
    (stage / "notebooks").mkdir(parents=True)
    shutil.copytree(cfg.root / "book", stage / "book")
    shutil.copy2(cfg.root / "_config.yml", stage / "_config.yml")
    for n in present:
        shutil.copy2(cfg.out_dir / f"{n}.ipynb", stage / "notebooks" / f"{n}.ipynb")
    for n in set(names) - set(present):  # a placeholder page keeps the TOC and every link valid
        title = n.split("_", 1)[-1].replace("_", " ").capitalize()
        (stage / "notebooks" / f"{n}.md").write_text(
            f"# {title}\n\n```{{warning}}\nThe notebook `{n}` was not executed in this run "
            f"(preset `{cfg.preset}`, run dir `{cfg.run_dir}`), so this chapter is empty here.\n```\n"
        )
    shutil.copy2(cfg.root / "_toc.yml", stage / "_toc.yml")
    return stage


def build_book(source: Path, path_output: Path | None = None, strict: bool = True) -> Path:
    """Build the book with Jupyter Book (``-W -n --keep-going --all`` when strict); return the HTML dir."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(source), "--all"]
    if path_output is not None:
        cmd += ["--path-output", str(path_output)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    build = Path(path_output or source) / "_build"
    build.mkdir(parents=True, exist_ok=True)
    log = build / "jupyter-book.log"
    from clm.io import atomic_write_text

    atomic_write_text(log, f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode != 0:
        text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # no terminal colours
        warnings = [line for line in text.splitlines() if "WARNING:" in line or "ERROR:" in line]
        last = next((line for line in reversed(text.splitlines()) if line.strip() and "====" not in line), "")
        raise NotebookError(
            f"the book build failed with {len(warnings)} warning(s); "
            f"first: {warnings[0] if warnings else last} (full log: {log})"
        )
    return build / "html"


def run(
    cfg: Config,
    *,
    execute: bool = True,
    build: bool = True,
    book_dir: Path | None = None,
    path_output: Path | None = None,
    log=print,
) -> Path | None:
    """The whole pipeline: execute the notebooks (:func:`run_notebooks`, unless ``execute`` is
    False), then stage (:func:`stage_book`, in ``book_dir``) and build the book (:func:`build_book`,
    into ``path_output``) unless ``build`` is False. Returns the HTML directory, or None if not built."""
    if execute:
        run_notebooks(cfg, log=log)
    if not build:
        return None
    return build_book(stage_book(cfg, book_dir), path_output)
