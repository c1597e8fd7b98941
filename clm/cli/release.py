"""``python -m clm release``: ship a run's endpoints with ``clm``.

    python -m clm release --run-dir runs/ref --selection selection.json

copies ``<run-dir>/endpoints`` into ``clm/assets/endpoints/<base id>/`` (or ``--dest``) with a
README giving the exact config, the sha256 of every data file, the held-out losses, how the
hyper-parameters were chosen (``--selection``, the record of ``python -m clm tune``) and the data's
provenance and licences. See :func:`clm.train.release.ship`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clm.cli.args import existing_dir, existing_file

HELP = "copy a run's endpoints into clm/assets with a README"


def add_parser(sub) -> None:
    p = sub.add_parser("release", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=existing_dir, required=True, help="a finished `python -m clm train` run")
    p.add_argument("--selection", type=existing_file, help="the `python -m clm tune` record of the candidates")
    p.add_argument("--dest", type=Path, help="default clm/assets/endpoints/<base id>")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from clm.train.release import ship

    out = ship(args.run_dir, args.selection, args.dest)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"shipped {out} ({size:.1f} MB)")
    return 0
