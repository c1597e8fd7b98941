"""``python -m clm generate``: continue prompts at one or more settings of the weights.

    python -m clm generate --weights sentiment=0.9 --prompt "The food was"
    python -m clm generate --endpoints my-ends --weights base --weights "sentiment=1,formality=0" --greedy

Every prompt is continued at every setting, all in one batch (the engine's per-row settings).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clm.cli.args import count, existing_dir, existing_file

HELP = "continue prompts at one or more settings of the weights"
DEFAULT_PROMPTS = ("Once upon a time", "The letter said")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help=HELP, description=__doc__)
    p.add_argument("--model", help="base model: registry name, directory or hub id (default: the endpoints' base)")
    p.add_argument("--endpoints", type=existing_dir, help="endpoints directory (default: the shipped ones for --model)")
    p.add_argument(
        "--weights",
        action="append",
        metavar="SETTING",
        help="a setting, e.g. 'sentiment=0.8' or 'sentiment=1@0.7,formality=0@0.3'; 'base' for the base model; "
        "repeatable (default: base)",
    )
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
    settings = [Weights.parse(w, **flags) for w in args.weights or ["base"]]  # bad values fail before loading
    prompts = [*(args.prompt or []), *(read_texts(args.prompts) if args.prompts else [])] or list(DEFAULT_PROMPTS)
    im = interpolated(args.model, endpoints_for(args.model, args.endpoints), args.dtype, args.quantization)
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
