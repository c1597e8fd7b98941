"""Schedules: the setting as keyframes over the generated tokens (clm.core.schedule).

The exactness tests run on pico with non-zero adapters: a constant schedule is the fixed setting
bit for bit; a step at token k is k tokens at the first setting, then the same cache continued at
the second (a manual decode loop with past_key_values); per-row schedules equal rows alone.
Schedules go through the engine itself (``im.generate(weights=schedule)``); the logits come from
``generate_scheduled(..., output_logits=True)``, a LogitsRecorder passed as ``logits_processor``.
"""

from __future__ import annotations

import pytest
import torch

import clm
from clm.core.schedule import LogitsRecorder, Schedule, as_schedule, generate_scheduled, schedule_steps
from clm.errors import WeightsError

A = clm.Weights({"sentiment": 0.9, "formality": 0.2})
B = clm.Weights({"sentiment": 0.1, "formality": 1.0})


def manual_greedy(im, prompt: str, settings: list, n: int) -> tuple[list[int], torch.Tensor]:
    """Greedy decoding by hand: token t is drawn from the forward pass run at ``settings[t]``;
    earlier keys and values stay in the cache as computed."""
    tok = im.tokenizer
    ids = tok([prompt], return_tensors="pt")["input_ids"]
    mask = torch.ones_like(ids)
    im.set_weights(settings[0])
    with torch.no_grad():
        out = im.model(input_ids=ids, attention_mask=mask, use_cache=True)
        logits, tokens = [], []
        for t in range(n):
            step = out.logits[:, -1].float()  # (1, V)
            logits.append(step[0])
            nxt = step.argmax(-1, keepdim=True)  # (1, 1)
            tokens.append(int(nxt))
            if t + 1 == n:
                break
            im.set_weights(settings[t + 1])
            mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)
            out = im.model(input_ids=nxt, attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
    im.reset()
    return tokens, torch.stack(logits)


GREEDY = {"max_new_tokens": 10, "do_sample": False, "stop_at_eos": False}


def test_constant_schedule_is_the_fixed_setting_bit_for_bit(im):
    prompts = ["The cat sat", "Once upon a time there"]  # different lengths: left padding
    fixed = im.generate(prompts, weights=A, **GREEDY)
    gens, logits = generate_scheduled(im, prompts, Schedule.constant(A), output_logits=True, **GREEDY)
    assert [g.token_ids for g in gens] == [g.token_ids for g in fixed]
    assert [g.text for g in gens] == [g.text for g in fixed]
    # the same logits as generating at the fixed setting straight through model.generate
    enc = im.tokenizer(prompts[:1], return_tensors="pt")
    im.set_weights(A)
    ref = im.model.generate(**enc, max_new_tokens=10, do_sample=False, output_logits=True, return_dict_in_generate=True)
    im.reset()
    solo, solo_logits = generate_scheduled(
        im, prompts[:1], "sentiment=0:0.9,formality=0:0.2", output_logits=True, **GREEDY
    )
    assert torch.equal(solo_logits[0], torch.stack([x[0] for x in ref.logits]))
    assert solo[0].token_ids == fixed[0].token_ids
    # through the engine: weights= takes the schedule itself
    direct = im.generate(prompts, weights=Schedule.constant(A), **GREEDY)
    assert [g.token_ids for g in direct] == [g.token_ids for g in fixed]
    assert all(g.weights == A and g.schedule == Schedule.constant(A) for g in direct)
    # sampling too: same seed, same tokens, over several batches
    kw = {"max_new_tokens": 12, "do_sample": True, "seed": 3, "num_samples": 2, "batch_size": 3}
    assert [g.token_ids for g in im.generate(prompts, weights=Schedule.constant(A), **kw)] == [
        g.token_ids for g in im.generate(prompts, weights=A, **kw)
    ]


@pytest.mark.parametrize("k", [1, 4, 7])
def test_step_at_token_k_equals_k_tokens_then_the_same_cache_at_b(im, k):
    prompt, n = "The cat sat on the", 10
    step = Schedule({"sentiment": [(k - 1, 0.9), (k, 0.1)], "formality": [(k - 1, 0.2), (k, 1.0)]})
    assert step.at(k - 1) == A and step.at(k) == B
    gens, logits = generate_scheduled(im, prompt, step, output_logits=True, **GREEDY)
    tokens, ref_logits = manual_greedy(im, prompt, [A] * k + [B] * (n - k), n)
    assert gens[0].token_ids == tokens == im.generate(prompt, weights=step, **GREEDY)[0].token_ids
    torch.testing.assert_close(logits[0], ref_logits, atol=1e-5, rtol=0)  # another call path: float noise only
    # bit for bit: transformers' own generate for k tokens at A, then continued from its cache at B
    enc = im.tokenizer([prompt], return_tensors="pt")
    plain = {"do_sample": False, "output_logits": True, "return_dict_in_generate": True, "eos_token_id": None}
    im.set_weights(A)
    first = im.model.generate(**enc, max_new_tokens=k, **plain)
    im.set_weights(B)
    seq = first.sequences
    rest = im.model.generate(
        input_ids=seq, attention_mask=torch.ones_like(seq), past_key_values=first.past_key_values,
        max_new_tokens=n - k, **plain,
    )  # fmt: skip
    im.reset()
    assert rest.sequences[0, enc["input_ids"].shape[1] :].tolist() == gens[0].token_ids
    assert torch.equal(logits[0], torch.stack([x[0] for x in first.logits + rest.logits]))
    # and it is not the fixed setting: the step changed the continuation's logits after token k
    fixed_tokens, fixed_logits = manual_greedy(im, prompt, [A] * n, n)
    torch.testing.assert_close(logits[0][:k], fixed_logits[:k], atol=1e-5, rtol=0)
    assert not torch.allclose(logits[0][k:], fixed_logits[k:], atol=1e-3)


def test_a_ramp_matches_the_manual_loop(im):
    prompt, n = "Hello there", 9
    ramp = Schedule({"sentiment": [(0, 0.0), (8, 1.0)]})
    gens, logits = generate_scheduled(im, prompt, ramp, output_logits=True, **GREEDY | {"max_new_tokens": n})
    tokens, ref_logits = manual_greedy(im, prompt, ramp.settings(n), n)
    assert ramp.at(4) == clm.Weights({"sentiment": 0.5})
    assert gens[0].token_ids == tokens
    torch.testing.assert_close(logits[0], ref_logits, atol=1e-5, rtol=0)  # another call path: float noise only


def test_per_row_schedules_in_one_batch_equal_each_row_alone(im):
    prompts = ["The cat", "Once upon a time", "Hello"]  # different lengths: left padding
    scheds = [
        Schedule({"sentiment": [(0, 0.0), (6, 1.0)]}),
        Schedule({"formality": [(2, 1.0), (3, 0.0)]}),
        Schedule({"sentiment": [(0, 0.5, 0.5), (9, 1.0, 0.2)], "formality": [(0, 0.5, 0.5), (9, 0.0, 0.8)]}),
    ]
    together = im.generate(prompts, weights=scheds, **GREEDY)
    for p, s, g in zip(prompts, scheds, together):
        alone = im.generate([p], weights=s, **GREEDY)[0]
        assert g.token_ids == alone.token_ids and g.schedule == s and g.prompt == p and g.weights == s.at(0)
    assert len({tuple(g.token_ids) for g in together}) > 1
    # batches of 2 rows give the same rows as one batch (greedy: no RNG); so does the alias
    assert [g.token_ids for g in im.generate(prompts, weights=scheds, batch_size=2, **GREEDY)] == [
        g.token_ids for g in together
    ]
    assert [g.token_ids for g in generate_scheduled(im, prompts, [str(s) for s in scheds], **GREEDY)] == [
        g.token_ids for g in together
    ]
    assert im.weights == clm.Weights.base()  # the setting is restored afterwards


@pytest.mark.parametrize(
    "s",
    [
        Schedule({"sentiment": [(0, 0.0), (47, 1.0)]}),
        Schedule({"sentiment": [(0, -0.5), (10, 1.5), (20, 0.25)], "humor": 0.3}, extrapolate=True),
        Schedule({"a": [(0, 0.1, 0.3), (5, 0.2, 0.6)], "b": [(0, 1.0, 0.7), (5, 0.0, 0.4)]}),
        Schedule({"x": [(3, 0.125)]}, simplex=False),
        Schedule({"x": [(0, 2.5)]}, extrapolate=True, bounds=(-3.0, 3.0)),
        Schedule({}),
    ],
)
def test_text_and_json_round_trip(s):
    assert Schedule.parse(str(s)) == s
    assert Schedule.from_json(s.to_json()) == s
    assert hash(Schedule.parse(str(s))) == hash(s)


def test_text_form_and_interpolation():
    s = Schedule({"sentiment": [(0, 0.0), (47, 1.0)]})
    assert str(s) == "sentiment=0:0>47:1"
    assert s.at(0) == clm.Weights({"sentiment": 0.0})
    assert s.at(47) == s.at(100) == clm.Weights({"sentiment": 1.0})
    assert s.at(10).alpha["sentiment"] == pytest.approx(10 / 47)
    held = Schedule({"formality": [(5, 0.2), (9, 0.6)]})
    assert held.at(0) == held.at(5) == clm.Weights({"formality": 0.2})
    assert Schedule.parse("formality=0.3") == Schedule.constant({"formality": 0.3}) == as_schedule("formality=0.3")
    assert as_schedule(clm.Weights({"formality": 0.3})).is_constant and not s.is_constant
    assert Schedule.parse("sentiment=0:0>47:1") != Schedule.parse("sentiment=0:0>48:1")


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: Schedule({"sentiment": [(0, 0.0), (0, 1.0)]}), "must increase"),
        (lambda: Schedule({"sentiment": [(5, 0.0), (2, 1.0)]}), "must increase"),
        (lambda: Schedule({"sentiment": [(-1, 0.0)]}), "integer >= 0"),
        (lambda: Schedule({"sentiment": [(1.5, 0.0)]}), "integer >= 0"),
        (lambda: Schedule({"sentiment": [(0, "x")]}), "'x'"),
        (lambda: Schedule({"sentiment": [(0, float("nan"))]}), "finite"),
        (lambda: Schedule({"sentiment": []}), "non-empty"),
        (lambda: Schedule({"sentiment": [(0, 0.0), (9, 1.5)]}), "at token 9"),
        (lambda: Schedule({"sentiment": [(0, 0.0), (9, 2.5)]}, extrapolate=True), "outside the extrapolation"),
        (lambda: Schedule({"bad name": 0.5}), "'bad name'"),
        (lambda: Schedule({"a": [(0, 0.5, 0.5)], "b": [(0, 0.5)]}), "lacks lam"),
        (lambda: Schedule({"a": [(0, 0.5, 0.5), (4, 0.5, 1.0)], "b": [(0, 0.5, 0.5)]}), "at token 4"),
        (lambda: Schedule.parse("sentiment=0:0>x:1"), "'x'"),
        (lambda: Schedule.parse("sentiment=0:0>4:y"), "'y'"),
        (lambda: Schedule.parse("sentiment"), "expected attribute=t:alpha"),
        (lambda: Schedule.parse("sentiment=0:1,sentiment=1:0"), "twice"),
        (lambda: Schedule.parse("sentiment=0:1;wobble"), "wobble"),
        (lambda: Schedule.parse(3), "expected a string"),
        (lambda: Schedule({"sentiment": 0.5}).at(-2), "integer >= 0"),
    ],
)
def test_bad_input_is_one_line_naming_the_value(make, needle):
    with pytest.raises(WeightsError) as err:
        make()
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_bad_runtime_input(im):
    with pytest.raises(WeightsError, match="2 schedules for 3 prompts"):
        generate_scheduled(im, ["a", "b", "c"], ["sentiment=0.5", "sentiment=1"], max_new_tokens=2)
    with pytest.raises(WeightsError, match="humor"):  # pico's endpoints have no humor: refused before any work
        generate_scheduled(im, ["a"], Schedule({"sentiment": 0.5, "humor": [(0, 0.0), (3, 1.0)]}), max_new_tokens=4)
    with pytest.raises(WeightsError, match="max_new_tokens"):
        generate_scheduled(im, ["a"], "sentiment=0.5", max_new_tokens=0)
    assert "generate" not in vars(im.model)  # the model's generate is left as it was


def test_a_list_may_mix_weights_and_schedules(im):
    prompts = ["The cat", "Once upon a time", "Hello"]
    ramp = Schedule({"sentiment": [(0, 0.0), (6, 1.0)]})
    mixed = im.generate(prompts, weights=[ramp, A, "formality=0.3"], **GREEDY)
    assert mixed[0].token_ids == im.generate(prompts[0], weights=ramp, **GREEDY)[0].token_ids
    assert mixed[1].token_ids == im.generate(prompts[1], weights=A, **GREEDY)[0].token_ids
    assert mixed[2].token_ids == im.generate(prompts[2], weights="formality=0.3", **GREEDY)[0].token_ids
    assert [g.schedule for g in mixed] == [ramp, None, None]
    assert [g.weights for g in mixed] == [ramp.at(0), A, clm.Weights({"formality": 0.3})]
    assert "generate" not in vars(im.model)  # the engine passes the stepper; nothing is wrapped


def test_nothing_re_prefills(im):
    """Every forward pass after the prompt's prefill reads one new token per row, with the cache."""
    seen = []

    def hook(module, args, kwargs):
        cache = kwargs.get("past_key_values", kwargs.get("cache"))  # the name differs across transformers
        seen.append((tuple(kwargs["input_ids"].shape), cache.get_seq_length()))

    handle = im.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        im.generate(["The cat", "Once upon a time"], weights=Schedule({"sentiment": [(0, 0.0), (3, 1.0)]}), **GREEDY)
    finally:
        handle.remove()
    (prefill, empty), *steps = seen
    assert prefill[1] > 1 and empty == 0 and len(steps) == GREEDY["max_new_tokens"] - 1
    # each step reads one token per row, with every earlier position already in the cache
    assert steps == [((2, 1), prefill[1] + j) for j in range(len(steps))]


def test_logits_processor_is_passed_through(im):
    prompt = "The cat sat"
    rec = LogitsRecorder()
    gen = im.generate(prompt, weights=A, logits_processor=[rec], **GREEDY)[0]
    enc = im.tokenizer([prompt], return_tensors="pt")
    im.set_weights(A)
    ref = im.model.generate(**enc, max_new_tokens=10, do_sample=False, output_logits=True, return_dict_in_generate=True)
    im.reset()
    assert torch.equal(rec.rows()[0], torch.stack([x[0] for x in ref.logits]))
    assert gen.token_ids == ref.sequences[0, enc["input_ids"].shape[1] :].tolist()
    # next to a schedule's stepper, the user's processor still sees every step
    rec = LogitsRecorder()
    im.generate(prompt, weights=Schedule({"sentiment": [(0, 0.0), (4, 1.0)]}), logits_processor=[rec], **GREEDY)
    assert rec.rows()[0].shape[0] == GREEDY["max_new_tokens"]


def test_schedule_steps_lists_only_the_changes():
    ramp = Schedule({"sentiment": [(2, 0.0), (4, 1.0)]})
    steps = schedule_steps([ramp, A], 6)
    assert steps[0] == [ramp.at(0), A] and steps[1] is None and steps[2] is None
    assert steps[3] == [clm.Weights({"sentiment": 0.5}), A] and steps[4] == [ramp.at(4), A] and steps[5] is None
    assert schedule_steps([A, Schedule.constant(B)], 4) == [[A, B], None, None, None]


def test_engine_refuses_bad_schedules_before_any_work(im):
    with pytest.raises(WeightsError, match="humor"):
        im.generate(["a"], weights=Schedule({"sentiment": 0.5, "humor": [(0, 0.0), (3, 1.0)]}), max_new_tokens=4)
    with pytest.raises(WeightsError, match="got 2 weights for 3 rows"):
        im.generate(["a", "b", "c"], weights=[Schedule({"sentiment": 0.5}), A], max_new_tokens=2)
    assert im.weights == clm.Weights.base()


def test_the_facade_offers_schedule_controller_and_widgets_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, clm; names = (clm.Schedule.__module__, clm.Controller.__module__, clm.widgets.__name__); "
        "print(names, 'torch' in sys.modules, 'ipywidgets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "('clm.core.schedule', 'clm.experiments.control', 'clm.widgets') False False"
