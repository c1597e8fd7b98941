"""Property-based fuzzing of the setting strings: ``Weights.parse`` and ``Schedule.parse``.

Every input, random text or a near-valid string built from attribute names, numbers (nan, inf,
huge, negative zero), separators and the options (``;extrapolate``, ``;bounds=lo:hi``,
``;free_lam``, ``@λ``), either parses to a value whose ``str()`` parses back to an equal value,
or raises a :class:`clm.errors.WeightsError` whose message is one line. Never another exception.

The example counts are :data:`EXAMPLES` (the table "Bad input, tried" in book/running.md).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clm.core.attributes import NAMES
from clm.core.schedule import Schedule
from clm.core.weights import Weights
from clm.errors import WeightsError

#: hypothesis examples per test below (the book counts EXAMPLES * N_TESTS fuzzed strings)
EXAMPLES = 300
N_TESTS = 4  # the @given tests of this file (checked by test_the_count_is_what_the_book_says)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # nan, inf, -0.0, 1e308, 5e-324 ...
    st.integers(-(10**400), 10**400).map(str),  # past float's range
    st.sampled_from(["nan", "-inf", "inf", "1e999", "-1e999", "0x1p3", "1_0", "", " ", ".", "-", "+", "1e", "٣", "½"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)
names = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(["", " ", "base", "Sentiment", "sentiment ", "2x", "a-b", "../x", "x/y", "λ", "__init__"]),
    st.text(max_size=8),
)
options = st.one_of(
    st.sampled_from(["extrapolate", "free_lam", "", "bounds=", "bounds=:", "bogus", "extrapolate=1"]),
    st.tuples(numbers, numbers).map(lambda lh: f"bounds={lh[0]}:{lh[1]}"),
    st.tuples(numbers, numbers, numbers).map(lambda t: f"bounds={t[0]}:{t[1]}:{t[2]}"),
)
separators = st.sampled_from([",", ", ", ",,", ";", " ", "\n", "\t", "=", "@", ">", ":"])


@st.composite
def weight_items(draw) -> str:
    item = f"{draw(names)}={draw(numbers)}"
    if draw(st.booleans()):
        item += f"@{draw(numbers)}"
    if draw(st.integers(0, 9)) == 0:  # a stray separator inside an item
        item = item.replace("=", draw(separators), 1)
    return item


@st.composite
def frames(draw) -> str:
    """A schedule's keyframes: ``t:α[@λ]`` joined by ``>``, or a bare α."""
    if draw(st.integers(0, 4)) == 0:
        return draw(numbers)
    out = []
    for _ in range(draw(st.integers(1, 4))):
        t = draw(st.one_of(st.integers(-3, 60).map(str), numbers))
        frame = f"{t}:{draw(numbers)}"
        if draw(st.booleans()):
            frame += f"@{draw(numbers)}"
        out.append(frame)
    return ">".join(out)


def _with_options(draw, body: str) -> str:
    opts = draw(st.lists(options, max_size=3))
    return body + "".join(";" + o for o in opts)


@st.composite
def near_valid_weights(draw) -> str:
    body = draw(st.sampled_from(["base", ""])) if draw(st.integers(0, 7)) == 0 else None
    if body is None:
        body = draw(separators.filter(lambda s: s in (",", ", "))).join(
            draw(st.lists(weight_items(), min_size=1, max_size=4))
        )
    return _with_options(draw, body)


@st.composite
def near_valid_schedules(draw) -> str:
    items = [f"{draw(names)}={draw(frames())}" for _ in range(draw(st.integers(1, 3)))]
    return _with_options(draw, ",".join(items))


def _check(parse, text: str) -> None:
    """``parse(text)`` round-trips through str(), or raises a one-line WeightsError."""
    try:
        value = parse(text)
    except WeightsError as err:
        msg = str(err)
        assert msg and "\n" not in msg and "\r" not in msg, f"{text!r}: multi-line message {msg!r}"
        return
    again = parse(str(value))
    assert again == value, f"{text!r} -> {str(value)!r} -> {str(again)!r}"
    assert str(again) == str(value)
    assert hash(again) == hash(value)


@FUZZ
@given(st.one_of(st.text(max_size=40), st.text(alphabet=",;=@:>.-+e0123456789nainf base", max_size=40)))
def test_weights_parse_random_text(text):
    _check(Weights.parse, text)


@FUZZ
@given(near_valid_weights())
def test_weights_parse_near_valid(text):
    _check(Weights.parse, text)


@FUZZ
@given(st.one_of(st.text(max_size=40), st.text(alphabet=",;=@:>.-+e0123456789nainf base", max_size=40)))
def test_schedule_parse_random_text(text):
    _check(Schedule.parse, text)


@FUZZ
@given(near_valid_schedules())
def test_schedule_parse_near_valid(text):
    _check(Schedule.parse, text)


def test_the_count_is_what_the_book_says():
    """4 fuzz tests x 300 examples = 1200 strings (book/running.md, "Bad input, tried")."""
    fuzz = [n for n, f in globals().items() if n.startswith("test_") and hasattr(f, "hypothesis")]
    assert len(fuzz) == N_TESTS and N_TESTS * EXAMPLES == 1200


def test_the_fuzzers_reach_both_outcomes():
    """The near-valid strings are not all rejected: some parse (and round-trip), some fail."""
    for parse, text in [
        (Weights.parse, "sentiment=0.5@1,formality=-0.0@2;extrapolate;bounds=-1e300:1e300;free_lam"),
        (Schedule.parse, "sentiment=0:0@2>47:1@1,humor=0.25@2;extrapolate;free_lam"),
    ]:
        value = parse(text)
        assert parse(str(value)) == value
    for parse, text in [(Weights.parse, "sentiment=nan"), (Schedule.parse, "sentiment=3:1>2:0")]:
        try:
            parse(text)
        except WeightsError:
            continue
        raise AssertionError(f"{text!r} parsed")
