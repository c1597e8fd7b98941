"""``python -m clm generate --target attr=score``: solve, print the plan, generate at it.

In process on pico, with a controller fitted on the exact synthetic tables of tests/test_control.py
for pico's endpoints (sentiment 0.3 + 0.3α, formality 0.25 + 0.25α; α in [-1, 2]), handed over by
the hidden ``--controller PATH`` option; the shipped one is looked up when it is absent.
"""

from __future__ import annotations

import pytest

import clm
from clm.cli import main
from clm.experiments.control import Controller


@pytest.fixture(scope="module")
def controller_file(endpoints_dir, tmp_path_factory):
    from test_control import synthetic_tables

    ctl = Controller.fit(synthetic_tables(), endpoints=clm.Endpoints.load(endpoints_dir), n_boot=50)
    return ctl.save(tmp_path_factory.mktemp("ctl") / "pico-controller.json")


def argv(endpoints_dir, controller_file, *extra):
    return ["generate", "--endpoints", str(endpoints_dir), "--controller", str(controller_file),
            "--prompt", "Once upon", "--prompt", "The cat", "--max-new-tokens", "5", "--greedy", *extra]  # fmt: skip


def test_target_prints_the_plan_then_generates_at_it(endpoints_dir, controller_file, im, capsys):
    assert main(argv(endpoints_dir, controller_file, "--target", "sentiment=0.45", "--max-ppl-ratio", "1.3")) == 0
    out = capsys.readouterr().out.splitlines()
    plan = Controller.load(controller_file).weights_for({"sentiment": 0.45}, max_ppl_ratio=1.3)
    assert plan.weights == clm.Weights({"sentiment": 0.5})  # 0.3 + 0.3 * 0.5
    lo, hi = plan.interval["sentiment"]
    flo, fhi = plan.interval["formality"]
    assert out[:4] == [
        "target sentiment=0.45 -> setting sentiment=0.5",
        f"  predicted sentiment 0.450 [{lo:.3f}, {hi:.3f}] (target 0.45)",
        f"  predicted formality {plan.predicted['formality']:.3f} [{flo:.3f}, {fhi:.3f}]",
        f"  predicted perplexity ratio {plan.ppl_ratio:.3f} (95% intervals)",
    ]
    outs = im.generate(["Once upon", "The cat"], weights=plan.weights, max_new_tokens=5, do_sample=False)
    assert out[4:] == [f"[{g.weights}] {g.prompt!r} -> {g.text!r}" for g in outs]
    base = im.generate(["Once upon", "The cat"], max_new_tokens=5, do_sample=False)
    assert [g.text for g in outs] != [g.text for g in base]  # the solved setting reached the engine


def test_joint_targets_and_repeated_flags_are_one_solve(endpoints_dir, controller_file, capsys):
    one = main(argv(endpoints_dir, controller_file, "--target", "sentiment=0.45,formality=0.4"))
    first = capsys.readouterr().out.splitlines()[0]
    two = main(argv(endpoints_dir, controller_file, "--target", "sentiment=0.45", "--target", "formality=0.4"))
    assert one == two == 0 and capsys.readouterr().out.splitlines()[0] == first
    plan = Controller.load(controller_file).weights_for({"sentiment": 0.45, "formality": 0.4})
    assert first == f"target sentiment=0.45,formality=0.4 -> setting {plan.weights}"


def test_clip_returns_the_closest_setting_and_says_so(endpoints_dir, controller_file, capsys):
    assert main(argv(endpoints_dir, controller_file, "--target", "sentiment=0.95", "--clip")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "target sentiment=0.95 -> setting sentiment=2;extrapolate"  # the top of α's band
    assert out[4].startswith("  clipped: target sentiment=0.95 is out of reach: reachable [0.000, 0.900]")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--target", "sentiment=1.5"], "target sentiment=1.5 must be a score in [0, 1]"),
        (["--target", "sentiment=high"], "cannot parse target 'sentiment=high'; expected attribute=score"),
        (["--target", "humor=0.5"], "no response curve for 'humor'; the controller has: sentiment, formality"),
        (["--target", "sentiment=0.95"], "target sentiment=0.95 is out of reach: reachable [0.000, 0.900]"),
        (["--target", "sentiment=0.4", "--target", "sentiment=0.5"], "--target sentiment is given twice"),
        (["--target", "sentiment=0.5", "--max-ppl-ratio", "0.5"], "max_ppl_ratio must be a number >= 1, got 0.5"),
        (["--target", "sentiment=0.5", "--weights", "sentiment=1"], "not allowed with argument"),
        (["--weights", "sentiment=1", "--clip"], "--max-ppl-ratio, --clip and --controller go with --target"),
    ],
)
def test_bad_targets_are_one_line_and_exit_2(endpoints_dir, controller_file, capsys, extra, fragment):
    assert main(argv(endpoints_dir, controller_file, *extra)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m clm generate: error: ") and fragment in lines[0]
    assert captured.out == ""


def test_a_controller_of_other_endpoints_is_refused(endpoints_dir, tmp_path, capsys):
    from test_control import synthetic_tables

    other = Controller.fit(synthetic_tables(), endpoints="d" * 40, n_boot=20).save(tmp_path / "other.json")
    assert main(argv(endpoints_dir, other, "--target", "sentiment=0.45")) == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m clm generate: error: controller fitted on endpoints dddddddddddd…, the model has "
        f"{clm.Endpoints.load(endpoints_dir).digest()[:12]}…"
    ]


def test_without_controller_the_shipped_one_is_looked_up(endpoints_dir, capsys):
    argv_ = ["generate", "--endpoints", str(endpoints_dir), "--target", "sentiment=0.5", "--max-new-tokens", "2"]
    assert main(argv_) == 2  # pico's base has no shipped sweep tables
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "no shipped sweep tables for" in lines[0]
