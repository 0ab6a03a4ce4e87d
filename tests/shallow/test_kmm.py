"""KMM: it helps under covariate shift, solves its quadratic program exactly, never reads a target label."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import covariate_shift, target_accuracy
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import kernel
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.kmm import KMM


def test_beats_source_only_under_covariate_shift():
    X, y, sd = covariate_shift()
    source_only = target_accuracy(DAClassifier(None, LogisticRegression()), X, y, sd)
    adapted = target_accuracy(DAClassifier(KMM(), LogisticRegression()), X, y, sd)
    assert adapted >= source_only + 0.2, (adapted, source_only)
    assert adapted > 0.9


def test_weights_favour_the_target_region():
    X, y, sd = covariate_shift()
    w = KMM().fit(X, None, sd).compute_weights(X, sd)
    inside, outside = (sd >= 0) & (X[:, 0] > 0.5), (sd >= 0) & (X[:, 0] < 0)
    assert w[inside].mean() > 10 * w[outside].mean()
    assert (w[sd < 0] == 1).all()  # target rows are not reweighted


def test_deterministic():
    X, y, sd = covariate_shift(ns=150, nt=300)
    a = KMM().fit(X, None, sd).compute_weights(X, sd)
    b = KMM().fit(X, None, sd).compute_weights(X, sd)
    assert np.array_equal(a, b)


def test_target_labels_are_never_read():
    X, y, sd = covariate_shift(ns=150, nt=300)
    hidden = np.where(sd < 0, -1, y)
    # the method itself, given the true target labels or -1: same weights
    w_true = KMM().fit(X, y, sd).compute_weights(X, sd)
    w_hidden = KMM().fit(X, hidden, sd).compute_weights(X, sd)
    assert np.array_equal(w_true, w_hidden)
    # through the composer: scrambled target labels change nothing
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    p1 = DAClassifier(KMM(), LogisticRegression()).fit(X, y, sd).predict_proba(X)
    p2 = DAClassifier(KMM(), LogisticRegression()).fit(X, scrambled, sd).predict_proba(X)
    assert np.array_equal(p1, p2)


def test_bad_input_gives_a_clear_error():
    X, y, sd = covariate_shift(ns=50, nt=50)
    with pytest.raises(TransferkitError, match="no target rows"):
        KMM().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[60, 1] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        KMM().fit(bad, None, sd)
    with pytest.raises(TransferkitError, match="kernel"):
        KMM(kernel="poly").fit(X, None, sd)
    with pytest.raises(TransferkitError, match="B"):
        KMM(B=0.0).fit(X, None, sd)
    with pytest.raises(TransferkitError, match="cannot hold"):
        KMM(B=0.5, eps=0.1).fit(X, None, sd)  # weights <= 0.5 cannot sum to 0.9 n_s
    with pytest.raises(TransferkitError, match="gamma"):
        KMM(gamma=-1.0).fit(X, None, sd)


@pytest.mark.parametrize("kind", ["rbf", "linear"])
def test_solves_the_quadratic_program_like_a_generic_solver(kind):
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    ns, nt = 25, 15
    Xs, Xt = rng.normal(size=(ns, 2)), rng.normal(size=(nt, 2)) * 0.5 + 0.8
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(ns, int), -np.ones(nt, int)]
    B, eps, gamma = 4.0, 0.1, 0.5
    kmm = KMM(kernel=kind, B=B, eps=eps, gamma=gamma, tol=1e-9, max_iter=100000).fit(X, None, sd)
    K = kernel(Xs, Xs, kind, gamma)
    kappa = ns / nt * kernel(Xs, Xt, kind, gamma).sum(1)
    obj = lambda b: 0.5 * b @ K @ b - kappa @ b  # noqa: E731
    cons = [
        {"type": "ineq", "fun": lambda b: ns * (1 + eps) - b.sum()},
        {"type": "ineq", "fun": lambda b: b.sum() - ns * (1 - eps)},
    ]
    ref = minimize(obj, np.ones(ns), jac=lambda b: K @ b - kappa, bounds=[(0, B)] * ns, constraints=cons,
                   method="SLSQP", options={"ftol": 1e-14, "maxiter": 2000})  # fmt: skip
    assert ref.success
    b = kmm.weights_
    assert obj(b) == pytest.approx(ref.fun, rel=1e-5, abs=1e-5)
    assert (b >= 0).all() and (b <= B).all()
    assert ns * (1 - eps) - 1e-6 <= b.sum() <= ns * (1 + eps) + 1e-6
    if kind == "rbf":  # strictly convex: the minimiser itself is unique
        assert np.allclose(b, ref.x, atol=1e-3)


def test_defaults_follow_the_documented_rules():
    from transferkit.shallow._kernels import median_gamma

    X, y, sd = covariate_shift(ns=100, nt=80)
    kmm = KMM().fit(X, None, sd)
    assert kmm.gamma_ == pytest.approx(median_gamma(X))
    ns = 100
    eps = (np.sqrt(ns) - 1) / np.sqrt(ns)
    assert ns * (1 - eps) - 1e-3 <= kmm.weights_.sum() <= ns * (1 + eps) + 1e-3
    # a new source row gets the weight of its nearest fitted source row
    new = X[:3] + 1e-6
    assert np.allclose(kmm.compute_weights(new, np.zeros(3, int)), kmm.weights_[:3])


def test_an_unfinished_solve_warns_and_says_how_far_it_got():
    from sklearn.exceptions import ConvergenceWarning

    X, _, sd = covariate_shift(ns=120, nt=60)
    with pytest.warns(ConvergenceWarning, match="after 1 iterations; raise max_iter or tol"):
        kmm = KMM(max_iter=1, tol=1e-12).fit(X, None, sd)
    assert kmm.solver_status_ != "solved" and kmm.n_iter_ == 1
    assert (kmm.weights_ >= 0).all() and (kmm.weights_ <= kmm.B).all()
    assert KMM().fit(X, None, sd).solver_status_ == "solved"
