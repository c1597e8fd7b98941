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
# # Interpolation against the alternatives
#
# Is dialing two LoRA endpoints better than what a reader would do otherwise? This chapter puts
# the method beside four alternatives on **the same work**: the same base model, the same
# evaluation prompts (the first WritingPrompts prompts, two samples each, 32 tokens, pure
# sampling), the same scorers and the same fluency measure. Each method is a `clm` generator with a
# strength dial (`clm.methods`):
#
# | method | its dial | settings per batch row | what it needs |
# |---|---|---|---|
# | **interpolation** (ours) | α between the low and high endpoint | yes | the two endpoints |
# | **prompting** | an instruction in the chat template, level −2 … +2 | yes | a wording, chosen on dev prompts |
# | **activation steering** {cite:p}`turner2023activation,panickssery2024steering` | c · v added to the residual stream after one layer | yes | a mean-difference vector v |
# | **logit arithmetic**, linear (DExperts, {cite:t}`liu2021dexperts`) | α in base + α (high − low) | yes | the endpoints, 3 passes per token |
# | **logit arithmetic**, product of experts {cite:p}`dekoninck2024arithmetic` | α in (1 − α) log p_low + α log p_high | yes | the endpoints, 2 passes per token |
# | **data mixture** | m, the high-pole share of the training texts | no: one adapter per m | one adapter trained per m |
#
# Hyper-parameters are chosen on **development prompts only** (the *last* prompts of the file),
# by rules written down in `clm.methods.dev` before any evaluation: the prompting wording per
# attribute, and the steering layer and coefficient grid. Where a method *is* another model
# exactly, its rows there are shared rather than regenerated: prompting's level 0, steering's
# c = 0 and linear logit arithmetic's α = 0 are the base model; the product of experts at α = 0
# and 1 and the mixture at m = 0 and 1 are the endpoints (`tests/test_methods.py` checks these
# identities on the logits).
#
# ```{admonition} Run time
# :class: warning
# **With what `clm` ships** (this chapter's tables for SmolLM2-135M) a few minutes at `cpu`: the
# continuations and their scores are read back. **Regenerating them** takes about four and a half
# hours on 2 CPU cores (about 17,000 continuations with their scores and perplexities, the
# perplexities of chapter 4's 9,000 besides, and the mixture adapters' training; the three
# attributes without trained methods took 86 minutes of it). Everything is keyed and resumable:
# a killed run continues where it stopped.
# ```

# %% tags=["parameters", "hide-input"]
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
attributes = None  # attributes of every method but the trained ones (None: every attribute of the endpoints)
trained = ["sentiment", "formality"]  # attributes that also get logit arithmetic and mixture adapters
prompts_file = None  # a .jsonl/.txt of prompts (None: <data_dir>/prompts/writing_prompts.jsonl)
n_prompts = None  # evaluation prompts: the first n (None: the preset's)
n_samples = None  # continuations per prompt (None: the preset's)
n_dev = None  # development prompts: the last n of prompts_file (None: 40, or n_prompts if fewer)
layers = None  # candidate steering layers (None: a quarter, half and three quarters of the way up)
probe = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]  # steering coefficients tried on the dev prompts, each at + and -
max_ppl_ratio = 1.5  # the fluency budget: continuation perplexity under the base / the base's own
positions = "all"  # steer every position, or "generated" ones only
fractions = [0.25, 0.5, 0.75]  # high-pole shares of the mixture adapters
n_texts = 500  # training texts per pole for each steering vector
example_prompt = 0  # the prompt of the example continuations

# %% tags=["remove-input"]
import numpy as np
import pandas as pd
from IPython.display import display
from transformers.utils import logging as hf_logging

import clm
from clm.bench import alternatives as bench_alt
from clm.bench import report as bench_report
from clm.book import display as show
from clm.book.chapters import chapter
from clm.book.params import find_scorers, table_path
from clm.eval.scoring import load_scorers
from clm.experiments import compare, compare_report, compare_runs
from clm.plots import compare as cplots

P = chapter("08_alternatives", globals())  # every parameter above, checked; None: the preset's
ends, attributes, trained = P.ends, P.attributes, P.trained
hf_logging.disable_progress_bar()  # no "Loading weights" bars in the book
show.setup_line(
    P, f"Dev choices on the last {P.n_dev} prompts of `{P.prompts_file.name}`; the comparison on its first "
    f"{P.n_prompts} × {P.n_samples} samples; interpolation, prompting and steering on {', '.join(attributes)}; "
    f"logit arithmetic and mixtures besides on {', '.join(trained)}; fluency budget {P.max_ppl_ratio:g}× the base's "
    "perplexity.",
)  # fmt: skip

# %% [markdown]
# ## The runs
#
# `clm.experiments.compare_runs.run_all` does every step in order, each through `clm`'s sweep
# machinery (`run_method_sweep`, keyed by the method's `describe()` and the generation settings):
#
# 1. **Dev choices** on the development prompts, one sample each: every candidate wording of
#    `clm.methods.prompting.WORDINGS` at levels −2 and +2 (the wording with the largest range
#    wins); steering vectors at three candidate layers for the first attribute, each probed at
#    ±c for every c in `probe`, keeping per layer the largest c whose continuations stay within
#    `max_ppl_ratio` of the unsteered ones' perplexity, and the layer with the largest range; then
#    each other attribute's largest fluent c at that layer. The grid is c_max × (−1, −½, ½, 1).
# 2. **The comparison sweeps** on the evaluation prompts: chapter 4's α sweeps (read back, each
#    continuation's perplexity under the base added), prompting, steering (with WikiText-2
#    perplexity at every c, since steering every position defines one model per c), and for the
#    trained attributes both logit arithmetics and the mixture adapters (trained with the
#    endpoints' own recipe, only if a table is missing).

# %%
base, tok = clm.load_base(P.model)
im = clm.InterpolatedModel(base, tok, ends)
scorers = load_scorers(path=find_scorers(P))
res = compare_runs.run_all(P, im, scorers, table=lambda name: table_path(P, "compare/" + name, ends),
                           chapter4_table=lambda name: table_path(P, name, ends), log=lambda _: None)  # fmt: skip
tidy, base_rows = compare_runs.share_rows(res["tables"])
dev = res["dev"]
counts = tidy.groupby(["method", "attribute"], sort=False).size().unstack("attribute")[attributes].astype("Int64")
show.table(counts.loc[compare_report.order(counts.index)], index=True, digits=6,
           caption="Continuations per method and attribute on the evaluation prompts (shared rows included)")  # fmt: skip

# %% [markdown]
# ## What the development prompts chose

# %% tags=["remove-input"]
wording = pd.DataFrame([
    {"attribute": a, **{name: r["range"] for name, r in rec["candidates"].items()}, "chosen": rec["chosen"]}
    for a, rec in dev["wording"].items()
])  # fmt: skip
display(show.table(wording, caption=f"Prompting: the dev range mean(+2) − mean(−2) of each candidate wording "
                   f"({P.n_dev} dev prompts, one sample each), and the one chosen", digits=2))  # fmt: skip
first = next(iter(dev["steering"]))
st0 = dev["steering"][first]
layer_rows = pd.DataFrame([
    {"layer": L, "c_max": r["c_max"], "range at ±c_max": r["range"],
     **{f"ppl ratio at ±{c:g}": v for c, v in sorted(r["ratio"].items())}}
    for L, r in st0["layers"].items()
])  # fmt: skip
display(show.table(layer_rows, caption=f"Steering, {first}: per candidate layer the largest fluent c (ratio ≤ "
                   f"{P.max_ppl_ratio:g}) and the range it gives; layer {dev['layer']} is chosen", digits=2))  # fmt: skip
steer_rows = pd.DataFrame([
    {"attribute": a, "layer": dev["layer"], "c_max": r["c_max"], "dev range": r["layers"][dev["layer"]]["range"],
     "grid": ", ".join(f"{c:g}" for c in r["grid"]) if r["grid"] else "none fluent",
     "vector seconds": float(sum(r["vector_seconds"].values()))}
    for a, r in dev["steering"].items()
])  # fmt: skip
display(show.table(steer_rows, caption="Steering: each attribute's coefficient grid at the chosen layer, and the "
                   f"seconds its vectors took ({P.n_texts} training texts per pole)", digits=3))  # fmt: skip

# %% [markdown]
# ## Control against fluency
#
# For each method and attribute, the mean score at each strength against the perplexity ratio of
# its continuations (each prompt's geometric-mean perplexity under the base, averaged in logs
# over prompts, over the base model's own). Bars are bootstrap 95 % intervals over prompts on both
# axes. A method that reaches further up *and* stays left is better; the open marker is each
# method's highest strength.
#
# This grades the *text* each method writes, with the base model as the judge, which is not the
# fluency bar of chapters 4 and 7 (the model's own WikiText-2 perplexity). It counts any move away
# from what the base itself would write against a method, a move toward fluent text of another
# register included, and the endpoints were fine-tuned on the attribute corpora. Where a method
# defines one model per setting, the table below gives the WikiText-2 view beside it.

# %% tags=["remove-input"]
fr = compare.frontier(tidy, base_rows)
base_score = {a: float(base_rows.groupby("prompt_index")[f"score_{a}"].mean().mean()) for a in attributes}
fig = cplots.frontier(fr, attributes, base_score=base_score, budget=P.max_ppl_ratio)
show.figure(
    fig, "8.1",
    "The control–fluency frontier: mean score against the perplexity ratio (log scale) of each method over its "
    f"dial, per attribute, with 95 % intervals; dotted: the base model's score; dashed: the budget of "
    f"{P.max_ppl_ratio:g}.",
    alt="One panel per attribute; each method's line runs from low to high score, some drifting right to "
        "higher perplexity.",
)  # fmt: skip

# %% [markdown]
# ## Side by side
#
# Per method and attribute (`clm.experiments.compare.metrics`): the **range** of the mean score
# over the dial; **reach**: that range within the fluency budget; Spearman **ρ** and linear **R²**
# of the mean score against the dial; the **prompt spread** (the standard deviation of the
# per-prompt means at a setting, averaged over settings); the **off-target drift** (the largest
# move of each other attribute's mean, averaged over them); the median **perplexity ratio**;
# the largest **WikiText-2 ratio** where a method defines one model per setting; and distinct-2.
# Figure 8.2 shows the reach of every method at a glance; the tables after it hold the rest.

# %% tags=["remove-input"]
neutral = {"prompting": 0.0, "steering": 0.0, "logit-linear": 0.0}
metrics = compare.metrics(tidy, base=base_rows, neutral=neutral)
best = compare_report.strongest_fluent(fr, P.max_ppl_ratio)
metrics = metrics.merge(best[["method", "attribute", "reach"]], on=["method", "attribute"], how="left")
cols = {"range": "range", "reach": "reach", "spearman": "ρ", "r2": "R²", "prompt_spread": "prompt spread",
        "drift_mean": "drift", "ppl_ratio_median": "ppl ratio", "wikitext_ratio_max": "WikiText ratio (max)",
        "distinct_2": "distinct-2"}  # fmt: skip
fig = cplots.method_matrix(metrics.fillna({"reach": 0.0}), "reach", "reach within the budget", attributes, best="max")
show.figure(
    fig, "8.2",
    f"Reach: the score range each method achieves while its continuations stay within {P.max_ppl_ratio:g}× the base's "
    "perplexity, per attribute dialed; outlined: the widest. Blank: the method was not run on that attribute "
    "(logit arithmetic and mixtures need trained endpoints and adapters; they ran on the trained attributes).",
    alt="A grid of methods by attributes with the reach written in each cell, the largest per column outlined.",
)  # fmt: skip

# %% tags=["remove-input"]
for a in attributes:
    m = metrics[metrics.attribute == a].set_index("method").loc[compare_report.order(metrics.method[metrics.attribute == a])]
    display(show.table(m[[c for c in cols if c in m.columns]].rename(columns=cols), index=True, digits=2,
                       caption=f"{a}: every method on the same prompts and scorers"))  # fmt: skip

# %% tags=["remove-input"]
fig = cplots.drift_matrix(metrics, attributes)
show.figure(
    fig, "8.3",
    "Off-target drift: for each method and attribute dialed, the largest move of each other attribute's mean "
    "score over the dial, averaged over the other attributes (lower is more specific).",
    alt="A grid of methods by attributes with the drift written in each cell.",
)  # fmt: skip

# %% [markdown]
# ## What it costs
#
# Tokens per second at batch 8 against the base model through the same decode loop, every row at
# a different strength where the method allows it (`python -m clm bench alternatives`, recorded in
# the saved benchmark; re-measured here at `tiny`), and what each method holds beyond the base
# model. Preparation: the endpoints' training (chapter 2) for interpolation and logit arithmetic,
# the vectors' seconds for steering, the mixture adapters' training for the mixture; the dev
# choices cost generations besides (above).

# %% tags=["remove-input"]
if P.preset.smoke:  # the pico model: measure here, in seconds
    bench_methods = compare_runs.bench_methods(P, im, res, tok)
    alt = bench_alt.measure(bench_methods, bench_methods.pop("base"), batch=8, new_tokens=4, repeats=1)
else:
    alt = bench_report.load_saved().get("alternatives")
cost = bench_alt.table(alt)
if cost is not None:
    display(show.table(cost, caption="Decoding cost of each method (batch 8) and what it holds beyond the base model",
                       digits=3))  # fmt: skip
show.findings("{line}.", line=bench_alt.text(alt))

# %% [markdown]
# ## What each method writes
#
# One evaluation prompt, each method at its **strongest fluent setting** for the first trained
# attribute: the strength with the highest mean score among those within the fluency budget. A
# method with no setting within the budget shows its least perplexing one, and says so.

# %% tags=["remove-input"]
a_ex = trained[0] if trained[0] in attributes else attributes[0]
prompt, items = compare_report.examples(tidy, best, a_ex, P.example_prompt)
show.continuations(items, prompt=prompt)

# %% [markdown]
# ## Is interpolation a stand-in for training on a mixture?
#
# For each trained attribute, an adapter trained with the endpoints' recipe on a mixture of the two
# poles' texts (a share m from the high pole) against the interpolated model at α = m: their
# scores, and how far the mixture's ΔW is from the interpolated ΔW, relative to the distance
# between the two endpoints (`clm.methods.mixture.compare_with_interpolation`).

# %% tags=["remove-input"]
mix_rows = compare_report.mixture_rows(fr, res["mixture"])
mix = compare_report.mixture_table(mix_rows)
if len(mix):
    fig = cplots.mixture_vs_interpolation(mix_rows)
    display(show.figure(
        fig, "8.4",
        "Left: the mean score of each mixture adapter and of the interpolated model at α = m (95 % intervals; m = 0 "
        "and 1 are the endpoints, shared). Right: the distance of each mixture's ΔW from the interpolated ΔW, over the "
        "endpoints' distance (dashed: 1, as far apart as the two endpoints).",
        alt="Score against m for mixtures and interpolation, and bars of the relative ΔW distance per m.",
    ))  # fmt: skip
    display(show.table(mix, caption="Mixture adapters against interpolation at α = m: mean scores, perplexity "
                       "ratios, and the ΔW distance over the endpoints' distance", digits=2))  # fmt: skip

# %% tags=["remove-input"]
win = compare_report.winners(best, metrics)
reach = {a: {m: float(v) for m, v in best[best.attribute == a].set_index("method").reach.items()} for a in attributes}
mono = compare_report.monotone_share(metrics, 0.9)
wiki_reach = compare_report.wikitext_reach(tidy, base_rows, "interpolation", attributes, P.max_ppl_ratio)
_ = P.record(
    reach=reach, budget=P.max_ppl_ratio, winners=win, monotone=mono,
    spearman={f"{r.method}/{r.attribute}": float(r.spearman) for r in metrics.itertuples()},
    mixture={a: {str(m): v for m, v in per.items()} for a, per in res["mixture"].items()},
    wording={a: r["chosen"] for a, r in dev["wording"].items()}, layer=dev["layer"],
    wikitext_reach=wiki_reach,
    dial=[min(P.alphas), max(P.alphas)],
)  # fmt: skip

# %% tags=["remove-input"]
def _per(a: str, key: str) -> str:
    r = reach[a]
    ranked = sorted(r, key=r.get, reverse=True)
    return ", ".join(f"{m} {r[m]:.2f}" for m in ranked)


interp_first = [a for a in attributes if win[a]["reach"] == "interpolation"]
steer_c = {a: r["c_max"] for a, r in dev["steering"].items()}
def _span(x) -> str:
    lo, hi = f"{x.min():.2f}", f"{x.max():.2f}"
    return lo if lo == hi else f"{lo}–{hi}"


mix_line = "; ".join(
    f"for {a}, mixture minus interpolation at α = m is {g['difference'].min():+.2f} to {g['difference'].max():+.2f} "
    f"in mean score, at a ΔW distance of {_span(g['ΔW distance'])} of the endpoints'"
    for a, g in mix.groupby("attribute", sort=False)
) if len(mix) else "not measured"  # fmt: skip
alt_line = bench_alt.text(alt)
speed = {k: v["ratio"] for k, v in (alt or {}).get("speed", {}).get("methods", {}).items()}
one_per_pass = [k for k, v in (alt or {}).get("held", {}).items() if not v.get("per_row", True)]
mix_ratio = [float(r) for r in mix["ΔW distance"]] if len(mix) else [float("nan")]
mix_diff = [abs(float(d)) for d in mix["difference"]] if len(mix) else [float("nan")]
inner = mix_rows[(mix_rows.m > 0) & (mix_rows.m < 1)] if len(mix_rows) else mix_rows
pairs_m = inner.pivot_table(index=["attribute", "m"], columns="source", values=["score_mean", "score_lo", "score_hi"])
pairs_m = pairs_m.dropna() if len(pairs_m) else pairs_m
n_out = int(sum((r[("score_mean", "mixture")] < r[("score_lo", "interpolation")]) or
                (r[("score_mean", "mixture")] > r[("score_hi", "interpolation")]) for _, r in pairs_m.iterrows()))  # fmt: skip
others = "; ".join(f"{a}: {win[a]['reach']} ({reach[a][win[a]['reach']]:.2f})" for a in attributes
                   if a not in interp_first)  # fmt: skip
interp_verdict = (
    "Interpolation reaches furthest for every attribute." if len(interp_first) == len(attributes)
    else f"Interpolation reaches furthest for {', '.join(interp_first)}; elsewhere the widest is {others}."
    if interp_first else f"Interpolation reaches furthest for none of them; the widest is {others}."
)  # fmt: skip
fi, fl = fr[fr.method == "interpolation"], fr[fr.method == "logit-linear"]
mi = metrics[metrics.method == "interpolation"]
def wiki_of(names: list[str]) -> float:
    """The largest WikiText-2 ratio of interpolation over its dial, for these attributes."""
    m = mi[mi.attribute.isin(names)]
    return float(m["wikitext_ratio_max"].max()) if "wikitext_ratio_max" in m and len(m) else float("nan")


spans = {a: (float(g.ppl_ratio.min()), float(g.ppl_ratio.max())) for a, g in fi.groupby("attribute", sort=False)}
beyond = [a for a, (lo, _) in spans.items() if lo > P.max_ppl_ratio]  # even the endpoints themselves
why = (
    "Over its dial, interpolation's continuations are "
    + ", ".join(f"{a} {lo:.2f}–{hi:.2f}×" for a, (lo, hi) in spans.items()) + " the base's perplexity."
    + (f" For {', '.join(beyond)} every α is beyond the budget, α = 0 and 1 (the endpoints) included, while the "
       f"interpolated model stays within {wiki_of(beyond):.2f}× the base's WikiText-2 perplexity: what costs fluency there "
       "is the endpoints' fine-tuning, not the interpolation between them."
       + (f" Linear logit arithmetic adds only the endpoints' difference (high − low), so a shift they share "
          f"cancels; for {', '.join(beyond)} its continuations stay within "
          f"{fl[fl.attribute.isin(beyond)].ppl_ratio.max():.2f}× the base's." if fl.attribute.isin(beyond).any() else "")
       if beyond else "")
)  # fmt: skip
if wiki_reach:
    why += (" Judged instead by the model's WikiText-2 perplexity (the bar of chapters 4 and 7), interpolation "
            f"over its whole dial (α from {min(P.alphas):g} to {max(P.alphas):g}) reaches "
            f"{', '.join(f'{a} {r:.2f}' for a, r in wiki_reach.items())} within {P.max_ppl_ratio:g}×.")


def _drift(a: str, method: str) -> float:
    m = metrics[(metrics.attribute == a) & (metrics.method == method)]
    return float(m.drift_mean.iloc[0]) if len(m) else float("nan")


nums = dict(
    n_eval=P.n_prompts, n_samples=P.n_samples, budget=P.max_ppl_ratio, n_dev=P.n_dev,
    reach_lines="; ".join(f"**{a}** {_per(a, 'reach')}" for a in attributes),
    interp_verdict=interp_verdict,
    drift="; ".join(f"{a}: {win[a]['drift']} ({_drift(a, win[a]['drift']):.3f})" for a in attributes),
    why=why,
    mono=", ".join(f"{m} {v:.0%}" for m, v in mono.items()),
    wording=", ".join(f"{a} '{r['chosen']}'" for a, r in dev["wording"].items()), layer=dev["layer"],
    cmax=", ".join(f"{a} {c:g}" if c is not None else f"{a} none" for a, c in steer_c.items()),
    mix_line=mix_line,
    sp_i=speed.get("interpolation", float("nan")), sp_s=speed.get("steering", float("nan")),
    sp_p=speed.get("prompting", float("nan")), sp_l=speed.get("logit-linear", float("nan")),
    sp_q=speed.get("logit-product", float("nan")), per_pass=", ".join(one_per_pass) or "none",
    r_lo=min(mix_ratio), r_hi=max(mix_ratio), d_hi=max(mix_diff),
    weights_verdict="in weight space a mixture is not the interpolation" if min(mix_ratio) >= 0.5
    else "in weight space a mixture is close to the interpolation",
    scores_verdict=f"{n_out} of {len(pairs_m)} mixture means lie outside the interpolation's 95 % interval",
    tiny=" At the `tiny` preset every number is noise: that run only checks that the chapter executes."
    if P.preset.smoke else "",
)  # fmt: skip

# %% [markdown]
# ## What we found

# %% tags=["remove-input"]
show.findings(
    "On {n_eval} evaluation prompts × {n_samples} samples, the score range each method reaches within a "
    "perplexity ratio of {budget:g}: {reach_lines}. {interp_verdict} {why}\n\n"
    "The least off-target drift (the mean move of the other attributes' scores), per attribute dialed: {drift}. "
    "The share of attributes whose mean score rises monotonically with the dial (Spearman ρ ≥ 0.9): {mono}.\n\n"
    "Chosen on {n_dev} development prompts: the wordings {wording}; steering at layer {layer} with c_max {cmax}.\n\n"
    "Mixtures against interpolation: {mix_line}.\n\n"
    "Where interpolation's properties matter. *Per-row settings*: every method here but {per_pass} takes a "
    "different strength on each row of one batch; the mixture needs one adapter per pass. *Cost per token* (the saved benchmark above): at "
    "batch 8 interpolation ran at {sp_i:.2f}× the base model's speed, steering at {sp_s:.2f}×, prompting at "
    "{sp_p:.2f}× (its instruction lengthens every prompt), and logit arithmetic at {sp_l:.2f}× (linear, three "
    "passes a token) and {sp_q:.2f}× (product, two). *O(1) setting changes*: interpolation, steering and logit "
    "arithmetic change a coefficient tensor; prompting changes the text the model reads. *Exactness*: "
    "interpolation is the endpoints at α = 0 and 1 and linear in ΔW between them, while a mixture adapter "
    "trained with the same budget lies {r_lo:.2f}–{r_hi:.2f} of the endpoints' distance away from the "
    "interpolated ΔW at α = m ({weights_verdict}), and their mean scores differ by at most {d_hi:.2f} "
    "({scores_verdict}); interpolation needs no training per setting.{tiny}",
    **nums,
)
