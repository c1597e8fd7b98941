"""``python -m clm book``: execute the notebooks in table-of-contents order, then build the book.

    python -m clm book --preset cpu                    # run every notebook, build _build/html
    python -m clm book --preset tiny --run-dir /tmp/run --out-dir /tmp/nb   # a staged run
    python -m clm book --preset gpu --only 04_single_attribute -p 04_single_attribute:attributes '[sentiment]'

A finished notebook is skipped on a rerun while its source and parameters are unchanged
(``--force``, ``--from NB``: rerun). A failing notebook stops the run with one line naming the
notebook and the cell (exit code 1). See :mod:`clm.book.pipeline`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from clm.cli.args import count, existing_dir
from clm.errors import ConfigError

HELP = "execute the notebooks in order, then build the book"


def add_parser(sub) -> None:
    from clm.book.params import PRESETS, REPO

    p = sub.add_parser("book", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=list(PRESETS), help="scale of the run (default cpu)")
    p.add_argument("--run-dir", type=Path, help="shared results of the notebooks (default runs/<preset>)")
    p.add_argument("--data-dir", type=existing_dir, help="the shared data (default $CLM_DATA_DIR or ../shared/data)")
    p.add_argument("--model", help="base model (default: the preset's)")
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument(
        "-p",
        dest="params",
        nargs=2,
        action="append",
        default=[],
        metavar=("[NB:]NAME", "VALUE"),
        help="extra parameter (YAML value), for every notebook or for NB only; repeatable",
    )
    p.add_argument("--out-dir", type=Path, help="executed notebooks (default notebooks/, which the book reads)")
    p.add_argument("--only", nargs="+", default=[], metavar="NB", help="run only these notebooks (name or number)")
    p.add_argument("--from", dest="start", metavar="NB", help="rerun this notebook and every later one")
    p.add_argument("--force", action="store_true", help="rerun notebooks even if done")
    p.add_argument("--allow-missing", action="store_true", help="skip notebooks of _toc.yml that do not exist yet")
    p.add_argument("--timeout", type=count(1), metavar="S", help="per-cell timeout in seconds (default by preset)")
    build = p.add_mutually_exclusive_group()
    build.add_argument("--no-build", action="store_true", help="execute the notebooks only")
    build.add_argument("--build-only", action="store_true", help="build the book from executed notebooks only")
    p.add_argument("--book-dir", type=Path, help="where to stage the book's sources when not building in place")
    p.add_argument("--path-output", type=Path, help="the HTML goes to PATH/_build/html (default: the book's sources)")
    p.add_argument("--root", type=existing_dir, default=REPO, help=argparse.SUPPRESS)  # tests: a throwaway book
    p.set_defaults(run=run)


def parameter(key: str, raw: str) -> tuple[str, str, Any]:
    """``-p [NB:]NAME VALUE`` as (notebook or ``"*"``, name, the YAML value)."""
    import yaml

    nb, _, name = key.rpartition(":")
    if not name.isidentifier():
        raise ConfigError(f"-p {key!r}: the parameter name must be an identifier (optionally NOTEBOOK:name)")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"-p {key!r}: {raw!r} is not a YAML value") from None
    return nb or "*", name, value


def run(args: argparse.Namespace) -> int:
    from clm.book import pipeline

    params: dict[str, dict[str, Any]] = {}
    for key, raw in args.params:
        nb, name, value = parameter(key, raw)
        params.setdefault(nb, {})[name] = value
    cfg = pipeline.Config(
        args.preset,
        args.run_dir,
        args.data_dir.resolve() if args.data_dir else None,  # the notebooks run in notebooks/
        args.model,
        args.seed,
        params,
        args.out_dir,
        args.root,
        tuple(args.only),
        args.start,
        args.force,
        args.allow_missing,
        args.timeout,
    )
    try:
        html = pipeline.run(
            cfg,
            execute=not args.build_only,
            build=not args.no_build,
            book_dir=args.book_dir,
            path_output=args.path_output,
        )
    except pipeline.NotebookError as err:  # not a bad flag: the run failed
        print(f"python -m clm book: error: {err}", file=sys.stderr)
        return 1
    if html is not None:
        print(f"book: {html / 'index.html'}")
    return 0
