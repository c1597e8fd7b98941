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
# # The cost of interpolation
#
# Readers choose a method by what it costs. No way of dialing attributes can beat the base model
# running without adapters, so this chapter asks two questions: how close does `clm` get to the
# base model, and how far ahead is it of what people would use instead?
#
# **What `clm` computes.** Every module that an endpoint adapts holds the K endpoints' LoRA
# factors concatenated along the rank, A: (R, d_in) and B: (d_out, R) with R = Σ r_k. A row with
# coefficients c_k (from its α and λ) gets
#
# $$ y = W_0 x + B\,\big(g \odot (A x)\big), \qquad g = (c_1 s_1 \mathbf{1}_{r_1}, \dots, c_K s_K \mathbf{1}_{r_K}), $$
#
# which is exactly $W_0 x + \sum_k c_k s_k B_k A_k x$, the paper's formula
# {cite:p}`kangaslahti2025continuous`: only rank components are scaled, so there are no cross
# terms between endpoints. A forward pass costs two extra matrix products whatever K is, each row
# of a batch can have its own setting, and changing the setting rewrites a (rows × K) table, not
# a weight. Endpoints at coefficient 0 in every row are skipped.
#
# **The merge planner** (`clm.merge`). When every row shares one setting, the delta can instead
# be merged once, $W \leftarrow W_0 + \sum_k c_k s_k B_k A_k$, and the model then runs at the
# base model's speed. `clm.core.merge.plan` merges when the one-off cost (2·d_in·d_out·R FLOPs, or
# 4·d_in·d_out weights moved to save, merge and restore) is below the fused path's extra work over
# the job (2·n·R·(d_in + d_out) FLOPs per step of n tokens, and R·(d_in + d_out) adapter weights
# read per step). On exit the original weights are copied back from a saved clone: bit-exact. A
# 4-bit base cannot be merged into (dequantize, add and requantize would change its rounding for
# good), so there the planner answers "fused".
#
# **The bound.** Decoding at small batch is limited by memory bandwidth: every step reads every
# weight once. The fused path also reads the adapters' R·(d_in + d_out) weights per module, so
# with every endpoint live its speed is at most
#
# $$ \text{bound} = \frac{\text{bytes}_\text{base}}{\text{bytes}_\text{base} + \text{bytes}_\text{adapters}} $$
#
# of the base model's. The extra FLOPs per token scale the same way (two per weight), so the
# bound holds on a compute-bound machine too.
#
# **The benchmark** (`python -m clm.bench`): the embedded default base with 10 endpoint adapters
# (5 attributes, r = 32 on q/k/v/o; random non-zero weights, which time like trained ones), every
# setting with all 10 endpoints live (the worst case), greedy decoding of a fixed number of new
# tokens, all methods interleaved in one process, medians over repeats. The alternatives:
#
# - **base**: no dial; the limit.
# - **clm fused**: a coefficient table; per-row settings in one batch.
# - **clm merged**: merge ΔW, restore after the job (timed); one setting per job.
# - **clm merged (merge held)**: the same jobs' generation alone, inside the merge; one setting.
# - **PEFT, 10 adapters active**: `scaling[k] = c_k s_k` in every LoRA layer; distinct settings run row by row.
# - **PEFT cat**: `add_weighted_adapter(combination_type="cat")`, rebuilt per setting; row by row.
# - **paper's code**: PEFT adapters with the coefficients folded in, a full forward pass per new token (no KV
#   cache); one setting.
# - **DExperts-style mixing** {cite:p}`liu2021dexperts`: one pass per model per token (base + 10 endpoints),
#   logits mixed; per-row settings.
#
# ```{admonition} Run time
# :class: note
# **With what `clm` ships** (the saved benchmark), `cpu` shows it in seconds. **Rerunning it**
# (`rerun_benchmark = True`) takes a few minutes on 2 CPU cores; `gpu` reruns it on the GPU and
# adds a 1.1B-parameter model built from a config; `tiny` runs a seconds-long benchmark on the
# pico model (its numbers mean nothing).
# ```

# %% tags=["parameters", "hide-input"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data); not needed here
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
rerun_benchmark = None  # None: run at tiny and on a GPU, else load the saved run
new_tokens = None  # tokens generated per job (None: 4 at tiny, 16 otherwise)
repeats = None  # rounds of every method (None: 1 at tiny, 2 otherwise)
large_model = True  # on a GPU, also time a 1.1B Llama built from a config (random weights)

# %% tags=["remove-input"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without widgets
import torch
import transformers
from IPython.display import Markdown, display

import clm.book.display as show
from clm.bench import run as bench
from clm.book.chapters import chapter
from clm.paths import ASSETS

P = chapter("09_cost_of_interpolation", globals())  # every parameter above, checked; None: the preset's
tiny, gpu = P.preset.smoke, torch.cuda.is_available()  # tiny: a seconds-long benchmark on the pico model
rerun_benchmark, new_tokens, repeats, large_model = P.rerun_benchmark, P.new_tokens, P.repeats, P.large_model
SAVED = ASSETS / "bench" / "cpu-smollm2-135m.json"
transformers.utils.logging.set_verbosity_error()  # no loading bars or deprecation notes in the outputs
transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)
show.setup_line(P)

# %% [markdown]
# ## Running or loading the benchmark
#
# The numbers of a benchmark belong to the machine that measured them, so every table and
# figure below names it. At `cpu` the saved run is loaded; set `rerun_benchmark = True` to
# measure your own machine (the result is written to `<run_dir>/bench/`). Tables, figures and the
# summary come from `clm.bench.report` and `clm.bench.figures`, which read only the result.

# %%
from clm.bench import figures, report

out_dir = P.run_dir / "bench"
if tiny:  # seconds: the pico model, 2 attributes of rank 4, batches 1 and 2
    res = bench.run_and_save(
        out_dir, model="pico", attributes=2, rank=4, batches=(1, 2), new_tokens=new_tokens, repeats=repeats,
        latency_models=(),
    )  # fmt: skip
elif rerun_benchmark:
    res = bench.run_and_save(
        out_dir, model=P.model, new_tokens=new_tokens, repeats=repeats, memory=True, latency_models=("pico",)
    )
else:
    res = report.load_saved()  # clm/assets/bench/cpu-smollm2-135m.json
runs = {report.label(res["machine"]): res}
Markdown("\n".join(f"- {line}" for line in report.describe(res).splitlines()))

# %% [markdown]
# Where a GPU is available, the same benchmark also runs on a larger model: a 1.1B-parameter
# Llama built from a config (random weights time like trained ones) in bfloat16, where the
# adapters are a smaller share of the bytes read per step. It is labelled with the card.

# %%
if gpu and large_model and not tiny:
    big = bench.run_and_save(
        out_dir, name="gpu-llama-1.1b-random.json", model_name="llama-1.1b (random, from a config)",
        model=str(bench.build_random_model(P.run_dir / "models" / "llama-1.1b-random")), dtype="bfloat16",
        new_tokens=new_tokens, repeats=repeats, latency_models=("pico", "smollm2-135m"), memory=True,
    )  # fmt: skip
    runs[f"{report.label(big['machine'])}, 1.1B"] = big
else:
    display(
        Markdown(
            "No GPU here (or at tiny): the larger-model run is skipped."
            if not gpu or tiny
            else "`large_model = False`: skipped."
        )
    )

# %% [markdown]
# ## Tokens per second
#
# One row per method, batch size and scenario: **shared** (every row at one setting) or
# **distinct** (every row its own setting). *ratio to base* is the speed relative to the base
# model in the same scenario and round, *ratio to bound* relative to the bound above, and
# *same tokens as fused* checks that the methods that compute the same interpolation produce
# the same greedy tokens (DExperts mixes outputs, not weights, and its endpoint models here are
# stand-ins, so it is not compared).

# %%
display(Markdown("\n".join(f"- {line}" for line in report.bound_text(res).splitlines())))
show.table(report.speed_table(res), caption="Tokens per second, per method and scenario", index=True)

# %%
ratios = report.ratio_table(res)
names = {"ratio_to_base": "Speed relative to the base model", "ratio_to_bound": "Speed relative to the bound"}
for stat in ratios.columns.levels[0]:
    what = names.get(stat, "Share of greedy tokens equal to the fused path's")
    display(show.table(ratios[stat], caption=what, index=True))

# %%
for k, (label, r) in enumerate(runs.items()):
    fig = figures.speed_figure(r, label)
    caption = f"Tokens per second of every method and scenario ({label}); dashed: the fused path's bound."
    display(show.figure(fig, f"9.{1 + k}", caption, alt=f"Bar chart of decoding speed per method, {label}."))

# %% [markdown]
# The dashed lines mark the bound of the fused path. On a CPU shared with other work, single
# runs vary by tens of percent; every method ran interleaved, so ratios are fairer than the raw
# speeds, but small differences (a few percent) are within the noise. The paper's code and PEFT
# serve one setting per model: with distinct settings they run row by row (the paper's loop is
# not run there; it would go at its batch-1 speed).
#
# **The merge's price.** A merged job above includes merging ΔW into the weights and restoring
# them afterwards, timed per job. A job that reuses one merge (many batches at one setting inside
# one `with im.merged(w):`) pays it once: the row *clm merged (merge held)* times the same jobs'
# generation alone, inside the merge. The planner merges a job only when it is long enough to
# repay the merge; the cell below says from how many new tokens on it does.

# %%
Markdown("\n".join(f"- {line}" for line in report.merge_text(res).splitlines()))

# %% [markdown]
# ## Changing a setting
#
# `clm` changes a setting by rewriting its coefficient table: `set_weights` alone, and with the
# lazy refresh it triggers in every wrapped module on the next forward pass. Both are timed on
# two model sizes: the cost depends on the number of wrapped modules, not on their width. The
# alternatives rewrite weights: PEFT sets `scaling` in every LoRA layer, PEFT cat rebuilds an
# adapter of rank 320, and a merge computes ΔW and later copies W0 back.

# %%
for k, (label, r) in enumerate(runs.items()):
    fig = figures.latency_figure(r, label)
    caption = f"Time to change a setting, per method ({label}; log scale)."
    display(show.figure(fig, f"9.{1 + len(runs) + k}", caption, alt=f"Bar chart of setting-change latency, {label}."))
lat = report.latency_table(res)
show.table(lat.assign(ms=lat.seconds * 1e3).drop(columns="seconds"), caption="Time to change a setting, in ms")

# %% [markdown]
# ## Peak memory
#
# Each method runs alone in a fresh process (one job at the largest batch). On a CPU this is the
# whole process's maximum resident memory (Python, torch and the model included); on a GPU,
# `torch.cuda.max_memory_allocated`. The merge keeps a clone of every adapted weight while
# merged, to restore them bit-exactly.

# %%
for k, (label, r) in enumerate(runs.items()):
    fig = figures.memory_figure(r, label)
    if fig is None:
        display(Markdown(f"{label}: peak memory not measured in this run."))
        continue
    caption = f"Peak memory per method ({label}), each method alone in a fresh process."
    display(
        show.figure(fig, f"9.{1 + 2 * len(runs) + k}", caption, alt=f"Bar chart of peak memory per method, {label}.")
    )
    display(show.table(report.memory_table(r).rename_axis("method"), caption="Peak memory, MiB", index=True))

# %% [markdown]
# ## The targets
#
# This project set itself four targets: distinct settings per row at batch 8 reach 90% of the
# bound; one shared setting reaches 0.95× the base model (with the planner's choice of fused or
# merged); changing a setting takes under 1 ms whatever the model's size; and at batch 8 the
# fused path is at least twice as fast as PEFT with the adapters active.

# %%
display(Markdown(report.planner_text(res)))
goals = report.targets_table(res)
goals["met"] = goals["met"].map({True: "yes", False: "no"}).fillna("–")
show.table(goals, caption="The project's targets: measured, goal, met")

# %% [markdown]
# The bound does not depend on whether a machine is bandwidth- or compute-bound: the fused
# path's extra FLOPs per token, like its extra bytes, are R·(d_in + d_out) per module relative to
# d_in·d_out.

# %% [markdown]
# ## Sharding a sweep across processes
#
# A sweep's batches are independent, so `torchrun --nproc_per_node N -m clm sweep …` splits them
# over N processes (gloo on a CPU, NCCL on GPUs; each rank writes its own parts, rank 0 merges
# them into the same table as one process). `python -m clm bench sharding` times one sweep both
# ways on the same cores and records it in the saved benchmark:

# %% tags=["remove-input"]
from clm.bench import sharding

show.findings("{line}.", line=sharding.describe(res.get("sharding")))

# %% [markdown]
# ## Schedules and asking for a score
#
# A schedule (chapter 7) moves α while the text is generated; between two decode steps only the
# coefficient table changes, so its price is one table rewrite per token. `python -m clm bench
# control` decodes one batch of 8 rows at a fixed setting (every α at 0.5) and with a schedule that
# moves every attribute's α from 0.25 to 0.75 over the tokens, rewriting the table before every
# token (the same prompts, greedy, the same seed; goal: at least 0.95× the fixed setting's tokens
# per second; the fixed setting is itself the interpolated model, one fused pass with every
# attribute's terms, so its tokens per second sit below the bare base model's in the table of the
# next section). It also times the controller's solve, `Controller.weights_for`, for one target and
# for two solved jointly (goal: under 10 ms), and records both in the saved benchmark:

# %% tags=["remove-input"]
control = res.get("control")
if control:
    ctable = report.control_table(control)
    ctable["met"] = ctable["met"].map({True: "yes", False: "no"}).fillna("–")
    display(show.table(ctable, caption="A schedule against the fixed setting, and the time to solve for a score"))

# %% [markdown]
# ## The alternatives of chapter 8
#
# Chapter 8 compares interpolation's *control* with prompting, activation steering, logit
# arithmetic and data-mixture adapters. What each costs at decoding time, on the shipped endpoints
# and the chapter's own choices (`python -m clm bench alternatives`): one batch of 8 rows, every
# row at a different strength where the method allows it, against the base model through the same
# decode loop. Prompting pays for its instruction's extra prompt tokens, steering for one vector
# addition per layer output, logit arithmetic for a forward pass per model per token.

# %% tags=["remove-input"]
from clm.bench import alternatives as bench_alt

alt = res.get("alternatives") or report.load_saved().get("alternatives")
alt_table = bench_alt.table(alt)
if alt_table is not None:
    display(show.table(alt_table, caption="Decoding cost of chapter 8's methods (batch 8) and what each holds "
                       "beyond the base model", digits=3))  # fmt: skip

# %% tags=["remove-input"]
_ = P.record(
    "09_cost_of_interpolation",
    **report.metrics(res),
    rerun=bool(tiny or rerun_benchmark),
    gpu_runs=[k for k in runs if "GPU" in k],
)

# %% [markdown]
# ## What we found
#
# Written by `clm.bench.report.summary` from the numbers of the run above (`res`), so it always
# describes the measurement shown. Read every number with the machine it names and the spread of
# its repeats (the `times` of each row in the saved JSON): on a small virtual machine, repeats of
# one job can differ by tens of percent.

# %% tags=["remove-input"]
met = [t["met"] for t in report.targets(res) if t["met"] is not None]
show.findings(
    "{summary}\n\nIn all, {n_met} of the {n} rows of the targets table are met, on {machine}. {control}. {alt}.{tiny}",
    summary=report.summary(res), n_met=sum(met), n=len(met), machine=report.label(res["machine"]),
    control=report.control_text(res.get("control")), alt=bench_alt.text(alt),
    tiny=" At the `tiny` preset the benchmark runs on the pico model: its numbers mean nothing." if tiny else "",
)  # fmt: skip
