"""Chapter parameters (clm.book.chapters) and presets (clm.presets), in-process: no notebook runs.

Every papermill parameter of every chapter, discovered from the ``parameters`` cell of each
``notebooks/NN_*.py``, is given a wrong type and a wrong value (196 bad inputs): each gets a
one-line error naming the notebook, the parameter and the value, and nothing is written.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

import pytest
from conftest import SHARED_DATA

import clm.presets
from clm.book import chapters, pipeline
from clm.book.chapters import CHAPTERS, chapter, parameters
from clm.book.params import REPO, shared
from clm.core.weights import grid
from clm.errors import ConfigError
from clm.presets import PRESETS, Preset
from clm.train.config import TrainConfig

NOTEBOOKS = REPO / "notebooks"
MISSING = Path("/nonexistent/clm-test")  # made absolute below, under tmp_path


def parameters_cell(notebook: str) -> dict[str, object]:
    """The literals of ``notebooks/<notebook>.py``'s cell tagged ``parameters``: name -> value."""
    import jupytext

    nb = jupytext.read(NOTEBOOKS / f"{notebook}.py")
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{notebook} needs exactly one cell tagged parameters"
    out = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"{notebook}: {ast.unparse(node)}"
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


SOURCES = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))
CELLS = {nb: parameters_cell(nb) for nb in SOURCES}


def test_every_chapter_has_a_spec_that_matches_its_parameters_cell():
    assert SOURCES == sorted(CHAPTERS) and len(SOURCES) == 10
    assert [n for n in pipeline.toc_notebooks(REPO) if n[:2].isdigit()] == list(CHAPTERS)
    for nb, cell in CELLS.items():
        assert cell == parameters(nb), nb  # same names, same defaults
        assert list(cell)[:5] == ["preset", "model", "data_dir", "run_dir", "seed"], nb
        assert cell["preset"] is None and cell["run_dir"] is None, f"{nb}: left to $CLM_PRESET / $CLM_RUN_DIR"


# parameter -> (a wrong type, a wrong value). ``MISSING`` stands for a path under tmp_path that does not exist.
BAD = {
    "preset": (3, "cpuu"),
    "model": (3, ""),
    "data_dir": (3, MISSING),
    "run_dir": (3, "FILE"),  # a file where the run dir should be
    "seed": ("0", -1),
    "n_examples": ("3", -1),
    "attributes": ("sentiment", ["sentimen"]),
    "reuse_endpoints": ("yes", 1),
    "train_overrides": (["learning_rate"], {"lerning_rate": 1e-3}),
    "n_prompts": ("3", 0),
    "train": ("yes", 1),
    "encoder": (3, ""),
    "eval_limit": ("40", 1),
    "ppl_window": ("256", 1),
    "ppl_max_tokens": ("2048", -1),
    "prompts_file": (3, MISSING),
    "n_samples": ("1", 0),
    "ppl_tokens": ("1024", 1),
    "fluency": ("no", 0),
    "example_prompt": ("0", 10**6),  # beyond n_prompts
    "example_alphas": ("0.5", [3.0]),
    "targets": ("sentiment", ["nope"]),
    "lams": (0.5, [0.0]),
    "target_alphas": ("0,1", [0.5]),
    "simplex_attributes": ("sentiment", ["sentiment", "formality"]),
    "simplex_step": ("0.2", 0.3),
    "top_pairs": ("5", 0),
    "rerun_benchmark": ("yes", 1),
    "new_tokens": ("4", 0),
    "repeats": ("1", 0),
    "large_model": ("yes", 1),
    "min_spearman": ("0.9", 1.5),
    "min_range": ("0.25", 0),
    "max_ppl_ratio": ("1.3", -1),
    "entangled_at": ("0.5", float("nan")),
    "n_dev": ("3", 0),
    "n_targets": ("5", 1),
    "pair": ("sentiment", ["sentiment", "sentiment"]),
    "other_prompts_file": (3, MISSING),
    "n_calibrate": ("20", 1),
    "schedule_tokens": ("64", 1),
    "dial": ("yes", 1),
    "trained": ("sentiment", ["sentimen"]),
    "layers": ("7", [1.5]),  # not a whole layer number
    "probe": ("2", [0.0]),
    "positions": (3, "some"),
    "fractions": ("0.5", [1.0]),  # an endpoint, not a mixture
    "n_texts": ("500", 1),
}
CASES = [(nb, name, how) for nb, cell in CELLS.items() for name in cell for how in ("type", "value")]


def test_232_bad_inputs_cover_every_parameter_of_every_chapter_twice():
    assert len(CASES) == 232
    assert sorted({name for _, name, _ in CASES}) == sorted(BAD)


def _shown(msg: str, value: object) -> bool:
    """Whether the message shows the bad value (or, for a collection, the bad item in it)."""
    if isinstance(value, Path):
        return str(value) in msg
    items = list(value) if isinstance(value, (list, dict)) else []
    return repr(value) in msg or any(repr(v) in msg for v in items)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")
@pytest.mark.parametrize("nb, name, how", CASES, ids=[f"{nb[:2]}-{name}-{how}" for nb, name, how in CASES])
def test_bad_input_is_one_line_naming_notebook_parameter_value_and_writes_nothing(tmp_path, monkeypatch, nb, name, how):
    for var in ("CLM_PRESET", "CLM_RUN_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "FILE").write_text("not a directory")
    bad = BAD[name][0 if how == "type" else 1]
    bad = tmp_path / "missing" if bad is MISSING else tmp_path / "FILE" if bad == "FILE" else bad
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError) as err:
        chapter(nb, **{"run_dir": str(tmp_path / "run"), name: bad})
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{nb}: parameter {name} "), msg
    assert _shown(msg, bad), msg
    assert sorted(tmp_path.rglob("*")) == before  # no run dir, nothing else


@pytest.mark.parametrize("nb", list(CHAPTERS))
def test_an_unknown_name_is_an_error_with_the_closest_valid_one(nb, tmp_path):
    name = list(parameters(nb))[-1]
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    with pytest.raises(ConfigError, match=f"^{nb}: unknown parameter '{typo}'; did you mean '{name}'\\?$"):
        chapter(nb, run_dir=str(tmp_path / "run"), **{typo: 1})
    with pytest.raises(ConfigError, match=f"unknown parameter '{typo}'"):  # `-p NB:name value` too
        pipeline.Config(preset="tiny", params={nb: {typo: 1}})
    with pytest.raises(ConfigError, match="is not a chapter; did you mean"):
        chapter(nb[:-1], run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")
def test_values_are_typed_and_left_at_none_take_the_presets(tmp_path, monkeypatch):
    monkeypatch.delenv("CLM_PRESET", raising=False)
    ns = {"n_prompts": 5, "seed": 3, "In": [], "unrelated": object()}  # a notebook's globals(): other names ignored
    P = chapter("04_single_attribute", ns, run_dir=tmp_path / "run", fluency=True)
    cpu = PRESETS["cpu"]
    assert (P.n_prompts, P.seed, P.fluency) == (5, 3, True)  # given
    assert (P.n_samples, P.ppl_window, P.ppl_tokens, P.alphas) == (2, 1024, 4096, cpu.sweep_alphas)  # the preset's
    assert P.attributes == P.ends.attributes == ["sentiment", "politeness", "formality", "simplicity", "humor"]
    assert P.prompts_file == P.data_dir / "prompts" / "writing_prompts.jsonl"
    assert P.run_dir == tmp_path / "run" and P.run_dir.is_dir()  # created once everything passed
    assert P.sweep_kwargs(P.n_prompts, P.n_samples)["max_new_tokens"] == cpu.max_new_tokens
    P = chapter("05_multi_attribute", run_dir=tmp_path / "run", targets=["humor", "sentiment"])
    assert (P.targets, P.target_alphas, P.simplex_step) == (["humor", "sentiment"], [0.0, 0.5, 1.0], 0.25)
    assert P.simplex_attributes == ["sentiment", "formality", "humor"]
    P = chapter("05_multi_attribute", run_dir=tmp_path / "run")
    assert P.n_settings * P.n_prompts * P.n_samples == 6600  # 2 targets x 3 λ x 3 α + 15 simplex points, as 05 says
    P = chapter("02_finetune_endpoints", run_dir=tmp_path / "run", train_overrides={"max_steps": 7})
    assert P.train_config == TrainConfig.from_preset("cpu", data_dir=str(P.data_dir), max_steps=7)
    P = chapter("03_attribute_scorers", preset="gpu", run_dir=tmp_path / "run", ppl_max_tokens=0)
    assert (P.train, P.encoder, P.eval_limit, P.ppl_window, P.ppl_max_tokens) == (False, "minilm", None, None, None)


def test_precedence_parameter_then_environment_then_default(tmp_path, monkeypatch):
    monkeypatch.delenv("CLM_PRESET", raising=False)
    monkeypatch.delenv("CLM_RUN_DIR", raising=False)
    existed = (REPO / "runs" / "cpu").exists()
    d = shared("01_data", need_data=False)  # nothing set: the defaults
    assert (d["preset"].name, d["run_dir"], d["chosen_by"]) == ("cpu", REPO / "runs" / "cpu", {})
    assert (REPO / "runs" / "cpu").exists() == existed  # resolving creates nothing
    monkeypatch.setenv("CLM_PRESET", "gpu")
    monkeypatch.setenv("CLM_RUN_DIR", str(tmp_path / "env"))
    d = shared("01_data", need_data=False)  # the environment, chosen once for every chapter
    assert (d["preset"].name, d["run_dir"]) == ("gpu", tmp_path / "env")
    assert d["chosen_by"] == {"preset": "CLM_PRESET", "run_dir": "CLM_RUN_DIR"}
    d = shared("01_data", preset="cpu", run_dir=tmp_path / "mine", need_data=False)  # an explicit value wins
    assert (d["preset"].name, d["run_dir"], d["chosen_by"]) == ("cpu", tmp_path / "mine", {})
    P = chapter("10_conclusions")
    assert (P.preset.name, P.run_dir) == ("gpu", tmp_path / "env") and P.run_dir.is_dir()
    assert "preset=gpu ($CLM_PRESET)" in P.describe() and f"run_dir={tmp_path / 'env'} ($CLM_RUN_DIR)" in P.describe()
    monkeypatch.setenv("CLM_PRESET", "gpuu")
    with pytest.raises(ConfigError, match=r"^10_conclusions: parameter preset .*'gpuu' \(from \$CLM_PRESET\)"):
        chapter("10_conclusions")


def test_the_pipeline_passes_the_preset_and_run_dir_it_uses(tmp_path):
    cfg = pipeline.Config(preset="tiny", run_dir=tmp_path / "run")
    for nb in CHAPTERS:
        p = pipeline.parameters(cfg, nb)
        assert p["preset"] == "tiny" and Path(NOTEBOOKS, p["run_dir"]).resolve() == (tmp_path / "run").resolve()
    assert cfg.timeout == PRESETS["tiny"].cell_timeout


def test_a_new_preset_is_one_entry_in_PRESETS(tmp_path, monkeypatch):
    """Registered in clm.presets.PRESETS alone, a preset works for the chapters, TrainConfig and the pipeline."""
    tiny = PRESETS["tiny"]
    mini = Preset(
        name="mini", note="a test preset", model="smollm2-135m", cell_timeout=77,
        train={**tiny.train, "preset": "mini-train", "max_steps": 2}, threads=None,
        n_prompts=4, samples=2, max_new_tokens=5, batch_size=3, alphas=(0.0, 1.0),
        ppl_max_tokens=512, scorer_ppl_window=128,
    )  # fmt: skip
    monkeypatch.setitem(clm.presets.PRESETS, "mini", mini)
    monkeypatch.delenv("CLM_PRESET", raising=False)
    cfg = TrainConfig.from_preset("mini-train")
    assert (cfg.preset, cfg.max_steps, cfg.model) == ("mini-train", 2, "pico")
    assert "mini-train" in clm.train.config.PRESETS and pipeline.Config(preset="mini").timeout == 77
    if SHARED_DATA.is_dir():
        P = chapter("04_single_attribute", preset="mini", run_dir=tmp_path / "run")
        assert (P.n_prompts, P.n_samples, P.alphas, P.model) == (4, 2, [0.0, 1.0], "smollm2-135m")
        assert P.sweep_kwargs(4, 2)["batch_size"] == 3
        P = chapter("02_finetune_endpoints", preset="mini", run_dir=tmp_path / "run")
        assert P.train_config.max_steps == 2 and P.train_config.preset == "mini-train"
        assert chapter("03_attribute_scorers", preset="mini", run_dir=tmp_path / "run").ppl_window == 128


def test_presets_are_keyword_only_frozen_and_complete():
    with pytest.raises(TypeError):
        Preset("x", "note", "pico", {}, 1)  # keyword-only: no positional arguments
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["cpu"].n_prompts = 1
    with pytest.raises(TypeError):
        PRESETS["cpu"].train["r"] = 4  # read-only
    assert PRESETS["tiny"].sweep_alphas == grid(-1.0, 2.0, 0.5) and PRESETS["gpu"].sweep_alphas == grid(-1, 2, 0.25)
    assert [p.train_preset for p in PRESETS.values()] == ["tiny", "cpu", "paper"]
    assert list(clm.train.config.PRESETS) == ["tiny", "cpu", "paper"]
    for p in PRESETS.values():
        assert TrainConfig.from_preset(p.train_preset).preset == p.train_preset and p.cell_timeout > 0 and p.note


def test_a_setup_cell_is_a_few_lines():
    """The cell after the parameters cell: imports, one ``chapter`` call, a few names for the chapter."""
    import jupytext

    for nb in CHAPTERS:
        cells = [c for c in jupytext.read(NOTEBOOKS / f"{nb}.py").cells if c.cell_type == "code"]
        first = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        setup = cells[first + 1].source
        assert f'chapter("{nb}", globals())' in setup, nb
        code = [line for line in setup.splitlines() if line.strip() and not line.startswith(("import", "from", " "))]
        assert len(code) <= 12, (nb, len(code))
        assert not any(w in setup for w in ("isinstance(", "raise ")), nb  # no hand checks


def test_chapters_and_presets_stay_out_of_heavy_imports():
    import subprocess
    import sys

    code = "import sys, clm.book.chapters, clm.presets; print(sorted(m for m in ('torch', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True)
    assert out.stdout.strip() == "[]"


def test_chapter_specs_are_dataclasses_of_book_params():
    for nb, cls in CHAPTERS.items():
        assert issubclass(cls, chapters.Chapter) and cls.__doc__.startswith(nb), nb


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data not found")
@pytest.mark.parametrize("nb", ["04_single_attribute", "05_multi_attribute", "06_entanglement_and_geometry"])
def test_a_chapter_alone_in_a_fresh_run_dir_says_which_chapter_to_run_first(nb, tmp_path):
    # pico has no shipped endpoints: a fresh run dir at tiny has none to use
    with pytest.raises(ConfigError, match=f"^{nb}: no endpoints in .* run 02_finetune_endpoints first$"):
        chapter(nb, preset="tiny", run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
