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
# # Several attributes at once: λ mixtures and the simplex
#
# With several attributes the interpolated model mixes all of them (see the
# {doc}`introduction <../book/intro>`):
# $\theta(\alpha, \lambda) = \theta_0 + \sum_i \lambda_i [\alpha_i \Delta W_{i,\text{high}}
# + (1 - \alpha_i) \Delta W_{i,\text{low}}]$ with $\lambda$ on the simplex.
# {cite:t}`kangaslahti2025continuous` ask two questions of it, and so does this chapter.
#
# 1. **Does one dial still work when the others are turned?** The paper's design: a *target*
#    attribute gets weight $\lambda \in \{0.8, 0.4, 0.2\}$, every other attribute shares
#    $1 - \lambda$ equally at $\alpha = 1$ (its high pole), and the target's $\alpha$ moves over
#    $\{0, 0.2, \dots, 1\}$. The less weight the target has, the less its α should move its
#    score, but the response should stay monotone.
# 2. **What does the mixture do between attributes?** Three attributes at $\alpha = 1$, their
#    λ over the simplex in steps of 0.2: each attribute's score should rise towards its own
#    corner.
#
# ```{admonition} Run time
# :class: warning
# **With what `clm` ships** (the endpoints, the scorer heads and this chapter's λ-design and
# simplex tables of the reference run), `cpu` reads the sweeps instead of generating them: under
# a minute on 2 CPU cores, most of it loading the model. **Regenerating the sweeps** (other
# endpoints, prompts or settings) is a heavy page: every setting is generated for every prompt
# and sample. `tiny` takes seconds; `cpu` (2 targets, the target's α at 0, ½ and 1 only, the
# simplex in steps of 0.25, 100 prompts × 2 samples: 6,600 generations) an estimated 40 minutes
# on 2 CPU cores; `gpu` (all five targets, the paper's α and simplex grids, 1,000 prompts × 3
# samples) an estimated one to two hours on one GPU of the H100 class. The setup cell prints what
# this run will generate; sweeps are resumable.
# ```

# %% tags=["parameters"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
targets = None  # target attributes of the λ design (None: sentiment and formality; all five at gpu)
lams = [0.8, 0.4, 0.2]  # the target's λ (the paper's)
target_alphas = None  # the target's α (None: the preset's; the paper's 0, 0.2, …, 1 except at cpu)
simplex_attributes = None  # 3 attributes for the simplex (None: sentiment, formality, humor)
simplex_step = None  # λ grid step on the simplex (None: the preset's; the paper's 0.2 except at cpu)
prompts_file = None  # a .jsonl/.txt of prompts (None: <data_dir>/prompts/writing_prompts.jsonl)
n_prompts = None  # prompts per setting (None: the preset's)
n_samples = None  # continuations per prompt (None: the preset's)

# %%
import matplotlib.pyplot as plt
import pandas as pd
from transformers.utils import logging as hf_logging

import clm
import clm.book.params
import clm.plots as plots
from clm.book.chapters import chapter
from clm.book.params import table_path
from clm.data import read_texts
from clm.eval.scoring import load_scorers
from clm.experiments import analysis, designs, sweep

P = chapter("05_multi_attribute", globals())  # every parameter above, checked; None: the preset's
ends, available, targets, lams, target_alphas = P.ends, P.ends.attributes, P.targets, P.lams, P.target_alphas
simplex_attributes, simplex_step, prompts_file = P.simplex_attributes, P.simplex_step, P.prompts_file
n_prompts, n_samples = P.n_prompts, P.n_samples
prompts = read_texts(prompts_file, limit=n_prompts)  # one-line DataError if missing or bad
hf_logging.disable_progress_bar()
pd.set_option("display.precision", 3)
print(P.describe())
print(f"targets {targets}, λ {lams}; simplex over {simplex_attributes}; {len(prompts)} prompts x {n_samples} samples")
print(
    f"{P.n_settings * len(prompts) * n_samples:,} generations of {P.preset.max_new_tokens} tokens "
    "(and the base model's, if missing)"
)

# %%
base, tok = clm.load_base(P.model)
im = clm.InterpolatedModel(base, tok, ends)
scorers = load_scorers(path=clm.book.params.find_scorers(P))
gen = dict(P.sweep_kwargs(n_prompts, n_samples, fluency=False), scorers=scorers)  # this chapter reads scores only
# the base model's rows (chapter 4 made them; computed here if missing)
base_table = sweep.run_sweep(
    im, designs.custom(["base"], design="base"), prompts_file, out=table_path(P, "base.parquet", ends), **gen
)
print(f"endpoints: {ends}")

# %% [markdown]
# ## The λ design
#
# `clm.experiments.sweep.multi_attribute(target, attributes, lams)` gives the paper's settings: for each λ
# and each target α, the target at λ and the others at $(1 - \lambda) / (K - 1)$ each, α = 1.
# One example setting, and the plan:

# %%
design = {t: designs.multi_attribute(t, available, lams=lams, alphas=target_alphas) for t in targets}
print(design[targets[0]][0])
multi = {
    t: sweep.run_sweep(im, design[t], prompts_file, out=table_path(P, f"multi_{t}.parquet", ends), **gen)
    for t in targets
}
table = pd.concat(multi.values(), ignore_index=True)
table["λ"] = [table.at[i, f"lam_{t}"] for i, t in zip(table.index, table.target)]  # the target's λ
print(f"{len(table):,} generations at {table.setting.nunique()} settings")

# %% [markdown]
# ### Response curves by λ
#
# The target's mean score against its α, one curve per λ (darker: larger λ), with bootstrap
# 95 % intervals; dashed: the base model.

# %%
fig = plots.response_curves(pd.concat([table, base_table], ignore_index=True), targets, by="λ")
plt.show()

# %% [markdown]
# How predictable the target stays as its weight shrinks: Spearman ρ and the range between
# α = 0 and α = 1 of the target's mean score, per λ.

# %%
pred = analysis.predictability(table, targets, by="λ")
pred_table = pred.pivot(index="attribute", columns="λ", values=["rho", "range"])
pred_table[[(stat, lam) for stat in ("rho", "range") for lam in sorted(lams, reverse=True)]]

# %% [markdown]
# ### Spider plots
#
# Every attribute's mean score (one axis each) for the target at α = 0 and α = 1, at each λ,
# beside the base model. The polygon should move along the target's axis with α and stay put
# on the others, which the mixture holds at their high poles.

# %%
labelled = pd.concat([table, base_table], ignore_index=True)
alpha_t = [
    labelled.at[i, f"alpha_{t}"] if d == "multi" else None
    for i, t, d in zip(labelled.index, labelled.target, labelled.design)
]
labelled["curve"] = [
    "base model" if d == "base" else f"λ={lam:g}, α={a:g}" for d, lam, a in zip(labelled.design, labelled["λ"], alpha_t)
]
for t in targets:
    sub = labelled[(labelled.target == t) | (labelled.design == "base")]
    groups = ["base model"] + [f"λ={lam:g}, α={a:g}" for lam in lams for a in (0, 1)]
    fig = plots.spider(sub, by="curve", groups=groups, title=f"target: {t}")
    plt.show()

# %% [markdown]
# ## The simplex
#
# Three attributes, all at α = 1, with λ over the simplex (`clm.experiments.sweep.simplex`); each panel is
# the mean score of one attribute at every λ point (white dots), interpolated between them.
# An attribute whose dial works should be brightest at its own corner.

# %%
if len(simplex_attributes) == 3:
    simplex = sweep.run_sweep(
        im,
        designs.simplex(simplex_attributes, step=simplex_step),
        prompts_file,
        out=table_path(P, "simplex.parquet", ends),
        **gen,
    )
    print(f"{len(simplex):,} generations at {simplex.setting.nunique()} points of the simplex")
    fig = plots.ternary(simplex, simplex_attributes)
    plt.show()
    corner_table = analysis.simplex_corners(simplex, simplex_attributes)
    own = {a: float(corner_table.loc[a, f"score_{a}"]) for a in simplex_attributes}
    best = {a: corner_table[f"score_{a}"].idxmax() for a in simplex_attributes}
    print("Each attribute's score is highest at the corner of:", best)
    display(corner_table)  # noqa: F821 (IPython)
else:
    simplex, own, best = None, {}, {}
    print(f"the simplex needs 3 attributes; these endpoints have {available}: skipped")

# %%
by_lam = {t: pred[pred.attribute == t].set_index("λ") for t in targets}
_ = P.record(
    "05_multi_attribute",
    targets=targets,
    lams=list(lams),
    n_prompts=len(prompts),
    n_samples=n_samples,
    n_generations=len(table) + (0 if simplex is None else len(simplex)),
    multi={
        t: {
            f"{lam:g}": {
                "mean_by_alpha": analysis.mean_by_alpha(table[table["λ"] == lam], t),
                **{k: float(r[k]) for k in ("rho", "range", "r2", "slope")},
            }
            for lam, r in by_lam[t].iterrows()
        }
        for t in targets
    },
    simplex_attributes=simplex_attributes if simplex is not None else [],
    simplex_own_corner=own,
    simplex_best_corner=best,
    simplex_means=[] if simplex is None else analysis.simplex_means(simplex, simplex_attributes),
)

# %% [markdown]
# ## What it means
#
# Read the ρ and range table column by column: the paper finds that a smaller λ shrinks the
# range of the target's response but keeps it monotone, so a user can trade strength of one
# attribute against the others. The spider plots show whether the other attributes, held at
# their high poles by the mixture, stay where the mixture puts them while the target moves,
# which chapter 6 measures as entanglement. On the simplex, an attribute that is brightest at
# its own corner and fades smoothly towards the opposite edge can be mixed with the others at
# will; one that is flat across the triangle does not respond to λ at this scale.
#
# At the `tiny` preset every number is noise: that run only checks that the chapter executes.
