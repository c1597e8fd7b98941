"""The package version (one place: pyproject reads none of it; the record of every run does)."""

__version__ = "0.1.0"
