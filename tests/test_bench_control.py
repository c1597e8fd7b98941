"""clm.bench.control on pico: the schedule-speed and solve-time measurements run and return their
fields (no timing assertions), the record merges into a bench JSON, and ``bench control`` prints
and records it; the report reads it back."""

from __future__ import annotations

import json

import pytest

from clm.bench import control as bc
from clm.bench import report
from clm.cli import main
from clm.core.schedule import Schedule
from clm.errors import ConfigError
from clm.experiments.control import Controller


@pytest.fixture(scope="module")
def ctl():
    from test_control import synthetic_tables

    return Controller.fit(synthetic_tables(), endpoints="d" * 40)


def test_schedule_speed_times_a_moving_schedule_against_the_fixed_setting(im):
    res = bc.schedule_speed(im, batch=3, new_tokens=5, repeats=2)
    assert res["fixed"] == "sentiment=0.5,formality=0.5"
    sched = Schedule.parse(res["schedule"])
    assert [sched.at(t).alpha["sentiment"] for t in range(5)] == [0.25, 0.375, 0.5, 0.625, 0.75]
    assert res["table_changes"] == 4  # the table is rewritten before every token after the first
    assert len(res["fixed_times"]) == len(res["schedule_times"]) == 2
    assert res["fixed_tokens_per_s"] == pytest.approx(3 * 5 / res["fixed_s"])
    assert res["ratio"] == round(res["schedule_tokens_per_s"] / res["fixed_tokens_per_s"], 4)
    assert res["met"] == (res["ratio"] >= 0.95) and res["goal"] == ">= 0.95"
    assert 0 <= res["same_tokens"] <= 1
    json.dumps(res)  # JSON-able
    with pytest.raises(ConfigError, match="batch must be an integer >= 1, got 0"):
        bc.schedule_speed(im, batch=0)


def test_solve_time_covers_a_single_and_a_joint_target(ctl):
    targets = bc.default_targets(ctl)
    assert [len(t) for t in targets] == [1, 2] and list(targets[1]) == ctl.attributes[:2]
    res = bc.solve_time(ctl, repeats=3)
    assert [r["kind"] for r in res["rows"]] == ["single", "joint"]
    assert [r["target"] for r in res["rows"]] == targets
    for r in res["rows"]:
        assert 0 < r["median_ms"] <= r["max_ms"] and r["clipped"] is False
        assert r["weights"] == str(ctl.weights_for(r["target"]).weights)
    assert res["slowest_median_ms"] == max(r["median_ms"] for r in res["rows"])
    assert res["met"] == (res["slowest_median_ms"] < 10) and res["goal"] == "< 10 ms"
    far = bc.solve_time(ctl, targets=[{"sentiment": 0.99}], repeats=1)
    assert far["rows"][0]["clipped"] is True
    json.dumps(res)


def test_bench_control_records_shows_and_reports(pico_dir, endpoints_dir, ctl, tmp_path, capsys):
    ctl_path = ctl.save(tmp_path / "ctl.json")
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"sharding": {"ratio": 1.2}}))
    argv = ["bench", "control", "--model", str(pico_dir), "--endpoints", str(endpoints_dir), "--controller",
            str(ctl_path), "--batch", "2", "--new-tokens", "3", "--repeats", "1", "--solve-repeats", "2",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.strip()
    data = json.loads(out.read_text())
    rec = data["control"]
    assert data["sharding"] == {"ratio": 1.2}  # merged, not overwritten
    assert rec["command"].startswith("python -m clm bench control --model") and rec["model"] == str(pico_dir)
    assert rec["machine"]["cpu"] and rec["date"] == rec["machine"]["date"]
    assert rec["schedule_speed"]["batch"] == 2 and rec["schedule_speed"]["new_tokens"] == 3
    assert [r["kind"] for r in rec["solve_time"]["rows"]] == ["single", "joint"]
    assert printed == report.control_text(rec) and "batch 2 decoded" in printed
    assert main(["bench", "control", "--show", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == printed
    table = report.control_table(rec)
    assert list(table.columns) == ["what", "measured", "goal", "met"] and len(table) == 3 + 2
    assert table.measured.iloc[2] == rec["schedule_speed"]["ratio"]
    assert table.met.iloc[3:].tolist() == [r["met"] for r in rec["solve_time"]["rows"]]


def test_nothing_recorded_says_not_measured(tmp_path, capsys):
    assert main(["bench", "control", "--show", "--out", str(tmp_path / "none.json")]) == 0
    assert "not measured" in capsys.readouterr().out
    assert report.control_table(None) is None and "not measured" in report.control_text({})
