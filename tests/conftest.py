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


class Killed(Exception):
    """Raised by :func:`kill_at` (or a test's own hook) to stop a training run as a killed process would."""


def kill_at(epoch: int):
    """A trainer callback that stops the run at the end of ``epoch``: the kill of the resume tests."""

    def kill(trainer, record):
        if record["epoch"] == epoch:
            raise Killed

    return kill


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


def covariate_shift(seed=0, ns=300, nt=1500):
    """The target is a sub-region of the source; the labelling (a bump) is not linear overall."""
    rng = np.random.default_rng(seed)
    xs, xt = rng.uniform(-4, 4, ns), rng.uniform(0.5, 4, nt)
    label = lambda x: (np.abs(x - 1.5) < 1.0).astype(int)  # noqa: E731
    ys = np.where(rng.random(ns) < 0.05, 1 - label(xs), label(xs))
    X = np.vstack([np.c_[xs, rng.normal(size=ns)], np.c_[xt, rng.normal(size=nt)]])
    sd = np.r_[np.zeros(ns, int), -np.ones(nt, int)]
    return X, np.r_[ys, label(xt)], sd


def target_accuracy(model, X, y, sd):
    """Fit ``model`` on everything it may see, return its accuracy on the target rows."""
    tgt = sd < 0
    return np.mean(model.fit(X, y, sd).predict(X[tgt]) == y[tgt])


@pytest.fixture
def blobs():
    return shifted_blobs()


def image_folder(folder, per_class: int):
    """Domains a and b, classes cat (darker) and dog (brighter), ``per_class`` 8x8 grey images each."""
    from PIL import Image

    for dom in ("a", "b"):
        for c in ("cat", "dog"):
            (folder / dom / c).mkdir(parents=True)
            for i in range(per_class):
                Image.new("L", (8, 8), 40 * i + (100 if c == "dog" else 0)).save(
                    folder / dom / c / f"{i}.png"
                )
    return folder
