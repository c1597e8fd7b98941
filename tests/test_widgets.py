"""The JupyterLab dial (clm.widgets.Dial), driven from code on pico: sliders set, Generate clicked,
the output equals ``im.generate`` at the same setting and seed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from test_control import synthetic_tables  # noqa: E402

from clm.core.weights import Weights  # noqa: E402
from clm.experiments.control import Controller  # noqa: E402
from clm.widgets import Dial  # noqa: E402


class LenScorer:
    def __init__(self, attribute: str, fail: bool = False):
        self.attribute, self.low, self.high, self.fail = attribute, "low", "high", fail

    def score(self, texts, batch_size=64, progress=None):
        if self.fail:
            raise ValueError("scorer broke\non two lines")
        return np.array([len(t) % 10 / 10 for t in texts])


@pytest.fixture()
def scorers():
    return {"sentiment": LenScorer("sentiment"), "formality": LenScorer("formality")}


def test_sliders_then_generate_equal_im_generate(im, scorers):
    dial = Dial(im, scorers, prompt="The cat")
    dial.on["sentiment"].value = True
    dial.alpha["sentiment"].value = 0.8
    dial.on["formality"].value = True
    dial.alpha["formality"].value = 0.3
    dial.lam_mode.value = "by hand"
    dial.lam["sentiment"].value, dial.lam["formality"].value = 0.6, 0.2
    dial.seed.value, dial.tokens.value, dial.samples.value = 5, 6, 2
    dial.button.click()
    w = Weights({"sentiment": 0.8, "formality": 0.3}, {"sentiment": 0.75, "formality": 0.25})
    ref = im.generate("The cat", weights=w, max_new_tokens=6, do_sample=True, seed=5, num_samples=2)
    assert [g.text for g in dial.results] == [g.text for g in ref]
    assert [g.token_ids for g in dial.results] == [g.token_ids for g in ref]
    assert all(g.weights == w for g in dial.results)
    for g in ref:  # each continuation whole, with its bars
        assert g.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in dial.output.value
    assert dial.output.value.count("width:120px") == 2 * 2 and "done" in dial.status.value
    assert dial.progress.value == dial.progress.max


def test_greedy_extrapolation_and_an_inactive_attribute(im, scorers):
    dial = Dial(im, scorers, prompt="Hello")
    dial.extrapolate.value = True
    dial.on["sentiment"].value = True
    dial.alpha["sentiment"].value = -0.5
    dial.alpha["formality"].value = 0.9  # its box is off: inactive, not α = 0.9
    dial.decoding.value, dial.tokens.value, dial.samples.value = "greedy", 5, 1
    dial.on_generate()
    w = Weights({"sentiment": -0.5}, extrapolate=True)
    assert dial.weights() == w
    ref = im.generate("Hello", weights=w, max_new_tokens=5, do_sample=False, seed=0, num_samples=1)
    assert [g.token_ids for g in dial.results] == [g.token_ids for g in ref]
    dial.extrapolate.value = False
    assert dial.alpha["sentiment"].value == 0.0 and dial.alpha["sentiment"].min == 0.0


def test_errors_are_one_line_in_the_widget(im):
    dial = Dial(im, {"sentiment": LenScorer("sentiment", fail=True)})
    dial.on["sentiment"].value = True
    dial.tokens.value = 2
    dial.on_generate()
    assert "error: ValueError: scorer broke on two lines" in dial.status.value and "\n" not in dial.status.value
    assert not dial.button.disabled and dial.mode.disabled  # no controller: no target mode


def test_target_mode_uses_the_controller(im, scorers):
    ctl = Controller.fit(synthetic_tables(), endpoints=im.endpoints)
    dial = Dial(im, scorers, controller=ctl, prompt="Once")
    shown = lambda sliders: [s.layout.display for s in sliders.values()]  # noqa: E731
    assert shown(dial.alpha) == ["", ""] and shown(dial.target) == ["none", "none"]  # each its own Layout
    dial.mode.value = "target score"
    assert shown(dial.alpha) == ["none", "none"] and shown(dial.target) == ["", ""]
    dial.on["sentiment"].value = True
    dial.target["sentiment"].value = 0.45
    dial.tokens.value, dial.samples.value = 4, 1
    dial.on_generate()
    assert dial.plan.weights == Weights({"sentiment": 0.5}) and dial.results[0].weights == Weights({"sentiment": 0.5})
    assert "predicted" in dial.info.value and "0.450" in dial.info.value
    ref = im.generate("Once", weights=Weights({"sentiment": 0.5}), max_new_tokens=4, seed=0, num_samples=1)
    assert dial.results[0].token_ids == ref[0].token_ids
