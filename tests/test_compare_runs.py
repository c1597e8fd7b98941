"""clm.experiments.compare_runs on pico: the comparison's runs are keyed and resumable, shared rows are
the rows they stand for, lazy mixture adapters are never loaded for a complete table, and the
continuation perplexity that scores only the continuation's positions equals the full-logits one."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import clm
from clm.errors import ConfigError
from clm.experiments import compare, compare_runs
from clm.experiments.method_sweep import run_method_sweep
from clm.methods.mixture import MixtureMethod
from clm.methods.prompting import PromptingMethod

PROMPTS = ["Once upon a time", "The letter said", "In the year 3000, robots"]


class Keyed:
    """A fake scorer with a fingerprint: the text's length mod 7, over 7 (pico writes stray bytes)."""

    fingerprint = "length-v1"

    def score(self, texts):
        return np.array([len(t) % 7 / 7 for t in texts])


def count_generate(method, monkeypatch) -> list:
    calls, real = [], method.generate

    def wrapped(prompts, strengths, **kw):
        calls.append(list(strengths))
        return real(prompts, strengths, **kw)

    monkeypatch.setattr(method, "generate", wrapped)
    return calls


def test_steering_layers_are_a_quarter_half_and_three_quarters_up():
    assert compare_runs.steering_layers(30) == [7, 14, 21]
    assert compare_runs.steering_layers(2) == [0, 1]
    assert compare_runs.steering_layers(1) == [0]
    with pytest.raises(ConfigError, match="at least one decoder layer"):
        compare_runs.steering_layers(0)


def test_a_choice_through_keyed_tables_resumes_and_matches_the_tables(im, tmp_path, monkeypatch):
    from clm.methods.dev import choose_wording, response_from_table

    made = []

    def respond(method, strengths, fluency):
        made.append(method.wording.name)
        t = run_method_sweep(method, strengths, PROMPTS, {"sentiment": Keyed()}, out=tmp_path / f"{method.wording.name}.parquet",
                             max_new_tokens=4, batch_size=4, fluency=fluency)  # fmt: skip
        return response_from_table(t, "sentiment", strengths)

    first = choose_wording(im, im.tokenizer, "sentiment", PROMPTS, Keyed(), candidates=["story", "continue"], respond=respond)
    assert made == ["story", "continue"] and first["chosen"] in ("story", "continue")
    generated = []
    real = PromptingMethod.generate_batch
    monkeypatch.setattr(PromptingMethod, "generate_batch", lambda self, *a: generated.append(1) or real(self, *a))
    again = choose_wording(im, im.tokenizer, "sentiment", PROMPTS, Keyed(), candidates=["story", "continue"], respond=respond)
    assert generated == [] and json.dumps(again) == json.dumps(first)  # NaN-safe equality
    t = pd.read_parquet(tmp_path / "story.parquet")
    r = first["candidates"]["story"]
    for s in (-2.0, 2.0):  # the record is the table's own means
        assert r["score"][s] == pytest.approx(t.loc[t.strength == s, "score_sentiment"].mean())
    assert r["range"] == pytest.approx(r["score"][2.0] - r["score"][-2.0])


def test_mixture_keyed_by_recipe_never_loads_its_adapters_for_a_complete_table(im, pico_dir, endpoints_dir, tmp_path):
    ends = clm.Endpoints.load(endpoints_dir)
    base = clm.load_base(str(pico_dir))[0]
    made = []

    def adapter():
        made.append(1)
        return ends.adapter_dir("sentiment", "high")  # a stand-in adapter: any adapter of this base

    recipes = {0.5: {"settings": {"lr": 1}, "mixture": {"m": 0.5}}}
    method = MixtureMethod(base, im.tokenizer, "sentiment", {0.5: adapter}, recipes=recipes)
    assert not method.loaded and made == [] and "recipes" in method.describe()
    out = tmp_path / "mix.parquet"
    kw = dict(out=out, n_samples=1, max_new_tokens=4, batch_size=4)
    first = run_method_sweep(method, None, PROMPTS, {"sentiment": Keyed()}, **kw)
    assert method.loaded and made == [1]
    lazy = MixtureMethod(clm.load_base(str(pico_dir))[0], im.tokenizer, "sentiment", {0.5: adapter}, recipes=recipes)
    again = run_method_sweep(lazy, None, PROMPTS, {"sentiment": Keyed()}, **kw)
    assert not lazy.loaded and made == [1]  # the table held every batch: nothing loaded, nothing trained
    pd.testing.assert_frame_equal(first, again)
    other = MixtureMethod(base, im.tokenizer, "sentiment", {0.5: adapter}, recipes={0.5: {"settings": {"lr": 2}}})
    assert other.describe()["recipes"] != method.describe()["recipes"]  # another recipe: another key
    with pytest.raises(ConfigError, match="recipes and adapters differ"):
        MixtureMethod(base, im.tokenizer, "sentiment", {0.5: adapter, 0.25: adapter}, recipes=recipes)


def test_continuation_perplexity_of_the_continuation_positions_equals_the_full_logits(pico):
    from clm.eval.perplexity import continuation_perplexity, token_nll

    model, tok = pico
    conts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    got = continuation_perplexity(model, PROMPTS, conts, tokenizer=tok, batch_size=2)
    want = []
    with torch.no_grad():
        for p, c in zip(PROMPTS, conts):
            ids = tok(p)["input_ids"]
            x = torch.tensor([ids + c])
            nll = token_nll(model(input_ids=x).logits[:, :-1], x[:, 1:])[0, len(ids) - 1 : len(ids) - 1 + len(c)]
            want.append(math.exp(float(nll.double().mean())))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.isnan(continuation_perplexity(model, PROMPTS[:1], [[]], tokenizer=tok))[0]


def test_add_fluency_keeps_what_it_measured_and_measures_only_new_rows(im, tmp_path):
    from clm.experiments import designs, sweep
    from clm.experiments.sweep_scoring import base_fluency

    runs = compare_runs.Runs(im, {"sentiment": Keyed()}, tmp_path / "compare", lambda n: tmp_path / "compare" / n,
                             dict(n_samples=1, seeds=[0], max_new_tokens=4, batch_size=4), log=lambda _: None)  # fmt: skip
    t = sweep.run_sweep(im, designs.single_attribute("sentiment", [0.0, 1.0]), PROMPTS, {"sentiment": Keyed()},
                        out=tmp_path / "s.parquet", n_samples=1, max_new_tokens=4, batch_size=4, fluency=None)  # fmt: skip
    half = runs.add_fluency(t.iloc[:3], "fl.parquet", every=2)
    stored = pd.read_parquet(tmp_path / "compare" / "fl.parquet")
    assert len(stored) == 3
    calls = []
    real = runs._token_ids
    runs._token_ids = lambda rows: calls.append(len(rows)) or real(rows)
    full = runs.add_fluency(t, "fl.parquet", every=2)
    assert calls == [2, 1]  # only the 3 rows not measured before
    direct = base_fluency(im, batch_size=4)(t["prompt"].tolist(), [list(map(int, eval(x))) for x in t["token_ids"]])
    np.testing.assert_allclose(full["ppl"].to_numpy(float), direct, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(full["ppl"].to_numpy(float)[:3], half["ppl"].to_numpy(float))


def _rows(method: str, strengths, n=2, attribute="sentiment", **extra):
    return pd.DataFrame([
        {"method": method, "attribute": attribute, "dial": "d", "strength": float(s), "prompt_index": i, "sample": 0,
         "seed": 0, "prompt": f"p{i}", "continuation": f"{method} {s} {i}", "score_sentiment": s / 10 + i,
         "ppl": 10.0 + s, **extra}
        for s in strengths for i in range(n)
    ])  # fmt: skip


def test_shared_rows_are_the_base_and_the_endpoints_rows_marked_where_they_came_from():
    base = _rows("x", [0.0]).drop(columns=["method", "attribute", "dial", "strength"]).assign(wikitext_ppl=20.0)
    single = _rows("y", [0.0, 1.0]).drop(columns=["method", "attribute", "dial"])
    single = single.assign(alpha_sentiment=single.strength, lam_sentiment=1.0, setting="s").drop(columns="strength")
    tables = {"base": base, "interpolation_sentiment": single, "prompting_sentiment": _rows("prompting", [-2.0, 2.0]),
              "logit-product_sentiment": _rows("logit-product", [0.5])}  # fmt: skip
    tidy, base_rows = compare_runs.share_rows(tables)
    p0 = tidy[(tidy.method == "prompting") & (tidy.strength == 0.0)]
    assert list(p0.continuation) == list(base.continuation) and set(p0.shared_from) == {"base"}
    assert p0.wikitext_ppl.isna().all()  # prompting defines no model: the base's WikiText value is not its
    prod = tidy[tidy.method == "logit-product"]
    assert sorted(prod.strength.unique()) == [0.0, 0.5, 1.0]
    assert list(prod[prod.strength == 1.0].continuation) == list(single[single.alpha_sentiment == 1.0].continuation)
    assert prod[prod.strength == 0.5].shared_from.isna().all()
    fr = compare.frontier(tidy, base_rows)
    at0 = fr[(fr.method == "prompting") & (fr.strength == 0.0)]
    assert float(at0.ppl_ratio.iloc[0]) == pytest.approx(1.0)  # the base's own rows: ratio 1


def test_the_strongest_fluent_setting_is_the_highest_score_within_the_budget():
    from clm.experiments.compare_report import strongest_fluent

    fr = pd.DataFrame({"method": "m", "attribute": "a", "strength": [0.0, 1.0, 2.0, 3.0],
                       "score_mean": [0.1, 0.5, 0.9, 0.95], "ppl_ratio": [1.0, 1.2, 1.4, 2.0]})  # fmt: skip
    b = strongest_fluent(fr, 1.5).iloc[0]
    assert (b.strength, b.score, b.low, b.fluent, b.n_fluent) == (2.0, 0.9, 0.1, True, 3)
    assert b.reach == pytest.approx(0.8)
    none = strongest_fluent(fr.assign(ppl_ratio=[3.0, 2.5, 4.0, 5.0]), 1.5).iloc[0]
    assert (none.strength, none.fluent, none.reach) == (1.0, False, 0.0)  # the least perplexing, marked not fluent


def test_steering_vectors_are_kept_by_key_and_only_missing_layers_computed(im, tmp_path, monkeypatch):
    import clm.methods.steering as steering

    texts = {"sentiment": (["it was awful", "bad and sad"], ["it was lovely", "good and glad"])}
    monkeypatch.setattr(steering, "pole_texts", lambda data_dir, a, n=500, seed=0: texts[a])
    computed, real = [], steering.mean_difference
    monkeypatch.setattr(steering, "mean_difference", lambda *a, **k: computed.append(list(a[5])) or real(*a, **k))
    runs = compare_runs.Runs(im, {"sentiment": Keyed()}, tmp_path / "compare", lambda n: tmp_path / "compare" / n,
                             dict(n_samples=1, seeds=[0], max_new_tokens=4, batch_size=4), log=lambda _: None)  # fmt: skip
    first = runs.vectors("sentiment", [0], tmp_path, 2)
    assert (tmp_path / "compare" / "vectors" / "sentiment.pt").is_file() and computed == [[0]]
    both = runs.vectors("sentiment", [0, 1], tmp_path, 2)
    assert computed == [[0], [1]]  # layer 0 read back, only layer 1 computed
    assert torch.equal(both[0].vector, first[0].vector) and both[0].digest() == first[0].digest()
    want = real(im, im.tokenizer, *texts["sentiment"], "sentiment", [0, 1])
    assert all(torch.equal(both[L].vector, want[L].vector) for L in (0, 1))  # what was kept is what is computed
    assert (both[1].n_low, both[1].n_high) == (2, 2)
    again = runs.vectors("sentiment", [1, 0], tmp_path, 2)
    assert computed == [[0], [1]] and list(again) == [1, 0]  # nothing computed, in the order asked
    texts["sentiment"] = (["it was awful"], ["it was lovely"])  # other texts: another key, computed afresh
    other = runs.vectors("sentiment", [0], tmp_path, 1)
    assert computed == [[0], [1], [0]] and other[0].n_low == 1
    assert not torch.equal(other[0].vector, first[0].vector)


def test_wikitext_reach_is_the_range_over_settings_whose_model_stays_within_the_budget():
    from clm.experiments.compare_report import wikitext_reach

    tidy = pd.DataFrame({"method": "interpolation", "attribute": "sentiment", "strength": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0],
                         "score_sentiment": [0.2, 0.4, 0.6, 0.8, 0.9, 1.0],
                         "wikitext_ppl": [10.0, 10.0, 14.0, 14.0, 16.0, 16.0]})  # fmt: skip
    base = pd.DataFrame({"wikitext_ppl": [10.0, 10.0]})
    assert wikitext_reach(tidy, base, "interpolation", ["sentiment"], 1.5) == {"sentiment": pytest.approx(0.4)}
    assert wikitext_reach(tidy, base, "interpolation", ["sentiment"], 1.7) == {"sentiment": pytest.approx(0.65)}
    assert wikitext_reach(tidy, base, "steering", ["sentiment"], 1.5) == {}  # no rows of that method
    assert wikitext_reach(tidy, base.assign(wikitext_ppl=float("nan")), "interpolation", ["sentiment"], 1.5) == {}


def test_the_conclusions_row_says_where_interpolation_reaches_furthest():
    from clm.experiments.compare_report import NOT_MEASURED, conclusions_line, conclusions_row

    rec = {"budget": 1.5, "reach": {"sentiment": {"interpolation": 0.0, "steering": 0.2},
                                    "formality": {"interpolation": 0.3, "prompting": 0.1}},
           "wikitext_reach": {"sentiment": 0.61}}  # fmt: skip
    row = conclusions_row({"08_alternatives": rec}).iloc[0]
    assert row["holds"] == "partly: interpolation reaches furthest for formality (1 of 2)"
    assert "sentiment: steering 0.20, interpolation 0.00" in row["our finding"]
    assert "WikiText-2 perplexity (within the same ratio), interpolation reaches sentiment 0.61" in row["our finding"]
    with_dial = conclusions_row({"08_alternatives": {**rec, "dial": [-1.0, 2.0]}}).iloc[0]
    assert "over its whole dial (α from -1 to 2) sentiment 0.61" in with_dial["our finding"]
    line = conclusions_line(conclusions_row({"08_alternatives": rec}))
    assert line.endswith("Does interpolation reach furthest? Partly: interpolation reaches furthest for formality (1 of 2).")
    assert "Within chapter 8's fluency budget (score range reached while" in line
    assert "1.5×" in row["our test"]
    none = conclusions_row({"08_alternatives": {**rec, "reach": {"sentiment": rec["reach"]["sentiment"]}}})
    assert none.iloc[0]["holds"] == "no: for every attribute another method reaches further"
    assert conclusions_line(conclusions_row({})).endswith(f"{NOT_MEASURED}.")
