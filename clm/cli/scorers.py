"""``python -m clm scorers train|evaluate``: the attribute scorers (heads on a frozen encoder).

    python -m clm scorers train --data-dir ../shared/data --out clm/assets/scorers
    python -m clm scorers evaluate --path clm/assets/scorers --data-dir ../shared/data

``train`` fits a head per attribute on the training splits (never the test splits), then, unless
``--no-metrics``, scores the test splits into ``<out>/metrics.json`` as ``evaluate`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clm.cli.args import count, existing_dir

HELP = "train or evaluate the attribute scorers"


def add_parser(sub) -> None:
    from clm.paths import default_data_dir

    p = sub.add_parser("scorers", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="scorers_command", required=True, metavar="{train,evaluate}")
    t = cmds.add_parser("train", help="train heads on a frozen encoder, then score the test splits")
    t.add_argument("--out", type=Path, required=True, help="directory for <attr>.safetensors and <attr>.json")
    t.add_argument("--data-dir", type=existing_dir, default=default_data_dir(), help="the shared data")
    t.add_argument("--attributes", nargs="+", metavar="ATTR", help="default: all five")
    t.add_argument("--encoder", default="minilm", help="minilm (default), pico, a directory or a hub id")
    t.add_argument("--sources", default="both", choices=["main", "both"], help="the paper's source only, or both")
    t.add_argument(
        "--max-per-pole", type=count(4), default=4000, metavar="N", help="training texts per pole and source"
    )
    t.add_argument("--seed", type=count(0), default=0)
    t.add_argument("--no-metrics", action="store_true", help="do not score the test splits afterwards")
    t.set_defaults(run=train)
    e = cmds.add_parser("evaluate", help="score the test splits with trained heads; writes metrics.json")
    e.add_argument("--path", type=existing_dir, required=True, help="the heads' directory")
    e.add_argument("--data-dir", type=existing_dir, default=default_data_dir(), help="the shared data")
    e.add_argument("--limit", type=count(1), metavar="N", help="at most N test texts per pole")
    e.set_defaults(run=evaluate)


def train(args: argparse.Namespace) -> int:
    from clm.eval.heads import HeadConfig, train_heads

    cfg = HeadConfig(encoder=args.encoder, sources=args.sources, max_per_pole=args.max_per_pole, seed=args.seed)
    records = train_heads(args.data_dir, args.out, args.attributes, cfg, command=args.command_line)
    for a, r in records.items():
        heads = " ".join(f"{c['head']}={c['val_main']:.3f}" for c in r["candidates"])
        print(f"{a}: {r['head']} T={r['temperature']:.2f} {heads}")
    if not args.no_metrics:
        _metrics(args.out, args.data_dir, None, args.command_line)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    _metrics(args.path, args.data_dir, args.limit, args.command_line)
    return 0


def _metrics(path: Path, data_dir: Path, limit: int | None, command: str) -> None:
    from clm.eval.heads import write_metrics

    m = write_metrics(path, data_dir, limit=limit, command=command)
    for a, r in m["attributes"].items():
        print(
            f"{a}: main {r['test_accuracy_main']:.3f} (ECE {r['ece_main']:.3f})  "
            f"second {r['test_accuracy_second']:.3f} (ECE {r['ece_second']:.3f})"
        )
