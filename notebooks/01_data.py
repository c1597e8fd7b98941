# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The data: five attributes, two poles each
#
# The paper dials five style **attributes**, each between two **poles**. An endpoint adapter is
# trained on text of one pole; a scorer learns to tell the poles apart. This chapter shows what
# those texts are: where they come from and under which licence (read from the data's own
# `README.md` when the notebook runs), how many there are, what they look like, and how they
# compare with what a scorer will be asked to judge: 32-token continuations of story prompts.

# %% tags=["parameters"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
n_examples = 3  # example texts shown per pole

# %%
import random

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from clm.book.chapters import chapter
from clm.core.attributes import ATTRIBUTES
from clm.data import attribute_file, read_texts

P = chapter("01_data", globals())  # every parameter above, checked; None: the preset's
n_examples = P.n_examples
length_sample = 300 if P.preset.smoke else 5000  # texts per pole for the length statistics
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})
pd.set_option("display.max_colwidth", 120)
print(P.describe())

# %% [markdown]
# ## Sources and licences
#
# The table below is parsed from the data's `README.md` at run time, so it always says what the
# data on this machine says. Each attribute has the paper's source (the endpoints are trained
# on it) and a second, broader source from another domain (a scorer that only recognises the
# endpoint's domain would be a weak measure, so chapter 3 tests scorers on both).


# %%
from clm.data import corpus_sizes, readme_table

readme = readme_table(P.data_dir / "README.md")  # its "## Attributes" table
readme["paper's source"] = readme["attribute"].isin(list(ATTRIBUTES))
readme["source"] = readme.filter(like="source (").iloc[:, 0].str.replace("**", "", regex=False)
sources = readme[["attribute", "low pole", "high pole", "source", "licence as stated", "paper's source"]]
sources

# %% [markdown]
# Two licences shape what this book may show. The GYAFC subset behind **formality** is for
# research use only, so its text is never printed here (the examples below skip it); adapters
# and scores computed from it are shown. The tweets are under Twitter's terms.

# %% [markdown]
# ## Sizes
#
# Every file is counted here (the README's counts are quoted beside them as a check), with the
# mean length in words from a seeded sample.

# %%
rng = random.Random(P.seed)
attribute_of = {s: ATTRIBUTES[s.split("-")[0]] for s in readme["attribute"]}  # "sentiment-tweets" -> sentiment
sizes = corpus_sizes(P.data_dir, {s: (a.low, a.high) for s, a in attribute_of.items()}, rng, length_sample)
stated = {r["attribute"]: (r["train low/high"], r["test low/high"]) for _, r in readme.iterrows()}
table = sizes.pivot_table(index=["source", "pole"], columns="split", values="texts", aggfunc="sum", sort=False)[
    ["train", "test"]
]
table["mean words"] = sizes[sizes.split == "train"].set_index(["source", "pole"])["mean_words"].round(1)
table["README train low/high"] = [stated[s][0] for s, _ in table.index]
table

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
train = sizes[sizes.split == "train"].assign(
    side=lambda d: d.apply(lambda r: "low" if r.pole == ATTRIBUTES[r.attribute].low else "high", axis=1)
)
sns.barplot(train, x="texts", y="source", hue="side", ax=axes[0], palette="Set2")
axes[0].set(title="Training texts per pole", xlabel="texts (train split)", ylabel="")
lengths = train.explode("words").astype({"words": float})
sns.boxplot(lengths, x="words", y="source", hue="side", ax=axes[1], palette="Set2", showfliers=False)
axes[1].axvline(24, color="k", ls="--", lw=1, label="a 32-token continuation (≈24 words)")
axes[1].set(title="Length of a training text", xlabel="words", ylabel="")
axes[1].legend(handles=axes[1].get_legend_handles_labels()[0][-1:], loc="lower right", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Some poles are unbalanced (politeness has far more polite than impolite sentences) and some
# are small (the GYAFC subset). Training balances the poles by training each endpoint on its own
# pole only; scorers are trained on balanced samples (chapter 3).
#
# ## What the texts look like
#
# A few training texts per pole of the paper's sources, drawn with the notebook's seed.

# %%
examples = []
for attr in ATTRIBUTES.values():
    for pole in (attr.low, attr.high):
        if attr.name == "formality":  # GYAFC: research use only, do not redistribute the text
            examples.append(dict(attribute=attr.name, pole=pole, text="(GYAFC text is not shown: research use only)"))
            continue
        texts = read_texts(attribute_file(P.data_dir, attr.name, pole, "train"))
        for text in rng.sample(texts, min(n_examples, len(texts))):
            examples.append(dict(attribute=attr.name, pole=pole, text=text[:160] + ("…" if len(text) > 160 else "")))
pd.DataFrame(examples).set_index(["attribute", "pole"])

# %% [markdown]
# The known quirks, from the data's README, matter for reading every later chapter: SST-2 holds
# phrases as well as sentences; Madaan's `P_0` class is often formal business prose rather than
# rude; FlickrStyle's non-humorous pole is *romantic* captions; the novels behind "complex" are
# 19th-century prose, not just harder text.
#
# ## What a scorer will see
#
# Scorers are trained on these texts but applied to something else: the 32 tokens the
# interpolated model writes after a WritingPrompts prompt {cite:p}`fan2018hierarchical`. The
# prompt is not part of the scored text. The prompts and the perplexity text look like this:

# %%
prompts = read_texts(P.data_dir / "prompts" / "writing_prompts.jsonl")
wikitext = (P.data_dir / "eval" / "wikitext2_test.raw.txt").read_text(encoding="utf-8")
print(
    f"{len(prompts):,} WritingPrompts prompts; the {P.preset.name} preset uses the first {P.preset.n_prompts:,}, "
    f"{P.preset.samples} sample(s) each, {P.preset.max_new_tokens} new tokens"
)
for p in rng.sample(prompts, 3):
    print("  prompt:", p[:140])
print(f"WikiText-2 test (perplexity): {len(wikitext.split()):,} words in {len(wikitext.splitlines()):,} lines")

# %% [markdown]
# A continuation (the dashed line in the figure) is longer than a typical SST-2, GYAFC or
# FlickrStyle text, about as long as a Madaan e-mail sentence, and far shorter than a novel
# passage or a TinyStories story, which the simplicity scorer learns from. It also continues a
# story prompt, so its domain is fiction for every attribute. A scorer that relies on the
# *domain* of its training pole (captions, movie reviews, e-mail, 19th-century prose) rather than
# on the attribute would score continuations poorly: that is why chapter 3 tests every scorer on
# a second source from another domain.

# %%
P.record(
    "01_data",
    sizes={f"{r.source}/{r.pole}/{r.split}": int(r.texts) for r in sizes.itertuples()},
    n_prompts_available=len(prompts),
    wikitext_words=len(wikitext.split()),
)
print("recorded", P.metrics_path("01_data"))
