"""DensityRatio: it helps under covariate shift, recovers a known ratio, never reads a target label."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import covariate_shift, target_accuracy
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.density_ratio import DensityRatio


def test_beats_source_only_under_covariate_shift():
    X, y, sd = covariate_shift()
    source_only = target_accuracy(DAClassifier(None, LogisticRegression()), X, y, sd)
    adapted = target_accuracy(DAClassifier(DensityRatio(), LogisticRegression()), X, y, sd)
    assert adapted >= source_only + 0.2, (adapted, source_only)


def test_recovers_a_known_density_ratio():
    """Source N(0, 1), target N(1, 1): the true ratio is exp(x - 1/2), log-linear as the classifier."""
    rng = np.random.default_rng(0)
    n = 4000
    X = np.r_[rng.normal(0, 1, n), rng.normal(1, 1, n)][:, None]
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    grid = np.linspace(-1.5, 2.0, 15)[:, None]
    w = DensityRatio().fit(X, None, sd).compute_weights(grid, np.zeros(15, int))
    assert np.allclose(np.log(w), grid[:, 0] - 0.5, atol=0.1)


def test_weights_follow_the_formula():
    """p/(1-p) * n_s/n_t from a standardized logistic regression, clipped, mean 1 on the source."""
    from sklearn.preprocessing import StandardScaler

    X, y, sd = covariate_shift(ns=200, nt=400)
    clip = 3.0
    w = DensityRatio(C=0.5, clip=clip).fit(X, None, sd).compute_weights(X, sd)
    Z = StandardScaler().fit_transform(X)
    p = LogisticRegression(C=0.5, max_iter=2000).fit(Z, (sd < 0).astype(int)).predict_proba(Z)[:, 1]
    raw = np.minimum(p / (1 - p) * 200 / 400, clip)
    ref = raw / raw[sd >= 0].mean()
    assert np.allclose(w, ref, rtol=1e-4)
    assert w[sd >= 0].mean() == pytest.approx(1.0)
    assert w.max() == pytest.approx(clip / raw[sd >= 0].mean(), rel=1e-4)  # the clip bites


def test_deterministic():
    X, y, sd = covariate_shift(ns=200, nt=300)
    a = DensityRatio().fit(X, None, sd).compute_weights(X, sd)
    assert np.array_equal(a, DensityRatio().fit(X, None, sd).compute_weights(X, sd))


def test_target_labels_are_never_read():
    X, y, sd = covariate_shift(ns=200, nt=300)
    hidden = np.where(sd < 0, -1, y)
    w_true = DensityRatio().fit(X, y, sd).compute_weights(X, sd)
    assert np.array_equal(w_true, DensityRatio().fit(X, hidden, sd).compute_weights(X, sd))
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    p1 = DAClassifier(DensityRatio(), LogisticRegression()).fit(X, y, sd).predict_proba(X)
    p2 = DAClassifier(DensityRatio(), LogisticRegression()).fit(X, scrambled, sd).predict_proba(X)
    assert np.array_equal(p1, p2)


def test_bad_input_gives_a_clear_error():
    X, y, sd = covariate_shift(ns=50, nt=50)
    with pytest.raises(TransferkitError, match="no target rows"):
        DensityRatio().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[10, 0] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        DensityRatio().fit(bad, None, sd)
    with pytest.raises(TransferkitError, match="clip"):
        DensityRatio(clip=0.0).fit(X, None, sd)
    with pytest.raises(TransferkitError, match="C "):
        DensityRatio(C=-1.0).fit(X, None, sd)
