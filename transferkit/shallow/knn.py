"""Nearest-neighbour classification on the source: the classic 1NN row of the DA tables."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import (
    check_columns,
    check_domain_data,
    check_features,
    remember_columns,
    source_mask,
)
from transferkit.errors import TransferkitError


class KNN(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier fitted on the labelled source rows only.

    With ``n_neighbors=1`` and the field's standard preprocessing this reproduces the published 1NN
    baselines (Office-Caltech10 average 31.4; JDA digits 65.94 / 44.70), so it doubles as a check
    that the data are read correctly.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [0.9]]); y = np.array([0, 1, -1]); sd = np.array([0, 0, -1])
    >>> KNN().fit(X, y, sd).predict(X[2:]).tolist()
    [1]
    """

    role = "classifier"
    family = "baseline"

    def __init__(
        self, n_neighbors: int = 1, metric: Literal["euclidean", "cosine", "manhattan"] = "euclidean"
    ):
        self.n_neighbors = n_neighbors
        self.metric = metric

    def fit(self, X, y, sample_domain=None):
        from sklearn.neighbors import KNeighborsClassifier

        remember_columns(self, X)

        X, y, sd = check_domain_data(X, y, sample_domain, require_target=False, allow_nd=False)
        src = source_mask(sd)
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= int(src.sum()):
            raise TransferkitError(
                f"knn's n_neighbors must be a whole number from 1 to the number of source rows "
                f"({int(src.sum())}), got {k!r}."
            )
        self.knn_ = KNeighborsClassifier(self.n_neighbors, metric=self.metric).fit(X[src], y[src])
        self.classes_ = self.knn_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X, sample_domain=None):
        check_is_fitted(self, "knn_")
        check_columns(self, X)
        return self.knn_.predict(check_features(X, allow_nd=False))

    def predict_proba(self, X, sample_domain=None) -> np.ndarray:
        check_is_fitted(self, "knn_")
        check_columns(self, X)
        return self.knn_.predict_proba(check_features(X, allow_nd=False))
