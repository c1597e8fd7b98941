"""``python -m clm generate``: continue prompts at a few settings (thin: parse, validate, call, print)."""

from __future__ import annotations

import argparse
import sys

from clm.errors import ClmError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="continue prompts at one or more weight settings")
    gen.add_argument("--model", default="smollm2-135m", help="registry name, directory or hub id")
    gen.add_argument("--endpoints", default=None, help="endpoints directory (default: the shipped ones for --model)")
    gen.add_argument("--weights", action="append", default=None, help="a setting, e.g. 'sentiment=0.8'; repeatable; 'base' for the base model")
    gen.add_argument("--prompt", action="append", default=None, help="a prompt; repeatable")
    gen.add_argument("--max-new-tokens", type=int, default=32)
    gen.add_argument("--greedy", action="store_true", help="greedy decoding instead of the paper's pure sampling")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--extrapolate", action="store_true", help="allow α outside [0, 1] (within [-1, 2])")
    gen.add_argument("--quantization", choices=["nf4"], default=None)
    args = parser.parse_args(argv)
    try:
        return _generate(args)
    except ClmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _generate(args) -> int:
    from clm.core.endpoints import Endpoints
    from clm.core.engine import InterpolatedModel
    from clm.core.models import load_base
    from clm.core.weights import Weights
    from clm.paths import ASSETS

    settings = [Weights.parse(w, **({"extrapolate": True} if args.extrapolate else {})) for w in (args.weights or ["base"])]
    prompts = args.prompt or ["Once upon a time", "The letter said"]
    path = args.endpoints or ASSETS / "endpoints" / args.model
    ends = Endpoints.load(path)
    model, tok = load_base(args.model, quantization=args.quantization)
    im = InterpolatedModel(model, tok, ends)
    rows = [(p, w) for w in settings for p in prompts]
    outs = im.generate([p for p, _ in rows], weights=[w for _, w in rows], max_new_tokens=args.max_new_tokens, do_sample=not args.greedy, seed=args.seed)
    for g in outs:
        print(f"[{g.weights}] {g.prompt!r} -> {g.text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
