"""clm.bench.report and clm.bench.figures: a benchmark result as tables, figures and summary text.

A synthetic result with round numbers gives hand-computed values; the shipped result checks the
functions agree with its rows.
"""

from __future__ import annotations

import matplotlib
import pytest

from clm.bench import report

matplotlib.use("Agg")


def _row(method, batch, settings, tps, base_tps, bound=0.8, times=None):
    ratio, seconds = tps / base_tps, batch * 4 / tps  # 4 new tokens per row
    return dict(
        method=method, batch=batch, settings=settings, seconds=seconds, times=list(times or [seconds]),
        tokens_per_s=tps, same_tokens_as_fused=None, ratio_to_base=ratio, ratio_to_bound=ratio / bound,
    )  # fmt: skip


@pytest.fixture()
def res():
    """Batches 1 and 2; the base runs at 100 tok/s at batch 2, the fused path at 76 (0.95 of the bound 0.8)."""
    rows = [_row("base", 1, "shared", 50, 50), _row("fused", 1, "shared", 40, 50)]
    for s in ("shared", "distinct"):
        rows += [_row("base", 2, s, 100, 100), _row("fused", 2, s, 76, 100), _row("peft-multi", 2, s, 19, 100)]
        rows += [_row("peft-cat", 2, s, 38, 100), _row("dexperts", 2, s, 7.6, 100)]
    rows += [_row("merged", 2, "shared", 90, 100), _row("merged-held", 2, "shared", 98, 100)]
    rows += [_row("paper", 1, "shared", 10, 50, times=(0.36, 0.4, 0.56))]
    return dict(
        machine=dict(cpu="Test CPU", cores=2, torch_threads=1, gpu=None, torch="2.x", date="today"),
        command="test",
        config=dict(model="pico", params=1e6, dtype="float32", endpoints=4, attributes=2, rank=4, new_tokens=4,
                    repeats=2, slow_repeats=1),
        sizes=dict(bytes_base=4 * 2**20, bytes_adapters=2**20, bound=0.8),
        rows=rows,
        change_latency_s={"peft-multi": 0.01, "merged": 0.25},
        set_weights_latency={"pico": dict(set_weights_s=2e-5, set_and_refresh_s=5e-4, modules=8)},
        planner={"1": dict(mode="fused", reason="r1", merges_from_new_tokens=32),
                 "2": dict(mode="merged", reason="r2", merges_from_new_tokens=8)},
    )  # fmt: skip


def test_label_and_describe(res):
    assert report.label(res["machine"]) == "Test CPU, 2 cores, 1 torch thread (CPU)"
    assert report.label({**res["machine"], "gpu": "H200"}) == "H200 (GPU)"
    text = report.describe(res)
    assert text.splitlines()[0] == "measured on: Test CPU, 2 cores, 1 torch thread (CPU); torch 2.x; today"
    assert "4 endpoints of rank 4; 4 new tokens" in text and "load average" not in text
    noted = report.describe({**res, "command": "python -m clm.bench --threads 2 --note two cores, idle", "note": "two cores, idle"})
    assert 'command: `python -m clm.bench --threads 2 --note "…"`' in noted and noted.count("two cores, idle") == 1
    assert report.bound_text(res).splitlines() == [
        "bound = 4 MiB / (4 + 1) MiB = 0.800",
        "repeats of one job differed by up to 50% of their median (median spread 50%, over 1 rows with repeats)",
    ]


def test_tables(res):
    speed = report.speed_table(res)
    assert speed.loc["clm fused", "batch 2, distinct"] == 76.0
    assert speed.loc["PEFT, all adapters active", "batch 2, shared"] == 19.0
    ratios = report.ratio_table(res)
    assert ratios.loc["clm fused", ("ratio_to_bound", "batch 2, distinct")] == 0.95
    lat = report.latency_table(res)
    assert list(lat.how) == [
        "clm set_weights (pico)", "clm set + refresh (pico, 8 modules)",
        "PEFT: set scaling of every adapter", "clm merge + restore",
    ]  # fmt: skip
    assert report.memory_table(res) is None
    assert report.held_ratios(res) == {2: 0.98}
    assert report.merge_text(res).startswith("batch 2: merged job 0.09 s (0.90x the base), generation inside")


def test_targets_are_hand_checked(res):
    met = {t["target"]: t["met"] for t in report.targets(res)}
    assert met == {
        "distinct settings, batch 2: fused / bound": True,  # 0.95 >= 0.90
        "one shared setting, batch 1, 4-token jobs: clm (fused) / base": False,  # 0.80
        "one shared setting, batch 2, 4-token jobs: clm (merged) / base": False,  # 0.90
        "one shared setting, batch 2, merge held (planned from 8 new tokens): clm merged / base": True,  # 0.98
        "change a setting (pico, 8 modules), ms": True,  # 0.5 ms
        "batch 2, shared: fused / PEFT multi-adapter": True,  # 76 / 19 = 4
        "batch 2, distinct: fused / PEFT multi-adapter": True,
    }
    assert report.targets_table(res)["measured"].tolist() == [0.95, 0.8, 0.9, 0.98, 0.5, 4.0, 4.0]


def test_summary_is_written_from_the_numbers(res):
    text = report.summary(res)
    assert "At batch 2 the fused path ran at 0.76× the base model, 0.95× the bound of 0.800" in text
    assert "the target (≥ 90% of the bound) is met" in text
    assert "4× slower with its adapters active, 2× with `cat`" in text  # 76/19, 76/38
    assert "DExperts-style mixing (5 forward passes per token) was 10× slower" in text
    assert "not met for single 4-token jobs, met with the merge held" in text
    assert "batch 2: the planner chose merged, 0.90× the base (fused 0.76×, merged 0.90×)" in text
    assert "took 0.25 s here" in text and "0.98× (batch 2)" in text and "8 new tokens (batch 2) on" in text
    assert "`set_weights` took 20 µs on pico; with the refresh of every wrapped module 0.50 ms" in text
    assert "4.00× with distinct settings, 4.00× with one shared setting" in text
    assert "no method could be more than 5.26× PEFT's speed" in text  # 100 / 19
    assert "ran at 0.20× the base at batch 1 for only 4 new tokens" in text


def test_metrics(res):
    m = report.metrics(res)
    assert m["tokens_per_s"]["fused|2|distinct"] == 76.0 and m["ratio_to_base"]["base|1|shared"] == 1.0
    assert m["merged_held_ratio"] == {2: 0.98} and m["merge_restore_s"] == 0.25 and m["bound"] == 0.8
    assert m["targets"] == {t["target"]: t["met"] for t in report.targets(res)}


def test_shipped_result():
    res = report.load_saved()
    m = report.metrics(res)
    assert m["tokens_per_s"] == {f"{r['method']}|{r['batch']}|{r['settings']}": round(r["tokens_per_s"], 3) for r in res["rows"]}
    assert report.speed_table(res).shape[0] == len({r["method"] for r in res["rows"]})
    assert report.memory_table(res).index.tolist()[0] == "base (no adapters)"


def test_figures(res):
    """Each figure as the book shows it: 6.8 in wide, no font under 8 pt, legends off the bars."""
    from clm.bench import figures
    from tests.test_plots import assert_readable

    speed = figures.speed_figure(res, "here")
    assert len(speed.axes) == 2 and speed.axes[0].get_yscale() == "log"
    assert [t.get_text() for t in speed.legends[0].get_texts()][-2:] == ["bound (fused)", "90% of bound"]
    latency = figures.latency_figure(res, "here")
    assert latency.axes[0].get_xscale() == "log"
    assert figures.memory_figure(res, "here") is None
    res["peak_memory_mib"], res["peak_memory_kind"] = {"base": 10.0, "fused": 12.0}, "test"
    memory = figures.memory_figure(res, "here")
    assert memory.axes[0].get_xlabel() == "MiB (test)"
    for fig in (speed, latency, memory):
        assert_readable(fig)
