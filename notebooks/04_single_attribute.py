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
# # One attribute at a time: α sweeps
#
# The simplest dial of {cite:t}`kangaslahti2025continuous`: one attribute $i$, $\lambda_i = 1$,
# and its weight $\alpha$ moved along a grid,
#
# $$
# \theta(\alpha) = \theta_0 + \alpha\, \Delta W_{i,\text{high}} + (1 - \alpha)\, \Delta W_{i,\text{low}} .
# $$
#
# $\alpha = 0$ is the low endpoint (negative, impolite, informal, complex, non-humorous),
# $\alpha = 1$ the high one, and the grid runs from −1 to 2, so it covers the interpolation band
# $[0, 1]$ and the two extrapolation bands on either side. At every α we continue the same
# WritingPrompts prompts {cite:p}`fan2018hierarchical` with pure sampling, score each
# continuation with the scorers of chapter 3, and measure WikiText-2 perplexity
# {cite:p}`merity2016pointer` of the interpolated model. The base model (no adapter) is run
# beside, on the same prompts.
#
# The questions: does the mean score move **monotonically and far enough** with α over $[0, 1]$
# (Spearman ρ ≥ 0.9 of the means per α, and a range of at least 0.25 between α = 0 and α = 1),
# and does the model stay **fluent** (perplexity at every α in $[0, 1]$ at most 1.3 times the
# base model's)?
#
# ```{admonition} Run time
# :class: warning
# **With what `clm` ships** (the endpoints, the scorer heads and this chapter's sweep tables of
# the reference run), `cpu` reads the sweeps instead of generating them and takes about a minute
# on 2 CPU cores: loading the model and the few example continuations at the end. **Regenerating
# the sweeps** (other endpoints, prompts or settings) is the heavy part: every (α, prompt,
# sample) is one generation and every α one WikiText-2 measurement. `tiny` takes seconds; `cpu`
# (SmolLM2-135M, 9 values of α × 5 attributes × 100 prompts × 2 samples, 4k WikiText tokens per
# α) an estimated 1 to 1.5 hours on 2 CPU cores, the longest page of the book; `gpu` (13 values
# of α, 1,000 prompts × 3 samples, all of WikiText-2) an estimated hour on one GPU of the H100
# class. The setup cell prints what this run will generate. Sweeps are resumable: a rerun skips
# every finished batch, and the notebook can run as one papermill job per attribute (see
# {doc}`../book/running`).
# ```

# %% tags=["parameters"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
attributes = None  # attributes to sweep (None: every attribute of the endpoints)
prompts_file = None  # a .jsonl/.txt of prompts (None: <data_dir>/prompts/writing_prompts.jsonl)
n_prompts = None  # prompts per setting (None: the preset's)
n_samples = None  # continuations per prompt (None: the preset's)
ppl_window = None  # WikiText-2 perplexity window in tokens (None: the preset's)
ppl_tokens = None  # WikiText-2 tokens per setting (None: the preset's)
fluency = None  # also each continuation's perplexity under the base model (None: the preset's)
example_prompt = 0  # the prompt whose continuations are shown across α
example_alphas = [-1.0, 0.0, 0.5, 1.0, 2.0]  # the α values of the example table

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from transformers.utils import logging as hf_logging

import clm
import clm.book.params
import clm.plots as plots
from clm.book.chapters import chapter
from clm.book.params import table_path
from clm.data import read_texts
from clm.eval.scoring import load_scorers
from clm.experiments import analysis, designs, sweep, sweep_perplexity
from clm.experiments.tables import read_table

P = chapter("04_single_attribute", globals())  # every parameter above, checked; None: the preset's
ends, attributes, alphas, prompts_file = P.ends, P.attributes, P.alphas, P.prompts_file
n_prompts, n_samples, ppl_window, ppl_tokens, fluency = P.n_prompts, P.n_samples, P.ppl_window, P.ppl_tokens, P.fluency
prompts = read_texts(prompts_file, limit=n_prompts)  # one-line DataError if missing or bad
tables = P.run_dir / "tables"
hf_logging.disable_progress_bar()
pd.set_option("display.max_colwidth", 120, "display.precision", 3)
print(P.describe())
print(
    f"attributes {attributes}; α grid {alphas}; {len(prompts)} prompts x {n_samples} samples\n"
    f"{(len(attributes) * len(alphas) + 1) * len(prompts) * n_samples:,} generations of {P.preset.max_new_tokens} "
    f"tokens; {len(attributes) * len(alphas) + 1} WikiText-2 measurements of {ppl_tokens or 'all'} tokens"
)

# %% [markdown]
# ## The model, the endpoints and the scorers
#
# The endpoints come from the run dir (chapter 2), else from those shipped with `clm`; the
# scorers likewise (chapter 3). Every continuation gets all five scores, so the same table
# also measures how one attribute's dial moves the *other* attributes (chapter 6).

# %%
base, tok = clm.load_base(P.model)
im = clm.InterpolatedModel(base, tok, ends)
scorers = load_scorers(path=clm.book.params.find_scorers(P))
print(f"endpoints: {ends}")
print(f"scorers: {', '.join(scorers)} ({next(iter(scorers.values())).config['encoder']} encoder)")

# %% [markdown]
# ## The sweep
#
# `clm.experiments.sweep.single_attribute` makes one setting per α (marked `extrapolate` outside $[0, 1]$);
# `clm.experiments.sweep.run_sweep` generates every (setting, prompt, sample), with rows of different α in
# the same batch, scores each continuation, and measures each continuation's perplexity under
# the base model (`ppl`) and, once per setting, WikiText-2 perplexity (`wikitext_ppl`). Each
# attribute's table goes to `<run_dir>/tables/single_<attribute>.parquet`, the base model's to
# `tables/base.parquet`; finished batches are kept, so an interrupted sweep resumes. Where the
# reference run's tables ship with `clm` for these very endpoints, they are copied in first
# (`clm.book.params.table_path`), and only what differs from them is generated.

# %%
gen = dict(
    P.sweep_kwargs(n_prompts, n_samples, fluency),
    scorers=scorers,
    perplexity=sweep_perplexity.wikitext_perplexity(
        im,
        P.data_dir / "eval" / "wikitext2_test.raw.txt",
        max_tokens=ppl_tokens,
        window=ppl_window,
        stride=512 if ppl_window is None else min(512, ppl_window // 2),  # the paper's 512 where it fits
    ),
)
base_table = sweep.run_sweep(
    im, designs.custom(["base"], design="base"), prompts_file, out=table_path(P, "base.parquet", ends), **gen
)
single = {
    a: sweep.run_sweep(
        im, designs.single_attribute(a, alphas), prompts_file, out=table_path(P, f"single_{a}.parquet", ends), **gen
    )
    for a in attributes
}
table = pd.concat(single.values(), ignore_index=True)
print(f"{len(table):,} generations at {table.setting.nunique()} settings, {len(base_table):,} of the base model")
table.filter(regex="^(setting|prompt_index|sample|continuation|score_.*|ppl)$").head(4)

# %% [markdown]
# ## Response curves
#
# The mean score of the swept attribute at each α, with a bootstrap 95 % interval over the
# continuations; the interpolation band $[0, 1]$ is shaded blue, the extrapolation bands are
# hatched, and the base model's mean score is the dashed line.

# %%
fig = plots.response_curves(pd.concat([table, base_table], ignore_index=True), attributes)
plt.show()

# %% [markdown]
# ## Fluency: perplexity against α
#
# First, WikiText-2 perplexity of the interpolated model at each α (one measurement per
# setting, on the first `ppl_tokens` tokens). Then, where `fluency` is on (not at `cpu`, where it
# would cost a third of the run), the median perplexity of the continuations under the base
# model, a measure of how unusual the generated text is. Log scales; dashed: the base model.

# %%
ppl_tables = [read_table(tables / f"single_{a}_perplexity.parquet") for a in attributes]
ppl = pd.concat([*ppl_tables, read_table(tables / "base_perplexity.parquet")], ignore_index=True)
base_ppl = float(ppl.loc[ppl.setting == "base", "wikitext_ppl"].iloc[0])
fig = plots.perplexity_curve(ppl, attributes, column="wikitext_ppl")
fig.axes[0].set_title("WikiText-2")
plt.show()
if "ppl" in table.columns:
    fig = plots.perplexity_curve(pd.concat([table, base_table], ignore_index=True), attributes, column="ppl")
    fig.axes[0].set_title("continuations, under the base model")
    plt.show()
wikitext = {a: analysis.rows_for(t, a).set_index(f"alpha_{a}").wikitext_ppl for a, t in zip(attributes, ppl_tables)}
ratio = pd.DataFrame({a: p / base_ppl for a, p in wikitext.items()}).rename_axis("α")
print(f"base model WikiText-2 perplexity: {base_ppl:.2f}; the table: perplexity / base at each α")
ratio.T

# %% [markdown]
# ## How predictable is the dial?
#
# `clm.experiments.analysis.predictability` summarises each response curve over α ∈ [0, 1]: Spearman ρ
# between α and the mean score per α, the linear fit's R², the range (mean at α = 1 minus mean
# at α = 0), each with a bootstrap 95 % interval (resampling the continuations within each α).
# An attribute **passes** if ρ ≥ 0.9, the range is ≥ 0.25, and perplexity stays within 1.3×
# the base model's at every α in [0, 1]; the reference run must pass for at least 4 of the 5
# attributes. These bars are `clm.experiments.claims.DEFAULT`, the same `Thresholds` value that
# chapter 3 reads its scorer bars from and chapter 8 starts from; each check is decided there on
# the unrounded numbers. For an attribute that falls short, the lines under the verdict give what the
# earlier chapters measured about its scorer (test accuracy, chapter 3) and its endpoints (how
# far apart their next-token distributions are, chapter 2).

# %%
from clm.experiments import claims, report

T = claims.DEFAULT  # the bars: ρ ≥ 0.9, range ≥ 0.25, ppl ≤ 1.3× base on [0, 1]; 4 of 5 must pass
pred = analysis.predictability(table, attributes).set_index("attribute")
inside = ratio[(ratio.index >= T.interval[0]) & (ratio.index <= T.interval[1])]
verdict, checks = report.single_attribute_table(table, base_table, pred, inside.max(), T)
acceptance = claims.acceptance(verdict.passes, T)
# where a shortfall may come from: the scorer (chapter 3) or the endpoints (chapter 2)
earlier = report.load_records(P.metrics_path, ["02_finetune_endpoints", "03_attribute_scorers"])
print("\n".join(report.single_attribute_lines(checks, earlier, T)))
verdict

# %% [markdown]
# ## The same prompt across α
#
# One prompt, continued at several α with the **same sampling seed**, so the only thing that
# changes between rows is the dial. Next to each continuation: its score for the swept
# attribute.

# %%
prompt = prompts[example_prompt]
print(f"prompt {example_prompt}: {prompt!r}")
rows = []
for a in attributes:
    for s in designs.single_attribute(a, example_alphas):
        (g,) = im.generate(
            [prompt], weights=s.weights, max_new_tokens=P.preset.max_new_tokens, seed=seed, progress=False
        )
        rows.append({"attribute": a, "α": s.weights.alpha[a], "continuation": g.text.strip()})
examples = pd.DataFrame(rows)
examples["score"] = [
    float(scorers[a].score([t], progress=False)[0]) if t else np.nan
    for a, t in zip(examples.attribute, examples.continuation)
]
examples.set_index(["attribute", "α"])

# %%
STATS = ("rho", "rho_lo", "rho_hi", "range", "range_lo", "range_hi", "r2", "slope")
_ = P.record(
    "04_single_attribute",
    attributes=attributes,
    alphas=alphas,
    n_prompts=len(prompts),
    n_samples=n_samples,
    n_generations=len(table) + len(base_table),
    scorers=str(clm.book.params.find_scorers(P)),
    response={
        a: {"mean_by_alpha": analysis.mean_by_alpha(table, a), **{k: float(pred.loc[a, k]) for k in STATS}}
        for a in attributes
    },
    base_score={a: float(base_table[f"score_{a}"].mean()) for a in scorers},
    perplexity={
        "base": base_ppl,
        "window": ppl_window,
        "max_tokens": ppl_tokens,
        "by_alpha": {a: {f"{x:g}": float(v) for x, v in p.items()} for a, p in wikitext.items()},
        "max_ratio_01": {a: float(inside[a].max()) for a in attributes},
    },
    verdict={a: {k: bool(verdict.loc[a, k]) for k in ("monotone", "strong", "fluent", "passes")} for a in attributes},
    n_pass=acceptance.value,
    acceptance_met=acceptance.holds,
)

# %% [markdown]
# ## What it means
#
# Read the verdict table with the scorers' accuracy from chapter 3 in mind: a score can only
# move as far as its scorer can tell the poles apart, so a weak scorer flattens a curve that
# the text itself follows (the examples above show what the model writes). A curve that keeps
# its direction beyond $[0, 1]$ is the paper's extrapolation band; where perplexity rises
# steeply outside $[0, 1]$ the band ends. Chapter 8 compares these numbers with the paper's
# claims, and chapter 6 reads the off-diagonal scores of the same tables as entanglement.
#
# At the `tiny` preset (a random 2-layer model and scorers on a random encoder) every number
# on this page is noise: that run only checks that the chapter executes.
