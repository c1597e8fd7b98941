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
# {doc}`introduction <../book/intro>`), with $\lambda$ on the simplex:
#
# $$
# \theta(\alpha, \lambda) = \theta_0 + \sum_i \lambda_i \big[\alpha_i \Delta W_{i,\text{high}} + (1 - \alpha_i) \Delta W_{i,\text{low}}\big]
# $$
#
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
# samples) an estimated one to two hours on one GPU of the H100 class. The line below says what
# this run will generate; sweeps are resumable.
# ```

# %% tags=["parameters", "hide-input"]
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

# %% tags=["remove-input"]
import pandas as pd
from IPython.display import display
from transformers.utils import logging as hf_logging

import clm
import clm.book.display as show
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
plan = f"Targets {', '.join(targets)} at λ {', '.join(f'{x:g}' for x in lams)}; simplex over {', '.join(simplex_attributes)}"
n_gen = show.number(P.n_settings * len(prompts) * n_samples)
show.setup_line(P, f"{plan}; {len(prompts)} prompts × {n_samples} samples: at most {n_gen} generations.")

# %% tags=["remove-input"]
base, tok = clm.load_base(P.model)
im = clm.InterpolatedModel(base, tok, ends)
scorers = load_scorers(path=clm.book.params.find_scorers(P))
gen = dict(P.sweep_kwargs(n_prompts, n_samples, fluency=False), scorers=scorers)  # this chapter reads scores only
# the base model's rows (chapter 4 made them; computed here if missing)
base_table = sweep.run_sweep(
    im, designs.custom(["base"], design="base"), prompts_file, out=table_path(P, "base.parquet", ends), **gen
)

# %% [markdown]
# ## The λ design
#
# `clm.experiments.designs.multi_attribute(target, attributes, lams)` gives the paper's settings: for each λ
# and each target α, the target at λ and the others at $(1 - \lambda) / (K - 1)$ each, α = 1.
# One example setting, and the plan:

# %%
design = {t: designs.multi_attribute(t, available, lams=lams, alphas=target_alphas) for t in targets}
multi = {
    t: sweep.run_sweep(im, design[t], prompts_file, out=table_path(P, f"multi_{t}.parquet", ends), **gen)
    for t in targets
}
table = pd.concat(multi.values(), ignore_index=True)
table["λ"] = [table.at[i, f"lam_{t}"] for i, t in zip(table.index, table.target)]  # the target's λ
show.findings(
    "One setting of the design: `{example}`. In all, {n} generations at {k} settings.",
    example=str(design[targets[0]][0]), n=len(table), k=table.setting.nunique(),
)  # fmt: skip

# %% [markdown]
# ### Response curves by λ
#
# The target's mean score against its α, one curve per λ (darker: larger λ), with bootstrap
# 95 % intervals; dashed: the base model.

# %%
fig = plots.response_curves(pd.concat([table, base_table], ignore_index=True), targets, by="λ")
show.figure(
    fig, "5.1", "The target's mean score against its α, one curve per λ (darker: larger λ), with bootstrap 95% "
    "intervals; dashed: the base model.",
    alt=f"Response curves of {', '.join(targets)} for λ = {', '.join(f'{x:g}' for x in lams)}: the larger λ, the "
    "steeper the curve.",
)  # fmt: skip

# %% [markdown]
# How predictable the target stays as its weight shrinks: Spearman ρ and the range between
# α = 0 and α = 1 of the target's mean score, per λ. ρ is computed over the few α values of the
# design (three at `cpu`): with so few points it is 1 whenever the means are in order, so it
# says *monotone*, not *smooth*.

# %%
pred = analysis.predictability(table, targets, by="λ")
order = sorted(lams, reverse=True)
curves = {t: pred[pred.attribute == t].set_index("λ") for t in targets}
for stat, what in (
    ("range", "Range of the target's mean score, α = 0 → 1"),
    ("rho", f"Spearman ρ over {len(target_alphas)} α values"),
):
    frame = pd.DataFrame({"target": t, **{f"λ = {x:g}": curves[t].loc[x, stat] for x in order}} for t in targets)
    display(show.table(frame, caption=f"{what}, per λ"))

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
for k, t in enumerate(targets):
    sub = labelled[(labelled.target == t) | (labelled.design == "base")]
    groups = ["base model"] + [f"λ={lam:g}, α={a:g}" for lam in lams for a in (0, 1)]
    fig = plots.spider(sub, by="curve", groups=groups, title=f"target: {t}")
    caption = f"Every attribute's mean score with {t} as the target: one panel per λ (α = 0 and α = 1), the base model dashed in each."
    display(show.figure(fig, f"5.{2 + k}", caption, alt=f"Spider plot of the five mean scores, target {t}."))

# %% [markdown]
# ## The simplex
#
# Three attributes, all at α = 1, with λ over the simplex (`clm.experiments.designs.simplex`); each panel is
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
    fig = plots.ternary(simplex, simplex_attributes)
    caption = f"Mean score of each attribute over the λ simplex of {', '.join(simplex_attributes)} (all at α = 1), on one colour scale spanning the data."
    alt = (
        f"{len(simplex_attributes)} ternary heatmaps; {simplex.setting.nunique()} λ points, {len(simplex)} generations."
    )
    display(show.figure(fig, f"5.{2 + len(targets)}", caption, alt))
    corner_table = analysis.simplex_corners(simplex, simplex_attributes)
    own = {a: float(corner_table.loc[a, f"score_{a}"]) for a in simplex_attributes}
    best = {a: corner_table[f"score_{a}"].idxmax() for a in simplex_attributes}
    display(show.table(corner_table.rename(columns=lambda c: c.removeprefix("score_") + " score"), digits=2,
                       caption="Mean score (columns) at each attribute's corner (rows)", index=True))  # fmt: skip
else:
    simplex, own, best = None, {}, {}
    display(show.findings("The simplex needs 3 attributes; these endpoints have {n}: skipped.", n=len(available)))

# %% tags=["remove-input"]
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

# %% tags=["remove-input"]
# the numbers of the findings below
hi, lo = max(lams), min(lams)
others = [c[len("score_") :] for c in table.columns if c.startswith("score_")]
spill = {  # the largest move of another attribute's mean score, α = 0 → 1, at the target's largest λ
    t: max((abs(m["1"] - m["0"]), j) for j in others if j != t
           for m in [analysis.mean_by_alpha(table[(table.target == t) & (table["λ"] == hi)], t, score=j)])
    for t in targets
}  # fmt: skip
shrinks = all(by_lam[t]["range"].sort_index().is_monotonic_increasing for t in targets)
lam_text = " ".join(
    f"With {t} as the target, its range is {show.number(by_lam[t].loc[hi, 'range'], 2)} at λ = {hi:g} and "
    f"{show.number(by_lam[t].loc[lo, 'range'], 2)} at λ = {lo:g}; the largest move of another attribute's score at "
    f"λ = {hi:g} is {spill[t][1]}'s, {show.number(spill[t][0], 2)}."
    for t in targets
)
simplex_text = (
    f"On the simplex of {', '.join(simplex_attributes)}, {sum(best[a] == a for a in best)} of {len(best)} attributes "
    "score highest at their own corner (" + ", ".join(f"{a} {show.number(v, 2)}" for a, v in own.items()) + ")."
    if simplex is not None
    else "The simplex was not run (it needs 3 attributes)."
)

# %% [markdown]
# ## What we found

# %% tags=["remove-input"]
show.findings(
    "{lam_text} {verdict} The lowest ρ of any target and λ is {rho_min:.2f}, but ρ is taken over {n_alpha} α values "
    "only, so it checks the order of the means, not the shape of the curve. {simplex_text}{tiny}",
    lam_text=lam_text,
    verdict="Every target's range grows with its λ: λ works as a strength knob, and a target with less weight "
    "moves less." if shrinks else "The range does not grow with λ for every target.",
    rho_min=float(pred.rho.min()), n_alpha=len(target_alphas), simplex_text=simplex_text,
    tiny=" At the `tiny` preset every number is noise: that run only checks that the chapter executes."
    if P.preset.smoke else "",
)  # fmt: skip
