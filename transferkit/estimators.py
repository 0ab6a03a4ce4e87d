"""Final classifiers whose hyperparameters are chosen on the labelled source only.

A transfer method must not pick its classifier's settings with target labels. The protocol of the
published Office-Caltech10 tables (the CORAL paper's code among them) picks the SVM's ``C`` by
cross-validation on the source; :class:`LinearSVMCV` does exactly that, so it is a fair default.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from transferkit.errors import TransferkitError

__all__ = ["LinearSVMCV"]


def _plain(c):
    return c.item() if isinstance(c, np.generic) else c


_ONE_CLASS_LEFT = (
    "the sample weights are zero on every row of all classes but one: there is nothing to tell apart "
    "(check the reweighting)."
)


class _WeightedSVC(SVC):
    """scikit-learn's SVC, except that the rows of a class whose sample weights are all 0 are left out
    before libsvm sees them: libsvm drops such a class, and SVC then maps its outputs onto the wrong
    labels (every prediction of a later class shifted by one). Left out, the class is simply one the
    model does not predict. With every class weighted, it is SVC exactly."""

    def fit(self, X, y, sample_weight=None):
        if sample_weight is not None:
            w, y = np.asarray(sample_weight, dtype=np.float64), np.asarray(y)
            keep = np.isin(y, [c for c in np.unique(y) if w[y == c].sum() > 0])
            if not keep.all():
                if len(np.unique(y[keep])) < 2:
                    raise TransferkitError(_ONE_CLASS_LEFT)
                X, y, sample_weight = np.asarray(X)[keep], y[keep], w[keep]
        return super().fit(X, y, sample_weight=sample_weight)


# the cross-validation computes the rows' Gram matrix X X' once (BLAS) and gives libsvm its blocks (a
# precomputed kernel) when there are at most this many rows (n x n float64: 288 MB at 6000): libsvm's own
# linear kernel is a plain loop over the features for every pair of rows, four to five times slower on
# Office-Caltech10's 800 SURF features, to the same solution (same iterations, dual coefficients within
# 1e-17). More rows fall back to scikit-learn's GridSearchCV on the features.
_GRAM_ROWS = 6000


def _gram_cv_scores(X, y, sample_weight, Cs, splitter, budget):
    """Each ``C``'s mean accuracy over the folds of ``splitter``, as GridSearchCV(SVC(kernel="linear"))
    scores them (accuracy on the held-out fold, weighted by its rows' sample weights: an importance-weighted
    cross-validation for a reweighting method; a fit that fails scores NaN with a warning), from blocks of
    one precomputed Gram matrix."""
    from sklearn.exceptions import FitFailedWarning
    from sklearn.model_selection import check_cv

    folds = list(check_cv(splitter, y, classifier=True).split(X, y))
    X = np.asarray(X, dtype=np.float64)  # as libsvm reads the rows
    gram = X @ X.T
    scores = np.full((len(Cs), len(folds)), np.nan)
    failures = []
    for j, (train, test) in enumerate(folds):
        w = None
        if sample_weight is not None:
            # libsvm leaves out rows of weight <= 0 itself; given a precomputed kernel, scikit-learn would
            # then read the support vectors' columns at the wrong places, so they are left out here
            train = train[sample_weight[train] > 0]
            w = sample_weight[train]
        block, held_out = gram[np.ix_(train, train)], gram[np.ix_(test, train)]
        for i, C in enumerate(Cs):
            try:
                svm = _WeightedSVC(kernel="precomputed", C=C, max_iter=budget).fit(
                    block, y[train], sample_weight=w
                )
                hits = svm.predict(held_out) == y[test]
                scores[i, j] = np.average(
                    hits, weights=None if sample_weight is None else sample_weight[test]
                )
            except Exception as exc:  # as GridSearchCV's error_score=nan: the C scores NaN, said below
                failures.append(f"{type(exc).__name__}: {exc}")
    if len(failures) == scores.size:
        raise ValueError(
            f"All the {scores.size} fits of LinearSVMCV's cross-validation failed: {failures[0]}"
        )
    if failures:
        warnings.warn(
            f"{len(failures)} of the {scores.size} fits of LinearSVMCV's cross-validation failed and score "
            f"NaN; the first: {failures[0]}",
            FitFailedWarning,
            stacklevel=3,
        )
    return scores.mean(axis=1)


class LinearSVMCV(ClassifierMixin, BaseEstimator):
    """Linear-kernel SVM with ``C`` chosen by stratified k-fold cross-validation on the source.

    Parameters
    ----------
    Cs : tuple of float
        Candidate values of ``C`` (default: 1e-3 ... 1e3; the CORAL paper's code goes on to 1e4).
    cv : int, splitter or iterable
        Number of folds (2, as in that code; stratified, shuffled with ``random_state`` and at most the
        smallest class's size), or any scikit-learn splitter or list of (train, test) index pairs.
        With at most 6000 rows the folds' SVMs read blocks of one precomputed Gram matrix ``X X'``
        (the same scores as libsvm's linear kernel, several times faster on many features); each
        ``C`` scores its held-out folds' accuracy weighted by ``sample_weight``, as ``GridSearchCV``.
    random_state : int
        Seed of the fold split.
    scale : bool
        Standardize the features (statistics of the training rows) before the SVM. Off by default
        (the published protocol); libsvm converges slowly at large ``C`` on low-dimensional features
        of arbitrary scale, which scaling avoids.
    max_iter : int or None
        Budget of libsvm's solver: iterations per one-vs-one subproblem (``None``: no limit, libsvm's
        own default). A fit of the cross-validation that reaches it is scored as it stands; those are
        the large-``C`` fits on classes that no hyperplane separates, on low-dimensional features
        (GFK's 40-d rows: 13 million iterations for one pair at ``C=1e3``, against under a million
        at ``C=1e2``). The CV prefers such a ``C`` rarely; when it does, the final fit on all rows runs
        to convergence, so the returned model is never a truncated one. ``n_capped_`` counts the CV
        fits that stopped at the budget; ``cv_scores_`` holds each ``C``'s mean CV accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((10, 2)), np.ones((10, 2))]; y = np.r_[np.zeros(10, int), np.ones(10, int)]
    >>> LinearSVMCV().fit(X, y).predict([[0.9, 0.9]]).tolist()
    [1]
    """

    def __init__(self, Cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3), cv: Any = 2,
                 random_state: int | None = 0, scale: bool = False,
                 max_iter: int | None = 1_000_000):  # fmt: skip
        self.Cs = Cs
        self.cv = cv
        self.random_state = random_state
        self.scale = scale
        self.max_iter = max_iter

    def fit(self, X, y, sample_weight=None):
        from sklearn.model_selection import GridSearchCV, StratifiedKFold

        if self.max_iter is not None and (isinstance(self.max_iter, bool) or not isinstance(
                self.max_iter, (int, np.integer)) or self.max_iter < 1):  # fmt: skip
            raise TransferkitError(
                f"LinearSVMCV's max_iter must be a positive whole number of iterations or None (no "
                f"limit), got {self.max_iter!r}."
            )
        try:
            Cs = [float(c) for c in self.Cs]
        except (TypeError, ValueError):
            Cs = []
        if not Cs or not all(np.isfinite(c) and c > 0 for c in Cs):
            raise TransferkitError(
                f"LinearSVMCV's Cs must be a non-empty list of positive numbers (values of the SVM's C), "
                f"got {self.Cs!r}."
            )
        X, y = validate_data(self, X, y, accept_sparse=False)
        check_classification_targets(y)
        self.scaler_ = None
        if self.scale:
            from sklearn.preprocessing import StandardScaler

            self.scaler_ = StandardScaler().fit(X)
            X = self.scaler_.transform(X)
        if isinstance(self.cv, (int, np.integer)) and not isinstance(self.cv, bool):
            smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
            splitter = StratifiedKFold(
                max(2, min(self.cv, smallest)), shuffle=True, random_state=self.random_state
            )
        else:  # a scikit-learn splitter or a list of (train, test) index pairs, used as given
            splitter = self.cv
        budget = -1 if self.max_iter is None else int(self.max_iter)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (len(y),):
                raise TransferkitError(
                    f"sample_weight must hold one weight per row ({len(y)}), got shape {sample_weight.shape}."
                )
            lost = [c for c in np.unique(y) if not sample_weight[y == c].sum() > 0]
            if len(np.unique(y)) - len(lost) < 2:
                raise TransferkitError(_ONE_CLASS_LEFT)
            if lost:
                warnings.warn(
                    f"the weights of class(es) {[_plain(c) for c in lost]} are 0 on every row: the SVM "
                    "cannot learn them and will not predict them.",
                    UserWarning,
                    stacklevel=2,
                )
        fit_params = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)}
        # the weights are passed explicitly; a global metadata-routing switch (some libraries turn it
        # on at import) must not change how they reach the SVM
        with config_context(enable_metadata_routing=False), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            if len(X) <= _GRAM_ROWS:
                scores = _gram_cv_scores(X, y, sample_weight, Cs, splitter, budget)
            else:
                search = GridSearchCV(_WeightedSVC(kernel="linear", max_iter=budget), {"C": list(self.Cs)},
                                      cv=splitter, refit=False)  # fmt: skip
                search.fit(X, y, **fit_params)
                scores = search.cv_results_["mean_test_score"]
        capped = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        shown = set()
        for w in caught:  # anything else is the user's to see, once (not once per CV fit)
            key = (w.category, str(w.message))
            if w not in capped and key not in shown:
                shown.add(key)
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.n_capped_ = len(capped)
        self.cv_scores_ = dict(zip(map(float, self.Cs), np.asarray(scores, dtype=np.float64).tolist()))
        # GridSearchCV's choice: the first best mean score, a C whose fits all failed ranked last
        ranked = np.where(np.isnan(scores), -np.inf, scores)
        self.best_C_ = Cs[int(np.argmax(ranked))]
        # the final fit runs to convergence whatever the CV's budget was
        self.svm_ = _WeightedSVC(kernel="linear", C=self.best_C_).fit(X, y, **fit_params)
        self.classes_ = self.svm_.classes_
        self.n_iter_ = self.svm_.n_iter_
        return self

    def _prepare(self, X):
        check_is_fitted(self, "svm_")
        X = validate_data(self, X, accept_sparse=False, reset=False)
        return self.scaler_.transform(X) if self.scaler_ is not None else X

    def decision_function(self, X):
        X = self._prepare(X)
        return self.svm_.decision_function(X)

    def predict(self, X):
        X = self._prepare(X)
        return self.svm_.predict(X)
