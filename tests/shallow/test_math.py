"""The core math of the shallow methods against brute-force or closed-form references."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.shallow._kernels import kernel


def _two(ns=30, nt=20, d=2, seed=0):
    rng = np.random.default_rng(seed)
    Xs, Xt = rng.normal(size=(ns, d)), rng.normal(size=(nt, d)) * 0.5 + 0.8
    return np.vstack([Xs, Xt]), np.r_[np.zeros(ns, int), -np.ones(nt, int)], Xs, Xt


def test_kmm_solves_its_quadratic_program_like_a_generic_solver():
    from scipy.optimize import minimize

    from transferkit.shallow.kmm import KMM

    X, sd, Xs, Xt = _two()
    kmm = KMM(B=5.0, eps=0.1, gamma=0.5, tol=1e-9).fit(X, None, sd)
    K = kernel(Xs, Xs, "rbf", 0.5)
    kappa = len(Xs) / len(Xt) * kernel(Xs, Xt, "rbf", 0.5).sum(1)
    obj = lambda b: 0.5 * b @ K @ b - kappa @ b  # noqa: E731
    ns = len(Xs)
    cons = [
        {"type": "ineq", "fun": lambda b: ns * 1.1 - b.sum()},
        {"type": "ineq", "fun": lambda b: b.sum() - ns * 0.9},
    ]
    ref = minimize(obj, np.ones(ns), jac=lambda b: K @ b - kappa, bounds=[(0, 5)] * ns, constraints=cons,
                   method="SLSQP", options={"ftol": 1e-12, "maxiter": 1000})  # fmt: skip
    assert obj(kmm.weights_) == pytest.approx(ref.fun, rel=1e-4, abs=1e-4)
    assert (kmm.weights_ >= -1e-9).all() and (kmm.weights_ <= 5 + 1e-9).all()
    assert abs(kmm.weights_.sum() - ns) <= 0.1 * ns + 1e-6


def test_kliep_weights_average_one_on_the_source():
    from transferkit.shallow.kliep import KLIEP

    X, sd, Xs, Xt = _two(200, 100)
    w = KLIEP().fit(X, None, sd).compute_weights(Xs, np.zeros(200, int))
    assert w.mean() == pytest.approx(1.0, rel=1e-6) and (w >= 0).all()


def test_tca_components_solve_the_generalized_eigenproblem():
    from transferkit.shallow.tca import TCA, mmd_matrix

    X, sd, Xs, Xt = _two(40, 30, d=4)
    for kern in ("linear", "rbf"):
        tca = TCA(kernel=kern, n_components=2, mu=0.5, gamma=0.3).fit(X, None, sd)
        Xtr = np.vstack([Xs, Xt])
        K = Xtr @ Xtr.T if kern == "linear" else kernel(Xtr, Xtr, "rbf", 0.3)
        n = len(Xtr)
        H = np.eye(n) - 1.0 / n
        L = mmd_matrix(40, 30)
        if kern == "linear":  # primal: X^T H X w = lambda (X^T L X + mu I) w
            A, B = Xtr.T @ H @ Xtr, Xtr.T @ L @ Xtr + 0.5 * np.eye(4)
        else:
            A, B = K @ H @ K, K @ L @ K + 0.5 * np.eye(n)
        W, lam = tca.components_, tca.eigenvalues_
        assert np.allclose(A @ W, (B @ W) * lam, atol=1e-6 * np.abs(A).max())
        assert lam[0] >= lam[1]


def test_subspace_alignment_matrix_is_the_least_squares_solution():
    from transferkit.shallow.subspace_alignment import SubspaceAlignment

    X, sd, Xs, Xt = _two(50, 50, d=5)
    sa = SubspaceAlignment(n_components=3).fit(X, None, sd)
    _, _, Vs = np.linalg.svd(Xs - Xs.mean(0), full_matrices=False)
    _, _, Vt = np.linalg.svd(Xt - Xt.mean(0), full_matrices=False)
    M, *_ = np.linalg.lstsq(Vs[:3].T, Vt[:3].T, rcond=None)
    assert np.allclose(sa.M_, M, atol=1e-10)


def test_jda_mmd_matrix_matches_a_double_loop():
    from transferkit.shallow.jda import jda_mmd_vectors

    ys = np.array([0, 0, 1, 1, 1])
    pt = np.array([1, 0, 0, 1])
    E = jda_mmd_vectors(ys, pt, np.array([0, 1]))
    M = E @ E.T
    n_s, n_t = 5, 4
    dom = np.r_[np.zeros(n_s), np.ones(n_t)]
    lab = np.r_[ys, pt]
    naive = np.zeros((9, 9))
    for i in range(9):
        for j in range(9):
            # marginal term, counted C = 2 times as in the authors' code
            naive[i, j] += 2 * (1 / n_s if dom[i] == 0 else -1 / n_t) * (1 / n_s if dom[j] == 0 else -1 / n_t)
            for c in (0, 1):  # conditional terms

                def e(k, c=c):
                    if lab[k] != c:
                        return 0.0
                    same = (dom == dom[k]) & (lab == c)
                    return (1 if dom[k] == 0 else -1) / same.sum()

                naive[i, j] += e(i) * e(j)
    assert np.allclose(M, naive)


def test_l2sp_gradient_and_its_limits():
    from transferkit.shallow.regularized_transfer import RegularizedTransferLR, cross_entropy

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 3)), np.eye(3)[rng.integers(0, 3, 8)]
    W, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    f, gW, gb = cross_entropy(W, b, X, Y)
    h = 1e-6
    E = np.zeros_like(W)
    E[1, 2] = h
    assert (cross_entropy(W + E, b, X, Y)[0] - cross_entropy(W - E, b, X, Y)[0]) / (2 * h) == pytest.approx(
        gW[1, 2], rel=1e-5
    )
    # alpha -> infinity: the source model; alpha -> 0: fits the target rows alone
    Xs = rng.normal(size=(200, 2))
    Xt = rng.normal(size=(40, 2))
    ys, yt = (Xs[:, 0] > 0).astype(int), (Xt[:, 1] > 0).astype(int)
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(200, int), -np.ones(40, int)]
    y = np.r_[ys, yt]
    big = RegularizedTransferLR(alpha=1e6).fit(X, y, sd)
    assert np.allclose(big.coef_, big.source_coef_, atol=1e-3)
    small = RegularizedTransferLR(alpha=1e-8, max_iter=5000).fit(X, y, sd)
    assert np.mean(small.predict(Xt) == yt) == 1.0  # separable target rows, fitted exactly
    l1 = RegularizedTransferLR(penalty="l1-sp", alpha=10.0).fit(X, y, sd)
    assert np.allclose(l1.coef_, l1.source_coef_)  # strong L1 keeps the source weights exactly


def test_nearest_neighbour_weights_count_voronoi_cells():
    from transferkit.shallow.nearest_neighbor_weighting import NearestNeighborWeighting

    X = np.array([[0.0], [5.0], [10.0], [4.0], [6.0], [9.0], [11.0], [12.0]])
    sd = np.r_[np.zeros(3, int), -np.ones(5, int)]
    w = NearestNeighborWeighting(smoothing=0.0).fit(X, None, sd).source_weights_
    assert np.allclose(w * 5 / 3, [0, 2, 3])
