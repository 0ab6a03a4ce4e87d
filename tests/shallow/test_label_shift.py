"""The label-shift method (BBSE): the prior it estimates, the two corrections against a naive
reference, agreement with diagnose, no target label read, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from transferkit import registry
from transferkit.diagnostics import label_shift
from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.label_shift import LabelShift


def _shifted(seed: int = 0, prior=(0.7, 0.2, 0.1), n: int = 900):
    """Three overlapping classes, balanced in the source, ``prior`` in the target; same p(x|y)."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [2.5, 0.0], [0.0, 2.5]])
    ys = np.arange(n) % 3
    yt = rng.choice(3, size=n, p=prior)
    Xs, Xt = rng.normal(size=(n, 2)) + means[ys], rng.normal(size=(n, 2)) + means[yt]
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, np.int64), -np.ones(n, np.int64)]
    return X, np.r_[ys, -np.ones(n, np.int64)], sd, yt


@pytest.mark.parametrize("correction", ["reweight", "posterior"])
def test_it_finds_the_target_prior_and_beats_source_only(correction):
    X, y, sd, yt = _shifted()
    clf = LabelShift(correction=correction).fit(X, y, sd)
    np.testing.assert_allclose(clf.target_prior_, np.bincount(yt) / len(yt), atol=0.05)  # [.67 .23 .10]
    np.testing.assert_allclose(clf.class_weights_, clf.target_prior_ / clf.source_prior_)
    src = sd >= 0
    plain = LogisticRegression(C=0.1, max_iter=2000).fit(X[src], y[src])
    acc, acc0 = np.mean(clf.predict(X[~src]) == yt), np.mean(plain.predict(X[~src]) == yt)
    assert acc > acc0 + 0.03, (acc, acc0)  # 0.869 vs 0.818
    # with the default estimator, the estimate diagnose reports
    report = label_shift(X[src], y[src], X[~src])
    np.testing.assert_allclose(clf.target_prior_, report["target_prior"], atol=1e-4)


def test_the_corrections_are_their_formulas():
    X, y, sd, _ = _shifted(1)
    src = sd >= 0
    clf = LabelShift(estimator=LogisticRegression(max_iter=2000), correction="posterior").fit(X, y, sd)
    p = LogisticRegression(max_iter=2000).fit(X[src], y[src]).predict_proba(X[~src]) * clf.class_weights_
    np.testing.assert_allclose(clf.predict_proba(X[~src]), p / p.sum(1, keepdims=True), rtol=1e-6)
    assert (clf.predict(X[~src]) == p.argmax(1)).all()
    clf = LabelShift(estimator=LogisticRegression(max_iter=2000)).fit(X, y, sd)
    ref = LogisticRegression(max_iter=2000).fit(X[src], y[src], sample_weight=clf.class_weights_[y[src]])
    np.testing.assert_allclose(clf.estimator_.coef_, ref.coef_)


def test_no_shift_keeps_the_weights_near_one_and_no_target_label_is_read():
    X, y, sd, yt = _shifted(2, prior=(1 / 3, 1 / 3, 1 / 3))
    clf = LabelShift().fit(X, y, sd)
    assert np.abs(clf.class_weights_ - 1).max() < 0.2
    # the same fit whatever the target's labels say (through the composer, which masks them too)
    told = np.where(sd < 0, np.r_[y[sd >= 0], yt[::-1]], y)  # the target rows' labels, reversed
    a = DAClassifier(None, LabelShift(), ()).fit(X, told, sd).predict(X[sd < 0], sd[sd < 0])
    direct = LabelShift().fit(X, told, sd)
    assert (a == clf.predict(X[sd < 0])).all() and (direct.predict(X[sd < 0]) == a).all()


def test_errors_name_the_fix():
    X, y, sd, _ = _shifted(3, n=90)
    with pytest.raises(TransferkitError, match="correction must be 'reweight' or 'posterior'"):
        LabelShift(correction="both").fit(X, y, sd)
    with pytest.raises(TransferkitError, match="which LinearSVC does not give.*correction=reweight"):
        LabelShift(estimator=LinearSVC(), correction="posterior").fit(X, y, sd)

    class NoWeights(LogisticRegression):
        def fit(self, X, y):  # no sample_weight
            return super().fit(X, y)

    with pytest.raises(TransferkitError, match="sample weights, which NoWeights does not take"):
        LabelShift(estimator=NoWeights()).fit(X, y, sd)
    y1 = y.copy()
    y1[sd >= 0] = 0
    with pytest.raises(TransferkitError, match="source rows hold 1 class; a classifier needs at least 2"):
        LabelShift().fit(X, y1, sd)
    # a registered estimator by name, as --set estimator=logreg passes it
    clf = registry.build("method", "label-shift", {"estimator": "logreg", "correction": "posterior"})
    assert clf.fit(X, y, sd).predict(X[sd < 0]).shape == ((sd < 0).sum(),)


def test_diagnose_names_the_method_and_its_assumption_when_the_proportions_move():
    from transferkit.diagnostics import diagnose

    X, y, sd, _ = _shifted(4)
    src = sd >= 0
    report = diagnose(X[src], y[src], X[~src], n_permutations=20)
    assert "label-shift" in report.recommendation
    said = " ".join(report.summary)
    assert "--method label-shift" in said and "if each class keeps its look" in said
