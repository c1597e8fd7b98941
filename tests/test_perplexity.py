"""Perplexity and fluency on the pico model: identities with transformers' own loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import clm
from clm.errors import ConfigError, DataError
from clm.eval.perplexity import continuation_perplexity, distinct, distinct_n, sliding_window_perplexity, windows

TEXT = "The quick brown fox jumps over the lazy dog. " * 3


def hf_ppl(model, ids: list[int]) -> float:
    """exp of transformers' own mean loss over a sequence."""
    x = torch.tensor([ids])
    with torch.no_grad():
        return math.exp(float(model(input_ids=x, labels=x).loss))


@pytest.mark.parametrize("n,window,stride", [(10, 4, 2), (10, 4, 4), (9, 5, 3), (3, 8, 4), (100, 16, 1)])
def test_windows_score_every_token_once(n, window, stride):
    scored = [t for _, e, f in windows(n, window, stride) for t in range(f, e)]
    # stride < window: every token but the first, once; stride == window (disjoint windows):
    # a window's first token has no context and is skipped, as in HF's guide
    expect = [t for t in range(1, n) if stride < window or t % window]
    assert scored == expect
    for b, e, f in windows(n, window, stride):
        assert e - b <= window and b < f


def test_short_text_equals_exp_of_transformers_loss(pico):
    model, tok = pico
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert len(ids) < 512
    res = sliding_window_perplexity(model, TEXT, tokenizer=tok, stride=64)
    assert res.n_windows == 1 and res.n_scored == len(ids) - 1
    assert res.ppl == pytest.approx(hf_ppl(model, ids), rel=1e-5)


def test_strided_windows_equal_manual_sum(pico):
    """With several windows each token's NLL comes from its own window's context."""
    model, tok = pico
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    window, stride = 40, 16
    total, count = 0.0, 0
    for b, e, f in windows(len(ids), window, stride):
        x = torch.tensor([ids[b:e]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=x).logits[0].double(), -1)  # (L, V)
        for t in range(f, e):
            total -= float(logp[t - b - 1, ids[t]])
            count += 1
    res = sliding_window_perplexity(model, TEXT, tokenizer=tok, window=window, stride=stride)
    assert res.n_windows > 3 and res.n_scored == count == len(ids) - 1
    assert res.nll == pytest.approx(total / count, rel=1e-5)
    # batching windows of equal length changes nothing
    batched = sliding_window_perplexity(model, TEXT, tokenizer=tok, window=window, stride=stride, batch_size=4)
    assert batched.nll == pytest.approx(res.nll, rel=1e-6)
    # a smaller stride gives each token more context: a different number
    assert sliding_window_perplexity(model, TEXT, tokenizer=tok, window=window, stride=window).nll != pytest.approx(
        res.nll, rel=1e-6
    )


def test_interpolated_model_at_weights(im, pico):
    _, tok = pico
    base = sliding_window_perplexity(im, TEXT, weights=clm.Weights.base(), window=64, stride=32)
    w = clm.Weights(alpha={"sentiment": 1.0})
    moved = sliding_window_perplexity(im, TEXT, weights=w, window=64, stride=32)
    assert moved.ppl != pytest.approx(base.ppl, rel=1e-4)
    assert moved.weights == str(w)
    assert im.weights == clm.Weights.base()  # the setting is restored
    with im.using(w):  # same as setting it by hand
        assert sliding_window_perplexity(im, TEXT, window=64, stride=32).nll == pytest.approx(moved.nll, rel=1e-6)
    # base weights equal the unwrapped model
    plain = sliding_window_perplexity(im.model, TEXT, tokenizer=tok, window=64, stride=32)
    assert plain.nll == pytest.approx(base.nll, rel=1e-6)


def test_file_and_max_tokens(pico, tmp_path):
    model, tok = pico
    path = tmp_path / "t.txt"
    path.write_text("first line\n\n second line\n" * 20)
    full = sliding_window_perplexity(model, path=path, tokenizer=tok, window=64, stride=32)
    part = sliding_window_perplexity(model, path=path, tokenizer=tok, window=64, stride=32, max_tokens=50)
    assert part.n_tokens == 50 and full.n_tokens > 50
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match="not UTF-8"):
        sliding_window_perplexity(model, path=bad, tokenizer=tok)
    with pytest.raises(ConfigError, match="exceeds"):
        sliding_window_perplexity(model, TEXT, tokenizer=tok, window=4096)
    with pytest.raises(ConfigError, match="exactly one"):
        sliding_window_perplexity(model, tokenizer=tok)
    with pytest.raises(ConfigError, match="InterpolatedModel"):
        sliding_window_perplexity(model, TEXT, tokenizer=tok, weights=clm.Weights.base())


def test_continuation_perplexity(pico, im):
    model, tok = pico
    prompts = ["Once upon a time", "Hi", "Hello there"]
    conts = [" there was a fox.", " you", ""]
    ppl = continuation_perplexity(model, prompts, conts, tokenizer=tok, batch_size=2)
    assert np.isnan(ppl[2]) and np.all(ppl[:2] > 1)
    for i in range(2):  # equals transformers' loss with the prompt masked out
        p_ids = tok(prompts[i])["input_ids"]
        c_ids = tok(conts[i], add_special_tokens=False)["input_ids"]
        x = torch.tensor([p_ids + c_ids])
        labels = x.clone()
        labels[0, : len(p_ids)] = -100
        with torch.no_grad():
            ref = math.exp(float(model(input_ids=x, labels=labels).loss))
        assert ppl[i] == pytest.approx(ref, rel=1e-5)
    # token ids give the same; one by one equals batched (right padding is masked)
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in conts]
    np.testing.assert_allclose(continuation_perplexity(model, prompts, ids, tokenizer=tok), ppl, rtol=1e-5)
    one = [continuation_perplexity(model, [p], [c], tokenizer=tok)[0] for p, c in zip(prompts, conts)]
    np.testing.assert_allclose(one, ppl, rtol=1e-5)
    # an InterpolatedModel is scored at the base by default, whatever its current setting
    with im.using(clm.Weights(alpha={"sentiment": 1.0})):
        np.testing.assert_allclose(continuation_perplexity(im, prompts, conts), ppl, rtol=1e-5)
    with pytest.raises(ConfigError):
        continuation_perplexity(model, prompts, conts[:2], tokenizer=tok)


def test_distinct():
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)
    assert distinct(["x y z"]) == {"distinct_1": 1.0, "distinct_2": 1.0, "distinct_3": 1.0}
    assert math.isnan(distinct_n(["a"], 2))


def test_alpha_tv_distance(im):
    from clm.eval.perplexity import alpha_tv_distance, tv_distance

    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert tv_distance(p, p).tolist() == [0.0, 0.0]
    assert tv_distance(p, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.5, 0.5]])).tolist() == [1.0, 1.0]
    prompts = ["The cat sat", "Once"]  # different lengths: padding is not counted
    tv = alpha_tv_distance(im, prompts, ["sentiment", "formality"])
    enc = im.tokenizer(prompts, return_tensors="pt", padding=True)
    mask = enc["attention_mask"].bool()
    for attr in ("sentiment", "formality"):
        p0 = im.logits(enc["input_ids"], enc["attention_mask"], weights={attr: 0.0}).softmax(-1)[mask]  # (n, V)
        p1 = im.logits(enc["input_ids"], enc["attention_mask"], weights={attr: 1.0}).softmax(-1)[mask]
        assert tv[attr] == float(0.5 * (p0 - p1).abs().sum(-1).mean()) and 0 < tv[attr] < 1
    assert im.weights == clm.Weights.base()  # the setting is restored
