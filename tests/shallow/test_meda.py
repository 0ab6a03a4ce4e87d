"""MEDA: its solution minimises the paper's objective; the graph and the adaptive factor are right;
it reproduces the published Office-Caltech10 numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from transferkit.errors import TransferkitError
from transferkit.shallow.meda import MEDA, a_distance, adaptive_factor, knn_laplacian


def _shifted(seed=0, n=80):
    rng = np.random.default_rng(seed)
    ys, yt = np.arange(n) % 3, rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    Xs = centers[ys] + rng.normal(size=(n, 4))
    Xt = (centers[yt] + rng.normal(size=(n, 4))) * 1.3 + [1.0, 0.5, 2.0, -2.0]
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, np.full(n, -1)], sd, Xt, yt


def test_laplacian_matches_a_double_loop():
    Z = np.random.default_rng(0).normal(size=(12, 3))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    k = 3
    W = np.zeros((12, 12))
    for i in range(12):
        sims = [(Z[i] @ Z[j], j) for j in range(12) if j != i]
        for s, j in sorted(sims, reverse=True)[:k]:
            W[i, j] = W[j, i] = s
    W[np.diag_indices(12)] = 1.0  # self-connected, as the authors' graph
    d = W.sum(1)
    naive = np.eye(12) - W / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(knn_laplacian(Z, k), naive, atol=1e-12)


def test_a_distance_and_adaptive_factor():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(100, 2))
    assert a_distance(A, A + [20.0, 0.0]) == 2.0  # separable
    assert a_distance(A, A) == pytest.approx(0.0, abs=0.2)  # indistinguishable
    # the classes trade places: the marginals agree, the conditionals do not, so mu -> 1
    y = np.repeat([0, 1], 100)
    Zs = np.c_[np.where(y == 1, 3.0, -3.0), np.zeros(200)] + rng.normal(size=(200, 2))
    Zt = np.c_[np.where(y == 1, -3.0, 3.0), np.zeros(200)] + rng.normal(size=(200, 2))
    mu = adaptive_factor(Zs, y, Zt, y, np.array([0, 1]))
    d_m, d_c = a_distance(Zs, Zt), np.mean([a_distance(Zs[y == c], Zt[y == c]) for c in (0, 1)])
    assert mu == pytest.approx(d_c / (d_c + d_m)) and mu > 0.75, (mu, d_m, d_c)


def test_solution_minimises_the_objective():
    """With the fitted beta, the gradient of the paper's objective (M built naively from the
    pseudo-labels of the round, mu as used) vanishes."""
    X, y, sd, _, _ = _shifted()
    meda = MEDA(n_components=3, n_iter=1, n_neighbors=5).fit(X, y, sd)
    ns = int((sd >= 0).sum())
    Z = X @ meda.map_
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    pseudo = KNeighborsClassifier(1).fit(Z[:ns], y[:ns]).predict(Z[ns:])  # round 1 uses the 1-NN labels
    labels, n = np.r_[y[:ns], pseudo], len(Z)
    src = np.arange(n) < ns
    mu = meda.mu_history_[0]
    M0 = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            si, sj = (1 / ns if src[i] else -1 / (n - ns)), (1 / ns if src[j] else -1 / (n - ns))
            M0[i, j] = si * sj * 3  # the marginal term counts C = 3 times
    Mc = np.zeros((n, n))
    for c in range(3):
        e = np.where(
            src,
            (labels == c) / np.sum(src & (labels == c)),
            -1.0 * (labels == c) / np.sum(~src & (labels == c)),
        )
        Mc += np.outer(e, e)
    M = (1 - mu) * M0 + mu * Mc
    M /= np.linalg.norm(M)
    K = np.exp(-0.5 * ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    L = knn_laplacian(Z, 5)
    E = np.diag(src.astype(float))
    Y = np.zeros((n, 3))
    Y[np.arange(ns), y[:ns]] = 1
    B = meda.dual_coef_
    grad = -2 * K @ E @ (Y - K @ B) + 2 * 0.1 * K @ B + 2 * 10 * K @ M @ K @ B + 2 * K @ L @ K @ B
    assert np.abs(grad).max() < 1e-8 * max(1.0, np.abs(K @ E @ Y).max())
    # the outputs on the training target rows are the pseudo-labels of the round
    assert np.array_equal(meda.predict(X[ns:]), meda.pseudo_labels_)


def test_beats_source_only_and_fixed_mu():
    X, y, sd, Xt, yt = _shifted()
    src = sd >= 0
    source_only = np.mean(KNeighborsClassifier(1).fit(X[src], y[src]).predict(Xt) == yt)
    for mu in ("auto", 0.0, 1.0):
        meda = MEDA(n_components=3, mu=mu).fit(X, y, sd)
        acc = np.mean(meda.predict(Xt) == yt)
        assert acc > source_only + (0.05 if mu == "auto" else 0.0), (mu, acc, source_only)
        assert len(meda.mu_history_) == 10 and (mu == "auto" or set(meda.mu_history_) == {mu})
    assert meda.decision_function(Xt).shape == (len(Xt), 3)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"mu": 2.0}, "mu"),
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"ridge": 0.0}, "ridge"),
        ({"n_iter": 1.5}, "n_iter"),
        ({"mmd_weight": "ten"}, "mmd_weight to be a number"),
    ],
)
def test_bad_settings_say_which(params, match):
    X, y, sd, _, _ = _shifted()
    with pytest.raises(TransferkitError, match=match):
        MEDA(**params).fit(X, y, sd)


# published MEDA accuracies (Wang et al., ACM MM 2018, Office-Caltech10 SURF, one setting for all tasks)
PUBLISHED = {("webcam", "dslr"): 88.5, ("caltech", "dslr"): 50.3, ("dslr", "webcam"): 87.5}


@pytest.mark.parametrize("source,target", sorted(PUBLISHED))
def test_reproduces_the_published_office_caltech10_numbers(source, target):
    from transferkit.experiment import RunSpec, run

    rec = run(RunSpec("office-caltech10", (source,), (target,), "meda"), command="test")
    # the published numbers are rounded to 0.1
    assert rec["accuracy"] == pytest.approx(PUBLISHED[source, target], abs=0.1)
