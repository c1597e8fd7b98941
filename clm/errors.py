"""Exceptions raised by `clm`.

Every user error is a :class:`ClmError` whose message is one line naming the bad value.
They subclass ``ValueError`` so that generic callers can still catch them.
"""

from __future__ import annotations


class ClmError(ValueError):
    """Base class for every error `clm` raises on bad input."""

    def __init__(self, message: str):
        # Keep messages on one line: they are shown to readers as-is.
        super().__init__(" ".join(str(message).split()))


class WeightsError(ClmError):
    """A setting of the weights (α, λ) is invalid."""


class EndpointsError(ClmError):
    """An endpoints directory or adapter is missing, corrupt or incompatible."""


class ModelError(ClmError):
    """A base model cannot be found, fetched or loaded."""


class ConfigError(ClmError):
    """A configuration value is invalid."""


class DataError(ClmError):
    """A data file is missing, empty or unreadable."""
