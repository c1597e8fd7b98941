"""The interpolation math: pure functions on tensors.

No files, no configs, no Hugging Face imports. Shapes are given as ``# (...)`` comments.

A LoRA endpoint k adds ΔW_k = s_k B_k A_k to a base weight W0 (Hu et al., 2021), with
A_k: (r_k, d_in), B_k: (d_out, r_k) and s_k = lora_alpha / r_k. Given coefficients c_k from a
setting of (α, λ), the interpolated layer computes

    y = W0 x + Σ_k c_k s_k B_k A_k x.

Concatenating the K endpoints along the rank gives A = [A_1; …; A_K]: (R, d_in) and
B = [B_1 … B_K]: (d_out, R) with R = Σ r_k. Then Σ_k c_k s_k B_k A_k x = B (g ⊙ (A x)) where
g: (R,) repeats c_k s_k over the r_k components of endpoint k. Only the rank components are
scaled, never A and B separately, so there are no cross terms: the result is linear in each
product B_k A_k, exactly as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def delta_weight(A: torch.Tensor, B: torch.Tensor, scale: float) -> torch.Tensor:
    """ΔW = s · B · A.

    Args:
        A: (r, d_in) LoRA down-projection.
        B: (d_out, r) LoRA up-projection.
        scale: s = lora_alpha / r (or / sqrt(r) for rsLoRA).

    Returns:
        (d_out, d_in) weight delta.
    """
    return scale * (B @ A)  # (d_out, d_in)


def merged_weight(
    W0: torch.Tensor,
    terms: Sequence[tuple[float, torch.Tensor, torch.Tensor, float]],
) -> torch.Tensor:
    """W0 + Σ c · s · B · A, computed explicitly (the reference the engine is tested against).

    Args:
        W0: (d_out, d_in) base weight.
        terms: (c, A, B, s) per endpoint.
    """
    W = W0.clone()  # (d_out, d_in)
    for c, A, B, s in terms:
        W = W + c * delta_weight(A.to(W.dtype), B.to(W.dtype), s)
    return W


def concat_factors(
    factors: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack K endpoints' (A_k, B_k) along the rank.

    Returns:
        A: (R, d_in) and B: (d_out, R), R = Σ r_k.
    """
    A = torch.cat([a for a, _ in factors], dim=0)  # (R, d_in)
    B = torch.cat([b for _, b in factors], dim=1)  # (d_out, R)
    return A, B


def rank_gains(coef: torch.Tensor, owner: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-rank-component gains g = c[owner] · s.

    Args:
        coef: (N, K) coefficients per row and endpoint (N = 1 shares one setting).
        owner: (R,) long, the endpoint each rank component belongs to.
        scale: (R,) the LoRA scale s of that endpoint in this module.

    Returns:
        (N, R) gains.
    """
    return coef[:, owner] * scale  # (N, R)


def fused_delta(x: torch.Tensor, A: torch.Tensor, B: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Σ_k c_k s_k B_k A_k x for every row, in two matrix products.

    Args:
        x: (N, ..., d_in) activations; N rows, each with its own gains (or N may broadcast from 1).
        A: (R, d_in), B: (d_out, R) concatenated factors.
        gains: (N, R) or (1, R) from :func:`rank_gains`.

    Returns:
        (N, ..., d_out) the delta to add to W0 x.
    """
    h = x @ A.T  # (N, ..., R)
    g = gains.reshape(gains.shape[0], *([1] * (x.dim() - 2)), gains.shape[1])  # (N, 1.., R)
    return (h * g) @ B.T  # (N, ..., d_out)
