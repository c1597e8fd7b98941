"""``python -m clm train``: train LoRA endpoint adapters into an endpoints directory.

    python -m clm train --preset cpu --run-dir runs/cpu --attributes sentiment
    python -m clm train --config my_run.yaml --set learning_rate=1e-3 --run-dir runs/x
    torchrun --nproc_per_node 2 -m clm train --preset tiny --run-dir runs/tiny   # data-parallel

The config is built in layers, each overriding the one before: the config file (over the preset
it names, if any); ``--preset`` (which replaces the file's preset and overrides every key the
preset sets); then each ``--set`` (a YAML value: ``--set target_modules=[q_proj,v_proj]``).
Without ``--config`` or ``--preset`` the preset is ``cpu``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from clm.cli.args import existing_file
from clm.errors import ConfigError

HELP = "train LoRA endpoint adapters (a preset or a YAML config)"


def add_parser(sub) -> None:
    from clm.train.config import PRESETS

    p = sub.add_parser("train", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="this preset's values, over --config's (default: the config's preset, else cpu)",
    )
    p.add_argument("--config", type=existing_file, help="a YAML train config (may name a preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (YAML value)")
    p.add_argument("--run-dir", type=Path, help="run directory (work files go to <run-dir>/train); required to train")
    p.add_argument("--endpoints", type=Path, help="endpoints directory (default <run-dir>/endpoints)")
    p.add_argument("--attributes", nargs="+", metavar="ATTR", help="train only these attributes of the config")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(run=run)


def resolve_config(config: Path | None, preset: str | None, sets: list[str]):
    """The :class:`~clm.train.config.TrainConfig` of the layers: config file < ``preset`` < ``sets``
    (see the module docstring)."""
    import yaml

    from clm.train.config import PRESETS, TrainConfig

    data = _read_yaml(config) if config is not None else {}
    if preset is not None:  # replaces the file's preset, and overrides the keys it sets
        data = {**data, **PRESETS[preset], "preset": preset}
    elif not data:
        data = {"preset": "cpu"}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
        data[key.strip()] = yaml.safe_load(value)
    return TrainConfig.from_dict(data)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file's own keys (not resolved against its preset), once it is known to be a valid config."""
    import yaml

    from clm.train.config import TrainConfig

    TrainConfig.from_yaml(path)  # a bad file fails here, with its one-line message
    return dict(yaml.safe_load(path.read_text()) or {})


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args.config, args.preset, args.set)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    if args.run_dir is None:
        raise ConfigError("--run-dir is required to train (or pass --print-config)")
    from clm.train.trainer import train_endpoints

    ends = train_endpoints(cfg, args.run_dir, args.endpoints, args.attributes, progress=not args.no_progress)
    if ends is not None and os.environ.get("RANK", "0") == "0":
        print(ends)
    return 0
