"""Chapters 4-6 at preset tiny: they run in the session's pipeline run (``book_run``, after
chapters 2 and 3 put pico endpoints and scorers in the run dir) and record what chapter 10 reads.

The numbers are noise at tiny; the tests check that what is recorded is complete, finite and
consistent with the sweep tables written beside it. The simplex of chapter 5 needs 3
attributes, more than the tiny endpoints have, so one test reruns chapter 5 on a run dir with a
third (random) pico attribute added.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from conftest import run_chapter

from clm.book.params import REPO, find_endpoints, setup
from clm.core.attributes import NAMES
from clm.core.weights import grid
from clm.errors import ConfigError

pytestmark = pytest.mark.notebooks

TINY_ALPHAS = grid(-1.0, 2.0, 0.5)
TINY_ATTRS = ["sentiment", "formality"]  # the tiny training preset's
N_PROMPTS = 3  # the tiny preset's prompts x samples: 3 x 1


def metrics(book_run, notebook: str) -> dict:
    path = book_run.cfg.run_dir / "metrics" / f"{notebook}.json"
    assert path.is_file(), f"{notebook} recorded nothing"
    return json.loads(path.read_text())


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_04_records_the_sweeps_and_what_08_reads(book_run):
    import pandas as pd

    m = metrics(book_run, "04_single_attribute")
    tables = book_run.cfg.run_dir / "tables"
    assert m["attributes"] == TINY_ATTRS and m["alphas"] == TINY_ALPHAS
    assert m["n_generations"] == (len(TINY_ATTRS) * len(TINY_ALPHAS) + 1) * N_PROMPTS
    assert set(m["base_score"]) == set(NAMES) and all(0 <= v <= 1 for v in m["base_score"].values())
    base = pd.read_parquet(tables / "base.parquet")
    assert len(base) == N_PROMPTS and (base.setting == "base").all()
    ppl_base = pd.read_parquet(tables / "base_perplexity.parquet").wikitext_ppl.item()
    assert m["perplexity"]["base"] == ppl_base and ppl_base > 1
    for a in TINY_ATTRS:
        r = m["response"][a]
        assert [float(k) for k in r["mean_by_alpha"]] == TINY_ALPHAS
        for k in ("rho", "range", "r2", "slope", "range_lo", "range_hi"):
            assert finite(r[k]), (a, k)
        assert -1 <= r["rho"] <= 1 and r["range_lo"] <= r["range"] <= r["range_hi"]
        # the recorded means are the table's, exactly
        t = pd.read_parquet(tables / f"single_{a}.parquet")
        assert len(t) == len(TINY_ALPHAS) * N_PROMPTS and set(t.target) == {a}
        means = t.groupby(f"alpha_{a}")[f"score_{a}"].mean()
        assert {f"{x:g}": v for x, v in means.items()} == pytest.approx(r["mean_by_alpha"], abs=1e-12)
        assert r["range"] == pytest.approx(means[1.0] - means[0.0], abs=1e-12)
        # perplexity per α: one measurement per setting, the ratio over [0, 1] from it
        p = pd.read_parquet(tables / f"single_{a}_perplexity.parquet").set_index(f"alpha_{a}").wikitext_ppl
        assert m["perplexity"]["by_alpha"][a] == {f"{x:g}": v for x, v in p.items()}
        assert m["perplexity"]["max_ratio_01"][a] == pytest.approx(p.loc[0.0:1.0].max() / ppl_base)
        v = m["verdict"][a]
        assert v["passes"] == (v["monotone"] and v["strong"] and v["fluent"])
        assert v["strong"] == (r["range"] >= 0.25) and v["fluent"] == (m["perplexity"]["max_ratio_01"][a] <= 1.3)
    assert m["n_pass"] == sum(m["verdict"][a]["passes"] for a in TINY_ATTRS) and m["acceptance_met"] is False


def test_05_records_the_lambda_design(book_run):
    m = metrics(book_run, "05_multi_attribute")
    assert m["targets"] == TINY_ATTRS and m["lams"] == [0.8, 0.4, 0.2]
    assert m["n_generations"] == len(TINY_ATTRS) * 3 * 6 * N_PROMPTS
    for t in TINY_ATTRS:
        assert set(m["multi"][t]) == {"0.8", "0.4", "0.2"}
        for lam, r in m["multi"][t].items():
            assert list(r["mean_by_alpha"]) == ["0", "0.2", "0.4", "0.6", "0.8", "1"], (t, lam)
            assert all(finite(v) for v in r["mean_by_alpha"].values()) and finite(r["range"])
            assert r["range"] == pytest.approx(r["mean_by_alpha"]["1"] - r["mean_by_alpha"]["0"])
    # two attributes: no simplex at tiny (see the next test)
    assert m["simplex_attributes"] == [] and m["simplex_means"] == []


def test_06_entanglement_and_geometry(book_run):
    m = metrics(book_run, "06_entanglement_and_geometry")
    e = m["entanglement"]
    assert e["attributes"] == TINY_ATTRS and e["scores"] == list(NAMES)
    full, square = np.array(e["matrix_all_scores"]), np.array(e["matrix"])
    assert full.shape == (2, 5) and square.shape == (2, 2) and np.isfinite(full).all()
    assert np.allclose(np.diag(square), 1.0)  # normalised by the diagonal
    cols = [list(NAMES).index(a) for a in TINY_ATTRS]
    assert np.array_equal(square, full[:, cols])  # the square matrix chapter 10 reads is the full one's
    raw = np.array(e["raw_slopes"])
    assert np.allclose(full, raw / np.diag(raw[:, cols])[:, None])
    pairs = m["top_pairs"]
    assert len(pairs) == 5 and all(p["alpha_of"] != p["score_of"] for p in pairs)
    effects = [abs(p["effect"]) for p in pairs]
    assert effects == sorted(effects, reverse=True)
    off = sorted((abs(full[i, j]) for i in range(2) for j in range(5) if j != cols[i]), reverse=True)
    assert effects == pytest.approx(off[:5])  # the strongest off-diagonal entries, from the data
    g = m["geometry"]
    cos, dist = np.array(g["cosine"]), np.array(g["distance"])
    assert g["labels"] == [f"{a}/{p}" for a in TINY_ATTRS for p in ("low", "high")]
    assert np.allclose(np.diag(cos), 1.0) and np.allclose(cos, cos.T) and (np.abs(cos) <= 1 + 1e-9).all()
    assert np.allclose(np.diag(dist), 0.0, atol=1e-6) and (dist[~np.eye(4, dtype=bool)] > 0).all()
    norms = np.array(list(g["norms"].values()))  # ‖a − b‖² = ‖a‖² + ‖b‖² − 2‖a‖‖b‖cos
    assert np.allclose(dist**2, norms[:, None] ** 2 + norms[None] ** 2 - 2 * np.outer(norms, norms) * cos, rtol=1e-6)


def test_08_reads_chapters_4_and_6(book_run):
    summary = metrics(book_run, "10_conclusions")["summary"]
    assert summary["Predictable, monotone change with α"].endswith("of 2 measured attributes")
    assert summary["Little entanglement except for some pairs"].startswith("mean |off-diagonal|")
    # the λ row, recomputed from chapter 5's record: targets whose range grows with λ
    multi = metrics(book_run, "05_multi_attribute")["multi"]
    ranges = [[by_lam[lam]["range"] for lam in sorted(by_lam, key=float)] for by_lam in multi.values()]
    grows = sum(all(a < b for a, b in zip(r, r[1:])) for r in ranges)
    assert summary["λ sets how far each attribute moves"].startswith(
        f"range grows in {grows} of {len(multi)} targets; "
    )


def test_05_simplex_on_three_attributes(book_run, pico_dir, tmp_path):
    """Chapter 5 with a third attribute: the simplex runs and its ternary plots are drawn."""
    from conftest import make_adapter

    import clm

    run = tmp_path / "run"
    shutil.copytree(book_run.cfg.run_dir / "endpoints", run / "endpoints")
    shutil.copytree(book_run.cfg.run_dir / "scorers", run / "scorers")
    ends = clm.Endpoints.load(run / "endpoints")
    ends.add(
        "humor",
        low=make_adapter(pico_dir, tmp_path / "h_low", seed=11, r=2),
        high=make_adapter(pico_dir, tmp_path / "h_high", seed=12, r=2),
    )
    out = run_chapter(
        tmp_path, "05_multi_attribute", run_dir=str(run), targets=["humor"], lams=[0.5], simplex_step=0.5, n_prompts=2
    )
    m = json.loads((run / "metrics" / "05_multi_attribute.json").read_text())
    assert m["targets"] == ["humor"] and m["simplex_attributes"] == ["sentiment", "formality", "humor"]
    assert len(m["simplex_means"]) == 6  # step 0.5 on 3 attributes: 3 corners + 3 edge midpoints
    corners = [p for p in m["simplex_means"] if max(p[f"lam_{a}"] for a in m["simplex_attributes"]) == 1.0]
    assert len(corners) == 3
    for a in m["simplex_attributes"]:
        at_own = next(p for p in corners if p[f"lam_{a}"] == 1.0)
        assert m["simplex_own_corner"][a] == pytest.approx(at_own[f"score_{a}"])
    html = [o.get("data", {}).get("text/html", "") for c in out.cells if c.cell_type == "code" for o in c.outputs]
    images = sum('class="clm-figure"' in h for h in html)  # clm.book.display.figure: HTML with a PNG inside
    assert images == 3  # response curves by λ, one spider plot, the ternary panels


def test_without_endpoints_a_chapter_says_which_to_run_first(tmp_path):
    # every parameter check of chapters 4-6 (one line each): tests/test_book_params.py
    P = setup("tiny", run_dir=tmp_path / "run", need_data=False)
    with pytest.raises(ConfigError, match="run 02_finetune_endpoints first"):
        find_endpoints(P)


def test_notebooks_are_in_the_toc():
    from clm.book import pipeline

    names = pipeline.toc_notebooks(REPO)
    for n in ("04_single_attribute", "05_multi_attribute", "06_entanglement_and_geometry"):
        assert n in names and (REPO / "notebooks" / f"{n}.py").is_file()


def test_table_path_copies_shipped_tables_only_for_the_shipped_endpoints(tmp_path, endpoints_dir, monkeypatch):
    import clm
    import clm.book.params

    assets = tmp_path / "assets"
    shutil.copytree(endpoints_dir, assets / "endpoints" / "pico")
    (assets / "tables" / "pico").mkdir(parents=True)
    (assets / "tables" / "pico" / "single_sentiment.parquet").write_bytes(b"table")
    (assets / "tables" / "pico" / "single_sentiment_perplexity.parquet").write_bytes(b"ppl")
    monkeypatch.setattr(clm.book.params, "ASSETS", assets)
    P = setup("tiny", run_dir=tmp_path / "run", need_data=False)
    tables = P.run_dir / "tables"
    # other endpoints (here: one attribute fewer): nothing is copied
    other = clm.Endpoints.create(tmp_path / "other", base="pico")
    assert clm.book.params.table_path(P, "single_sentiment.parquet", other) == tables / "single_sentiment.parquet"
    assert not tables.exists()
    # no endpoints given, or no shipped table: nothing either
    assert not clm.book.params.table_path(P, "single_sentiment.parquet").exists()
    assert not clm.book.params.table_path(P, "base.parquet", clm.Endpoints.load(endpoints_dir)).exists()
    # the shipped endpoints (a copy elsewhere is the same endpoints): the table and its perplexity
    out = clm.book.params.table_path(P, "single_sentiment.parquet", clm.Endpoints.load(endpoints_dir))
    assert out.read_bytes() == b"table" and (tables / "single_sentiment_perplexity.parquet").read_bytes() == b"ppl"
    assert sorted(p.name for p in tables.iterdir()) == [
        "single_sentiment.parquet",
        "single_sentiment_perplexity.parquet",
    ]
    # a table that exists is never replaced
    out.write_bytes(b"mine")
    clm.book.params.table_path(P, "single_sentiment.parquet", clm.Endpoints.load(endpoints_dir))
    assert out.read_bytes() == b"mine"


def test_08_sets_a_revised_attribute_beside_the_endpoints_it_replaced(book_run, tmp_path):
    """A revision recorded by chapter 2 (test numbers of the replaced endpoints, dev numbers of
    both) is shown by chapter 10 next to this run's chapter 4 numbers, which it reads unchanged."""
    run = tmp_path / "run"
    shutil.copytree(book_run.cfg.run_dir / "metrics", run / "metrics")
    path = run / "metrics" / "02_finetune_endpoints.json"
    rec = json.loads(path.read_text())
    before = {"ppl_ratio_by_alpha": {"-1": 9.0, "0": 1.5, "0.5": 1.1, "1": 1.2}, "range": 0.1, "rho": 0.5}
    dev = {"old": {"range": 0.3, "ppl_ratio": 1.4}, "new": {"range": 0.2, "ppl_ratio": 1.1}}
    rec["revisions"] = [
        {"attribute": "sentiment", "replaced": "old", "choice": "new", "test_before": before, "dev": dev}
    ]
    path.write_text(json.dumps(rec))
    out = run_chapter(tmp_path, "10_conclusions", run_dir=str(run))
    (got,) = json.loads((run / "metrics" / "10_conclusions.json").read_text())["revisions"]
    single = metrics(book_run, "04_single_attribute")
    means = single["response"]["sentiment"]["mean_by_alpha"]
    ppl = single["perplexity"]
    ratio = max(v / ppl["base"] for a, v in ppl["by_alpha"]["sentiment"].items() if 0 <= float(a) <= 1)
    assert got["test_ratio"] == [1.5, pytest.approx(ratio, rel=1e-12)]  # α = -1 is outside [0, 1]
    assert got["test_range"] == [0.1, pytest.approx(means["1"] - means["0"], rel=1e-12)]
    assert got["dev_range"] == [0.3, 0.2]
    html = "".join(
        o.get("data", {}).get("text/html", "") for c in out.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "old (replaced)" in html and "new (chosen)" in html
