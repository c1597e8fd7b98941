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
# class. The line under the parameters says what this run will generate. Sweeps are resumable: a rerun skips
# every finished batch, and the notebook can run as one papermill job per attribute (see
# {doc}`../book/running`).
# ```

# %% tags=["parameters", "hide-input"]
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

# %% tags=["remove-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from transformers.utils import logging as hf_logging

import clm
import clm.plots as plots
from clm.book import display as show
from clm.book.chapters import chapter
from clm.book.params import find_scorers, table_path
from clm.data import read_texts
from clm.experiments import analysis, designs, sweep

P = chapter("04_single_attribute", globals())  # every parameter above, checked; None: the preset's
ends, attributes, alphas, prompts_file = P.ends, P.attributes, P.alphas, P.prompts_file
n_prompts, n_samples, ppl_window, ppl_tokens, fluency = P.n_prompts, P.n_samples, P.ppl_window, P.ppl_tokens, P.fluency
prompts = read_texts(prompts_file, limit=n_prompts)  # one-line DataError if missing or bad
hf_logging.disable_progress_bar()  # no "Loading weights" bars in the book
n_settings = len(attributes) * len(alphas) + 1  # every (attribute, α), and the base model
show.setup_line(
    P, f"Attributes {', '.join(attributes)}; α in {{{', '.join(f'{a:g}' for a in alphas)}}}; {len(prompts)} prompts × "
    f"{n_samples} samples: {n_settings * len(prompts) * n_samples:,} generations of {P.preset.max_new_tokens} tokens "
    f"and {n_settings} WikiText-2 measurements of {f'{ppl_tokens:,}' if ppl_tokens else 'all'} tokens.",
)  # fmt: skip

# %% [markdown]
# ## The model, the endpoints and the scorers
#
# The endpoints come from the run dir (chapter 2), else from those shipped with `clm`; the
# scorers likewise (chapter 3). Every continuation gets all five scores, so the same table
# also measures how one attribute's dial moves the *other* attributes (chapter 6).

# %%
from clm.eval.scoring import load_scorers

base, tok = clm.load_base(P.model)
im = clm.InterpolatedModel(base, tok, ends)
scorers = load_scorers(path=find_scorers(P))

# %% tags=["remove-input"]
show.findings(
    "Endpoints in `{ends}` ({poles}); scorers {scorers} on the {encoder} encoder, from `{scorer_dir}`.",
    ends=show.relative(ends.path, P.run_dir), poles="; ".join(f"{a}: {' / '.join(ends.poles(a))}" for a in attributes),
    scorers=", ".join(scorers), encoder=next(iter(scorers.values())).config["encoder"],
    scorer_dir=show.relative(find_scorers(P), P.run_dir),
)  # fmt: skip

# %% [markdown]
# ## The sweep
#
# `clm.experiments.designs.single_attribute` makes one setting per α (marked `extrapolate` outside $[0, 1]$);
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
    perplexity=P.wikitext(im, ppl_tokens, ppl_window),
)
base = designs.custom(["base"], design="base")
base_table = sweep.run_sweep(
    im, base, prompts_file, out=table_path(P, "base.parquet", ends), **gen
)  # fmt: skip
single = {}
for a in attributes:
    design = designs.single_attribute(a, alphas)
    out = table_path(P, f"single_{a}.parquet", ends)
    single[a] = sweep.run_sweep(im, design, prompts_file, out=out, **gen)
table = pd.concat(single.values(), ignore_index=True)

# %% tags=["remove-input"]
a0 = attributes[0]  # the first rows sweep the first attribute: show its score beside each text
first = table[["setting", "prompt_index", "sample", "continuation", f"score_{a0}"]].head(4)
show.table(first, digits=2, caption=f"The first 4 of {len(table):,} generations at {table.setting.nunique()} "
           f"settings (and {len(base_table):,} of the base model)", columns={f"score_{a0}": f"P({a0} high)"})  # fmt: skip

# %% [markdown]
# ## Response curves
#
# The mean score of the swept attribute at each α, with a bootstrap 95 % interval over the
# continuations; the interpolation band $[0, 1]$ is shaded blue, the extrapolation bands are
# hatched, and the base model's mean score is the dashed line.

# %%
both = pd.concat([table, base_table], ignore_index=True)
fig = plots.response_curves(both, attributes)
plt.close(fig)  # drawn once, numbered, below

# %% tags=["remove-input"]
show.figure(
    fig, "4.1",
    "Response curves: the mean score of the swept attribute against α, with bootstrap 95 % intervals; "
    "[0, 1] shaded, the extrapolation bands hatched, the base model's mean dashed.",
    alt="Each attribute's mean score rises from α = 0 to α = 1; where the dashed base line sits relative to "
    "the two endpoints, and whether the curve keeps rising beyond [0, 1].",
)  # fmt: skip

# %% [markdown]
# ## Fluency: perplexity against α
#
# First, WikiText-2 perplexity of the interpolated model at each α (one measurement per
# setting, on the first `ppl_tokens` tokens). Then, where `fluency` is on (not at `cpu`, where it
# would cost a third of the run), the median perplexity of the continuations under the base
# model, a measure of how unusual the generated text is. Log scales; dashed: the base model.

# %%
from clm.experiments.tables import read_table

tables = P.run_dir / "tables"
ppl_tables = [read_table(tables / f"single_{a}_perplexity.parquet")
              for a in attributes]  # fmt: skip
base_row = read_table(tables / "base_perplexity.parquet")
ppl = pd.concat([*ppl_tables, base_row], ignore_index=True)
base_ppl = float(ppl.loc[ppl.setting == "base", "wikitext_ppl"].iloc[0])
fig = plots.perplexity_curve(ppl, attributes, column="wikitext_ppl")
plt.close(fig)  # drawn once, numbered, below
wikitext = {
    a: analysis.rows_for(t, a).set_index(f"alpha_{a}").wikitext_ppl
    for a, t in zip(attributes, ppl_tables)
}  # fmt: skip
ratio = pd.DataFrame({a: p / base_ppl for a, p in wikitext.items()})
ratio = ratio.rename_axis("α")  # rows: α, columns: attributes

# %% tags=["remove-input"]
display(show.figure(
    fig, "4.2",
    "WikiText-2 perplexity of the interpolated model against α, one line per attribute (log scale); dashed: the base model.",
    alt="Perplexity is lowest inside [0, 1] and rises towards both ends of the α grid, fastest beyond it.",
))  # fmt: skip
if "ppl" in table.columns:
    display(show.figure(
        plots.perplexity_curve(pd.concat([table, base_table], ignore_index=True), attributes, column="ppl"), "4.3",
        "Median perplexity of the continuations under the base model against α (log scale); dashed: the base model's own.",
        alt="How unusual the generated text is at each α, compared with what the base model writes.",
    ))  # fmt: skip
show.table(ratio.T.rename_axis("attribute").rename(columns=lambda x: f"α = {x:g}"), index=True,
           caption=f"WikiText-2 perplexity / the base model's ({show.number(base_ppl)}) at each α")  # fmt: skip

# %% [markdown]
# ## How predictable is the dial?
#
# `clm.experiments.analysis.predictability` summarises each response curve over α ∈ [0, 1]: Spearman ρ
# between α and the mean score per α, the linear fit's R², the range (mean at α = 1 minus mean
# at α = 0), each with a bootstrap 95 % interval (resampling the continuations within each α).
# An attribute **passes** if ρ ≥ 0.9, the range is ≥ 0.25, and perplexity stays within 1.3×
# the base model's at every α in [0, 1]; the reference run must pass for at least 4 of the 5
# attributes. These bars are `clm.experiments.claims.DEFAULT`, the same `Thresholds` value that
# chapter 3 reads its scorer bars from and chapter 10 starts from; each check is decided there on
# the unrounded numbers. For an attribute that falls short, the list under the table gives what
# the earlier chapters measured about its scorer (test accuracy, chapter 3) and its endpoints (how
# far apart their next-token distributions are, chapter 2).

# %%
from clm.experiments import claims, report

T = claims.DEFAULT  # ρ ≥ 0.9, range ≥ 0.25, ppl ≤ 1.3× base; 4 of 5
pred = analysis.predictability(table, attributes).set_index("attribute")
lo, hi = T.interval  # [0, 1]
inside = ratio[(ratio.index >= lo) & (ratio.index <= hi)]
top = inside.max()  # attribute -> max perplexity ratio on [0, 1]
verdict, checks = report.single_attribute_table(
    table, base_table, pred, top, T
)  # fmt: skip
acceptance = claims.acceptance(verdict.passes, T)

# %% tags=["remove-input"]
# where a shortfall may come from: the scorer (chapter 3) or the endpoints (chapter 2)
earlier = report.load_records(P.metrics_path, ["02_finetune_endpoints", "03_attribute_scorers"])
why = {"monotone": "not monotone", "strong": "too weak", "fluent": "not fluent"}
n2 = {c: [show.number(x, 2) for x in verdict[c]] for c in ("base model", "α = 0", "α = 1", "range", "ρ")}
shown = pd.DataFrame({
    "base model": n2["base model"],
    "mean at α = 0 → 1": [f"{a} → {b}" for a, b in zip(n2["α = 0"], n2["α = 1"])],
    "range\n[95% CI]": [f"{r}\n{ci}" for r, ci in zip(n2["range"], verdict["range 95% CI"])],
    "ρ\n[95% CI]": [f"{r}\n{ci}" for r, ci in zip(n2["ρ"], verdict["ρ 95% CI"])],
    "R²": verdict["R²"], "max ppl / base": verdict["max ppl / base on [0, 1]"],
    "passes": ["yes" if ok else "no: " + ", ".join(why[c] for c in claims.failed(checks, a)) for a, ok in verdict.passes.items()],
}, index=verdict.index)  # fmt: skip
display(show.table(shown, index=True, digits=2, caption="The dial's verdict per attribute, on α ∈ [0, 1]"))
lines = report.single_attribute_lines(checks, earlier, T)
Markdown(lines[0] + "." + "".join(f"\n- {line.strip()}" for line in lines[1:]))

# %% [markdown]
# ## The same prompt across α
#
# One prompt, continued at several α with the **same sampling seed**, so the only thing that
# changes between boxes is the dial, in order of α (those outside $[0, 1]$ marked extrapolated).
# Each box gives the continuation's score for the swept attribute.

# %%
prompt = prompts[example_prompt]
rows = []
for a in attributes:
    for s in designs.single_attribute(a, example_alphas):
        (g,) = im.generate(
            [prompt], weights=s.weights, seed=seed,
            max_new_tokens=P.preset.max_new_tokens, progress=False,
        )  # fmt: skip
        alpha = s.weights.alpha[a]
        rows.append(dict(attribute=a, α=alpha, continuation=g.text))
examples = pd.DataFrame(rows)
examples["score"] = [
    scorers[a].score([t], progress=False)[0] if t.strip() else np.nan
    for a, t in zip(examples.attribute, examples.continuation)
]

# %% tags=["remove-input"]
display(Markdown(f"**Prompt {example_prompt}:** {prompt}"))
for a, g in examples.groupby("attribute", sort=False):
    g = g.sort_values("α")
    heads = [f"{a}, α = {x:g}{'' if 0 <= x <= 1 else ' (extrapolated)'}: score {show.number(v, 2)}"
             for x, v in zip(g["α"], g.score)]  # fmt: skip
    display(show.continuations(list(zip(heads, g.continuation)), one_row=True))

# %% tags=["remove-input"]
STATS = ("rho", "rho_lo", "rho_hi", "range", "range_lo", "range_hi", "r2", "slope")
_ = P.record(
    "04_single_attribute",
    attributes=attributes,
    alphas=alphas,
    n_prompts=len(prompts),
    n_samples=n_samples,
    n_generations=len(table) + len(base_table),
    scorers=str(find_scorers(P)),
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
# ## What we found
#
# Read the verdict with the scorers' accuracy from chapter 3 in mind: a score can only move as
# far as its scorer can tell the poles apart, so a weak scorer flattens a curve that the text
# itself may follow. Chapter 10 compares these numbers with the paper's claims, and chapter 6
# reads the off-diagonal scores of the same tables as entanglement.

# %% tags=["remove-input"]
means = {a: report.by_alpha(analysis.mean_by_alpha(table, a)) for a in attributes}
base_score = {a: float(base_table[f"score_{a}"].mean()) for a in attributes}
above = [a for a in attributes if base_score[a] > means[a][T.interval[1]]]  # base beyond the high endpoint
bands = {a: claims.bands(ratio[a].to_dict(), means[a], T)[1] for a in attributes}  # fluent and monotone band
n_band = sum(bool(claims.extrapolation(bands[a], T, a).holds) for a in attributes)
n_in = len([x for x in alphas if T.interval[0] <= x <= T.interval[1]])
surprise = "; ".join(f"the base model is more {ends.poles(a)[1]} ({base_score[a]:.2f}) than the {ends.poles(a)[1]} "
                     f"endpoint at α = 1 ({means[a][T.interval[1]]:.2f})" for a in above)  # fmt: skip
show.findings(
    "**{n_pass} of {n} attributes pass** (the acceptance needs {need}: {met}). The ranges from α = 0 to α = 1 run "
    "from {r_min:.2f} ({weakest}) to {r_max:.2f} ({strongest}). Spearman ρ is computed on only {n_in} means per "
    "attribute, so it is 1 for any curve whose means are in order ({n_rho1} of {n} here): it says the order is "
    "right, not that the curve is straight, which is what R² ({r2_min:.2f} to {r2_max:.2f}) measures. "
    + (f"A surprise: {surprise}. " if above else "The base model's score lies below each high endpoint's. ")
    + "Beyond [0, 1] the paper extrapolates over [{b_lo:g}, {b_hi:g}]. Here the dial stays fluent there (perplexity "
    "within {ratio:g}× the base's) and keeps moving the score the same way for **{n_band} of {n} attributes**; "
    "the widest α range that does both is, per attribute: {band_list}.",
    n_pass=acceptance.value, n=len(attributes), need=T.min_passing, met="met" if acceptance.holds else "not met",
    r_min=pred["range"].min(), weakest=pred["range"].idxmin(), r_max=pred["range"].max(),
    strongest=pred["range"].idxmax(), n_in=n_in, n_rho1=int((pred.rho >= 1 - 1e-12).sum()), r2_min=pred.r2.min(),
    r2_max=pred.r2.max(), ratio=T.max_ppl_ratio, b_lo=T.band[0], b_hi=T.band[1], n_band=n_band,
    band_list=", ".join(f"{a} " + (f"[{bands[a][0]:g}, {bands[a][1]:g}]" if bands[a] else "none") for a in attributes),
)  # fmt: skip

# %% tags=["remove-input"]
m3 = earlier.get("03_attribute_scorers", {})
n3, w3, s4 = m3.get("wikitext2_tokens"), m3.get("ppl_window"), 512 if ppl_window is None else min(512, ppl_window // 2)
diff = [f"a different slice of the text (chapter 3 scores the first {n3:,} tokens)"] if n3 and n3 != ppl_tokens else []
diff += [f"more context (a {w3:,}-token window)"] if w3 and ppl_window and w3 != ppl_window else []
show.findings(
    ("Why the base model can be more formal than the formal endpoint: SmolLM2-135M-Instruct is tuned to answer "
     "like an assistant, in a neutral and rather formal register, while both formality endpoints are trained on "
     "GYAFC, short sentences about family and relationships (informal ones and their formal rewrites). Even the "
     "formal endpoint likely pulls the continuations towards that chatty, personal content, which the scorer "
     "reads as less formal. The dial still moves formality by its range between its endpoints, but α = 1 does "
     "not mean 'more formal than the model was'. " if "formality" in above and not P.preset.smoke else "")
    + ("The base model's WikiText-2 perplexity is {p4:.2f} here, on the first {n4} tokens with a {w4}-token window "
       "(stride {s4}), and {p3:.2f} in chapter 3, which measures it with " + (" and ".join(diff) or "the same text")
       + ". Both are right for what they measure. Every ratio in this chapter divides by this chapter's own base "
       "measurement, on the same tokens with the same window, so the {ratio:g}× bar compares like with like."
       if m3.get("wikitext2_ppl") else "")
    + (" *At the `tiny` preset (a random pico model and scorers on a random encoder) every number on this page "
       "is noise: that run only checks that the chapter executes.*" if P.preset.smoke else ""),
    p4=base_ppl, p3=m3.get("wikitext2_ppl", 0.0), n4=f"{ppl_tokens:,}" if ppl_tokens else "all",
    w4=f"{ppl_window:,}" if ppl_window else "full-context", s4=s4, ratio=T.max_ppl_ratio,
)  # fmt: skip
