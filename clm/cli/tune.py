"""``python -m clm tune``: measure a candidate training config without touching evaluation data.

    python -m clm train --preset cpu --run-dir runs/tune-a --attributes sentiment --set learning_rate=3e-3
    python -m clm tune --run-dir runs/tune-a --name a --attributes sentiment --out selection.json

adds candidate ``a`` (its config, per-pole held-out losses, dev-prompt means and dev-text
perplexity per α) to ``selection.json``; rerunning a name replaces its entry. See
:mod:`clm.experiments.tune` for the signals and why none of them is an evaluation file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clm.cli.args import count, existing_dir

HELP = "measure a candidate training run on development data (held-out loss, dev prompts, dev text)"


def add_parser(sub) -> None:
    from clm.experiments.tune import DEV_PROMPTS

    p = sub.add_parser("tune", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=existing_dir, required=True, help="a finished `python -m clm train` run")
    p.add_argument("--name", required=True, help="this candidate's name in the record")
    p.add_argument("--attributes", nargs="+", required=True, metavar="ATTR")
    p.add_argument("--out", type=Path, required=True, help="the JSON record to add this candidate to")
    p.add_argument("--data-dir", type=existing_dir, help="the shared data (default: $CLM_DATA_DIR or ../shared/data)")
    p.add_argument("--n-prompts", type=count(1), default=DEV_PROMPTS, metavar="N", help="dev prompts (the file's last)")
    p.add_argument("--samples", type=count(1), default=2, metavar="N", help="continuations per dev prompt")
    p.add_argument("--note", default="", help="why this candidate")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from clm.experiments.tune import add_candidate

    entry = add_candidate(
        args.run_dir,
        args.name,
        args.attributes,
        args.out,
        data_dir=args.data_dir,
        n_prompts=args.n_prompts,
        samples=args.samples,
        note=args.note,
        command=args.command_line,
    )
    for a, c in entry["dev_control"].items():
        losses = entry["held_out"][a].items()
        poles = ", ".join(f"{p}: {v['base_loss']:.3f} -> {v['final_loss']:.3f}" for p, v in losses)
        alphas = ", ".join(f"α={k:g}: {v:.3f}" for k, v in c["by_alpha"].items())
        print(
            f"{args.name} {a}: held-out loss {poles}; dev mean base {c['base']:.3f}, {alphas}; range {c['range']:+.3f}"
        )
    return 0
