"""Command line for :func:`clm.train.trainer.train_endpoints`: parse, validate, train, print.

    python -m clm.cli_train --preset cpu --run-dir runs/cpu --attributes sentiment
    python -m clm.cli_train --config my_run.yaml --set learning_rate=1e-3 --run-dir runs/x
    torchrun --nproc_per_node 2 -m clm.cli_train --preset tiny --run-dir runs/tiny   # data-parallel

``--set`` values are parsed as YAML (``--set target_modules=[q_proj,v_proj]``).
"""

from __future__ import annotations

import argparse
import os
import sys

from clm.errors import ClmError


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m clm.cli_train", description="Train LoRA endpoint adapters into an endpoints directory."
    )
    ap.add_argument("--preset", help="paper, cpu or tiny (default: the config's, else cpu)")
    ap.add_argument("--config", help="a YAML train config (may name a preset)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (YAML value)"
    )
    ap.add_argument("--run-dir", required=True, help="run directory (work files go to <run-dir>/train)")
    ap.add_argument("--endpoints", help="endpoints directory (default <run-dir>/endpoints)")
    ap.add_argument("--attributes", nargs="+", help="train only these attributes")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import yaml

    from clm.train.config import TrainConfig

    args = parse(argv)
    try:
        data: dict = {}
        if args.config:
            data = TrainConfig.from_yaml(args.config).to_dict()
        if args.preset:
            data["preset"] = args.preset
        elif not data:
            data["preset"] = "cpu"
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise ClmError(f"--set needs KEY=VALUE, got {item!r}")
            data[key.strip()] = yaml.safe_load(value)
        cfg = TrainConfig.from_dict(data)
        if args.print_config:
            print(cfg.to_yaml(), end="")
            return 0
        from clm.train.trainer import train_endpoints

        ends = train_endpoints(cfg, args.run_dir, args.endpoints, args.attributes, progress=not args.no_progress)
    except ClmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if ends is not None and os.environ.get("RANK", "0") == "0":
        print(ends)
    return 0


if __name__ == "__main__":
    sys.exit(main())
