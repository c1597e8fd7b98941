"""``python -m clm <command>``: the command line.

Each command is a small module here (parse, validate, call one library function, print):

    generate   continue prompts at settings of the weights        clm.core.engine
    train      train the endpoint adapters                        clm.train.trainer
    tune       measure a candidate training run on dev data       clm.experiments.tune
    release    ship a run's endpoints into clm/assets             clm.train.release
    scorers    train or evaluate the attribute scorers            clm.eval.heads
    sweep      generate, score and tabulate one sweep             clm.experiments.sweep
    bench      benchmark the methods, or training                 clm.bench
    book       execute the notebooks, then build the book         clm.book.pipeline

A bad value is one line on stderr (``python -m clm <command>: error: ...``) and exit code 2.
"""

from __future__ import annotations

import shlex
import sys

from clm.cli import bench, book, generate, release, scorers, sweep, train, tune
from clm.cli.args import Parser
from clm.errors import ClmError

COMMANDS = {m.__name__.rsplit(".", 1)[-1]: m for m in (generate, train, tune, release, scorers, sweep, bench, book)}


def parser() -> Parser:
    """The parser of ``python -m clm``, with one sub-parser per command."""
    import argparse

    ap = Parser(prog="python -m clm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m clm`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help (0), or a bad flag (2, its one line already printed)
        return done.code if isinstance(done.code, int) else 2
    args.command_line = "python -m clm " + shlex.join(argv)  # recorded in what a command writes
    try:
        return args.run(args)
    except ClmError as err:
        print(f"python -m clm {args.command}: error: {err}", file=sys.stderr)
        return 2
