"""Chapter 9 executes under papermill at tiny scale (a seconds-long benchmark on the pico model)."""

from __future__ import annotations

import json

import pytest
from conftest import run_chapter

pytestmark = pytest.mark.notebooks


def test_notebook_07_runs_at_tiny(tmp_path, clm_cache):
    run = tmp_path / "run"
    out = run_chapter(tmp_path, "09_cost_of_interpolation", run_dir=str(run))
    m = json.loads((run / "metrics" / "09_cost_of_interpolation.json").read_text())
    assert m["model"] == "pico" and m["rerun"] is True and m["new_tokens"] == 4
    assert 0 < m["bound"] < 1
    methods = {"base", "fused", "merged", "peft-multi", "peft-cat", "paper", "dexperts"}
    assert {k.split("|")[0] for k in m["tokens_per_s"]} == methods | {"merged-held"}
    # merged-held times the generation inside each merged job, so it is faster than the whole job
    for n in (1, 2):
        assert m["tokens_per_s"][f"merged-held|{n}|shared"] > m["tokens_per_s"][f"merged|{n}|shared"]
    assert all(v > 0 for v in m["tokens_per_s"].values())
    assert "fused|2|distinct" in m["tokens_per_s"] and "merged|2|distinct" not in m["tokens_per_s"]
    assert m["set_weights_s"]["pico"] < 0.1  # microseconds in fact; generous for a loaded machine
    assert len(m["targets"]) >= 5
    saved = json.loads(next((run / "bench").glob("cpu-pico.json")).read_text())
    assert saved["machine"]["cpu"] and saved["config"]["endpoints"] == 4
    # the interpolating methods agree on every greedy token (same interpolation, same math)
    assert all(r["same_tokens_as_fused"] == 1.0 for r in saved["rows"] if r["same_tokens_as_fused"] is not None)
    outputs = [o for c in out.cells if c.cell_type == "code" for o in c.outputs]
    images = sum('class="clm-figure"' in o.get("data", {}).get("text/html", "") for o in outputs)
    assert images >= 2  # speed bars and setting-change latency (clm.book.display.figure)
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "measured on:" in text


def test_peak_memory_probe_reports_its_own_process_not_its_parent():
    """ru_maxrss survives fork + exec on Linux: a probe started from a big process would report the
    parent's peak. peak_rss_mib reads the probe's own high-water mark."""
    import subprocess
    import sys

    from clm.bench.methods import peak_rss_mib

    ballast = b"\x01" * (300 * 2**20)  # this process now holds 300 MiB more than a fresh one needs
    code = "from clm.bench.methods import peak_rss_mib; print(peak_rss_mib())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert len(ballast) and 0 < child < peak_rss_mib() - 250
