"""Sweep tables on disk: tidy Parquet or CSV, written atomically, read back with the same dtypes."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from clm.errors import ConfigError
from clm.io import atomic_write


def write_table(df: Any, path: Path) -> None:
    """Write Parquet or CSV by suffix, atomically (a temp file renamed into place)."""
    if Path(path).suffix == ".csv":  # quote texts: they may hold \r
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC))
    else:
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def read_table(path: str | os.PathLike) -> Any:
    """Read a sweep table written by :func:`run_sweep` (Parquet or CSV)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep table {str(p)!r} does not exist")
    return pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p)


def check_out(out: Any) -> Path | None:
    """``out`` as a Path ending in .parquet or .csv (None stays None); else a one-line ConfigError."""
    if out is None:
        return None
    p = Path(out)
    if p.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"sweep output {str(p)!r} must end in .parquet or .csv")
    return p
