"""The book's pipeline: execute the notebooks in table-of-contents order, then build the book.

    python -m clm.pipeline --preset cpu                    # run every notebook, build _build/html
    python -m clm.pipeline --preset tiny --run-dir /tmp/run --out-dir /tmp/nb   # a staged run
    python -m clm.pipeline --preset gpu --only 04_single_attribute -p 04_single_attribute:attributes '[sentiment]'

Sources are the jupytext ``py:percent`` files ``notebooks/NN_name.py``; each is read with
jupytext, given the ``python3`` kernelspec and executed with papermill, which injects the
parameters (``preset``, ``model``, ``data_dir``, ``run_dir``, ``seed`` and any ``-p`` extras).
The executed ``.ipynb`` (volatile metadata stripped) goes to ``--out-dir`` (default:
``notebooks/`` itself, where the book reads it). Notebooks share results only through the run dir.

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

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clm.book.nbclean import strip_volatile
from clm.book.params import PRESETS, REPO
from clm.errors import ClmError, ConfigError

# Per-cell timeout (seconds) by preset: long enough for the slowest cell at that scale.
TIMEOUTS: dict[str, int] = {"tiny": 300, "cpu": 4 * 3600, "gpu": 12 * 3600}
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
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
    timeout: int | None = None  # per cell; default TIMEOUTS[preset]

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        self.root = Path(self.root).resolve()
        # abspath, not resolve: a run dir that is a symlink (e.g. runs/cpu -> a cache disk) keeps
        # its repository-relative name in the committed notebooks' parameters
        self.run_dir = Path(os.path.abspath(self.run_dir or self.root / "runs" / self.preset))
        self.out_dir = Path(self.out_dir or self.root / "notebooks").resolve()
        self.timeout = self.timeout or TIMEOUTS[self.preset]

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
    """Papermill parameters for notebook ``name``: the shared ones, then its ``-p`` extras."""
    run_dir = _relative_to(cfg.run_dir, cfg.src_dir)  # portable in committed notebooks
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
    """Execute ``notebooks/<name>.py`` with papermill into ``<out_dir>/<name>.ipynb``.

    Raises :class:`NotebookError` naming the notebook and the failing cell.
    """
    import jupytext
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb = jupytext.read(cfg.src_dir / f"{name}.py")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    work = cfg.run_dir / "pipeline"
    work.mkdir(parents=True, exist_ok=True)
    partial = work / f"{name}.{digest[:12]}.partial.ipynb"  # per parameters: parallel jobs don't collide
    os.environ.update(QUIET_ENV)
    # tqdm.auto warns that ipywidgets is missing, then falls back to text bars (which we collapse)
    if "IProgress" not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(
            filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"])
        )
    try:
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
    out = strip_volatile(nbformat.read(partial, as_version=4))
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out_dir / f".{name}.ipynb.tmp"
    nbformat.write(out, tmp)
    os.replace(tmp, cfg.out_dir / f"{name}.ipynb")
    partial.unlink()


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
        marker.write_text(
            json.dumps({"hash": digest, "output": str(out), "seconds": round(seconds, 1), "params": params}, indent=1)
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
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode != 0:
        text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # no terminal colours
        warnings = [line for line in text.splitlines() if "WARNING:" in line or "ERROR:" in line]
        last = next((line for line in reversed(text.splitlines()) if line.strip() and "====" not in line), "")
        raise NotebookError(
            f"the book build failed with {len(warnings)} warning(s); "
            f"first: {warnings[0] if warnings else last} (full log: {log})"
        )
    return build / "html"


def _param(spec: list[str]) -> tuple[str, str, Any]:
    import yaml

    key, raw = spec
    nb, _, name = key.rpartition(":")
    if not name.isidentifier():
        raise ConfigError(f"-p {key!r}: the parameter name must be an identifier (optionally NOTEBOOK:name)")
    return nb or "*", name, yaml.safe_load(raw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clm.pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu", choices=list(PRESETS), help="scale of the run (default cpu)")
    ap.add_argument("--run-dir", type=Path, help="shared results of the notebooks (default runs/<preset>)")
    ap.add_argument("--data-dir", type=Path, help="the shared data (default $CLM_DATA_DIR or ../shared/data)")
    ap.add_argument("--model", help="base model (default: the preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "-p",
        dest="params",
        nargs=2,
        action="append",
        default=[],
        metavar=("[NB:]NAME", "VALUE"),
        help="extra parameter (YAML value), for every notebook or for NB only; repeatable",
    )
    ap.add_argument("--out-dir", type=Path, help="executed notebooks (default notebooks/, which the book reads)")
    ap.add_argument("--only", nargs="+", default=[], metavar="NB", help="run only these notebooks (name or number)")
    ap.add_argument("--from", dest="start", metavar="NB", help="rerun this notebook and every later one")
    ap.add_argument("--force", action="store_true", help="rerun notebooks even if done")
    ap.add_argument("--allow-missing", action="store_true", help="skip notebooks of _toc.yml that do not exist yet")
    ap.add_argument(
        "--timeout", type=int, help="per-cell timeout in seconds (default by preset: tiny 300, cpu 3600, gpu 14400)"
    )
    ap.add_argument("--no-build", action="store_true", help="execute the notebooks only")
    ap.add_argument("--build-only", action="store_true", help="build the book from executed notebooks only")
    ap.add_argument("--book-dir", type=Path, help="where to stage the book's sources when not building in place")
    ap.add_argument(
        "--path-output", type=Path, help="the HTML goes to PATH/_build/html (default: the book's source dir)"
    )
    ap.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    try:
        params: dict[str, dict[str, Any]] = {}
        for spec in a.params:
            nb, name, value = _param(spec)
            params.setdefault(nb, {})[name] = value
        cfg = Config(
            a.preset,
            a.run_dir,
            a.data_dir,
            a.model,
            a.seed,
            params,
            a.out_dir,
            a.root,
            tuple(a.only),
            a.start,
            a.force,
            a.allow_missing,
            a.timeout,
        )
        if not a.build_only:
            run_notebooks(cfg)
        if not a.no_build:
            source = stage_book(cfg, a.book_dir)
            html = build_book(source, a.path_output)
            print(f"book: {html / 'index.html'}")
    except ClmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
