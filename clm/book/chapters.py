"""Each chapter's parameters: typed, validated, built from its papermill parameters in one call.

A chapter's ``parameters`` cell holds plain literals (papermill injects its values there); the
next cell builds them::

    P = clm.book.chapters.chapter("04_single_attribute", globals())
    P.n_prompts, P.attributes, P.ends, P.preset.max_new_tokens ...

``chapter`` takes the chapter's parameter names from the namespace, checks every value (a bad
one is one line naming the notebook, the parameter and the value), turns values left at None
into the preset's, and only then creates the run dir. The parameters of each chapter are the
fields of its class below that carry a check (:func:`param`); the names and defaults match its
``parameters`` cell (tests/test_book_params.py checks that).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from clm.book import checks
from clm.book.checks import Kind, count, flag, names, number, numbers, path, specs, text
from clm.book.params import BookParams, find_endpoints, shared, start
from clm.errors import ConfigError

if TYPE_CHECKING:
    from clm.core.endpoints import Endpoints
    from clm.train.config import TrainConfig

# The parameters every chapter has, and their defaults (validated by clm.book.params.shared).
SHARED: dict[str, Any] = {"preset": None, "model": None, "data_dir": None, "run_dir": None, "seed": 0}


def param(default: Any, kind: Kind) -> Any:
    """A chapter parameter: its default (as in the parameters cell) and what it accepts."""
    meta = {"kind": kind, "default": default}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Chapter(BookParams):
    """A chapter's parameters: the shared ones (:class:`BookParams`) and the fields of a subclass."""

    NEEDS_DATA: ClassVar[bool] = True  # whether data_dir must hold the shared data

    def resolve(self) -> dict[str, Any]:
        """Values left at None, from the preset, and checks across parameters; creates nothing."""
        return {}

    def bad(self, name: str, problem: str) -> checks.ParameterError:
        return checks.fail(self.notebook, name, problem)


@dataclass(frozen=True, kw_only=True)
class Data(Chapter):
    """01_data: the five attributes' texts, sizes and lengths."""

    n_examples: int = param(3, count(0))


@dataclass(frozen=True, kw_only=True)
class FinetuneEndpoints(Chapter):
    """02_finetune_endpoints: the training config, and training or loading the endpoints."""

    attributes: list[str] = param(None, specs())  # resolved: the names of the config's attributes
    reuse_endpoints: bool = param(True, flag())
    train_overrides: dict[str, Any] = param({}, checks.mapping())
    n_prompts: int = param(3, count(1))
    train_config: TrainConfig | None = None  # this run's, from the preset's training part

    def resolve(self) -> dict[str, Any]:
        from clm.train.config import TrainConfig

        values: dict[str, Any] = dict(model=self.model, data_dir=str(self.data_dir), seed=self.seed)
        values["attributes"] = self.attributes
        for name, more in (("attributes", {}), ("train_overrides", self.train_overrides)):
            try:
                cfg = TrainConfig.from_preset(self.preset.train_preset, **{**values, **more})
            except ConfigError as err:
                raise self.bad(name, f"is not valid here: {err}") from None
        return dict(train_config=cfg, attributes=[a.name for a in cfg.attributes])


@dataclass(frozen=True, kw_only=True)
class Scorers(Chapter):
    """03_attribute_scorers: the scorer heads, their accuracy and calibration; perplexity."""

    train: bool = param(None, flag(none=True))
    encoder: str = param(None, text(none=True))
    eval_limit: int | None = param(None, count(2, none=True))
    ppl_window: int | None = param(None, count(2, none=True))
    ppl_max_tokens: int | None = param(None, count(2, none=True, zero="all"))

    def resolve(self) -> dict[str, Any]:
        smoke, p = self.preset.smoke, self.preset
        return dict(
            train=smoke if self.train is None else self.train,
            encoder=self.encoder or ("pico" if smoke else "minilm"),
            eval_limit=(40 if smoke else None) if self.eval_limit is None else self.eval_limit,
            ppl_window=p.scorer_ppl_window if self.ppl_window is None else self.ppl_window,
            ppl_max_tokens=p.ppl_max_tokens if self.ppl_max_tokens is None else (self.ppl_max_tokens or None),
        )


@dataclass(frozen=True, kw_only=True)
class Sweeps(Chapter):
    """What chapters 4-6 share: the endpoints, the prompts and how many continuations."""

    prompts_file: Path = param(None, path())
    n_prompts: int = param(None, count(1, none=True))
    n_samples: int = param(None, count(1, none=True))
    ends: Endpoints | None = None  # the run dir's endpoints, else the shipped ones

    def resolve(self) -> dict[str, Any]:
        from clm.core.endpoints import Endpoints

        try:
            ends = Endpoints.load(find_endpoints(self))
        except ConfigError as err:
            raise ConfigError(f"{self.notebook}: {err}") from None
        prompts = self.data_dir / "prompts" / "writing_prompts.jsonl"
        prompts = Path(self.prompts_file).expanduser() if self.prompts_file is not None else prompts
        return dict(
            ends=ends,
            prompts_file=checks.existing_file(self.notebook, "prompts_file", prompts),
            n_prompts=self.n_prompts or self.preset.n_prompts,
            n_samples=self.n_samples or self.preset.samples,
        )

    def names_of(self, name: str, value: list[str] | None, ends: Endpoints) -> list[str]:
        """``value`` (names of the endpoints' attributes), or every attribute of the endpoints."""
        where = f"an attribute of the endpoints ({', '.join(ends.attributes)})"
        return (
            list(ends.attributes) if value is None else checks.among(self.notebook, name, value, ends.attributes, where)
        )


@dataclass(frozen=True, kw_only=True)
class SingleAttribute(Sweeps):
    """04_single_attribute: α sweeps of one attribute at a time."""

    attributes: list[str] = param(None, names())
    ppl_window: int | None = param(None, count(2, none=True))
    ppl_tokens: int | None = param(None, count(2, none=True))
    fluency: bool = param(None, flag(none=True))
    example_prompt: int = param(0, count(0))
    example_alphas: list[float] = param([-1.0, 0.0, 0.5, 1.0, 2.0], numbers(-1, 2))
    alphas: list[float] = field(default_factory=list)  # the sweeps' α values (the preset's)

    def resolve(self) -> dict[str, Any]:
        out, p = super().resolve(), self.preset
        if self.example_prompt >= out["n_prompts"]:
            raise self.bad("example_prompt", f"must be below n_prompts ({out['n_prompts']}), got {self.example_prompt}")
        return dict(
            out,
            attributes=self.names_of("attributes", self.attributes, out["ends"]),
            ppl_window=self.ppl_window or p.sweep_ppl_window,
            ppl_tokens=self.ppl_tokens or p.sweep_ppl_tokens or p.ppl_max_tokens,
            fluency=p.fluency if self.fluency is None else self.fluency,
            example_alphas=list(self.example_alphas),
            alphas=p.sweep_alphas,
        )


def _divides_one(x: Any) -> bool:
    return 0 < x <= 0.5 and math.isclose(1 / x, round(1 / x))


STEP = Kind(
    "a number in (0, 0.5] that divides 1 (e.g. 0.2, 0.25)", lambda x: number().test(x) and _divides_one(x), True
)


@dataclass(frozen=True, kw_only=True)
class MultiAttribute(Sweeps):
    """05_multi_attribute: the λ design (one target among the others) and the simplex."""

    targets: list[str] = param(None, names())
    lams: list[float] = param([0.8, 0.4, 0.2], numbers(0, 1, lo_open=True))
    target_alphas: list[float] = param(None, numbers(min_len=2, none=True))
    simplex_attributes: list[str] = param(None, names(length=3))
    simplex_step: float = param(None, STEP)

    def resolve(self) -> dict[str, Any]:
        out, p = super().resolve(), self.preset
        available = out["ends"].attributes
        if len(available) < 2:
            raise ConfigError(
                f"{self.notebook}: the λ design needs at least 2 attributes; the endpoints have {available}"
            )
        wanted = available if p.multi_targets is None else [a for a in p.multi_targets if a in available]
        simplex = [a for a in ("sentiment", "formality", "humor") if a in available]
        simplex += [a for a in available if a not in simplex]
        pick = self.names_of
        return dict(
            out,
            targets=pick("targets", self.targets, out["ends"]) if self.targets is not None else wanted or available[:2],
            lams=list(self.lams),
            target_alphas=list(p.multi_alphas if self.target_alphas is None else self.target_alphas),
            simplex_attributes=simplex[:3]
            if self.simplex_attributes is None
            else pick("simplex_attributes", self.simplex_attributes, out["ends"]),
            simplex_step=p.simplex_step if self.simplex_step is None else self.simplex_step,
        )

    @property
    def n_settings(self) -> int:
        """Settings to generate: the λ design's, and the simplex's (λ points on a grid of ``simplex_step``)."""
        side = round(1 / self.simplex_step) + 1  # λ values per edge of the simplex
        simplex = side * (side + 1) // 2 if len(self.simplex_attributes) == 3 else 0
        return len(self.targets) * len(self.lams) * len(self.target_alphas) + simplex


@dataclass(frozen=True, kw_only=True)
class Entanglement(Sweeps):
    """06_entanglement_and_geometry: the entanglement matrix and the endpoints' geometry."""

    attributes: list[str] = param(None, names())
    top_pairs: int = param(5, count(1))

    def resolve(self) -> dict[str, Any]:
        out = super().resolve()
        return dict(out, attributes=self.names_of("attributes", self.attributes, out["ends"]))


@dataclass(frozen=True, kw_only=True)
class Control(Sweeps):
    """07_control: target scores (fit on development prompts, asked on the evaluation prompts),
    the recalibration on prompts of another kind, a scheduled arc, and the dial."""

    attributes: list[str] = param(None, names())
    n_dev: int = param(None, count(1, none=True))
    n_targets: int = param(5, count(2))
    min_range: float = param(0.25, number(0, 1, lo_open=True))
    max_ppl_ratio: float = param(1.3, number(1, lo_open=True))
    pair: list[str] = param(["sentiment", "formality"], names(length=2, none=False))
    other_prompts_file: Path = param(None, path())
    n_calibrate: int = param(20, count(2))
    schedule_tokens: int = param(None, count(2, none=True))
    dial: bool = param(True, flag())
    dev_prompts: list[str] = field(default_factory=list)  # the last n_dev prompts of prompts_file

    def resolve(self) -> dict[str, Any]:
        from clm.data import dev_prompts, read_texts
        from clm.paths import ASSETS

        out, p = super().resolve(), self.preset
        attributes = self.names_of("attributes", self.attributes, out["ends"])
        pair = self.names_of("pair", self.pair, out["ends"])
        if pair[0] == pair[1] or any(a not in attributes for a in pair):
            raise self.bad("pair", f"must be two different attributes among {attributes}, got {self.pair}")
        other = self.other_prompts_file or ASSETS / "prompts" / "everyday.txt"
        other = checks.existing_file(self.notebook, "other_prompts_file", Path(other).expanduser())
        n_other = len(read_texts(other))
        if n_other < self.n_calibrate + 2:
            raise self.bad("n_calibrate", f"leaves fewer than 2 of the {n_other} other prompts to evaluate on")
        n_dev = self.n_dev or p.n_prompts
        try:
            dev = dev_prompts(out["prompts_file"], n_dev)
        except ConfigError as err:
            raise self.bad("n_dev", str(err)) from None
        return dict(
            out, attributes=attributes, pair=pair, other_prompts_file=other, n_dev=n_dev, dev_prompts=dev,
            schedule_tokens=self.schedule_tokens or 2 * p.max_new_tokens,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Alternatives(Sweeps):
    """08_alternatives: interpolation against prompting, activation steering, logit arithmetic and
    data mixtures, on the same prompts, scorers and budget (choices made on development prompts)."""

    attributes: list[str] = param(None, names())
    trained: list[str] = param(["sentiment", "formality"], names(none=False))
    n_dev: int = param(None, count(1, none=True))
    layers: list[float] = param(None, numbers(0, none=True))
    probe: list[float] = param([0.5, 1.0, 2.0, 4.0, 8.0, 16.0], numbers(0, lo_open=True))
    max_ppl_ratio: float = param(1.5, number(1, lo_open=True))
    positions: str = param("all", text())
    fractions: list[float] = param([0.25, 0.5, 0.75], numbers(0, 1, lo_open=True))
    n_texts: int = param(500, count(2))
    example_prompt: int = param(0, count(0))
    dev_prompts: list[str] = field(default_factory=list)  # the last n_dev prompts of prompts_file
    alphas: list[float] = field(default_factory=list)  # chapter 4's α values (the preset's)
    train_config: TrainConfig | None = None  # the endpoints' recipe (the mixtures train with it)

    def resolve(self) -> dict[str, Any]:
        from clm.data import dev_prompts
        from clm.train.config import TrainConfig

        out, p = super().resolve(), self.preset
        attributes = self.names_of("attributes", self.attributes, out["ends"])
        trained = self.names_of("trained", self.trained, out["ends"])
        if self.positions not in ("all", "generated"):
            raise self.bad("positions", f"must be 'all' or 'generated', got {self.positions!r}")
        if any(not float(x).is_integer() for x in self.layers or []):
            raise self.bad("layers", f"must be whole layer numbers, got {self.layers}")
        if any(not 0 < m < 1 for m in self.fractions) or len(set(self.fractions)) != len(self.fractions):
            raise self.bad("fractions", f"must be distinct numbers strictly between 0 and 1, got {self.fractions}")
        if self.example_prompt >= out["n_prompts"]:
            raise self.bad("example_prompt", f"must be below n_prompts ({out['n_prompts']}), got {self.example_prompt}")
        n_dev = self.n_dev or min(40, p.n_prompts)
        try:
            dev = dev_prompts(out["prompts_file"], n_dev)
        except ConfigError as err:
            raise self.bad("n_dev", str(err)) from None
        cfg = TrainConfig.from_preset(p.train_preset, model=self.model, data_dir=str(self.data_dir), seed=self.seed)
        return dict(
            out, attributes=attributes, trained=trained, n_dev=n_dev, dev_prompts=dev, alphas=p.sweep_alphas,
            layers=None if self.layers is None else [int(x) for x in self.layers], probe=sorted(self.probe),
            fractions=sorted(self.fractions), train_config=cfg,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Cost(Chapter):
    """09_cost_of_interpolation: the cost benchmark, run or loaded."""

    NEEDS_DATA: ClassVar[bool] = False
    rerun_benchmark: bool = param(None, flag(none=True))
    new_tokens: int = param(None, count(1, none=True))
    repeats: int = param(None, count(1, none=True))
    large_model: bool = param(True, flag())

    def resolve(self) -> dict[str, Any]:
        smoke = self.preset.smoke
        rerun = self.rerun_benchmark
        if rerun is None:
            import torch

            rerun = smoke or torch.cuda.is_available()
        return dict(
            rerun_benchmark=rerun,
            new_tokens=self.new_tokens or (4 if smoke else 16),
            repeats=self.repeats or (1 if smoke else 2),
        )


@dataclass(frozen=True, kw_only=True)
class Conclusions(Chapter):
    """10_conclusions: the paper's claims, point by point, from what chapters 1-9 recorded."""

    NEEDS_DATA: ClassVar[bool] = False
    min_spearman: float = param(0.9, number(0, 1, lo_open=True))
    min_range: float = param(0.25, number(0, 1, lo_open=True))
    max_ppl_ratio: float = param(1.3, number(0, lo_open=True))
    entangled_at: float = param(0.5, number(0, lo_open=True))


CHAPTERS: dict[str, type[Chapter]] = {
    "01_data": Data,
    "02_finetune_endpoints": FinetuneEndpoints,
    "03_attribute_scorers": Scorers,
    "04_single_attribute": SingleAttribute,
    "05_multi_attribute": MultiAttribute,
    "06_entanglement_and_geometry": Entanglement,
    "07_control": Control,
    "08_alternatives": Alternatives,
    "09_cost_of_interpolation": Cost,
    "10_conclusions": Conclusions,
}


def _chapter_class(notebook: Any) -> type[Chapter]:
    if not isinstance(notebook, str) or notebook not in CHAPTERS:
        raise ConfigError(f"{notebook!r} is not a chapter{checks.closest(str(notebook), CHAPTERS)}")
    return CHAPTERS[notebook]


def own_parameters(notebook: str) -> dict[str, dataclasses.Field]:
    """The chapter's own parameters (beyond :data:`SHARED`): name -> its dataclass field."""
    return {f.name: f for f in dataclasses.fields(_chapter_class(notebook)) if "kind" in f.metadata}


def parameters(notebook: str) -> dict[str, Any]:
    """Every parameter of chapter ``notebook`` and its default, as in its parameters cell."""
    return {**SHARED, **{k: f.metadata["default"] for k, f in own_parameters(notebook).items()}}


def check_names(notebook: str, given: Mapping[str, Any]) -> None:
    """A one-line error for the first name in ``given`` that is not a parameter of ``notebook``."""
    valid = parameters(notebook)
    for k in given:
        if k not in valid:
            raise checks.ParameterError(f"{notebook}: unknown parameter {k!r}{checks.closest(k, valid)}")


def chapter(notebook: str, namespace: Mapping[str, Any] | None = None, /, **given: Any) -> Chapter:
    """Chapter ``notebook``'s parameters, validated, with values left at None taken from the preset.

    Args:
        notebook: the chapter's name, e.g. ``"04_single_attribute"``.
        namespace: where its parameters cell put the values (``globals()`` in the notebook); only
            the chapter's parameter names are read from it.
        **given: values by name (over ``namespace``); an unknown name is an error that names the
            closest valid one.

    Precedence, for ``preset`` and ``run_dir``: the parameter when not None, else
    ``$CLM_PRESET`` / ``$CLM_RUN_DIR`` when set, else the default (``cpu``, ``runs/<preset>``);
    so a preset or run dir chosen once (``export CLM_RUN_DIR=...`` before starting JupyterLab)
    carries to every later chapter. Every other value left at None is the preset's.

    Returns:
        the chapter's :class:`Chapter` subclass: typed fields, one per parameter, plus what they
        derive (``ends`` in chapters 4-6, ``train_config`` in chapter 2).

    Raises:
        ParameterError: one line, ``<notebook>: parameter <name> must be ..., got <value>``. Nothing
        is written unless every value passes; then the run dir is created.
    """
    cls = _chapter_class(notebook)
    check_names(notebook, given)
    valid = parameters(notebook)
    raw = {**valid, **{k: namespace[k] for k in valid if namespace is not None and k in namespace}, **given}
    base = shared(notebook, *(raw[k] for k in SHARED), need_data=cls.NEEDS_DATA)
    own = own_parameters(notebook)
    for name, f in own.items():
        f.metadata["kind"].check(notebook, name, raw[name])
    P = cls(**base, **{k: raw[k] for k in own})
    return start(dataclasses.replace(P, **P.resolve()))
