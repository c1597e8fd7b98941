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
# # Attribute scorers, perplexity and fluency
#
# No dial can be shown to work without an honest measure of where it points. The paper
# {cite:p}`kangaslahti2025continuous` scores every continuation with one RoBERTa classifier per
# attribute, and measures the damage an interpolation does by perplexity on WikiText-2
# {cite:p}`merity2016pointer`. This chapter builds both measures and tests them.
#
# A **scorer** maps a text to P(high pole) ∈ [0, 1]: P(positive), P(polite), P(formal),
# P(simple), P(humorous). Ours run offline: a frozen sentence encoder, all-MiniLM-L6-v2
# {cite:p}`reimers2019sentencebert` (fetched once from PyPI, mean-pooled, normalized), and a
# small head per attribute (logistic regression or a one-hidden-layer MLP, chosen by held-out
# accuracy, then temperature-scaled). The paper-faithful backend, fine-tuning `roberta-base`,
# is in `clm.eval.heads.finetune` for readers who are online.
#
# A scorer is useful here if it reaches **0.80 test accuracy on its paper's source** (0.95 for
# simplicity, an easy task), and it is a *good measure* only if it also holds on a second
# source from another domain, and if its probabilities mean what they say (calibration).
#
# Run time: `tiny` trains throwaway heads on a pico encoder in seconds; `cpu` and `gpu` load the
# shipped heads and score every test file (about 30k texts: ~8 minutes on 2 CPU cores the first
# time, seconds once the embeddings are cached), then measure WikiText-2 perplexity.

# %% tags=["parameters"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model for perplexity (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
train = None  # train heads into <run_dir>/scorers (None: only at tiny; else load the shipped heads)
encoder = None  # sentence encoder when training (None: pico at tiny, else minilm)
eval_limit = None  # test texts per pole (None: all at cpu/gpu, 40 at tiny)
ppl_window = None  # perplexity window in tokens (None: 256 at tiny, 2048 at cpu, the context at gpu)
ppl_max_tokens = None  # WikiText-2 tokens for perplexity (None: the preset's; 0: all)

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

import clm
from clm.book.chapters import chapter
from clm.data import read_texts
from clm.eval.heads import HeadConfig, train_heads
from clm.eval.perplexity import continuation_perplexity, distinct, sliding_window_perplexity
from clm.eval.scoring import SHIPPED, evaluate, load_scorers, score_texts

P = chapter("03_attribute_scorers", globals())  # every parameter above, checked; None: the preset's
tiny = P.preset.smoke  # a smoke-test scale (tiny): throwaway heads on a pico encoder
train, encoder, eval_limit = P.train, P.encoder, P.eval_limit
ppl_window, ppl_max_tokens = P.ppl_window, P.ppl_max_tokens
ppl_stride = 512 if ppl_window is None else min(512, ppl_window // 2)  # the paper's 512 where the window allows
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})
pd.set_option("display.max_colwidth", 90)
pd.set_option("display.float_format", "{:.3f}".format)
print(P.describe())

# %% [markdown]
# ## Train, or load, the scorers
#
# Heads trained in this run live in `<run_dir>/scorers/`; they are loaded if they exist, trained
# if `train` is set, and otherwise the heads shipped with `clm` (in `clm/assets/scorers/`) are
# used. Training (`clm.eval.heads.train_heads`) subsamples each attribute's training files of
# **both** sources, holds out 10 % of them, fits every candidate head on the rest and keeps
# the one with the best held-out accuracy on the paper's source. Test files are never read.

# %%
scorer_dir = P.run_dir / "scorers"
if clm.book.params.find_scorers(P) != scorer_dir and train:
    small = dict(max_per_pole=48, candidates=("lr:1", "mlp:32")) if tiny else {}  # throwaway heads at tiny
    cfg = HeadConfig(encoder=encoder, seed=seed, **small)
    train_heads(P.data_dir, scorer_dir, cfg=cfg, progress=False, command=f"notebook 03 (preset={P.preset.name})")
source = clm.book.params.find_scorers(P)  # the one rule every chapter uses
scorers = load_scorers(path=source)
print("scorers from", source)
configs = pd.DataFrame(
    [
        {
            "attribute": a,
            "head": s.config["head"],
            "parameters": s.config["n_params"],
            "temperature": s.config["temperature"],
            "texts (train + held out)": s.config["n_train"] + s.config["n_val"],
            **{f"held-out acc. {c['head']}": c["val_main"] for c in s.config["candidates"]},
        }
        for a, s in scorers.items()
    ]
).set_index("attribute")
configs

# %% [markdown]
# The table shows each candidate's accuracy on held-out *training* texts of the paper's source:
# that is what chose the head. Every head records the sha256 of the files it was trained on and
# the command that trained it, next to its weights.

# %% [markdown]
# ## Test accuracy on both sources
#
# `clm.eval.scoring.evaluate` scores the test files of the paper's source (`<attribute>/`) and of
# the second source (`-tweets`, `-requests`, `-genre`, `-levels`, `-jokes`).

# %%
from clm.experiments.claims import DEFAULT as THRESHOLDS  # each scorer's bar, the one the book checks everywhere

summary, rel = evaluate(scorers, P.data_dir, limit=eval_limit, progress=False)
summary["bar"] = [THRESHOLDS.bar(a) for a in summary.attribute]
table = summary.pivot(index="attribute", columns="source", values=["accuracy", "ece", "n"]).loc[list(scorers)]
table.columns = [f"{m} ({s})" for m, s in table.columns]
table["bar"] = summary[summary.source == "main"].set_index("attribute").bar
table["meets bar"] = table["accuracy (main)"] >= table["bar"]
table

# %%
shipped = json.loads((SHIPPED / "metrics.json").read_text())["attributes"] if source == SHIPPED else None
if shipped is not None and eval_limit is None:
    # Acceptance: re-scoring the test files reproduces the accuracy recorded with the heads.
    check = pd.DataFrame(
        {a: {"reported": shipped[a]["test_accuracy_main"], "now": table.loc[a, "accuracy (main)"]} for a in scorers}
    ).T
    check["|diff| x n"] = (check.reported - check.now).abs() * table["n (main)"]
    display(check)  # noqa: F821 (IPython)
    assert (check["|diff| x n"] <= 1.01).all(), "shipped heads do not reproduce their reported accuracy"

# %%
fig, ax = plt.subplots(figsize=(7, 3))
sns.barplot(summary, x="attribute", y="accuracy", hue="source", ax=ax, palette="deep")
for i, a in enumerate(scorers):
    ax.hlines(THRESHOLDS.bar(a), i - 0.4, i + 0.4, color="black", ls="--", lw=1)
ax.set(ylim=(0.4, 1.0), xlabel="", ylabel="test accuracy", title="Scorer test accuracy (dashed: the bar)")
ax.legend(title="test source", loc="lower right")
plt.show()

# %% [markdown]
# ## Calibration
#
# A reliability diagram bins the texts by predicted P(high) and plots the fraction that truly
# belong to the high pole: a calibrated scorer lies on the diagonal. The **ECE** (expected
# calibration error, {cite:p}`guo2017calibration`) is the mean gap, weighted by how many texts
# fall in each bin (10 equal-width bins). Calibration matters because later chapters average
# scores: a mean P(positive) of 0.7 should mean that 70 % of the texts read as positive.

# %%
grid = sns.relplot(
    rel, x="mean_p", y="frac_high", hue="source", size="n", col="attribute", col_wrap=5,
    kind="scatter", height=2.4, sizes=(10, 120), palette="deep", facet_kws=dict(xlim=(0, 1), ylim=(0, 1)),
)  # fmt: skip
for a, ax in grid.axes_dict.items():
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    for src, g in rel[rel.attribute == a].groupby("source"):
        ax.plot(g.mean_p, g.frac_high, lw=1, color=sns.color_palette("deep")[0 if src == "main" else 1])
    e = summary.set_index(["attribute", "source"]).ece
    ax.set_title(f"{a}\nECE {e[a, 'main']:.3f} / {e[a, 'second']:.3f}", fontsize=9)
grid.set_axis_labels("predicted P(high)", "fraction high")
plt.show()

# %% [markdown]
# ## What the scorers say about example texts
#
# Hand-written sentences, one per pole, and two edge cases: an empty text scores NaN (it has no
# attribute; aggregate with `np.nanmean`) and a text longer than the encoder's 256 word pieces
# is scored on its first 256 and flagged as `truncated`.

# %%
examples = [
    "What a wonderful day, I loved every minute of it!",
    "This was the worst film I have ever seen.",
    "Would you mind sending me the report when you have a moment? Thank you so much.",
    "Send me the damn report now.",
    "I would be grateful if you could inform me of your decision at your earliest convenience.",
    "lol dunno, whatever u want tbh",
    "The cat sat on the mat. It was happy.",
    "Notwithstanding the considerable ambiguity inherent in the proposal, the committee deliberated at length.",
    "I told my wife she was drawing her eyebrows too high. She looked surprised.",
    "The quarterly report was filed on Tuesday.",
    "",
    "word " * 400,
]
scores = score_texts(examples, scorers, progress=False)
scores.insert(0, "text", [t if len(t) < 90 else t[:60] + f"... ({len(t)} chars)" for t in examples])
scores

# %% [markdown]
# ## Perplexity on WikiText-2
#
# `clm.eval.perplexity.sliding_window_perplexity` computes perplexity with the strided sliding window
# of Hugging Face's guide: the window moves by `stride` tokens and each token is scored once,
# with at least `window − stride` tokens of context once the window has filled. The paper uses
# a window up to the context length and a stride of 512. The same function takes an
# `InterpolatedModel` and a setting of the weights (chapter 7 sweeps it); here we measure the
# base model alone. At `cpu` scale only the first `ppl_max_tokens` tokens are used.

# %%
base, tok = clm.load_base(P.model)
wikitext = P.data_dir / "eval" / "wikitext2_test.raw.txt"
ppl = sliding_window_perplexity(
    base,
    path=wikitext,
    tokenizer=tok,
    window=ppl_window,
    stride=ppl_stride,
    max_tokens=ppl_max_tokens,
    progress=False,
)
print(
    f"{P.model}: WikiText-2 test perplexity {ppl.ppl:.2f} over {ppl.n_scored:,} tokens (window {ppl.window}, stride {ppl.stride})"
)

# %% [markdown]
# ## Fluency of continuations
#
# For a continuation the paper's cost measure is its perplexity *under the base model*, with the
# prompt as context (only the continuation's tokens are scored), plus distinct-n
# {cite:p}`li2016diversity`: the share of unique n-grams among all n-grams of a set of
# continuations (low values mean repetition). Here: a few continuations of the base model
# itself, the reference point for the sweeps of later chapters.

# %%
prompts = read_texts(P.data_dir / "prompts" / "writing_prompts.jsonl", limit=4)
torch.manual_seed(seed)
enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
out = base.generate(
    **enc.to(base.device),
    do_sample=True,
    top_p=1.0,
    top_k=0,
    max_new_tokens=P.preset.max_new_tokens,
    pad_token_id=tok.pad_token_id,
)
conts = [tok.decode(ids, skip_special_tokens=True) for ids in out[:, enc["input_ids"].shape[1] :]]
fluency = pd.DataFrame({"prompt": [p[:50] for p in prompts], "continuation": conts})
fluency["perplexity"] = continuation_perplexity(base, prompts, conts, tokenizer=tok)
fluency = pd.concat([fluency, score_texts(conts, scorers, progress=False).filter(like="score_")], axis=1)
print(distinct(conts))
fluency

# %%
_ = P.record(
    "03_attribute_scorers",
    scorers=str(source),
    encoder=next(iter(scorers.values())).config["encoder"],
    eval_limit=eval_limit,
    accuracy_main={a: float(table.loc[a, "accuracy (main)"]) for a in scorers},
    accuracy_second={a: float(table.loc[a, "accuracy (second)"]) for a in scorers},
    ece_main={a: float(table.loc[a, "ece (main)"]) for a in scorers},
    ece_second={a: float(table.loc[a, "ece (second)"]) for a in scorers},
    meets_bar={a: bool(table.loc[a, "meets bar"]) for a in scorers},
    wikitext2_ppl=ppl.ppl,
    wikitext2_tokens=ppl.n_scored,
    ppl_window=ppl.window,
    ppl_stride=ppl.stride,
    ppl_model=P.model,
    base_continuation_ppl=float(np.nanmean(fluency.perplexity)),
    base_distinct=distinct(conts),
)

# %% [markdown]
# ## What it means
#
# (Written against the shipped heads at `cpu` scale, whose numbers are in
# `clm/assets/scorers/metrics.json`; at `tiny` the numbers above come from a random pico
# encoder and mean nothing.)
#
# - **Two scorers meet the bar, three fall short.** Politeness (0.92) and simplicity (0.99,
#   bar 0.95) clear it. Sentiment is 0.79, just under 0.80 (the reference point, logistic
#   regression on 6k SST-2 sentences, is 0.80). Formality (GYAFC) is 0.77 and humor
#   (FlickrStyle) 0.64.
# - **What was tried where they fall short** (every choice made on held-out *training* texts):
#   logistic regression at C = 0.1, 1, 10 and MLPs with 256 or 512 hidden units on MiniLM
#   embeddings (an MLP won everywhere); training on the paper's source alone (worse on both
#   sources: sentiment held-out 0.86 vs 0.87, and 0.72 vs 0.90 on tweets); twice the SST-2
#   texts (held-out 0.835 → 0.867, test only 0.789 → 0.794); a TF-IDF uni/bigram logistic
#   regression (held-out: humor 0.71, formality 0.72, sentiment 0.86); fine-tuning MiniLM
#   itself for humor (150 steps of 32 on CPU: held-out 0.73 against the head's 0.72; see
#   `clm/assets/scorers/experiments.json`). Humor and formality are *style* on fixed content:
#   FlickrStyle's humorous and romantic captions describe the same photos, GYAFC's formal
#   rewrites say what the informal sentence says, and a mean-pooled sentence embedding mostly
#   encodes content. The humor test file also adds 300 factual captions to the non-humorous
#   pole, a kind of text no training file has. The paper-faithful backend
#   (`clm.eval.heads.finetune`, roberta-base, on a GPU) is the next thing to try; until then,
#   read humor and formality scores as coarse, and sentiment as nearly at the bar.
# - **Each scorer must be read on its own domain.** The second source shows what a scorer
#   recognises: politeness transfers poorly to Stanford requests (0.68) and simplicity to
#   OneStopEnglish levels (0.65): trained on TinyStories against novels, it learned genre more
#   than reading level. Formality (0.98), sentiment (0.89) and humor (0.92) do well on their
#   broader second sources, which they were partly trained on.
# - **Calibration is good where accuracy is.** ECE is 0.02-0.08 except humor on its main
#   source (0.13); after temperature scaling a mean score can be read as a fraction of texts.
# - **Perplexity** of the embedded SmolLM2-135M on WikiText-2 is the reference for chapter 7's
#   cost of interpolation: 16.90 over the first 16,384 tokens with a 2,048-token window and
#   stride 512 (`cpu` scale, measured with the cell above when the heads were shipped); at
#   `gpu` scale the whole test set with the full 8,192-token context window.
