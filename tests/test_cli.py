"""``python -m clm <command>``: every command answers --help, every bad value is one line and exit 2,
and the commands hand their flags to the library unchanged (checked against direct library calls)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from clm.book.params import REPO
from clm.cli import COMMANDS, main

HELP = [[], *([c] for c in COMMANDS), ["scorers", "train"], ["scorers", "evaluate"], ["bench", "train"]]


@pytest.mark.parametrize("argv", HELP, ids=lambda a: " ".join(a) or "clm")
def test_every_command_answers_help(argv, capsys):
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(['python -m clm', *argv])}")


# (argv, a fragment of the one error line). {tmp}: an empty directory; {ends}: pico endpoints;
# {prompts}: a prompts file; {bad_yaml}: a file that is not YAML.
SWEEP = ["sweep", "--endpoints", "{ends}", "--prompts", "{prompts}", "--out", "{tmp}/t.csv"]
BAD = [
    ([], "required: COMMAND"),
    (["nope"], "invalid choice: 'nope'"),
    (["generate", "--weights", "sentiment=nan"], "must be finite, got nan"),
    (["generate", "--weights", "sentiment=3"], "sentiment"),
    (["generate", "--weights", "sentiment"], "sentiment"),
    (["generate", "--max-new-tokens", "-1"], "--max-new-tokens: must be an integer >= 1, got -1"),
    (["generate", "--max-new-tokens", "two"], "expected an integer, got 'two'"),
    (["generate", "--seed", "-3"], "--seed: must be an integer >= 0"),
    (["generate", "--endpoints", "{tmp}/none"], "no such directory"),
    (["generate", "--prompts", "{tmp}/none.txt"], "no such file"),
    (["generate", "--quantization", "int8"], "invalid choice: 'int8'"),
    (["train", "--preset", "nope"], "--preset: invalid choice: 'nope'"),
    (["train", "--config", "missing.yaml"], "--config: no such file: 'missing.yaml'"),
    (["train", "--config", "{bad_yaml}", "--print-config"], "is not valid YAML"),
    (["train", "--set", "foo", "--print-config"], "--set needs KEY=VALUE, got 'foo'"),
    (["train", "--set", "lr=1", "--print-config"], "unknown config key 'lr'"),
    (["train", "--set", "r=-2", "--print-config"], "config r: r must be a positive integer"),
    (["train"], "--run-dir is required"),
    (["tune", "--name", "a"], "required: --run-dir"),
    (["tune", "--run-dir", "{tmp}", "--name", "a", "--attributes", "x", "--out", "o", "--samples", "0"], "--samples"),
    (["release", "--run-dir", "{tmp}/none"], "no such directory"),
    (["release", "--run-dir", "{tmp}"], "{tmp}"),
    (["scorers"], "required: {{train,evaluate}}"),
    (["scorers", "train"], "required: --out"),
    (["scorers", "train", "--out", "{tmp}/h", "--max-per-pole", "2"], "must be an integer >= 4, got 2"),
    (["scorers", "train", "--out", "{tmp}/h", "--sources", "all"], "invalid choice: 'all'"),
    (["scorers", "evaluate", "--path", "{tmp}/none"], "no such directory"),
    (["scorers", "evaluate", "--path", "{tmp}", "--limit", "0"], "--limit: must be an integer >= 1"),
    (["sweep", "--alphas", "x"], "--alphas: expected a number, got 'x'"),
    (["sweep", "--alphas", "0,,1"], "expected comma-separated numbers"),
    (["sweep", "--alphas", "0,inf"], "expected a finite number"),
    (["sweep", "--prompts", "{tmp}/none.jsonl"], "no such file"),
    (["sweep", "--samples", "0"], "--samples: must be an integer >= 1"),
    (SWEEP, "at least one --design"),
    ([*SWEEP, "--design", "single:humor"], "'humor' is not an attribute of the endpoints"),
    ([*SWEEP, "--design", "simplex:sentiment"], "expected base, single:ATTR"),
    (
        [*SWEEP, "--design", "single:sentiment", "--score", "politeness", "--scorers", "{tmp}"],
        "no scorer for 'politeness'",
    ),
    (["bench", "--batches", "0"], "--batches: must be an integer >= 1, got 0"),
    (["bench", "--methods", "foo"], "unknown method 'foo'"),
    (["bench", "--threads", "-2"], "--threads: must be an integer >= 1"),
    (["bench", "train", "--steps", "0"], "--steps: must be an integer >= 1"),
    (["bench", "train", "--preset", "nope"], "invalid choice: 'nope'"),
    (["bench", "control", "--batch", "0"], "--batch: must be an integer >= 1, got 0"),
    (["bench", "control", "--new-tokens", "1"], "--new-tokens: must be an integer >= 2, got 1"),
    (["book", "--preset", "nope"], "--preset: invalid choice: 'nope'"),
    (["book", "--seed", "-1"], "--seed: must be an integer >= 0"),
    (["book", "--timeout", "0"], "--timeout: must be an integer >= 1"),
    (["book", "--no-build", "--build-only"], "not allowed with argument --no-build"),
    (["book", "-p", "01_data:not-a-name", "1", "--no-build"], "NOTEBOOK:name"),
    (["book", "--only", "99", "--no-build", "--run-dir", "{tmp}/run"], "--only '99' is not a notebook"),
]


@pytest.fixture()
def slots(tmp_path, endpoints_dir) -> dict[str, str]:
    (tmp_path / "bad.yaml").write_text("a: [unclosed\n")
    (tmp_path / "p.jsonl").write_text('{"prompt": "Once a"}\n')
    return {"tmp": str(tmp_path), "ends": str(endpoints_dir), "prompts": str(tmp_path / "p.jsonl"),
            "bad_yaml": str(tmp_path / "bad.yaml")}  # fmt: skip


@pytest.mark.parametrize("argv,fragment", BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_the_50_bad_inputs_each_give_one_line_and_exit_2(argv, fragment, slots, capsys):
    """50 bad inputs (wrong types, unknown choices, missing paths, negative counts, bad designs)."""
    rc = main([a.format(**slots) for a in argv])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("python -m clm") and ": error: " in lines[0]
    assert fragment.format(**slots) in lines[0] and out == ""


def test_the_bad_inputs_are_counted():
    assert len(BAD) == 50  # the number in the test's name


def test_python_m_clm_itself_prints_one_line_no_traceback():
    run = lambda *a: subprocess.run([sys.executable, "-m", "clm", *a], capture_output=True, text=True, cwd=REPO)  # noqa: E731
    bad = run("generate", "--weights", "sentiment=nan")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stdout == ""
    assert bad.stderr.splitlines() == ["python -m clm generate: error: alpha['sentiment'] must be finite, got nan"]
    ok = run("--help")
    assert ok.returncode == 0 and all(c in ok.stdout for c in COMMANDS)


# ---------------------------------------------------------------------- flags reach the library
def test_train_layers_config_then_preset_then_set(tmp_path, capsys):
    import yaml

    from clm.train.config import PRESETS

    cfg = tmp_path / "run.yaml"
    cfg.write_text("preset: tiny\nlearning_rate: 0.5\nmax_steps: 3\ndata_dir: /data\n")

    def resolved(*extra: str) -> dict:
        assert main(["train", "--config", str(cfg), *extra, "--print-config"]) == 0
        return yaml.safe_load(capsys.readouterr().out)

    own = resolved()  # the file over its own preset
    assert (own["preset"], own["model"], own["learning_rate"], own["max_steps"]) == ("tiny", "pico", 0.5, 3)
    cpu = resolved("--preset", "cpu")  # --preset over the file: no longer ignored
    assert (cpu["preset"], cpu["model"], cpu["learning_rate"]) == (
        "cpu",
        "smollm2-135m",
        PRESETS["cpu"]["learning_rate"],
    )
    assert cpu["max_steps"] == PRESETS["cpu"]["max_steps"] and cpu["data_dir"] == "/data"  # cpu sets no data_dir
    top = resolved("--preset", "cpu", "--set", "max_steps=7", "--set", "target_modules=[q_proj]")
    assert top["max_steps"] == 7 and top["target_modules"] == ["q_proj"] and top["preset"] == "cpu"


def test_generate_prints_what_the_engine_generates(endpoints_dir, im, capsys):
    import clm

    argv = ["generate", "--endpoints", str(endpoints_dir), "--prompt", "Once upon", "--max-new-tokens", "5"]
    assert main([*argv, "--weights", "sentiment=1", "--weights", "base", "--greedy"]) == 0
    printed = capsys.readouterr().out.splitlines()
    w = [clm.Weights({"sentiment": 1.0}), clm.Weights.base()]
    outs = im.generate(["Once upon"] * 2, weights=w, max_new_tokens=5, do_sample=False, seed=0)
    assert printed == [f"[{g.weights}] 'Once upon' -> {g.text!r}" for g in outs]
    assert outs[0].text != outs[1].text  # the setting reached the engine


def _toy_sentiment(root: Path, n: int = 12) -> Path:
    """A separable toy training split for sentiment's paper source."""
    d = root / "attributes" / "sentiment"
    d.mkdir(parents=True)
    for pole, word in (("negative", "awful"), ("positive", "lovely")):
        rows = [json.dumps({"text": f"a {word} day number {i}"}) for i in range(n)]
        (d / f"{pole}.train.jsonl").write_text("\n".join(rows) + "\n")
    return root


def test_scorers_train_then_sweep_match_the_library(endpoints_dir, im, tmp_path, capsys):
    from clm.eval.scoring import load_scorers
    from clm.experiments import designs
    from clm.experiments.sweep import run_sweep
    from clm.experiments.tables import read_table

    data, heads = _toy_sentiment(tmp_path / "data"), tmp_path / "heads"
    argv = ["scorers", "train", "--data-dir", str(data), "--out", str(heads), "--attributes", "sentiment"]
    argv += ["--encoder", "pico", "--sources", "main", "--max-per-pole", "10", "--no-metrics"]
    assert main(argv) == 0
    rec = json.loads((heads / "sentiment.json").read_text())
    assert rec["command"] == "python -m clm " + shlex.join(argv) and rec["train_config"]["max_per_pole"] == 10
    assert capsys.readouterr().out.startswith("sentiment: ")  # the chosen head and every candidate's accuracy
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("Once a", "It was", "unused")))
    flags = ["--alphas", "0,0.5,1", "--prompts", str(prompts), "--n-prompts", "2", "--samples", "2"]
    flags += ["--max-new-tokens", "4", "--fluency", "none", "--scorers", str(heads), "--score", "sentiment"]
    sweep = ["sweep", "--endpoints", str(endpoints_dir), "--design", "single:sentiment", *flags]
    assert main([*sweep, "--dry-run", "--out", str(tmp_path / "t.parquet")]) == 0
    assert capsys.readouterr().out.startswith("12 generations (3 settings x 2 prompts x 2 samples x 1 seeds, 4 new")
    assert main([*sweep, "--out", str(tmp_path / "t.parquet")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"12 rows -> {tmp_path / 't.parquet'}")
    got = read_table(tmp_path / "t.parquet")
    scorers = load_scorers(["sentiment"], path=heads)
    ref = run_sweep(im, designs.single_attribute("sentiment", [0, 0.5, 1]), prompts, scorers=scorers, n_prompts=2,
                    n_samples=2, max_new_tokens=4, fluency=None)  # fmt: skip
    cols = ["setting", "prompt", "sample", "continuation", "score_sentiment"]
    assert got[cols].equals(ref[cols]) and sorted(set(got.alpha_sentiment)) == [0.0, 0.5, 1.0]


def test_bench_memory_only_runs_the_probe_in_its_own_process(pico_dir, tmp_path, capsys):
    from clm.bench.run import METHODS
    from clm.cli.bench import METHODS as CLI_METHODS

    assert CLI_METHODS == METHODS  # the command line names them without importing torch
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"rows": ["kept"]}))
    argv = ["bench", "--model", str(pico_dir), "--methods", "fused", "--attributes", "1", "--rank", "2"]
    assert main([*argv, "--batches", "2", "--memory-tokens", "2", "--memory-only", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == res
    assert res["rows"] == ["kept"] and list(res["peak_memory_mib"]) == ["fused"] and res["peak_memory_mib"]["fused"] > 0
    assert res["memory_command"].startswith("python -m clm bench --model")


def test_bench_and_bench_train_record_their_command(pico_dir, tmp_path, capsys):
    argv = ["bench", "--model", str(pico_dir), "--methods", "base", "fused", "--attributes", "1", "--rank", "2"]
    argv += [
        "--batches",
        "1",
        "--new-tokens",
        "2",
        "--repeats",
        "1",
        "--latency-models",
        "--out",
        str(tmp_path / "b.json"),
    ]
    assert main(argv) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert json.loads(capsys.readouterr().out) == res and res["command"] == "python -m clm " + shlex.join(argv)
    assert {(r["method"], r["batch"]) for r in res["rows"]} == {("base", 1), ("fused", 1)}
    assert (res["config"]["new_tokens"], res["config"]["rank"], res["config"]["endpoints"]) == (2, 2, 2)
    data = _toy_sentiment(tmp_path / "data")
    argv = ["bench", "train", "--model", "pico", "--preset", "tiny", "--steps", "1", "--data-dir", str(data)]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (res["model"], res["preset"], res["steps"], res["command"]) == (
        "pico",
        "tiny",
        1,
        "python -m clm " + shlex.join(argv),
    )
    assert len(res["clm_runs"]) == len(res["plain_peft_runs"]) == 1


def test_no_library_module_parses_a_command_line():
    """argparse and ``main`` live in clm/cli only; the library is usable without them."""
    pkg = REPO / "clm"
    for path in pkg.rglob("*.py"):
        if path.parent.name == "cli" or path.name == "__main__.py":
            continue
        text = path.read_text()
        assert "import argparse" not in text and "\ndef main(" not in text, path
        assert 'if __name__ == "__main__"' not in text, path
