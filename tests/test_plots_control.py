"""clm.plots.control: the control chapter's figures, drawn (Agg) from small synthetic tables and
checked as the book shows them (:func:`tests.test_plots.assert_readable`: 6.8 in wide, at most
three panels a row, no font under 8 pt, no legend over data, the attributes' fixed colours)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from clm import plots  # noqa: E402
from clm.errors import ConfigError  # noqa: E402
from clm.plots import control  # noqa: E402
from tests.test_plots import check  # noqa: E402

ATTRS = ["sentiment", "formality", "humor", "politeness"]


def fake_curves(attrs=ATTRS) -> dict[str, pd.DataFrame]:
    alpha = np.array([-1, -0.5, 0, 0.25, 0.5, 0.75, 1, 1.5, 2])
    out = {}
    for i, a in enumerate(attrs):
        fit = 0.2 + 0.5 / (1 + np.exp(-2 * (alpha - 0.5))) + 0.02 * i
        mean = fit + np.random.default_rng(i).normal(0, 0.02, len(alpha))
        out[a] = pd.DataFrame({"alpha": alpha, "mean": mean, "fit": fit, "lo": fit - 0.04, "hi": fit + 0.04})
    return out


def fake_achieved(attrs=ATTRS[:3], methods=("joint", "naive"), n=5) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for j, m in enumerate(methods):
        for a in attrs:
            for k, t in enumerate(np.linspace(0.3, 0.7, n)):
                got = t + (0.05 * j) + rng.normal(0, 0.01)
                rows.append(dict(plan=k, method=m, attribute=a, requested=t, achieved=got, se=0.01,
                                 lo=t - 0.04, hi=t + 0.04))  # fmt: skip
    return pd.DataFrame(rows)


def _hex(c) -> str:
    return mcolors.to_hex(c)


def test_control_curves(tmp_path):
    curves = fake_curves()
    targets = {"sentiment": [0.3, 0.5, 0.6], "humor": [0.4]}
    fig = plots.control_curves(curves, targets=targets)
    check_layout = [ax.get_subplotspec().rowspan.start for ax in fig.axes]
    assert check_layout == [0, 0, 1, 1]  # four panels: two a row
    ax = fig.axes[0]
    assert ax.get_title() == "sentiment" and ax.get_xlabel() == "α (sentiment)" and ax.get_ylabel() == "P(positive)"
    assert len(ax.patches) == 3 and sum(bool(p.get_hatch()) for p in ax.patches) == 2  # [0, 1] plain, both sides hatched
    fit, dots = ax.lines[0], ax.lines[1]
    assert fit.get_ydata().tolist() == pytest.approx(curves["sentiment"].fit.tolist())
    assert dots.get_ydata().tolist() == pytest.approx(curves["sentiment"]["mean"].tolist()) and dots.get_ls() == "None"
    assert _hex(fit.get_color()) == _hex(plots.ATTRIBUTE_COLORS["sentiment"])
    ticks = [c for c in ax.collections if c not in ax.collections[:1]]  # after the bootstrap band
    assert [len(c.get_segments()) for c in ticks] == [3]
    assert sorted(s[0][1] for s in ticks[0].get_segments()) == pytest.approx([0.3, 0.5, 0.6])
    assert len(fig.axes[1].collections) == 1  # formality: no targets, only the band
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "requested scores (right edge)" in texts and texts[-1] == "hatched: extrapolation"
    check(fig, tmp_path, "control_curves", n_axes=4, attributes=ATTRS)
    five = fake_curves(ATTRS + ["simplicity"])  # no targets: no tick entry; the legend in the spare sixth slot
    fig = plots.control_curves(five)
    assert [ax.get_subplotspec().rowspan.start for ax in fig.axes] == [0, 0, 0, 1, 1, 1]
    assert fig.axes[5].get_legend() is not None and not fig.axes[5].axison and not fig.legends
    assert "requested scores (right edge)" not in [t.get_text() for t in fig.axes[5].get_legend().get_texts()]
    check(fig, tmp_path, "control_curves_five", n_axes=5, attributes=list(five))
    with pytest.raises(ConfigError, match="no curves"):
        plots.control_curves({})


def test_requested_vs_achieved(tmp_path):
    df = fake_achieved()
    fig = plots.requested_vs_achieved(df)
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ATTRS[:3]
    for ax, a in zip(panels, ATTRS[:3]):
        assert ax.get_xlim() == ax.get_ylim()  # one range on both axes
        d = df[df.attribute == a]
        lo, hi = ax.get_xlim()
        assert lo < min(d.requested.min(), (d.achieved - 1.96 * d.se).min(), d.lo.min())
        assert hi > max(d.requested.max(), (d.achieved + 1.96 * d.se).max(), d.hi.max())
        assert hi - lo < 1.2 * (max(d.hi.max(), d.achieved.max() + 0.02) - min(d.lo.min(), d.achieved.min() - 0.02))
        want = [f"MAE {m} {np.mean(np.abs(g.achieved - g.requested)):.3f}" for m, g in d.groupby("method", sort=False)]
        assert sorted(t.get_text() for t in ax.texts) == sorted(want)
    # the MAE notes sit in a corner free of data (the points are near or below the diagonal here)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in panels:
        pts = ax.transData.transform(np.c_[np.concatenate([ln.get_xdata() for ln in ax.lines[1:]]),
                                           np.concatenate([ln.get_ydata() for ln in ax.lines[1:]])])  # fmt: skip
        for t in ax.texts:
            bb = t.get_window_extent(r)
            assert not any(bb.contains(x, y) for x, y in pts), t.get_text()
            assert ax.bbox.contains(bb.x0, bb.y0) and ax.bbox.contains(bb.x1, bb.y1)
    # a marker and a colour per method; the legend below names them
    joint, naive = panels[0].lines[1], panels[0].lines[2]
    assert (joint.get_marker(), naive.get_marker()) == ("o", "s")
    assert (_hex(joint.get_color()), _hex(naive.get_color())) == tuple(_hex(c) for c in plots.SERIES_COLORS[:2])
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == ["joint", "naive"]
    check(fig, tmp_path, "requested_vs_achieved", n_axes=3)
    one = df[df.method == "joint"].drop(columns="method")
    fig = plots.requested_vs_achieved(one)  # one method: "MAE 0.0xx", no method entries
    assert [t.get_text() for t in fig.axes[0].texts] == [
        f"MAE {np.mean(np.abs(one[one.attribute == 'sentiment'].eval('achieved - requested'))):.3f}"
    ]
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == "achieved mean ± 1.96 s.e."
    check(fig, tmp_path, "requested_vs_achieved_one", n_axes=3)


def test_mae_goes_to_the_emptier_corner():
    above = pd.DataFrame(dict(attribute="humor", requested=[0.2, 0.3, 0.4], achieved=[0.5, 0.6, 0.7], se=0.01,
                              lo=0.1, hi=0.75))  # fmt: skip
    fig = plots.requested_vs_achieved(above)
    (note,) = fig.axes[0].texts
    assert note.get_ha() == "right" and note.xy == (1.0, 0.0)  # the points fill the upper left
    fig = plots.requested_vs_achieved(above.assign(requested=above.achieved, achieved=above.requested))
    assert fig.axes[0].texts[0].get_ha() == "left" and fig.axes[0].texts[0].xy == (0.0, 1.0)
    both = pd.DataFrame(dict(attribute="humor", requested=[0.1, 0.15, 0.9, 0.85, 0.5], achieved=[0.9, 0.85, 0.1, 0.15, 0.5],
                             se=0.01, lo=0.05, hi=0.95))  # fmt: skip
    fig = plots.requested_vs_achieved(both)  # both corners hold data: the MAE goes under the title
    mae = np.mean(np.abs(both.achieved - both.requested))
    assert list(fig.axes[0].texts) == [] and fig.axes[0].get_title() == f"humor\nMAE {mae:.3f}"
    plt.close("all")


def test_joint_grid(tmp_path):
    df = fake_achieved(attrs=["sentiment", "formality"], n=4)
    df = pd.concat([df, df[df.attribute == "sentiment"].assign(attribute="humor")])  # a third attribute, ignored
    fig = plots.joint_grid(df, ("sentiment", "formality"))
    (ax,) = fig.axes
    assert ax.get_xlabel() == "sentiment: P(positive)" and ax.get_ylabel() == "formality: P(formal)"
    assert _hex(ax.xaxis.label.get_color()) == _hex(plots.ATTRIBUTE_COLORS["sentiment"])
    assert _hex(ax.yaxis.label.get_color()) == _hex(plots.ATTRIBUTE_COLORS["formality"])
    requested = [ln for ln in ax.lines if ln.get_marker() == "s" and ln.get_markerfacecolor() == "none"]
    assert len(requested) == 1 and len(requested[0].get_xdata()) == 4  # both methods asked for the same 4 pairs
    achieved = [ln for ln in ax.lines if ln not in requested]
    assert [len(ln.get_xdata()) for ln in achieved] == [4, 4]
    j = df[(df.method == "joint") & (df.attribute == "formality")].sort_values("plan")
    assert achieved[0].get_ydata().tolist() == pytest.approx(j.achieved.tolist())
    assert len(ax.texts) == 8  # one arrow per (plan, method)
    assert ax.get_xlim() == ax.get_ylim()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["requested", "joint: achieved", "naive: achieved"]
    check(fig, tmp_path, "joint_grid", n_axes=1)
    with pytest.raises(ConfigError, match="exactly 2"):
        plots.joint_grid(df, ("sentiment",))
    with pytest.raises(ConfigError, match="no plan"):
        plots.joint_grid(df, ("sentiment", "simplicity"))


def test_schedule_arc(tmp_path):
    pos = np.arange(8, 65, 8)
    rows = [dict(label=lab, position=p, mean=m, lo=m - 0.05, hi=m + 0.05)
            for lab, f in (("arc 0→1", lambda p: 0.2 + 0.6 * p / 64), ("α = 0", lambda p: 0.2), ("α = 1", lambda p: 0.8))
            for p in pos for m in [f(p)]]  # fmt: skip
    df = pd.DataFrame(rows)
    sched = pd.DataFrame(dict(position=np.arange(65), alpha=np.arange(65) / 64))
    fig = plots.schedule_arc(df, schedule=sched)
    ax, twin = fig.axes
    assert ax.get_ylabel() == "P(positive)" and twin.get_ylabel() == "scheduled α"
    assert [len(ln.get_xdata()) for ln in ax.lines] == [len(pos)] * 3 and len(ax.collections) == 3
    assert twin.lines[0].get_ydata().tolist() == pytest.approx(sched.alpha.tolist()) and twin.lines[0].get_ls() == "--"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "arc 0→1", "α = 0", "α = 1", "scheduled α (right axis)", "band: 95% CI"
    ]  # fmt: skip
    check(fig, tmp_path, "schedule_arc", n_axes=2)
    fig = plots.schedule_arc(df, attribute="humor", labels=["α = 1", "arc 0→1"])
    assert fig.axes[0].get_ylabel() == "P(humorous)" and len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
    assert _hex(fig.axes[0].lines[0].get_color()) == _hex(plots.SERIES_COLORS[0])
    check(fig, tmp_path, "schedule_arc_plain", n_axes=1)


def test_square_limits_cover_the_data():
    lo, hi = control.square_limits([0.2, 0.5, 0.8])
    assert lo < 0.2 and hi > 0.8 and hi - lo == pytest.approx(0.6 * 1.12)
    assert control.square_limits([np.nan]) == (0.0, 1.0)
