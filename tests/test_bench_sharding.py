"""``python -m clm bench sharding``: the recorded speed ratio of a sharded sweep, and its errors."""

from __future__ import annotations

import json

from clm.bench import sharding
from clm.cli import main
from clm.paths import ASSETS


def test_show_prints_the_shipped_measurement(capsys):
    assert main(["bench", "sharding", "--show", "--out", str(ASSETS / "bench" / "cpu-smollm2-135m.json")]) == 0
    line = capsys.readouterr().out.strip()
    rec = json.loads((ASSETS / "bench" / "cpu-smollm2-135m.json").read_text())["sharding"]
    assert line == sharding.describe(rec)
    assert f"a speed ratio of {rec['ratio']:.2f}" in line and rec["ratio"] == round(rec["single_s"] / rec["sharded_s"], 3)


def test_show_without_a_record_says_so(tmp_path, capsys):
    assert main(["bench", "sharding", "--show", "--out", str(tmp_path / "none.json")]) == 0
    assert "no sharding measurement recorded" in capsys.readouterr().out


def test_missing_or_bad_sweep_arguments_are_one_line(tmp_path, capsys):
    for argv in (["bench", "sharding", "--out", str(tmp_path / "b.json")],
                 ["bench", "sharding", "--out", str(tmp_path / "b.json"), "--", "--out", "x.parquet"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "without --out" in err[0]
    assert not (tmp_path / "b.json").exists()


def test_record_adds_the_key_atomically(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"machine": {"cpus": 2}}))
    rec = {"ratio": 1.5, "single_s": 3.0, "sharded_s": 2.0, "rows": 4, "cpus": 2, "date": "d",
           "layout": {"single": "1 process x 2 threads", "sharded": "2 processes x 1 thread"}}  # fmt: skip
    sharding.record(path, rec)
    data = json.loads(path.read_text())
    assert data == {"machine": {"cpus": 2}, "sharding": rec} and [p.name for p in tmp_path.iterdir()] == ["bench.json"]
