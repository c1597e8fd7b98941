"""TrainConfig: presets, YAML round trip, papermill-style overrides, one-line errors."""

from __future__ import annotations

import pytest

from clm.errors import ConfigError
from clm.train.config import PRESETS, AttributeSpec, TrainConfig


def test_paper_preset_is_the_papers_recipe():
    cfg = TrainConfig.from_preset("paper")
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.learning_rate) == (32, 16, 0.1, 5e-5)
    assert cfg.effective_batch == 64 and cfg.block_size == 128 and cfg.quantization == "nf4"
    assert cfg.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert cfg.epochs_for("formality") == 1 and cfg.epochs_for("sentiment") == 20
    assert [a.name for a in cfg.attributes] == ["sentiment", "politeness", "formality", "simplicity", "humor"]
    assert cfg.attribute("sentiment").low.path == "attributes/sentiment/negative.train.jsonl"


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_validate_and_say_why(name):
    cfg = TrainConfig.from_preset(name)
    assert cfg.preset == name and cfg.note
    assert TrainConfig.from_preset("tiny").model == "pico"


def test_cpu_preset_explains_how_it_differs_from_the_paper():
    cfg = TrainConfig.from_preset("cpu")
    assert cfg.quantization is None and cfg.learning_rate > PRESETS["paper"]["learning_rate"]
    for word in ("CPU", "learning rate", "alpha", "NF4"):
        assert word in cfg.note


def test_yaml_round_trip(tmp_path):
    cfg = TrainConfig.from_preset("cpu", attributes=["sentiment", "humor"], learning_rate=2e-4, seed=3)
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    again = TrainConfig.from_yaml(path)
    assert again == cfg and again.sha256() == cfg.sha256()


def test_yaml_preset_with_overrides_and_yaml_floats(tmp_path):
    path = tmp_path / "c.yaml"
    # PyYAML reads 5e-4 (no dot) as a string; the config coerces it.
    path.write_text(
        "preset: tiny\nlearning_rate: 5e-4\nattributes:\n  - name: mood\n    low: {name: sad, path: sad.txt}\n    high: {name: glad, dataset: user/glad, split: train, label_column: label, label_value: 1}\n"
    )
    cfg = TrainConfig.from_yaml(path)
    assert cfg.learning_rate == 5e-4 and cfg.model == "pico"
    a = cfg.attribute("mood")
    assert a.high.dataset == "user/glad" and a.high.describe() == "hub:user/glad[train] where label=1"


def test_none_overrides_keep_the_preset():
    # Notebook parameters left at None must not override.
    assert TrainConfig.from_preset("tiny", model=None, seed=None) == TrainConfig.from_preset("tiny")
    assert TrainConfig.from_preset("tiny").replace(r=8).r == 8


@pytest.mark.parametrize(
    "data, words",
    [
        ({"lerning_rate": 1e-3}, ["'lerning_rate'", "did you mean 'learning_rate'"]),
        ({"lora_aplha": 3}, ["'lora_aplha'", "'lora_alpha'"]),
        ({"zzz": 1}, ["'zzz'", "valid:"]),
        (
            {"attributes": [{"name": "m", "low": {"name": "a", "path": "a"}, "hihg": {}}]},
            ["attribute key 'hihg'", "'high'"],
        ),
        (
            {"attributes": [{"name": "m", "low": {"name": "a", "pth": "a"}, "high": {"name": "b", "path": "b"}}]},
            ["low pole key 'pth'", "'path'"],
        ),
        ({"r": 0}, ["r must be a positive integer", "0"]),
        ({"r": -4}, ["r must be a positive integer", "-4"]),
        ({"lora_dropout": 1.5}, ["lora_dropout"]),
        ({"quantization": "int8"}, ["quantization", "int8"]),
        ({"attributes": ["sentimen"]}, ["'sentimen'", "did you mean 'sentiment'"]),
        ({"attributes": ["sentiment", "sentiment"]}, ["listed twice"]),
        (
            {"attributes": [{"name": "m", "low": {"name": "a"}, "high": {"name": "b", "path": "b"}}]},
            ["exactly one of path or dataset"],
        ),
        (
            {"attributes": [{"name": "m", "low": {"name": "a", "path": "x"}, "high": {"name": "a", "path": "y"}}]},
            ["different names"],
        ),
        ({"target_modules": []}, ["target_modules"]),
        ({"learning_rate_by_attribute": {"humor": 0}}, ["learning_rate_by_attribute['humor']", "> 0", "0"]),
        ({"preset": "papr"}, ["'papr'", "'paper'"]),
    ],
)
def test_bad_config_is_one_line_naming_the_problem(data, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"preset": "tiny", **data})
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_bad_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("r: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")


def test_registry_attribute_and_paths(tmp_path):
    a = AttributeSpec.registry("formality")
    assert (a.low.name, a.high.name) == ("informal", "formal")
    cfg = TrainConfig.from_preset("tiny", data_dir=str(tmp_path))
    assert cfg.resolve_path(a.high) == tmp_path / "attributes/formality/formal.train.jsonl"
    absolute = a.high.model_copy(update={"path": str(tmp_path / "x.txt")})
    assert cfg.resolve_path(absolute) == tmp_path / "x.txt"


def test_per_attribute_learning_rate_shapes_only_its_attribute():
    base = TrainConfig.from_preset("cpu", learning_rate_by_attribute={})
    cfg = base.replace(learning_rate_by_attribute={"humor": 7e-4})
    assert cfg.learning_rate_for("humor") == 7e-4 and cfg.learning_rate_for("sentiment") == cfg.learning_rate
    for pole in ("low", "high"):
        assert cfg.pole_sha256("sentiment", pole) == base.pole_sha256("sentiment", pole)
        assert cfg.pole_sha256("humor", pole) == base.replace(learning_rate=7e-4).pole_sha256("humor", pole)
        assert cfg.pole_sha256("humor", pole) != base.pole_sha256("humor", pole)


def test_the_cpu_preset_recreates_every_shipped_endpoint():
    """The shipped SmolLM2-135M endpoints are what `python -m clm train --preset cpu` trains: each pole's
    recorded pole_sha256 (config with its attribute's epochs and lr, data source) is the preset's."""
    import json

    from clm.book.params import ASSETS

    shipped = ASSETS / "endpoints" / "smollm2-135m"
    manifest = json.loads((shipped / "manifest.json").read_text())
    cpu = TrainConfig.from_preset("cpu")
    assert list(manifest["attributes"]) == [a.name for a in cpu.attributes]
    for attr in manifest["attributes"]:
        for pole in ("low", "high"):
            rec = json.loads((shipped / attr / pole / "clm_adapter.json").read_text())
            assert rec["pole_sha256"] == cpu.pole_sha256(attr, pole), (attr, pole)
            assert rec["config"]["learning_rate"] == cpu.learning_rate_for(attr)
