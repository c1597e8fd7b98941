"""The training config of ``clm.train``: typed, validated, loadable from YAML, with presets.

One :class:`TrainConfig` holds everything a run of :func:`clm.train.trainer.train_endpoints` needs: the
base model and its quantization, the attributes (a name, two poles and a data source per pole),
LoRA (r, alpha, dropout, target modules), optimisation (learning rate, batch, gradient
accumulation, epochs or max steps, block size, warmup, seed) and the held-out fraction::

    cfg = TrainConfig.from_preset("cpu", attributes=["sentiment"], learning_rate=1e-3)
    cfg = TrainConfig.from_yaml("my_run.yaml")      # may start from a preset: `preset: cpu`
    cfg.to_yaml("my_run.yaml")

Unknown keys are errors that name the key and the closest valid one. Every error is a one-line
:class:`~clm.errors.ConfigError`.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clm.core.attributes import ATTRIBUTES
from clm.errors import ConfigError
from clm.presets import TRAIN


class _Presets(Mapping):
    """The training presets, read live from :data:`clm.presets.PRESETS` (each one's ``train``):
    name -> TrainConfig values; a preset that names no attributes trains every attribute."""

    def __getitem__(self, name: str) -> dict[str, Any]:
        # a fresh copy, tuples as lists (as YAML and pydantic give them)
        fresh = {k: list(v) if isinstance(v, tuple) else copy.deepcopy(v) for k, v in TRAIN[name].items()}
        return {"attributes": list(ATTRIBUTES), **fresh}

    def __iter__(self) -> Iterator[str]:
        return iter(TRAIN)

    def __len__(self) -> int:
        return len(TRAIN)


PRESETS: Mapping[str, dict[str, Any]] = _Presets()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoleSpec(_Strict):
    """One pole of an attribute and where its texts come from.

    A source is either ``path`` (a local .txt/.jsonl/.csv/.tsv file; a relative path is taken
    relative to the config's ``data_dir``) or ``dataset`` (a Hugging Face hub dataset name, read
    with ``datasets.load_dataset(dataset, subset, split=split)``, for readers who are online).
    """

    name: str = Field(pattern=r"^[^/\\]+$", description="the pole's name, e.g. 'negative'")
    path: str | None = Field(None, description="local data file (relative to data_dir)")
    dataset: str | None = Field(None, description="hub dataset name, instead of path")
    subset: str | None = Field(None, description="the hub dataset's config name")
    split: str = Field("train", description="the hub dataset's split")
    field: str | None = Field(None, description="the JSON field / CSV column / dataset column holding the text")
    label_column: str | None = Field(None, description="keep only rows whose label_column ...")
    label_value: str | int | None = Field(None, description="... equals label_value (compared as strings)")

    @model_validator(mode="after")
    def _one_source(self) -> PoleSpec:
        if (self.path is None) == (self.dataset is None):
            raise ValueError(f"pole {self.name!r} needs exactly one of path or dataset")
        if (self.label_column is None) != (self.label_value is None):
            raise ValueError(f"pole {self.name!r}: label_column and label_value go together")
        return self

    def describe(self) -> str:
        src = (
            self.path
            if self.path is not None
            else f"hub:{self.dataset}" + (f"/{self.subset}" if self.subset else "") + f"[{self.split}]"
        )
        return src + (f" where {self.label_column}={self.label_value}" if self.label_column else "")


class AttributeSpec(_Strict):
    """An attribute: a name and its two poles (low = pole 0, high = pole 1)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    low: PoleSpec
    high: PoleSpec

    @classmethod
    def registry(cls, name: str) -> AttributeSpec:
        """The paper's attribute ``name`` (see :mod:`clm.attributes`), its data under
        ``<data_dir>/attributes/<name>/<pole>.train.jsonl``."""
        if name not in ATTRIBUTES:
            raise ConfigError(f"unknown attribute {name!r}{_closest(name, ATTRIBUTES)}; or give name, low and high")
        a = ATTRIBUTES[name]
        return cls(
            name=name,
            low=PoleSpec(name=a.low, path=f"attributes/{name}/{a.low}.train.jsonl"),
            high=PoleSpec(name=a.high, path=f"attributes/{name}/{a.high}.train.jsonl"),
        )

    @model_validator(mode="after")
    def _distinct(self) -> AttributeSpec:
        if self.low.name == self.high.name:
            raise ValueError(f"attribute {self.name!r}: the poles need different names, got {self.low.name!r} twice")
        return self


class TrainConfig(_Strict):
    """Everything that defines how the endpoint adapters are trained (see the module docstring)."""

    preset: str | None = Field(None, description="the preset this config started from (informational)")
    note: str = Field("", description="why this config's values are what they are")
    # --- base model
    model: str = Field("smollm2-135m", min_length=1, description="registry name, local dir or hub id")
    quantization: Literal["nf4"] | None = Field(None, description="'nf4': 4-bit NF4 base (QLoRA)")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="base weights / compute dtype")
    # --- data
    attributes: list[AttributeSpec] = Field(min_length=1)
    data_dir: str | None = Field(None, description="root for relative data paths (None: clm.book.params.default_data_dir())")
    max_texts: int | None = Field(
        None, ge=1, description="use at most this many texts per pole (after a seeded shuffle)"
    )
    eval_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="held-out fraction of blocks for the eval loss")
    block_size: int = Field(128, ge=4, description="tokens per packed block")
    separator: str = Field(
        "eos",
        min_length=1,
        description=(
            "what joins packed texts: 'eos' (the tokenizer's EOS token) or a string such as '\\n\\n'. "
            "With EOS the endpoints learn to end a text after every sentence, and since generation "
            "stops at EOS, short-text corpora then give many empty continuations"
        ),
    )
    # --- LoRA
    r: int = Field(32, description="LoRA rank")
    lora_alpha: float = Field(16, gt=0, description="LoRA alpha; the update is scaled by alpha / r")
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1)
    # --- optimisation
    learning_rate: float = Field(5e-5, gt=0)
    learning_rate_by_attribute: dict[str, float] = Field(
        default_factory=dict, description="per-attribute learning rate, e.g. {humor: 7.5e-4}"
    )
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(16, ge=1, description="blocks per device per micro-batch")
    grad_accum: int = Field(
        4, ge=1, description="micro-batches per optimizer step (divided by the number of processes)"
    )
    epochs: float = Field(1.0, gt=0)
    epochs_by_attribute: dict[str, float] = Field(
        default_factory=dict, description="per-attribute epochs, e.g. {sentiment: 20}"
    )
    max_steps: int | None = Field(None, ge=1, description="if set, optimizer steps per pole instead of epochs")
    seed: int = Field(0, ge=0)
    # --- checkpoints and logs
    save_steps: int = Field(50, ge=1, description="checkpoint every this many optimizer steps")
    save_total_limit: int = Field(2, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="eval loss every this many steps (None: save_steps)")
    logging_steps: int = Field(1, ge=1)
    keep_checkpoints: bool = Field(
        False, description="keep a finished pole's checkpoints (else deleted once its adapter is written)"
    )

    @field_validator("r")
    @classmethod
    def _rank(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"r must be a positive integer, got {v}")
        return v

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        if any(not t.strip() for t in v):
            raise ValueError("target_modules holds an empty name")
        return v

    @model_validator(mode="after")
    def _attrs(self) -> TrainConfig:
        names = [a.name for a in self.attributes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"attribute {dup[0]!r} is listed twice")
        for field in ("epochs_by_attribute", "learning_rate_by_attribute"):
            for k, v in getattr(self, field).items():
                if v <= 0:
                    raise ValueError(f"{field}[{k!r}] must be > 0, got {v}")
        return self

    # ------------------------------------------------------------------ derived
    @property
    def effective_batch(self) -> int:
        """Blocks per optimizer step: batch_size x grad_accum (kept when run on several processes)."""
        return self.batch_size * self.grad_accum

    def epochs_for(self, attribute: str) -> float:
        return float(self.epochs_by_attribute.get(attribute, self.epochs))

    def learning_rate_for(self, attribute: str) -> float:
        return float(self.learning_rate_by_attribute.get(attribute, self.learning_rate))

    def attribute(self, name: str) -> AttributeSpec:
        for a in self.attributes:
            if a.name == name:
                return a
        raise ConfigError(
            f"attribute {name!r} is not in this config{_closest(name, [a.name for a in self.attributes])}"
        )

    def data_root(self) -> Path:
        if self.data_dir not in (None, ""):
            return Path(self.data_dir).expanduser()
        from clm.paths import default_data_dir

        return default_data_dir()

    def resolve_path(self, pole: PoleSpec) -> Path:
        p = Path(pole.path).expanduser()
        return p if p.is_absolute() else self.data_root() / p

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def sha256(self) -> str:
        """sha256 of the config's canonical JSON (recorded beside each adapter)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def pole_sha256(self, attribute: str, pole: str) -> str:
        """sha256 of what shapes one pole's adapter: the config without the attribute list, notes,
        other attributes' epochs and learning rates and bookkeeping, plus this pole's data source. A finished or half-trained
        pole is reused only if this matches."""
        # Bookkeeping (checkpoint, eval and log cadence) does not change the adapter.
        skip = {"attributes", "note", "preset", "epochs_by_attribute", "learning_rate_by_attribute"}
        skip |= {"save_steps", "save_total_limit"}
        skip |= {"eval_steps", "logging_steps", "keep_checkpoints"}
        d = {k: v for k, v in self.to_dict().items() if k not in skip}
        spec = getattr(self.attribute(attribute), pole)
        d.update(attribute=attribute, pole=spec.model_dump(mode="json"), epochs=self.epochs_for(attribute))
        d.update(learning_rate=self.learning_rate_for(attribute))
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            from clm.io import atomic_write_text

            atomic_write_text(path, text)
        return text

    def replace(self, **overrides: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **overrides})

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Validate a dict (e.g. parsed YAML or papermill parameters).

        A ``preset`` key starts from that preset; the other keys override it. ``attributes``
        may hold registry names (``"sentiment"``) or full specs (dicts with name, low, high).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a train config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        name = data.get("preset")
        if name is not None:
            if name not in PRESETS:
                raise ConfigError(f"unknown preset {name!r}{_closest(str(name), PRESETS)}")
            data = {**PRESETS[name], **data}
        _check_keys(data, TrainConfig, "config")
        if "attributes" in data:
            data["attributes"] = _attributes(data["attributes"])
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(_one_line(err)) from None

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A training preset (``paper``, ``cpu``, ``tiny``: the ``train`` part of each of
        :data:`clm.presets.PRESETS`) with overrides; ``None`` overrides are ignored (so notebook
        parameters left at None keep the preset's value)."""
        return cls.from_dict({"preset": name, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise ConfigError(f"config file {str(p)!r} is not UTF-8 (byte {err.start}: {err.reason})") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{str(p)!r} is not valid YAML: {' '.join(str(err).split())}") from None
        return cls.from_dict(data or {})


# ---------------------------------------------------------------------- validation helpers
def _closest(key: str, valid) -> str:
    match = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else f"; valid: {', '.join(valid)}"


def _check_keys(data: dict[str, Any], model: type[BaseModel], where: str) -> None:
    valid = list(model.model_fields)
    for key in data:
        if key not in valid:
            raise ConfigError(f"unknown {where} key {key!r}{_closest(key, valid)}")


def _attributes(value: Any) -> Any:
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return value  # pydantic reports the type error
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(AttributeSpec.registry(item))
        elif isinstance(item, dict):
            _check_keys(item, AttributeSpec, "attribute")
            for pole in ("low", "high"):
                if isinstance(item.get(pole), dict):
                    _check_keys(item[pole], PoleSpec, f"{pole} pole")
            out.append(item)
        else:
            out.append(item)
    return out


def _one_line(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or "config"
    msg = e["msg"].removeprefix("Value error, ")
    value = e.get("input")
    shown = "" if isinstance(value, (dict, list)) or e["type"] == "missing" else f" (got {value!r})"
    return f"config {loc}: {msg}{shown}"
