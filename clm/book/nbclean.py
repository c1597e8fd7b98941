"""Executed notebooks as they are committed: what changes on every run is dropped, progress
bars are collapsed to their last state, and streams are merged, so a rerun's diff shows only
what really changed (:func:`strip_volatile`, used by :mod:`clm.book.pipeline`).

An executed notebook and its ``py:percent`` text are written as a jupytext pair
(:func:`paired_notebook`): papermill's ``injected-parameters`` cell is folded into the
``parameters`` cell, so the parameters cell says what ran and is the one place to change it,
and the ``.ipynb`` is exactly what jupytext's contents manager makes of the two files, so
JupyterLab opens it clean and saving it unedited rewrites neither file.
"""

from __future__ import annotations

import ast
import hashlib
import re
from typing import Any

INJECTED, PARAMETERS = "injected-parameters", "parameters"  # papermill's cell tags


def strip_volatile(nb: Any) -> Any:
    """Drop what changes on every run (timestamps, durations, paths, random cell ids); keep outputs
    and counts.

    Progress bars are collapsed to their final state, as a terminal would show them, so a
    notebook that forgets ``progress=False`` still commits one line per bar. A bar drawn as a
    widget (tqdm with ipywidgets) becomes that final line as plain text: the widget state is not
    committed, and without it the widget would show its first state, or an error.
    """
    pm = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {k: pm[k] for k in ("parameters",) if k in pm}
    widgets = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    seen: dict[str, int] = {}
    for cell in nb.cells:
        if "id" in cell:  # random per execution; derived from the source, an unchanged cell keeps its id
            digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
            seen[digest] = seen.get(digest, 0) + 1
            cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:  # papermill adds empty tags; the text file has none
            del cell.metadata["tags"]
        if "outputs" in cell:
            cell["outputs"] = _lean_streams(_bars_as_text(cell["outputs"], widgets))
    return nb


WIDGET_VIEW, WIDGET_STATE = "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"


def _bars_as_text(outputs: list, widgets: dict) -> list:
    """Each tqdm widget output as the text of its final state; a bar whose state was not saved is
    dropped (its text is the bar's first state). Other widgets (chapter 7's dial) are dropped too:
    their state is not committed, so JupyterLab would show an error in their place; running the
    cell shows them live."""
    kept = []
    for out in outputs:
        view = out.get("data", {}).get(WIDGET_VIEW)
        if view is None:
            kept.append(out)
            continue
        text = _tqdm_text(widgets, view.get("model_id"))
        if text is not None:
            out["data"] = {"text/plain": text}
            kept.append(out)
    return kept


def _tqdm_text(widgets: dict, model_id: str | None) -> str | None:
    """tqdm.notebook's bar, an HBox of (HTML, FloatProgress, HTML), as tqdm prints it in a terminal."""
    import html

    box = widgets.get(model_id or "", {})
    parts = [widgets.get(c.removeprefix("IPY_MODEL_"), {}) for c in box.get("state", {}).get("children", [])]
    names = [p.get("model_name") for p in parts]
    if box.get("model_name") != "HBoxModel" or names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (p.get("state", {}) for p in parts)
    full = round(10 * bar.get("value", 0) / bar["max"]) if bar.get("max") else 0
    text = f"{left.get('value', '')}|{'█' * full}{' ' * (10 - full)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


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


_NOT_LITERAL = object()


def _assignments(source: str) -> list[tuple[str, ast.expr]]:
    """The top-level ``name = value`` (and ``name: type = value``) of a cell, in order."""
    out = []
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        target = node.target if isinstance(node, ast.AnnAssign) and node.value is not None else target
        if isinstance(target, ast.Name):
            out.append((target.id, node.value))
    return out


def _literal(value: ast.expr) -> Any:
    try:
        return ast.literal_eval(value)
    except ValueError:
        return _NOT_LITERAL


def cell_defaults(source: str) -> dict[str, Any]:
    """The literal values a ``parameters`` cell assigns, by name (non-literals left out)."""
    return {k: v for k, v in ((k, _literal(value)) for k, value in _assignments(source)) if v is not _NOT_LITERAL}


def same_value(a: Any, b: Any) -> bool:
    """Equal and of one type (``1`` is not ``True``, ``0`` is not ``0.0``)."""
    return type(a) is type(b) and a == b


def parameters_cell(nb: Any) -> Any | None:
    """The code cell tagged ``parameters`` (None if there is none)."""
    return next((c for c in nb.cells if c.cell_type == "code" and PARAMETERS in c.metadata.get("tags", [])), None)


def fold_parameters(source: str, params: dict[str, Any]) -> str:
    """The ``parameters`` cell ``source`` with ``params`` written into it.

    Each top-level ``name = literal`` whose name is in ``params`` gets the new value (its comment
    kept) where the value differs; names the cell lacks are appended. With nothing different the
    source comes back byte for byte.
    """
    from papermill.translators import PythonTranslator

    lines = source.splitlines(keepends=True)
    edits, seen = [], set()
    for name, value in _assignments(source):
        if name in params:
            seen.add(name)
            if not same_value(_literal(value), params[name]):
                edits.append((value, PythonTranslator.translate(params[name])))
    for value, text in reversed(edits):  # from the end, so earlier offsets stay valid
        first, last = value.lineno - 1, value.end_lineno - 1
        head = lines[first].encode()[: value.col_offset].decode()  # ast offsets count UTF-8 bytes
        tail = lines[last].encode()[value.end_col_offset :].decode()
        lines[first : last + 1] = [head + text + tail]
    out = "".join(lines)
    extra = [f"{k} = {PythonTranslator.translate(v)}" for k, v in params.items() if k not in seen]
    return out.rstrip("\n") + "\n" + "\n".join(extra) if extra else out


def paired_notebook(executed: Any, params: dict[str, Any], fmt: str = "py:percent") -> tuple[Any, str]:
    """An executed notebook and its text, as a pair that jupytext finds in sync.

    Papermill's injected-parameters cell is dropped and ``params`` are folded into the parameters
    cell (:func:`fold_parameters`); volatile metadata is stripped (:func:`strip_volatile`). The
    text is ``jupytext.writes`` of the result and the notebook is what jupytext's contents manager
    returns for the two files (inputs from the text, outputs and ipynb-only metadata from the
    notebook), so reading and saving the pair unedited gives the same bytes.

    Returns ``(notebook, text)``.
    """
    import jupytext
    from jupytext.combine import combine_inputs_with_outputs

    executed.cells = [c for c in executed.cells if INJECTED not in c.metadata.get("tags", [])]
    cell = parameters_cell(executed)
    if cell is not None:
        cell.source = fold_parameters(cell.source, params)
    executed = strip_volatile(executed)
    text = jupytext.writes(executed, fmt=fmt)
    paired = combine_inputs_with_outputs(jupytext.reads(text, fmt=fmt), executed, fmt=fmt)
    paired.metadata.get("jupytext", {}).pop("text_representation", None)  # as the contents manager saves it
    return paired, text
