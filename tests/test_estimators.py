"""The default final classifier, LinearSVMCV: the published protocol, and the budget of its CV fits."""

import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import check_estimator

from transferkit.errors import TransferkitError
from transferkit.estimators import LinearSVMCV

CS = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)
SMALL = (1e-2, 1e-1, 1.0)  # for the tests that need no slow fit


def _overlapping(seed=0, n=150, d=3, k=3):
    """Low-dimensional classes that no hyperplane separates: libsvm is slow there at large C."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) * 3.0 + y[:, None] * 0.8
    return X, y


def _reference(X, y, sample_weight=None, Cs=CS, folds=None):
    """scikit-learn's own grid search over the same folds, with no iteration limit."""
    folds = folds or StratifiedKFold(2, shuffle=True, random_state=0)
    params = {} if sample_weight is None else {"sample_weight": sample_weight}
    return GridSearchCV(SVC(kernel="linear"), {"C": list(Cs)}, cv=folds).fit(X, y, **params)


def test_without_a_budget_it_is_the_published_grid_search():
    X, y = _overlapping()
    ours = LinearSVMCV(CS[:5], max_iter=None).fit(X, y)  # up to C=10: the large C are slow here
    ref = _reference(X, y, Cs=CS[:5])
    assert ours.best_C_ == ref.best_params_["C"]
    assert ours.n_capped_ == 0
    np.testing.assert_array_equal(ours.decision_function(X), ref.decision_function(X))


def test_sample_weights_reach_the_folds_and_the_final_fit():
    X, y = _overlapping(seed=1)
    w = np.random.default_rng(2).uniform(0.1, 3.0, len(y))
    ours = LinearSVMCV(SMALL, max_iter=None).fit(X, y, sample_weight=w)
    ref = _reference(X, y, sample_weight=w, Cs=SMALL)
    assert ours.best_C_ == ref.best_params_["C"]
    np.testing.assert_array_equal(ours.decision_function(X), ref.decision_function(X))
    unweighted = LinearSVMCV(SMALL, max_iter=None).fit(X, y)
    assert not np.array_equal(unweighted.decision_function(X), ours.decision_function(X))


def test_a_budget_stops_only_the_cv_fits_and_never_the_returned_model():
    X, y = _overlapping()
    Cs, budget = (1e-2, 1.0, 1e2), 500
    folds = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, y))
    needed = {
        c: max(SVC(kernel="linear", C=c).fit(X[tr], y[tr]).n_iter_.max() for tr, _ in folds) for c in Cs
    }
    finished = [c for c in Cs if needed[c] < budget]
    assert 0 < len(finished) < len(Cs), f"the data must make some fits long and some short: {needed}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the budget's stops are counted, not shown
        capped = LinearSVMCV(Cs, max_iter=budget).fit(X, y)
    assert capped.n_capped_ > 0
    # the final model is a complete fit at the chosen C, even a C whose CV fits hit the budget
    only_long = LinearSVMCV((1e2,), max_iter=budget).fit(X, y)
    final = SVC(kernel="linear", C=1e2).fit(X, y)
    assert final.n_iter_.max() > budget
    np.testing.assert_array_equal(only_long.svm_.n_iter_, final.n_iter_)
    np.testing.assert_array_equal(only_long.decision_function(X), final.decision_function(X))
    # the budget changes nothing but the fits that reach it: every C whose folds all finish within it
    # scores exactly as in the unlimited search
    full = _reference(X, y, Cs=Cs)
    for i, c in enumerate(Cs):
        if c in finished:
            assert capped.cv_scores_[c] == full.cv_results_["mean_test_score"][i]


def test_bad_budget_or_grid_is_a_clear_error():
    X, y = _overlapping()
    with pytest.raises(ValueError, match="max_iter"):
        LinearSVMCV(max_iter=0).fit(X, y)
    # a C of 0 or below made every fold fail inside the grid search (a page of libsvm tracebacks)
    for Cs in [(), (0.0, 1.0), (-1.0,), ("a",), (float("nan"),)]:
        with pytest.raises(ValueError, match="Cs must be a non-empty list of positive numbers"):
            LinearSVMCV(Cs=Cs).fit(X, y)


def test_sklearn_contract():
    # the one expected failure is libsvm's own (scikit-learn lists it for SVC): weights scale each
    # row's C, which is not the same optimization problem as repeating the row, within tolerance
    check_estimator(
        LinearSVMCV(Cs=(0.1, 1.0)),
        expected_failed_checks={"check_sample_weight_equivalence_on_dense_data": "as SVC"},
    )


def test_a_splitter_can_replace_the_number_of_folds():
    X, y = _overlapping()
    folds = StratifiedKFold(3, shuffle=True, random_state=5)
    ours = LinearSVMCV(SMALL, cv=folds, max_iter=None).fit(X, y)
    ref = _reference(X, y, Cs=SMALL, folds=folds)
    assert ours.cv_scores_ == dict(zip(SMALL, ref.cv_results_["mean_test_score"]))
    assert ours.best_C_ == ref.best_params_["C"]


def test_a_class_weighted_zero_on_every_row_is_left_out_not_mislabelled():
    # libsvm drops such a class and SVC then shifted every later class's label by one: with class 0
    # weighted 0 (absent from the target, say), classes 1 and 2 were predicted as 0 and 1
    rng = np.random.default_rng(0)
    centers = np.array([[-6.0, 0], [0, 0], [6.0, 0]])
    y = np.repeat([0, 1, 2], 50)
    X = centers[y] + rng.normal(size=(150, 2))
    w = np.where(y == 0, 0.0, 1.0)
    with pytest.warns(UserWarning, match=r"class\(es\) \[0\] are 0 on every row"):
        clf = LinearSVMCV().fit(X, y, sample_weight=w)
    assert clf.classes_.tolist() == [1, 2]
    Xt = centers[np.repeat([1, 2], 20)] + rng.normal(size=(40, 2))
    assert np.mean(clf.predict(Xt) == np.repeat([1, 2], 20)) > 0.95
    # with every class weighted it is the plain SVC: same decision values as without the guard
    w2 = rng.uniform(0.5, 2.0, size=150)
    a = LinearSVMCV().fit(X, y, sample_weight=w2)
    b = SVC(kernel="linear", C=a.best_C_).fit(X, y, sample_weight=w2)
    assert np.array_equal(a.decision_function(Xt), b.decision_function(Xt))
    with pytest.raises(TransferkitError, match="all classes but one"):
        LinearSVMCV(cv=2).fit(X, y, sample_weight=np.where(y == 2, 1.0, 0.0))


def test_a_warning_of_the_cross_validation_is_shown_once_not_once_per_fit():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(30), 2)  # 30 classes of 2 rows: sklearn warns in every CV fit
    X = rng.normal(size=(60, 4)) + 0.3 * y[:, None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LinearSVMCV().fit(X, y)
    messages = [str(w.message) for w in caught]
    assert len(messages) == len(set(messages)) >= 1


def test_the_gram_matrix_cross_validation_is_scikit_learns_grid_search_exactly(monkeypatch):
    # the CV gives libsvm blocks of one precomputed X X' (much faster on many features); it must score
    # every C as GridSearchCV(SVC(kernel="linear")) does on the features: the held-out accuracy weighted by
    # the rows' sample weights, rows of weight 0 left out of the fits (given a precomputed kernel,
    # scikit-learn would otherwise read the support vectors' columns at the wrong places)
    import transferkit.estimators as estimators

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 40)
    X = rng.normal(size=(120, 30)) + 0.6 * y[:, None] * rng.normal(size=30)
    w = rng.uniform(0.2, 3.0, 120)
    w[rng.choice(120, 25, replace=False)] = 0.0  # as nearest-neighbour weighting or KMM leave some rows
    for weights in (None, w):
        gram = LinearSVMCV(CS, max_iter=None).fit(X, y, sample_weight=weights)
        ref = _reference(X, y, sample_weight=weights)
        assert gram.cv_scores_ == dict(zip(CS, ref.cv_results_["mean_test_score"]))
        assert gram.best_C_ == ref.best_params_["C"]
        monkeypatch.setattr(estimators, "_GRAM_ROWS", 0)  # more rows than the Gram matrix is built for
        features = LinearSVMCV(CS, max_iter=None).fit(X, y, sample_weight=weights)
        monkeypatch.undo()
        assert features.cv_scores_ == gram.cv_scores_
        np.testing.assert_array_equal(features.decision_function(X), gram.decision_function(X))
    # the weights count in the held-out score too: unweighted, the scores differ
    plain = []
    for tr, te in StratifiedKFold(2, shuffle=True, random_state=0).split(X, y):
        tr = tr[w[tr] > 0]
        plain.append(
            np.mean(SVC(kernel="linear").fit(X[tr], y[tr], sample_weight=w[tr]).predict(X[te]) == y[te])
        )
    assert LinearSVMCV(CS, max_iter=None).fit(X, y, sample_weight=w).cv_scores_[1.0] != np.mean(plain)


def test_a_fold_whose_fit_fails_scores_nan_as_in_the_grid_search():
    # a fold with one weighted class cannot be fitted: that fold's C scores NaN, is ranked last, and a
    # warning says so (GridSearchCV's error_score=nan); when every fit fails, it is an error
    y = np.repeat([0, 1], 20)
    X = np.c_[y + np.random.default_rng(0).normal(scale=0.3, size=40), np.zeros(40)]
    folds = [(np.r_[0:10, 20:30], np.r_[10:20, 30:40]), (np.r_[10:20, 30:40], np.r_[0:10, 20:30])]
    w = np.ones(40)
    w[20:30] = 0.0  # the first fold's training rows of class 1 all weigh 0
    from sklearn.exceptions import FitFailedWarning

    with pytest.warns(FitFailedWarning, match="1 of the 2 fits"):
        clf = LinearSVMCV((1.0,), cv=folds).fit(X, y, sample_weight=w)
    assert np.isnan(clf.cv_scores_[1.0]) and clf.best_C_ == 1.0
    w[10:20] = 0.0  # and the second fold's training rows of class 0: no fold can be fitted
    with pytest.raises(ValueError, match="All the 2 fits"):
        LinearSVMCV((1.0,), cv=folds).fit(X, y, sample_weight=w)
