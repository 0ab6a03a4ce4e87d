"""TrAdaBoost: boosting for transfer learning with a few labelled target rows (Dai et al., ICML 2007)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import check_domain_data, check_features, source_mask, target_mask
from transferkit.errors import TransferkitError


class TrAdaBoost(ClassifierMixin, BaseEstimator):
    r"""Boost on source + labelled target rows, shrinking the weight of source rows that disagree.

    Each round fits the base learner on all labelled rows with weights :math:`w`, measures its
    weighted error :math:`\epsilon_t` on the labelled *target* rows only, then

    .. math::

        w_i \leftarrow w_i\,\beta^{[h_t(x_i) \ne y_i]} \ \text{(source)},\qquad
        w_j \leftarrow w_j\,e^{\alpha_t [h_t(x_j) \ne y_j]} \ \text{(target)},

    with :math:`\beta = 1/(1 + \sqrt{2 \ln n_s / T})` and :math:`\alpha_t = \ln\frac{1-\epsilon_t}
    {\epsilon_t} + \ln(K - 1)`: source rows the target contradicts fade, hard target rows grow. The
    multi-class form follows SAMME (Zhu et al. 2009; for K = 2 it is the paper's rule). Prediction is
    the :math:`\alpha`-weighted vote of the second half of the rounds, as in the paper.

    Needs a few labelled target rows: target rows whose label is >= 0 (in a run, ``--target-labels
    K``); target rows labelled -1 are ignored. Without any it raises.

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
    uses_target_labels = True
    needs_target_labels = True

    def __init__(self, estimator=None, n_estimators: int = 20, random_state: int | None = 0):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state

    def _base(self):
        if self.estimator is not None:
            return clone(self.estimator)
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500)

    def fit(self, X, y, sample_domain=None):
        X, y, sd = check_domain_data(X, y, sample_domain, require_target=False, allow_nd=False)
        if self.n_estimators < 2:
            raise TransferkitError(f"n_estimators must be >= 2, got {self.n_estimators}.")
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
        beta = 1.0 / (1.0 + np.sqrt(2.0 * np.log(max(n_s, 2)) / self.n_estimators))
        w = np.ones(len(yl))
        self.estimators_, self.alphas_ = [], []
        for t in range(self.n_estimators):
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
        return self

    def _votes(self, X):
        check_is_fitted(self, "estimators_")
        X = check_features(X, allow_nd=False)
        half = len(self.estimators_) // 2
        votes = np.zeros((len(X), len(self.classes_)))
        for est, alpha in zip(self.estimators_[half:], self.alphas_[half:]):
            pred = est.predict(X)
            votes[np.arange(len(X)), np.searchsorted(self.classes_, pred)] += alpha
        return votes

    def predict(self, X, sample_domain=None):
        votes = self._votes(X)  # checks that the model is fitted first
        return self.classes_[votes.argmax(1)]

    def predict_proba(self, X, sample_domain=None):
        v = self._votes(X)
        return v / np.clip(v.sum(1, keepdims=True), 1e-12, None)
