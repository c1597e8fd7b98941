"""Damaged or edited copies of the shipped assets: each is a one-line ClmError naming the file.

Copies of ``clm/assets/endpoints/smollm2-135m``, ``clm/assets/scorers`` and
``clm/assets/tables/smollm2-135m/*.parquet`` go to ``tmp_path`` (the originals are never
touched), get truncated or edited, and are opened with the public loaders:
:meth:`clm.core.endpoints.Endpoints.load` (and ``.factors`` for what only reading an adapter
finds), :func:`clm.eval.scoring.load_scorers` (with the pico encoder: every damage below fails
before an encoder loads) and :func:`clm.experiments.tables.read_table`, with the columns the
sweep's reuse path requires; the sweep itself, rerun on an edited table of its own, says the same.
No embedded model is loaded. The case counts are in the test names and asserted
(book/running.md, "Bad input, tried").
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from clm.core.endpoints import Endpoints
from clm.errors import ClmError
from clm.eval.scoring import load_scorers
from clm.experiments.sweep import GEN_COLUMNS
from clm.experiments.tables import read_table, write_table
from clm.paths import ASSETS, REPO

ENDS = ASSETS / "endpoints" / "smollm2-135m"
SCORERS = ASSETS / "scorers"
TABLES = ASSETS / "tables" / "smollm2-135m"
ADAPTER = Path("sentiment") / "low"
GEN_REQUIRED = GEN_COLUMNS[:-1]  # what the sweep's reuse path reads (token_ids: absent from older tables)
PPL_REQUIRED = ("weights", "wikitext_ppl", "context")


# ---------------------------------------------------------------------- damage
def truncate(n: int | Callable[[int], int]) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        data = p.read_bytes()
        p.write_bytes(data[: n(len(data)) if callable(n) else n])

    return damage


def write(content: bytes | str) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(content.encode() if isinstance(content, str) else content)


def edit_json(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(p: Path) -> None:
        data = json.loads(p.read_text())
        fn(data)
        p.write_text(json.dumps(data))

    return damage


def edit_header(fn: Callable[[dict], object]) -> Callable[[Path], None]:
    """Rewrite a safetensors header as valid JSON (``fn`` edits it in place or returns a new one)."""

    def damage(p: Path) -> None:
        data = p.read_bytes()
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
        new = fn(header)
        raw = json.dumps(header if new is None else new).encode()
        p.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])

    return damage


def _first_tensor(header: dict) -> dict:
    return header[next(k for k in header if k != "__metadata__")]


def _nan_tail(p: Path) -> None:  # the last float32 values become NaN: the header still holds
    data = p.read_bytes()
    p.write_bytes(data[:-16] + b"\x00\x00\xc0\x7f" * 4)


def _drop_bias(p: Path) -> None:  # a head missing a tensor (a valid safetensors file)
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(p))
    tensors.pop("layers.0.bias")
    save_file(tensors, str(p))


# ---------------------------------------------------------------------- endpoints
# fmt: off
MANIFEST, WEIGHTS, CONFIG = "manifest.json", str(ADAPTER / "adapter_model.safetensors"), str(ADAPTER / "adapter_config.json")
# (id, file inside the endpoints copy, damage, read the adapter's tensors too?, what the message names)
ENDPOINT_CASES = [
    ("manifest-truncated", MANIFEST, truncate(lambda n: n // 2), False, MANIFEST),
    ("manifest-empty", MANIFEST, truncate(0), False, MANIFEST),
    ("manifest-not-utf8", MANIFEST, write(b"\xff\xfe{}"), False, MANIFEST),
    ("manifest-a-list", MANIFEST, write("[]"), False, MANIFEST),
    ("manifest-no-format", MANIFEST, edit_json(lambda m: m.pop("format")), False, MANIFEST),
    ("manifest-format-v2", MANIFEST, edit_json(lambda m: m.update(format="clm-endpoints/2")), False, MANIFEST),
    ("manifest-format-number", MANIFEST, edit_json(lambda m: m.update(format=1)), False, MANIFEST),
    ("manifest-no-base", MANIFEST, edit_json(lambda m: m.pop("base")), False, MANIFEST),
    ("manifest-base-a-string", MANIFEST, edit_json(lambda m: m.update(base="smollm2-135m")), False, MANIFEST),
    ("manifest-no-fingerprint", MANIFEST, edit_json(lambda m: m["base"].pop("fingerprint")), False, MANIFEST),
    ("manifest-id-a-number", MANIFEST, edit_json(lambda m: m["base"].update(id=135)), False, MANIFEST),
    ("manifest-no-attributes", MANIFEST, edit_json(lambda m: m.pop("attributes")), False, MANIFEST),
    ("manifest-pole-missing", MANIFEST, edit_json(lambda m: m["attributes"]["humor"].pop("high")), False, MANIFEST),
    ("manifest-modules-a-list", MANIFEST, edit_json(lambda m: m.update(base_modules=[1, 2])), False, MANIFEST),
    ("manifest-unknown-attribute-dir", MANIFEST, edit_json(lambda m: m["attributes"].update(tone={"low": "a", "high": "b"})), False, "tone/low"),
    ("weights-truncated-half", WEIGHTS, truncate(lambda n: n // 2), False, WEIGHTS),
    ("weights-truncated-4-bytes", WEIGHTS, truncate(4), False, WEIGHTS),
    ("weights-last-byte-cut", WEIGHTS, truncate(lambda n: n - 1), False, WEIGHTS),
    ("weights-empty", WEIGHTS, truncate(0), False, WEIGHTS),
    ("weights-header-garbage", WEIGHTS, lambda p: p.write_bytes(p.read_bytes()[:8] + b"\x00garbage" + p.read_bytes()[16:]), False, WEIGHTS),
    ("weights-header-length-huge", WEIGHTS, lambda p: p.write_bytes(b"\xff" * 8 + p.read_bytes()[8:]), False, WEIGHTS),
    ("weights-header-a-list", WEIGHTS, edit_header(lambda h: [1, 2, 3]), False, WEIGHTS),
    ("weights-header-shape-edited", WEIGHTS, edit_header(lambda h: _first_tensor(h).update(shape=[3, 3])), False, WEIGHTS),
    ("weights-header-offsets-edited", WEIGHTS, edit_header(lambda h: _first_tensor(h).update(data_offsets=[0])), False, WEIGHTS),
    ("weights-header-dtype-edited", WEIGHTS, edit_header(lambda h: _first_tensor(h).update(dtype="F99")), True, WEIGHTS),
    ("weights-deleted", WEIGHTS, lambda p: p.unlink(), False, "adapter_model.safetensors"),
    ("weights-values-nan", WEIGHTS, _nan_tail, True, str(ADAPTER)),
    ("config-truncated", CONFIG, truncate(lambda n: n // 2), True, CONFIG),
    ("config-not-lora", CONFIG, edit_json(lambda c: c.update(peft_type="IA3")), True, CONFIG),
    ("config-a-list", CONFIG, write("[1]"), True, CONFIG),
    ("config-dora", CONFIG, edit_json(lambda c: c.update(use_dora=True)), True, str(ADAPTER)),
    ("config-deleted", CONFIG, lambda p: p.unlink(), False, "adapter_config.json"),
]
# fmt: on


def _one_line_naming(err: pytest.ExceptionInfo, name: str) -> None:
    msg = str(err.value)
    assert isinstance(err.value, ClmError), f"{type(err.value).__name__}: {msg}"
    assert msg and "\n" not in msg, msg
    assert name in msg, f"{name!r} not named in {msg!r}"


@pytest.fixture(scope="module")
def shipped_ends(tmp_path_factory) -> Path:
    """One pristine copy of the shipped endpoints; each case copies it again (the originals stay)."""
    return Path(shutil.copytree(ENDS, tmp_path_factory.mktemp("shipped") / "smollm2-135m"))


def test_the_pristine_copies_load(shipped_ends, tmp_path):
    """Without damage the copies load: every case below fails by its damage alone."""
    ends = Endpoints.load(shipped_ends)
    assert ends.base_id == "smollm2-135m" and "sentiment" in ends and ends.factors("sentiment", "low")
    assert set(load_scorers(["sentiment"], path=shutil.copytree(SCORERS, tmp_path / "s"), encoder="pico")) == {
        "sentiment"
    }
    for p in sorted(TABLES.glob("*.parquet")):
        read_table(p, PPL_REQUIRED if p.stem.endswith("_perplexity") else GEN_REQUIRED)


@pytest.mark.parametrize("case", ENDPOINT_CASES, ids=[c[0] for c in ENDPOINT_CASES])
def test_damaged_endpoints_32_cases(case, shipped_ends, tmp_path):
    _, rel, damage, read_tensors, names = case
    ends = Path(shutil.copytree(shipped_ends, tmp_path / "ends"))
    damage(ends / rel)
    with pytest.raises(ClmError) as err:
        loaded = Endpoints.load(ends)
        if read_tensors:
            loaded.factors(*ADAPTER.parts)
    _one_line_naming(err, names)


# ---------------------------------------------------------------------- scorer heads
HEAD_JSON, HEAD = "sentiment.json", "sentiment.safetensors"
SCORER_CASES = [
    ("json-truncated", HEAD_JSON, truncate(lambda n: n // 2)),
    ("json-empty", HEAD_JSON, truncate(0)),
    ("json-not-utf8", HEAD_JSON, write(b"\xff\xfe{}")),
    ("json-a-list", HEAD_JSON, write("[1]")),
    ("json-no-low", HEAD_JSON, edit_json(lambda c: c.pop("low"))),
    ("json-no-high", HEAD_JSON, edit_json(lambda c: c.pop("high"))),
    ("json-no-encoder", HEAD_JSON, edit_json(lambda c: c.pop("encoder"))),
    ("json-encoder-a-number", HEAD_JSON, edit_json(lambda c: c.update(encoder=3))),
    ("head-truncated-half", HEAD, truncate(lambda n: n // 2)),
    ("head-last-byte-cut", HEAD, truncate(lambda n: n - 1)),
    ("head-empty", HEAD, truncate(0)),
    ("head-header-garbage", HEAD, lambda p: p.write_bytes(p.read_bytes()[:8] + b"\x00garbage" + p.read_bytes()[16:])),
    ("head-header-shape-edited", HEAD, edit_header(lambda h: _first_tensor(h).update(shape=[7, 7]))),
    ("head-temperature-edited", HEAD, edit_header(lambda h: h.update(__metadata__={"temperature": "warm"}))),
    ("head-tensor-missing", HEAD, _drop_bias),
    ("head-deleted", HEAD, lambda p: p.unlink()),
]


@pytest.mark.parametrize("case", SCORER_CASES, ids=[c[0] for c in SCORER_CASES])
def test_damaged_scorer_heads_16_cases(case, tmp_path):
    _, rel, damage = case
    root = Path(shutil.copytree(SCORERS, tmp_path / "scorers"))
    damage(root / rel)
    with pytest.raises(ClmError) as err:
        load_scorers(["sentiment"], path=root, encoder="pico")  # never the MiniLM encoder
    _one_line_naming(err, str(root / rel))


# ---------------------------------------------------------------------- tables
TABLE = "single_sentiment.parquet"
PPL_TABLE = "single_sentiment_perplexity.parquet"
TABLE_CASES = (
    [(f"truncated-half-{p.name}", p.name, truncate(lambda n: n // 2)) for p in sorted(TABLES.glob("*.parquet"))]
    + [
        ("footer-cut", TABLE, truncate(lambda n: n - 4)),
        ("empty", TABLE, truncate(0)),
        ("garbage", TABLE, write(b"not a parquet file\n" * 50)),
        ("footer-length-edited", TABLE, lambda p: p.write_bytes(p.read_bytes()[:-8] + b"\xff\xff\xff\x7f" + b"PAR1")),
        ("a-csv-under-a-parquet-name", TABLE, write("seed,prompt\n0,x\n")),
    ]
    + [(f"column-dropped-{c}", TABLE, c) for c in GEN_REQUIRED]
    + [(f"column-dropped-{c}", PPL_TABLE, c) for c in PPL_REQUIRED]
)


@pytest.mark.parametrize("case", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_damaged_tables_31_cases(case, tmp_path):
    _, name, damage = case
    p = Path(shutil.copy(TABLES / name, tmp_path / name))
    if isinstance(damage, str):  # a column dropped: still a valid Parquet file
        write_table(read_table(p).drop(columns=[damage]), p)
    else:
        damage(p)
    with pytest.raises(ClmError) as err:
        read_table(p, PPL_REQUIRED if name == PPL_TABLE else GEN_REQUIRED)
    _one_line_naming(err, str(p))
    if isinstance(damage, str):
        assert repr(damage) in str(err.value)


# (which table, the column dropped or the damage): what the sweep's rerun finds
SWEEP_DAMAGES = [
    ("t", "prompt"),
    ("t", "n_tokens"),
    ("t_perplexity", "context"),
    ("t", truncate(100)),
    ("t_perplexity", truncate(100)),
]


def test_the_sweep_rerun_on_its_own_edited_tables_names_them(im, tmp_path):
    """The reuse path itself: a sweep's table, or its perplexity table, with a column dropped (or
    truncated) makes the rerun stop with a one-line error naming the file, never a KeyError."""
    from clm.experiments.sweep import run_sweep

    out = tmp_path / "t.parquet"
    kwargs = dict(out=out, fluency=None, perplexity=lambda w: 1.0, n_samples=1, max_new_tokens=2, progress=False)
    sweep = lambda: run_sweep(im, ["base", "sentiment=1"], ["Once"], {"sentiment": lambda t: [0.5] * len(t)}, **kwargs)  # noqa: E731
    sweep()
    pristine = {p: p.read_bytes() for p in (out, out.with_name("t_perplexity.parquet"))}
    for stem, damage in SWEEP_DAMAGES:
        for p, data in pristine.items():
            p.write_bytes(data)
        path = out.with_name(f"{stem}.parquet")
        if isinstance(damage, str):
            write_table(read_table(path).drop(columns=[damage]), path)
        else:
            damage(path)
        with pytest.raises(ClmError) as err:
            sweep()
        _one_line_naming(err, str(path))


def test_the_counts_are_what_the_book_says():
    """32 + 16 + 31 damaged copies + 5 sweep reruns = 84."""
    assert (len(ENDPOINT_CASES), len(SCORER_CASES), len(TABLE_CASES), len(SWEEP_DAMAGES)) == (32, 16, 31, 5)
    assert len({c[0] for c in ENDPOINT_CASES + SCORER_CASES + TABLE_CASES}) == 79


def _cases_of(test) -> int:
    """How many parameter sets a @pytest.mark.parametrize test has."""
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    return len(mark.args[1])


def test_the_table_in_running_md_matches_the_case_lists():
    """book/running.md, "Bad input, tried": each count is computed here from its test's case list."""
    import re

    import test_book_params
    import test_cli
    import test_config
    import test_config_yaml
    import test_fuzz
    import test_security

    counted = {
        "tests/test_book_params.py": len(test_book_params.CASES),
        "tests/test_cli.py": len(test_cli.BAD),
        "tests/test_config_yaml.py": 2 * len(test_config_yaml.CASES),  # the library and the command line
        "tests/test_config.py": _cases_of(test_config.test_bad_config_is_one_line_naming_the_problem),
        "tests/test_assets_damage.py": len(ENDPOINT_CASES + SCORER_CASES + TABLE_CASES + SWEEP_DAMAGES),
        "tests/test_fuzz.py": test_fuzz.EXAMPLES * test_fuzz.N_TESTS,
        "tests/test_security.py": _cases_of(test_security.test_manifest_names_cannot_escape_the_endpoints_directory),
    }
    text = (REPO / "book" / "running.md").read_text(encoding="utf-8")
    section = text[text.index("## Bad input, tried") :].split("\n## ")[0]
    shown = {path: int(n) for n, path in re.findall(r"^\|[^|]+\| (\d+) \| `([^`]+)` \|$", section, re.M)}
    assert shown == counted
