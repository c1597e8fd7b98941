"""What every command of ``python -m clm`` shares: a parser whose errors are one line, and
argument types that reject bad values while parsing (so a bad flag never reaches the library).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (``<prog>: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def count(minimum: int = 1):
    """An argument type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = "count"  # argparse names the type in its messages
    return parse


def number(text: str) -> float:
    """An argument type: a finite float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def numbers(text: str) -> list[float]:
    """An argument type: comma-separated finite floats, e.g. ``0,0.5,1``."""
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return [number(t) for t in items]


def existing_file(text: str) -> Path:
    """An argument type: a path to a file that exists."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


def existing_dir(text: str) -> Path:
    """An argument type: a path to a directory that exists."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {text!r}")
    return path
