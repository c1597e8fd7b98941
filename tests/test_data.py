"""clm.data's table readers: the data README's table and per-file corpus sizes."""

from __future__ import annotations

import json
import random

import pytest

from clm.data import corpus_sizes, read_texts, readme_table
from clm.errors import DataError

README = """# Data

Intro.

## Attributes

| attribute | low pole | high pole |
|---|:--|--:|
| sentiment | negative | positive |
| sentiment-tweets | negative | positive |

## Next
| not | this |
"""


def test_readme_table(tmp_path):
    p = tmp_path / "README.md"
    p.write_text(README)
    t = readme_table(p)
    assert list(t.columns) == ["attribute", "low pole", "high pole"]
    assert t.values.tolist() == [["sentiment", "negative", "positive"], ["sentiment-tweets", "negative", "positive"]]
    assert readme_table(p, "## Next").columns.tolist() == ["not", "this"]
    with pytest.raises(DataError, match="has no '## Sources' section"):
        readme_table(p, "## Sources")
    p.write_text("## Attributes\n\nno table\n")
    with pytest.raises(DataError, match="has no table after '## Attributes'"):
        readme_table(p)


def test_corpus_sizes_counts_and_samples(tmp_path):
    texts = {("sentiment", "negative"): ["a b", "c d e", "f"], ("sentiment", "positive"): ["g h i j"]}
    texts[("sentiment-tweets", "negative")] = ["k"] * 5
    texts[("sentiment-tweets", "positive")] = ["l m"] * 2
    for (src, pole), ts in texts.items():
        (tmp_path / "attributes" / src).mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            (tmp_path / "attributes" / src / f"{pole}.{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in ts))
    poles = {"sentiment": ("negative", "positive"), "sentiment-tweets": ("negative", "positive")}
    df = corpus_sizes(tmp_path, poles, random.Random(0), sample=2)
    assert len(df) == 8 and set(df.attribute) == {"sentiment"}
    assert df[["source", "pole", "split"]].values.tolist()[:3] == [
        ["sentiment", "negative", "train"], ["sentiment", "negative", "test"], ["sentiment", "positive", "train"],
    ]  # fmt: skip
    assert df.texts.tolist() == [3, 3, 1, 1, 5, 5, 2, 2]
    # the lengths are those of a sample of 2 drawn in this order from the same generator
    rng, expect = random.Random(0), []
    for src, (lo, hi) in poles.items():
        for pole in (lo, hi):
            for split in ("train", "test"):
                ts = read_texts(tmp_path / "attributes" / src / f"{pole}.{split}.jsonl")
                expect.append([len(t.split()) for t in rng.sample(ts, min(2, len(ts)))])
    assert df.words.tolist() == expect
    assert df.mean_words.tolist() == [sum(w) / len(w) for w in expect]
