"""The book pipeline: every notebook executes at preset tiny, resumes, and fails loudly.

The session fixture ``book_run`` (conftest.py) runs the real notebooks once into a staging
dir and builds the book there; the tests below read from it. Failure and resume behaviour is
tested on small throwaway notebooks (no torch) in a throwaway root.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from clm.book import nbclean, pipeline
from clm.book.nbclean import cell_defaults, fold_parameters
from clm.book.params import REPO
from clm.errors import ConfigError

pytestmark = pytest.mark.notebooks

HEADER = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""
PARAMS = """
# %% tags=["parameters"]
preset = "cpu"
model = None
data_dir = None
run_dir = None
seed = 0
"""


def write_root(root: Path, notebooks: dict[str, str]) -> Path:
    """A throwaway book root: a _toc.yml listing ``notebooks`` and their py:percent sources."""
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    toc = "format: jb-book\nroot: intro\nchapters:\n" + "".join(f"  - file: notebooks/{n}\n" for n in notebooks)
    (root / "_toc.yml").write_text(toc)
    for name, body in notebooks.items():
        (root / "notebooks" / f"{name}.py").write_text(HEADER + PARAMS + body)
    return root


OK = """
# %%
from pathlib import Path
Path(run_dir, "ok.txt").write_text(f"{preset} {seed}")
print("seed", seed)
"""
FAIL = """
# %%
x = 1

# %%
y = x / 0
"""


# ---------------------------------------------------------------- the real notebooks, at tiny


def test_every_notebook_of_the_toc_executed(book_run):
    names = pipeline.toc_notebooks(REPO)
    assert names[0] == "01_data" and names[-1] == "10_conclusions"
    status = {r.name: r.status for r in book_run.results}
    assert list(status) == names
    for name in names:
        exists = (REPO / "notebooks" / f"{name}.py").is_file()
        assert status[name] == ("ran" if exists else "missing"), name
    assert status["01_data"] == status["10_conclusions"] == "ran"
    assert any("WARNING: skipping" in line for line in book_run.log) == ("missing" in status.values())


def test_executed_notebooks_have_outputs_and_no_errors(book_run):
    for r in book_run.results:
        if r.status != "ran":
            continue
        nb = nbformat.read(book_run.cfg.out_dir / f"{r.name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.execution_count for c in code), r.name
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], r.name
        tags = [c.metadata.get("tags", []) for c in code]
        assert any("parameters" in t for t in tags), r.name
        assert not any("injected-parameters" in t for t in tags), r.name  # folded into it
        assert nb.metadata.papermill["parameters"]["preset"] == "tiny"
        assert nb.metadata.kernelspec["name"] == "python3"
        views = [o for c in code for o in c.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert views == [], f"{r.name}: a widget with no state committed"


def test_volatile_metadata_is_stripped(book_run):
    nb = nbformat.read(book_run.cfg.out_dir / "01_data.ipynb", as_version=4)
    assert set(nb.metadata.papermill) == {"parameters"}
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
    text = (book_run.cfg.out_dir / "01_data.ipynb").read_text()
    assert "start_time" not in text and "duration" not in text


def test_01_data_counts_match_the_data_readme(book_run):
    sizes = json.loads((book_run.cfg.run_dir / "metrics" / "01_data.json").read_text())["sizes"]
    from clm.book.params import default_data_dir

    readme = (default_data_dir() / "README.md").read_text()
    checked = 0
    for line in readme.splitlines():  # | attribute | low | high | train l/h | test l/h | ...
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 5 and re.fullmatch(r"[\d,]+ / [\d,]+", cells[3]):
            for split, col in (("train", 3), ("test", 4)):
                low, high = (int(x.replace(",", "")) for x in cells[col].split(" / "))
                assert sizes[f"{cells[0]}/{cells[1]}/{split}"] == low, (cells[0], split)
                assert sizes[f"{cells[0]}/{cells[2]}/{split}"] == high, (cells[0], split)
                checked += 1
    assert checked == 20  # 10 sources x 2 splits


def test_10_conclusions_reports_unmeasured_claims_honestly(book_run):
    summary = json.loads((book_run.cfg.run_dir / "metrics" / "10_conclusions.json").read_text())["summary"]
    assert len(summary) == 5
    measured_04 = (book_run.cfg.run_dir / "metrics" / "04_single_attribute.json").is_file()
    if not measured_04:
        assert summary["Predictable, monotone change with α"] == "not measured"


def test_rerun_resumes_and_skips_finished_notebooks(book_run):
    log: list[str] = []
    results = pipeline.run_notebooks(book_run.cfg, log=log.append)
    assert {r.status for r in results} <= {"skipped", "missing"}
    assert [r.name for r in results if r.status == "skipped"] == [r.name for r in book_run.results if r.status == "ran"]
    assert all("skipped" in line or "WARNING" in line for line in log)


def test_book_built_with_a_page_per_toc_entry(book_run):
    html = book_run.html
    assert (html / "index.html").is_file()
    for name in pipeline.toc_notebooks(REPO):
        assert (html / "notebooks" / f"{name}.html").is_file(), name
    for page in ("book/running", "book/references"):
        assert (html / f"{page}.html").is_file()
    # the .py sources never feed the book; the staged copy never touches notebooks/
    assert not list((book_run.book / "notebooks").glob("*.py"))
    assert "Kangaslahti" in (html / "book" / "references.html").read_text()


# ---------------------------------------------------------------- behaviour, on throwaway notebooks


def test_failing_notebook_stops_with_its_name_and_cell(tmp_path, capsys):
    root = write_root(tmp_path / "root", {"01_ok": OK, "02_fail": FAIL, "03_after": OK})
    cfg = pipeline.Config(preset="tiny", run_dir=tmp_path / "run", out_dir=tmp_path / "out", root=root)
    with pytest.raises(pipeline.NotebookError) as err:
        pipeline.run_notebooks(cfg, log=lambda _: None)
    msg = str(err.value)
    assert "\n" not in msg
    assert "notebook 02_fail failed in cell" in msg and "'y = x / 0'" in msg and "ZeroDivisionError" in msg
    assert (tmp_path / "out" / "01_ok.ipynb").is_file()
    assert not (tmp_path / "out" / "02_fail.ipynb").exists() and not (tmp_path / "out" / "03_after.ipynb").exists()
    assert list((tmp_path / "run" / "pipeline").glob("02_fail.*.partial.ipynb"))
    # the command line (python -m clm book) prints the same single line and exits 1
    from clm.cli import main

    argv = ["--preset", "tiny", "--run-dir", str(tmp_path / "run"), "--out-dir", str(tmp_path / "out"), "--no-build"]
    assert main(["book", *argv, "--root", str(root)]) == 1
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(err_lines) == 1 and err_lines[0].startswith("python -m clm book: error: notebook 02_fail failed in cell")


def test_resume_reruns_only_what_changed(tmp_path):
    root = write_root(tmp_path / "root", {"01_ok": OK, "02_two": OK})
    cfg = pipeline.Config(preset="tiny", run_dir=tmp_path / "run", out_dir=tmp_path / "out", root=root)
    run = lambda c: {r.name: r.status for r in pipeline.run_notebooks(c, log=lambda _: None)}  # noqa: E731
    assert run(cfg) == {"01_ok": "ran", "02_two": "ran"}
    assert run(cfg) == {"01_ok": "skipped", "02_two": "skipped"}
    (root / "notebooks" / "02_two.py").write_text(HEADER + PARAMS + OK + "\n# %%\nprint('edited')\n")
    assert run(cfg) == {"01_ok": "skipped", "02_two": "ran"}  # the source changed
    cfg.params = {"01_ok": {"seed": 3}}
    assert run(cfg) == {"01_ok": "ran", "02_two": "skipped"}  # its parameters changed
    assert (tmp_path / "run" / "ok.txt").read_text() == "tiny 3"
    nb = nbformat.read(tmp_path / "out" / "01_ok.ipynb", as_version=4)
    assert nb.metadata.papermill["parameters"]["seed"] == 3
    cfg.start = "02"
    assert run(cfg) == {"01_ok": "skipped", "02_two": "ran"}  # --from
    cfg.start, cfg.force = None, True
    assert run(cfg) == {"01_ok": "ran", "02_two": "ran"}  # --force


def test_missing_notebook_needs_allow_missing(tmp_path):
    root = write_root(tmp_path / "root", {"01_ok": OK})
    (root / "_toc.yml").write_text((root / "_toc.yml").read_text() + "  - file: notebooks/02_later\n")
    cfg = pipeline.Config(preset="tiny", run_dir=tmp_path / "run", out_dir=tmp_path / "out", root=root, only=("02",))
    with pytest.raises(pipeline.NotebookError, match="02_later .*--allow-missing"):
        pipeline.run_notebooks(cfg, log=lambda _: None)
    cfg.allow_missing = True
    assert [r.status for r in pipeline.run_notebooks(cfg, log=lambda _: None)] == ["missing"]


def test_bad_configuration_is_one_line():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        pipeline.Config(preset="huge")
    with pytest.raises(ConfigError, match="--only '19'"):
        pipeline.run_notebooks(pipeline.Config(preset="tiny", only=("19",)))
    from clm.cli.book import parameter  # -p [NB:]NAME VALUE

    with pytest.raises(ConfigError, match="NOTEBOOK:name"):
        parameter("01_data:not-a-name", "1")
    assert parameter("04_single_attribute:attributes", "[sentiment, humor]") == (
        "04_single_attribute",
        "attributes",
        ["sentiment", "humor"],
    )


def test_strip_volatile_and_progress_bars():
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"seed": 0}, "start_time": "t", "duration": 1.0, "input_path": "x"}
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=4)
    cell.metadata["papermill"] = {"duration": 1.0}
    cell.metadata["execution"] = {"iopub.execute_input": "t"}
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=" 10%|#\r 50%|####\r100%|########|\ndone\n")]
    nb.cells = [cell]
    out = nbclean.strip_volatile(nb)
    assert out.metadata.papermill == {"parameters": {"seed": 0}}
    assert out.cells[0].metadata == {} and out.cells[0].execution_count == 4
    assert out.cells[0].outputs[0]["text"] == "100%|########|\ndone\n"
    # cell ids: from the cell's type and source (numbered where repeated), the same on every run
    same = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("x = 1"),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    ids = [c.id for c in nbclean.strip_volatile(nbformat.v4.new_notebook(cells=same)).cells]
    again = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("x = 1"),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    assert ids == [c.id for c in nbclean.strip_volatile(nbformat.v4.new_notebook(cells=again)).cells]
    assert len(set(ids)) == 3 and ids[2] == ids[0] + "-2"
    # bars as separate stream messages (how nbclient records tqdm): only the last state stays
    stream = lambda text, name="stderr": nbformat.v4.new_output("stream", name=name, text=text)  # noqa: E731
    cell.outputs = [stream("loading\n"), stream("  0%|   | 0/3"), stream(" 50%|#  | 1/3"), stream("100%|###| 3/3"),
                    stream("\n"), stream("result\n", "stdout"), stream("x: 10%|#| 1/9\n")]  # fmt: skip
    outs = nbclean.strip_volatile(nb).cells[0].outputs
    assert [(o["name"], o["text"]) for o in outs] == [
        ("stderr", "loading\n100%|###| 3/3\n"),
        ("stdout", "result\n"),
        ("stderr", "x: 10%|#| 1/9\n"),
    ]


def test_progress_bar_widgets_become_their_final_line():
    """tqdm draws widgets where ipywidgets is installed; their state is not committed, so each
    becomes the text of its final state, and one whose state is lost (showing 0 %) is dropped, as is
    any other widget (chapter 7's dial), which JupyterLab could not show without its state."""
    view = lambda mid, text: nbformat.v4.new_output(  # noqa: E731
        "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": mid}, "text/plain": text}
    )
    html = lambda v: {"model_name": "HTMLModel", "state": {"value": v}}  # noqa: E731
    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": html("perplexity:\u2007100%"),
        "p": {"model_name": "FloatProgressModel", "state": {"value": 9.0, "max": 9.0}},
        "r": html("\u20079/9\u2007[00:01&lt;00:00,\u20075.1it/s]"),
        "slider": {"model_name": "FloatSliderModel", "state": {"value": 0.5}},
    }
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}})
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [view("box", "perplexity:   0%|          | 0/9"), view("gone", "ppl:   0%|          | 0/9"),
                    view("slider", "FloatSlider(value=0.5)")]  # fmt: skip
    nb.cells = [cell]
    outs = nbclean.strip_volatile(nb).cells[0].outputs
    assert outs[0]["data"] == {"text/plain": "perplexity: 100%|██████████| 9/9 [00:01<00:00, 5.1it/s]"}
    assert len(outs) == 1  # not a bar (a dial's slider): dropped, its state being uncommitted
    assert "widgets" not in nb.metadata


def test_run_dir_is_relative_in_committed_notebooks():
    cfg = pipeline.Config(preset="cpu")
    assert pipeline.parameters(cfg, "01_data")["run_dir"] is None  # the default: the cell keeps None
    cfg = pipeline.Config(preset="cpu", run_dir=REPO / "runs" / "mine")
    assert pipeline.parameters(cfg, "01_data")["run_dir"] == "../runs/mine"
    cfg = pipeline.Config(
        preset="tiny", run_dir=Path("/elsewhere/run"), params={"*": {"seed": 2}, "01_data": {"n_examples": 1}}
    )
    p = pipeline.parameters(cfg, "01_data")
    assert p["run_dir"] == "/elsewhere/run" and p["seed"] == 2 and p["n_examples"] == 1
    assert "n_examples" not in pipeline.parameters(cfg, "10_conclusions")


def _inputs(cells) -> list[tuple[str, str, list]]:
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in cells]


def test_committed_notebooks_match_their_sources():
    """An executed notebook in notebooks/ has exactly the cells of its .py source: no papermill
    injected-parameters cell, the same parameters cell (what JupyterLab's jupytext checks)."""
    import jupytext

    pairs = [(p, p.with_suffix(".py")) for p in sorted((REPO / "notebooks").glob("*.ipynb"))]
    if not pairs:
        pytest.skip("no executed notebooks committed in notebooks/ yet")
    for ipynb, py in pairs:
        assert py.is_file(), f"{ipynb.name} has no .py source"
        executed = nbformat.read(ipynb, as_version=4)
        source = jupytext.read(py)
        assert _inputs(executed.cells) == _inputs(source.cells), f"{ipynb.name} is stale: rerun python -m clm book"


def test_committed_sources_are_what_jupytext_writes():
    """Saving a chapter in JupyterLab writes its .py with jupytext: it must come out byte for byte
    (no jupytext_version header, the kernelspec of .ci/setup's kernel)."""
    import jupytext

    for py in sorted((REPO / "notebooks").glob("*.py")):
        text = py.read_text(encoding="utf-8")
        nb = jupytext.reads(text, fmt="py:percent")
        assert nb.metadata["kernelspec"] == pipeline.KERNELSPEC, py.name
        assert nb.metadata["jupytext"]["formats"] == pipeline.PAIRING, py.name
        assert jupytext.writes(nb, fmt="py:percent") == text, f"{py.name}: jupytext would rewrite it"


def test_the_main_command_injects_nothing_into_the_chapters():
    """``python -m clm book --preset cpu`` runs every chapter with its own defaults: nothing is
    injected, so the committed parameters cells keep their None and the sources their bytes."""
    import jupytext

    cfg = pipeline.Config(preset="cpu")
    for name in pipeline.toc_notebooks(REPO):
        nb = jupytext.read(REPO / "notebooks" / f"{name}.py")
        assert pipeline.to_inject(nb, pipeline.parameters(cfg, name)) == {}, name
    tiny = pipeline.Config(preset="tiny", run_dir=Path("/elsewhere/run"))
    nb = jupytext.read(REPO / "notebooks" / "01_data.py")
    injected = pipeline.to_inject(nb, pipeline.parameters(tiny, "01_data"))
    assert injected == {"preset": "tiny", "run_dir": "/elsewhere/run"}


def test_fold_parameters_writes_what_ran_into_the_parameters_cell():
    src = 'preset = None  # scale\nrun_dir = None\nseed = 0  # seed\nflag: bool = True\nname = "é"'
    assert fold_parameters(src, {"preset": None, "seed": 0, "flag": True}) == src  # unchanged: byte for byte
    out = fold_parameters(src, {"preset": "tiny", "seed": 1, "flag": 1, "attributes": ["a", "b"]})
    assert out.splitlines() == [
        'preset = "tiny"  # scale',
        "run_dir = None",
        "seed = 1  # seed",
        "flag: bool = 1",  # 1 is not True
        'name = "é"',
        'attributes = ["a", "b"]',  # appended
    ]
    assert cell_defaults(out) == {"preset": "tiny", "run_dir": None, "seed": 1, "flag": 1, "name": "é",
                                  "attributes": ["a", "b"]}  # fmt: skip


def _pair_in_sync(folder: Path, name: str) -> None:
    """jupytext's contents manager reads the pair with no "more recent" error and saving it
    unedited changes neither file; ``jupytext --sync`` finds nothing to update."""
    import subprocess
    import sys

    from jupytext import TextFileContentsManager

    files = [folder / f"{name}.ipynb", folder / f"{name}.py"]
    before = [f.read_bytes() for f in files]
    assert files[0].stat().st_mtime == files[1].stat().st_mtime
    cm = TextFileContentsManager(root_dir=str(folder))
    cm.save({"type": "notebook", "content": cm.get(f"{name}.ipynb")["content"]}, f"{name}.ipynb")
    assert [f.read_bytes() for f in files] == before
    sync = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(files[0])], capture_output=True, text=True)
    assert sync.returncode == 0 and "Updating" not in sync.stderr + sync.stdout, sync.stderr
    assert [f.read_bytes() for f in files] == before


def test_pipeline_writes_the_ipynb_and_py_as_a_jupytext_pair(tmp_path):
    root = write_root(tmp_path / "root", {"01_ok": OK})
    cfg = pipeline.Config(preset="tiny", run_dir=tmp_path / "run", out_dir=tmp_path / "out", root=root)
    cfg.params = {"01_ok": {"seed": 3}}
    pipeline.run_notebooks(cfg, log=lambda _: None)
    nb = nbformat.read(tmp_path / "out" / "01_ok.ipynb", as_version=4)
    assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    params = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert params.splitlines() == ['preset = "tiny"', "model = None", "data_dir = None",
                                   f'run_dir = "{tmp_path / "run"}"', "seed = 3"]  # fmt: skip
    assert nb.metadata.papermill["parameters"] == {"preset": "tiny", "run_dir": str(tmp_path / "run"), "seed": 3}
    assert (tmp_path / "run" / "ok.txt").read_text() == "tiny 3"
    assert (tmp_path / "out" / "01_ok.py").read_text() == HEADER + PARAMS.replace(
        'preset = "cpu"', 'preset = "tiny"').replace("run_dir = None", f'run_dir = "{tmp_path / "run"}"').replace(
        "seed = 0", "seed = 3") + OK  # fmt: skip
    _pair_in_sync(tmp_path / "out", "01_ok")
    assert (root / "notebooks" / "01_ok.py").read_text() == HEADER + PARAMS + OK  # the source is left alone


def test_in_place_with_the_defaults_leaves_the_source_as_it_is(tmp_path):
    """In place, nothing differs from the notebook's own parameters: nothing is injected or folded,
    and the committed source keeps every byte (only its modification time follows the .ipynb)."""
    run = tmp_path / "run"
    root = write_root(tmp_path / "root", {"01_ok": OK})
    src = root / "notebooks" / "01_ok.py"
    text = src.read_text().replace("run_dir = None", f'run_dir = "{run}"')
    src.write_text(text)
    cfg = pipeline.Config(preset="cpu", run_dir=run, root=root)
    assert cfg.in_place
    pipeline.run_notebooks(cfg, log=lambda _: None)
    assert src.read_text() == text
    nb = nbformat.read(root / "notebooks" / "01_ok.ipynb", as_version=4)
    assert nb.metadata.papermill["parameters"] == {}
    assert (run / "ok.txt").read_text() == "cpu 0"
    _pair_in_sync(root / "notebooks", "01_ok")
    # a changed parameter is written into both files, and the rerun after it is a resume
    cfg.params = {"*": {"seed": 5}}
    pipeline.run_notebooks(cfg, log=lambda _: None)
    assert src.read_text() == text.replace("seed = 0", "seed = 5")
    _pair_in_sync(root / "notebooks", "01_ok")
    assert [r.status for r in pipeline.run_notebooks(cfg, log=lambda _: None)] == ["skipped"]


def test_in_place_build_reads_only_the_executed_notebooks(book_run, tmp_path):
    """Built in place (the committed layout: .py beside .ipynb, a runs/ dir), the book renders
    the .ipynb files only and stays free of warnings."""
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(REPO / "book", root / "book")
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / f, root / f)
    (root / "notebooks").mkdir()
    (root / "runs" / "tiny").mkdir(parents=True)
    (root / "runs" / "tiny" / "notes.md").write_text("# not part of the book\n")
    done = {r.name for r in book_run.results if r.status == "ran"}
    for name in pipeline.toc_notebooks(REPO):
        src = book_run.cfg.out_dir / f"{name if name in done else '01_data'}.ipynb"
        shutil.copy2(src, root / "notebooks" / f"{name}.ipynb")
        (root / "notebooks" / f"{name}.py").write_text(HEADER + PARAMS)
    cfg = pipeline.Config(preset="tiny", root=root, run_dir=root / "runs" / "tiny")
    assert cfg.in_place and pipeline.stage_book(cfg) == root
    html = pipeline.build_book(root)
    assert html == root / "_build" / "html" and (html / "notebooks" / "01_data.html").is_file()
    sources = {p.name for p in (html / "_sources" / "notebooks").iterdir()}
    assert "01_data.ipynb" in sources and not any(s.endswith(".py") for s in sources)
    assert not (html / "runs").exists()
