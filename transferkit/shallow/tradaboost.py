"""TrAdaBoost: boosting for transfer learning with a few labelled target rows (Dai et al., ICML 2007)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import (
    check_columns,
    check_domain_data,
    check_features,
    predict_domains,
    remember_columns,
    source_mask,
    target_mask,
)
from transferkit.errors import TransferkitError
from transferkit.shallow.base import base_classifier


class TrAdaBoost(ClassifierMixin, BaseEstimator):
    r"""Boost on source + labelled target rows, shrinking the weight of source rows that disagree.

    Each round fits the base learner on all labelled rows with weights :math:`w`, measures its
    weighted error :math:`\epsilon_t` on the labelled *target* rows only, then

    .. math::

        w_i \leftarrow w_i\,\beta^{[h_t(x_i) \ne y_i]} \ \text{(source)},\qquad
        w_j \leftarrow w_j\,e^{\alpha_t [h_t(x_j) \ne y_j]} \ \text{(target)},

    with :math:`\beta = 1/(1 + \sqrt{2 \ln n_s / N})` for :math:`N` = ``n_estimators`` rounds and
    :math:`\alpha_t = \ln\frac{1-\epsilon_t}{\epsilon_t} + \ln(K - 1)` for :math:`K` classes: source
    rows the target contradicts fade, hard target rows grow. The multi-class form follows SAMME (Zhu
    et al. 2009; for K = 2 it is the paper's rule, :math:`\alpha_t = \ln(1/\beta_t)`);
    :math:`\epsilon_t` is kept inside :math:`(10^{-10}, 1 - 1/K)`, so a round that fits every
    labelled target row gets a large finite vote and a useless one none. Prediction is
    the :math:`\alpha`-weighted vote of rounds :math:`\lceil N/2 \rceil, \dots, N` (the second half),
    as in the paper.

    Needs a few labelled target rows: target rows whose label is >= 0 (in a run, ``--target-labels
    K``); target rows labelled -1 are ignored. Without any it raises. The base learner
    ``estimator`` must accept ``sample_weight``; the default, an L2 logistic regression, is a linear
    model like the paper's SVM, and fast. The rows' domains do not matter at prediction.

    Reference: W. Dai, Q. Yang, G.-R. Xue, Y. Yu, "Boosting for transfer learning", ICML 2007.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(200, 2)); ys = (Xs[:, 0] > 0).astype(int)
    >>> Xt = rng.normal(size=(200, 2)); yt = (Xt[:, 0] + Xt[:, 1] > 1).astype(int)  # another rule
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(200, int), -np.ones(200, int)]
    >>> y = np.r_[ys, np.where(np.arange(200) < 20, yt, -1)]            # 20 target labels revealed
    >>> clf = TrAdaBoost().fit(X, y, sd)
    >>> bool(np.mean(clf.predict(Xt[20:]) == yt[20:]) > 0.9)   # source-only: 0.69, target-only: 0.86
    True
    """

    role = "classifier"
    family = "reweighting"
    uses_target_labels = True  # keeps the target labels the caller revealed (few-shot)
    needs_target_labels = True  # a run needs --target-labels K
    requires_target_labels = False  # not an oracle: only the few revealed labels are read

    def __init__(self, estimator=None, n_estimators: int = 20, random_state: int | None = 0):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _base(self):
        if self.estimator is None:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(max_iter=500)
        return base_classifier(self.estimator, type(self).__name__)

    def fit(self, X, y, sample_domain=None):
        remember_columns(self, X)
        X, y, sd = check_domain_data(X, y, sample_domain, require_target=False, allow_nd=False)
        from sklearn.utils.validation import has_fit_parameter

        if int(self.n_estimators) < 2:
            raise TransferkitError(f"n_estimators must be >= 2, got {self.n_estimators}.")
        if not has_fit_parameter(self._base(), "sample_weight"):
            raise TransferkitError(
                f"TrAdaBoost's estimator {type(self._base()).__name__} does not accept sample_weight; "
                "boosting needs a base learner that does."
            )
        src = source_mask(sd)
        tgt = target_mask(sd) & (y >= 0)
        if not tgt.any():
            raise TransferkitError(
                "no target rows with a label: TrAdaBoost needs a few labelled target samples; run with "
                "--target-labels K (or give target rows their label instead of -1)."
            )
        rows = src | tgt
        Xl, yl, is_t = X[rows], y[rows], tgt[rows]
        self.classes_ = np.unique(yl)
        k = len(self.classes_)
        n_s = int((~is_t).sum())
        beta = 1.0 / (1.0 + np.sqrt(2.0 * np.log(max(n_s, 2)) / int(self.n_estimators)))
        w = np.ones(len(yl))
        self.estimators_, self.alphas_ = [], []
        for t in range(int(self.n_estimators)):
            est = self._base()
            if "random_state" in est.get_params():
                est.set_params(random_state=None if self.random_state is None else self.random_state + t)
            est.fit(Xl, yl, sample_weight=w / w.mean())
            wrong = est.predict(Xl) != yl
            eps = np.sum(w[is_t] * wrong[is_t]) / np.sum(w[is_t])
            eps = float(np.clip(eps, 1e-10, 1 - 1.0 / k - 1e-10))
            alpha = np.log((1 - eps) / eps) + np.log(k - 1)
            self.estimators_.append(est)
            self.alphas_.append(alpha)
            w[~is_t] *= beta ** wrong[~is_t]
            w[is_t] *= np.exp(alpha * wrong[is_t])
            w /= w.sum() / len(w)
        self.source_weights_ = w[~is_t]
        self.n_features_in_ = X.shape[1]
        self.target_domains_ = np.unique(sd[target_mask(sd)])
        return self

    def _votes(self, X, sample_domain=None):
        check_is_fitted(self, "estimators_")
        check_columns(self, X)
        X = check_features(X, allow_nd=False)
        if X.shape[1] != self.n_features_in_:
            raise TransferkitError(
                f"X has {X.shape[1]} features, but TrAdaBoost was fitted with {self.n_features_in_}; "
                "every domain must have the same features."
            )
        if sample_domain is not None:  # rows without one are target rows; either way the vote is the same
            predict_domains(sample_domain, X.shape[0], self.target_domains_)
        half = (len(self.estimators_) + 1) // 2 - 1  # rounds ceil(N/2) .. N, counted from 1 as in the paper
        votes = np.zeros((len(X), len(self.classes_)))
        for est, alpha in zip(self.estimators_[half:], self.alphas_[half:]):
            pred = est.predict(X)
            votes[np.arange(len(X)), np.searchsorted(self.classes_, pred)] += alpha
        return votes

    def predict(self, X, sample_domain=None):
        votes = self._votes(X, sample_domain)  # checks that the model is fitted first
        return self.classes_[votes.argmax(1)]

    def predict_proba(self, X, sample_domain=None):
        v = self._votes(X, sample_domain)
        return v / np.clip(v.sum(1, keepdims=True), 1e-12, None)
