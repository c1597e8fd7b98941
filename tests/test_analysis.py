"""clm.experiments.analysis and .geometry against hand-computed values on synthetic tables and
synthetic LoRA factors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import clm
from clm.core.endpoints import LoraFactors
from clm.core.lora import delta_weight
from clm.experiments import analysis, designs, geometry

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]


def synthetic_table(noise: float = 0.05) -> pd.DataFrame:
    """Single-attribute sweeps of sentiment and formality with known linear effects.

    Varying sentiment: score_sentiment = 0.2 + 0.6 α, score_formality = 0.5 + 0.3 α.
    Varying formality: score_formality = 0.1 + 0.8 α, score_sentiment = 0.4 − 0.2 α.
    Each α has 4 samples at mean ± noise, so the mean per α is exact.
    """
    rows = []
    effects = {
        "sentiment": {"sentiment": (0.2, 0.6), "formality": (0.5, 0.3)},
        "formality": {"formality": (0.1, 0.8), "sentiment": (0.4, -0.2)},
    }
    for target, eff in effects.items():
        other = "formality" if target == "sentiment" else "sentiment"
        for a in [-1.0, *ALPHAS, 2.0]:
            for k, d in enumerate([-noise, noise, -2 * noise, 2 * noise]):
                rows.append(
                    {
                        "design": "single",
                        "target": target,
                        f"alpha_{target}": a,
                        f"alpha_{other}": np.nan,
                        "sample": k,
                        **{f"score_{j}": c + s * a + d for j, (c, s) in eff.items()},
                    }
                )
    return pd.DataFrame(rows)


def test_spearman_and_linear_fit_by_hand():
    assert analysis.spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert analysis.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # ranks x = 1,2,3,4; y = 1, 2.5, 2.5, 4 (a tie): Pearson of ranks = 4.5 / sqrt(5 * 4.5)
    assert analysis.spearman([1, 2, 3, 4], [1, 5, 5, 9]) == pytest.approx(4.5 / math.sqrt(5 * 4.5))
    assert math.isnan(analysis.spearman([1, 2, 3], [7, 7, 7]))
    assert math.isnan(analysis.spearman([0, 1], [0.2, 0.9]))  # 2 points: ρ is always ±1, not a finding
    slope, intercept, r2 = analysis.linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
    # y = 0, 1, 0, 1 on x = 0..3: slope 0.2, intercept 0.2, R² = 1 - 0.8/1 = 0.2
    assert analysis.linear_fit([0, 1, 2, 3], [0, 1, 0, 1]) == pytest.approx((0.2, 0.2, 0.2))


def test_bootstrap_ci_is_seeded_and_degenerates_on_constants():
    v = np.random.default_rng(1).normal(size=200)
    assert analysis.bootstrap_ci(v, seed=3) == analysis.bootstrap_ci(v, seed=3)
    lo, hi = analysis.bootstrap_ci(v, seed=3)
    assert lo < v.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * v.std() / math.sqrt(200), rel=0.25)
    assert analysis.bootstrap_ci([0.3] * 5) == pytest.approx((0.3, 0.3))
    assert analysis.bootstrap_ci(v, stat=np.median, seed=0)[0] < np.median(v)


def test_response_curve_means_and_cis():
    t = synthetic_table()
    r = analysis.response(t, "sentiment")
    assert r.alpha.tolist() == [-1.0, *ALPHAS, 2.0]
    assert r["mean"].to_numpy() == pytest.approx(0.2 + 0.6 * r.alpha.to_numpy())
    assert (r.lo <= r["mean"]).all() and (r["mean"] <= r.hi).all() and (r.n == 4).all()
    assert analysis.mean_by_alpha(t, "sentiment") == pytest.approx(
        {f"{a:g}": 0.2 + 0.6 * a for a in [-1.0, *ALPHAS, 2.0]}
    )
    assert list(analysis.mean_by_alpha(t, "sentiment"))[:3] == ["-1", "0", "0.25"]
    cross = analysis.response(t, "sentiment", score="formality")
    assert cross["mean"].to_numpy() == pytest.approx(0.5 + 0.3 * cross.alpha.to_numpy())
    flat = analysis.response(synthetic_table(noise=0.0), "formality")
    assert flat.lo.to_numpy() == pytest.approx(flat["mean"].to_numpy())
    assert flat.hi.to_numpy() == pytest.approx(flat["mean"].to_numpy())


def test_predictability_of_perfectly_linear_data():
    p = analysis.predictability(synthetic_table()).set_index("attribute")
    assert list(p.index) == ["sentiment", "formality"]
    assert p.loc["sentiment", ["rho", "r2", "slope", "range"]].tolist() == pytest.approx([1.0, 1.0, 0.6, 0.6])
    assert p.loc["formality", ["rho", "r2", "slope", "range"]].tolist() == pytest.approx([1.0, 1.0, 0.8, 0.8])
    assert (p.n_alpha == 5).all() and (p.n == 20).all()  # only α in [0, 1]
    for s in ("slope", "range"):
        assert (p[f"{s}_lo"] <= p[s]).all() and (p[s] <= p[f"{s}_hi"]).all()
    exact = analysis.predictability(synthetic_table(noise=0.0)).set_index("attribute")
    assert exact.loc["sentiment", ["range_lo", "range_hi", "rho_lo", "r2_hi"]].tolist() == pytest.approx(
        [0.6, 0.6, 1.0, 1.0]
    )
    wide = analysis.predictability(synthetic_table(), interval=(-1, 2)).set_index("attribute")
    assert wide.loc["sentiment", "range"] == pytest.approx(1.8) and (wide.n_alpha == 7).all()


def test_predictability_by_lambda_groups():
    t = synthetic_table()
    t["lam_sentiment"] = np.where(t["sample"] < 2, 0.8, 0.2)
    p = analysis.predictability(t, ["sentiment"], by="lam_sentiment")
    assert p.lam_sentiment.tolist() == [0.2, 0.8] and p.slope.tolist() == pytest.approx([0.6, 0.6])


def test_entanglement_matrix_with_known_slopes():
    raw = analysis.entanglement(synthetic_table(), normalize=False)
    assert raw.loc["sentiment"].tolist() == pytest.approx([0.6, 0.3])
    assert raw.loc["formality"].tolist() == pytest.approx([-0.2, 0.8])
    m = analysis.entanglement(synthetic_table())
    assert m.loc["sentiment", "sentiment"] == m.loc["formality", "formality"] == 1.0
    assert m.loc["sentiment", "formality"] == pytest.approx(0.5)
    assert m.loc["formality", "sentiment"] == pytest.approx(-0.25)
    flat = synthetic_table()
    flat.loc[flat.target == "formality", "score_formality"] = 0.5  # α_formality moves nothing
    assert analysis.entanglement(flat).loc["formality"].isna().all()


def test_strongest_pairs_are_the_largest_off_diagonal_entries():
    m = analysis.entanglement(synthetic_table())
    raw = analysis.entanglement(synthetic_table(), normalize=False)
    pairs = analysis.strongest_pairs(m, raw, 5)
    assert pairs[["alpha of", "score of"]].values.tolist() == [["sentiment", "formality"], ["formality", "sentiment"]]
    assert pairs.E.tolist() == pytest.approx([0.5, -0.25]) and pairs.raw_slope.tolist() == pytest.approx([0.3, -0.2])
    assert len(analysis.strongest_pairs(m, raw, 1)) == 1


def test_curve_from_recorded_means():
    c = analysis.curve_from_means({-1.0: 0.9, 0.0: 0.2, 0.5: 0.3, 1.0: 0.6, 2.0: 0.0})
    assert c["rho"] == pytest.approx(1.0) and (c["lo"], c["hi"]) == (0.2, 0.6) and c["range"] == pytest.approx(0.4)
    assert math.isnan(analysis.curve_from_means({0.0: 0.3, 0.5: 0.3, 1.0: 0.3})["rho"])  # flat: undefined
    gap = analysis.curve_from_means({0.0: 0.3, 0.5: 0.4})  # no α = 1 on the grid; 2 points: no ρ
    assert gap["range"] is None and gap["hi"] is None and math.isnan(gap["rho"])
    assert analysis.curve_from_means({2.0: 0.3}) == {"rho": None, "lo": None, "hi": None, "range": None}


def test_simplex_corners_and_means():
    attrs = ["a", "b", "c"]
    rows = []
    for lam in ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]):
        for k in range(2):  # score_x = 0.1 + λ_x + 0.01·k: highest at its own corner
            rows.append(
                {
                    **{f"lam_{a}": v for a, v in zip(attrs, lam)},
                    **{f"score_{a}": 0.1 + v + 0.01 * k for a, v in zip(attrs, lam)},
                }
            )
    t = pd.DataFrame(rows)
    corners = analysis.simplex_corners(t, attrs)
    assert list(corners.index) == attrs and list(corners.columns) == ["score_a", "score_b", "score_c"]
    assert corners.to_numpy() == pytest.approx(0.105 + np.eye(3))
    assert [corners[f"score_{a}"].idxmax() for a in attrs] == attrs
    means = analysis.simplex_means(t, attrs)
    assert len(means) == 4 and means[0] == pytest.approx(
        {"lam_a": 0.0, "lam_b": 0.0, "lam_c": 1.0, "score_a": 0.105, "score_b": 0.105, "score_c": 1.105}
    )


# ---------------------------------------------------------------------- geometry
def factors(seed: int, modules: dict[str, tuple[int, int]], r: int, scale: float) -> dict[str, LoraFactors]:
    g = torch.Generator().manual_seed(seed)
    return {
        m: LoraFactors(torch.randn(r, d_in, generator=g), torch.randn(d_out, r, generator=g), scale)
        for m, (d_out, d_in) in modules.items()
    }


def flat(f: dict[str, LoraFactors], modules: list[str], shapes: dict[str, tuple[int, int]]) -> torch.Tensor:
    """One endpoint as the explicit vector of every module's ΔW (zeros where not adapted)."""
    parts = [
        delta_weight(f[m].A.double(), f[m].B.double(), f[m].scale).flatten()
        if m in f
        else torch.zeros(shapes[m][0] * shapes[m][1], dtype=torch.float64)
        for m in modules
    ]
    return torch.cat(parts)


def test_gram_cosines_and_distances_equal_explicit_flattened_deltas():
    shapes = {"l0.q": (6, 5), "l0.v": (4, 5), "l1.q": (6, 5)}
    sets = {
        "s/low": factors(1, shapes, r=2, scale=2.0),
        "s/high": factors(2, {"l0.q": (6, 5), "l1.q": (6, 5)}, r=3, scale=0.5),  # no l0.v
        "f/low": factors(3, shapes, r=1, scale=1.0),
        "f/high": factors(4, shapes, r=4, scale=1.5),
    }
    G = geometry.endpoint_gram(sets)
    V = torch.stack([flat(f, sorted(shapes), shapes) for f in sets.values()])  # (K, D)
    assert G.to_numpy() == pytest.approx((V @ V.T).numpy(), rel=1e-10)
    cos = geometry.cosine_matrix(G).to_numpy()
    assert cos == pytest.approx(torch.nn.functional.cosine_similarity(V[:, None], V[None], dim=-1).numpy(), rel=1e-9)
    dist = geometry.distance_matrix(G).to_numpy()
    assert dist == pytest.approx(torch.cdist(V, V).numpy(), rel=1e-9, abs=1e-9)
    assert np.diag(cos) == pytest.approx(1.0) and np.diag(dist) == pytest.approx(0.0, abs=1e-6)
    per = geometry.endpoint_gram(sets, per_module=True)
    assert len(per) == 3 * 10  # 3 modules x 10 pairs (with the diagonal)
    total = per.groupby(["first", "second"]).inner.sum()
    assert total[("s/low", "f/high")] == pytest.approx(G.loc["s/low", "f/high"])
    q = per[(per.module == "l1.q") & (per["first"] == "s/low") & (per.second == "f/low")].iloc[0]
    a, b = (
        delta_weight(sets[k]["l1.q"].A.double(), sets[k]["l1.q"].B.double(), sets[k]["l1.q"].scale).flatten()
        for k in ("s/low", "f/low")
    )
    assert q.cosine == pytest.approx(float(a @ b / a.norm() / b.norm())) and q.distance == pytest.approx(
        float((a - b).norm())
    )
    assert per[(per.module == "l0.v") & (per["first"] == "s/high")].cosine.isna().all()
    # the dials' directions d = ΔW_high − ΔW_low, from the Gram matrix alone
    D = torch.stack([V[1] - V[0], V[3] - V[2]])  # (2, D)
    dirs = geometry.direction_gram(G, ["s", "f"])
    assert list(dirs.index) == list(dirs.columns) == ["s", "f"]
    assert dirs.to_numpy() == pytest.approx((D @ D.T).numpy(), rel=1e-9)
    only_v = geometry.endpoint_gram(sets, modules=r"\.v$")
    assert only_v.loc["s/high"].abs().max() == 0.0  # it does not adapt l0.v
    # an endpoint that is another's exact multiple has cosine 1 and distance |c1 - c2| ‖ΔW‖
    twice = {
        "a/low": sets["f/low"],
        "a/high": {m: LoraFactors(f.A, f.B, 2 * f.scale) for m, f in sets["f/low"].items()},
    }
    G2 = geometry.endpoint_gram(twice)
    assert geometry.cosine_matrix(G2).loc["a/low", "a/high"] == pytest.approx(1.0)
    assert geometry.distance_matrix(G2).loc["a/low", "a/high"] == pytest.approx(math.sqrt(G2.loc["a/low", "a/low"]))


def test_interpolated_points_and_mds_are_exact(endpoints_dir):
    ends = clm.Endpoints.load(endpoints_dir)
    G = geometry.endpoint_gram(ends)
    assert list(G.index) == ["sentiment/low", "sentiment/high", "formality/low", "formality/high"]
    # α = 0 and α = 1 of one attribute are its endpoints
    P = geometry.point_gram(G, ["sentiment=0", "sentiment=1", "formality=1"])
    assert P.loc["sentiment=0", "sentiment=0"] == pytest.approx(G.loc["sentiment/low", "sentiment/low"])
    assert P.loc["sentiment=1", "formality=1"] == pytest.approx(G.loc["sentiment/high", "formality/high"])
    # points along one attribute's α are collinear and evenly spaced: MDS puts them on a line
    alphas = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    emb = geometry.mds_embedding(G, designs.single_attribute("sentiment", alphas), base=False)
    xy = emb[["x", "y"]].to_numpy()
    assert np.abs(xy[:, 1]).max() == pytest.approx(0.0, abs=1e-6)
    step = geometry.distance_matrix(G).loc["sentiment/low", "sentiment/high"] * 0.5
    assert np.diff(np.sort(xy[:, 0])) == pytest.approx(np.full(6, step), rel=1e-6)
    assert emb.alpha_sentiment.tolist() == alphas and "base" not in emb.setting.tolist()
    # classical MDS reproduces Euclidean distances of a planar point set
    pts = np.array([[0, 0], [3, 0], [0, 4], [1, 1]], dtype=float)
    D = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    X = geometry.classical_mds(D)
    assert np.linalg.norm(X[:, None] - X[None], axis=-1) == pytest.approx(D, abs=1e-9)
    both = geometry.mds_embedding(G, designs.simplex(["sentiment", "formality"], step=0.5))
    assert both.setting.tolist()[-1] == "base" and len(both) == 4
