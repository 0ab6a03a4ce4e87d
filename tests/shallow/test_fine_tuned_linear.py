"""Fine-tuning a linear model: it helps with a few target labels, and it is plain SGD from the source."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit.domains import DomainDataset, few_shot_indices
from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.fine_tuned_linear import FineTunedLinear


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


def test_beats_source_only_and_target_only_with_three_labels_per_class():
    scores = []
    for seed in range(8):
        Xs, ys, Xt, yt = rotated_boundary(seed)
        X, y, sd, picked, test = few_shot_problem(Xs, ys, Xt, yt)
        source_only = LogisticRegression().fit(Xs, ys).score(Xt[test], yt[test])
        target_only = LogisticRegression().fit(Xt[picked], yt[picked]).score(Xt[test], yt[test])
        clf = DAClassifier(estimator=FineTunedLinear()).fit(X, y, sd)
        scores.append((source_only, target_only, np.mean(clf.predict(Xt[test]) == yt[test])))
    source_only, target_only, adapted = np.mean(scores, axis=0)
    assert adapted >= max(source_only, target_only) + 0.025, (adapted, source_only, target_only)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_target_phase_is_plain_sgd_from_the_source_weights(n_classes):
    """A naive loop: w_c -= eta0 (sigmoid(w_c.x + b_c) - [y = c]) x, rows in the seeded epoch order."""
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(90, 3)), rng.normal(size=(9, 3))
    ys, yt = np.arange(90) % n_classes, np.arange(9) % n_classes
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(90, int), -np.ones(9, int)]
    model = FineTunedLinear(n_epochs=4, eta0=0.05, random_state=3).fit(X, np.r_[ys, yt], sd)
    W, b = model.source_coef_.copy(), model.source_intercept_.copy()
    onehot = np.eye(n_classes)[yt] if n_classes > 2 else yt[:, None].astype(float)  # binary: one score
    order_rng = np.random.default_rng(3)
    for _ in range(4):
        for i in order_rng.permutation(9):  # the target rows are rows 90.. of X
            g = _sigmoid(W @ Xt[i] + b) - onehot[i]
            W -= 0.05 * g[:, None] * Xt[i][None, :]
            b -= 0.05 * g
    assert np.allclose(model.model_.coef_, W, atol=1e-10)
    assert np.allclose(model.model_.intercept_, b, atol=1e-10)
    assert not np.allclose(W, model.source_coef_)  # the loop did move the weights


def test_zero_epochs_is_the_source_model_and_more_epochs_drift_away():
    Xs, ys, Xt, yt = rotated_boundary(0)
    X, y, sd, _, _ = few_shot_problem(Xs, ys, Xt, yt)
    dist = []
    for n_epochs in (0, 1, 5, 50):
        m = FineTunedLinear(n_epochs=n_epochs).fit(X, y, sd)
        dist.append(np.linalg.norm(m.model_.coef_ - m.source_coef_))
    assert dist[0] == 0.0
    assert dist[1] < dist[2] < dist[3], dist


def test_deterministic_given_random_state():
    Xs, ys, Xt, yt = rotated_boundary(0)
    X, y, sd, _, _ = few_shot_problem(Xs, ys, Xt, yt)
    a = FineTunedLinear(random_state=1).fit(X, y, sd).predict_proba(Xt)
    b = FineTunedLinear(random_state=1).fit(X, y, sd).predict_proba(Xt)
    c = FineTunedLinear(random_state=2).fit(X, y, sd).predict_proba(Xt)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # the seed is really used


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
        return DAClassifier(estimator=FineTunedLinear()).fit(arr.X, y, arr.sample_domain).predict_proba(Xt)

    assert np.array_equal(predictions(yt), predictions(scrambled))
    X, sd = np.vstack([Xs, Xt]), np.r_[np.zeros(200, int), -np.ones(200, int)]
    with pytest.raises(TransferkitError, match="no target rows with a label"):
        FineTunedLinear().fit(X, np.r_[ys, np.full(200, -1)], sd)


def test_bad_input_gives_a_clear_error():
    Xs, ys, Xt, yt = rotated_boundary(0, n=50)
    X, y, sd, _, _ = few_shot_problem(Xs, ys, Xt, yt)
    with pytest.raises(TransferkitError, match="no target rows"):
        FineTunedLinear().fit(Xs, ys, np.zeros(50, int))
    bad = X.copy()
    bad[3, 0] = np.inf
    with pytest.raises(TransferkitError, match="NaN"):
        FineTunedLinear().fit(bad, y, sd)
    with pytest.raises(TransferkitError, match="eta0"):
        FineTunedLinear(eta0=0.0).fit(X, y, sd)
    unknown = y.copy()
    unknown[np.flatnonzero(y[50:] >= 0)[0] + 50] = 7
    with pytest.raises(TransferkitError, match="that no source row has"):
        FineTunedLinear().fit(X, unknown, sd)
    model = FineTunedLinear().fit(X, y, sd)
    with pytest.raises(TransferkitError, match="features"):
        model.predict(np.c_[Xt, Xt])


def test_a_class_only_the_target_has_is_named_with_the_way_out():
    # both methods start from the source model's classes; the error said "the label sets must match"
    # without naming the class (an audit with a site lacking a class)
    from transferkit.shallow.regularized_transfer import RegularizedTransferLR

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.r_[np.repeat([0, 1], 20), [0, 1, 2, 2, 2] * 4]
    sd = np.r_[np.zeros(40, int), -np.ones(20, int)]
    for est, owner in (
        (FineTunedLinear(), "FineTunedLinear"),
        (RegularizedTransferLR(), "RegularizedTransferLR"),
    ):
        with pytest.raises(
            TransferkitError, match=rf"class\(es\) \[2\] that no source row has: {owner}.*tradaboost"
        ):
            est.fit(X, y, sd)
