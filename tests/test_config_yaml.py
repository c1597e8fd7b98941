"""Bad config YAML files: a one-line ConfigError naming the problem, from the library
(``TrainConfig.from_yaml``) and from the command line (``python -m clm train --config F``, exit 2).

tests/test_config.py tries bad config *values* (as dicts); here each case is a YAML *file* as a
user writes it: a misspelt key (with the closest valid one), a wrong type, an unknown preset,
broken YAML syntax, a file that is not a mapping or not UTF-8. The count is in the test names
(book/running.md, "Bad input, tried").
"""

from __future__ import annotations

import pytest

from clm.cli import main
from clm.errors import ConfigError
from clm.train.config import TrainConfig

# (id, the file's bytes, fragments of the one error line)
CASES = [
    ("misspelt-key", "preset: tiny\nlerning_rate: 0.001\n", ["'lerning_rate'", "did you mean 'learning_rate'"]),
    ("misspelt-key-2", "preset: tiny\nmax_step: 3\n", ["'max_step'", "did you mean 'max_steps'"]),
    ("unknown-key", "preset: tiny\nzzz: 1\n", ["'zzz'", "valid:"]),
    (
        "misspelt-attribute-key",
        "preset: tiny\nattributes:\n  - name: m\n    low: {name: a, path: a}\n    hihg: {}\n",
        ["'hihg'", "'high'"],
    ),
    ("r-a-word", "preset: tiny\nr: eight\n", ["r", "eight"]),
    ("r-a-list", "preset: tiny\nr: [8]\n", ["r"]),
    ("r-a-float", "preset: tiny\nr: 2.5\n", ["r", "2.5"]),
    ("lr-a-word", "preset: tiny\nlearning_rate: fast\n", ["learning_rate", "fast"]),
    ("attributes-a-number", "preset: tiny\nattributes: 3\n", ["attributes"]),
    ("unknown-attribute", "preset: tiny\nattributes: [sentimen]\n", ["'sentimen'", "did you mean 'sentiment'"]),
    ("unknown-preset", "preset: papr\n", ["'papr'", "'paper'"]),
    ("preset-a-number", "preset: 3\n", ["preset", "3"]),
    ("syntax-unclosed-list", "preset: tiny\nr: [1,\n", ["is not valid YAML"]),
    ("syntax-bad-indent", "preset: tiny\n  r: 4\n lora_alpha: 8\n", ["is not valid YAML"]),
    ("syntax-tab", "preset: tiny\n\tr: 4\n", ["is not valid YAML"]),
    ("syntax-duplicate-colon", "preset: tiny: cpu\n", ["is not valid YAML"]),
    ("a-list", "- preset\n- tiny\n", ["mapping"]),
    ("a-string", "just some words\n", ["mapping"]),
    ("not-utf8", b"preset: tiny\nnote: \xff\xfe\n", ["UTF-8"]),
]


def _write(tmp_path, content) -> str:
    path = tmp_path / "run.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_19_bad_yaml_files_in_the_library(case, tmp_path):
    _, content, fragments = case
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_yaml(_write(tmp_path, content))
    msg = str(err.value)
    assert msg and "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_19_bad_yaml_files_on_the_command_line(case, tmp_path, capsys):
    _, content, fragments = case
    rc = main(["train", "--config", _write(tmp_path, content), "--print-config"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and out == "", err
    assert lines[0].startswith("python -m clm train: error: ")
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_a_good_file_still_loads(tmp_path):
    cfg = TrainConfig.from_yaml(_write(tmp_path, "preset: tiny\nr: 2\nlearning_rate: 0.001\n"))
    assert (cfg.r, cfg.learning_rate, cfg.preset) == (2, 0.001, "tiny")


def test_the_count_is_what_the_book_says():
    assert len(CASES) == 19 and len({c[0] for c in CASES}) == 19
