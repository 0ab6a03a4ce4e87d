"""Final classifiers whose hyperparameters are chosen on the labelled source only.

A transfer method must not pick its classifier's settings with target labels. The protocol of the
published Office-Caltech10 tables (the CORAL paper's code among them) picks the SVM's ``C`` by
cross-validation on the source; :class:`LinearSVMCV` does exactly that, so it is a fair default.
"""

from __future__ import annotations

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["LinearSVMCV"]


class LinearSVMCV(ClassifierMixin, BaseEstimator):
    """Linear-kernel SVM with ``C`` chosen by stratified k-fold cross-validation on the source.

    Parameters
    ----------
    Cs : tuple of float
        Candidate values of ``C`` (default: 1e-3 ... 1e3, as in the CORAL paper's code).
    cv : int
        Number of folds (2, as in that code).
    random_state : int
        Seed of the fold split.
    scale : bool
        Standardize the features (statistics of the training rows) before the SVM. Off by default
        (the published protocol); libsvm converges slowly at large ``C`` on low-dimensional features
        of arbitrary scale, which scaling avoids.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((10, 2)), np.ones((10, 2))]; y = np.r_[np.zeros(10, int), np.ones(10, int)]
    >>> LinearSVMCV().fit(X, y).predict([[0.9, 0.9]]).tolist()
    [1]
    """

    def __init__(self, Cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3), cv: int = 2,
                 random_state: int | None = 0, scale: bool = False):  # fmt: skip
        self.Cs = Cs
        self.cv = cv
        self.random_state = random_state
        self.scale = scale

    def fit(self, X, y, sample_weight=None):
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.svm import SVC

        y = np.asarray(y)
        self.scaler_ = None
        if self.scale:
            from sklearn.preprocessing import StandardScaler

            self.scaler_ = StandardScaler().fit(X)
            X = self.scaler_.transform(X)
        n_splits = max(2, min(self.cv, int(np.bincount(np.unique(y, return_inverse=True)[1]).min())))
        splitter = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
        search = GridSearchCV(SVC(kernel="linear"), {"C": list(self.Cs)}, cv=splitter)
        fit_params = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)}
        # the weights are passed explicitly; a global metadata-routing switch (some libraries turn it
        # on at import) must not change how they reach the SVM
        with config_context(enable_metadata_routing=False):
            search.fit(X, y, **fit_params)
        self.best_C_ = float(search.best_params_["C"])
        self.svm_ = search.best_estimator_
        self.classes_ = self.svm_.classes_
        self.n_features_in_ = self.svm_.n_features_in_
        return self

    def _prepare(self, X):
        check_is_fitted(self, "svm_")
        return self.scaler_.transform(X) if self.scaler_ is not None else X

    def decision_function(self, X):
        return self.svm_.decision_function(self._prepare(X))

    def predict(self, X):
        return self.svm_.predict(self._prepare(X))
