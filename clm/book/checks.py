"""What a chapter parameter accepts: small kinds that check a value and say what was wrong.

Every failure is one line that names the notebook, the parameter and the value::

    04_single_attribute: parameter n_prompts must be an integer >= 1 or None, got -3

A :class:`Kind` only checks; the chapter's parameters (:mod:`clm.book.chapters`) turn values left
at None into the preset's.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clm.errors import ConfigError


class ParameterError(ConfigError):
    """A chapter parameter is invalid; the message names the notebook, the parameter and the value."""


def fail(notebook: str, name: str, problem: str) -> ParameterError:
    """``<notebook>: parameter <name> <problem>``, to raise."""
    return ParameterError(f"{notebook}: parameter {name} {problem}")


def closest(word: str, valid: Iterable[str]) -> str:
    """``"; did you mean 'x'?"``, or the valid choices when none is close."""
    valid = list(valid)
    match = difflib.get_close_matches(str(word), valid, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else f" (choose from {', '.join(valid)})"


@dataclass(frozen=True)
class Kind:
    """A predicate on a value and the words for what it accepts (``"an integer >= 1"``)."""

    what: str
    test: Callable[[Any], bool]
    none: bool = False  # None is accepted (the preset's or the chapter's default)

    def check(self, notebook: str, name: str, value: Any) -> Any:
        """``value`` if accepted; else a one-line :class:`ParameterError`."""
        if value is None and self.none:
            return value
        if not _safe(self.test, value):
            raise fail(notebook, name, f"must be {self.what}{' or None' if self.none else ''}, got {value!r}")
        return value


def _safe(test: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(test(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _between(x: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (x <= lo if lo_open else x < lo):
        return False
    return not (hi is not None and (x >= hi if hi_open else x > hi))


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f"> {lo:g}" if lo_open else f">= {lo:g}"
    if lo is None:
        return f"< {hi:g}" if hi_open else f"<= {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def count(minimum: int = 1, none: bool = False, zero: str = "") -> Kind:
    """An integer >= ``minimum`` (``zero``: what 0 means, if 0 is also accepted)."""
    what = f"an integer >= {minimum}" + (f" or 0 ({zero})" if zero else "")
    return Kind(what, lambda x: _int(x) and (x >= minimum or (bool(zero) and x == 0)), none)


def number(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False, none: bool = False
) -> Kind:
    """A finite real number in the interval given."""
    what = f"a number {_interval(lo, hi, lo_open, hi_open)}".rstrip()
    return Kind(what, lambda x: _real(x) and _between(x, lo, hi, lo_open, hi_open), none)


def numbers(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, min_len: int = 1, none: bool = False
) -> Kind:
    """A list of at least ``min_len`` finite numbers in the interval given."""
    what = f"a list of at least {min_len} number(s) {_interval(lo, hi, lo_open, False)}".rstrip()
    return Kind(
        what,
        lambda x: (
            isinstance(x, (list, tuple))
            and len(x) >= min_len
            and all(_real(v) and _between(v, lo, hi, lo_open, False) for v in x)
        ),
        none,
    )


def flag(none: bool = False) -> Kind:
    return Kind("True or False", lambda x: isinstance(x, bool), none)


def text(none: bool = False) -> Kind:
    """A non-empty name (a registry name, a directory or a hub id)."""
    return Kind("a non-empty string", lambda x: isinstance(x, str) and bool(x.strip()), none)


def names(length: int | None = None, none: bool = True) -> Kind:
    """A list of distinct non-empty names (exactly ``length`` of them, if given)."""
    return Kind(
        f"a list of {length} distinct names" if length else "a non-empty list of distinct names",
        lambda x: (
            isinstance(x, (list, tuple))
            and bool(x)
            and (length is None or len(x) == length)
            and all(isinstance(v, str) and v.strip() for v in x)
            and len(set(x)) == len(x)
        ),
        none,
    )


def specs(none: bool = True) -> Kind:
    """A non-empty list of attribute names or attribute specs (dicts with name, low and high)."""
    return Kind(
        "a non-empty list of attribute names or specs",
        lambda x: isinstance(x, (list, tuple)) and bool(x) and all(isinstance(v, (str, dict)) for v in x),
        none,
    )


def mapping() -> Kind:
    """A dict with string keys."""
    return Kind("a dict of names to values", lambda x: isinstance(x, dict) and all(isinstance(k, str) for k in x))


def path(none: bool = True) -> Kind:
    """A path (a non-empty string or a path object)."""
    return Kind("a path", lambda x: isinstance(x, os.PathLike) or (isinstance(x, str) and bool(x.strip())), none)


def existing_file(notebook: str, name: str, value: Path) -> Path:
    """``value`` if it is a file; else a one-line :class:`ParameterError`."""
    if not value.is_file():
        raise fail(notebook, name, f"must be an existing file, got {str(value)!r}")
    return value


def among(notebook: str, name: str, value: list[str], available: list[str], where: str) -> list[str]:
    """``value`` if every name is in ``available``; else a one-line error with the closest name."""
    for v in value:
        if v not in available:
            raise fail(notebook, name, f"holds {v!r}, which is not {where}{closest(v, available)}")
    return list(value)


def writable_dir(notebook: str, name: str, value: Path) -> Path:
    """``value`` if it is a directory, or could be created as one (nothing is created here)."""
    if value.exists() and not value.is_dir():
        raise fail(notebook, name, f"must be a directory, got {str(value)!r}, which is a file")
    parent = value
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise fail(notebook, name, f"must be a directory this user can write, got {str(value)!r}")
    return value
