"""Self-training: it helps under a translation, selects pseudo-labels as documented, keeps true labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.svm import LinearSVC

from transferkit.domains import DomainDataset
from transferkit.errors import TransferkitError
from transferkit.estimators import LinearSVMCV
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.self_training import SelfTraining


def translated(seed=0, n=200, gap=8.0, shift=(3.5, 1.0)):
    """Two well separated clusters per class; the target is the source moved part of the way across."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    centers = lambda mode: np.c_[gap * y, 5.0 * mode]  # noqa: E731
    Xs = centers(rng.integers(0, 2, n)) + rng.normal(size=(n, 2))
    Xt = centers(rng.integers(0, 2, n)) + rng.normal(size=(n, 2)) + shift
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[y, y], sd


def _unsupervised(y, sd):
    return np.where(sd < 0, -1, y)


@pytest.mark.parametrize("estimator", [None, LinearSVC()], ids=["logreg", "linear-svc"])
def test_beats_source_only_under_a_translation(estimator):
    gains = []
    for seed in range(3):
        X, y, sd = translated(seed)
        tgt = sd < 0
        source_only = LogisticRegression().fit(X[~tgt], y[~tgt]).score(X[tgt], y[tgt])
        clf = DAClassifier(estimator=SelfTraining(estimator)).fit(X, _unsupervised(y, sd), sd)
        gains.append(np.mean(clf.predict(X[tgt]) == y[tgt]) - source_only)
    assert np.mean(gains) >= 0.07 and min(gains) > 0.03, gains


def test_pseudo_labels_follow_the_documented_rule():
    """One round against a naive loop: per class, the most confident rows above the threshold, at most
    ceil(fraction * n_t * prior)."""
    X, y, sd = translated(0)
    keep = np.ones(len(y), bool)
    keep[np.flatnonzero((sd >= 0) & (y == 1))[:60]] = False  # an unbalanced source prior: 100 vs 40
    X, y, sd = X[keep], _unsupervised(y, sd)[keep], sd[keep]
    src, tgt = sd >= 0, sd < 0
    for threshold in (0.9, None):
        model = SelfTraining(threshold=threshold, fraction=0.6, n_rounds=1).fit(X, y, sd)
        proba = LogisticRegression(max_iter=1000).fit(X[src], y[src]).predict_proba(X[tgt])
        expected = np.full(tgt.sum(), -1)
        for c in (0, 1):
            budget = int(np.ceil(0.6 * tgt.sum() * np.mean(y[src] == c)))
            rows = [i for i in range(len(proba)) if proba[i].argmax() == c]
            rows = [i for i in rows if threshold is None or proba[i, c] >= threshold]
            rows = sorted(rows, key=lambda i: -proba[i, c])[:budget]
            for i in rows:
                expected[i] = c
        assert np.array_equal(model.pseudo_labels_, expected)
        if threshold is None:  # budgets from the source prior, 0.6 x 200 x (100, 40) / 140: 86 and 35
            counts = np.bincount(model.pseudo_labels_[model.pseudo_labels_ >= 0])
            assert counts[0] <= 86 and counts[1] == 35
            assert np.sum(proba.argmax(1) == 1) > 35  # the class-1 budget did cut


class Recorder(LogisticRegression):
    """A logistic regression that remembers every training set it was given."""

    log: list = []

    def fit(self, X, y, sample_weight=None):
        Recorder.log.append((np.array(X), np.array(y)))
        return super().fit(X, y, sample_weight)


def test_unsupervised_uses_only_source_labels_and_its_own_pseudo_labels():
    X, y_true, sd = translated(0)
    Recorder.log = []
    model = SelfTraining(Recorder()).fit(X, _unsupervised(y_true, sd), sd)
    first_X, first_y = Recorder.log[0]
    assert np.array_equal(first_X, X[sd >= 0]) and np.array_equal(first_y, y_true[sd >= 0])
    # the last training set: the source plus the target rows with a pseudo-label, and those labels
    last_X, last_y = Recorder.log[-1]
    labelled = model.pseudo_labels_ >= 0
    assert np.array_equal(last_X, np.vstack([X[sd >= 0], X[sd < 0][labelled]]))
    assert np.array_equal(last_y, np.r_[y_true[sd >= 0], model.pseudo_labels_[labelled]])
    assert len(Recorder.log) > 2  # several rounds ran


def test_scrambled_target_labels_change_nothing_in_unsupervised_mode():
    X, y, sd = translated(0)
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).permutation(y[sd < 0])

    def predictions(labels):
        features, targets = {"s": X[sd >= 0], "t": X[sd < 0]}, {"s": labels[sd >= 0], "t": labels[sd < 0]}
        ds = DomainDataset("toy", features, targets, ("a", "b"))
        arr = ds.to_arrays(["s"], ["t"])  # the unsupervised experiment: every target label hidden
        return DAClassifier(estimator=SelfTraining()).fit(arr.X, arr.y, arr.sample_domain).predict_proba(X)

    assert np.array_equal(predictions(y), predictions(scrambled))


def test_revealed_target_labels_are_kept_and_never_overwritten():
    X, y_true, sd = translated(0)
    y = _unsupervised(y_true, sd)
    revealed = np.flatnonzero(sd < 0)[[0, 1, 150, 151]]
    y[revealed] = 1 - y_true[revealed]  # deliberately wrong: pseudo-labelling would disagree
    Recorder.log = []
    model = SelfTraining(Recorder()).fit(X, y, sd)
    assert (model.pseudo_labels_[revealed - (sd >= 0).sum()] == -1).all()
    for Xr, yr in Recorder.log:  # every round trains on them, with the label given
        for i in revealed:
            hit = np.flatnonzero((Xr == X[i]).all(1))
            assert hit.size == 1 and yr[hit[0]] == y[i]


def test_class_balance_keeps_one_class_from_swallowing_the_target():
    X, y, sd = translated(0)  # the most confident target rows look like class 1 to the source model
    y = _unsupervised(y, sd)
    balanced = SelfTraining(threshold=None, n_rounds=1, fraction=0.5).fit(X, y, sd)
    naive = SelfTraining(threshold=None, n_rounds=1, fraction=0.5, class_balance=False).fit(X, y, sd)
    count = lambda m: np.bincount(m.pseudo_labels_[m.pseudo_labels_ >= 0], minlength=2)  # noqa: E731
    assert count(balanced).tolist() == [50, 50]
    assert count(naive).tolist() == [0, 100]


def test_hyperparameters_chosen_on_the_source_are_frozen():
    X, y, sd = translated(0, n=120)
    y = _unsupervised(y, sd)
    first = LinearSVMCV().fit(X[sd >= 0], y[sd >= 0])
    model = SelfTraining(LinearSVMCV()).fit(X, y, sd)
    assert model.estimator_.Cs == (first.best_C_,)
    assert (
        SelfTraining(LinearSVMCV(), freeze_hyperparameters=False).fit(X, y, sd).estimator_.Cs
        == LinearSVMCV().Cs
    )
    grid = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=2)
    model = SelfTraining(grid).fit(X, y, sd)
    assert isinstance(model.estimator_, LogisticRegression)
    assert model.estimator_.C == clone(grid).fit(X[sd >= 0], y[sd >= 0]).best_params_["C"]


def test_deterministic():
    X, y, sd = translated(0)
    y = _unsupervised(y, sd)
    a = SelfTraining().fit(X, y, sd)
    b = SelfTraining().fit(X, y, sd)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.pseudo_labels_, b.pseudo_labels_)


def test_bad_input_gives_a_clear_error():
    X, y, sd = translated(0, n=40)
    y = _unsupervised(y, sd)
    with pytest.raises(TransferkitError, match="no target rows"):
        SelfTraining().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[50, 1] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        SelfTraining().fit(bad, y, sd)
    with pytest.raises(TransferkitError, match="threshold"):
        SelfTraining(threshold=1.5).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="fraction"):
        SelfTraining(fraction=0.0).fit(X, y, sd)
    model = SelfTraining().fit(X, y, sd)
    with pytest.raises(TransferkitError, match="features"):
        model.predict(np.c_[X, X])
