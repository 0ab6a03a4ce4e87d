"""Shared test helpers: real data when present, tiny synthetic shifts otherwise."""

from __future__ import annotations

import os

import numpy as np
import pytest


def require_dataset(dataset: str) -> None:
    """Skip a test when a data set is absent; in CI (TRANSFERKIT_REQUIRE_DATA=1) fail instead."""
    from transferkit.datasets import is_present

    if is_present(dataset):
        return
    msg = f"data set '{dataset}' is not in the data root; set TRANSFERKIT_DATA"
    if os.environ.get("TRANSFERKIT_REQUIRE_DATA"):
        pytest.fail(msg)
    pytest.skip(msg)


def shifted_blobs(n: int = 120, d: int = 5, seed: int = 0, shift: float = 1.5, scale: float = 1.0):
    """Two Gaussian classes; the target is the source moved by ``shift`` and scaled by ``scale``."""
    rng = np.random.default_rng(seed)
    y_s = rng.integers(0, 2, n)
    y_t = rng.integers(0, 2, n)
    centers = np.stack([np.zeros(d), np.full(d, 3.0)])
    Xs = centers[y_s] + rng.normal(size=(n, d))
    Xt = (centers[y_t] + rng.normal(size=(n, d))) * scale + shift
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, np.int64), -np.ones(n, np.int64)]
    return X, np.r_[y_s, y_t], sd


@pytest.fixture
def blobs():
    return shifted_blobs()
