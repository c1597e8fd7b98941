"""Chapter 3 executes under papermill at tiny scale (pico encoder, pico model: offline, seconds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

pytestmark = pytest.mark.notebooks


def test_notebook_03_runs_at_tiny(tmp_path, clm_cache):
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found")
    import jupytext
    import nbformat
    import papermill as pm

    nb = jupytext.read(REPO / "notebooks" / "03_attribute_scorers.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "03.ipynb"
    nbformat.write(nb, src)
    run = tmp_path / "run"
    pm.execute_notebook(
        str(src),
        str(tmp_path / "03.out.ipynb"),
        parameters=dict(preset="tiny", run_dir=str(run), data_dir=str(SHARED_DATA)),
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
        kernel_name="python3",
    )
    m = json.loads((run / "metrics" / "03_attribute_scorers.json").read_text())
    attrs = {"sentiment", "politeness", "formality", "simplicity", "humor"}
    assert m["encoder"] == "pico" and m["eval_limit"] == 40
    assert set(m["accuracy_main"]) == attrs and set(m["ece_second"]) == attrs
    assert all(0 <= v <= 1 for v in m["accuracy_main"].values())
    assert m["ppl_model"] == "pico" and m["wikitext2_tokens"] == 2047 and math.isfinite(m["wikitext2_ppl"])
    assert (m["ppl_window"], m["ppl_stride"]) == (256, 128)
    # heads were trained into the run dir, from training files only
    for a in attrs:
        rec = json.loads((run / "scorers" / f"{a}.json").read_text())
        assert rec["encoder"] == "pico" and all(d["file"].endswith(".train.jsonl") for d in rec["data"])
    out = nbformat.read(tmp_path / "03.out.ipynb", 4)
    images = sum("image/png" in o.get("data", {}) for c in out.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 2  # accuracy bars and reliability diagrams
