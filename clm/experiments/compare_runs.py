"""The comparison chapter's runs (08_alternatives): the dev choices, then one keyed table per method and attribute.

Everything the chapter generates goes through :func:`clm.experiments.method_sweep.run_method_sweep`
(or, for interpolation, :func:`clm.experiments.sweep.run_sweep` over chapter 4's own tables), into
``<run_dir>/tables/compare/``, so a killed run resumes and a rerun generates nothing. The shipped
tables (``clm/assets/tables/<model>/compare/``) are copied in first (:func:`clm.book.params.table_path`).

Order of work (:class:`Runs`):

1. **dev choices** on the last ``n_dev`` WritingPrompts prompts, by the rules of
   :mod:`clm.methods.dev`: the prompting wording per attribute, then the steering layer (on the
   first attribute) and each attribute's c_max at that layer. The record is
   ``compare/dev_choices.json``;
2. **the sweeps** on the first ``n_prompts`` test prompts × ``n_samples``: prompting and steering
   for every attribute, logit arithmetic (linear and product) and the mixture adapters for the
   trained ones, and interpolation (chapter 4's α sweeps with each continuation's perplexity under
   the base added, ``ppl``), and the base model's continuations (chapter 4's ``base`` table, with ``ppl``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clm.errors import ConfigError
from clm.io import atomic_write_text

#: The strengths generated. Where a method *is* another model exactly (tests/test_methods.py), its
#: rows there are shared, not regenerated (:func:`share_rows`): prompting's level 0, steering's
#: c = 0 and logit-linear's α = 0 are the base model; logit-product's α = 0 and 1 and the mixture's
#: m = 0 and 1 are the low and high endpoints, interpolation's α = 0 and 1.
PROMPTING_LEVELS: tuple[float, ...] = (-2.0, -1.0, 1.0, 2.0)
LINEAR_GRID: tuple[float, ...] = (-1.0, -0.5, 0.5, 1.0)
PRODUCT_GRID: tuple[float, ...] = (0.25, 0.5, 0.75)
#: method -> (strength, where its rows come from): "base" or an interpolation α.
SHARED: dict[str, tuple[tuple[float, str | float], ...]] = {
    "prompting": ((0.0, "base"),),
    "steering": ((0.0, "base"),),
    "logit-linear": ((0.0, "base"),),
    "logit-product": ((0.0, 0.0), (1.0, 1.0)),
    "mixture": ((0.0, 0.0), (1.0, 1.0)),
}


def steering_layers(n_layers: int) -> list[int]:
    """The candidate layers: a quarter, half and three quarters of the way up (distinct, 0-based)."""
    if n_layers < 1:
        raise ConfigError(f"a model needs at least one decoder layer, got {n_layers}")
    return sorted({min(n_layers - 1, max(0, round(n_layers * f) - 1)) for f in (0.25, 0.5, 0.75)})


class Runs:
    """The comparison's work for one chapter run.

    Args:
        im: the InterpolatedModel over the endpoints (the base model for every method).
        scorers: attribute -> scorer (the shipped ones).
        out_dir: ``<run_dir>/tables/compare`` (tables and the dev record).
        table: ``name -> path`` for a table (the chapter's ``table_path(P, "compare/" + name, ends)``).
        gen: the generation settings (``P.sweep_kwargs(n_prompts, n_samples)``, as chapter 4 has them).
        chapter4_table: ``name -> path`` of a chapter-4 table (``table_path(P, name, ends)``).
        log: where progress lines go.
    """

    def __init__(
        self,
        im: Any,
        scorers: Mapping[str, Any],
        out_dir: Path,
        table: Callable[[str], Path],
        gen: Mapping[str, Any],
        chapter4_table: Callable[[str], Path] | None = None,
        log: Callable[[str], None] = print,
        progress: bool | None = False,
    ):
        self.im, self.tok, self.scorers, self.out_dir = im, im.tokenizer, dict(scorers), Path(out_dir)
        self.table, self.log, self.progress = table, log, progress
        self.chapter4_table = chapter4_table or (lambda name: self.out_dir.parent / name)
        self.sweep_kwargs = dict(gen)
        self.gen = {k: v for k, v in gen.items() if k in ("seeds", "max_new_tokens", "batch_size")}
        self.n_samples = int(gen.get("n_samples", 1))
        self.out_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ dev choices
    def vectors(self, attribute: str, layers: Sequence[int], data_dir: Path, n_texts: int) -> dict[int, Any]:
        """The attribute's mean-difference vectors at ``layers``, kept in ``compare/vectors/<attribute>.pt``.

        The file is keyed by the base model's fingerprint, the attribute, the texts used and the
        recipe (:func:`clm.experiments.keys.vector_key`); layers computed before under the same key are read back, the
        others computed and added. A sweep's key holds its vector's digest, so a vector computed
        again on another machine (another summation order, other low bits) would regenerate every
        steering row: reading back the kept one keeps the shipped tables valid."""
        import torch

        from clm.experiments.keys import vector_key
        from clm.io import atomic_write
        from clm.methods.steering import SteeringVector, mean_difference, pole_texts

        low, high = pole_texts(data_dir, attribute, n_texts)
        key = vector_key(self.im.endpoints.base_fingerprint, attribute, low, high)
        path = self.table(f"vectors/{attribute}.pt")
        kept: dict[int, dict[str, Any]] = {}
        if path.is_file():
            saved = torch.load(path, weights_only=True)
            kept = {int(L): v for L, v in saved["layers"].items()} if saved.get("key") == key else {}
        todo = [int(L) for L in layers if int(L) not in kept]
        if todo:
            for L, v in mean_difference(self.im, self.tok, low, high, attribute, todo).items():
                kept[L] = {"vector": v.vector.contiguous(), "n_low": v.n_low, "n_high": v.n_high, "seconds": v.seconds}
            data = {"key": key, "layers": {str(L): v for L, v in sorted(kept.items())}}
            atomic_write(path, lambda tmp: torch.save(data, tmp))
        return {int(L): SteeringVector(attribute, int(L), kept[int(L)]["vector"], int(kept[int(L)]["n_low"]),
                                       int(kept[int(L)]["n_high"]), float(kept[int(L)]["seconds"])) for L in layers}  # fmt: skip

    def dev_choices(
        self,
        attributes: Sequence[str],
        dev_prompts: Sequence[str],
        data_dir: Path,
        *,
        layers: Sequence[int] | None = None,
        probe: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
        max_ratio: float = 1.5,
        n_texts: int = 500,
        positions: str = "all",
    ) -> dict[str, Any]:
        """The wording per attribute and the steering layer and grids (record: ``dev_choices.json``)."""
        from clm.methods.dev import choose_steering, choose_wording
        from clm.methods.steering import decoder_layers

        from clm.experiments.method_sweep import run_method_sweep
        from clm.methods.dev import response_from_table

        def respond(method: Any, strengths: list[float], fluency: Any) -> dict[str, Any]:
            """A candidate's dev response from its keyed table ``compare/dev/<method>_<attribute>_<which>``."""
            which = f"L{method.vector.layer}" if method.name == "steering" else method.wording.name
            name = f"dev/{'steering' if method.name == 'steering' else 'wording'}_{method.attribute}_{which}.parquet"
            t = run_method_sweep(method, strengths, list(dev_prompts), {method.attribute: self.scorers[method.attribute]},
                                 out=self.table(name), n_samples=1, seeds=(self.gen["seeds"][0],),
                                 max_new_tokens=self.gen["max_new_tokens"], batch_size=self.gen["batch_size"],
                                 fluency=fluency, progress=self.progress)  # fmt: skip
            return response_from_table(t, method.attribute, strengths)

        kw = dict(respond=respond)
        record: dict[str, Any] = {"n_dev": len(dev_prompts), "wording": {}, "steering": {}}
        for a in attributes:
            rec = choose_wording(self.im, self.tok, a, dev_prompts, self.scorers[a], **kw)
            record["wording"][a] = rec
            self.log(f"wording for {a}: {rec['chosen']}")
        n_layers = len(decoder_layers(self.im.model))
        layers = steering_layers(n_layers) if layers is None else [int(L) for L in layers]
        first, rest = attributes[0], list(attributes[1:])
        vecs = self.vectors(first, layers, data_dir, n_texts)
        st = choose_steering(self.im, self.tok, vecs, dev_prompts, self.scorers[first], "base", probe=probe,
                             max_ratio=max_ratio, positions=positions, **kw)  # fmt: skip
        st["candidates"], st["n_layers"] = layers, n_layers
        st["vector_seconds"] = {L: v.seconds for L, v in vecs.items()}
        record["steering"][first] = st
        layer = st["layer"]
        self.log(f"steering for {first}: layer {layer}, c_max {st['c_max']}")
        if layer is None:
            raise ConfigError(f"no steering layer of {layers} kept {first} within {max_ratio}x the base perplexity")
        for a in rest:
            v = self.vectors(a, [layer], data_dir, n_texts)
            r = choose_steering(self.im, self.tok, v, dev_prompts, self.scorers[a], "base", probe=probe,
                                max_ratio=max_ratio, positions=positions, **kw)  # fmt: skip
            r["vector_seconds"] = {L: x.seconds for L, x in v.items()}
            record["steering"][a] = r
            self.log(f"steering for {a}: c_max {r['c_max']}")
        record["layer"], record["positions"], record["n_texts"] = layer, positions, n_texts
        atomic_write_text(self.out_dir / "dev_choices.json", json.dumps(record, indent=1, default=float) + "\n")
        return record

    # ------------------------------------------------------------------ the sweeps
    def sweep(self, method: Any, prompts: Sequence[str], name: str, *, strengths: Sequence[float] | None = None,
              fluency: Any = "base", perplexity: Any = None) -> Any:  # fmt: skip
        from clm.experiments.method_sweep import run_method_sweep

        t = run_method_sweep(method, strengths, list(prompts), self.scorers, out=self.table(name),
                             n_samples=self.n_samples, fluency=fluency, perplexity=perplexity,
                             progress=self.progress, **self.gen)  # fmt: skip
        self.log(f"{name}: {len(t)} rows")
        return t

    def prompting(self, attribute: str, wording: str, prompts: Sequence[str]) -> Any:
        from clm.methods.prompting import PromptingMethod

        m = PromptingMethod(self.im, self.tok, attribute, wording, chosen="on the dev prompts (dev_choices.json)")
        return self.sweep(m, prompts, f"prompting_{attribute}.parquet", strengths=PROMPTING_LEVELS)

    def steering(self, vector: Any, grid: Sequence[float], prompts: Sequence[str], wikitext: Any = None,
                 positions: str = "all") -> Any:  # fmt: skip
        from clm.experiments.method_sweep import steering_perplexity
        from clm.methods.steering import SteeringMethod

        m = SteeringMethod(self.im, self.tok, vector, grid=grid, positions=positions,
                           chosen="on the dev prompts (dev_choices.json)")  # fmt: skip
        ppl = None if wikitext is None else steering_perplexity(m, wikitext["path"], **wikitext["kwargs"])
        return self.sweep(m, prompts, f"steering_{vector.attribute}.parquet", perplexity=ppl)

    def logit(self, attribute: str, mode: str, prompts: Sequence[str]) -> Any:
        from clm.methods.logit_mix import LogitMix

        grid = LINEAR_GRID if mode == "linear" else PRODUCT_GRID
        return self.sweep(LogitMix(self.im, attribute, mode, grid=grid), prompts, f"logit_{mode}_{attribute}.parquet")

    def mixture(self, method: Any, prompts: Sequence[str], wikitext: Any = None) -> Any:
        from clm.experiments.method_sweep import mixture_perplexity
        from clm.experiments.sweep_scoring import base_fluency

        ppl = None if wikitext is None else mixture_perplexity(method, wikitext["path"], **wikitext["kwargs"])
        fluency = base_fluency(self.im, batch_size=self.gen["batch_size"])
        return self.sweep(method, prompts, f"mixture_{method.attribute}.parquet", fluency=fluency, perplexity=ppl)

    def interpolation(self, attribute: str, alphas: Sequence[float], prompts: Sequence[str], perplexity: Any) -> Any:
        """Chapter 4's α sweep of ``attribute``, run exactly as chapter 4 runs it (so its table, in
        ``<run_dir>/tables/``, is reused as it stands), with each continuation's perplexity under
        the base added from ``compare/fluency_<attribute>.parquet`` (:meth:`add_fluency`)."""
        from clm.experiments import designs

        return self._chapter4(designs.single_attribute(attribute, alphas), prompts, f"single_{attribute}.parquet",
                              perplexity, f"fluency_{attribute}.parquet")  # fmt: skip

    def base(self, prompts: Sequence[str], perplexity: Any) -> Any:
        """Chapter 4's base-model table, with ``ppl`` added (``compare/fluency_base.parquet``)."""
        from clm.experiments import designs

        return self._chapter4(designs.custom(["base"], design="base"), prompts, "base.parquet", perplexity,
                              "fluency_base.parquet")  # fmt: skip

    def _chapter4(self, design: Any, prompts: Sequence[str], source: str, perplexity: Any, name: str) -> Any:
        from clm.experiments import sweep

        gen = dict(self.sweep_kwargs, scorers=self.scorers, perplexity=perplexity)
        t = sweep.run_sweep(self.im, design, list(prompts), out=self.chapter4_table(source), **gen)
        t = self.add_fluency(t, name)
        self.log(f"{source} with its fluency: {len(t)} rows")
        return t

    #: The columns that name a row of a sweep table.
    ROW = ("chunk", "seed", "setting", "prompt_index", "sample")

    def add_fluency(self, table: Any, name: str, every: int = 64) -> Any:
        """``table`` (a sweep table) with ``ppl`` and ``ppl_by``: each continuation's perplexity under
        the base, kept in the small table ``compare/<name>`` by row (:attr:`ROW`) and the fluency's
        fingerprint. Only rows not there are measured, ``every`` at a time, each lot saved before
        the next (so an interrupted run keeps what it measured); a table that already has them is
        returned as it is."""
        import numpy as np
        import pandas as pd

        from clm.experiments.sweep_scoring import base_fluency
        from clm.experiments.tables import read_table, write_table

        fluency = base_fluency(self.im, batch_size=self.gen["batch_size"])
        fp = fluency.fingerprint
        if "ppl" in table.columns and (table.get("ppl_by") == fp).all():
            return table
        row = list(self.ROW)
        out = self.table(name)
        known = read_table(out, required=(*row, "ppl", "ppl_by")) if out.is_file() else None
        known = pd.DataFrame(columns=[*row, "ppl", "ppl_by"]) if known is None else known[known["ppl_by"] == fp]
        t = table.drop(columns=[c for c in ("ppl", "ppl_by") if c in table.columns])
        merged = t.merge(known[[*row, "ppl"]], on=row, how="left", indicator=True)
        todo = np.flatnonzero((merged["_merge"] == "left_only").to_numpy())
        for start in range(0, len(todo), every):
            rows = merged.iloc[todo[start : start + every]]
            ppl = np.asarray(fluency(rows["prompt"].tolist(), self._token_ids(rows)), dtype=float)
            merged.loc[rows.index, "ppl"] = ppl
            new = rows[row].assign(ppl=ppl, ppl_by=fp)
            known = new if known.empty else pd.concat([known, new], ignore_index=True)
            write_table(known.reset_index(drop=True), out)
            self.log(f"{name}: {min(start + every, len(todo))} of {len(todo)} continuations measured")
        return merged.drop(columns="_merge").assign(ppl_by=fp)

    def _token_ids(self, rows: Any) -> list[list[int]]:
        """Each row's generated token ids: stored (JSON), or, for rows of tables made before they
        were stored, the continuation tokenized again."""
        stored = rows["token_ids"] if "token_ids" in rows.columns else [None] * len(rows)
        return [json.loads(x) if isinstance(x, str)
                else self.tok(t if isinstance(t, str) else "", add_special_tokens=False)["input_ids"]
                for x, t in zip(stored, rows["continuation"])]  # fmt: skip


# ---------------------------------------------------------------------- the chapter's whole run
def mixture_method(P: Any, im: Any, attribute: str, model: Any = None) -> Any:
    """The mixture adapters of ``attribute`` at ``P.fractions`` as a lazy :class:`MixtureMethod`:
    keyed by their recipes, trained (``<run_dir>/mixture/``) only if a batch or a number needs them."""
    from clm.core.models import load_base
    from clm.methods.mixture import MixtureMethod, recipe, train_mixture

    cfg = P.train_config

    def adapter(m: float) -> Callable[[], Path]:
        return lambda: train_mixture(cfg, attribute, m, P.run_dir)

    model = model if model is not None else load_base(P.model)[0]
    return MixtureMethod(
        model, im.tokenizer, attribute, {m: adapter(m) for m in P.fractions},
        recipes={m: recipe(cfg, attribute, m) for m in P.fractions},
    )  # fmt: skip


def mixture_weights(P: Any, method: Any, ends: Any, out: Path) -> dict[str, Any]:
    """Per m: the ΔW comparison with α = m (:func:`clm.methods.mixture.compare_with_interpolation`)
    and the adapter's training seconds, kept in ``out`` (JSON) under its recipe digest; computed
    (loading, or training, the adapter) only for a recipe not there yet."""
    from clm.core.endpoints import read_adapter
    from clm.methods.mixture import compare_with_interpolation

    known = json.loads(out.read_text()) if out.is_file() else {}
    digests = method.describe()["recipes"]
    rows = {}
    for m in method.adapters:
        key = f"{method.attribute}/{digests[str(m)]}"
        if key not in known:
            method.load()
            d = Path(method.adapters[m])
            log = d.parent / "log.json"
            seconds = json.loads(log.read_text()).get("train_seconds") if log.is_file() else None
            known[key] = {"attribute": method.attribute, "m": m, "train_seconds": seconds,
                          **compare_with_interpolation(read_adapter(d), ends, method.attribute, m)}  # fmt: skip
            atomic_write_text(out, json.dumps(known, indent=1, sort_keys=True) + "\n")
        rows[m] = known[key]
    return rows


def run_all(P: Any, im: Any, scorers: Mapping[str, Any], table: Callable[[str], Path],
            chapter4_table: Callable[[str], Path], log: Callable[[str], None], progress: bool | None = False,
            ) -> dict[str, Any]:  # fmt: skip
    """Everything the chapter generates, in order (dev choices, then every sweep); returns
    ``{"dev", "tables": {name: table}, "mixture": {attribute: {m: weights row}}, "vectors"}``.

    ``table(name)`` / ``chapter4_table(name)``: the path of this chapter's table ``compare/<name>`` and
    of chapter 4's ``<name>`` (the chapter's ``table_path(P, ..., ends)``, which copies a shipped one in)."""
    from clm.data import read_texts

    out_dir = P.run_dir / "tables" / "compare"
    runs = Runs(im, scorers, out_dir, table, P.sweep_kwargs(P.n_prompts, P.n_samples), chapter4_table, log, progress)
    prompts = read_texts(P.prompts_file, limit=P.n_prompts)
    wikitext = P.wikitext(im)
    spec = P.wikitext_spec()
    tables: dict[str, Any] = {"base": runs.base(prompts, wikitext)}
    vectors, mixtures, dev = {}, {}, {}
    # the trained attributes first, every method on them, then the others: what is done first can
    # already be read while the rest runs (the dev record of a later pass extends the earlier one's)
    order = [a for a in P.attributes if a in P.trained] + [a for a in P.attributes if a not in P.trained]
    first = [a for a in order if a in P.trained]
    for group in ([first, order] if first and first != order else [order]):
        dev = runs.dev_choices(group, P.dev_prompts, P.data_dir, layers=P.layers, probe=P.probe,
                               max_ratio=P.max_ppl_ratio, n_texts=P.n_texts, positions=P.positions)  # fmt: skip
        for a in group:
            if f"prompting_{a}" in tables:
                continue
            tables[f"interpolation_{a}"] = runs.interpolation(a, P.alphas, prompts, wikitext)
            tables[f"prompting_{a}"] = runs.prompting(a, dev["wording"][a]["chosen"], prompts)
            st = dev["steering"][a]
            if st["grid"] is None:
                log(f"steering for {a}: no fluent c on the dev prompts; left out")
            else:
                vectors[a] = vec = runs.vectors(a, [dev["layer"]], P.data_dir, P.n_texts)[dev["layer"]]
                grid = [c for c in st["grid"] if c != 0.0]  # c = 0 is the base model exactly: its rows are the base's
                tables[f"steering_{a}"] = runs.steering(vec, grid, prompts, spec if P.positions == "all" else None,
                                                        P.positions)  # fmt: skip
            if a in P.trained:
                tables[f"logit-linear_{a}"] = runs.logit(a, "linear", prompts)
                tables[f"logit-product_{a}"] = runs.logit(a, "product", prompts)
                method = mixture_method(P, im, a)
                tables[f"mixture_{a}"] = runs.mixture(method, prompts, spec)
                mixtures[a] = mixture_weights(P, method, P.ends, runs.table("mixture_weights.json"))  # the shipped one copied in
                if method.loaded:
                    method.unwrap()
    return {"dev": dev, "tables": tables, "mixture": mixtures, "vectors": vectors}


# ---------------------------------------------------------------------- one tidy table
def share_rows(tables: Mapping[str, Any]) -> tuple[Any, Any]:
    """(tidy, base): every method's rows in the tidy form of :mod:`clm.experiments.compare`, one
    table, with the rows each method shares with the base or the endpoints (:data:`SHARED`) added
    and marked in ``shared_from`` (``wikitext_ppl`` kept only for methods that define one model per
    setting); and the base model's rows (``method`` "base"), the reference of every ratio.

    ``tables``: :func:`run_all`'s, named ``base``, ``interpolation_<attribute>`` (chapter 4's form)
    and ``<method>_<attribute>`` (:func:`~clm.experiments.method_sweep.run_method_sweep`'s)."""
    import pandas as pd

    from clm.experiments.compare import OPTIONAL, TIDY, from_interpolation_table

    base = tables["base"].assign(method="base", attribute="-", dial="-", strength=0.0)
    interp = {k.split("_", 1)[1]: from_interpolation_table(t, k.split("_", 1)[1])
              for k, t in tables.items() if k.startswith("interpolation_")}  # fmt: skip
    parts = list(interp.values())
    for name, t in tables.items():
        if name == "base" or name.startswith("interpolation_"):
            continue
        method, attribute = name.split("_", 1)
        t = t.assign(shared_from=None)
        has_wiki = "wikitext_ppl" in t.columns and t["wikitext_ppl"].notna().any()
        extra = []
        for strength, source in SHARED.get(method, ()):
            if (t["strength"] == strength).any():
                continue
            if source == "base":
                rows = base
            elif attribute in interp:
                rows = interp[attribute][interp[attribute]["strength"] == float(source)]
            else:
                continue
            rows = rows.assign(method=method, attribute=attribute, dial=t["dial"].iloc[0], strength=strength,
                               shared_from="base" if source == "base" else f"interpolation α = {source:g}")  # fmt: skip
            if not has_wiki and "wikitext_ppl" in rows.columns:
                rows = rows.assign(wikitext_ppl=float("nan"))
            extra.append(rows)
        parts.append(pd.concat([t, *extra], ignore_index=True))
    keep = [*TIDY, *OPTIONAL, "shared_from"]
    out = pd.concat(parts, ignore_index=True)
    cols = [c for c in keep if c in out.columns] + [c for c in out.columns if c.startswith("score_")]
    out = out[cols].sort_values(["method", "attribute", "strength", "prompt_index", "sample"], kind="stable")
    return out.reset_index(drop=True), base[[c for c in cols if c in base.columns]]


def bench_methods(P: Any, im: Any, result: Mapping[str, Any], tokenizer: Any = None,
                  attribute: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The comparison's methods for one attribute (default: the first trained one), as chosen on the
    dev prompts, for :mod:`clm.bench.alternatives`; ``"base"`` is prompting at level 0 (the plain
    prompt on the plain model)."""
    from clm.methods.interpolation import InterpolationMethod
    from clm.methods.logit_mix import LogitMix
    from clm.methods.prompting import PromptingMethod
    from clm.methods.steering import SteeringMethod

    tok = tokenizer or im.tokenizer
    dev = result["dev"]
    a = attribute or next(x for x in [*P.trained, *P.attributes] if x in dev["wording"])
    wording = dev["wording"][a]["chosen"]
    out: dict[str, Any] = {"base": PromptingMethod(im, tok, a, wording)}  # generated at level 0 only
    out["interpolation"] = InterpolationMethod(im, a)
    out["prompting"] = PromptingMethod(im, tok, a, wording)
    st = dev["steering"].get(a, {})
    if a in result.get("vectors", {}) and st.get("grid"):
        out["steering"] = SteeringMethod(im, tok, result["vectors"][a], grid=st["grid"], positions=P.positions)
    if a in P.trained:
        out["logit-linear"] = LogitMix(im, a, "linear", grid=LINEAR_GRID)
        out["logit-product"] = LogitMix(im, a, "product", grid=PRODUCT_GRID)
        out["mixture"] = mixture_method(P, im, a)
    return out
