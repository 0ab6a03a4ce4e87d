"""The composer (DAClassifier) as a scikit-learn classifier: weights, classes, column names, scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.preprocessing import Standardize
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.coral import CORAL
from transferkit.shallow.kmm import KMM
from transferkit.shallow.self_training import SelfTraining


def _data(seed=0, n=60, d=4, k=3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    ys, yt = rng.integers(0, k, n), rng.integers(0, k, n)
    X = np.vstack([centers[ys] + rng.normal(size=(n, d)), centers[yt] + rng.normal(size=(n, d)) + 1])
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, -np.ones(n, int)], sd, yt


class _Spy(ClassifierMixin, BaseEstimator):
    """Records the sample weights of its fit (a logistic regression underneath)."""

    def fit(self, X, y, sample_weight=None):
        self.weights_ = None if sample_weight is None else np.asarray(sample_weight)
        self.model_ = LogisticRegression(max_iter=500).fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


def test_sample_weight_weighs_the_source_rows_and_multiplies_a_reweighters():
    X, y, sd, _ = _data()
    w = np.random.default_rng(1).uniform(0.2, 3.0, len(y))
    plain = DAClassifier(estimator=LogisticRegression(max_iter=500)).fit(X, y, sd, sample_weight=w)
    direct = LogisticRegression(max_iter=500).fit(X[sd >= 0], y[sd >= 0], sample_weight=w[sd >= 0])
    assert np.allclose(plain.estimator_.coef_, direct.coef_)
    kmm_weights = KMM().fit(X, y, sd).compute_weights(X, sd)
    spy = DAClassifier(KMM(), _Spy()).fit(X, y, sd, sample_weight=w)
    assert np.allclose(spy.estimator_.weights_, (kmm_weights * w)[sd >= 0])
    for bad, message in ((w[:5], "one finite weight >= 0 per row"), (-w, "negative or non-finite")):
        with pytest.raises(TransferkitError, match=message):
            DAClassifier(CORAL()).fit(X, y, sd, sample_weight=bad)
    with pytest.raises(TransferkitError, match="SelfTraining takes no sample weights, so sample_weight"):
        DAClassifier(estimator=SelfTraining()).fit(X, y, sd, sample_weight=w)
    # a reweighter's own weights, too: they were computed and silently dropped
    with pytest.raises(TransferkitError, match="SelfTraining takes no sample weights, so the weights of KMM"):
        DAClassifier(KMM(), SelfTraining()).fit(X, y, sd)
    # a plain classifier without the parameter (the registry's nearest-neighbor) failed inside scikit-learn
    from sklearn.neighbors import KNeighborsClassifier

    with pytest.raises(
        TransferkitError, match="KNeighborsClassifier takes no sample weights, so the weights"
    ):
        DAClassifier(KMM(), KNeighborsClassifier(1)).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="every source row has weight 0"):
        DAClassifier(CORAL()).fit(X, y, sd, sample_weight=np.zeros(len(y)))


def test_classes_are_the_final_classifiers_with_a_revealed_target_class():
    # class 2 exists only in the target, and three of its rows are revealed to a semi-supervised method
    X, y, sd, yt = _data(k=3)
    y = np.where((sd >= 0) & (y == 2), 0, y)
    rows = np.flatnonzero(sd < 0)
    revealed = rows[np.flatnonzero(yt == 2)[:3]]
    y[revealed] = 2
    clf = DAClassifier(estimator=SelfTraining()).fit(X, y, sd)
    proba = clf.predict_proba(X[sd < 0])
    assert clf.classes_.tolist() == [0, 1, 2] and proba.shape[1] == 3
    assert np.array_equal(clf.classes_[proba.argmax(1)], clf.predict(X[sd < 0]))


def test_table_columns_are_recorded_and_checked_by_name():
    X, y, sd, _ = _data()
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = DAClassifier(CORAL()).fit(df, y, sd)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    target = df[sd < 0]
    with pytest.raises(TransferkitError, match="not the ones the model was fitted with, in that order"):
        clf.predict(target[["d", "c", "b", "a"]])
    with pytest.raises(
        TransferkitError, match="fitted with \\['a', 'b', 'c', 'd'\\], got \\['a', 'b', 'c', 'e'\\]"
    ):
        clf.predict(target.rename(columns={"d": "e"}))
    assert np.array_equal(
        clf.predict(target[["d", "c", "b", "a"]][clf.feature_names_in_]), clf.predict(X[sd < 0])
    )
    assert not hasattr(clf.fit(X, y, sd), "feature_names_in_")  # refitted on plain arrays: no names


def test_score_leaves_unlabelled_rows_out():
    X, y, sd, yt = _data()
    clf = DAClassifier(CORAL()).fit(X, y, sd)
    src = sd >= 0
    assert clf.score(X, y, sd) == pytest.approx(np.mean(clf.predict(X[src], sd[src]) == y[src]))
    with pytest.raises(TransferkitError, match="every label of y is -1"):
        clf.score(X[~src], y[~src])


def test_predict_domains_must_be_integers():
    X, y, sd, _ = _data()
    clf = DAClassifier(CORAL()).fit(X, y, sd)
    for bad in ([-1.5, -1.5], ["t", "t"]):
        with pytest.raises(TransferkitError, match="sample_domain must hold integers"):
            clf.predict(X[:2], bad)


def test_an_unseen_domain_with_few_rows_warns_under_per_domain_standardization():
    X, y, sd, _ = _data()
    clf = DAClassifier(CORAL(), preprocessing=(Standardize(),)).fit(X, y, sd)
    with pytest.warns(UserWarning, match="domain -2 was not seen in fit: its 1 rows"):
        clf.predict(X[:1], [-2])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        clf.predict(X[:1], [-1])  # a fitted domain keeps its statistics: no warning
        clf.predict(X[:20], np.full(20, -2))  # enough rows of the new domain


def test_a_semi_supervised_method_given_every_target_label_warns():
    X, y, sd, yt = _data()
    full = np.where(sd < 0, np.r_[np.zeros(60, int), yt], y)
    with pytest.warns(UserWarning, match="every target row \\(60\\) has a label in y"):
        DAClassifier(estimator=SelfTraining()).fit(X, full, sd)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        DAClassifier(CORAL()).fit(X, full, sd)  # masked anyway: nothing to warn about
        DAClassifier(estimator=SelfTraining()).fit(X, y, sd)


def test_methods_refuse_a_target_or_domain_too_small_to_say_anything():
    # one target row: its centred self is zero (subspace alignment, shared LDA), or every source row is
    # moved onto it (optimal transport); each predicted one class whatever the row was
    from transferkit.shallow.ot_mapping import OTMapping
    from transferkit.shallow.shared_lda import SharedLDA
    from transferkit.shallow.subspace_alignment import SubspaceAlignment

    rng = np.random.default_rng(0)
    ys = np.repeat([0, 1], 20)
    X = np.vstack([rng.normal(size=(40, 2)) + 6 * ys[:, None], [[-3.0, 0.0]]])
    y, sd = np.r_[ys, -1], np.r_[np.zeros(40, int), -1]
    cases = [(SubspaceAlignment(), "the target has 1 row"), (OTMapping(), "the target has 1 row"),
             (SharedLDA(), "domain\\(s\\) \\[-1\\] have 1 row")]  # fmt: skip
    for adapter, message in cases:
        with pytest.raises(TransferkitError, match=message):
            DAClassifier(adapter).fit(X, y, sd)


def test_shared_lda_keeps_as_many_directions_as_the_features_allow():
    from transferkit.shallow.shared_lda import SharedLDA

    rng = np.random.default_rng(0)
    ys = np.repeat(np.arange(12), 6)  # 12 classes, 3 features: 3 directions, not 11
    X = np.vstack([rng.normal(size=(72, 3)) + ys[:, None], rng.normal(size=(30, 3))])
    sd = np.r_[np.zeros(72, int), -np.ones(30, int)]
    Z = SharedLDA().fit_transform(X, np.r_[ys, -np.ones(30, int)], sd)
    assert Z.shape == (102, 3)


@pytest.mark.parametrize("name", ["self-training", "tradaboost"])
def test_an_inner_classifier_can_be_named_as_the_command_line_names_it(name):
    from transferkit import registry

    X, y, sd, _ = _data()
    y = np.where((sd < 0) & (np.arange(len(y)) % 10 == 0), np.abs(y), y)  # a few revealed, for tradaboost
    model = registry.build("method", name, {"estimator": "logreg"}).fit(X, y, sd)
    assert model.predict(X[:3]).shape == (3,)
    with pytest.raises(TransferkitError, match="Did you mean"):
        registry.build("method", name, {"estimator": "logre"}).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="estimator must be a classifier"):
        registry.build("method", name, {"estimator": "3"}).set_params(estimator=3).fit(X, y, sd)


@pytest.mark.parametrize("name", ["jda", "self-training", "knn", "coral", "kmm", "meda", "tradaboost"])
def test_a_method_used_alone_refuses_reordered_table_columns(name):
    # only the composer checked them: JDA fell from 0.99 to 0.20 on the same rows with columns swapped
    from transferkit import registry

    X, y, sd, _ = _data()
    X = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    y = np.where((sd < 0) & (np.arange(len(y)) % 10 == 0), np.abs(y), y)  # a few revealed (tradaboost)
    method = registry.build("method", name).fit(X, y, sd)
    assert list(method.feature_names_in_) == list(X.columns)
    apply = method.transform if hasattr(method, "transform") else method.predict
    apply(X.iloc[:5], sd[:5])  # the fitted columns: fine
    with pytest.raises(ValueError, match="Feature names must be in the same order as they were in fit"):
        apply(X.iloc[:5, ::-1], sd[:5])
    # column names that are not all text are no names (as the composer reads them), not an error
    mixed = X.set_axis([0, *X.columns[1:]], axis=1)
    method = registry.build("method", name).fit(mixed, y, sd)
    assert not hasattr(method, "feature_names_in_")
