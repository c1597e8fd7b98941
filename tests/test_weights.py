"""Weights: the paper's (α, λ) as a value, and every way it can be wrong."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clm import Weights, WeightsError
from clm.core.weights import as_weights_list, grid

names = st.sampled_from(["sentiment", "formality", "humor", "politeness", "simplicity"])
alphas = st.floats(-1, 2, allow_nan=False, allow_infinity=False)


def test_default_lambda_is_equal_over_active_attributes():
    w = Weights({"sentiment": 0.8, "formality": 0.2})
    assert w.lam_resolved() == {"sentiment": 0.5, "formality": 0.5}
    c = w.coefficients(["sentiment", "formality", "humor"])
    assert c == {"sentiment": (0.5 * (1 - 0.8), 0.5 * 0.8), "formality": (0.5 * (1 - 0.2), 0.5 * 0.2), "humor": (0.0, 0.0)}


def test_endpoints_and_base():
    assert Weights({"sentiment": 1}).coefficients(["sentiment"]) == {"sentiment": (0.0, 1.0)}
    assert Weights({"sentiment": 0}).coefficients(["sentiment"]) == {"sentiment": (1.0, 0.0)}
    assert Weights.base().coefficients(["sentiment"]) == {"sentiment": (0.0, 0.0)}
    assert Weights.base().is_base and str(Weights.base()) == "base"


def test_explicit_lambda_and_free_lambda():
    w = Weights({"a": 1, "b": 0}, lam={"a": 0.8, "b": 0.2})
    assert w.coefficients(["a", "b"]) == {"a": (0.0, 0.8), "b": (0.2, 0.0)}
    free = Weights({"a": 1}, lam={"a": 2.0}, simplex=False)
    assert free.coefficients(["a"]) == {"a": (0.0, 2.0)}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(alpha={"a": float("nan")}), "alpha['a'] must be finite"),
        (dict(alpha={"a": float("inf")}), "alpha['a'] must be finite"),
        (dict(alpha={"a": "high"}), "alpha['a'] must be a number"),
        (dict(alpha={"a": None}), "alpha['a'] must be a number"),
        (dict(alpha={"a": True}), "alpha['a'] must be a number"),
        (dict(alpha={"a": 1.5}), "alpha['a']=1.5 is outside [0, 1]"),
        (dict(alpha={"a": -0.1}), "alpha['a']=-0.1 is outside [0, 1]"),
        (dict(alpha={"a": 2.5}, extrapolate=True), "alpha['a']=2.5 is outside the extrapolation bounds"),
        (dict(alpha={"a": 1, "b": 0}, lam={"a": -0.5, "b": 1.5}), "lam['a']=-0.5 is negative"),
        (dict(alpha={"a": 1, "b": 0}, lam={"a": 0, "b": 0}, simplex=False), "lam is all zero"),
        (dict(alpha={"a": 1, "b": 0}, lam={"a": 0.5, "b": 0.6}), "lam sums to 1.1"),
        (dict(alpha={"a": 1}, lam={"a": float("nan")}), "lam['a'] must be finite"),
        (dict(alpha={"a": 1}, lam={"a": "x"}), "lam['a'] must be a number"),
        (dict(alpha={"a": 1}, lam={"b": 1}), "lam['b'] is given but alpha has no 'b'"),
        (dict(alpha={"a": 1, "b": 1}, lam={"a": 1}), "lam has no value for 'b'"),
        (dict(alpha={"a": 0.5}, bounds=(0.5, 2)), "bounds must be"),
        (dict(alpha={"": 0.5}), "attribute name"),
    ],
)
def test_bad_weights_raise_one_line_errors(kwargs, fragment):
    with pytest.raises(WeightsError) as err:
        Weights(**kwargs)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_extrapolation_band():
    assert Weights({"a": 2.0}, extrapolate=True).coefficients(["a"]) == {"a": (-1.0, 2.0)}
    assert Weights({"a": -1.0}, extrapolate=True).alpha["a"] == -1.0
    wide = Weights({"a": 3.0}, extrapolate=True, bounds=(-2, 3))
    assert wide.coefficients(["a"])["a"] == (-2.0, 3.0)


def test_unknown_attribute_is_named():
    with pytest.raises(WeightsError, match="unknown attribute 'humour'; the endpoints have: sentiment, humor"):
        Weights({"humour": 0.5}).coefficients(["sentiment", "humor"])


def test_parse_print_json_roundtrip():
    w = Weights.parse("sentiment=0.8,formality=0.2")
    assert w == Weights({"sentiment": 0.8, "formality": 0.2})
    assert str(w) == "sentiment=0.8,formality=0.2"
    x = Weights({"a": 1.5, "b": 0.25}, lam={"a": 0.75, "b": 0.25}, extrapolate=True, bounds=(-2, 3))
    assert Weights.parse(str(x)) == x and str(Weights.parse(str(x))) == str(x)
    assert Weights.from_json(x.to_json()) == x
    assert Weights.parse("base") == Weights.base() == Weights.parse("")
    assert repr(w) == "Weights('sentiment=0.8,formality=0.2')"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("sentiment", "cannot parse 'sentiment'"),
        ("sentiment=abc", "alpha['sentiment'] must be a number, got 'abc'"),
        ("sentiment=0.5,sentiment=0.2", "appears twice"),
        ("sentiment=0.5@1,formality=0.5", "lam has no value for 'formality'"),
        ("sentiment=0.5;fast", "unknown option 'fast'"),
        ("sentiment=nan", "must be finite"),
    ],
)
def test_parse_errors(text, fragment):
    with pytest.raises(WeightsError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        Weights.parse(text)


def test_value_semantics():
    a = Weights({"x": 0.5, "y": 1.0})
    b = Weights({"y": 1.0, "x": 0.5}, lam={"x": 0.5, "y": 0.5})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Weights({"x": 0.5, "y": 0.9})
    with pytest.raises(AttributeError):
        a.alpha = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.alpha["x"] = 1.0  # type: ignore[index]
    assert a.replace(alpha={"x": 1.0, "y": 1.0}).alpha["x"] == 1.0


def test_weights_list_must_match_rows():
    assert as_weights_list("a=1", 3) == [Weights({"a": 1})] * 3
    with pytest.raises(WeightsError, match="got 2 weights for 3 rows"):
        as_weights_list(["a=1", "a=0"], 3)


def test_grid():
    g = grid(-1, 2, 0.25)
    assert len(g) == 13 and g[0] == -1.0 and g[-1] == 2.0 and 0.0 in g and 1.0 in g


@given(st.dictionaries(names, alphas, min_size=1, max_size=5), st.data())
def test_coefficients_are_affine_in_alpha_and_sum_to_lambda(alpha, data):
    lam_raw = {n: data.draw(st.floats(0.01, 1.0)) for n in alpha}
    total = sum(lam_raw.values())
    lam = {n: v / total for n, v in lam_raw.items()}
    try:
        w = Weights(alpha, lam=lam, extrapolate=True)
    except WeightsError as err:  # normalisation can miss the simplex by rounding
        assert "sums to" in str(err)
        return
    c = w.coefficients(list(alpha))
    for n, (lo, hi) in c.items():
        assert math.isclose(lo + hi, w.lam_resolved()[n], abs_tol=1e-12)
        assert math.isclose(hi, w.lam_resolved()[n] * alpha[n], abs_tol=1e-12)
    assert Weights.parse(str(w)) == w
