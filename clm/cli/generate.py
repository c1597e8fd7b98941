"""``python -m clm generate``: continue prompts at one or more settings of the weights.

    python -m clm generate --weights sentiment=0.9 --prompt "The food was"
    python -m clm generate --endpoints my-ends --weights base --weights "sentiment=1,formality=0" --greedy
    python -m clm generate --target sentiment=0.7 --max-ppl-ratio 1.3 --prompt "The food was"

Every prompt is continued at every setting, all in one batch (the engine's per-row settings).
``--target`` asks for mean scores instead: the shipped controller of the endpoints' base solves
them (clm.experiments.control), the solved setting and its predicted scores with their
intervals are printed, then the prompts are continued at that setting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clm.cli.args import count, existing_dir, existing_file, number
from clm.errors import ConfigError

HELP = "continue prompts at one or more settings of the weights"
DEFAULT_PROMPTS = ("Once upon a time", "The letter said")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help=HELP, description=__doc__)
    p.add_argument("--model", help="base model: registry name, directory or hub id (default: the endpoints' base)")
    p.add_argument("--endpoints", type=existing_dir, help="endpoints directory (default: the shipped ones for --model)")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--weights",
        action="append",
        metavar="SETTING",
        help="a setting, e.g. 'sentiment=0.8' or 'sentiment=1@0.7,formality=0@0.3'; 'base' for the base model; "
        "repeatable (default: base)",
    )
    how.add_argument(
        "--target",
        action="append",
        metavar="ATTR=SCORE",
        help="ask for a mean score in [0, 1] instead of a setting, e.g. 'sentiment=0.7' or "
        "'sentiment=0.7,formality=0.4'; repeatable (one setting solves them all jointly)",
    )
    p.add_argument("--max-ppl-ratio", type=number, metavar="R", help="with --target: perplexity budget (>= 1)")
    p.add_argument("--clip", action="store_true", help="with --target: the closest setting if out of reach")
    p.add_argument("--controller", type=existing_file, help=argparse.SUPPRESS)  # a controller JSON (tests)
    p.add_argument("--prompt", action="append", help="a prompt; repeatable")
    p.add_argument("--prompts", type=existing_file, help="a prompts file (.txt lines or .jsonl 'prompt' fields)")
    p.add_argument("--max-new-tokens", type=count(1), default=32, metavar="N")
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of the paper's pure sampling")
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--extrapolate", action="store_true", help="allow α outside [0, 1] (within [-1, 2])")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--quantization", choices=["nf4"], default=None)
    p.set_defaults(run=run)


def endpoints_for(model: str | None, path: Path | None):
    """The endpoints at ``path``, else the shipped ones of ``model`` (default: the embedded default)."""
    from clm.core.endpoints import Endpoints
    from clm.core.models import DEFAULT_MODEL
    from clm.paths import shipped_dir

    return Endpoints.load(path if path is not None else shipped_dir("endpoints", model or DEFAULT_MODEL))


def interpolated(model: str | None, ends, dtype: str = "float32", quantization: str | None = None):
    """An :class:`~clm.core.engine.InterpolatedModel` of ``ends`` on ``model`` (default: their base)."""
    from clm.core.engine import InterpolatedModel
    from clm.core.models import load_base

    base, tok = load_base(model or ends.base_id, dtype=dtype, quantization=quantization)
    return InterpolatedModel(base, tok, ends)


def run(args: argparse.Namespace) -> int:
    from clm.core.weights import Weights
    from clm.data import read_texts

    flags = {"extrapolate": True} if args.extrapolate else {}
    if args.target is None and (args.max_ppl_ratio is not None or args.clip or args.controller):
        raise ConfigError("--max-ppl-ratio, --clip and --controller go with --target")
    targets = parse_target_flags(args.target) if args.target else None  # bad values fail before loading
    settings = [Weights.parse(w, **flags) for w in args.weights or ["base"]]
    prompts = [*(args.prompt or []), *(read_texts(args.prompts) if args.prompts else [])] or list(DEFAULT_PROMPTS)
    ends = endpoints_for(args.model, args.endpoints)
    if targets is not None:
        plan = solve_targets(targets, ends, args)
        print(describe_plan(plan))
        settings = [plan.weights]
    im = interpolated(args.model, ends, args.dtype, args.quantization)
    rows = [(p, w) for w in settings for p in prompts]
    outs = im.generate(
        [p for p, _ in rows],
        weights=[w for _, w in rows],
        max_new_tokens=args.max_new_tokens,
        do_sample=not args.greedy,
        seed=args.seed,
    )
    for g in outs:
        print(f"[{g.weights}] {g.prompt!r} -> {g.text!r}")
    return 0


def parse_target_flags(items: list[str]) -> dict[str, float]:
    """``--target`` values (``attr=score`` pairs, comma-separated or repeated) as one dict."""
    from clm.experiments.control_targets import parse_targets

    out: dict[str, float] = {}
    for item in items:
        for name, score in parse_targets(item).items():
            if name in out:
                raise ConfigError(f"--target {name} is given twice")
            out[name] = score
    return out


def solve_targets(targets: dict[str, float], ends, args: argparse.Namespace):
    """The :class:`~clm.experiments.control.Plan` of ``targets``: the ``--controller`` file, else
    the shipped controller of the endpoints' base, checked against ``ends``."""
    from clm.experiments.control import Controller, shipped_controller

    ctl = Controller.load(args.controller) if args.controller else shipped_controller(ends.base_id)
    ctl.check(ends)
    return ctl.weights_for(targets, max_ppl_ratio=args.max_ppl_ratio, clip=args.clip)


def describe_plan(plan) -> str:
    """The solved setting, then every predicted mean score with its interval, and the perplexity."""
    asked = ",".join(f"{a}={t:g}" for a, t in plan.targets.items())
    lines = [f"target {asked} -> setting {plan.weights}"]
    for a, x in plan.predicted.items():
        lo, hi = plan.interval[a]
        mark = f" (target {plan.targets[a]:g})" if a in plan.targets else ""
        lines.append(f"  predicted {a} {x:.3f} [{lo:.3f}, {hi:.3f}]{mark}")
    lines.append(f"  predicted perplexity ratio {plan.ppl_ratio:.3f} ({plan.level:.0%} intervals)")
    if plan.clipped:
        lines.append(f"  clipped: {plan.message}")
    return "\n".join(lines)
