"""Security, checked over the code and on hostile inputs.

- No pickle load anywhere in ``clm/`` or the notebooks: no ``pickle``/``dill``/``joblib`` load,
  ``torch.load`` only with ``weights_only=True``, ``np.load`` never with ``allow_pickle=True``.
- ``trust_remote_code`` is never true by default (no parameter defaults to it, no call passes True).
- Attribute and pole names from a manifest cannot escape the endpoints directory.
- ``release.ship`` never deletes what it did not derive safely: a local-directory base, a hub id
  with ``/`` and names with ``..`` all ship under ``clm/assets/endpoints/<safe name>``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path

import pytest

import clm
from clm.errors import ClmError, ConfigError, EndpointsError

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "clm").rglob("*.py")) + sorted((REPO / "notebooks").glob("*.py"))
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve"}


def _name(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _true(kw: ast.keyword) -> bool:
    return isinstance(kw.value, ast.Constant) and kw.value.value is True


def unsafe_calls(source: str, where: str = "<src>") -> list[str]:
    """Every pickle load, unsafe torch.load / np.load and trust_remote_code default in ``source``."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            fn, kws = _name(node.func), {k.arg: k for k in node.keywords if k.arg}
            head, _, last = fn.rpartition(".")
            if (
                head.split(".")[-1] in PICKLERS and last in ("load", "loads", "Unpickler", "open")
            ) or last == "read_pickle":
                bad.append(f"{where}:{node.lineno}: {fn}")
            if fn == "torch.load" and not ("weights_only" in kws and _true(kws["weights_only"])):
                bad.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
            if (
                fn in ("np.load", "numpy.load")
                and "allow_pickle" in kws
                and not (
                    isinstance(kws["allow_pickle"].value, ast.Constant) and kws["allow_pickle"].value.value is False
                )
            ):
                bad.append(f"{where}:{node.lineno}: {fn} with allow_pickle")
            if (
                "trust_remote_code" in kws
                and not (
                    isinstance(kws["trust_remote_code"].value, ast.Constant)
                    and kws["trust_remote_code"].value.value in (False, None)
                )
                and not isinstance(kws["trust_remote_code"].value, ast.Name)
            ):
                bad.append(f"{where}:{node.lineno}: trust_remote_code={ast.unparse(kws['trust_remote_code'].value)}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            pos = args.posonlyargs + args.args
            pairs = list(zip(pos[len(pos) - len(args.defaults) :], args.defaults)) + list(
                zip(args.kwonlyargs, args.kw_defaults)
            )
            for arg, default in pairs:
                if arg.arg == "trust_remote_code" and not (
                    isinstance(default, ast.Constant) and default.value in (False, None)
                ):
                    bad.append(f"{where}:{node.lineno}: {node.name}(trust_remote_code={ast.unparse(default)})")
        elif isinstance(node, ast.Dict):  # {"trust_remote_code": True} passed as **kwargs
            for k, v in zip(node.keys, node.values):
                if (
                    isinstance(k, ast.Constant)
                    and k.value == "trust_remote_code"
                    and isinstance(v, ast.Constant)
                    and v.value is True
                ):
                    bad.append(f"{where}:{node.lineno}: {{'trust_remote_code': True}}")
    return bad


def test_the_scanner_finds_each_unsafe_pattern():
    planted = """
import pickle, torch, numpy as np
pickle.load(open("x", "rb"))
pickle.loads(b"")
torch.load("m.pt")
torch.load("m.pt", weights_only=False)
np.load("a.npy", allow_pickle=True)
AutoModel.from_pretrained("x", trust_remote_code=True)
def load(path, trust_remote_code=True): ...
kw = {"trust_remote_code": True}
pd.read_pickle("t.pkl")
"""
    assert len(unsafe_calls(planted)) == 9
    safe = """
torch.load("m.pt", weights_only=True)
np.load("a.npy")
np.load("a.npy", allow_pickle=False)
AutoModel.from_pretrained("x", trust_remote_code=False)
def load(path, trust_remote_code=False): ...
def load2(path, trust_remote_code: bool = False): AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
"""
    assert unsafe_calls(safe) == []


def test_no_pickle_load_and_no_remote_code_by_default_in_the_code():
    assert len(SOURCES) > 30
    bad = [b for f in SOURCES for b in unsafe_calls(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert bad == []


# ---------------------------------------------------------------------- manifests
@pytest.mark.parametrize(
    "attribute, low, high, bad",
    [
        ("../x", "negative", "positive", "../x"),
        ("/etc", "negative", "positive", "/etc"),
        ("..", "negative", "positive", ".."),
        ("a/b", "negative", "positive", "a/b"),
        ("sentiment", "/etc", "positive", "/etc"),
        ("sentiment", "negative", "../../x", "../../x"),
        ("sentiment", "..", "positive", ".."),
        ("sentiment", "a\\b", "positive", "a\\b"),
        ("sentiment", "", "positive", ""),
        ("sentiment", None, "positive", None),
    ],
)
def test_manifest_names_cannot_escape_the_endpoints_directory(endpoints_dir, tmp_path, attribute, low, high, bad):
    ends = tmp_path / "ends"
    shutil.copytree(endpoints_dir, ends)
    manifest = json.loads((ends / "manifest.json").read_text())
    manifest["attributes"] = {attribute: {"low": low, "high": high}}
    (ends / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EndpointsError) as err:
        clm.Endpoints.load(ends)
    assert "\n" not in str(err.value) and "manifest.json" in str(err.value) and repr(bad) in str(err.value)


def test_a_valid_manifest_still_loads(endpoints_dir):
    assert clm.Endpoints.load(endpoints_dir).attributes == ["sentiment", "formality"]


# ---------------------------------------------------------------------- ship
def _tree(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


@pytest.fixture()
def shipping(tmp_path, endpoints_dir, monkeypatch):
    """``ship(base_id)``: ship a run whose endpoints name ``base_id`` into a private assets dir."""
    import clm.paths
    from clm.train import release

    assets = tmp_path / "assets"
    (assets / "endpoints").mkdir(parents=True)
    monkeypatch.setattr(clm.paths, "ASSETS", assets)
    monkeypatch.setattr(release, "ASSETS", assets)
    monkeypatch.setattr(release, "readme", lambda ends_dir, selection: "# shipped\n")  # no clm.train records here

    def ship(base_id: str, dest: Path | None = None) -> Path:
        run = tmp_path / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(endpoints_dir, run / "endpoints")
        manifest = json.loads((run / "endpoints" / "manifest.json").read_text())
        manifest["base"]["id"] = base_id
        (run / "endpoints" / "manifest.json").write_text(json.dumps(manifest))
        return release.ship(run, dest=dest)

    ship.assets = assets
    return ship


def test_ship_a_local_directory_base_leaves_that_directory_intact(shipping, pico_dir, endpoints_dir):
    base_id = clm.Endpoints.load(endpoints_dir).base_id
    assert Path(base_id).is_absolute() or Path(base_id).is_dir()  # what the fixture's endpoints record
    before = _tree(pico_dir)
    out = shipping(str(Path(pico_dir).resolve()))
    assert _tree(pico_dir) == before and before
    assert out.parent == shipping.assets / "endpoints" and "/" not in out.name
    assert (out / "manifest.json").is_file() and (out / "README.md").read_text() == "# shipped\n"
    again = shipping(str(Path(pico_dir).resolve()))  # re-shipping replaces only the shipped copy
    assert again == out and _tree(pico_dir) == before
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp dirs left


def test_ship_a_hub_id_and_dotted_names_stay_under_the_assets(shipping, tmp_path):
    assert shipping("HuggingFaceTB/SmolLM2-135M-Instruct").name == "HuggingFaceTB--SmolLM2-135M-Instruct"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    out = shipping("../../outside")
    assert out == shipping.assets / "endpoints" / "outside" and (outside / "keep.txt").read_text() == "mine"
    for bad in ("..", "../..", "/"):
        with pytest.raises(ConfigError):
            shipping(bad)
    assert (outside / "keep.txt").read_text() == "mine"


def test_ship_never_replaces_a_directory_that_is_not_shipped_endpoints(shipping, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("do not delete")
    with pytest.raises(ClmError, match="not a shipped endpoints directory"):
        shipping("pico", dest=mine)
    assert (mine / "notes.txt").read_text() == "do not delete"
    with pytest.raises(ClmError, match="one holds the other"):
        shipping("pico", dest=tmp_path / "run" / "endpoints")
