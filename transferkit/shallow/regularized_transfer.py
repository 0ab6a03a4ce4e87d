"""Logistic regression on a few target labels, regularized towards the source model (L2-SP and kin)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import check_domain_data, check_features, source_mask, target_mask
from transferkit.errors import TransferkitError


def _softmax(Z):
    Z = Z - Z.max(1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(1, keepdims=True)


def cross_entropy(W, b, X, Y):
    """Mean multinomial cross-entropy and its gradients; ``Y`` one-hot, ``W`` is classes x features."""
    P = _softmax(X @ W.T + b)
    loss = -np.mean(np.sum(Y * np.log(np.clip(P, 1e-300, None)), axis=1))
    G = (P - Y) / len(X)
    return loss, G.T @ X, G.sum(0)


class RegularizedTransferLR(ClassifierMixin, BaseEstimator):
    r"""Fit the few labelled target rows, staying close to the source model's weights.

    With :math:`(W_0, b_0)` a logistic regression trained on the labelled source (``source_C``),
    the target model minimizes

    .. math::

        \mathcal{L}_t(W, b) + \lambda\,\mathcal{L}_s(W, b) + \Omega(W), \qquad
        \Omega = \begin{cases}
        \frac{\alpha}{2}\|W - W_0\|_F^2 & \texttt{l2-sp} \\
        \alpha \|W - W_0\|_1 & \texttt{l1-sp} \\
        \frac{\alpha}{2}\|W\|_F^2,\ \alpha\|W\|_1 & \texttt{l2}, \texttt{l1}
        \end{cases}

    where :math:`\mathcal{L}_t, \mathcal{L}_s` are the mean cross-entropies on the labelled target and
    source rows and :math:`\lambda` is ``source_weight`` (0: target only; the "knowledge transfer"
    joint loss when > 0). In the ``-sp`` penalties the intercept is pulled towards the source's as
    well (it is a transferred parameter; left free, a handful of target rows would move it at will);
    in plain ``l2``/``l1`` it is not penalized. ``l2-sp``/``l2`` are solved by L-BFGS
    (scipy); ``l1-sp``/``l1`` by FISTA with backtracking, whose proximal step is soft-thresholding
    around :math:`W_0` (or 0). As :math:`\alpha \to \infty` the model is the source model; as
    :math:`\alpha \to 0` it is the target-only model. The default :math:`\alpha = 0.1` is the L2-SP
    paper's setting.

    Needs a few labelled target rows (target rows with a label >= 0; ``--target-labels K``).

    Reference: X. Li, Y. Grandvalet, F. Davoine, "Explicit inductive bias for transfer learning
    with convolutional networks" (L2-SP), ICML 2018; Evgeniou and Pontil 2004 (regularizing towards
    a prior model).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(300, 2)); ys = (Xs[:, 0] > 0).astype(int)
    >>> Xt = rng.normal(size=(300, 2)); yt = (Xt[:, 0] + 0.4 * Xt[:, 1] > 0).astype(int)
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(300, int), -np.ones(300, int)]
    >>> y = np.r_[ys, np.where(np.arange(300) < 6, yt, -1)]          # 6 target labels
    >>> clf = RegularizedTransferLR().fit(X, y, sd)
    >>> bool(np.mean(clf.predict(Xt[6:]) == yt[6:]) > 0.9)  # source-only 0.88, target-only 0.66
    True
    """

    role = "classifier"
    family = "parameter"
    uses_target_labels = True
    needs_target_labels = True
    search_space = {"alpha": (0.1, 1.0, 10.0)}

    def __init__(
        self,
        penalty: Literal["l2-sp", "l1-sp", "l2", "l1"] = "l2-sp",
        alpha: float = 0.1,
        source_C: float = 1.0,
        source_weight: float = 0.0,
        max_iter: int = 500,
        tol: float = 1e-6,
    ):
        self.penalty = penalty
        self.alpha = alpha
        self.source_C = source_C
        self.source_weight = source_weight
        self.max_iter = max_iter
        self.tol = tol

    def _smooth(self, W, b, data):
        (Xt, Yt), (Xs, Ys) = data
        loss, gW, gb = cross_entropy(W, b, Xt, Yt)
        if self.source_weight > 0:
            ls, gWs, gbs = cross_entropy(W, b, Xs, Ys)
            loss, gW, gb = (
                loss + self.source_weight * ls,
                gW + self.source_weight * gWs,
                gb + self.source_weight * gbs,
            )
        return loss, gW, gb

    def objective(self, W, b, X_target, Y_target, X_source=None, Y_source=None) -> float:
        """The full objective at ``(W, b)`` (for tests and diagnostics)."""
        data = ((X_target, Y_target), (X_source, Y_source))
        loss, _, _ = self._smooth(W, b, data)
        if self.penalty.endswith("-sp"):
            D = np.r_[(W - self.source_coef_).ravel(), b - self.source_intercept_]
        else:
            D = W.ravel()
        if self.penalty.startswith("l2"):
            return loss + 0.5 * self.alpha * np.sum(D**2)
        return loss + self.alpha * np.sum(np.abs(D))

    def fit(self, X, y, sample_domain=None):
        from scipy.optimize import minimize
        from sklearn.linear_model import LogisticRegression

        X, y, sd = check_domain_data(X, y, sample_domain, require_target=False, allow_nd=False)
        if self.penalty not in ("l2-sp", "l1-sp", "l2", "l1"):
            raise TransferkitError(f"penalty must be one of l2-sp, l1-sp, l2, l1; got {self.penalty!r}.")
        if self.alpha < 0 or self.source_weight < 0:
            raise TransferkitError("alpha and source_weight must be >= 0.")
        src = source_mask(sd)
        tgt = target_mask(sd) & (y >= 0)
        if not tgt.any():
            raise TransferkitError(
                "no target rows with a label: RegularizedTransferLR needs a few labelled target samples; "
                "run with --target-labels K."
            )
        X = np.asarray(X, dtype=np.float64)
        source = LogisticRegression(C=self.source_C, max_iter=2000).fit(X[src], y[src])
        self.classes_ = source.classes_
        if not np.isin(y[tgt], self.classes_).all():
            raise TransferkitError("the target has labels the source does not; the label sets must match.")
        k = len(self.classes_)
        W0 = source.coef_ if k > 2 else np.r_[-source.coef_ / 2, source.coef_ / 2]
        b0 = source.intercept_ if k > 2 else np.r_[-source.intercept_ / 2, source.intercept_ / 2]
        self.source_coef_, self.source_intercept_ = W0, b0
        onehot = lambda v: (v[:, None] == self.classes_[None, :]).astype(np.float64)  # noqa: E731
        data = ((X[tgt], onehot(y[tgt])), (X[src], onehot(y[src])))
        sp = self.penalty.endswith("-sp")
        anchor = W0 if sp else np.zeros_like(W0)
        b_anchor = b0 if sp else None
        shape = W0.shape
        if self.penalty.startswith("l2"):

            def fun(theta):
                W, b = theta[: W0.size].reshape(shape), theta[W0.size :]
                loss, gW, gb = self._smooth(W, b, data)
                D = W - anchor
                Db = b - b_anchor if sp else np.zeros_like(b)
                value = loss + 0.5 * self.alpha * (np.sum(D**2) + np.sum(Db**2))
                return value, np.r_[(gW + self.alpha * D).ravel(), gb + self.alpha * Db]

            res = minimize(fun, np.r_[W0.ravel(), b0], jac=True, method="L-BFGS-B",
                           options={"maxiter": self.max_iter, "gtol": self.tol})  # fmt: skip
            W, b = res.x[: W0.size].reshape(shape), res.x[W0.size :]
        else:
            W, b = self._fista(W0.copy(), b0.copy(), anchor, b_anchor, data)
        self.coef_, self.intercept_ = W, b
        self.n_features_in_ = X.shape[1]
        return self

    def _fista(self, W, b, anchor, b_anchor, data):
        """Proximal gradient with Nesterov momentum and backtracking on the step size."""
        step = 1.0
        Wy, by, t = W.copy(), b.copy(), 1.0
        prev = np.inf
        for _ in range(self.max_iter):
            f, gW, gb = self._smooth(Wy, by, data)
            while True:
                Wn = Wy - step * gW
                Wn = anchor + np.sign(Wn - anchor) * np.maximum(np.abs(Wn - anchor) - step * self.alpha, 0.0)
                bn = by - step * gb
                if b_anchor is not None:
                    bn = b_anchor + np.sign(bn - b_anchor) * np.maximum(
                        np.abs(bn - b_anchor) - step * self.alpha, 0
                    )
                fn, _, _ = self._smooth(Wn, bn, data)
                dW, db = Wn - Wy, bn - by
                if fn <= f + np.sum(gW * dW) + np.sum(gb * db) + (np.sum(dW**2) + np.sum(db**2)) / (2 * step):
                    break
                step *= 0.5
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            Wy, by = Wn + (t - 1) / t_next * (Wn - W), bn + (t - 1) / t_next * (bn - b)
            W, b, t = Wn, bn, t_next
            obj = fn + self.alpha * np.sum(np.abs(W - anchor))
            if b_anchor is not None:
                obj += self.alpha * np.sum(np.abs(b - b_anchor))
            if abs(prev - obj) < self.tol * max(1.0, abs(obj)):
                break
            prev = obj
        return W, b

    def decision_function(self, X, sample_domain=None):
        check_is_fitted(self, "coef_")
        return np.asarray(check_features(X, allow_nd=False), np.float64) @ self.coef_.T + self.intercept_

    def predict_proba(self, X, sample_domain=None):
        return _softmax(self.decision_function(X))

    def predict(self, X, sample_domain=None):
        scores = self.decision_function(X)  # checks that the model is fitted first
        return self.classes_[scores.argmax(1)]
