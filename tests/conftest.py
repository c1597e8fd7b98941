"""Shared fixtures: a pico model built from a config, and non-zero PEFT adapters on it.

Everything is offline: the pico model is a 2-layer Llama (hidden 32) with a byte-level
tokenizer, built with a fixed seed into a per-session cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def clm_cache(tmp_path_factory):
    """Isolate clm's cache per test session (the embedded default keeps the user's cache)."""
    old = os.environ.get("CLM_CACHE_DIR")
    path = tmp_path_factory.mktemp("clm-cache")
    os.environ["CLM_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CLM_CACHE_DIR", None)
    else:
        os.environ["CLM_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def pico_dir(clm_cache) -> Path:
    from clm.core.models import resolve_base

    return resolve_base("pico")[1]


def make_adapter(base_dir: Path, out: Path, seed: int, r: int = 4, alpha: int = 8, targets=("q_proj", "k_proj", "v_proj", "o_proj"), **extra) -> Path:
    """A PEFT LoRA adapter with non-zero A and B (init_lora_weights=False), saved to ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False, lora_dropout=0.0, **extra)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # make B large enough that the adapter moves logits visibly
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    return out


def run_chapter(tmp_path: Path, stem: str, **parameters):
    """Execute ``notebooks/<stem>.py`` with papermill at preset tiny into ``tmp_path``; return the
    executed notebook. Unlike ``clm.book.pipeline.execute`` it keeps every output (no quieting, no
    stripping), so tests can assert on what a chapter prints."""
    import jupytext
    import nbformat
    import papermill as pm

    from clm.book.params import REPO
    from clm.book.pipeline import KERNELSPEC

    nb = jupytext.read(REPO / "notebooks" / f"{stem}.py")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nbformat.write(nb, tmp_path / f"{stem}.ipynb")
    pm.execute_notebook(
        str(tmp_path / f"{stem}.ipynb"),
        str(tmp_path / f"{stem}.out.ipynb"),
        parameters=dict(preset="tiny", **parameters),
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
        kernel_name=KERNELSPEC["name"],
    )
    return nbformat.read(tmp_path / f"{stem}.out.ipynb", 4)


@pytest.fixture(scope="session")
def adapters(pico_dir, tmp_path_factory) -> dict[str, Path]:
    """Four adapters with mixed ranks and targets: two attributes x two poles."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        "sentiment/low": make_adapter(pico_dir, root / "s_low", seed=1, r=4),
        "sentiment/high": make_adapter(pico_dir, root / "s_high", seed=2, r=2, alpha=4),
        "formality/low": make_adapter(pico_dir, root / "f_low", seed=3, r=3, alpha=5, targets=("q_proj", "v_proj")),
        "formality/high": make_adapter(pico_dir, root / "f_high", seed=4, r=4, use_rslora=True),
    }


@pytest.fixture(scope="session")
def endpoints_dir(pico_dir, adapters, tmp_path_factory) -> Path:
    import clm

    path = tmp_path_factory.mktemp("ends") / "pico-ends"
    ends = clm.Endpoints.create(path, base=str(pico_dir))
    ends.add("sentiment", low=adapters["sentiment/low"], high=adapters["sentiment/high"], low_name="negative", high_name="positive")
    ends.add("formality", low=adapters["formality/low"], high=adapters["formality/high"], low_name="informal", high_name="formal")
    return path


@pytest.fixture()
def pico(pico_dir):
    import clm

    return clm.load_base(str(pico_dir))


@pytest.fixture()
def im(pico, endpoints_dir):
    import clm

    model, tok = pico
    return clm.InterpolatedModel(model, tok, clm.Endpoints.load(endpoints_dir))


@pytest.fixture(scope="session")
def book_run(clm_cache, tmp_path_factory):
    """The whole pipeline at preset tiny, once per session: every notebook of _toc.yml that
    exists is executed into a staging dir (never into notebooks/), then the book is built there.

    Returns a namespace: cfg (clm.book.pipeline.Config), results, log (lines), html (the HTML dir),
    book (the staged book sources).
    """
    from types import SimpleNamespace

    from clm.book import pipeline

    root = tmp_path_factory.mktemp("book-run")
    cfg = pipeline.Config(preset="tiny", run_dir=root / "run", out_dir=root / "executed", allow_missing=True)
    log: list[str] = []
    results = pipeline.run_notebooks(cfg, log=log.append)
    book = pipeline.stage_book(cfg, root / "book")
    html = pipeline.build_book(book)
    return SimpleNamespace(cfg=cfg, results=results, log=log, html=html, book=book)
