"""``python -m clm sweep``: generate, score and tabulate one sweep (:func:`clm.experiments.sweep.run_sweep`).

    python -m clm sweep --design single:sentiment --alphas 0,0.5,1 --prompts prompts.jsonl \\
        --n-prompts 10 --samples 1 --out table.parquet
    python -m clm sweep --endpoints my-ends --design base --design multi:formality --out multi.parquet \\
        --prompts prompts.jsonl --perplexity wikitext2_test.raw.txt --perplexity-tokens 4096

Designs (``--design``, repeatable; ``--weights`` adds any settings of your own):
``base`` (the base model), ``single:ATTR`` (one attribute at λ = 1, α over ``--alphas``),
``multi:ATTR`` (the paper's: ATTR at each λ of ``--lams``, the other attributes sharing the
rest at α = 1, ATTR's α over ``--alphas``), ``simplex:A,B,C`` (λ over the simplex in steps of
``--step``, every α = 1). One row per (seed, setting, prompt, sample); ``--out`` resumes finished
batches. Every continuation is scored by the scorers of ``--score`` (default: every attribute of
the endpoints) from ``--scorers`` (default: the shipped heads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clm.cli.args import count, existing_dir, existing_file, number, numbers
from clm.cli.generate import endpoints_for, interpolated
from clm.errors import ConfigError

HELP = "generate, score and tabulate one sweep"


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="base model (default: the endpoints' base)")
    p.add_argument("--endpoints", type=existing_dir, help="endpoints directory (default: the shipped ones for --model)")
    p.add_argument(
        "--design", action="append", default=[], metavar="SPEC", help="base, single:ATTR, multi:ATTR or simplex:A,B,C"
    )
    p.add_argument(
        "--weights", action="append", default=[], metavar="SETTING", help="a setting of your own; repeatable"
    )
    p.add_argument(
        "--alphas", type=numbers, metavar="A,B,..", help="α grid of single and multi (default: the design's)"
    )
    p.add_argument("--lams", type=numbers, metavar="A,B,..", help="the target's λ in multi (default: 0.8,0.4,0.2)")
    p.add_argument("--step", type=number, default=0.2, help="the simplex's λ step (default 0.2)")
    p.add_argument(
        "--prompts", type=existing_file, required=True, help="a prompts file (.jsonl 'prompt' field or .txt)"
    )
    p.add_argument("--n-prompts", type=count(1), metavar="N", help="use the first N prompts (default: all)")
    p.add_argument("--samples", type=count(1), default=1, metavar="N", help="continuations per prompt")
    p.add_argument("--seeds", type=count(0), nargs="+", default=[0], metavar="S")
    p.add_argument("--max-new-tokens", type=count(1), default=32, metavar="N")
    p.add_argument("--batch-size", type=count(1), default=32, metavar="N")
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of the paper's pure sampling")
    p.add_argument("--out", type=Path, required=True, help="the table (.parquet or .csv)")
    p.add_argument("--scorers", type=existing_dir, help="scorer directory (default: the shipped heads)")
    p.add_argument("--score", nargs="+", metavar="ATTR", help="attributes to score (default: the endpoints')")
    p.add_argument("--fluency", choices=["base", "none"], default="base", help="each continuation's base perplexity")
    p.add_argument("--perplexity", type=existing_file, metavar="FILE", help="also a text's perplexity per setting")
    p.add_argument("--perplexity-tokens", type=count(1), metavar="N", help="the text's first N tokens (default all)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--dry-run", action="store_true", help="print the plan and a time estimate only")
    p.set_defaults(run=run)


def settings(args: argparse.Namespace, attributes: list[str]) -> list:
    """The settings of every ``--design`` and ``--weights``, checked against ``attributes``."""
    from clm.experiments import designs

    out = designs.custom(args.weights) if args.weights else []
    for spec in args.design:
        kind, _, names = spec.partition(":")
        names = [n.strip() for n in names.split(",") if n.strip()]
        for n in names:
            if n not in attributes:
                raise ConfigError(
                    f"--design {spec!r}: {n!r} is not an attribute of the endpoints ({', '.join(attributes)})"
                )
        if kind == "base" and not names:
            out += designs.custom(["base"], design="base")
        elif kind == "single" and len(names) == 1:
            out += designs.single_attribute(names[0], args.alphas)
        elif kind == "multi" and len(names) == 1:
            lams = {} if args.lams is None else {"lams": args.lams}
            out += designs.multi_attribute(names[0], attributes, alphas=args.alphas, **lams)
        elif kind == "simplex" and len(names) >= 2:
            out += designs.simplex(names, step=args.step)
        else:
            raise ConfigError(f"--design {spec!r}: expected base, single:ATTR, multi:ATTR or simplex:A,B[,C...]")
    if not out:
        raise ConfigError("a sweep needs at least one --design or --weights")
    return out


def run(args: argparse.Namespace) -> int:
    from clm.eval.scoring import load_scorers
    from clm.experiments.sweep import run_sweep
    from clm.experiments.sweep_perplexity import wikitext_perplexity

    ends = endpoints_for(args.model, args.endpoints)
    todo = settings(args, list(ends.attributes))  # bad designs fail before anything loads
    scorers = load_scorers(args.score or list(ends.attributes), path=args.scorers)
    im = interpolated(args.model, ends, args.dtype)
    ppl = None
    if args.perplexity is not None:
        kw = {} if args.perplexity_tokens is None else {"max_tokens": args.perplexity_tokens}
        ppl = wikitext_perplexity(im, args.perplexity, **kw)
    result = run_sweep(
        im,
        todo,
        args.prompts,
        scorers=scorers,
        out=args.out,
        fluency=None if args.fluency == "none" else "base",
        perplexity=ppl,
        n_prompts=args.n_prompts,
        n_samples=args.samples,
        seeds=args.seeds,
        max_new_tokens=args.max_new_tokens,
        do_sample=not args.greedy,
        batch_size=args.batch_size,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        print(result)
        return 0
    cols = [c for c in result.columns if c.startswith("score_") or c in ("ppl", "wikitext_ppl")]
    print(result.groupby("setting", sort=False)[cols].mean().round(3).to_string())
    print(f"{len(result):,} rows -> {args.out}")
    return 0
