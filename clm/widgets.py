"""A dial in JupyterLab: turn α by hand (or ask for a score) and generate.

    dial = clm.widgets.Dial(im, scorers, controller=ctl)
    dial                                   # shows it in a notebook

One α slider per attribute of the endpoints, with an on/off box (off: the attribute is inactive,
not α = 0, which is its low pole); the band [0, 1] is marked and a toggle extends the sliders to
the stable band [−1, 2]. λ is automatic (1/n) or set by hand (normalised to sum to 1). The
"target score" mode asks the controller for the setting and shows its predicted scores and
intervals. Decoding: sampling or greedy, a seed, the number of tokens and of samples. Each
continuation is shown whole, with its score per attribute as bars; errors show as one line.

ipywidgets is imported when a dial is built, so ``import clm`` does not need it. Everything the
buttons do is a method (``weights()``, ``generate()``), so a dial can be driven from code.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from clm.core.weights import Weights
from clm.errors import ClmError

BAND_CSS = "linear-gradient(90deg, #eee 0 33.3%, #cde 33.3% 66.7%, #eee 66.7% 100%)"


def _bar(score: float) -> str:
    pct = 0.0 if score != score else max(0.0, min(1.0, score)) * 100
    return (
        f'<span style="display:inline-block;width:120px;height:10px;background:#eee;vertical-align:middle">'
        f'<span style="display:block;width:{pct:.0f}%;height:10px;background:#4a7"></span></span> {score:.2f}'
    )


class Dial:
    """An ipywidgets dial over an :class:`~clm.core.engine.InterpolatedModel`.

    Args:
        im: the model.
        scorers: attribute -> scorer (``.score(texts)``), e.g. :func:`clm.eval.scoring.load_scorers`.
        controller: a :class:`~clm.experiments.control.Controller` for the "target score" mode
            (checked against the model's endpoints); None disables that mode.
        prompt: the initial prompt.
    """

    def __init__(self, im: Any, scorers: Mapping[str, Any], controller: Any = None, prompt: str = "Once upon a time"):
        import ipywidgets as W

        self.im, self.scorers, self.controller = im, dict(scorers), controller
        if controller is not None:
            controller.check(im)
        self.results: list[Any] = []
        self.plan: Any = None
        self.attributes = list(im.attributes)
        self.prompt = W.Textarea(value=prompt, description="prompt", layout=W.Layout(width="520px", height="60px"))
        self.mode = W.ToggleButtons(options=["alpha", "target score"], value="alpha", description="mode")
        self.mode.disabled = controller is None
        self.on = {
            a: W.Checkbox(value=False, description=a, indent=False, layout=W.Layout(width="110px"))
            for a in self.attributes
        }
        self.alpha = {  # one Layout per slider: _refresh shows and hides each one on its own
            a: W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="α", layout=W.Layout(width="420px"))
            for a in self.attributes
        }
        self.target = {
            a: W.FloatSlider(
                value=0.5, min=0.0, max=1.0, step=0.01, description="target", layout=W.Layout(width="420px")
            )
            for a in self.attributes
        }
        self.lam = {
            a: W.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="λ", layout=W.Layout(width="260px"))
            for a in self.attributes
        }
        self.band = {a: W.HTML() for a in self.attributes}
        self.extrapolate = W.Checkbox(value=False, description="extrapolate to [-1, 2]", indent=False)
        self.lam_mode = W.ToggleButtons(options=["auto", "by hand"], value="auto", description="λ")
        self.max_ppl = W.BoundedFloatText(value=1.3, min=1.0, max=100.0, step=0.05, description="max ppl ×")
        self.decoding = W.ToggleButtons(options=["sample", "greedy"], value="sample", description="decoding")
        self.seed = W.IntText(value=0, description="seed")
        self.tokens = W.IntSlider(value=32, min=1, max=256, description="tokens")
        self.samples = W.IntSlider(value=2, min=1, max=8, description="samples")
        self.button = W.Button(description="Generate", button_style="primary")
        self.progress = W.IntProgress(value=0, min=0, max=3, description="", layout=W.Layout(width="200px"))
        self.status = W.HTML()
        self.info = W.HTML()
        self.output = W.HTML()
        self.button.on_click(self.on_generate)
        self.extrapolate.observe(self._on_extrapolate, names="value")
        for w in (*self.alpha.values(), self.extrapolate, self.mode, self.lam_mode, *self.on.values()):
            w.observe(self._refresh, names="value")
        rows = [W.HBox([self.on[a], self.alpha[a], self.target[a], self.lam[a], self.band[a]]) for a in self.attributes]
        self.widget = W.VBox(
            [self.prompt, self.mode, *rows, W.HBox([self.extrapolate, self.lam_mode, self.max_ppl]),
             W.HBox([self.decoding, self.seed]), W.HBox([self.tokens, self.samples]),
             W.HBox([self.button, self.progress, self.status]), self.info, self.output]
        )  # fmt: skip
        self._add_classes()
        self._refresh()

    def _add_classes(self) -> None:
        """Stable CSS classes (``clm-dial``, ``clm-dial-generate``, ``clm-dial-alpha-<attribute>``, ...),
        so a browser (tests/test_dial_browser.py) finds each control without counting boxes."""
        self.widget.add_class("clm-dial")
        for name in ("prompt", "mode", "extrapolate", "lam_mode", "max_ppl", "decoding", "seed", "tokens",
                     "samples", "button", "progress", "status", "info", "output"):  # fmt: skip
            getattr(self, name).add_class("clm-dial-" + ("generate" if name == "button" else name.replace("_", "-")))
        for kind in ("on", "alpha", "target", "lam", "band"):
            for a, w in getattr(self, kind).items():
                w.add_class(f"clm-dial-{kind}-{a}")

    # ------------------------------------------------------------------ state
    def _on_extrapolate(self, change: Any = None) -> None:
        lo, hi = (-1.0, 2.0) if self.extrapolate.value else (0.0, 1.0)
        for s in self.alpha.values():
            s.min, s.max = min(lo, s.min), max(hi, s.max)  # widen first, so the value is never clamped
            s.value = min(max(s.value, lo), hi)
            s.min, s.max = lo, hi

    def _refresh(self, change: Any = None) -> None:
        target_mode = self.mode.value == "target score"
        for a in self.attributes:
            on = self.on[a].value
            self.alpha[a].layout.display = "none" if target_mode else ""
            self.target[a].layout.display = "" if target_mode else "none"
            self.lam[a].layout.display = "" if (self.lam_mode.value == "by hand" and not target_mode) else "none"
            for w in (self.alpha[a], self.target[a], self.lam[a]):
                w.disabled = not on
            x = self.alpha[a].value
            pos = (x + 1.0) / 3.0 * 100
            self.band[a].value = (
                f'<div title="band [0, 1] shaded; α = {x:g}" style="position:relative;width:90px;height:10px;'
                f'background:{BAND_CSS};margin-top:10px"><div style="position:absolute;left:{pos:.0f}%;top:-2px;'
                f'width:2px;height:14px;background:{"#c33" if on else "#999"}"></div></div>'
            )

    def weights(self) -> Weights:
        """The setting the α sliders show (target mode: the controller's plan)."""
        active = [a for a in self.attributes if self.on[a].value]
        if self.mode.value == "target score":
            targets = {a: self.target[a].value for a in active}
            if not targets:
                raise ClmError("switch on at least one attribute to ask for a target score")
            self.plan = self.controller.weights_for(targets, max_ppl_ratio=self.max_ppl.value, clip=True)
            return self.plan.weights
        self.plan = None
        alpha = {a: self.alpha[a].value for a in active}
        lam = None
        if self.lam_mode.value == "by hand" and active:
            total = sum(self.lam[a].value for a in active)
            if total <= 0:
                raise ClmError("λ by hand: at least one active attribute needs λ > 0")
            lam = {a: round(self.lam[a].value / total, 10) for a in active}  # 0.75, not 0.7499999999999999
        return Weights(alpha, lam, extrapolate=any(not 0.0 <= x <= 1.0 for x in alpha.values()))

    def generate_kwargs(self) -> dict[str, Any]:
        """The keywords for ``im.generate`` that the decoding controls show."""
        return {
            "max_new_tokens": int(self.tokens.value), "do_sample": self.decoding.value == "sample",
            "seed": int(self.seed.value), "num_samples": int(self.samples.value),
        }  # fmt: skip

    # ------------------------------------------------------------------ running
    def generate(self) -> list[Any]:
        """Generate at the current setting, score, and render; returns the generations."""
        from clm.eval.scoring import score_texts

        self.progress.value, self.status.value = 0, "generating…"
        w = self.weights()
        self.info.value = self._plan_html(w)
        self.progress.value = 1
        gens = self.im.generate(self.prompt.value, weights=w, **self.generate_kwargs())
        self.progress.value, self.status.value = 2, "scoring…"
        scores = score_texts([g.text for g in gens], self.scorers, progress=False) if self.scorers else None
        self.results = gens
        self.output.value = self._render(gens, scores)
        self.progress.value, self.status.value = 3, f"done: {len(gens)} continuation(s) at {html.escape(str(w))}"
        return gens

    def on_generate(self, button: Any = None) -> None:
        """The Generate button's handler: any error becomes one line in the widget."""
        self.button.disabled = True
        try:
            self.generate()
        except Exception as err:  # shown, not raised: a widget callback has no caller to catch it
            line = " ".join(str(err).split()) or type(err).__name__
            kind = "" if isinstance(err, ClmError) else f"{type(err).__name__}: "
            self.status.value = f'<span style="color:#c33">error: {html.escape(kind + line)}</span>'
            self.progress.value = 0
        finally:
            self.button.disabled = False

    def _plan_html(self, w: Weights) -> str:
        if self.plan is None:
            return f"setting: <code>{html.escape(str(w))}</code>"
        p = self.plan
        rows = "".join(
            f"<tr><td>{a}</td><td>{p.predicted[a]:.3f}</td><td>[{p.interval[a][0]:.3f}, {p.interval[a][1]:.3f}]</td>"
            f"<td>{p.targets.get(a, float('nan')):.2f}</td></tr>"
            for a in p.predicted
        )
        note = f"<br><i>{html.escape(p.message)}</i>" if p.clipped else ""
        return (
            f"setting: <code>{html.escape(str(w))}</code>, predicted ppl ×{p.ppl_ratio:.2f}{note}"
            f"<table><tr><th>attribute</th><th>predicted</th><th>interval</th><th>target</th></tr>{rows}</table>"
        )

    def _render(self, gens: list[Any], scores: Any) -> str:
        parts = []
        for k, g in enumerate(gens):
            bars = ""
            if scores is not None:
                bars = "<br>".join(f"{a:>10} {_bar(float(scores[f'score_{a}'].iloc[k]))}" for a in self.scorers)
            parts.append(
                f'<div style="margin:6px 0;padding:6px;border-left:3px solid #4a7"><span style="color:#777">'
                f"{html.escape(g.prompt)}</span><b>{html.escape(g.text)}</b>"
                f'<div style="font-family:monospace;font-size:11px;white-space:pre">{bars}</div></div>'
            )
        return "".join(parts)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
