"""Chapter 3 executes under papermill at tiny scale (pico encoder, pico model: offline, seconds)."""

from __future__ import annotations

import json
import math

import pytest
from conftest import SHARED_DATA, run_chapter

pytestmark = pytest.mark.notebooks


def test_notebook_03_runs_at_tiny(tmp_path, clm_cache):
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found")
    run = tmp_path / "run"
    out = run_chapter(tmp_path, "03_attribute_scorers", run_dir=str(run), data_dir=str(SHARED_DATA))
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
    images = sum(  # a PNG output, or a numbered figure of clm.book.display.figure (HTML with the PNG inside)
        "image/png" in o.get("data", {}) or 'class="clm-figure"' in o.get("data", {}).get("text/html", "")
        for c in out.cells if c.cell_type == "code" for o in c.outputs
    )  # fmt: skip
    assert images >= 2  # accuracy bars and reliability diagrams
