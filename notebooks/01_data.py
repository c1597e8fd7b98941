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

# %% tags=["parameters", "hide-input"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
n_examples = 3  # example texts shown per pole

# %% tags=["remove-input"]
import random

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from clm.book import display as show
from clm.book.chapters import chapter
from clm.core.attributes import ATTRIBUTES
from clm.data import attribute_file, read_texts

P = chapter("01_data", globals())  # every parameter above, checked; None: the preset's
n_examples = P.n_examples
length_sample = 300 if P.preset.smoke else 5000  # texts per pole for the length statistics
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})
show.setup_line(P)

# %% [markdown]
# ## Sources and licences
#
# The table below is parsed from the data's `README.md` at run time, so it always says what the
# data on this machine says. Each attribute has the paper's source (the endpoints are trained
# on it) and a second, broader source from another domain (a scorer that only recognises the
# endpoint's domain would be a weak measure, so chapter 3 tests scorers on both).


# %% tags=["hide-input"]
from clm.data import corpus_sizes, readme_table

readme = readme_table(P.data_dir / "README.md")  # its "## Attributes" table
readme["paper's source"] = readme["attribute"].isin(list(ATTRIBUTES)).map({True: "yes", False: "no"})
readme["source"] = readme.filter(like="source (").iloc[:, 0].str.replace("**", "", regex=False)
sources = readme[["attribute", "low pole", "high pole", "source", "licence as stated", "paper's source"]]
show.table(sources, caption="The data's sources, as its README states them", columns={"attribute": "data folder"})

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
# source folder -> its attribute ("sentiment-tweets" -> sentiment)
attribute_of = {s: ATTRIBUTES[s.split("-")[0]] for s in readme.attribute}
poles = {s: (a.low, a.high) for s, a in attribute_of.items()}
sizes = corpus_sizes(P.data_dir, poles, rng, length_sample)

# %% tags=["remove-input"]
stated = {r["attribute"]: (r["train low/high"], r["test low/high"]) for _, r in readme.iterrows()}
table = sizes.pivot_table(index=["source", "pole"], columns="split", values="texts", aggfunc="sum", sort=False)[
    ["train", "test"]
]
table["mean words"] = sizes[sizes.split == "train"].set_index(["source", "pole"])["mean_words"]
table["README train low/high"] = [stated[s][0] for s, _ in table.index]
table[["train", "test"]] = table[["train", "test"]].map("{:,}".format)  # thousands separated, like the README's
show.table(table, index=True, caption="Texts per source, pole and split; mean length of a training text in words")

# %%
import clm.plots

fig = clm.plots.corpus_overview(sizes)
plt.close(fig)  # drawn once, numbered, below

# %% tags=["remove-input"]
show.figure(
    fig, "1.1",
    "Training texts per pole (left) and their length in words (right; boxes without outliers), per source.",
    alt="Politeness has far more polite than impolite texts; the GYAFC formality subset is the smallest; "
    "novel passages and TinyStories are far longer than a 32-token continuation, the other sources shorter.",
)  # fmt: skip

# %% [markdown]
# Some poles are unbalanced (politeness has far more polite than impolite sentences) and some
# are small (the GYAFC subset). Training balances the poles by training each endpoint on its own
# pole only; scorers are trained on balanced samples (chapter 3).
#
# ## What the texts look like
#
# A few training texts per pole of the paper's sources, drawn with the notebook's seed.

# %% tags=["hide-input"]
examples = []
for attr in ATTRIBUTES.values():
    for pole in (attr.low, attr.high):
        if attr.name == "formality":  # GYAFC: research use only, do not redistribute the text
            examples.append(dict(attribute=attr.name, pole=pole, text="(GYAFC text is not shown: research use only)"))
            continue
        texts = read_texts(attribute_file(P.data_dir, attr.name, pole, "train"))
        for text in rng.sample(texts, min(n_examples, len(texts))):
            examples.append(dict(attribute=attr.name, pole=pole, text=text[:300] + ("…" if len(text) > 300 else "")))
show.table(pd.DataFrame(examples), caption="Training texts of the paper's sources (cut at 300 characters)")

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
wikitext_file = P.data_dir / "eval" / "wikitext2_test.raw.txt"
wikitext = wikitext_file.read_text(encoding="utf-8")

# %% tags=["remove-input"]
display(
    show.findings(
        "{n:,} WritingPrompts prompts; the **{preset}** preset uses the first {used:,}, {samples} each, "
        "{tokens} new tokens. WikiText-2's test set (for perplexity) has {words:,} words in {lines:,} lines.",
        n=len(prompts), preset=P.preset.name, used=P.preset.n_prompts,
        samples=f"{P.preset.samples} sample" + ("" if P.preset.samples == 1 else "s"),
        tokens=P.preset.max_new_tokens, words=len(wikitext.split()), lines=len(wikitext.splitlines()),
    )
)  # fmt: skip
show.table(pd.DataFrame({"three prompts, drawn with the seed": rng.sample(prompts, 3)}))

# %% [markdown]
# A continuation (the dashed line in the figure) is longer than a typical SST-2, GYAFC or
# FlickrStyle text, about as long as a Madaan e-mail sentence, and far shorter than a novel
# passage or a TinyStories story, which the simplicity scorer learns from. It also continues a
# story prompt, so its domain is fiction for every attribute. A scorer that relies on the
# *domain* of its training pole (captions, movie reviews, e-mail, 19th-century prose) rather than
# on the attribute would score continuations poorly: that is why chapter 3 tests every scorer on
# a second source from another domain.

# %% tags=["remove-input"]
_ = P.record(
    "01_data",
    sizes={f"{r.source}/{r.pole}/{r.split}": int(r.texts) for r in sizes.itertuples()},
    n_prompts_available=len(prompts),
    wikitext_words=len(wikitext.split()),
)

# %% [markdown]
# ## What we found

# %% tags=["remove-input"]
train = sizes[sizes.split == "train"]
train = train.assign(side=["low" if ATTRIBUTES[a].low == p else "high" for a, p in zip(train.attribute, train.pole)])
main = train[train.source.isin(list(ATTRIBUTES))].set_index(["attribute", "side"])
per_pole = main.texts.unstack("side")
imbalance = per_pole.max(axis=1) / per_pole.min(axis=1)
smallest, length = main.texts.idxmin(), main.mean_words.groupby("attribute").mean()
show.findings(
    "The {n_attr} attributes' paper sources hold {n_train:,} training texts in all, from {min_texts:,} per pole "
    "({small_attr}, {small_pole}) to {max_texts:,}. The most unbalanced is {unbal}: {ratio:.1f} texts of one pole "
    "for every one of the other. A training text is {short:.0f} words long on average ({short_attr}) to "
    "{long:.0f} ({long_attr}), where a 32-token continuation is about 24 words. And every text a scorer will "
    "judge continues a story prompt ({n_prompts:,} available), while the training texts are reviews, e-mails, "
    "captions, stories and novels: chapter 3 measures what that change of domain costs each scorer.",
    n_attr=len(per_pole), n_train=int(main.texts.sum()), min_texts=int(main.texts.min()),
    small_attr=smallest[0], small_pole=main.loc[smallest, "pole"], max_texts=int(main.texts.max()),
    unbal=imbalance.idxmax(), ratio=imbalance.max(), short=length.min(), short_attr=length.idxmin(),
    long=length.max(), long_attr=length.idxmax(), n_prompts=len(prompts),
)  # fmt: skip
