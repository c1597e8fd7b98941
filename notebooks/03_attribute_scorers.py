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
# accuracy, then temperature-scaled; every shipped head is an MLP). The paper-faithful backend, fine-tuning `roberta-base`,
# is in `clm.eval.heads.finetune` for readers who are online.
#
# A scorer is useful here if it reaches **0.80 test accuracy on its paper's source** (0.95 for
# simplicity, an easy task), and it is a *good measure* only if it also holds on a second
# source from another domain, and if its probabilities mean what they say (calibration).
#
# ```{admonition} Run time
# :class: note
# **With what `clm` ships** (the scorer heads), `cpu` and `gpu` score every test file (about 30k
# texts) and measure WikiText-2 perplexity: about 2–3 minutes on 2 CPU cores, up to ~8 the first
# time, while the encoder's embeddings are not yet cached. **Retraining the heads**
# (`python -m clm scorers train`) adds a few minutes per attribute; `tiny` trains throwaway heads
# on a pico encoder in seconds.
# ```

# %% tags=["parameters", "hide-input"]
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

# %% tags=["remove-input"]
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

import clm
from clm.book import display as show
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
show.setup_line(P)

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
    # throwaway heads at tiny
    small = dict(max_per_pole=48, candidates=("lr:1", "mlp:32"))
    cfg = HeadConfig(encoder=encoder, seed=seed, **(small if tiny else {}))
    command = f"notebook 03 (preset={P.preset.name})"
    train_heads(P.data_dir, scorer_dir, cfg=cfg, progress=False,
                command=command)  # fmt: skip
source = clm.book.params.find_scorers(P)  # the one rule every chapter uses
scorers = load_scorers(path=source)
# %% tags=["remove-input"]
configs = pd.DataFrame(
    [
        {
            "attribute": a,
            "head": s.config["head"],
            "parameters": s.config["n_params"],
            "temperature": s.config["temperature"],
            "texts (train + held out)": s.config["n_train"] + s.config["n_val"],
            "held-out accuracy of each candidate": ", ".join(
                f"{c['head']} {show.number(c['val_main'])}" for c in s.config["candidates"]
            ),
        }
        for a, s in scorers.items()
    ]
)
show.table(configs, caption=f"The scorer heads, from {show.relative(source, P.run_dir)}")

# %% [markdown]
# The last column shows each candidate's accuracy on held-out *training* texts of the paper's
# source: that is what chose the head (`lr:C` is logistic regression, `mlp:h` an MLP with `h`
# hidden units). Every head records the sha256 of the files it was trained on and the command
# that trained it, next to its weights.

# %% [markdown]
# ## Test accuracy on both sources
#
# `clm.eval.scoring.evaluate` scores the test files of the paper's source (`<attribute>/`) and of
# the second source (`-tweets`, `-requests`, `-genre`, `-levels`, `-jokes`).

# %%
from clm.experiments.claims import DEFAULT as THRESHOLDS  # the book's bars

summary, rel = evaluate(scorers, P.data_dir, limit=eval_limit,
                        progress=False)  # fmt: skip
summary["bar"] = [THRESHOLDS.bar(a) for a in summary.attribute]
values = ["accuracy", "ece", "n"]
table = summary.pivot(index="attribute", columns="source", values=values)
table = table.loc[list(scorers)]
table.columns = [f"{m} ({s})" for m, s in table.columns]
table["bar"] = summary[summary.source == "main"].set_index("attribute").bar
table["meets bar"] = table["accuracy (main)"] >= table["bar"]
# %% tags=["remove-input"]
both = {m: [f"{show.number(x, 2)} / {show.number(y, 2)}" for x, y in zip(table[f"{m} (main)"], table[f"{m} (second)"])]
        for m in ("accuracy", "ece")}  # fmt: skip
shown = pd.DataFrame({"accuracy: paper's / second source": both["accuracy"], "ECE: paper's / second": both["ece"],
                      "test texts": [f"{int(n):,} / {int(m):,}" for n, m in zip(table["n (main)"], table["n (second)"])],
                      "bar": table["bar"], "meets bar": table["meets bar"].map({True: "yes", False: "no"})},
                     index=table.index)  # fmt: skip
show.table(shown, index=True, digits=2, caption="Test accuracy and calibration error (ECE) on the paper's source and the second")

# %% tags=["hide-input"]
shipped = json.loads((SHIPPED / "metrics.json").read_text())["attributes"] if source == SHIPPED else None
if shipped is not None and eval_limit is None:
    # Acceptance: re-scoring the test files reproduces the accuracy recorded with the heads.
    check = pd.DataFrame(
        {a: {"reported": shipped[a]["test_accuracy_main"], "now": table.loc[a, "accuracy (main)"]} for a in scorers}
    ).T
    check["|diff| x n"] = (check.reported - check.now).abs() * table["n (main)"]
    display(show.table(check.rename_axis("attribute"), index=True, caption="Re-scored now vs. recorded with the heads"))
    assert (check["|diff| x n"] <= 1.01).all(), "shipped heads do not reproduce their reported accuracy"

# %%
import clm.plots

fig = clm.plots.scorer_accuracy(summary, bar=THRESHOLDS.bar)
plt.close(fig)  # drawn once, numbered, below

# %% tags=["remove-input"]
show.figure(
    fig, "3.1",
    "Scorer test accuracy on the paper's source (main) and the second source; dashed: each scorer's bar.",
    alt="Which scorers clear their bar on the paper's source, and how each does on a second source from another domain.",
)  # fmt: skip

# %% [markdown]
# ## Calibration
#
# A reliability diagram bins the texts by predicted P(high) and plots the fraction that truly
# belong to the high pole: a calibrated scorer lies on the diagonal. The **ECE** (expected
# calibration error, {cite:p}`guo2017calibration`) is the mean gap, weighted by how many texts
# fall in each bin (10 equal-width bins). Calibration matters because later chapters average
# scores: a mean P(positive) of 0.7 should mean that 70 % of the texts read as positive.

# %%
fig = clm.plots.calibration(rel, summary)
plt.close(fig)  # drawn once, numbered, below

# %% tags=["remove-input"]
show.figure(
    fig, "3.2",
    "Reliability diagrams: fraction of high-pole texts against the mean predicted P(high) per bin, one panel per "
    "attribute; titles give the ECE on the paper's / the second source.",
    alt="Points near the diagonal mean a calibrated scorer, whose mean score can be read as a fraction of texts.",
)  # fmt: skip

# %% [markdown]
# ## What the scorers say about example texts
#
# Hand-written sentences, one per pole, and two edge cases: an empty text scores NaN (shown as
# a dash: it has no attribute; aggregate with `np.nanmean`) and a text longer than the encoder's
# 256 word pieces is scored on its first 256 and flagged as `truncated`.

# %%
examples = [
    "What a wonderful day, I loved every minute of it!",
    "This was the worst film I have ever seen.",
    "Would you mind sending me the report when you have a moment? "
    "Thank you so much.",
    "Send me the damn report now.",
    "I would be grateful if you could inform me of your decision at your "
    "earliest convenience.",
    "lol dunno, whatever u want tbh",
    "The cat sat on the mat. It was happy.",
    "Notwithstanding the considerable ambiguity inherent in the proposal, "
    "the committee deliberated at length.",
    "I told my wife she was drawing her eyebrows too high. "
    "She looked surprised.",
    "The quarterly report was filed on Tuesday.",
    "",
    "word " * 400,
]  # fmt: skip
scores = score_texts(examples, scorers, progress=False)
# %% tags=["remove-input"]
scores.insert(0, "text", [t if len(t) < 120 else t[:30] + f"… ({len(t):,} characters)" for t in examples])
flags = {c: scores[c].map({True: "yes", False: "no"}) for c in ("empty_text", "truncated")}
show.table(scores.assign(**flags), digits=2, columns={f"score_{a}": a for a in scorers} | {"empty_text": "empty"})

# %% [markdown]
# ## Perplexity on WikiText-2
#
# `sliding_window_perplexity` (in `clm.eval.perplexity`) computes perplexity with the strided
# sliding window of Hugging Face's guide: the window moves by `stride` tokens and each token is scored once,
# with at least `window − stride` tokens of context once the window has filled. The paper uses
# a window up to the context length and a stride of 512. The same function takes an
# `InterpolatedModel` and a setting of the weights (chapter 4 measures it at every α); here we
# measure the base model alone. At `cpu` scale only the first `ppl_max_tokens` tokens are used.

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
# %% tags=["remove-input"]
show.findings(
    "`{model}`: WikiText-2 test perplexity **{ppl:.2f}** over the first {n:,} tokens (window {window:,}, "
    "stride {stride}).",
    model=P.model, ppl=ppl.ppl, n=ppl.n_scored, window=ppl.window, stride=ppl.stride,
)  # fmt: skip

# %% [markdown]
# ## Fluency of continuations
#
# For a continuation the paper's cost measure is its perplexity *under the base model*, with the
# prompt as context (only the continuation's tokens are scored), plus distinct-n
# {cite:p}`li2016diversity`: the share of unique n-grams among all n-grams of a set of
# continuations (low values mean repetition). Here: a few continuations of the base model
# itself, the reference point for the sweeps of later chapters.

# %%
prompts_file = P.data_dir / "prompts" / "writing_prompts.jsonl"
prompts = read_texts(prompts_file, limit=4)
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
new = out[:, enc["input_ids"].shape[1] :]  # the generated tokens only
conts = [tok.decode(ids, skip_special_tokens=True) for ids in new]
fluency = pd.DataFrame({"prompt": prompts, "continuation": conts})
ppl_each = continuation_perplexity(base, prompts, conts, tokenizer=tok)
fluency["perplexity"] = ppl_each
scores = score_texts(conts, scorers, progress=False).filter(like="score_")
fluency = pd.concat([fluency, scores], axis=1)
# %% tags=["remove-input"]
display(show.findings("Distinct-1/2/3 of these continuations: {d1} / {d2} / {d3}.",
                      **{f"d{n}": v for n, v in zip((1, 2, 3), distinct(conts).values())}))  # fmt: skip
show.table(fluency, digits=2, columns={"perplexity": "perplexity (base)"} | {f"score_{a}": a for a in scorers})

# %% tags=["remove-input"]
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
# ## What was tried for the weak scorers
#
# How the shipped heads were built, and what was tried where they fall short (every choice made
# on held-out *training* texts, never on test files): logistic regression at C = 0.1, 1 and 10
# and MLPs on MiniLM embeddings (an MLP won for every attribute), training on the paper's source
# alone, more SST-2 texts, a TF-IDF logistic regression, and fine-tuning MiniLM itself for humor;
# the numbers of each are in `clm/assets/scorers/experiments.json`; the fine-tuning result is quoted below.
# Humor and formality are *style* on fixed content: FlickrStyle's humorous and romantic captions
# describe the same photos, GYAFC's formal rewrites say what the informal sentence says, and a
# mean-pooled sentence embedding mostly encodes content. The paper-faithful backend
# (`clm.eval.heads.finetune`, roberta-base, on a GPU) is the next thing to try.

# %% [markdown]
# ## What we found

# %% tags=["remove-input"]
acc, acc2, ece = table["accuracy (main)"], table["accuracy (second)"], table[["ece (main)", "ece (second)"]]
weak = acc.idxmin()
tried = json.loads((SHIPPED / "experiments.json").read_text()) if (SHIPPED / "experiments.json").is_file() else {}
ft = tried.get("finetune_minilm", {})
show.findings(
    ("*At this run's `tiny` preset the heads sit on a random pico encoder: every number below is noise.* "
     if tiny else "")
    + "**{n_meet} of {n} scorers meet their bar** on the paper's source ({meet}); {short} fall short. The weakest is "
    "**{weak}: {weak_acc:.2f} on its own source** (bar {weak_bar:.2f}), though {weak_acc2:.2f} on its second. A "
    "scorer that is wrong on {weak_err:.0f} % of its own test texts blurs the two poles together: a mean {weak} score "
    "can only move a little even when the texts change pole, so in chapter 4 a flat {weak} curve says as much about "
    "the scorer as about the dial. Fine-tuning the encoder itself ({ft_att}) reached {ft:.2f} held-out against the "
    "head's {ft_head:.2f}: {ft_verdict}. "
    "Transfer is uneven: the worst second-source accuracy is {worst2}'s ({worst2_acc:.2f}), so each scorer must be "
    "read on its own domain. Calibration errors range from {ece_min:.2f} to {ece_max:.2f} (worst: {ece_worst}). "
    "The base model's WikiText-2 perplexity here is {ppl:.2f} on the first {ppl_n:,} tokens with a {ppl_w:,}-token "
    "window; chapter 4 measures it again with its own window and number of tokens (the two are compared there).",
    n_meet=int(table["meets bar"].sum()), n=len(table), meet=", ".join(table.index[table["meets bar"]]) or "none",
    short=", ".join(table.index[~table["meets bar"]]) or "none", weak=weak, weak_acc=acc[weak],
    weak_bar=table.loc[weak, "bar"], weak_acc2=acc2[weak], weak_err=100 * (1 - acc[weak]), ft_att=ft.get("attribute", "–"),
    ft=ft.get("val_main", float("nan")), ft_head=ft.get("head_val_main", float("nan")),
    ft_verdict=f"{100 * (ft.get('val_main', 0) - ft.get('head_val_main', 0)):.1f} points better after "
    f"{ft.get('train_seconds_cpu', 0) / 60:.0f} min of training on 2 CPU cores, with a whole encoder per attribute "
    "to ship instead of a small head, so the shipped scorers keep the heads",
    worst2=acc2.idxmin(),
    worst2_acc=acc2.min(), ece_min=ece.min().min(), ece_max=ece.max().max(), ece_worst=ece.max(axis=1).idxmax(),
    ppl=ppl.ppl, ppl_n=ppl.n_scored, ppl_w=ppl.window,
)  # fmt: skip
