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
# # Control in practice: ask for a score, schedule the dial, turn it by hand
#
# Chapters 4–6 show that scores move predictably with α. A reader who wants text at a positivity
# of 0.7 still has to guess the α that gives it. This chapter inverts the response curves:
#
# 1. **Ask for a score.** `clm.Controller` fits, on *development* prompts only, a monotone
#    response curve per attribute (with bootstrap bands), the cross-effects of each α on the other
#    scores (chapter 6's entanglement), a mixing term for several attributes at once, and the
#    WikiText-2 perplexity against α. `ctl.weights_for({"sentiment": 0.7})` then solves for the
#    setting, with a prediction interval and the predicted perplexity ratio. We ask for targets on
#    the *evaluation* prompts, which the fit never saw, and measure what we get.
# 2. **Recalibrate.** Prompts of another kind shift the curves, so `ctl.calibrate` refits the
#    level from a few α on the user's own prompts. We measure the error before and after on
#    self-written prompts of another kind.
# 3. **Schedule the dial over the text.** A `clm.Schedule` sets α per generated token; between
#    decode steps only the engine's coefficient table changes, and the cached keys and values of
#    earlier tokens stay as they were computed.
# 4. **Turn it by hand** in JupyterLab with `clm.widgets.Dial`.
#
# ```{admonition} Run time
# :class: warning
# **With what `clm` ships** (the endpoints, the scorers and this chapter's sweep tables of
# SmolLM2-135M) about two minutes at `cpu`: every generation is read back from the tables.
# **Regenerating them** (about 15,000 continuations of 32 tokens and 600 of 64) takes about an
# hour on 2 CPU cores. Tables that are missing or stale are regenerated, and an interrupted run
# resumes where it stopped.
# ```

# %% tags=["parameters", "hide-input"]
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
attributes = None  # attributes to fit (None: every attribute of the endpoints)
prompts_file = None  # a .jsonl/.txt of prompts (None: <data_dir>/prompts/writing_prompts.jsonl)
n_prompts = None  # evaluation prompts: the first n (None: the preset's)
n_samples = None  # continuations per prompt (None: the preset's)
n_dev = None  # development prompts: the last n of prompts_file (None: the preset's n_prompts)
n_targets = 5  # requested scores per attribute
min_range = 0.25  # attributes whose range from α 0 to 1 (development prompts) reaches this get targets
max_ppl_ratio = 1.3  # the perplexity budget: predicted WikiText-2 perplexity / the base model's
pair = ["sentiment", "formality"]  # the two attributes of the joint targets
other_prompts_file = None  # prompts of another kind (None: clm/assets/prompts/everyday.txt)
n_calibrate = 20  # the first n of them calibrate; the rest evaluate
schedule_tokens = None  # length of the scheduled arc (None: twice the preset's max_new_tokens)
dial = True  # build the JupyterLab dial at the end

# %% tags=["remove-input"]
import numpy as np
import pandas as pd
from IPython.display import display
from transformers.utils import logging as hf_logging

import clm
import clm.plots as plots
from clm.book import display as show
from clm.book.chapters import chapter
from clm.book.params import find_scorers, table_path
from clm.data import read_texts
from clm.experiments import control_runs as runs
from clm.experiments import sweep
from clm.experiments.control_calibrate import design as calibration_design

P = chapter("07_control", globals())  # every parameter above, checked; None: the preset's
ends, attributes, pair, n_prompts, n_samples = P.ends, P.attributes, P.pair, P.n_prompts, P.n_samples
dev_prompts, test_prompts = P.dev_prompts, read_texts(P.prompts_file, limit=n_prompts)
other = read_texts(P.other_prompts_file)
calib_prompts, other_eval = other[: P.n_calibrate], other[P.n_calibrate :]
hf_logging.disable_progress_bar()  # no "Loading weights" bars in the book
(P.run_dir / "tables" / "control").mkdir(parents=True, exist_ok=True)
show.setup_line(
    P, f"Fit on the last {len(dev_prompts)} prompts of `{P.prompts_file.name}`; targets asked on its first "
    f"{len(test_prompts)} × {n_samples} samples; recalibration on {len(calib_prompts)} + {len(other_eval)} prompts "
    f"of `{P.other_prompts_file.name}`; perplexity budget {P.max_ppl_ratio:g}× the base's.",
)  # fmt: skip

# %% [markdown]
# ## Fitting on the development prompts
#
# The fit sweeps run the base model, every attribute alone at seven values of α from −0.5 to 1.5,
# and a 3 × 3 grid of the pair's α at λ = ½ each (for the mixing term), on the **last** prompts of
# the file. The evaluation prompts are the **first** ones, so nothing below is fitted on them.
# Each setting's WikiText-2 perplexity gives the perplexity curve. The sweeps are
# `clm.experiments.sweep.run_sweep`, keyed and resumable like chapter 4's; their designs are
# `clm.experiments.control_runs.fit_designs`.

# %%
from clm.eval.scoring import load_scorers

base, tok = clm.load_base(P.model)
im = clm.InterpolatedModel(base, tok, ends)
scorers = load_scorers(path=find_scorers(P))
wikitext = P.wikitext(im)  # WikiText-2 perplexity per setting, as chapter 4 measures it
gen = dict(P.sweep_kwargs(len(dev_prompts), 1, False), scorers=scorers, perplexity=wikitext)
fit_tables = {}
for name, settings in runs.fit_designs(attributes, pair=pair).items():
    out = table_path(P, f"control/{name}.parquet", ends)
    kw = dict(gen, n_samples=n_samples if name == "fit_base" else 1)
    fit_tables[name] = sweep.run_sweep(im, settings, dev_prompts, out=out, **kw)
ctl = clm.Controller.fit(list(fit_tables.values()), endpoints=ends)
ctl

# %% tags=["remove-input"]
curves = {a: ctl.curve(a) for a in ctl.attributes}
rng = runs.ranges(ctl, ctl.attributes)
chosen, any_reach = runs.choose(rng, P.min_range)
fig = plots.control_curves(curves)
show.figure(
    fig, "7.1",
    "The controller's response curves, fitted on the development prompts: each attribute's mean score against "
    "its α (dots: measured means; line: the monotone fit; band: its bootstrap 95 % interval over prompts).",
    alt="One panel per attribute: the mean score rises with α, with a shaded band around the fitted line.",
)  # fmt: skip

# %% tags=["remove-input"]
show.table(
    pd.DataFrame({
        "attribute": list(rng), "range α 0 → 1": list(rng.values()),
        "gets targets": ["yes" if rng[a] >= P.min_range else f"no (< {P.min_range:g})" for a in rng],
        "reachable within the budget": [
            "{:.2f} – {:.2f}".format(*ctl.reachable(a, max_ppl_ratio=P.max_ppl_ratio)) for a in rng],
    }),
    caption=f"Range of each attribute on the development prompts, and what the solve can reach within a "
    f"perplexity ratio of {P.max_ppl_ratio:g}",
)  # fmt: skip

# %% [markdown]
# ## Asking for a score
#
# For every attribute whose range is at least `min_range`, we ask for `n_targets` scores spread
# over the middle 80 % of what the controller can reach within the perplexity budget, one
# attribute at a time, and generate at each returned setting on the evaluation prompts. The
# interval of each plan is a 95 % prediction interval for the mean over that many prompts: the
# curve's bootstrap variance plus the new prompts' own noise.

# %%
n_eval = len(test_prompts)
plans = runs.single_plans(ctl, chosen, P.n_targets, P.max_ppl_ratio, n_eval)
eval_gen = dict(P.sweep_kwargs(n_eval, n_samples, False), scorers=scorers, perplexity=wikitext)
targets_table = sweep.run_sweep(
    im, runs.plan_settings(plans, "target"), test_prompts, out=table_path(P, "control/targets.parquet", ends),
    **eval_gen,
)  # fmt: skip
base_ppl = ctl.data["base"]["ppl"]
single = runs.achieved(targets_table, plans, runs.perplexities(targets_table), base_ppl)
single_summary = runs.summary(single)
show.table(single_summary.drop(columns="method"), caption="Single targets on the evaluation prompts: mean "
           "absolute error, interval coverage and the worst perplexity ratio, per attribute", digits=2,
           columns=runs.SUMMARY_NAMES)  # fmt: skip

# %% tags=["remove-input"]
fig = plots.requested_vs_achieved(single.assign(method="asked alone"))
show.figure(
    fig, "7.2",
    "Requested against achieved mean score on the evaluation prompts, one attribute at a time. Dashed: "
    "the diagonal; thin bars: ±1.96 standard errors of the achieved mean; thick pale bars: the plan's 95 % "
    "interval.",
    alt="For each attribute the achieved means lie close to the diagonal across the requested range.",
)  # fmt: skip

# %% [markdown]
# ### Two targets at once
#
# A 3 × 3 grid of joint targets for the pair, each solved twice. The **joint** solve searches λ on
# the simplex and corrects each α for the other attribute's cross-effect and the mixing term;
# the **naive** one takes each α from that attribute's own curve as if it were alone, at λ = ½
# each. Both settings are then generated on the evaluation prompts.

# %%
both = runs.joint_plans(ctl, pair, P.max_ppl_ratio, n_eval)
joint_table = sweep.run_sweep(
    im, runs.plan_settings(both, "joint target"), test_prompts, out=table_path(P, "control/joint.parquet", ends),
    **eval_gen,
)  # fmt: skip
joint = runs.achieved(joint_table, both, runs.perplexities(joint_table), base_ppl)
joint_summary = runs.summary(joint, by=["method"])
show.table(joint_summary, caption=f"Joint targets for {pair[0]} and {pair[1]}: the corrected solve against the "
           "naive one (errors over both attributes of the 9 targets)", digits=2, columns=runs.SUMMARY_NAMES)  # fmt: skip

# %% tags=["remove-input"]
fig = plots.joint_grid(joint, pair)
show.figure(
    fig, "7.3",
    f"Joint targets: each open square is a requested ({pair[0]}, {pair[1]}) pair; lines lead to what each "
    "solve achieved on the evaluation prompts.",
    alt="A 3 by 3 grid of requested points, with the achieved points of the joint and the naive solve beside them.",
)  # fmt: skip

# %% [markdown]
# ## Recalibrating on prompts of another kind
#
# The evaluation prompts above come from the same source as the development prompts. Readers'
# prompts will not. `clm/assets/prompts/everyday.txt` holds 40 short prompts written for this
# book: reviews, notes, letters and reports, nothing like WritingPrompts' fantasy premises and
# none taken from the evaluation prompts. The first `n_calibrate` calibrate; the rest evaluate.
# The calibration generates at the base model and α ∈ {0, ½, 1} per attribute and shifts each
# curve by the mean residual: its cost is counted in generations below.

# %%
cal_design = calibration_design(chosen, (0.0, 0.5, 1.0))
cal_table = sweep.run_sweep(
    im, [w for _, w in cal_design], calib_prompts, out=table_path(P, "control/calibrate.parquet", ends),
    **dict(eval_gen, n_prompts=len(calib_prompts), perplexity=None),
)  # fmt: skip
recal = ctl.calibrate(None, calib_prompts, scorers, table=cal_table, attributes=chosen)
asked = {a: runs.single_targets(ctl, a, 3, P.max_ppl_ratio) for a in chosen}
n_other = len(other_eval)
before = [ctl.weights_for({a: t}, P.max_ppl_ratio, clip=True, n_eval=n_other) for a in chosen for t in asked[a]]
after = [recal.weights_for({a: t}, P.max_ppl_ratio, clip=True, n_eval=n_other) for a in chosen for t in asked[a]]
other_table = sweep.run_sweep(
    im, runs.plan_settings(before + after, "recalibration"), other_eval,
    out=table_path(P, "control/other.parquet", ends),
    **dict(eval_gen, n_prompts=n_other, n_samples=2 * n_samples, perplexity=None),
)  # fmt: skip
shift = pd.concat([runs.achieved(other_table, before).assign(method="before"),
                   runs.achieved(other_table, after).assign(method="after")], ignore_index=True)  # fmt: skip
recal_summary = runs.summary(shift, by=["method"])
recal_by = runs.summary(shift).pivot(index="attribute", columns="method", values="mae").reindex(chosen)
shifts = runs.calibration_shifts(ctl, cal_table, chosen).set_index("attribute")
show.table(recal_by.join(shifts)[["before", "after", "shift", "se"]], index=True, digits=2,
           caption=f"Mean |error| on {n_other} prompts of another kind, before and after recalibrating on "
           f"{len(calib_prompts)} others; the shift the calibration measured, and its standard error",
           columns={"se": "its s.e."})  # fmt: skip

# %% tags=["remove-input"]
fig = plots.requested_vs_achieved(shift)
show.figure(
    fig, "7.4",
    "Requested against achieved mean score on prompts of another kind, with the controller fitted on "
    "WritingPrompts (before) and after recalibrating it on other everyday prompts (after).",
    alt="Per attribute, the achieved means before and after recalibration against the diagonal.",
)  # fmt: skip

# %% [markdown]
# ## A schedule: the dial turned over the text
#
# A sentiment arc: α goes from 0 (the negative pole) to 1 (the positive pole) linearly over the
# continuation, against the fixed settings α = 0 and α = 1. Token t is drawn at `s.at(t)`; the
# keys and values of the prompt and of earlier tokens stay as they were computed at their own
# step (nothing is re-prefilled). We score every window of a quarter of the continuation, and
# its two halves.

# %%
from clm.experiments.schedule_runs import schedule_sweep

a_s, last = "sentiment" if "sentiment" in attributes else attributes[0], P.schedule_tokens - 1
arc = clm.Schedule({a_s: [(0, 0.0), (last, 1.0)]})
schedules = {"arc 0 → 1": arc, "α = 0": clm.Weights({a_s: 0.0}), "α = 1": clm.Weights({a_s: 1.0})}
sched = schedule_sweep(
    im, schedules, test_prompts, scorers, out=table_path(P, "control/schedule.parquet", ends),
    n_samples=n_samples, seeds=[P.seed], max_new_tokens=P.schedule_tokens, window=max(1, P.schedule_tokens // 4),
    batch_size=P.preset.batch_size, progress=False,
)  # fmt: skip
arc

# %% tags=["remove-input"]
col = f"score_{a_s}"
win = sched[sched.part == "window"].groupby(["label", "end"])[col]
curve = win.mean().rename("mean").reset_index().rename(columns={"end": "position"})
se = win.std(ddof=1).to_numpy() / np.sqrt(win.size().to_numpy())
curve = curve.assign(lo=curve["mean"] - 1.96 * se, hi=curve["mean"] + 1.96 * se)
alpha_line = pd.DataFrame({"position": np.arange(P.schedule_tokens), "alpha": [arc.at(t).alpha[a_s] for t in range(P.schedule_tokens)]})
fig = plots.schedule_arc(curve, attribute=a_s, schedule=alpha_line)
display(show.figure(
    fig, "7.5",
    f"Mean {a_s} score of each quarter of the continuation (by its last generated token), for the arc and "
    "the two fixed settings, with 95 % intervals; dashed: the scheduled α.",
    alt="The arc's score starts near the α = 0 line and rises towards the α = 1 line.",
))  # fmt: skip
halves = sched[sched.part.isin(["first half", "second half"])].pivot_table(index="label", columns="part", values=col)
show.table(halves.reindex(list(schedules)), caption=f"Mean {a_s} score of each half of the continuation", index=True,
           digits=2)  # fmt: skip

# %% [markdown]
# ## The dial
#
# In JupyterLab the cell below shows the dial: a prompt box, one α slider per attribute (the
# band [0, 1] is marked; a toggle opens the stable band [−1, 2]), λ automatic or by hand, a
# "target score" mode that asks the controller above and shows its predicted scores and
# intervals, sampling or greedy decoding with a seed, and a Generate button. Each continuation
# is shown whole with its scores as bars. To run it live, open this notebook in JupyterLab
# ({doc}`../book/get_the_code`) and run all cells. The book, being static, shows a picture.

# %% tags=["remove-output"]
if P.dial:
    from clm.widgets import Dial

    knob = Dial(im, scorers, controller=ctl, prompt=test_prompts[0])
    display(knob)

# %% tags=["remove-input"]
from clm.paths import REPO

show.picture(
    REPO / "book" / "images" / "dial.png",
    "7.6", "The dial in JupyterLab on the embedded default, after Generate with sentiment at α = 0.9 (a screenshot "
    "of its controls, cut at the status line; in JupyterLab the continuations follow below it, each with its "
    "scores as bars).",
    alt="The dial: a prompt box, an α slider with its on/off box per attribute, the mode switch, λ automatic or by "
    "hand, decoding options, a seed and a Generate button.", min_font_px=13,
)  # fmt: skip

# %% tags=["remove-input"]
# the numbers of the findings below, and what chapter 10 reads
s_mae = single_summary.set_index("attribute").mae
j_mae = joint_summary.set_index("method").mae
r_mae = recal_summary.set_index("method").mae
h = halves.reindex(list(schedules))
_ = P.record(
    "07_control",
    ranges=rng, chosen=chosen, max_ppl_ratio=P.max_ppl_ratio,
    single={a: {"mae": float(s_mae[a]), "coverage": float(single_summary.set_index("attribute").coverage[a])} for a in s_mae.index},
    single_mae=float(single.error.abs().mean()), single_worst=float(s_mae.max()) if len(s_mae) else float("nan"),
    joint={"joint": float(j_mae.get("joint", np.nan)), "naive": float(j_mae.get("naive", np.nan))},
    recalibration={"before": float(r_mae.get("before", np.nan)), "after": float(r_mae.get("after", np.nan)),
                   "generations": int(recal.calibration["generations"]), "prompts": len(calib_prompts),
                   "by_attribute": {a: {m: float(recal_by.loc[a, m]) for m in ("before", "after")} for a in recal_by.index}},
    schedule={k: {p: float(h.loc[k, p]) for p in h.columns} for k in h.index},
)  # fmt: skip

# %% tags=["remove-input"]
worst = s_mae.idxmax() if len(s_mae) else "–"
se_eval = float(shift.se.mean())  # of one achieved mean on the held-out prompts of another kind
noise = 2 * se_eval * float(np.sqrt(2 / max(1, len(before))))  # ~2 s.e. of a difference of two mean errors
d_recal = float(r_mae.get("after", np.nan) - r_mae.get("before", np.nan))
# one attribute's mean error rests on 1/n_attributes of the targets: its noise is sqrt(n_attributes) times larger
noise_a = noise * float(np.sqrt(max(1, len(recal_by))))
d_by = (recal_by["after"] - recal_by["before"]) if len(recal_by) else pd.Series(dtype=float)
big = d_by[d_by.abs() > noise_a]
per_attribute_verdict = (
    f" One attribute's mean error rests on fewer targets (noise about {noise_a:.3f}); "
    + (f"by that measure {', '.join(f'{a} ({v:+.3f})' for a, v in big.items())} did change, which the calibration's "
       "own shifts do not explain." if len(big) else "no attribute's change exceeds it either.")
) if len(d_by) else ""
naive_rows = joint[joint.method == "naive"]
n_pred = float((naive_rows.predicted - naive_rows.requested).abs().mean())
nums = dict(
    n_dev=len(dev_prompts), n_eval=n_eval, mae=float(single.error.abs().mean()), n_t=len(single),
    n_a=f"{len(s_mae)} attribute{'s' if len(s_mae) != 1 else ''}", per=", ".join(f"{a} {v:.3f}" for a, v in s_mae.items()), worst=worst,
    worst_mae=float(s_mae.max()), goal=" — within the 0.05 goal for every attribute" if s_mae.max() <= 0.05
    else f" — above the 0.05 goal for {', '.join(a for a, v in s_mae.items() if v > 0.05)}",
    cov=float(single.covered.mean()), ppl=float(single.ppl_ratio.max()), budget=P.max_ppl_ratio,
    excluded=("" if len(chosen) == len(rng) else "Left out, with a range below {:g}: {}.".format(
        P.min_range, ", ".join(f"{a} ({rng[a]:.2f})" for a in rng if a not in chosen)))
    + ("" if any_reach else f" No attribute reaches {P.min_range:g} here, so the widest, {chosen[0]}, stands in."),
    j=float(j_mae.get("joint", np.nan)), n=float(j_mae.get("naive", np.nan)), n_pred=n_pred,
    n_explained="foresees" if abs(n_pred - j_mae.get("naive", np.nan)) <= 0.5 * j_mae.get("naive", np.nan) else "does not foresee",
    jv=": the correction wins" if j_mae.get("joint", 1) < j_mae.get("naive", 0) else ": the correction does not win",
    rb=float(r_mae.get("before", np.nan)), ra=float(r_mae.get("after", np.nan)), n_cal=len(calib_prompts),
    gens=int(recal.calibration["generations"]), n_oth=n_other,
    moved="brought" if r_mae.get("after", 1) < r_mae.get("before", 0) else "left",
    prep="to" if r_mae.get("after", 1) < r_mae.get("before", 0) else "at",
    se_eval=se_eval, noise=noise, verdict=(
        "here recalibration did not measurably change the mean error over all attributes." if abs(d_recal) < noise
        else f"here recalibration {'lowered' if d_recal < 0 else 'raised'} the mean error by more than that.")
    + per_attribute_verdict,
    per_recal="; ".join(f"{a} {recal_by.loc[a, 'before']:.3f} → {recal_by.loc[a, 'after']:.3f}" for a in recal_by.index),
    se_lo=float(shifts.se.min()), se_hi=float(shifts.se.max()),
    shift_list=", ".join(f"{a} {v:+.3f}" for a, v in shifts["shift"].items()),
    rv=" (the goal is 0.05)" if r_mae.get("after", 1) > 0.05 else ", within the 0.05 goal overall",
    a_s=a_s, h1=h.iloc[0, 0], h2=h.iloc[0, 1], z1=h.iloc[1, 0], z2=h.iloc[1, 1], o1=h.iloc[2, 0], o2=h.iloc[2, 1],
    tiny=" At the `tiny` preset every number is noise: that run only checks that the chapter executes."
    if P.preset.smoke else "",
)  # fmt: skip

# %% [markdown]
# ## What we found

# %% tags=["remove-input"]
show.findings(
    "Fitted on {n_dev} development prompts, the controller met single targets on the {n_eval} evaluation prompts "
    "with a mean absolute error of {mae:.3f} over {n_t} targets of {n_a} ({per}); the worst attribute, "
    "{worst}, erred by {worst_mae:.3f} on average{goal}. Its 95 % intervals covered {cov:.0%} of the achieved means, "
    "and no setting exceeded a perplexity ratio of {ppl:.2f} (the budget: {budget:g}). {excluded}\n\n"
    "For two targets at once the corrected solve erred by {j:.3f}, the naive one by {n:.3f}{jv}. The naive solve "
    "takes each α from that attribute's own curve, ignoring both the other attribute's cross-effect and the "
    "halving of each effect at λ = ½; the controller's model predicted its error as {n_pred:.3f}, so the model "
    "{n_explained} what goes wrong.\n\n"
    "On prompts of another kind the WritingPrompts fit erred by {rb:.3f}; recalibrating on {n_cal} of them "
    "({gens:,} generations) {moved} the error on the other {n_oth} {prep} {ra:.3f}{rv}. Per attribute: {per_recal}. "
    "The calibration measured shifts of {shift_list} (standard errors {se_lo:.3f}–{se_hi:.3f}), but each achieved "
    "mean on the {n_oth} held-out prompts has a standard error of about {se_eval:.3f}, so a change in the mean "
    "error smaller than about {noise:.3f} is within the evaluation's noise: {verdict}\n\n"
    "The scheduled arc moved {a_s} from {h1:.2f} in the first half to {h2:.2f} in the second, against "
    "{z1:.2f} → {z2:.2f} at α = 0 and {o1:.2f} → {o2:.2f} at α = 1.{tiny}",
    **nums,
)
