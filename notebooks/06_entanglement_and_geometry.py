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
# # Entanglement and the geometry of the endpoints
#
# Turning one dial should move one attribute. {cite:t}`kangaslahti2025continuous` find that it
# mostly does: moving $\alpha_i$ changes the scores of the other attributes little, except for a
# few pairs of related attributes. This chapter measures that **entanglement** from the
# single-attribute sweeps of chapter 4, and then looks for its cause in weight space: how
# similar are the endpoints' updates $\Delta W = s\,BA$ to each other?
#
# **The entanglement matrix.** For each attribute $i$ swept alone (chapter 4), and each scored
# attribute $j$, $E_{ij}$ is the least-squares slope of the mean score of $j$ against
# $\alpha_i$ over $[0, 1]$, divided by the diagonal slope $E_{ii}$ (`clm.experiments.analysis.entanglement`).
# $E_{ij} = 0.5$ means that moving $\alpha_i$ moves attribute $j$ half as much as it moves
# attribute $i$; the sign says in which direction.
#
# ```{admonition} Run time
# :class: note
# **With what `clm` ships** (chapter 4's sweep tables, copied into the run dir), this chapter
# reads them and takes seconds. **Regenerating**: a missing table runs that attribute's sweep,
# at chapter 4's cost for it (about 15 minutes per attribute at `cpu` on 2 CPU cores).
# ```

# %% tags=["parameters", "hide-input"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
attributes = None  # attributes whose α is varied (None: every attribute of the endpoints)
prompts_file = None  # prompts for a missing sweep (None: <data_dir>/prompts/writing_prompts.jsonl)
n_prompts = None  # prompts per setting for a missing sweep (None: the preset's)
n_samples = None  # continuations per prompt for a missing sweep (None: the preset's)
top_pairs = 5  # how many of the strongest off-diagonal entries to list

# %% tags=["remove-input"]
import numpy as np
import pandas as pd
from IPython.display import display
from transformers.utils import logging as hf_logging

import clm
import clm.book.display as show
import clm.book.params
import clm.plots as plots
from clm.book.chapters import chapter
from clm.book.params import table_path
from clm.eval.scoring import load_scorers
from clm.experiments import analysis, designs, sweep
from clm.experiments.tables import read_table

P = chapter("06_entanglement_and_geometry", globals())  # every parameter above, checked; None: the preset's
ends, attributes, prompts_file, top_pairs = P.ends, P.attributes, P.prompts_file, P.top_pairs
n_prompts, n_samples = P.n_prompts, P.n_samples
tables = P.run_dir / "tables"
hf_logging.disable_progress_bar()
show.setup_line(P)

# %% [markdown]
# ## The sweeps
#
# Chapter 4's tables (`<run_dir>/tables/single_<attribute>.parquet`) are read as they are; an
# attribute without a table is swept here with the preset's settings.

# %%
missing = [a for a in attributes if not table_path(P, f"single_{a}.parquet", ends).is_file()]
if missing:
    base, tok = clm.load_base(P.model)
    im = clm.InterpolatedModel(base, tok, ends)
    scorers = load_scorers(path=clm.book.params.find_scorers(P))
single = {
    a: read_table(tables / f"single_{a}.parquet")
    if a not in missing
    else sweep.run_sweep(
        im,
        designs.single_attribute(a, P.preset.sweep_alphas),
        prompts_file,
        scorers,
        out=tables / f"single_{a}.parquet",
        **P.sweep_kwargs(n_prompts, n_samples),  # as chapter 4, so its batches are reused
    )
    for a in attributes
}
source = {a: "swept here" if a in missing else "chapter 4" for a in attributes}

# %%
table = pd.concat(single.values(), ignore_index=True)
scored = [c[len("score_") :] for c in table.columns if c.startswith("score_")]
sources = pd.DataFrame(
    {
        "table": source,
        "generations": {a: len(t) for a, t in single.items()},
        "α values": {a: t.setting.nunique() for a, t in single.items()},
    }
)
show.table(sources.rename_axis("α of"), caption="The single-attribute sweeps this chapter reads", index=True)

# %% [markdown]
# ## The entanglement matrix
#
# Rows: the attribute whose α moves; columns: the attribute scored. The diagonal is 1 by
# construction. Below the heatmap, the raw slopes (score change per unit of α, before
# dividing by the diagonal): a normalised entry is only meaningful when its row's diagonal
# slope is clearly non-zero.

# %%
E = analysis.entanglement(table, attributes, scored)
raw = analysis.entanglement(table, attributes, scored, normalize=False)
fig = plots.entanglement_heatmap(E, title="entanglement (normalised by the diagonal)")
caption = "Entanglement E: rows, the attribute whose α moves; columns, the attribute scored; each row divided by its diagonal."
display(show.figure(fig, "6.1", caption, alt=f"Heatmap of the {E.shape[0]}×{E.shape[1]} entanglement matrix."))
show.table(raw.rename_axis("α of"), caption="Raw slopes: score change per unit of α, before normalising", index=True)

# %% [markdown]
# The strongest off-diagonal entries, computed from the matrix above (largest |E| first):

# %%
from clm.experiments import claims

pairs = analysis.strongest_pairs(E, raw, top_pairs)
off = E.where(~np.equal.outer(E.index.to_numpy(), E.columns.to_numpy())).abs()
own = claims.own_effect(analysis.predictability(table, attributes).set_index("attribute"))
unreliable = [a for a, clear in zip(own.attribute, own.holds) if not clear]
display(
    show.findings(
        "Mean |off-diagonal E| = {mean_off:.2f}. Diagonal slopes: {diag}. Rows whose own slope's 95% CI contains 0 "
        "(their normalised entries are unreliable): {unreliable}.",
        mean_off=float(np.nanmean(off.to_numpy())), unreliable=", ".join(unreliable) or "none",
        diag=", ".join(f"{a} {show.number(raw.loc[a, a], 2)}" for a in attributes),
    )
)  # fmt: skip
show.table(pairs, caption="The strongest off-diagonal entries: E is the effect relative to the row's own")

# %% [markdown]
# The strongest pair as a response curve: the score of the second attribute against the first
# one's α, over the whole grid.

# %%
if len(pairs):
    i, j = pairs.loc[0, "alpha of"], pairs.loc[0, "score of"]
    fig = plots.response_curves(table, [i], score=j, title=f"score of {j} while α_{i} moves")
    alt = f"The mean {j} score against α of {i}, with bootstrap intervals."
    display(show.figure(fig, "6.2", f"The strongest pair: the score of {j} while only α_{i} moves.", alt))

# %% [markdown]
# ## Weight-space geometry
#
# Each endpoint is one vector: all of its modules' $\Delta W = s\,BA$ flattened together.
# `clm.experiments.geometry.endpoint_gram` computes every inner product $\langle \Delta W_k, \Delta W_l
# \rangle_F$ from the low-rank factors (no $\Delta W$ is ever formed); cosines and Frobenius
# distances follow from it. Two endpoints with cosine near 0 change the model in unrelated
# directions.

# %%
from clm.experiments import geometry

G = geometry.endpoint_gram(ends, attributes)
cos, dist = geometry.cosine_matrix(G), geometry.distance_matrix(G)
fig = plots.cosine_heatmap(cos, title="cosine of the endpoints' ΔW")
display(show.figure(fig, "6.3", "Cosine between the endpoints' ΔW.", alt=f"Heatmap of {len(G)}×{len(G)} cosines."))
fig = plots.distance_heatmap(dist, title="Frobenius distance between the endpoints' ΔW")
display(show.figure(fig, "6.4", "Frobenius distance between the endpoints' ΔW.", alt="Heatmap of the distances."))

# %% [markdown]
# **The dial's direction.** What moves when $\alpha_i$ moves is the difference
# $d_i = \Delta W_{i,\text{high}} - \Delta W_{i,\text{low}}$ (for $\lambda_i = 1$,
# $\theta(\alpha) = \theta_0 + \Delta W_{i,\text{low}} + \alpha\, d_i$). The cosine between two
# attributes' directions says whether their dials push the weights the same way; beside it,
# the behavioural entanglement $|E_{ij}|$ of the same pair.

# %%
dir_cos = geometry.cosine_matrix(geometry.direction_gram(G, attributes))
fig = plots.cosine_heatmap(dir_cos, title="cosine of the dials' directions d_i")
display(show.figure(fig, "6.5", "Cosine between the dials' directions d_i.", alt="Heatmap of the direction cosines."))
geometry_vs_behaviour = geometry.directions_vs_entanglement(dir_cos, E, attributes)
n_pairs, rho = len(geometry_vs_behaviour), None
if n_pairs >= 3:
    rho = analysis.spearman(
        geometry_vs_behaviour["cos(d_a, d_b)"].abs(),
        geometry_vs_behaviour[["|E_ab|", "|E_ba|"]].mean(axis=1),
    )
display(
    show.findings("Spearman ρ between |cos(d_a, d_b)| and the mean |E| of the pair, over {n} pairs: {rho}.", n=n_pairs, rho=show.number(rho, 2))
    if rho is not None
    else show.findings("{n} pair(s) of attributes: too few to correlate geometry with entanglement.", n=n_pairs)
)  # fmt: skip
show.table(geometry_vs_behaviour, caption="Direction cosine and entanglement of each pair", index=True)

# %% [markdown]
# ## A map of the interpolated models
#
# Every setting $(\alpha, \lambda)$ is a point $\theta_0 + \sum_k c_k \Delta W_k$ in weight space,
# linear in the endpoints, so the distances between any settings follow exactly from the Gram
# matrix above; classical MDS draws them in the plane (`clm.experiments.geometry.mds_embedding`). Lines:
# each attribute's α path over the grid (hollow dots in the extrapolation bands); grey: equal
# mixtures of all attributes at α = 0, ½ and 1; the star: the base model.

# %%
paths = [s for a in attributes for s in designs.single_attribute(a, P.preset.sweep_alphas)]
mixtures = designs.custom(
    [clm.Weights({a: x for a in attributes}, {a: 1 / len(attributes) for a in attributes}) for x in (0.0, 0.5, 1.0)],
    design="mixture",
)
emb = geometry.mds_embedding(G, paths + mixtures)
fig = plots.mds_scatter(emb, other_label="equal mixtures")
caption = ("Classical MDS of the interpolated models' weights: each attribute's α path (hollow: α outside [0, 1]; "
           "its far ends labelled where the labels do not crowd each other), equal mixtures of all attributes at "
           "α = 0, ½ and 1 (grey), the base (star).")
show.figure(fig, "6.6", caption, alt=f"A 2-D map of {len(paths) + len(mixtures)} interpolated models and the base.")

# %% tags=["remove-input"]
_ = P.record(
    "06_entanglement_and_geometry",
    entanglement={
        "attributes": attributes,
        "matrix": E.loc[attributes, attributes].to_numpy().tolist(),  # square: rows α of, columns score of
        "scores": scored,
        "matrix_all_scores": E.to_numpy().tolist(),
        "raw_slopes": raw.to_numpy().tolist(),
        "mean_abs_off_diagonal": float(np.nanmean(off.to_numpy())),
        "unreliable_rows": unreliable,
    },
    top_pairs=[
        {"alpha_of": r["alpha of"], "score_of": r["score of"], "effect": float(r.E), "raw_slope": float(r.raw_slope)}
        for _, r in pairs.iterrows()
    ],
    geometry={
        "labels": list(G.index),
        "cosine": cos.to_numpy().tolist(),
        "distance": dist.to_numpy().tolist(),
        "norms": {k: float(np.sqrt(G.loc[k, k])) for k in G.index},
        "direction_cosine": dir_cos.to_numpy().tolist(),
        "direction_vs_entanglement_rho": rho,
    },
)

# %% tags=["remove-input"]
# the numbers of the findings below
thr, n_off = claims.DEFAULT.entangled_at, int(off.notna().sum().sum())
n_entangled = int((off >= thr).sum().sum())
max_dir = float(geometry_vs_behaviour["cos(d_a, d_b)"].abs().max()) if n_pairs else float("nan")
i, j = (pairs.loc[0, "alpha of"], pairs.loc[0, "score of"]) if len(pairs) else (None, None)
reverse = float(E.loc[j, i]) if j in E.index and i in E.columns else float("nan")
data_gap = ""
if i is not None and "scorers" not in globals():  # loaded above only if a sweep was missing
    scorers = load_scorers(path=clm.book.params.find_scorers(P))
if i is not None and j in scorers:
    # does the data carry it? the j scorer on the two poles' own training texts of attribute i
    from clm.methods.steering import pole_texts

    low_texts, high_texts = pole_texts(P.data_dir, i, 500)
    lo_mean, hi_mean = (float(np.mean(scorers[j].score(t))) for t in (low_texts, high_texts))
    gap = hi_mean - lo_mean
    same_way = np.sign(gap) == np.sign(float(E.loc[i, j]))
    data_gap = (
        f" The training data carry it: the {j} scorer gives {i}'s {ends.poles(i)[0]} training texts a mean of "
        f"{lo_mean:.2f} and its {ends.poles(i)[1]} ones {hi_mean:.2f} ({len(low_texts)} of each), a gap of {gap:+.2f} "
        "in the entry's direction." if same_way and abs(gap) >= 0.05 else
        f" The training data do not explain it: the {j} scorer gives {i}'s two poles' training texts means of "
        f"{lo_mean:.2f} and {hi_mean:.2f} ({len(low_texts)} of each)."
    )
cause = (
    "The likely cause is the data, not the dial: FlickrStyle's non-humorous pole (α = 0) is its *romantic* "
    "captions (“loving owner”, “the happiness of childhood”), so sliding α_humor from the romantic to the humorous "
    "pole also takes away their warmth, and the sentiment scorer, trained on SST-2 movie reviews, reads humorous "
    "captions as more negative." + data_gap + " Retraining the non-humorous pole on FlickrStyle's factual "
    "captions should shrink the entry; that is not done here."
    if (i, j) == ("humor", "sentiment")
    else (data_gap.strip() or "Its cause is not examined here.")
)

# %% [markdown]
# ## What we found

# %% tags=["remove-input"]
show.findings(
    "Moving one attribute's α moves the others' scores by {mean_off:.2f} of its own effect on average (the mean "
    "|off-diagonal E|), and {n_ent} of {n_off} off-diagonal entries reach |E| ≥ {thr:g}. The strongest: α_{i} moves "
    "{j} by {e:+.2f} of its own effect (a raw slope of {raw_ij:+.3f} per unit α, against {i}'s own {raw_ii:+.3f}); "
    "the reverse, α_{j} on {i}, is {rev}. {cause}\n\nIn weight space the dials are nearly orthogonal: the "
    "largest |cos(d_a, d_b)| of the {n_pairs} pairs is {max_dir:.3f}, and the rank correlation between |cos| and "
    "the pair's mean |E| is {rho} (over only {n_pairs} pairs, a weak test). Cosines near 0 are what any two "
    "unrelated directions among millions of weights have, so they promise nothing about the text: the directions "
    "are orthogonal, yet their effects on the scores are entangled. Weight-space orthogonality does not imply "
    "output independence, because the scorers read the text, and different weight changes can move it the same "
    "way.{tiny}",
    mean_off=float(np.nanmean(off.to_numpy())), n_ent=n_entangled, n_off=n_off, thr=thr, i=i, j=j,
    e=float(pairs.loc[0, "E"]), raw_ij=float(raw.loc[i, j]), raw_ii=float(raw.loc[i, i]), rev=show.number(reverse, 2),
    cause=cause, n_pairs=n_pairs, max_dir=max_dir, rho=show.number(rho, 2),
    tiny=" At the `tiny` preset every number is noise: that run only checks that the chapter executes."
    if P.preset.smoke else "",
)  # fmt: skip
