"""Ship a run's endpoints with ``clm``: copy them into ``clm/assets/endpoints/<model>/`` with a
README that gives the exact config, the sha256 of every data file, the held-out losses, how the
hyper-parameters were chosen, and the provenance and licences of the data.

::

    python -m clm release --run-dir ~/.cache/clm/runs/ref --selection selection.json

The notebooks use the shipped endpoints when a run dir has none (:func:`clm.book.params.find_endpoints`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from clm.errors import ClmError
from clm.paths import ASSETS
from clm.train.config import PRESETS, TrainConfig
from clm.train.logs import held_out_losses

LIMIT_MB = 50.0  # endpoints + scorer heads in the repository

LICENCES = {  # from ../shared/data/README.md
    "sentiment": "SST-2 (GLUE): no licence stated",
    "politeness": "Madaan et al. 2020 (Enron sentences, P_0 vs P_9): dataset repository MIT; this copy none stated",
    "formality": "GYAFC (Family & Relationships subset): **research use only**; the text is not redistributed, only adapters trained on it",
    "simplicity": "TinyStories (CDLA-Sharing 1.0) vs passages of public-domain novels",
    "humor": "FlickrStyle captions: CC BY-SA 4.0 (repository)",
}


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def readme(ends_dir: Path, selection: dict[str, Any] | None) -> str:
    """The README of a shipped endpoints directory, built from its adapters' ``clm_adapter.json``."""
    manifest = json.loads((ends_dir / "manifest.json").read_text())
    recs = {
        (a, p): json.loads((ends_dir / a / p / "clm_adapter.json").read_text())
        for a in manifest["attributes"]
        for p in ("low", "high")
    }
    lines = _head_lines(ends_dir, manifest, recs)
    lines += _pole_lines(ends_dir, recs)
    lines += ["", "## Data provenance and licences", ""]
    lines += [f"- **{a}**: {LICENCES.get(a, 'see ../shared/data/README.md')}" for a in manifest["attributes"]]
    lines += [
        "",
        "Sources, commits and licences of every file: `../shared/data/README.md` and `raw/SOURCES-*.md`.",
        "GYAFC is for research use only: these adapters, like the data, are for research.",
    ]
    if selection:
        lines += _selection_lines(selection)
    return "\n".join(lines) + "\n"


def _shipped_config(recs: dict[tuple[str, str], dict[str, Any]]) -> tuple[dict[str, Any], str, bool]:
    """(config without attributes, its note, whether every pole matches the config's preset)."""
    cfg = {k: v for k, v in next(iter(recs.values()))["config"].items() if k != "attributes"}
    note, same = cfg.get("note", ""), False
    if cfg.get("preset") in PRESETS:
        # A pole matches the preset when what shapes its adapter does (pole_sha256: the config with this
        # attribute's epochs and learning rate, and the pole's data source); notes and bookkeeping may differ.
        preset = TrainConfig.from_preset(cfg["preset"])
        known = {spec.name for spec in preset.attributes}
        same = all(a in known and r.get("pole_sha256") == preset.pole_sha256(a, p) for (a, p), r in recs.items())
        if same:
            cfg = {k: v for k, v in preset.to_dict().items() if k != "attributes"}
            note = cfg["note"]
    return cfg, note, same


def _head_lines(ends_dir: Path, manifest: dict[str, Any], recs: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """The README's title, base model, versions, size and config sections."""
    first = next(iter(recs.values()))
    cfg, note, same = _shipped_config(recs)
    return [
        f"# Shipped endpoints for `{manifest['base']['id']}`",
        "",
        "Two LoRA adapters per attribute (low and high pole), trained with `clm.train` on the paper's",
        "sources in `../shared/data/attributes/` (the `*.train.jsonl` files only). Load them with",
        "`clm.Endpoints.load(...)`; the notebooks use them whenever a run dir has no endpoints of its own.",
        "",
        f"- base model: `{manifest['base']['id']}`, fingerprint `{manifest['base']['fingerprint'][:16]}…`",
        f"- versions: {', '.join(f'{k} {v}' for k, v in first['versions'].items())}",
        f"- size: {_size_mb(ends_dir):.1f} MB (limit for endpoints + scorer heads: {LIMIT_MB:.0f} MB)",
        "",
        "## Config",
        "",
        (
            f"Every pole's `pole_sha256` (what shapes its adapter: the config with its attribute's epochs and "
            f"learning rate, and its data source) equals the `{cfg['preset']}` preset's in `clm.config`"
            if same
            else "The first pole's config (the others' `clm_adapter.json` give theirs)"
        )
        + ". Re-create with",
        "",
        "```",
        f"python -m clm train --preset {cfg.get('preset')} --run-dir runs/ref",
        "```",
        "",
        "```yaml",
        *(f"{k}: {json.dumps(v)}" for k, v in cfg.items() if k != "note"),
        "```",
        "",
        f"Why these values: {note}",
    ]


def _pole_lines(ends_dir: Path, recs: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """The README's per-pole table: data file and hash, sizes, learning rate, steps, held-out losses."""
    lines = [
        "",
        "## Per pole",
        "",
        "| attribute | pole | data file | file sha256 | texts | tokens | lr | steps | held-out loss (base → final) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    losses = held_out_losses(ends_dir)
    for (a, _pole), r in recs.items():
        d, loss = r["data"], losses[a][r["pole_name"]]
        base = float("nan") if loss["base_loss"] is None else loss["base_loss"]
        lr = r["config"].get("learning_rate_by_attribute", {}).get(a, r["config"]["learning_rate"])
        lines.append(
            f"| {a} | {r['pole_name']} | `{d['source']}` | `{d['file_sha256']}` | {d['n_texts']:,} | "
            f"{d['n_tokens']:,} | {lr:g} | {loss['steps']} | {base:.3f} → {loss['final_loss']:.3f} |"
        )
    return lines


def _selection_lines(selection: dict[str, Any]) -> list[str]:
    """The README's section on how the hyper-parameters were chosen (``selection.json`` of ``python -m clm tune``)."""
    lines = [
        "",
        "## How the hyper-parameters were chosen",
        "",
        "Never on evaluation data: by the held-out loss of each pole (5% of its training blocks), the",
        "perplexity on a development text (OneStopEnglish news, which no endpoint trains on), and the",
        "mean score at α = 0 and α = 1 on the *last* 100 WritingPrompts prompts (the book evaluates on",
        "the first 100). `selection.json` holds every candidate (`python -m clm tune`).",
        "",
        "| candidate | attribute | held-out loss per pole | dev ppl base / α=0 / α=1 | dev score base / α=0 / α=1 | range |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in selection["candidates"].items():
        for a, ctl in c["dev_control"].items():
            losses = ", ".join(f"{p} {v['final_loss']:.3f}" for p, v in c["held_out"].get(a, {}).items())
            fl = c.get("dev_fluency", {})
            ppl = f"{fl['base']:.1f} / " + " / ".join(f"{v:.1f}" for v in fl[a].values()) if a in fl else "not measured"
            score = f"{ctl['base']:.3f} / " + " / ".join(f"{v:.3f}" for v in ctl["by_alpha"].values())
            lines.append(f"| {name} | {a} | {losses} | {ppl} | {score} | {ctl['range']:+.3f} |")
    if selection.get("rule"):
        lines += ["", selection["rule"]]
    if selection.get("choice"):
        lines += ["", f"Chosen: **{selection['choice']}**. {selection.get('reason', '')}"]
    for rev in selection.get("revisions", []):
        lines += ["", f"### Revisited: {rev['attribute']}", "", rev["why"], "", rev["rule"]]
        lines += ["", f"Chosen: **{rev['choice']}**. {rev['reason']}"]
    return lines


def ship(
    run_dir: str | os.PathLike, selection: str | os.PathLike | None = None, dest: str | os.PathLike | None = None
) -> Path:
    """Copy ``<run_dir>/endpoints`` (and ``selection``) to ``dest`` (default
    ``clm/assets/endpoints/<base id as a safe name>``, :func:`clm.paths.shipped_dir`) and write its
    README. Checks the size limit first.

    Writes can't hurt: the copy is built in a fresh temp directory beside the target and renamed
    into place; an existing target is replaced only if it is a shipped endpoints directory (its
    manifest and README), and never if it is the source. Nothing else is ever deleted."""
    import tempfile

    from clm.core.endpoints import MANIFEST, Endpoints
    from clm.paths import shipped_dir

    src = Path(run_dir) / "endpoints"
    ends = Endpoints.load(src)  # validates
    out = Path(dest) if dest else shipped_dir("endpoints", ends.base_id)
    a, b = out.resolve(), src.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ClmError(f"cannot ship {str(src)!r} onto {str(out)!r}: one holds the other")
    if out.exists() and not ((out / MANIFEST).is_file() and (out / "README.md").is_file()):
        raise ClmError(f"{str(out)!r} exists and is not a shipped endpoints directory; not replacing it")
    scorers = _size_mb(ASSETS / "scorers") if (ASSETS / "scorers").is_dir() else 0.0
    size = sum(f.stat().st_size for f in src.rglob("*.safetensors")) / 1e6
    if size + scorers > LIMIT_MB:
        raise ClmError(f"endpoints ({size:.1f} MB) + scorer heads ({scorers:.1f} MB) exceed {LIMIT_MB:.0f} MB")
    sel = json.loads(Path(selection).read_text()) if selection else None
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".ship", dir=out.parent))  # ours alone
    try:
        tmp = work / "new"
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("README.md", ".*"))
        for f in tmp.rglob("*"):
            if f.is_file():
                f.chmod(0o644)
        if sel is not None:
            (tmp / "selection.json").write_text(json.dumps(sel, indent=1) + "\n")
        (tmp / "README.md").write_text(readme(tmp, sel))
        if out.exists():
            os.replace(out, work / "old")  # the previous shipped copy, checked above
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
