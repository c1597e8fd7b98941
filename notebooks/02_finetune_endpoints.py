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
# # Fine-tuning the endpoints
#
# Continuous interpolation needs two **endpoint** models per attribute: one fine-tuned on text of
# the low pole (negative, impolite, informal, complex, non-humorous) and one on the high pole.
# The paper {cite:p}`kangaslahti2025continuous` trains each endpoint as a LoRA adapter
# {cite:p}`hu2021lora` on a 4-bit NF4 base (QLoRA, {cite:p}`dettmers2023qlora`), and every later
# chapter mixes these adapters with weights α and λ.
#
# The recipe, in `clm.train.trainer.train_endpoints`:
# - a pole's texts are shuffled (seeded), joined by a `separator` and **packed** into blocks of
#   `block_size` tokens (no padding; shown below). The separator matters: joined with EOS, as
#   many packing scripts do, short-sentence corpora teach an endpoint to end the text after every
#   sentence, and since generation stops at EOS, three quarters of its continuations of a story
#   prompt came out empty in our first pilot (see the selection below). The `cpu` and `paper`
#   presets join with a blank line (`"\n\n"`) instead;
# - a seeded fraction of the blocks is **held out** for an eval loss;
# - one LoRA adapter per pole is trained with transformers' `Trainer` (so the same code runs
#   data-parallel under `torchrun` or `accelerate launch`), with checkpoints every `save_steps`:
#   a killed run resumes where it stopped;
# - each finished adapter is written atomically beside a `clm_adapter.json` that records the
#   base model's fingerprint, the config, the sha256 of the data and the loss curve.
#
# ```{admonition} Run time
# :class: note
# **With what `clm` ships** (the endpoints), `cpu` loads them and takes under a minute on 2 CPU
# cores. **Retraining** (`reuse_endpoints = False`) takes about 4 minutes per pole on 2 CPU
# cores, about 40 minutes for all five attributes; `tiny` trains pico adapters in seconds and
# `gpu` trains with the paper's recipe.
# ```

# %% tags=["parameters", "hide-input"]
# Settings: a value here wins over $CLM_PRESET / $CLM_RUN_DIR, which win over the defaults.
preset = None  # scale: tiny, cpu or gpu (None: $CLM_PRESET, else cpu)
model = None  # base model (None: the preset's)
data_dir = None  # the shared data (None: $CLM_DATA_DIR or ../shared/data)
run_dir = None  # where notebooks share results (None: $CLM_RUN_DIR, else runs/<preset>)
seed = 0
attributes = None  # attributes to train (None: the training preset's)
reuse_endpoints = True  # use existing endpoints (the run dir's, else the shipped ones) instead of training
train_overrides = {}  # TrainConfig overrides, e.g. {"learning_rate": 1e-3, "max_steps": 200}
n_prompts = 3  # prompts for the example generations

# %% tags=["remove-input"]
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from transformers.utils import logging as hf_logging

import clm
import clm.book.params
import clm.train.trainer
from clm.book import display as show
from clm.book.chapters import chapter
from clm.data import pack_blocks, read_texts
from clm.train.config import TrainConfig

P = chapter("02_finetune_endpoints", globals())  # every parameter above, checked; None: the preset's
cfg, names = P.train_config, P.attributes  # the preset's training config with the overrides above
reuse_endpoints, n_prompts = P.reuse_endpoints, P.n_prompts
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100})
hf_logging.disable_progress_bar()  # no "Loading weights" bars in the book
show.setup_line(P, f"Training preset `{cfg.preset}` (its reasons are listed under the config below).")

# %% [markdown]
# ## The config: the paper's recipe and ours
#
# The `paper` preset is the paper's recipe. The `cpu` preset, for the embedded default on two
# CPU cores, trains far fewer steps, so it takes larger ones (a higher learning rate and
# `lora_alpha = 2r`); its `note`, listed under the table, says why each value differs. Where
# `max_steps` is set it ends training before `epochs` would. The config is a validated
# `TrainConfig`: it loads from YAML, and unknown keys are errors that name the closest valid key.

# %% tags=["hide-input"]
keys = ["model", "quantization", "r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate"]
keys += ["learning_rate_by_attribute", "effective_batch", "block_size", "separator", "epochs"]
keys += ["epochs_by_attribute", "max_steps", "max_texts", "eval_fraction"]
configs = {"paper": TrainConfig.from_preset("paper"), f"this run ({cfg.preset})": cfg}
# a separator's newlines shown as \n, not as line breaks; learning rates as 0.00005, not 5e-05
def _value(k: str, x) -> str:
    """A config value as a reader reads it: no Python literals, no scientific notation."""
    if k == "separator":
        return repr(x)
    if x is None or x == {} or x == []:
        return "–"
    if isinstance(x, float):
        return np.format_float_positional(x, trim="-")
    if isinstance(x, dict):
        return ", ".join(f"{a} {_value(k, v)}" for a, v in x.items())
    if isinstance(x, (list, tuple)):
        return ", ".join(map(str, x))
    return str(x)


table = pd.DataFrame({name: {k: _value(k, getattr(c, k)) for k in keys} for name, c in configs.items()})
display(show.table(table.rename_axis("setting"), index=True, caption="The training config: the paper's and this run's"))
def _clauses(text: str) -> list[str]:
    """``text`` cut after each "." or ";" outside parentheses."""
    out, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch in ".;" and depth == 0 and (k + 1 == len(text) or text[k + 1] == " "):
            out.append(text[start:k].strip())
            start = k + 1
    return [c for c in [*out, text[start:].strip()] if c]


_reasons = _clauses(cfg.note or "")
Markdown(f"Why `{cfg.preset}` differs:\n\n" + "\n".join(f"- {show.plain_numbers(r)}." for r in _reasons)
         if _reasons else "")  # fmt: skip

# %% [markdown]
# Packing, in full (`clm.data.pack_blocks`): every text is followed by the separator's tokens
# (here 9, or 7 8), the stream is cut into equal blocks, the remainder is dropped. A block can
# start mid-sentence; the model still learns the pole's style.

# %%
print(pack_blocks([[1, 2], [3], [4, 5, 6]], block_size=3, eos_id=9))
print(pack_blocks([[1, 2], [3], [4, 5, 6]], block_size=3, eos_id=[7, 8]))
print(f"this run joins texts with {cfg.separator!r}")

# %% [markdown]
# ## Train, or load what exists
#
# Endpoints already in the run dir are loaded. Otherwise, with `reuse_endpoints`, the shipped
# endpoints for this base model (`clm/assets/endpoints/<model>`) are used in place (later
# chapters fall back to them too, through `clm.book.params.find_endpoints`). Otherwise
# `clm.train.trainer.train_endpoints` trains the missing attributes; rerunning skips finished
# poles and resumes unfinished ones from their last checkpoint. The rule is
# `clm.train.endpoints_io.train_or_load`.

# %%
from clm.train import endpoints_io

shipped = clm.book.params.ASSETS / "endpoints" / P.model
ends, source = endpoints_io.train_or_load(
    cfg, P.run_dir, P.endpoints_dir, names, reuse_endpoints, shipped
)  # fmt: skip

# %% tags=["remove-input"]
show.findings(
    "Endpoints ({source}) in `{path}`: {poles}.",
    source=source, path=show.relative(ends.path, P.run_dir),
    poles="; ".join(f"{a} ({' / '.join(ends.poles(a))})" for a in ends.attributes),
)  # fmt: skip

# %% [markdown]
# ## Loss curves
#
# Solid lines: training loss per optimizer step; dashed with dots: the loss on held-out blocks
# of the same pole, starting with the base model's at step 0. A falling held-out loss says the
# adapter learned the pole's text rather than memorising its blocks.

# %%
import clm.plots
from clm.train.logs import held_out_table, loss_table, read_logs

# the run's training logs, else the shipped endpoints' own
logs_from = P.run_dir if read_logs(P.run_dir) else ends.path
losses = loss_table(logs_from)
eval_table = held_out_table(losses, names)
g = clm.plots.loss_curves(logs_from) if not losses.empty else None
plt.close("all")  # the figure is drawn once, numbered, below

# %% tags=["remove-input"]
if g is None:
    display(Markdown("No training logs were found for these endpoints."))
else:
    display(
        show.figure(
            g.figure, "2.1",
            "Training loss (solid) and held-out loss (dashed, with dots) per optimizer step, one panel per attribute; grey: the low pole, black: the high pole.",
            alt="Every pole's held-out loss falls from the base model's at step 0 and levels off by the last step.",
        )
    )  # fmt: skip
show.table(eval_table.rename_axis(["attribute", "pole"]), index=True, caption="Held-out loss (nats per token)")

# %% [markdown]
# ## How the hyper-parameters were chosen
#
# Never on evaluation data. The shipped endpoints record their candidates
# (`selection.json`, written by `python -m clm.tune`): each candidate's held-out loss, its
# perplexity on a development text that no endpoint trains on (OneStopEnglish news), and the
# mean scorer output at α = 0 and α = 1 on the *last* 100 WritingPrompts prompts, where the book
# evaluates on the *first* 100. The rule and the choice follow the table. Humor was revisited
# once, after the book's test run showed its perplexity above the 1.3 × base that the reference
# run allows (chapter 10); that choice, too, was made on the development data alone, by a rule
# written before the new candidate was measured, and is given last.

# %%
sel = endpoints_io.read_selection(ends.path)  # None: no selection.json
# for chapter 10: each revisited attribute's development numbers (replaced
# and chosen candidate) and the test numbers that prompted the revision
revisions = endpoints_io.revision_numbers(sel)

# %% tags=["remove-input"]
if sel is not None:
    display(show.table(endpoints_io.selection_table(sel), index=True, caption="The candidates tried (selection.json)"))
    md = [f"**Rule.** {sel.get('rule', '')}", f"**Chosen: {sel.get('choice')}.** {sel.get('reason', '')}"]
    for rev in sel.get("revisions", []):
        md += [f"**Revisited, {rev['attribute']}.** {rev['why']}", f"**Rule.** {rev['rule']}"]
        md += [f"**Chosen: {rev['choice']}.** {rev['reason']}"]
    display(Markdown(show.plain_numbers("\n\n".join(md))))
else:
    display(Markdown(f"No selection record beside these endpoints (`{show.relative(ends.path, P.run_dir)}`)."))

# %% [markdown]
# ## What the endpoints write
#
# A few story prompts, continued at α = 0 (the low pole's adapter) and α = 1 (the high pole's),
# with the same sampling seed, so the only difference is the adapter. The base model is
# SmolLM2-135M-Instruct, a 135M-parameter model tuned to answer chat turns, asked here to continue
# raw text: most of its 32-token continuations are not coherent prose, at either pole (see the
# introduction). Compare the two boxes of a pair for word choice and tone.

# %%
base, tok = clm.load_base(P.model)
im = clm.InterpolatedModel(base, tok, ends)
prompts_file = P.data_dir / "prompts" / "writing_prompts.jsonl"
prompts = read_texts(prompts_file, field="prompt", limit=n_prompts)
rows = []
for attr in names:
    for alpha, pole in zip((0.0, 1.0), ends.poles(attr)):
        outs = im.generate(
            prompts, weights=clm.Weights({attr: alpha}), seed=seed,
            max_new_tokens=P.preset.max_new_tokens, progress=False,
        )  # fmt: skip
        for o in outs:
            rows.append(
                dict(
                    attribute=attr,
                    alpha=alpha,
                    pole=pole,
                    prompt=o.prompt,
                    continuation=o.text,
                )
            )
gens = pd.DataFrame(rows)

# %% tags=["remove-input"]
for (attr, prompt), g in gens.groupby(["attribute", "prompt"], sort=False):
    display(show.continuations([(f"{attr}, α = {a:g} ({p})", t) for a, p, t in zip(g.alpha, g.pole, g.continuation)],
                               prompt=prompt))  # fmt: skip

# %% [markdown]
# The dial moves the model: the next-token distributions at α = 0 and α = 1 differ on every
# prompt. Below, the mean total-variation distance between them, per attribute (0: identical,
# 1: disjoint; `clm.eval.perplexity.alpha_tv_distance`). Whether they differ in the *intended*
# direction is measured with the scorers of chapter 3 in the next chapters.

# %%
from clm.eval.perplexity import alpha_tv_distance

tv = alpha_tv_distance(im, prompts, names)  # attribute -> mean TV distance

# %% tags=["remove-input"]
show.table(pd.Series(tv, name="mean TV distance, α = 0 vs α = 1").rename_axis("attribute").to_frame(), index=True)

# %% tags=["remove-input"]
_ = P.record(
    "02_finetune_endpoints",
    source=source,
    base=ends.base_id,
    attributes=names,
    train_preset=cfg.preset,
    config_sha256=cfg.sha256(),
    eval_loss_base={f"{a}/{p}": v for (a, p), v in eval_table["held-out loss, base (step 0)"].items()},
    eval_loss_trained={f"{a}/{p}": v for (a, p), v in eval_table["held-out loss, trained"].items()},
    tv_alpha0_alpha1=tv,
    n_generations=len(gens),
    revisions=revisions,
)

# %% [markdown]
# ## What we found

# %% tags=["remove-input"]
drop = eval_table["held-out loss, base (step 0)"] - eval_table["held-out loss, trained"]
show.findings(
    "Training lowered the held-out loss of {n_lower} of {n_poles} poles, by {drop_min:.2f} to {drop_max:.2f} nats "
    "per token (a perplexity on the pole's own text {gain_min:.2f} to {gain_max:.2f} times lower): each adapter "
    "learned its pole's text, without memorising the blocks it trained on. How far apart the two endpoints of an "
    "attribute are is another matter: {closest}'s endpoints are the closest pair (mean TV distance {tv_min:.2f} "
    "between their next-token distributions), {farthest}'s the farthest ({tv_max:.2f}). A dial between close "
    "endpoints has little room to move the text, so {closest} is the attribute to expect the weakest response "
    "from in chapter 4. The distances are means over only {n_tv} prompts: they rank the attributes roughly, "
    "they are not precise.",
    n_lower=int((drop > 0).sum()), n_poles=len(drop), drop_min=drop.min(), drop_max=drop.max(),
    gain_min=float(np.exp(drop.min())), gain_max=float(np.exp(drop.max())), closest=min(tv, key=tv.get),
    tv_min=min(tv.values()), farthest=max(tv, key=tv.get), tv_max=max(tv.values()), n_tv=len(prompts),
)  # fmt: skip
