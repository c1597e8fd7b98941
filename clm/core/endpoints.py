"""Endpoints: a directory of LoRA adapters, two per attribute (a low and a high pole).

Layout::

    <path>/manifest.json            base id and fingerprint, attributes and pole names,
                                    the base's Linear shapes (to validate adapters offline)
    <path>/<attribute>/low/         a standard PEFT adapter: adapter_config.json +
    <path>/<attribute>/high/        adapter_model.safetensors

Adapters trained anywhere with PEFT can be added; each is validated against the base (module
names and shapes; ranks may differ) before anything is written. Writes are atomic: an adapter is
copied to a temporary directory and renamed into place, and the manifest is replaced in one step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clm.core.attributes import NAME_RE, POLES, Pole
from clm.core.models import BaseInfo, read_safetensors_header
from clm.errors import EndpointsError, ModelError
from clm.io import atomic_write_text

FORMAT = "clm-endpoints/1"
MANIFEST = "manifest.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: Written beside an adapter by clm.train: the fingerprint of the base it was trained on.
PROVENANCE = "clm_adapter.json"
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class LoraFactors:
    """One module's LoRA factors: ΔW = scale · B · A, A: (r, d_in), B: (d_out, r)."""

    A: Any  # torch.Tensor (r, d_in)
    B: Any  # torch.Tensor (d_out, r)
    scale: float

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches a module name's suffix."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def read_adapter(directory: str | os.PathLike, base_modules: dict[str, list[int]] | None = None) -> dict[str, LoraFactors]:
    """Read and validate a PEFT LoRA adapter directory.

    Args:
        directory: holds adapter_config.json and adapter_model.safetensors.
        base_modules: module name -> [d_out, d_in] of the base; when given, every adapted module
            must exist there with matching shapes.

    Returns:
        module name (as in the base model) -> LoraFactors, tensors in float32.
    """
    d = Path(directory)
    if not d.is_dir():
        raise EndpointsError(f"adapter directory {str(d)!r} does not exist")
    for fname in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (d / fname).is_file():
            raise EndpointsError(f"adapter {str(d)!r} is missing {fname}")
    cfg = _read_adapter_config(d)
    pairs = _read_lora_tensors(d)
    return {module: _lora_factors(d, module, ab, cfg, base_modules) for module, ab in sorted(pairs.items())}


def _read_adapter_config(d: Path) -> dict[str, Any]:
    """``d``'s adapter_config.json, checked to describe a plain LoRA (no DoRA, no saved modules)."""
    try:
        cfg = json.loads((d / ADAPTER_CONFIG).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EndpointsError(f"{d / ADAPTER_CONFIG} is not valid JSON: {err}") from None
    if not isinstance(cfg, dict) or str(cfg.get("peft_type", "")).upper() != "LORA":
        raise EndpointsError(f"{d / ADAPTER_CONFIG}: peft_type must be LORA, got {cfg.get('peft_type') if isinstance(cfg, dict) else cfg!r}")
    for flag in ("use_dora", "fan_in_fan_out"):
        if cfg.get(flag):
            raise EndpointsError(f"{d}: {flag}=true is not supported (ΔW must be s·B·A on a Linear)")
    if cfg.get("modules_to_save"):
        raise EndpointsError(f"{d}: modules_to_save={cfg['modules_to_save']!r} is not supported (not a LoRA delta)")
    return cfg


def _read_lora_tensors(d: Path) -> dict[str, dict[str, Any]]:
    """module name -> {"A": lora_A, "B": lora_B} (as stored) from ``d``'s adapter_model.safetensors."""
    from safetensors.torch import load_file

    try:
        read_safetensors_header(d / ADAPTER_WEIGHTS)
        tensors = load_file(str(d / ADAPTER_WEIGHTS))
    except ModelError as err:
        raise EndpointsError(str(err)) from None
    except Exception as err:  # safetensors raises its own error types
        raise EndpointsError(f"{d / ADAPTER_WEIGHTS} is corrupt: {str(err).splitlines()[0]}") from None
    pairs: dict[str, dict[str, Any]] = {}
    for key, t in tensors.items():
        m = _KEY.match(key)
        if m is None:
            raise EndpointsError(f"{d / ADAPTER_WEIGHTS}: unsupported tensor {key!r} (only Linear lora_A/lora_B)")
        pairs.setdefault(m["module"], {})[m["ab"]] = t
    if not pairs:
        raise EndpointsError(f"{d / ADAPTER_WEIGHTS} holds no LoRA tensors")
    return pairs


def _lora_factors(
    d: Path, module: str, ab: dict[str, Any], cfg: dict[str, Any], base_modules: dict[str, list[int]] | None
) -> LoraFactors:
    """One module's factors in float32 with their scale s = lora_alpha / r (or / √r for rsLoRA),
    checked: a pair of finite 2-D factors of one rank, the rank the config says, the base's shapes."""
    import torch

    if set(ab) != {"A", "B"}:
        raise EndpointsError(f"{d}: module {module!r} has lora_{'A' if 'A' in ab else 'B'} but not its pair")
    A, B = ab["A"].to(torch.float32), ab["B"].to(torch.float32)
    if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
        raise EndpointsError(f"{d}: module {module!r} has lora_A {list(A.shape)} and lora_B {list(B.shape)}; ranks differ")
    if not (torch.isfinite(A).all() and torch.isfinite(B).all()):
        raise EndpointsError(f"{d}: module {module!r} has non-finite LoRA weights")
    if base_modules is not None:
        if module not in base_modules:
            raise EndpointsError(f"{d}: module {module!r} is not a Linear module of the base; adapter for another base?")
        d_out, d_in = base_modules[module]
        if A.shape[1] != d_in or B.shape[0] != d_out:
            raise EndpointsError(
                f"{d}: module {module!r} maps {A.shape[1]}->{B.shape[0]} but the base's maps {d_in}->{d_out}; adapter for another base?"
            )
    r_cfg = _pattern_value(cfg.get("rank_pattern", {}), module, cfg.get("r", 8))
    if r_cfg != A.shape[0]:
        raise EndpointsError(f"{d}: module {module!r} has rank {A.shape[0]} but its config says r={r_cfg}")
    lora_alpha = _pattern_value(cfg.get("alpha_pattern", {}), module, cfg.get("lora_alpha", 8))
    scale = float(lora_alpha) / (math.sqrt(r_cfg) if cfg.get("use_rslora") else float(r_cfg))
    return LoraFactors(A.contiguous(), B.contiguous(), scale)


class Endpoints:
    """A directory of endpoint adapters on one base model.

    Use :meth:`create` for a new directory and :meth:`load` for an existing one.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self._manifest = manifest
        self._digests: dict[tuple[str, ...] | None, str] = {}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def create(cls, path: str | os.PathLike, base: Any) -> Endpoints:
        """Create an empty endpoints directory for ``base`` (a name, directory, hub id or a
        model from :func:`clm.load_base`). Raises if ``path`` exists."""
        p = Path(path)
        if p.exists():
            raise EndpointsError(f"endpoints path {str(p)!r} already exists; use Endpoints.load to open it")
        info = BaseInfo.of(base)
        manifest = {
            "format": FORMAT,
            "base": {"id": info.id, "fingerprint": info.fingerprint},
            "attributes": {},
            "base_modules": info.modules,
        }
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
        try:
            _write_json(tmp / MANIFEST, manifest)
            os.replace(tmp, p)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(p, manifest)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Endpoints:
        """Open an endpoints directory, checking that every listed adapter's files are present
        and their safetensors headers intact."""
        p = Path(path)
        if not p.is_dir():
            raise EndpointsError(f"endpoints directory {str(p)!r} does not exist")
        if not (p / MANIFEST).is_file():
            raise EndpointsError(f"endpoints directory {str(p)!r} is missing {MANIFEST}")
        try:
            manifest = json.loads((p / MANIFEST).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise EndpointsError(f"{p / MANIFEST} is not valid JSON: {err}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise EndpointsError(f"{p / MANIFEST}: format must be {FORMAT!r}")
        base, modules = manifest.get("base"), manifest.get("base_modules", {})
        if not (isinstance(base, dict) and all(isinstance(base.get(k), str) for k in ("id", "fingerprint"))):
            raise EndpointsError(f"{p / MANIFEST}: base must be an object with string id and fingerprint, got {base!r}")
        if not isinstance(modules, dict):
            raise EndpointsError(f"{p / MANIFEST}: base_modules must be an object, got {type(modules).__name__}")
        _check_manifest_names(p / MANIFEST, manifest)
        ends = cls(p, manifest)
        for attr in ends.attributes:
            for pole in POLES:
                d = ends.adapter_dir(attr, pole)
                for fname in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
                    if not (d / fname).is_file():
                        raise EndpointsError(f"endpoints {str(p)!r}: {attr}/{pole} is missing {fname}")
                try:
                    read_safetensors_header(d / ADAPTER_WEIGHTS)
                except ModelError as err:
                    raise EndpointsError(str(err)) from None
        return ends

    # ------------------------------------------------------------------ contents
    @property
    def base_id(self) -> str:
        return self._manifest["base"]["id"]

    @property
    def base_fingerprint(self) -> str:
        return self._manifest["base"]["fingerprint"]

    @property
    def base_modules(self) -> dict[str, list[int]]:
        return self._manifest.get("base_modules", {})

    @property
    def attributes(self) -> list[str]:
        return list(self._manifest["attributes"])

    def poles(self, attribute: str) -> tuple[str, str]:
        """(low pole name, high pole name)."""
        a = self._attr(attribute)
        return a["low"], a["high"]

    def adapter_dir(self, attribute: str, pole: Pole) -> Path:
        self._attr(attribute)
        if pole not in POLES:
            raise EndpointsError(f"pole must be 'low' or 'high', got {pole!r}")
        return self.path / attribute / pole

    def factors(self, attribute: str, pole: Pole) -> dict[str, LoraFactors]:
        """Load and validate one endpoint adapter's factors."""
        return read_adapter(self.adapter_dir(attribute, pole), self.base_modules or None)

    def _attr(self, attribute: str) -> dict[str, str]:
        attrs = self._manifest["attributes"]
        if attribute not in attrs:
            raise EndpointsError(f"unknown attribute {attribute!r}; the endpoints have: {', '.join(attrs) or 'none'}")
        return attrs[attribute]

    def __contains__(self, attribute: object) -> bool:
        return attribute in self._manifest["attributes"]

    def digest(self, attributes: Sequence[str] | None = None) -> str:
        """A sha1 over the base fingerprint and the adapter weights of ``attributes`` (None: all).

        Sweep tables key their rows by it, so retrained endpoints invalidate exactly the rows that
        used them. Computed once per object and subset (the adapters are read once, not per call);
        :meth:`add` forgets it."""
        key = None if attributes is None else tuple(sorted(set(attributes)))
        if key not in self._digests:
            h = hashlib.sha1(self.base_fingerprint.encode())
            for a in self.attributes if key is None else key:
                for pole in POLES:
                    h.update(f"{a}/{pole}".encode())
                    h.update((self.adapter_dir(a, pole) / ADAPTER_WEIGHTS).read_bytes())
            self._digests[key] = h.hexdigest()
        return self._digests[key]

    def __repr__(self) -> str:
        parts = [f"{a}({lo}|{hi})" for a, (lo, hi) in ((a, self.poles(a)) for a in self.attributes)]
        return f"Endpoints({str(self.path)!r}, base={self.base_id!r}, {', '.join(parts) or 'empty'})"

    # ------------------------------------------------------------------ writing
    def add(
        self,
        attribute: str,
        low: str | os.PathLike,
        high: str | os.PathLike,
        low_name: str = "low",
        high_name: str = "high",
        replace: bool = False,
    ) -> None:
        """Validate two PEFT adapters against the base and copy them in as one attribute.

        Nothing is written unless both adapters are valid.
        """
        if not isinstance(attribute, str) or not NAME_RE.match(attribute):
            raise EndpointsError(f"attribute name must be identifier-like, got {attribute!r}")
        for what, name in (("low_name", low_name), ("high_name", high_name)):
            if not isinstance(name, str) or not name.strip():
                raise EndpointsError(f"{what} must be a non-empty string, got {name!r}")
        if low_name == high_name:
            raise EndpointsError(f"the two poles need different names, got {low_name!r} twice")
        if attribute in self and not replace:
            raise EndpointsError(f"attribute {attribute!r} already exists in {str(self.path)!r}; pass replace=True")
        for src in (low, high):
            read_adapter(src, self.base_modules or None)
            self._check_provenance(Path(src))
        tmp = Path(tempfile.mkdtemp(prefix=f".{attribute}.", dir=self.path))
        try:
            for pole, src in (("low", low), ("high", high)):
                dst = tmp / pole
                dst.mkdir()
                for f in Path(src).iterdir():
                    if f.is_file() and (f.name.startswith("adapter_") or f.name in (PROVENANCE, "README.md")):
                        shutil.copy2(f, dst / f.name)
            final = self.path / attribute
            old = None
            if final.exists():
                old = self.path / f".{attribute}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        manifest = json.loads(json.dumps(self._manifest))
        manifest["attributes"][attribute] = {"low": low_name, "high": high_name}
        _write_json(self.path / MANIFEST, manifest)
        self._manifest = manifest
        self._digests.clear()

    def _check_provenance(self, src: Path) -> None:
        prov = src / PROVENANCE
        if prov.is_file():
            try:
                fp = json.loads(prov.read_text()).get("base_fingerprint")
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
                raise EndpointsError(f"{prov} is not valid JSON") from None
            if fp and fp != self.base_fingerprint:
                raise EndpointsError(
                    f"adapter {str(src)!r} was trained on base fingerprint {fp[:16]}…, these endpoints are for {self.base_fingerprint[:16]}…"
                )


def _check_manifest_names(path: Path, manifest: dict[str, Any]) -> None:
    """Attribute and pole names read from a manifest are plain names: none reaches outside the
    endpoints directory (a one-line EndpointsError naming the bad one)."""
    attrs = manifest.get("attributes")
    if not isinstance(attrs, dict):
        raise EndpointsError(f"{path}: attributes must be an object, got {attrs!r}")
    for attr, poles in attrs.items():
        if not NAME_RE.match(attr):
            raise EndpointsError(f"{path}: attribute name {attr!r} is not identifier-like")
        for pole in POLES:
            name = poles.get(pole) if isinstance(poles, dict) else None
            if not isinstance(name, str) or not name.strip() or name.strip(".") == "" or any(c in name for c in "/\\\0"):
                raise EndpointsError(f"{path}: {attr}'s {pole} pole name {name!r} is not a plain name")


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))
