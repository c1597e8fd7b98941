# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# | method | how it dials | per-row settings |
# |---|---|---|
# | base | none: the limit | - |
# | clm fused | coefficient table | yes, one batch |
# | clm merged | merge ΔW, restore after the job (timed) | no |
# | clm merged (merge held) | the same jobs' generation alone, inside the merge | no |
# | PEFT, 10 adapters active | `scaling[k] = c_k s_k` in every LoRA layer | no: row by row |
# | PEFT cat | `add_weighted_adapter(combination_type="cat")`, rebuilt per setting | no: row by row |
# | paper's code | PEFT adapters with coefficients folded in, a full forward pass per new token (no KV cache) | no |
# | DExperts-style mixing {cite:p}`liu2021dexperts` | one pass per model per token (base + 10 endpoints), logits mixed | yes |
#
# Run time: `tiny` runs a seconds-long benchmark on the pico model (its numbers mean nothing);
# `cpu` shows the saved run on the embedded default (a few minutes on 2 CPU cores to rerun with
# `rerun_benchmark = True`); `gpu` reruns it on the GPU and adds a 1.1B-parameter model
# built from a config.

# %% tags=["parameters"]
preset = "cpu"  # scale: tiny, cpu or gpu
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data); not needed here
run_dir = None  # where notebooks share results (None: runs/<preset>)
seed = 0
rerun_benchmark = None  # None: run at tiny and on a GPU, else load the saved run
new_tokens = None  # tokens generated per job (None: 4 at tiny, 16 otherwise)
repeats = None  # rounds of every method (None: 1 at tiny, 2 otherwise)
large_model = True  # on a GPU, also time a 1.1B Llama built from a config (random weights)

# %% tags=["hide-input"]
import json
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without widgets
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
import seaborn as sns
import torch
import transformers
from IPython.display import Markdown, display

import clm.book.params
from clm.bench import run as bench
from clm.errors import ConfigError

P = clm.book.params.setup(preset, model, data_dir, run_dir, seed, need_data=False)
tiny = P.preset.name == "tiny"
gpu = torch.cuda.is_available()
if rerun_benchmark is None:
    rerun_benchmark = tiny or gpu
new_tokens = new_tokens or (4 if tiny else 16)
repeats = repeats or (1 if tiny else 2)
for name, value in (("new_tokens", new_tokens), ("repeats", repeats)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
SAVED = clm.book.params.ASSETS / "bench" / "cpu-smollm2-135m.json"
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})
pd.set_option("display.precision", 3)
transformers.utils.logging.set_verbosity_error()  # no loading bars or deprecation notes in the outputs
transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)
print(P.describe())

# %% [markdown]
# ## Running or loading the benchmark
#
# The numbers of a benchmark belong to the machine that measured them, so every table and
# figure below names it. At `cpu` the saved run is loaded; set `rerun_benchmark = True` to
# measure your own machine (the result is written to `<run_dir>/bench/`).

# %%
out_dir = P.run_dir / "bench"
if tiny:  # seconds: the pico model, 2 attributes of rank 4, batches 1 and 2
    kw = dict(
        model="pico", attributes=2, rank=4, batches=(1, 2), new_tokens=new_tokens, repeats=repeats, latency_models=()
    )
elif rerun_benchmark:
    kw = dict(model=P.model, new_tokens=new_tokens, repeats=repeats, memory=True, latency_models=("pico",))
if tiny or rerun_benchmark:
    res = bench.run(**kw, progress=False)
    res["command"] = f"clm.bench.run(**{kw!r})"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{'gpu' if gpu else 'cpu'}-{res['config']['model'].replace('/', '_')}.json").write_text(
        json.dumps(res, indent=1)
    )
else:
    res = json.loads(SAVED.read_text())
runs = {bench.label(res["machine"]): res}
m = res["machine"]
print(f"measured on: {bench.label(m)}; torch {m['torch']}; {m['date']}")
print(
    f"model: {res['config']['model']} ({res['config']['params'] / 1e6:.0f}M parameters, {res['config']['dtype']}); "
    f"{res['config']['endpoints']} endpoints of rank {res['config']['rank']}; {res['config']['new_tokens']} new tokens"
)
print(f"command: {res['command']}")
if res.get("note"):
    print(f"note: {res['note']}")
if m.get("load_average") and res.get("load_average_end"):
    print(
        "load average (1/5/15 min) at start: "
        + "/".join(f"{v:.2f}" for v in m["load_average"])
        + f" on {m['cores']} cores; at the end: "
        + "/".join(f"{v:.2f}" for v in res["load_average_end"])
    )

# %% [markdown]
# Where a GPU is available, the same benchmark also runs on a larger model: a 1.1B-parameter
# Llama built from a config (random weights time like trained ones) in bfloat16, where the
# adapters are a smaller share of the bytes read per step. It is labelled with the card.

# %%
if gpu and large_model and not tiny:
    big_dir = bench.build_random_model(P.run_dir / "models" / "llama-1.1b-random")
    kw_big = dict(
        model=str(big_dir),
        dtype="bfloat16",
        new_tokens=new_tokens,
        repeats=repeats,
        latency_models=("pico", "smollm2-135m"),
        memory=True,
    )
    big = bench.run(**kw_big, progress=False)
    big["command"] = f"clm.bench.run(**{kw_big!r})"
    big["config"]["model"] = "llama-1.1b (random, from a config)"
    (out_dir / "gpu-llama-1.1b-random.json").write_text(json.dumps(big, indent=1))
    runs[f"{bench.label(big['machine'])}, 1.1B"] = big
else:
    print("no GPU here (or at tiny): the larger-model run is skipped" if not gpu or tiny else "large_model = False")

# %% [markdown]
# ## Tokens per second
#
# One row per method, batch size and scenario: **shared** (every row at one setting) or
# **distinct** (every row its own setting). `ratio_to_base` is the speed relative to the base
# model in the same scenario and round, `ratio_to_bound` relative to the bound above, and
# `same_tokens_as_fused` checks that the methods that compute the same interpolation produce
# the same greedy tokens (DExperts mixes outputs, not weights, and its endpoint models here are
# stand-ins, so it is not compared).


# %%
def table(r: dict) -> pd.DataFrame:
    df = pd.DataFrame(r["rows"])
    df["method"] = df["method"].map(bench.LABELS)
    df["scenario"] = [f"batch {b}, {s}" for b, s in zip(df["batch"], df["settings"])]
    return df


frames = {label: table(r) for label, r in runs.items()}
df = frames[next(iter(frames))]
base_mb, ad_mb = res["sizes"]["bytes_base"] / 2**20, res["sizes"]["bytes_adapters"] / 2**20
print(f"bound = {base_mb:.3g} MiB / ({base_mb:.3g} + {ad_mb:.3g}) MiB = {res['sizes']['bound']:.3f}")
spread = [(max(r["times"]) - min(r["times"])) / r["seconds"] for r in res["rows"] if len(r["times"]) > 1]
if spread:
    print(
        f"repeats of one job differed by up to {max(spread):.0%} of their median "
        f"(median spread {sorted(spread)[len(spread) // 2]:.0%}, over {len(spread)} rows with repeats)"
    )
df.pivot_table(index="method", columns="scenario", values="tokens_per_s", sort=False).round(1)

# %%
df.pivot_table(
    index="method", columns="scenario", values=["ratio_to_base", "ratio_to_bound", "same_tokens_as_fused"], sort=False
).round(3)


# %%
def speed_figure(d: pd.DataFrame, r: dict, label: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    sns.barplot(d, x="scenario", y="tokens_per_s", hue="method", ax=axes[0])
    axes[0].set(yscale="log", ylabel="tokens / s (log)", xlabel="", title="generation speed")
    # plain numbers (50, not 5 x 10^1), labelling only 1, 2 and 5 of each decade
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "125" else "")
    axes[0].yaxis.set_major_formatter(plain)
    axes[0].yaxis.set_minor_formatter(plain)
    for i, sc in enumerate(d["scenario"].unique()):  # the fused path's bound, per scenario
        base = d[(d.scenario == sc) & (d.method == bench.LABELS["base"])]["tokens_per_s"]
        if len(base):
            axes[0].hlines(
                float(base.iloc[0]) * r["sizes"]["bound"], i - 0.45, i + 0.45, colors="k", linestyles="--", lw=1
            )
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    sns.barplot(
        d[d.method != bench.LABELS["base"]],
        x="scenario",
        y="ratio_to_base",
        hue="method",
        ax=axes[1],
        palette=sns.color_palette()[1 : d.method.nunique()],
    )
    axes[1].axhline(1, color="grey", lw=1)
    axes[1].axhline(r["sizes"]["bound"], color="k", ls="--", lw=1, label="bound (fused)")
    axes[1].axhline(0.9 * r["sizes"]["bound"], color="k", ls=":", lw=1, label="90% of bound")
    axes[1].set(ylabel="speed / base", xlabel="", title="relative to the base model")
    h2, l2 = axes[1].get_legend_handles_labels()
    axes[1].get_legend().remove()
    extra = [(h, lab) for h, lab in zip(h2, l2) if lab not in labels]
    fig.legend(
        handles + [h for h, _ in extra],
        labels + [lab for _, lab in extra],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(
        f"{r['config']['model']}, {r['config']['endpoints']} endpoints of rank {r['config']['rank']} - measured on {label}",
        fontsize=10,
    )
    fig.tight_layout()
    plt.show()


for label, r in runs.items():
    speed_figure(frames[label], r, label)

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
# repay the merge; the cell below prints from how many new tokens on it does.

# %%
merge_s = res.get("change_latency_s", {}).get("merged")
amortized = {}
for r in res["rows"]:
    if r["method"] == "merged-held":
        job = next(j for j in res["rows"] if j["method"] == "merged" and j["batch"] == r["batch"])
        amortized[r["batch"]] = r["ratio_to_base"]
        plan = res.get("planner", {}).get(str(r["batch"]), {})
        print(
            f"batch {r['batch']}: merged job {job['seconds']:.2f} s ({job['ratio_to_base']:.2f}x the base), "
            f"generation inside the merge {r['seconds']:.2f} s ({r['ratio_to_base']:.2f}x the base); "
            f"merge + restore alone {merge_s:.2f} s; the planner merges jobs from "
            f"{plan.get('merges_from_new_tokens')} new tokens on"
        )

# %% [markdown]
# ## Changing a setting
#
# `clm` changes a setting by rewriting its coefficient table: `set_weights` alone, and with the
# lazy refresh it triggers in every wrapped module on the next forward pass. Both are timed on
# two model sizes: the cost depends on the number of wrapped modules, not on their width. The
# alternatives rewrite weights: PEFT sets `scaling` in every LoRA layer, PEFT cat rebuilds an
# adapter of rank 320, and a merge computes ΔW and later copies W0 back.


# %%
def latency_frame(r: dict) -> pd.DataFrame:
    rows = []
    for name, lat in r.get("set_weights_latency", {}).items():
        rows.append((f"clm set_weights ({name})", lat["set_weights_s"]))
        rows.append((f"clm set + refresh ({name}, {lat['modules']} modules)", lat["set_and_refresh_s"]))
    names = {
        "merged": "clm merge + restore",
        "peft-multi": "PEFT: set scaling of every adapter",
        "peft-cat": "PEFT cat: rebuild",
    }
    rows += [(names[k], v) for k, v in r.get("change_latency_s", {}).items()]
    return pd.DataFrame(rows, columns=["how", "seconds"])


for label, r in runs.items():
    lat = latency_frame(r)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(lat) + 1.2))
    sns.barplot(lat, y="how", x="seconds", ax=ax, color="C0")
    ax.axvline(1e-3, color="k", ls="--", lw=1, label="1 ms")
    ax.legend(loc="lower right", fontsize=8)
    ax.set(xscale="log", ylabel="", xlabel="seconds (log)", title=f"time to change a setting - measured on {label}")
    fig.tight_layout()
    plt.show()
(lat.assign(ms=lat.seconds * 1e3).drop(columns="seconds")).round(4)

# %% [markdown]
# ## Peak memory
#
# Each method runs alone in a fresh process (one job at the largest batch). On a CPU this is the
# whole process's maximum resident memory (Python, torch and the model included); on a GPU,
# `torch.cuda.max_memory_allocated`. The merge keeps a clone of every adapted weight while
# merged, to restore them bit-exactly.

# %%
for label, r in runs.items():
    mem = r.get("peak_memory_mib")
    if not mem:
        print(f"{label}: peak memory not measured in this run")
        continue
    mem = pd.Series({bench.LABELS[k]: v for k, v in mem.items()}, name="MiB")
    fig, ax = plt.subplots(figsize=(8, 3))
    sns.barplot(x=mem.values, y=mem.index, ax=ax, color="C2")
    ax.set(xlabel=f"MiB ({r['peak_memory_kind']})", ylabel="", title=f"peak memory - measured on {label}")
    fig.tight_layout()
    plt.show()
    print(mem.round(0).to_string())

# %% [markdown]
# ## The targets
#
# This project set itself four targets: distinct settings per row at batch 8 reach 90% of the
# bound; one shared setting reaches 0.95× the base model (with the planner's choice of fused or
# merged); changing a setting takes under 1 ms whatever the model's size; and at batch 8 the
# fused path is at least twice as fast as PEFT with the adapters active.

# %%
tg = pd.DataFrame(bench.targets(res))
tg["measured"] = tg["measured"].astype(float).round(3)
print(
    f"measured on {bench.label(res['machine'])}; planner: "
    + "; ".join(f"batch {k}: {v['mode']} ({v['reason']})" for k, v in res["planner"].items())
)
tg

# %% [markdown]
# **What it means.** The summary below is written by the next cell from the numbers of the run
# above (`res`), so it always describes the measurement shown. Read every number together with
# the machine it names and the spread of its repeats (the `times` of each row in the saved JSON):
# on a small virtual machine, repeats of one job can differ by tens of percent.

# %%
by = {(r["method"], r["batch"], r["settings"]): r for r in res["rows"]}
big, small = max(r["batch"] for r in res["rows"]), min(r["batch"] for r in res["rows"])
met = {t["target"]: t["met"] for t in bench.targets(res)}


def tps(method, batch, settings):
    r = by.get((method, batch, settings))
    return r["tokens_per_s"] if r else float("nan")


def times(a, b):
    return f"{a / b:.2g}×"


cfg = res["config"]
lines = [
    f"Measured on {bench.label(res['machine'])}: {cfg['model']} with {cfg['endpoints']} endpoints of rank "
    f"{cfg['rank']}, {cfg['new_tokens']} new tokens, medians of {cfg['repeats']} rounds "
    f"({cfg['slow_repeats']} for the paper's loop and DExperts).",
    "",
]
d = by.get(("fused", big, "distinct"))
if d:
    ok = met.get(f"distinct settings, batch {big}: fused / bound")
    lines.append(
        f"* **Distinct settings on every row.** At batch {big} the fused path ran at {d['ratio_to_base']:.2f}× the "
        f"base model, {d['ratio_to_bound']:.2f}× the bound of {res['sizes']['bound']:.3f}: the target (≥ 90% of "
        f"the bound) is {'met' if ok else 'not met'}. PEFT has to run such a batch row by row: "
        f"{times(tps('fused', big, 'distinct'), tps('peft-multi', big, 'distinct'))} slower with its adapters "
        f"active, {times(tps('fused', big, 'distinct'), tps('peft-cat', big, 'distinct'))} with `cat`; "
        f"DExperts-style mixing ({2 * cfg['attributes'] + 1} forward passes per token) was "
        f"{times(tps('fused', big, 'distinct'), tps('dexperts', big, 'distinct'))} slower."
    )
shared = []
for n in sorted({r["batch"] for r in res["rows"]}):
    mode = res.get("planner", {}).get(str(n), {}).get("mode", "fused")
    r = by.get((mode, n, "shared"))
    f, m = by.get(("fused", n, "shared")), by.get(("merged", n, "shared"))
    if r:
        shared.append(
            f"batch {n}: the planner chose {mode}, {r['ratio_to_base']:.2f}× the base"
            + (f" (fused {f['ratio_to_base']:.2f}×, merged {m['ratio_to_base']:.2f}×)" if f and m else "")
        )
ok_job = [v for k, v in met.items() if k.startswith("one shared setting") and "merge held" not in k]
ok_held = [v for k, v in met.items() if k.startswith("one shared setting") and "merge held" in k]


def verdict(oks: list) -> str:
    return "not measured" if not oks else "met" if all(oks) else "not met"


lines.append(
    f"* **One shared setting** (target ≥ 0.95× the base: {verdict(ok_job)} for single "
    f"{cfg['new_tokens']}-token jobs, {verdict(ok_held)} with the merge held): "
    + "; ".join(shared)
    + "."
    + (
        f" Merging restores the base's speed per step, but computing ΔW and restoring the weights took "
        f"{merge_s:.2f} s here, a one-off price inside a short job; with the merge held, the merged model ran at "
        + ", ".join(f"{v:.2f}× (batch {k})" for k, v in amortized.items())
        + " the base (measured), which is what a sweep with many batches at one setting gets inside one "
        "`im.merged(w)`; the planner merges single jobs from "
        + ", ".join(
            f"{res['planner'][str(k)].get('merges_from_new_tokens')} new tokens (batch {k})"
            for k in amortized
            if str(k) in res.get("planner", {})
        )
        + " on."
        if merge_s is not None and amortized
        else ""
    )
)
lat = res.get("set_weights_latency", {})
if lat:
    lines.append(
        "* **Changing a setting** (target < 1 ms, independent of model size): `set_weights` took "
        + ", ".join(f"{v['set_weights_s'] * 1e6:.0f} µs on {k}" for k, v in lat.items())
        + "; with the refresh of every wrapped module "
        + ", ".join(f"{v['set_and_refresh_s'] * 1e3:.2f} ms ({v['modules']} modules, {k})" for k, v in lat.items())
        + ". The alternatives rewrite weights: "
        + ", ".join(f"{bench.LABELS.get(k, k)} {v:.3g} s" for k, v in res.get("change_latency_s", {}).items())
        + "."
    )
ratios = {k: tps("fused", big, k) / tps("peft-multi", big, k) for k in ("shared", "distinct")}
lines.append(
    f"* **Against PEFT with the {cfg['endpoints']} adapters active, at batch {big}** (target ≥ 2×): "
    f"{ratios['distinct']:.2f}× with distinct settings, {ratios['shared']:.2f}× with one shared setting. "
    "With one shared setting PEFT runs one batch too, so the gap is only the cost of its many small "
    "products against our two larger ones: small where compute dominates (a CPU), larger where each "
    "small product costs a kernel launch (a GPU). No method beats the base model, so on this machine "
    f"no method could be more than {tps('base', big, 'shared') / tps('peft-multi', big, 'shared'):.2f}× "
    "PEFT's speed with one shared setting (the base's speed over PEFT's)."
)
if ("paper", small, "shared") in by:
    lines.append(
        f"* **The paper's released loop**, a full forward pass per new token without a KV cache, ran at "
        f"{by[('paper', small, 'shared')]['ratio_to_base']:.2f}× the base at batch {small}"
        + (
            f" and {by[('paper', big, 'shared')]['ratio_to_base']:.2f}× at batch {big}"
            if ("paper", big, "shared") in by
            else ""
        )
        + f" for only {cfg['new_tokens']} new tokens; its cost grows with the square of the text length."
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# The bound does not depend on whether a machine is bandwidth- or compute-bound: the fused
# path's extra FLOPs per token, like its extra bytes, are R·(d_in + d_out) per module relative to
# d_in·d_out.

# %%
rows = {f"{r['method']}|{r['batch']}|{r['settings']}": round(r["tokens_per_s"], 3) for r in res["rows"]}
_ = P.record(
    "07_cost_of_interpolation",
    machine=bench.label(res["machine"]),
    model=res["config"]["model"],
    new_tokens=res["config"]["new_tokens"],
    bound=res["sizes"]["bound"],
    tokens_per_s=rows,
    ratio_to_base={f"{r['method']}|{r['batch']}|{r['settings']}": r["ratio_to_base"] for r in res["rows"]},
    set_weights_s={k: v["set_weights_s"] for k, v in res.get("set_weights_latency", {}).items()},
    change_latency_s=res.get("change_latency_s", {}),
    targets={t["target"]: t["met"] for t in bench.targets(res)},
    merged_held_ratio=amortized,
    merge_restore_s=merge_s,
    rerun=bool(tiny or rerun_benchmark),
    gpu_runs=[k for k in runs if "GPU" in k],
)
