"""``python -m clm bench``: what dialing costs (chapter 9), and ``bench train``: training speed.

    python -m clm bench --new-tokens 16 --repeats 3 --threads 1 --out clm/assets/bench/cpu-smollm2-135m.json
    python -m clm bench --memory-only --out clm/assets/bench/cpu-smollm2-135m.json
    nice -n 10 python -m clm bench train --model smollm2-135m --steps 4

The first runs :func:`clm.bench.run.run` (every method, interleaved; medians of the repeats) and
prints its JSON (also written to ``--out``); ``--memory-only`` measures each method's peak memory
in a fresh subprocess and adds it to ``--out``. ``bench train`` runs :func:`clm.bench.train.run`:
tokens/s of ``clm.train`` against a plain PEFT + Trainer script on one pole.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clm.cli.args import count

HELP = "benchmark the interpolation methods (speed, memory), or training (bench train)"
# clm.bench.run.METHODS, named here so that the command line starts without importing torch
METHODS = ("base", "fused", "merged", "peft-multi", "peft-cat", "paper", "dexperts")


def method(text: str) -> str:
    if text not in METHODS:
        raise argparse.ArgumentTypeError(f"unknown method {text!r}; choose from {', '.join(METHODS)}")
    return text


def add_parser(sub) -> None:
    from clm.train.config import PRESETS

    p = sub.add_parser("bench", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="base model: a name, checkpoint dir or hub id")
    p.add_argument("--methods", nargs="+", type=method, default=list(METHODS), help=", ".join(METHODS))
    p.add_argument("--attributes", type=count(1), default=5, metavar="N", help="endpoints = 2 x attributes")
    p.add_argument("--rank", type=count(1), default=32)
    p.add_argument("--batches", type=count(1), nargs="+", default=[1, 8], metavar="N")
    p.add_argument("--new-tokens", type=count(1), default=32, metavar="N")
    p.add_argument("--prompt-tokens", type=count(1), default=16, metavar="N")
    p.add_argument("--repeats", type=count(1), default=3, metavar="N")
    p.add_argument("--slow-repeats", type=count(1), default=1, metavar="N", help="repeats for paper and dexperts")
    p.add_argument("--slow-batches", type=count(1), nargs="+", metavar="N", help="batches for paper and dexperts")
    p.add_argument("--threads", type=count(1), metavar="N", help="torch threads (default: torch's choice)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--latency-models", nargs="*", default=["pico"], help="other models to time set_weights on")
    p.add_argument("--memory", action="store_true", help="also measure each method's peak memory in a subprocess")
    p.add_argument("--memory-tokens", type=count(1), default=4, metavar="N", help="new tokens per memory probe")
    p.add_argument("--memory-only", action="store_true", help="only the memory probes, added to --out if it exists")
    p.add_argument("--out", type=Path, help="write the JSON here (else only print it)")
    p.add_argument("--note", help="a remark saved with the run (e.g. what else the machine was doing)")
    p.set_defaults(run=run)
    cmds = p.add_subparsers(dest="bench_command", metavar="{train,sharding,control,alternatives}")
    t = cmds.add_parser("train", help="training tokens/s: clm.train against plain PEFT + Trainer")
    t.add_argument("--model", default="smollm2-135m")
    t.add_argument("--preset", choices=list(PRESETS), default="cpu", help="the training preset")
    t.add_argument("--attribute", default="sentiment")
    t.add_argument("--steps", type=count(1), default=4, metavar="N")
    t.add_argument("--repeats", type=count(1), default=1, metavar="N", help="alternate clm / plain; report medians")
    t.add_argument("--batch-size", type=count(1), metavar="N", help="override the preset's batch_size")
    t.add_argument("--grad-accum", type=count(1), metavar="N", help="override the preset's grad_accum")
    t.add_argument("--data-dir", type=Path, help="the shared data (default: $CLM_DATA_DIR or ../shared/data)")
    t.set_defaults(run=train)
    s = cmds.add_parser("sharding", help="a sweep as 2 processes x 1 thread against 1 process x 2 threads")
    s.add_argument("--out", type=Path, default=Path("clm/assets/bench/cpu-smollm2-135m.json"), help="the bench JSON")
    s.add_argument("--show", action="store_true", help="print the recorded measurement and exit")
    s.add_argument("--processes", type=count(2), default=2, metavar="N")
    s.add_argument("sweep_args", nargs=argparse.REMAINDER, help="-- then the arguments of python -m clm sweep (no --out)")
    s.set_defaults(run=sharding)
    add_control_parser(cmds)
    add_alternatives_parser(cmds)


def run(args: argparse.Namespace) -> int:
    import torch

    from clm.bench import run as bench

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_only:
        res = bench.memory_only(
            args.model,
            tuple(args.methods),
            attributes=args.attributes,
            rank=args.rank,
            batch=max(args.batches),
            new_tokens=args.memory_tokens,
            dtype=args.dtype,
            out=args.out,
            command=args.command_line,
        )
        print(json.dumps(res, indent=1, default=str))
        return 0
    res = bench.run(
        model=args.model,
        methods=tuple(args.methods),
        attributes=args.attributes,
        rank=args.rank,
        batches=tuple(args.batches),
        new_tokens=args.new_tokens,
        prompt_tokens=args.prompt_tokens,
        repeats=args.repeats,
        slow_repeats=args.slow_repeats,
        slow_batches=tuple(args.slow_batches) if args.slow_batches else None,
        dtype=args.dtype,
        latency_models=tuple(args.latency_models),
        memory=args.memory,
        memory_tokens=args.memory_tokens,
    )
    res["command"] = args.command_line
    if args.note:
        res["note"] = args.note
    text = json.dumps(res, indent=1, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        from clm.io import atomic_write_text

        atomic_write_text(args.out, text)
    print(text)
    return 0


def train(args: argparse.Namespace) -> int:
    from clm.bench.train import run as bench_train

    res = bench_train(
        args.model,
        args.preset,
        args.attribute,
        args.steps,
        args.repeats,
        args.batch_size,
        args.grad_accum,
        args.data_dir,
    )
    print(json.dumps({**res, "command": args.command_line}))
    return 0


def sharding(args: argparse.Namespace) -> int:
    from clm.bench import sharding as sh
    from clm.errors import ConfigError

    if args.show:
        data = json.loads(args.out.read_text()) if args.out.is_file() else {}
        print(sh.describe(data.get("sharding")))
        return 0
    sweep_args = [a for a in args.sweep_args if a != "--"]
    if not sweep_args or "--out" in sweep_args:
        raise ConfigError("give the sweep's arguments after --, without --out (e.g. -- --design single:sentiment ...)")
    result = sh.measure(sweep_args, args.processes)
    sh.record(args.out, result)
    print(sh.describe(result))
    return 0


def add_control_parser(cmds) -> None:
    from clm.cli.args import existing_dir, existing_file

    c = cmds.add_parser("control", help="tokens/s with a schedule against the fixed setting; the solve's time")
    c.add_argument("--model", help="base model (default: the endpoints' base)")
    c.add_argument("--endpoints", type=existing_dir, help="endpoints directory (default: the shipped ones for --model)")
    c.add_argument("--controller", type=existing_file, help="a controller JSON (default: the model's shipped one)")
    c.add_argument("--batch", type=count(1), default=8, metavar="N")
    c.add_argument("--new-tokens", type=count(2), default=32, metavar="N")
    c.add_argument("--repeats", type=count(1), default=3, metavar="N", help="timed rounds of each run")
    c.add_argument("--solve-repeats", type=count(1), default=50, metavar="N", help="timed solves per target")
    c.add_argument("--threads", type=count(1), metavar="N", help="torch threads (default: torch's choice)")
    c.add_argument("--out", type=Path, help="merge the record into this bench JSON under 'control' (else only print)")
    c.add_argument("--show", action="store_true", help="print the record in --out (default: the shipped bench JSON)")
    c.set_defaults(run=control)


def control(args: argparse.Namespace) -> int:
    """``bench control``: :mod:`clm.bench.control`'s two measurements, printed and (``--out``) recorded."""
    from clm.bench import report

    if args.show:
        path = args.out or report.SAVED
        data = json.loads(path.read_text()) if path.is_file() else {}
        print(report.control_text(data.get("control")))
        return 0
    import torch

    from clm.bench import control as bc
    from clm.cli.generate import endpoints_for, interpolated
    from clm.core.models import DEFAULT_MODEL
    from clm.experiments.control import Controller, shipped_controller

    if args.threads:
        torch.set_num_threads(args.threads)
    ctl = Controller.load(args.controller) if args.controller else shipped_controller(args.model or DEFAULT_MODEL)
    ends = endpoints_for(args.model, args.endpoints)
    im = interpolated(args.model, ends)
    res = bc.measure(im, ctl, args.batch, args.new_tokens, args.repeats, args.solve_repeats)
    res = {"command": args.command_line, "model": args.model or ends.base_id, **res}
    if args.out:
        bc.record(args.out, res)
    print(report.control_text(res))
    return 0


def add_alternatives_parser(cmds) -> None:
    from clm.presets import PRESETS

    a = cmds.add_parser("alternatives", help="tokens/s of prompting, steering, logit arithmetic, mixtures, ours")
    a.add_argument("--preset", choices=list(PRESETS), default="cpu", help="the comparison chapter's preset")
    a.add_argument("--run-dir", type=Path, help="the book's run dir (default: runs/<preset>)")
    a.add_argument("--attribute", help="the attribute dialed (default: the first trained one)")
    a.add_argument("--batch", type=count(1), default=8, metavar="N")
    a.add_argument("--new-tokens", type=count(2), default=32, metavar="N")
    a.add_argument("--repeats", type=count(1), default=3, metavar="N", help="timed rounds of each method")
    a.add_argument("--threads", type=count(1), metavar="N", help="torch threads (default: torch's choice)")
    a.add_argument("--out", type=Path, help="merge the record into this bench JSON under 'alternatives'")
    a.add_argument("--show", action="store_true", help="print the record in --out (default: the shipped bench JSON)")
    a.set_defaults(run=alternatives)


def alternatives(args: argparse.Namespace) -> int:
    """``bench alternatives``: :mod:`clm.bench.alternatives` on the comparison chapter's methods
    (its dev choices and tables, read from the run dir or generated), printed and (``--out``) recorded."""
    from clm.bench import alternatives as ba
    from clm.bench import report

    if args.show:
        path = args.out or report.SAVED
        data = json.loads(path.read_text()) if path.is_file() else {}
        print(ba.text(data.get("alternatives")))
        return 0
    import torch

    from clm.book.chapters import chapter
    from clm.book.params import find_scorers, table_path
    from clm.eval.scoring import load_scorers
    from clm.experiments import compare_runs

    if args.threads:
        torch.set_num_threads(args.threads)
    P = chapter("08_alternatives", {"preset": args.preset, **({"run_dir": str(args.run_dir)} if args.run_dir else {})})
    from clm.core.engine import InterpolatedModel
    from clm.core.models import load_base

    base, tok = load_base(P.model)
    im = InterpolatedModel(base, tok, P.ends)
    scorers = load_scorers(path=find_scorers(P))
    res = compare_runs.run_all(P, im, scorers, lambda name: table_path(P, "compare/" + name, P.ends),
                               lambda name: table_path(P, name, P.ends), log=print)  # fmt: skip
    methods = compare_runs.bench_methods(P, im, res, tok, args.attribute)
    out = ba.measure(methods, methods.pop("base"), args.batch, args.new_tokens, args.repeats)
    out = {"command": args.command_line, "model": P.model, "attribute": methods["interpolation"].attribute, **out}
    if args.out:
        ba.record(args.out, out)
    print(ba.text(out))
    return 0
