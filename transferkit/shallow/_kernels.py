"""Kernels shared by the kernel methods (KMM, KLIEP, TCA): one place for the median heuristic."""

from __future__ import annotations

import numpy as np
from sklearn.metrics.pairwise import euclidean_distances


def median_gamma(X: np.ndarray, max_rows: int = 1000, random_state: int | None = 0) -> float:
    """``1 / median(||x_i - x_j||^2)`` over (a sample of) the rows: the median heuristic."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) > max_rows:
        X = X[np.random.default_rng(random_state).choice(len(X), max_rows, replace=False)]
    d = euclidean_distances(X, squared=True)[np.triu_indices(len(X), k=1)]
    med = float(np.median(d)) if d.size else 1.0
    return 1.0 / med if med > 0 else 1.0


def kernel(A: np.ndarray, B: np.ndarray, kind: str, gamma: float | None) -> np.ndarray:
    """``rbf``: exp(-gamma ||a - b||^2); ``linear``: a . b."""
    if kind == "linear":
        return A @ B.T
    if kind == "rbf":
        return np.exp(-gamma * euclidean_distances(A, B, squared=True))
    raise ValueError(f"unknown kernel {kind!r}")
