"""Where things live: the repository, the shipped assets, the cache and the shared data.

The bottom layer with :mod:`clm.errors` and :mod:`clm.io`: it imports nothing else from ``clm``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from clm.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
ASSETS = PACKAGE / "assets"
SHIPPED_SCORERS = ASSETS / "scorers"

# A safe directory name: letters, digits and . _ - only, never starting with a dot.
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def cache_dir() -> Path:
    """Where converted models and fingerprints live: ``$CLM_CACHE_DIR``, else ``~/.cache/clm``."""
    env = os.environ.get("CLM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "clm"


def default_data_dir() -> Path:
    """``$CLM_DATA_DIR``, else ``shared/data`` beside the repository."""
    env = os.environ.get("CLM_DATA_DIR")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


def safe_name(name: str) -> str:
    """A model id or path as one safe directory name, never a path.

    ``"smollm2-135m"`` stays as it is; ``"meta-llama/Llama-2-7b-hf"`` becomes
    ``"meta-llama--Llama-2-7b-hf"``; a local directory ``/models/x`` becomes ``"models--x"``;
    ``".."`` and other names made only of dots become a ``ConfigError``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"cannot make a directory name from {name!r}")
    parts = [p for p in re.split(r"[/\\]+", name.strip()) if p not in ("", ".", "..")]
    out = "--".join(_SAFE.sub("_", p) for p in parts).lstrip(".")
    if not out or set(out) <= {".", "-", "_"}:
        raise ConfigError(f"cannot make a directory name from {name!r}")
    return out


def shipped_dir(kind: str, model: str) -> Path:
    """``clm/assets/<kind>/<safe model name>``: where assets for ``model`` ship (never a path outside)."""
    path = ASSETS / kind / safe_name(model)
    if ASSETS not in path.resolve().parents:  # pragma: no cover - safe_name makes this impossible
        raise ConfigError(f"refusing asset path {str(path)!r} outside {str(ASSETS)!r}")
    return path
