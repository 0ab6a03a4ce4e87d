"""Nearest-neighbour weighting: it helps under covariate shift, counts Voronoi cells, reads no label."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import covariate_shift, target_accuracy
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.nearest_neighbor_weighting import NearestNeighborWeighting


def test_beats_source_only_under_covariate_shift():
    X, y, sd = covariate_shift()
    source_only = target_accuracy(DAClassifier(None, LogisticRegression()), X, y, sd)
    adapted = target_accuracy(DAClassifier(NearestNeighborWeighting(), LogisticRegression()), X, y, sd)
    assert adapted >= source_only + 0.2, (adapted, source_only)


@pytest.mark.parametrize("smoothing", [0.0, 1.0, 2.5])
def test_weights_count_voronoi_cells_like_a_double_loop(smoothing):
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(40, 3)), rng.normal(size=(70, 3)) + 0.5
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(40, int), -np.ones(70, int)]
    w = NearestNeighborWeighting(smoothing=smoothing).fit(X, None, sd).compute_weights(X, sd)
    counts = np.zeros(40)
    for xt in Xt:
        best = min(range(40), key=lambda i: np.sum((Xs[i] - xt) ** 2))
        counts[best] += 1
    ref = (counts + smoothing) / (counts + smoothing).mean()
    assert np.allclose(w[:40], ref)
    assert (w[40:] == 1).all()  # target rows are not reweighted


def test_new_source_rows_take_their_nearest_cell():
    X = np.array([[0.0], [10.0], [9.0], [11.0], [12.0]])
    sd = np.array([0, 0, -1, -1, -1])
    m = NearestNeighborWeighting().fit(X, None, sd)
    assert m.compute_weights(X[:2], sd[:2]).tolist() == pytest.approx([1 / 2.5, 4 / 2.5])
    assert m.compute_weights(np.array([[1.0], [8.0]]), np.array([0, 0])).tolist() == pytest.approx([0.4, 1.6])


def test_deterministic():
    X, y, sd = covariate_shift(ns=100, nt=300)
    a = NearestNeighborWeighting().fit(X, None, sd).compute_weights(X, sd)
    assert np.array_equal(a, NearestNeighborWeighting().fit(X, None, sd).compute_weights(X, sd))


def test_target_labels_are_never_read():
    X, y, sd = covariate_shift(ns=100, nt=300)
    hidden = np.where(sd < 0, -1, y)
    w_true = NearestNeighborWeighting().fit(X, y, sd).compute_weights(X, sd)
    assert np.array_equal(w_true, NearestNeighborWeighting().fit(X, hidden, sd).compute_weights(X, sd))
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    model = DAClassifier(NearestNeighborWeighting(), LogisticRegression())
    assert np.array_equal(model.fit(X, y, sd).predict_proba(X), model.fit(X, scrambled, sd).predict_proba(X))


def test_bad_input_gives_a_clear_error():
    X, y, sd = covariate_shift(ns=50, nt=50)
    with pytest.raises(TransferkitError, match="no target rows"):
        NearestNeighborWeighting().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[10, 0] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        NearestNeighborWeighting().fit(bad, None, sd)
    with pytest.raises(TransferkitError, match="smoothing"):
        NearestNeighborWeighting(smoothing=-1.0).fit(X, None, sd)


def test_identical_source_rows_share_their_weight():
    # the nearest-neighbour search names one copy of a repeated row; compute_weights used to give every
    # copy that copy's full weight (mean weight 1.33 on rows 0, 0, 10; 11 on a table of small integers)
    Xs = np.array([[0.0], [0.0], [10.0]])
    Xt = np.array([[0.1], [0.2], [9.0], [11.0], [0.3], [10.5]])
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(3, int), -np.ones(6, int)]
    nnw = NearestNeighborWeighting(smoothing=0.0).fit(X, None, sd)
    w = nnw.compute_weights(X, sd)[:3]
    # point 0 (two copies) is nearest to 3 target rows, point 10 to 3: 1.5 per copy of 0, 3 for 10
    assert np.allclose(w, np.array([1.5, 1.5, 3.0]) / 2.0) and np.isclose(w.mean(), 1.0)
    assert np.allclose(w, nnw.source_weights_)
