"""Weight-space geometry of the endpoints, from their LoRA factors (ΔW = s·B·A per module, never
materialised; Kangaslahti & Alvarez-Melis, 2025, §6):

- :func:`endpoint_gram`: the Gram matrix ⟨ΔW_k, ΔW_l⟩ of the endpoints, every module's ΔW
  flattened into one vector per endpoint;
- :func:`cosine_matrix`, :func:`distance_matrix`: cosines and Frobenius distances from it;
- :func:`direction_gram`: the Gram matrix of the dials' directions d_i = ΔW_i,high − ΔW_i,low;
- :func:`point_gram`, :func:`mds_embedding`: interpolated points Σ_k c_k ΔW_k are linear in the
  endpoints, so their Gram matrix is C G Cᵀ; classical MDS embeds them exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from clm.errors import ConfigError

Table = Any  # a pandas DataFrame (pandas is imported where used)


def _factor_sets(endpoints: Any, attributes: Sequence[str] | None) -> dict[str, Mapping[str, Any]]:
    """label ("attr/pole") -> {module: factors with .A, .B, .scale}."""
    if isinstance(endpoints, Mapping):
        return dict(endpoints)
    attributes = list(attributes) if attributes is not None else endpoints.attributes
    return {f"{a}/{p}": endpoints.factors(a, p) for a in attributes for p in ("low", "high")}


def _select(modules: Sequence[str], which: str | Sequence[str] | Callable[[str], bool] | None) -> list[str]:
    if which is None:
        return list(modules)
    if isinstance(which, str):
        return [m for m in modules if re.search(which, m)]
    if callable(which):
        return [m for m in modules if which(m)]
    return [m for m in modules if m in set(which)]


def endpoint_gram(
    endpoints: Any,
    attributes: Sequence[str] | None = None,
    modules: str | Sequence[str] | Callable[[str], bool] | None = None,
    per_module: bool = False,
) -> Table:
    """Gram matrix G[k, l] = Σ_modules ⟨ΔW_k, ΔW_l⟩_F of the endpoints' weight deltas.

    Each endpoint is one vector: every module's ΔW = s·B·A flattened and concatenated (a module
    it does not adapt contributes zeros). The inner products use the low-rank factors,
    ⟨s_k B_k A_k, s_l B_l A_l⟩_F = s_k s_l Σ (B_kᵀ B_l) ⊙ (A_k A_lᵀ), so no ΔW is materialised:
    O(r² d) per module and pair instead of O(d²).

    Args:
        endpoints: a :class:`clm.Endpoints`, or a mapping label -> {module: factors (.A, .B, .scale)}.
        attributes: which attributes (default all); labels are ``"<attr>/<pole>"``.
        modules: restrict to modules matching a regex, in a list, or passing a predicate.
        per_module: return the long table of every module instead of the sum.

    Returns:
        (K, K) DataFrame indexed and columned by the endpoint labels, float64; or with
        ``per_module`` one row per (module, first, second) pair with first ≤ second: inner,
        cosine, distance (NaN cosine where an endpoint does not adapt the module).
    """
    import pandas as pd
    import torch

    sets = _factor_sets(endpoints, attributes)
    labels = list(sets)
    names = _select(sorted({m for f in sets.values() for m in f}), modules)
    if not names:
        raise ConfigError(f"no adapted module matches {modules!r}")
    G = np.zeros((len(labels), len(labels)))
    rows = []
    for m in names:
        Gm = np.zeros_like(G)  # (K, K) this module's inner products
        f64 = [(k, sets[lab][m]) for k, lab in enumerate(labels) if m in sets[lab]]
        f64 = [(k, f.A.to(torch.float64), f.B.to(torch.float64), float(f.scale)) for k, f in f64]
        for i, (k, Ak, Bk, sk) in enumerate(f64):
            for ll, Al, Bl, sl in f64[i:]:
                Gm[k, ll] = Gm[ll, k] = sk * sl * float(((Bk.T @ Bl) * (Ak @ Al.T)).sum())  # (r_k, r_l) ⊙ (r_k, r_l)
        G += Gm
        if per_module:
            gm = pd.DataFrame(Gm, index=labels, columns=labels)
            cos, dist = cosine_matrix(gm), distance_matrix(gm)
            for i, a in enumerate(labels):
                for b in labels[i:]:
                    rows.append(
                        {
                            "module": m,
                            "first": a,
                            "second": b,
                            "inner": Gm[labels.index(a), labels.index(b)],
                            "cosine": cos.loc[a, b],
                            "distance": dist.loc[a, b],
                        }
                    )
    if per_module:
        return pd.DataFrame(rows)
    return pd.DataFrame(G, index=labels, columns=labels)


def cosine_matrix(gram: Table) -> Table:
    """Cosine similarities G[k, l] / (‖ΔW_k‖ ‖ΔW_l‖) from a Gram matrix."""
    d = np.sqrt(np.diag(gram.to_numpy()))
    with np.errstate(invalid="ignore", divide="ignore"):
        return gram / np.outer(d, d)


def distance_matrix(gram: Table) -> Table:
    """Frobenius distances ‖ΔW_k − ΔW_l‖ = sqrt(G_kk + G_ll − 2 G_kl) from a Gram matrix."""
    G = gram.to_numpy()
    d = np.diag(G)
    return gram.__class__(
        np.sqrt(np.clip(d[:, None] + d[None, :] - 2 * G, 0, None)), index=gram.index, columns=gram.columns
    )


def direction_gram(gram: Table, attributes: Sequence[str]) -> Table:
    """Gram matrix of the dials' directions d_i = ΔW_i,high − ΔW_i,low (what moves when α_i
    moves: for λ_i = 1, θ(α) = θ0 + ΔW_i,low + α d_i), so ⟨d_i, d_j⟩ = (M G Mᵀ)_ij.

    Args:
        gram: the endpoints' Gram matrix (:func:`endpoint_gram`), labels ``attr/pole``.
        attributes: the attributes whose directions to compare (rows and columns, in order).
    """
    import pandas as pd

    labels = list(gram.index)
    M = np.zeros((len(attributes), len(labels)))  # (K, 2K): d_i = +high − low
    for k, a in enumerate(attributes):
        M[k, labels.index(f"{a}/high")], M[k, labels.index(f"{a}/low")] = 1.0, -1.0
    return pd.DataFrame(M @ gram.to_numpy() @ M.T, index=list(attributes), columns=list(attributes))


def coefficient_matrix(gram: Table, settings: Sequence[Any]) -> np.ndarray:
    """(P, K): each setting's coefficient on each endpoint of ``gram`` (labels ``attr/pole``)."""
    from clm.experiments.designs import custom

    labels = list(gram.index)
    attrs = list(dict.fromkeys(lab.split("/")[0] for lab in labels))
    C = np.zeros((len(settings), len(labels)))
    for p, s in enumerate(custom(settings)):
        coef = s.weights.coefficients(attrs)
        for k, lab in enumerate(labels):
            a, pole = lab.split("/")
            C[p, k] = coef[a][0 if pole == "low" else 1]
    return C


def point_gram(gram: Table, settings: Sequence[Any]) -> Table:
    """Gram matrix of interpolated points: ΔW(w) = Σ_k c_k(w) ΔW_k, so G_points = C G Cᵀ."""
    import pandas as pd

    from clm.experiments.designs import custom

    C = coefficient_matrix(gram, settings)  # (P, K)
    labels = [str(s) for s in custom(settings)]
    return pd.DataFrame(C @ gram.to_numpy() @ C.T, index=labels, columns=labels)


def classical_mds(distances: Any, n_components: int = 2) -> np.ndarray:
    """Classical (Torgerson) MDS: coordinates whose Euclidean distances match ``distances``
    exactly when they are Euclidean and of rank ≤ ``n_components``.

    Args:
        distances: (n, n) symmetric distance matrix (array or DataFrame).

    Returns:
        (n, n_components) coordinates, axes by decreasing variance (sign fixed so that each
        axis' largest-magnitude coordinate is positive).
    """
    D = np.asarray(distances, dtype=float)
    n = D.shape[0]
    J = np.eye(n) - 1.0 / n  # (n, n) centring
    B = -0.5 * J @ (D**2) @ J  # (n, n) double-centred Gram
    vals, vecs = np.linalg.eigh(B)
    order = np.argsort(vals)[::-1][:n_components]
    X = vecs[:, order] * np.sqrt(np.clip(vals[order], 0, None))  # (n, n_components)
    signs = np.sign(X[np.abs(X).argmax(axis=0), range(X.shape[1])])
    return X * np.where(signs == 0, 1, signs)


def mds_embedding(gram: Table, settings: Sequence[Any], n_components: int = 2, base: bool = True) -> Table:
    """Embed interpolated points (and the endpoints' origin, the base model) with classical MDS.

    Args:
        gram: the endpoints' Gram matrix (:func:`endpoint_gram`).
        settings: Settings, Weights or their text forms.
        base: add the base model (ΔW = 0) as a point if it is not among the settings.

    Returns:
        DataFrame with one row per point: the setting columns (design, target, setting,
        alpha_<attr>, lam_<attr>) and ``x``, ``y`` (and ``dim3``… beyond 2 components).
    """
    import pandas as pd

    from clm.experiments.designs import custom, setting_columns

    pts = custom(settings)
    if base and not any(s.weights.is_base for s in pts):
        pts = [*pts, *custom(["base"], design="base")]
    P = point_gram(gram, pts).to_numpy()
    d = np.diag(P)
    D = np.sqrt(np.clip(d[:, None] + d[None, :] - 2 * P, 0, None))
    X = classical_mds(D, n_components)
    attrs = list(dict.fromkeys(lab.split("/")[0] for lab in gram.index))
    names = ["x", "y", *[f"dim{i + 1}" for i in range(2, n_components)]][:n_components]
    rows = [{**setting_columns(s, attrs), **dict(zip(names, X[i]))} for i, s in enumerate(pts)]
    return pd.DataFrame(rows)


def directions_vs_entanglement(direction_cosine: Table, matrix: Table, attributes: Sequence[str]) -> Table:
    """Per pair of attributes a < b: the cosine of their dials' directions beside their
    behavioural entanglement |E_ab| and |E_ba| (``matrix``: rows α of, columns score of).

    Returns:
        DataFrame indexed by "a / b" with columns "cos(d_a, d_b)", "|E_ab|", "|E_ba|".
    """
    import pandas as pd

    rows = [
        {
            "pair": f"{a} / {b}",
            "cos(d_a, d_b)": direction_cosine.loc[a, b],
            "|E_ab|": abs(matrix.loc[a, b]),
            "|E_ba|": abs(matrix.loc[b, a]),
        }
        for n, a in enumerate(attributes)
        for b in attributes[n + 1 :]
    ]
    return pd.DataFrame(rows, columns=["pair", "cos(d_a, d_b)", "|E_ab|", "|E_ba|"]).set_index("pair")
