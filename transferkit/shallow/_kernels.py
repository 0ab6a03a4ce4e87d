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


def _physical_memory() -> int | None:
    """Bytes of physical memory, where the OS tells (Linux, macOS); else ``None``."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_dense_size(
    n_rows: int, n_matrices: int, method: str, rows: str = "all training rows (source and target together)"
) -> None:
    """A clear error, before any allocation, when ``n_matrices`` dense ``n_rows x n_rows`` float64
    matrices would not fit in 80% of the machine's memory (the kernel methods: MEDA, KMM, the
    kernel forms of TCA and JDA)."""
    from transferkit.errors import TransferkitError

    need = n_matrices * n_rows * n_rows * 8
    total = _physical_memory()
    if total is not None and need > 0.8 * total:
        raise TransferkitError(
            f"{method} works with dense {n_rows} x {n_rows} matrices over {rows}: about "
            f"{_bytes(need)}, more than this machine's {_bytes(total)} allow. Fit it on "
            "a random subset of the rows (a few thousand per domain is typical for this method); "
            "predict works on any number of rows afterwards."
        )
