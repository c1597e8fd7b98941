"""Endpoints directories: layout, validation against the base, and bad input that writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import make_adapter

import clm
from clm.core.models import build_pico, fingerprint_checkpoint


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def fresh(pico_dir, tmp_path):
    return clm.Endpoints.create(tmp_path / "ends", base=str(pico_dir))


@pytest.fixture(scope="module")
def other_bases(tmp_path_factory):
    """A pico with another hidden size, one with a third layer, and one with other weights."""
    root = tmp_path_factory.mktemp("other")
    build_pico(root / "wide", hidden_size=64, intermediate_size=128)
    build_pico(root / "deep", num_hidden_layers=3)
    build_pico(root / "reseeded", seed=1)
    return root


def test_manifest_and_layout(endpoints_dir, pico_dir):
    ends = clm.Endpoints.load(endpoints_dir)
    assert ends.attributes == ["sentiment", "formality"]
    assert ends.poles("sentiment") == ("negative", "positive")
    assert ends.base_fingerprint == fingerprint_checkpoint(pico_dir)
    for attr in ends.attributes:
        for pole in ("low", "high"):
            d = ends.adapter_dir(attr, pole)
            assert (d / "adapter_config.json").is_file() and (d / "adapter_model.safetensors").is_file()
    manifest = json.loads((endpoints_dir / "manifest.json").read_text())
    assert manifest["format"] == "clm-endpoints/1" and manifest["base"]["fingerprint"] == ends.base_fingerprint


def test_fingerprint_ignores_sharding(pico_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(pico_dir)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    assert fingerprint_checkpoint(tmp_path / "sharded") == fingerprint_checkpoint(pico_dir)


def test_create_over_existing_path(endpoints_dir, tmp_path):
    before = _snapshot(endpoints_dir)
    with pytest.raises(clm.EndpointsError, match="already exists"):
        clm.Endpoints.create(endpoints_dir, base="pico")
    assert _snapshot(endpoints_dir) == before
    (tmp_path / "empty").mkdir()
    with pytest.raises(clm.EndpointsError, match="already exists"):
        clm.Endpoints.create(tmp_path / "empty", base="pico")


def _expect_add_error(ends, match, **kwargs):
    before = _snapshot(ends.path)
    with pytest.raises(clm.EndpointsError, match=match) as err:
        ends.add("humor", **kwargs)
    assert "\n" not in str(err.value)
    assert _snapshot(ends.path) == before  # nothing written
    assert "humor" not in clm.Endpoints.load(ends.path)


def test_missing_files(fresh, adapters, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(adapters["sentiment/high"], broken)
    (broken / "adapter_model.safetensors").unlink()
    _expect_add_error(fresh, "missing adapter_model.safetensors", low=adapters["sentiment/low"], high=broken)
    _expect_add_error(fresh, "does not exist", low=tmp_path / "nowhere", high=adapters["sentiment/high"])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad_header"])
def test_corrupt_safetensors(fresh, adapters, tmp_path, damage):
    broken = tmp_path / damage
    shutil.copytree(adapters["sentiment/high"], broken)
    f = broken / "adapter_model.safetensors"
    data = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(data[: len(data) - 100])
    elif damage == "garbage":
        f.write_bytes(b"\x00\x01" * 300)
    else:
        f.write_bytes((40).to_bytes(8, "little") + b"{not json at all, just noise......}    " + data[48:])
    _expect_add_error(fresh, "safetensors|corrupt", low=adapters["sentiment/low"], high=broken)


def test_corrupt_file_inside_endpoints_is_caught_on_load(endpoints_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(endpoints_dir, copy)
    f = copy / "formality" / "high" / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(clm.EndpointsError, match="corrupt or truncated"):
        clm.Endpoints.load(copy)
    (copy / "formality" / "high" / "adapter_model.safetensors").unlink()
    with pytest.raises(clm.EndpointsError, match="formality/high is missing adapter_model.safetensors"):
        clm.Endpoints.load(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(clm.EndpointsError, match="missing manifest.json"):
        clm.Endpoints.load(copy)


def test_adapter_for_another_base_shape(fresh, adapters, other_bases, tmp_path):
    wide = make_adapter(other_bases / "wide", tmp_path / "wide", seed=5)
    _expect_add_error(fresh, "k_proj' maps 64->32 but the base's maps 32->16", low=adapters["sentiment/low"], high=wide)


def test_adapter_for_another_base_modules(fresh, adapters, other_bases, tmp_path):
    deep = make_adapter(other_bases / "deep", tmp_path / "deep", seed=6)
    _expect_add_error(fresh, "model.layers.2.self_attn.*is not a Linear module of the base", low=deep, high=adapters["sentiment/high"])


def test_adapter_with_other_fingerprint(fresh, adapters, tmp_path):
    marked = tmp_path / "marked"
    shutil.copytree(adapters["sentiment/high"], marked)
    (marked / "clm_adapter.json").write_text(json.dumps({"base_fingerprint": "0" * 64}))
    _expect_add_error(fresh, "trained on base fingerprint 0000000000000000", low=adapters["sentiment/low"], high=marked)


def test_model_with_other_fingerprint(endpoints_dir, other_bases):
    model, tok = clm.load_base(str(other_bases / "reseeded"))
    with pytest.raises(clm.EndpointsError, match="does not match the endpoints' base"):
        clm.InterpolatedModel(model, tok, clm.Endpoints.load(endpoints_dir))
    assert not any(type(m).__name__ == "InterpolatedLinear" for m in model.modules())


def test_unsupported_adapters(fresh, pico_dir, adapters, tmp_path):
    dora = make_adapter(pico_dir, tmp_path / "dora", seed=7, use_dora=True)
    _expect_add_error(fresh, "use_dora=true is not supported", low=adapters["sentiment/low"], high=dora)


def test_add_replace_and_names(fresh, adapters):
    fresh.add("sentiment", low=adapters["sentiment/low"], high=adapters["sentiment/high"], low_name="neg", high_name="pos")
    with pytest.raises(clm.EndpointsError, match="already exists"):
        fresh.add("sentiment", low=adapters["sentiment/low"], high=adapters["sentiment/high"])
    fresh.add("sentiment", low=adapters["sentiment/high"], high=adapters["sentiment/low"], replace=True)
    assert clm.Endpoints.load(fresh.path).poles("sentiment") == ("low", "high")
    with pytest.raises(clm.EndpointsError, match="different names"):
        fresh.add("x", low=adapters["sentiment/low"], high=adapters["sentiment/high"], low_name="a", high_name="a")
    with pytest.raises(clm.EndpointsError, match="unknown attribute 'humor'"):
        fresh.adapter_dir("humor", "low")
    assert not [p for p in fresh.path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_endpoints_work_from_plain_peft_adapters(endpoints_dir, pico_dir):
    """What an outside user does: PEFT adapters -> Endpoints -> generate."""
    model, tok = clm.load_base(str(pico_dir))
    im = clm.InterpolatedModel(model, tok, clm.Endpoints.load(endpoints_dir))
    outs = im.generate(["Hi", "Yo"], weights=[clm.Weights({"sentiment": 0.8, "formality": 0.2}), "formality=1"], max_new_tokens=4, do_sample=False)
    assert [len(o.token_ids) for o in outs] == [4, 4]
