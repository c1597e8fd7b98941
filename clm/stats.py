"""Small statistics on plain arrays (numpy only), shared by the experiments and the methods' dev choices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson correlation of the (average) ranks. NaN for fewer than 3 points
    (ρ of 2 points is always ±1) or if either side is constant."""
    import pandas as pd

    if len(x) < 3:
        return float("nan")
    rx = pd.Series(np.asarray(x, dtype=float)).rank().to_numpy()
    ry = pd.Series(np.asarray(y, dtype=float)).rank().to_numpy()
    return pearson(rx, ry)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r of two arrays; NaN when either side is constant."""
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")
