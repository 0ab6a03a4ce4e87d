"""Shared LDA: the source's discriminant directions, after centring each domain on its own mean."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shifted_blobs
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.shared_lda import SharedLDA


def _moved(seed=0):
    """The target is the source scaled by 1.5 and translated across the source's boundary."""
    X, y_true, sd = shifted_blobs(n=200, d=5, seed=seed, shift=2.5, scale=1.5)
    return X, np.where(sd < 0, -1, y_true), sd, X[sd < 0], y_true[sd < 0]


def _model(**kw):
    return DAClassifier(SharedLDA(**kw), LogisticRegression(max_iter=1000))


def test_beats_source_only_on_a_translated_scaled_target():
    X, y, sd, Xt, yt = _moved()
    src = sd >= 0
    source_only = np.mean(LogisticRegression(max_iter=1000).fit(X[src], y[src]).predict(Xt) == yt)
    adapted = np.mean(_model().fit(X, y, sd).predict(Xt) == yt)
    uncentred = np.mean(_model(center_domains=False).fit(X, y, sd).predict(Xt) == yt)
    assert source_only < 0.7 and adapted > 0.95, (source_only, adapted)
    assert uncentred < 0.7  # the centring is what aligns the domains here


def test_deterministic():
    X, y, sd, Xt, _ = _moved()
    assert np.array_equal(_model().fit(X, y, sd).predict_proba(Xt), _model().fit(X, y, sd).predict_proba(Xt))


def test_target_labels_are_never_read():
    X, y, sd, Xt, yt = _moved()
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    assert np.array_equal(_model().fit(X, y, sd).predict(Xt), _model().fit(X, scrambled, sd).predict(Xt))
    truth = y.copy()
    truth[sd < 0] = yt
    Z = [SharedLDA().fit(X, labels, sd).transform(X, sd) for labels in (y, scrambled, truth)]
    assert np.array_equal(Z[0], Z[1]) and np.array_equal(Z[0], Z[2])


def test_bad_input_gives_a_clear_error():
    X, y, sd, Xt, _ = _moved()
    with pytest.raises(TransferkitError, match="no target rows"):
        SharedLDA().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[7, 0] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        SharedLDA().fit(bad, y, sd)
    with pytest.raises(TransferkitError, match="source labels"):
        SharedLDA().fit(X, None, sd)
    one = np.where(sd >= 0, 0, -1)
    with pytest.raises(TransferkitError, match="2 source classes"):
        SharedLDA().fit(X, one, sd)
    with pytest.raises(TransferkitError, match="n_components"):
        SharedLDA(n_components=0).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="not seen at fit"):
        SharedLDA().fit(X, y, sd).transform(Xt, np.full(len(Xt), -2))
    tiny = np.r_[np.flatnonzero((sd >= 0) & (y == 0))[:1], np.flatnonzero((sd >= 0) & (y == 1))[:1],
                 np.flatnonzero(sd < 0)]  # fmt: skip
    with pytest.raises(
        TransferkitError, match="more source rows than source classes.*got 2 rows for 2 classes"
    ):
        SharedLDA().fit(X[tiny], y[tiny], sd[tiny])


def test_projection_is_fishers_direction_with_ledoit_wolf_scatter():
    """The direction is the leading generalized eigenvector of (S_b, S_w), with S_w the prior-weighted
    within-class covariances and S_b = S_t - S_w, each covariance Ledoit-Wolf shrunk on standardized
    features and scaled back (written out here). Without shrinkage it is S_w^-1 (mu_1 - mu_0)."""
    from scipy.linalg import eigh
    from sklearn.covariance import ledoit_wolf

    X, y, sd, _, _ = _moved(seed=3)
    lda = SharedLDA().fit(X, y, sd)
    Z = lda.transform(X, sd)
    Xc = X.copy()
    for d in (0, -1):  # each domain on its own mean
        Xc[sd == d] -= X[sd == d].mean(0)
    src = sd >= 0
    Xs, ys = Xc[src], y[src]
    priors = np.bincount(ys) / len(ys)

    def shrunk(A):
        scale = A.std(0)
        return scale[:, None] * ledoit_wolf(A / scale)[0] * scale[None, :]

    Sw = sum(p * shrunk(Xs[ys == c]) for c, p in enumerate(priors))
    w = eigh(shrunk(Xs) - Sw, Sw)[1][:, -1]
    ref = Xc @ w
    fisher = Xc @ np.linalg.solve(Sw, Xs[ys == 1].mean(0) - Xs[ys == 0].mean(0))
    assert abs(np.corrcoef(Z[:, 0], fisher)[0, 1]) > 0.999
    corr = np.corrcoef(Z[:, 0], ref)[0, 1]
    assert abs(corr) == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(Z[sd < 0].mean(0), 0.0, atol=1e-9)  # target centred on its own mean
    assert np.mean(np.var(Z[src], axis=0)) == pytest.approx(1.0)  # unit average variance on the source


def test_components_default_to_classes_minus_one():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], 30)
    Xs = rng.normal(size=(120, 6)) + 4 * np.eye(6)[y]
    X = np.vstack([Xs, Xs + 1.0])
    sd = np.r_[np.zeros(120, int), -np.ones(120, int)]
    labels = np.r_[y, np.full(120, -1)]
    assert SharedLDA().fit_transform(X, labels, sd).shape == (240, 3)
    assert SharedLDA(n_components=2).fit_transform(X, labels, sd).shape == (240, 2)
    Z = SharedLDA().fit(X, labels, sd).transform(X[120:])  # rows without a domain are target rows
    assert np.allclose(Z, SharedLDA().fit(X, labels, sd).transform(X[:120], np.zeros(120, int)))
