"""KLIEP: it helps under covariate shift, its solver and weight function match references, no labels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import covariate_shift, target_accuracy
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.kliep import KLIEP, kliep_objective, solve_kliep


def test_beats_source_only_under_covariate_shift():
    X, y, sd = covariate_shift()
    source_only = target_accuracy(DAClassifier(None, LogisticRegression()), X, y, sd)
    adapted = target_accuracy(DAClassifier(KLIEP(), LogisticRegression()), X, y, sd)
    assert adapted >= source_only + 0.2, (adapted, source_only)
    assert adapted > 0.9


def test_weights_estimate_the_density_ratio():
    X, y, sd = covariate_shift()
    src = sd >= 0
    w = KLIEP().fit(X, None, sd).compute_weights(X[src], sd[src])
    inside = X[src, 0] > 0.5
    # true ratio: (1/3.5) / (1/8) = 2.29 inside the target's region, 0 outside
    assert w.mean() == pytest.approx(1.0, rel=1e-6)
    assert np.median(w[inside & (X[src, 0] > 1) & (X[src, 0] < 3.5)]) == pytest.approx(8 / 3.5, rel=0.25)
    assert np.median(w[X[src, 0] < -1]) < 0.1


def test_deterministic_given_random_state():
    X, y, sd = covariate_shift(ns=200, nt=300)
    a = KLIEP(random_state=3).fit(X, None, sd)
    b = KLIEP(random_state=3).fit(X, None, sd)
    assert np.array_equal(a.compute_weights(X, sd), b.compute_weights(X, sd))
    c = KLIEP(random_state=4).fit(X, None, sd)
    assert not np.array_equal(a.centers_, c.centers_)  # the seed does pick the centres


def test_target_labels_are_never_read():
    X, y, sd = covariate_shift(ns=200, nt=300)
    hidden = np.where(sd < 0, -1, y)
    w_true = KLIEP().fit(X, y, sd).compute_weights(X, sd)
    w_hidden = KLIEP().fit(X, hidden, sd).compute_weights(X, sd)
    assert np.array_equal(w_true, w_hidden)
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    p1 = DAClassifier(KLIEP(), LogisticRegression()).fit(X, y, sd).predict_proba(X)
    p2 = DAClassifier(KLIEP(), LogisticRegression()).fit(X, scrambled, sd).predict_proba(X)
    assert np.array_equal(p1, p2)


def test_bad_input_gives_a_clear_error():
    X, y, sd = covariate_shift(ns=50, nt=50)
    with pytest.raises(TransferkitError, match="no target rows"):
        KLIEP().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[70, 0] = np.inf
    with pytest.raises(TransferkitError, match="NaN or infinite"):
        KLIEP().fit(bad, None, sd)
    with pytest.raises(TransferkitError, match="cross-validation"):
        KLIEP(cv=5).fit(X[:53], None, sd[:53])  # 3 target rows cannot make 5 folds
    with pytest.raises(TransferkitError, match="gammas"):
        KLIEP(gammas=(1.0, -2.0)).fit(X, None, sd)
    with pytest.raises(TransferkitError, match="n_centers"):
        KLIEP(n_centers=0).fit(X, None, sd)


def test_solver_matches_a_generic_constrained_solver():
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    A = rng.uniform(0.01, 1.0, (40, 6)) ** 3
    a, _ = solve_kliep(A, max_iter=20000, tol=1e-13)
    ref = minimize(lambda v: -np.mean(np.log(A @ v)), np.full(6, 1 / 6), method="SLSQP",
                   jac=lambda v: -A.T @ (1 / (A @ v)) / len(A), bounds=[(1e-12, 1)] * 6,
                   constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
                   options={"ftol": 1e-15, "maxiter": 1000})  # fmt: skip
    assert ref.success
    assert a.sum() == pytest.approx(1.0) and (a >= 0).all()
    assert kliep_objective(A, a) == pytest.approx(-ref.fun, abs=1e-7)
    assert kliep_objective(A, a) >= -ref.fun - 1e-9
    assert np.allclose(a, ref.x, atol=1e-3)


def test_weight_function_is_the_paper_model():
    """w(x) = sum_l alpha_l exp(-gamma ||x - c_l||^2) with mean 1 over the source rows, by a loop."""
    rng = np.random.default_rng(2)
    Xs, Xt = rng.normal(size=(60, 3)), rng.normal(size=(40, 3)) + 0.7
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(60, int), -np.ones(40, int)]
    m = KLIEP(n_centers=15).fit(X, None, sd)
    Q = rng.normal(size=(7, 3))
    naive = [
        sum(al * np.exp(-m.gamma_ * np.sum((q - c) ** 2)) for al, c in zip(m.alpha_, m.centers_)) for q in Q
    ]
    assert np.allclose(m.compute_weights(Q, np.zeros(7, int)), naive, rtol=1e-8)
    naive_src = [
        sum(al * np.exp(-m.gamma_ * np.sum((x - c) ** 2)) for al, c in zip(m.alpha_, m.centers_)) for x in Xs
    ]
    assert np.mean(naive_src) == pytest.approx(1.0, rel=1e-8)
    assert (m.alpha_ >= 0).all()
    assert len(m.centers_) == 15 and all(any(np.array_equal(c, t) for t in Xt) for c in m.centers_)


def test_width_is_chosen_by_cross_validation():
    from transferkit.shallow._kernels import median_gamma

    X, y, sd = covariate_shift(ns=200, nt=300)
    grid = (0.01, 0.1, 1.0, 10.0)
    m = KLIEP(gammas=grid).fit(X, None, sd)
    assert set(m.cv_scores_) == set(grid)
    best = max(m.cv_scores_, key=m.cv_scores_.get)
    assert m.gamma_ == pytest.approx(best * median_gamma(X, random_state=0))
    assert best != 0.01  # a nearly flat kernel cannot fit the sharp edge of the target region
    one = KLIEP(gammas=(0.5,)).fit(X, None, sd)  # a single width: no cross-validation
    assert one.cv_scores_ == {} and one.gamma_ == pytest.approx(0.5 * median_gamma(X, random_state=0))


def test_the_simplex_projection_is_pots_to_the_last_bit():
    # KLIEP projects with its own copy of the sort-and-threshold rule (POT's backend dispatch was most of a
    # step's time); it must give POT's numbers exactly, so that no committed KLIEP weight moves
    from ot.utils import proj_simplex

    from transferkit.shallow.kliep import _project_to_simplex

    rng = np.random.default_rng(0)
    for i in range(2000):
        v = rng.normal(size=int(rng.integers(1, 120))) * rng.uniform(1e-3, 10.0)
        if i % 2:  # near the simplex already, as KLIEP's iterates are
            v = np.abs(v) / np.abs(v).sum() + 1e-3 * rng.normal(size=len(v))
        p = _project_to_simplex(v)
        assert np.array_equal(p, proj_simplex(v))
        assert p.min() >= 0 and abs(p.sum() - 1.0) < 1e-12
    # the projection of a point far off the simplex: the nearest vertex
    assert _project_to_simplex(np.array([10.0, 0.0, -3.0])).tolist() == [1.0, 0.0, 0.0]
