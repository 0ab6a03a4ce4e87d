"""L2-SP / L1-SP logistic regression: its math, its limits, and that it helps with a few target labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit.domains import DomainDataset, few_shot_indices
from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.regularized_transfer import RegularizedTransferLR


def rotated_boundary(seed=0, d=5, n=400, angle=0.5, noise=0.1):
    """The target's decision boundary is the source's rotated by ``angle`` (radians) in a plane."""
    rng = np.random.default_rng(seed)
    w_s = np.eye(d)[0]
    w_t = np.cos(angle) * np.eye(d)[0] + np.sin(angle) * np.eye(d)[1]
    Xs, Xt = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    ys = (Xs @ w_s > 0).astype(int)
    ys = np.where(rng.random(n) < noise, 1 - ys, ys)
    return Xs, ys, Xt, (Xt @ w_t > 0).astype(int)


def few_shot_problem(Xs, ys, Xt, yt, k=3):
    """Arrays as the experiment passes them: source labels, ``k`` revealed target labels per class."""
    picked = few_shot_indices(yt, k, 0)
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(len(Xs), int), -np.ones(len(Xt), int)]
    y = np.r_[ys, np.full(len(Xt), -1)]
    y[len(Xs) + picked] = yt[picked]
    test = np.ones(len(Xt), bool)
    test[picked] = False
    return X, y, sd, picked, test


@pytest.mark.parametrize(
    "settings", [{}, {"penalty": "l1-sp"}, {"source_weight": 1.0}], ids=["l2-sp", "l1-sp", "joint"]
)
def test_beats_source_only_and_target_only_with_three_labels_per_class(settings):
    scores = []
    for seed in range(8):
        Xs, ys, Xt, yt = rotated_boundary(seed)
        X, y, sd, picked, test = few_shot_problem(Xs, ys, Xt, yt)
        source_only = LogisticRegression().fit(Xs, ys).score(Xt[test], yt[test])
        target_only = LogisticRegression().fit(Xt[picked], yt[picked]).score(Xt[test], yt[test])
        clf = DAClassifier(estimator=RegularizedTransferLR(**settings)).fit(X, y, sd)
        scores.append((source_only, target_only, np.mean(clf.predict(Xt[test]) == yt[test])))
    source_only, target_only, adapted = np.mean(scores, axis=0)
    assert adapted >= max(source_only, target_only) + 0.025, (adapted, source_only, target_only)


def _fitted(penalty="l2-sp", alpha=0.3, source_weight=0.5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    Xs, Xt = rng.normal(size=(60, 4)), rng.normal(size=(12, 4))
    ys, yt = rng.integers(0, k, 60), rng.integers(0, k, 12)
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(60, int), -np.ones(12, int)]
    model = RegularizedTransferLR(penalty=penalty, alpha=alpha, source_weight=source_weight)
    model.fit(X, np.r_[ys, yt], sd)
    Y = lambda v: np.eye(k)[v]  # noqa: E731
    return model, (Xt, Y(yt), Xs, Y(ys))


@pytest.mark.parametrize("penalty", ["l2-sp", "l2"])
def test_gradient_matches_finite_differences(penalty):
    model, data = _fitted(penalty)
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=model.coef_.shape), rng.normal(size=model.intercept_.shape)
    _, gW, gb = model.objective(W, b, *data)
    h = 1e-6
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            E = np.zeros_like(W)
            E[i, j] = h
            fd = (model.objective(W + E, b, *data)[0] - model.objective(W - E, b, *data)[0]) / (2 * h)
            assert fd == pytest.approx(gW[i, j], rel=1e-5, abs=1e-8)
        e = np.zeros_like(b)
        e[i] = h
        fd = (model.objective(W, b + e, *data)[0] - model.objective(W, b - e, *data)[0]) / (2 * h)
        assert fd == pytest.approx(gb[i], rel=1e-5, abs=1e-8)


def test_solution_is_a_stationary_point_of_the_objective():
    model, data = _fitted("l2-sp")
    _, gW, gb = model.objective(model.coef_, model.intercept_, *data)
    assert np.abs(gW).max() < 1e-4 and np.abs(gb).max() < 1e-4


def test_plain_l2_is_sklearns_logistic_regression():
    """Mean cross-entropy + alpha/2 ||W||^2, intercept free, is LogisticRegression with C = 1/(n alpha)."""
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(80, 3)), rng.normal(size=(50, 3))
    ys, yt = rng.integers(0, 3, 80), rng.integers(0, 3, 50)
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(80, int), -np.ones(50, int)]
    alpha = 0.05
    ours = RegularizedTransferLR(penalty="l2", alpha=alpha, tol=1e-10).fit(X, np.r_[ys, yt], sd)
    ref = LogisticRegression(C=1 / (50 * alpha), tol=1e-10, max_iter=10_000).fit(Xt, yt)
    assert np.allclose(ours.predict_proba(Xt), ref.predict_proba(Xt), atol=1e-5)


def test_alpha_to_infinity_is_the_source_model_and_to_zero_the_target_only_model():
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(200, 2)), rng.normal(size=(60, 2))
    ys = (Xs[:, 0] > 0).astype(int)
    yt = (Xt[:, 1] + rng.normal(size=60) > 0).astype(int)  # noisy: the unpenalized fit is finite
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(200, int), -np.ones(60, int)]
    y = np.r_[ys, yt]
    source = LogisticRegression().fit(Xs, ys)
    for penalty in ("l2-sp", "l1-sp"):
        big = RegularizedTransferLR(penalty=penalty, alpha=1e6).fit(X, y, sd)
        assert np.allclose(big.coef_, big.source_coef_, atol=1e-5)
        assert np.allclose(big.predict_proba(Xt), source.predict_proba(Xt), atol=1e-5)
    small = RegularizedTransferLR(alpha=1e-9, tol=1e-10, max_iter=5000).fit(X, y, sd)
    target_only = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(Xt, yt)
    assert np.allclose(small.predict_proba(Xt), target_only.predict_proba(Xt), atol=1e-4)


@pytest.mark.parametrize("penalty", ["l1-sp", "l1"])
def test_l1_solution_satisfies_the_optimality_conditions(penalty):
    """Subgradient conditions: grad = -alpha sign(W - W0) off the anchor, |grad| <= alpha on it."""
    alpha = 0.05
    model, data = _fitted(penalty, alpha=alpha)
    model.set_params(tol=1e-12, max_iter=20_000).fit(*_refit_args(data))
    W0, b0 = model._anchors()
    Xt, Yt, Xs, Ys = data
    _, gW, gb = model._loss(model.coef_, model.intercept_, ((Xt, Yt), (Xs, Ys)))  # the smooth part
    params, grads, anchors = [model.coef_], [gW], [W0]
    if b0 is not None:
        params, grads, anchors = params + [model.intercept_], grads + [gb], anchors + [b0]
    else:
        assert np.abs(gb).max() < 1e-5  # a free intercept: zero gradient
    n_on_anchor = 0
    for P, G, A in zip(params, grads, anchors):
        D = P - A
        on = np.abs(D) < 1e-9
        n_on_anchor += on.sum()
        assert np.all(np.abs(G[on]) <= alpha + 1e-5)
        assert np.allclose(G[~on], -alpha * np.sign(D[~on]), atol=1e-5)
    assert n_on_anchor > 0  # the test would be vacuous if no coordinate sat on the anchor


def _refit_args(data):
    Xt, Yt, Xs, Ys = data
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(len(Xs), int), -np.ones(len(Xt), int)]
    return X, np.r_[Ys.argmax(1), Yt.argmax(1)], sd


def test_deterministic():
    Xs, ys, Xt, yt = rotated_boundary(0)
    X, y, sd, _, _ = few_shot_problem(Xs, ys, Xt, yt)
    for penalty in ("l2-sp", "l1-sp"):
        a = RegularizedTransferLR(penalty=penalty).fit(X, y, sd).predict_proba(Xt)
        b = RegularizedTransferLR(penalty=penalty).fit(X, y, sd).predict_proba(Xt)
        assert np.array_equal(a, b)


def test_only_revealed_target_labels_are_read():
    Xs, ys, Xt, yt = rotated_boundary(0, n=200)
    picked = few_shot_indices(yt, 3, 0)
    rest = np.setdiff1d(np.arange(len(yt)), picked)
    scrambled = yt.copy()
    scrambled[rest] = np.random.default_rng(1).permutation(yt[rest])

    def predictions(target_labels):
        ds = DomainDataset("toy", {"s": Xs, "t": Xt}, {"s": ys, "t": target_labels}, ("a", "b"))
        arr = ds.to_arrays(["s"], ["t"])  # every target label hidden
        y = arr.y.copy()
        y[np.flatnonzero(arr.target)[picked]] = ds.labels("t")[picked]  # the few the user gives
        return DAClassifier(estimator=RegularizedTransferLR()).fit(arr.X, y, arr.sample_domain).predict(Xt)

    assert np.array_equal(predictions(yt), predictions(scrambled))
    # the method's own fit with every target label hidden: a clear error, not a silent source model
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(200, int), -np.ones(200, int)]
    with pytest.raises(TransferkitError, match="no target rows with a label"):
        RegularizedTransferLR().fit(X, np.r_[ys, np.full(200, -1)], sd)


def test_bad_input_gives_a_clear_error():
    Xs, ys, Xt, yt = rotated_boundary(0, n=50)
    X, y, sd, _, _ = few_shot_problem(Xs, ys, Xt, yt)
    with pytest.raises(TransferkitError, match="no target rows"):
        RegularizedTransferLR().fit(Xs, ys, np.zeros(50, int))
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        RegularizedTransferLR().fit(bad, y, sd)
    with pytest.raises(TransferkitError, match="penalty"):
        RegularizedTransferLR(penalty="l3").fit(X, y, sd)
    with pytest.raises(TransferkitError, match="alpha"):
        RegularizedTransferLR(alpha=-1.0).fit(X, y, sd)
    unknown = y.copy()
    unknown[np.flatnonzero(y[50:] >= 0)[0] + 50] = 7
    with pytest.raises(TransferkitError, match="that no source row has"):
        RegularizedTransferLR().fit(X, unknown, sd)
    model = RegularizedTransferLR().fit(X, y, sd)
    with pytest.raises(TransferkitError, match="features"):
        model.predict(np.c_[Xt, Xt])
