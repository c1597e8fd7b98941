"""Executed notebooks as they are committed: what changes on every run is dropped, progress
bars are collapsed to their last state, and streams are merged, so a rerun's diff shows only
what really changed (:func:`strip_volatile`, used by :mod:`clm.pipeline`)."""

from __future__ import annotations

import hashlib
import re
from typing import Any


def strip_volatile(nb: Any) -> Any:
    """Drop what changes on every run (timestamps, durations, paths, random cell ids); keep outputs
    and counts.

    Progress bars are collapsed to their final state, as a terminal would show them, so a
    notebook that forgets ``progress=False`` still commits one line per bar.
    """
    pm = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {k: pm[k] for k in ("parameters",) if k in pm}
    nb.metadata.pop("widgets", None)
    seen: dict[str, int] = {}
    for cell in nb.cells:
        if "id" in cell:  # random per execution; derived from the source, an unchanged cell keeps its id
            digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
            seen[digest] = seen.get(digest, 0) + 1
            cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "outputs" in cell:
            cell["outputs"] = _lean_streams(cell["outputs"])
    return nb


_BAR = re.compile(r"\d+%\|.*\|")  # a tqdm progress-bar state: " 50%|####      | 5/10 [...]"


def _is_bar(out: Any) -> bool:
    text = out.get("text", "").replace("\r", "").rstrip("\n") if out.get("output_type") == "stream" else ""
    return "\n" not in text and bool(_BAR.search(text))


def _lean_streams(outputs: list) -> list:
    """Keep only the last state of consecutive progress bars, merge consecutive streams of the
    same name, and collapse carriage returns as a terminal would."""
    bars: list = []
    for out in outputs:  # first the runs of bar states, then the merge (a bar never hides text)
        if bars and _is_bar(bars[-1]) and _is_bar(out) and bars[-1]["name"] == out["name"]:
            bars[-1] = out
        else:
            bars.append(out)
    kept: list = []
    for out in bars:
        if (
            kept
            and out.get("output_type") == kept[-1].get("output_type") == "stream"
            and kept[-1]["name"] == out["name"]
        ):
            kept[-1]["text"] = kept[-1]["text"] + out["text"]
        else:
            kept.append(out)
    for out in kept:
        if out.get("output_type") == "stream" and "\r" in out.get("text", ""):
            out["text"] = _collapse_cr(out["text"])
    return kept


def _collapse_cr(text: str) -> str:
    lines = [line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r") for line in text.split("\n")]
    return "\n".join(lines)
