"""Subspace alignment: beats source-only on a rotated, translated target; its math is the paper's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.subspace_alignment import SubspaceAlignment


def _rotated(seed=0, n=300, theta=np.pi / 3):
    """Classes apart along e1; the target's signal plane is rotated by ``theta`` and translated."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, n), rng.integers(0, 2, n)

    def draw(y):
        signal = np.c_[np.where(y == 1, 2.0, -2.0) + rng.normal(size=n), rng.normal(size=n)]
        return np.c_[signal, 0.3 * rng.normal(size=(n, 3))]

    R = np.eye(5)
    R[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    Xs, Xt = draw(ys), draw(yt) @ R.T + [3.0, -3.0, 0.0, 1.0, 0.0]
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, np.full(n, -1)], sd, Xt, yt


def _model(**kw):
    return DAClassifier(SubspaceAlignment(**{"n_components": 1, **kw}), LogisticRegression(max_iter=1000))


def test_beats_source_only_on_a_rotated_translated_target():
    X, y, sd, Xt, yt = _rotated()
    src = sd >= 0
    source_only = np.mean(LogisticRegression(max_iter=1000).fit(X[src], y[src]).predict(Xt) == yt)
    adapted = np.mean(_model().fit(X, y, sd).predict(Xt) == yt)
    assert source_only < 0.75 and adapted > 0.95, (source_only, adapted)
    assert adapted >= source_only + 0.2


def test_deterministic():
    X, y, sd, Xt, _ = _rotated()
    a = _model(n_components=3).fit(X, y, sd).predict_proba(Xt)
    b = _model(n_components=3).fit(X, y, sd).predict_proba(Xt)
    assert np.array_equal(a, b)


def test_target_labels_are_never_read():
    X, y, sd, Xt, yt = _rotated()
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    assert np.array_equal(_model().fit(X, y, sd).predict(Xt), _model().fit(X, scrambled, sd).predict(Xt))
    # the method itself, given target labels (or -1, or no labels at all), learns the same map
    Z = [SubspaceAlignment(n_components=2).fit(X, lab, sd).transform(X, sd) for lab in (y, scrambled, None)]
    assert np.array_equal(Z[0], Z[1]) and np.array_equal(Z[0], Z[2])


def test_bad_input_gives_a_clear_error():
    X, y, sd, _, _ = _rotated(n=50)
    with pytest.raises(TransferkitError, match="no target rows"):
        SubspaceAlignment().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        SubspaceAlignment().fit(bad, y, sd)
    with pytest.raises(TransferkitError, match="n_components"):
        SubspaceAlignment(n_components=0).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="features"):
        SubspaceAlignment().fit(X, y, sd).transform(X[:, :3])


def test_alignment_matrix_is_the_least_squares_argmin_and_bases_are_pca():
    from sklearn.decomposition import PCA

    X, y, sd, Xt, _ = _rotated(n=80)
    Xs = X[sd >= 0]
    sa = SubspaceAlignment(n_components=3).fit(X, y, sd)
    Ps, Pt = sa.basis_source_, sa.basis_target_
    # the bases span the principal subspaces (projectors agree; signs are arbitrary)
    for data, P in ((Xs, Ps), (Xt, Pt)):
        V = PCA(n_components=3, svd_solver="full").fit(data).components_.T
        assert np.allclose(P @ P.T, V @ V.T, atol=1e-8)
        assert np.allclose(P.T @ P, np.eye(3), atol=1e-10)
    # M = argmin_M ||Ps M - Pt||_F, by a generic least-squares solve and by brute-force perturbation
    M_ref, *_ = np.linalg.lstsq(Ps, Pt, rcond=None)
    assert np.allclose(sa.M_, M_ref, atol=1e-10)
    loss = lambda M: np.linalg.norm(Ps @ M - Pt) ** 2  # noqa: E731
    rng = np.random.default_rng(0)
    assert all(loss(sa.M_) <= loss(sa.M_ + 1e-3 * rng.normal(size=(3, 3))) for _ in range(20))
    # the mapped rows, one at a time
    Z = sa.transform(X, sd)
    for i in (0, 5, len(X) - 1):
        mean, P = (sa.mean_source_, Ps @ sa.M_) if sd[i] >= 0 else (sa.mean_target_, Pt)
        assert np.allclose(Z[i], (X[i] - mean) @ P)


def test_dimension_is_clipped_and_rows_without_domain_are_target_rows():
    X, y, sd, Xt, _ = _rotated(n=40)
    sa = SubspaceAlignment(n_components=500).fit(X, y, sd)
    assert sa.n_components_ == 5
    assert np.array_equal(sa.transform(Xt), sa.transform(Xt, np.full(len(Xt), -1)))
