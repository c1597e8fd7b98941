"""Reading text data: local .txt / .jsonl / .csv / .tsv files, with one-line errors.

``read_texts`` is the one reader every part of clm uses for local files (training corpora,
scorer data, prompts). Paths always come from parameters: nothing here knows where the shared
data lives.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from clm.errors import ConfigError, DataError
from clm.io import read_utf8


def read_texts(
    path: str | os.PathLike,
    field: str | None = None,
    label_column: str | None = None,
    label_value: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """Read non-empty texts from a local file.

    Args:
        path: a ``.txt`` (one text per line), ``.jsonl`` (one object per line), ``.csv`` or
            ``.tsv`` file.
        field: the JSON field or CSV column holding the text. Defaults: ``text`` for .jsonl
            (``prompt`` if there is no ``text``), ``text`` for .csv/.tsv.
        label_column, label_value: for .jsonl/.csv/.tsv, keep only rows whose
            ``label_column`` equals ``label_value`` (compared as strings).
        limit: keep at most this many texts (the first ones).

    Returns:
        The texts, stripped, empty ones dropped. Raises :class:`DataError` on a missing,
        non-UTF-8 or empty file, an unknown field, or a label filter that selects nothing.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".txt", ".jsonl", ".csv", ".tsv"):
        raise DataError(f"data file {str(p)!r} has unsupported type {suffix or '(none)'!r}; use .txt, .jsonl, .csv or .tsv")
    if (label_column is None) != (label_value is None):
        raise DataError("label_column and label_value must be given together")
    raw = read_utf8(p)
    if suffix == ".txt":
        if label_column is not None:
            raise DataError(f"a label filter needs a .jsonl/.csv/.tsv file, got {str(p)!r}")
        texts = [line.strip() for line in raw.splitlines()]
    elif suffix == ".jsonl":
        rows = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise DataError(f"{str(p)!r} line {n} is not valid JSON") from None
                if not isinstance(row, dict):
                    raise DataError(f"{str(p)!r} line {n} is not a JSON object")
                rows.append(row)
        texts = _select(rows, p, field, label_column, label_value, default=("text", "prompt"))
    else:
        reader = csv.DictReader(io.StringIO(raw), delimiter="\t" if suffix == ".tsv" else ",")
        rows = list(reader)
        texts = _select(rows, p, field, label_column, label_value, default=("text",), columns=reader.fieldnames)
    texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise DataError(f"data file {str(p)!r} holds no texts")
    return texts[:limit] if limit is not None else texts


def _select(rows, path, field, label_column, label_value, default, columns=None) -> list[str]:
    if not rows:
        raise DataError(f"data file {str(path)!r} is empty")
    keys = list(columns) if columns is not None else sorted({k for r in rows for k in r})
    if field is None:
        field = next((d for d in default if d in keys), None)
        if field is None:
            raise DataError(f"{str(path)!r} has no {' or '.join(map(repr, default))} field; pick one of {keys}")
    elif field not in keys:
        raise DataError(f"{str(path)!r} has no field {field!r}; fields: {keys}")
    if label_column is not None:
        if label_column not in keys:
            raise DataError(f"{str(path)!r} has no label column {label_column!r}; fields: {keys}")
        rows = [r for r in rows if str(r.get(label_column)) == str(label_value)]
        if not rows:
            raise DataError(f"label filter {label_column}={label_value!r} selects no rows of {str(path)!r}")
    return [r.get(field) for r in rows]


def attribute_file(data_dir: str | os.PathLike, attribute: str, pole: str, split: str) -> Path:
    """``<data_dir>/attributes/<attribute>/<pole>.<split>.jsonl`` (the shared data's layout)."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    return Path(data_dir) / "attributes" / attribute / f"{pole}.{split}.jsonl"


def read_hub_texts(
    name: str,
    subset: str | None = None,
    split: str = "train",
    field: str | None = None,
    label_column: str | None = None,
    label_value: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """Read texts from a Hugging Face hub dataset through ``datasets`` (readers who are online).

    Same contract as :func:`read_texts`: the default field is ``text`` (else ``sentence``),
    labels compare as strings, and every failure is a one-line :class:`DataError`.
    """
    try:
        import datasets
    except ImportError:  # pragma: no cover
        raise DataError("hub datasets need the 'datasets' package: pip install 'clm[book]'") from None
    try:
        ds = datasets.load_dataset(name, subset, split=split)
    except Exception as err:  # network, unknown name or split: all one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(f"cannot load hub dataset {name!r} ({subset or 'default'}, {split}): {first}") from None
    rows = ds.to_list() if hasattr(ds, "to_list") else list(ds)
    texts = _select(rows, f"hub:{name}", field, label_column, label_value, default=("text", "sentence"), columns=ds.column_names)
    texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise DataError(f"hub dataset {name!r} ({split}) holds no texts")
    return texts[:limit] if limit is not None else texts


def pack_blocks(token_ids: list[list[int]], block_size: int, eos_id: int | list[int]) -> list[list[int]]:
    """Join tokenized texts, each followed by a separator, and cut the stream into full blocks.

    The packing of transformers' ``run_clm`` example (and so of the paper): no padding, the last
    partial block is dropped.

    Args:
        token_ids: one list of token ids per text.
        block_size: tokens per block.
        eos_id: the separator appended after every text: one token id (EOS) or a list of ids
            (e.g. the tokens of ``"\\n\\n"``).

    Returns:
        ``len(stream) // block_size`` blocks of exactly ``block_size`` ids.
    """
    if block_size < 1:
        raise DataError(f"block_size must be >= 1, got {block_size}")
    sep = [eos_id] if isinstance(eos_id, int) else list(eos_id)
    stream: list[int] = []
    for ids in token_ids:
        stream.extend(ids)
        stream.extend(sep)
    n = len(stream) // block_size
    return [stream[i * block_size : (i + 1) * block_size] for i in range(n)]


def readme_table(path: str | os.PathLike, heading: str = "## Attributes"):
    """The first markdown table after the line starting with ``heading`` in ``path``, as a
    DataFrame of strings (the shared data's README lists its attributes so)."""
    import pandas as pd

    lines = read_utf8(Path(path)).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        raise DataError(f"{str(path)!r} has no {heading!r} section")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    if not rows:
        raise DataError(f"{str(path)!r} has no table after {heading!r}")
    header, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]
    return pd.DataFrame(body, columns=header)


def corpus_sizes(data_dir: str | os.PathLike, sources: dict[str, tuple[str, str]], rng, sample: int):
    """One row per source, pole and split: the number of texts and their length in words.

    Args:
        data_dir: the shared data (:func:`attribute_file`'s layout).
        sources: source directory (``"sentiment"``, ``"sentiment-tweets"``, ...) -> its (low, high)
            pole names; the attribute is the name before any ``-``.
        rng: a ``random.Random``; lengths come from a sample of ``sample`` texts per file drawn
            from it, in the order of ``sources``, poles low then high, splits train then test.
        sample: texts per file for the length statistics (counts are always exact).

    Returns:
        A DataFrame with columns attribute, source, pole, split, texts, mean_words and words
        (the sample's lengths).
    """
    import pandas as pd

    rows = []
    for name, poles in sources.items():
        for pole in poles:
            for split in ("train", "test"):
                texts = read_texts(attribute_file(data_dir, name, pole, split))
                words = [len(t.split()) for t in rng.sample(texts, min(sample, len(texts)))]
                rows.append(
                    dict(
                        attribute=name.split("-")[0],
                        source=name,
                        pole=pole,
                        split=split,
                        texts=len(texts),
                        mean_words=sum(words) / len(words),
                        words=words,
                    )
                )
    return pd.DataFrame(rows)


#: Development prompts: the LAST this many of a prompts file; the book evaluates on the first ones.
DEV_PROMPTS = 100


def dev_prompts(path: str | os.PathLike, n: int = DEV_PROMPTS) -> list[str]:
    """The last ``n`` prompts of a prompts file; refuses any ``n`` whose prompts could overlap the
    first half (the book's test prompts), so choosing on development data can't touch test data."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    texts = read_texts(path)
    if n > len(texts) // 2:
        raise ConfigError(f"n = {n} dev prompts would overlap the first half of {str(path)!r} ({len(texts)} prompts)")
    return texts[-n:]
