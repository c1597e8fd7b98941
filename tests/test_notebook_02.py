"""Chapter 2 executes under papermill at tiny scale: it trains pico endpoints and records numbers."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA, run_chapter

pytestmark = pytest.mark.notebooks


def test_notebook_02_runs_at_tiny(tmp_path, clm_cache, monkeypatch):
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found")
    import clm

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it: pico trains ~10x faster on busy cores
    run = tmp_path / "run"
    out = run_chapter(tmp_path, "02_finetune_endpoints", run_dir=str(run), data_dir=str(SHARED_DATA), n_prompts=2)
    m = json.loads((run / "metrics" / "02_finetune_endpoints.json").read_text())
    assert m["source"] == "trained" and m["base"] == "pico" and m["train_preset"] == "tiny"
    assert m["attributes"] == ["sentiment", "formality"] and m["n_generations"] == 2 * 2 * 2
    poles = {"sentiment/negative", "sentiment/positive", "formality/informal", "formality/formal"}
    assert set(m["eval_loss_base"]) == poles and set(m["eval_loss_trained"]) == poles
    assert all(m["eval_loss_trained"][p] < m["eval_loss_base"][p] for p in poles)  # training lowered held-out loss
    assert all(v > 0 for v in m["tv_alpha0_alpha1"].values())  # α moves the next-token distribution
    ends = clm.Endpoints.load(run / "endpoints")
    assert ends.attributes == ["sentiment", "formality"]
    images = sum(  # a PNG output, or a numbered figure of clm.book.display.figure (HTML with the PNG inside)
        "image/png" in o.get("data", {}) or 'class="clm-figure"' in o.get("data", {}).get("text/html", "")
        for c in out.cells if c.cell_type == "code" for o in c.outputs
    )  # fmt: skip
    assert images >= 1  # the loss curves
    stderr = "".join(
        o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"
    )
    assert "Loading weights" not in stderr  # no progress-bar spam in the book
