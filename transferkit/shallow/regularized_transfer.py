"""Logistic regression on a few target labels, regularized towards the source model (L2-SP and kin)."""

from __future__ import annotations

from typing import Literal

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

PENALTIES = ("l2-sp", "l1-sp", "l2", "l1")


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


def _soft_threshold(V, center, t):
    """The proximal map of ``t * ||V - center||_1``."""
    D = V - center
    return center + np.sign(D) * np.maximum(np.abs(D) - t, 0.0)


def check_target_classes(y_target, source_classes, owner: str) -> None:
    """A model that starts from the source's classes cannot learn a class only the target's labelled rows
    have: an error naming those classes and the way out."""
    new = [c.item() if isinstance(c, np.generic) else c for c in np.setdiff1d(y_target, source_classes)]
    if new:
        raise TransferkitError(
            f"the labelled target rows hold class(es) {new} that no source row has: {owner} starts from the "
            "source model's classes, so it cannot learn them. Drop those rows, or use a method that learns "
            "new classes from the target's labels (tradaboost)."
        )


def check_predict_input(est, X, sample_domain):
    """Validate rows to predict for a domain-aware classifier whose model is one for every domain."""
    check_columns(est, X)
    X = np.asarray(check_features(X, allow_nd=False), dtype=np.float64)
    if X.shape[1] != est.n_features_in_:
        raise TransferkitError(
            f"X has {X.shape[1]} features, but {type(est).__name__} was fitted with {est.n_features_in_}; "
            "every domain must have the same features."
        )
    # rows without a domain are target rows; the one fitted model scores every domain alike, so the
    # rule only validates what was given
    predict_domains(sample_domain, X.shape[0], est.target_domains_[:1])
    return X


class RegularizedTransferLR(ClassifierMixin, BaseEstimator):
    r"""Fit the few labelled target rows, staying close to the source model's weights.

    With :math:`(W_0, b_0)` a multinomial logistic regression trained on the labelled source rows
    (inverse regularization ``source_C``), the target model minimizes

    .. math::

        \mathcal{L}_t(W, b) + \lambda\,\mathcal{L}_s(W, b) + \Omega(W, b), \qquad
        \Omega = \begin{cases}
        \frac{\alpha}{2}\left(\|W - W_0\|_F^2 + \|b - b_0\|^2\right) & \texttt{l2-sp} \\
        \alpha \left(\|W - W_0\|_1 + \|b - b_0\|_1\right) & \texttt{l1-sp} \\
        \frac{\alpha}{2}\|W\|_F^2 \ \text{ or } \ \alpha\|W\|_1 & \texttt{l2}, \texttt{l1}
        \end{cases}

    where :math:`\mathcal{L}_t, \mathcal{L}_s` are the mean cross-entropies on the labelled target and
    source rows and :math:`\lambda` is ``source_weight`` (0: the target rows alone, the L2-SP setting;
    > 0: a joint fit on both domains). In the ``-sp`` penalties the intercept is pulled towards the
    source's as well (it is a transferred parameter; left free, a handful of target rows would move it
    at will); the plain ``l2``/``l1`` penalties, towards zero, are there for comparison and leave the
    intercept free. As :math:`\alpha \to \infty` the model is the source model; as
    :math:`\alpha \to 0` it is the target-only model. The default :math:`\alpha = 0.1` is the L2-SP
    paper's setting for the pull towards the pre-trained weights.

    Solvers: the smooth penalties by L-BFGS (``scipy.optimize.minimize``) with the exact gradient.
    The L1 penalties are not smooth; they are solved by FISTA (accelerated proximal gradient with a
    backtracking step), whose proximal step is soft-thresholding around :math:`W_0` (or 0), so
    coordinates equal to the source's are exactly representable. scikit-learn's L1 solvers cannot be
    used through the change of variables :math:`W = W_0 + D`: that needs a fixed per-row offset
    :math:`X W_0^\top` in the logits, which ``LogisticRegression`` does not accept.

    Needs a few labelled target rows: target rows whose label is >= 0 (the few-shot labels a user
    gives, ``--target-labels K``); every other target row is ignored.

    Reference: X. Li, Y. Grandvalet, F. Davoine, "Explicit inductive bias for transfer learning
    with convolutional networks" (L2-SP), ICML 2018; T. Evgeniou, M. Pontil, "Regularized multi-task
    learning", KDD 2004 (regularizing towards a prior model).

    Parameters
    ----------
    penalty : {"l2-sp", "l1-sp", "l2", "l1"}
        The regularizer :math:`\Omega`: towards the source weights (``-sp``) or towards zero.
    alpha : float
        Strength :math:`\alpha \ge 0` of the penalty.
    source_C : float
        Inverse L2 strength of the source logistic regression (scikit-learn's ``C``).
    source_weight : float
        :math:`\lambda \ge 0`, the weight of the source cross-entropy in a joint fit (0: none).
    max_iter : int
        Iterations of L-BFGS or FISTA.
    tol : float
        L-BFGS stops when the largest gradient entry is below ``tol``; FISTA when the objective's
        relative change is.

    Attributes
    ----------
    coef_, intercept_ : ndarray
        The target model (one row per class; two rows for two classes).
    source_coef_, source_intercept_ : ndarray
        The source model in the same form.

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
    uses_target_labels = True  # keeps the target labels the caller revealed (few-shot)
    needs_target_labels = True  # a run needs --target-labels K
    requires_target_labels = False  # not an oracle: only the revealed rows are read
    search_space = {"alpha": (0.1, 1.0, 10.0)}

    def __init__(
        self,
        penalty: Literal["l2-sp", "l1-sp", "l2", "l1"] = "l2-sp",
        alpha: float = 0.1,
        source_C: float = 1.0,
        source_weight: float = 0.0,
        max_iter: int = 1000,
        tol: float = 1e-6,
    ):
        self.penalty = penalty
        self.alpha = alpha
        self.source_C = source_C
        self.source_weight = source_weight
        self.max_iter = max_iter
        self.tol = tol

    # -- the objective ------------------------------------------------------------------------------
    def _loss(self, W, b, data):
        """Smooth part: target cross-entropy plus ``source_weight`` times the source's, with gradients."""
        (Xt, Yt), (Xs, Ys) = data
        loss, gW, gb = cross_entropy(W, b, Xt, Yt)
        if self.source_weight > 0:
            ls, gWs, gbs = cross_entropy(W, b, Xs, Ys)
            lam = self.source_weight
            loss, gW, gb = loss + lam * ls, gW + lam * gWs, gb + lam * gbs
        return loss, gW, gb

    def _anchors(self):
        if self.penalty.endswith("-sp"):
            return self.source_coef_, self.source_intercept_
        return np.zeros_like(self.source_coef_), None  # towards zero; intercept not penalized

    def objective(self, W, b, X_target, Y_target, X_source=None, Y_source=None):
        """The full objective at ``(W, b)`` and, for the smooth penalties, its gradient ``(gW, gb)``.

        ``Y_*`` are one-hot over ``classes_``. Needs a fitted model (for the source anchor).
        Returns ``(value, gW, gb)``; the gradients are None for the L1 penalties.
        """
        check_is_fitted(self, "source_coef_")
        data = ((X_target, Y_target), (X_source, Y_source))
        loss, gW, gb = self._loss(W, b, data)
        W0, b0 = self._anchors()
        D, Db = W - W0, (b - b0 if b0 is not None else np.zeros_like(b))
        if self.penalty.startswith("l2"):
            value = loss + 0.5 * self.alpha * (np.sum(D**2) + np.sum(Db**2))
            return value, gW + self.alpha * D, gb + self.alpha * Db
        return loss + self.alpha * (np.sum(np.abs(D)) + np.sum(np.abs(Db))), None, None

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, X, y, sample_domain=None):
        from scipy.optimize import minimize
        from sklearn.linear_model import LogisticRegression

        remember_columns(self, X)

        X, y, sd = check_domain_data(X, y, sample_domain, allow_nd=False)
        if self.penalty not in PENALTIES:
            raise TransferkitError(f"penalty must be one of {', '.join(PENALTIES)}; got {self.penalty!r}.")
        if not (self.alpha >= 0 and self.source_weight >= 0 and self.source_C > 0):
            raise TransferkitError(
                "RegularizedTransferLR needs alpha >= 0, source_weight >= 0 and source_C > 0."
            )
        src = source_mask(sd)
        tgt = target_mask(sd) & (y >= 0)  # the revealed target labels, and only those
        if not tgt.any():
            raise TransferkitError(
                "no target rows with a label: RegularizedTransferLR needs a few labelled target samples "
                "(target rows labelled >= 0); run with --target-labels K."
            )
        X = np.asarray(X, dtype=np.float64)
        source = LogisticRegression(C=self.source_C, max_iter=2000).fit(X[src], y[src])
        self.classes_ = source.classes_
        check_target_classes(y[tgt], self.classes_, "RegularizedTransferLR")
        k = len(self.classes_)
        # binary: the sigmoid model w.x + b as a softmax over (-w/2, w/2), the same probabilities
        W0 = source.coef_ if k > 2 else np.r_[-source.coef_ / 2, source.coef_ / 2]
        b0 = source.intercept_ if k > 2 else np.r_[-source.intercept_ / 2, source.intercept_ / 2]
        self.source_coef_, self.source_intercept_ = W0, b0
        onehot = (y[:, None] == self.classes_[None, :]).astype(np.float64)
        data = ((X[tgt], onehot[tgt]), (X[src], onehot[src]))
        if self.penalty.startswith("l2"):
            m = W0.size

            def fun(theta):
                value, gW, gb = self.objective(theta[:m].reshape(W0.shape), theta[m:], *data[0], *data[1])
                return value, np.r_[gW.ravel(), gb]

            # stop on the gradient (largest entry <= tol), not on a stalling objective (ftol)
            res = minimize(fun, np.r_[W0.ravel(), b0], jac=True, method="L-BFGS-B",
                           options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 0.0})  # fmt: skip
            W, b = res.x[:m].reshape(W0.shape), res.x[m:]
            self.n_iter_ = int(res.nit)
        else:
            W, b = self._fista(W0.copy(), b0.copy(), data)
        self.coef_, self.intercept_ = W, b
        self.n_features_in_ = X.shape[1]
        self.target_domains_ = np.unique(sd[target_mask(sd)])
        return self

    def _fista(self, W, b, data):
        """Accelerated proximal gradient (Beck and Teboulle 2009) with backtracking on the step."""
        anchor, b_anchor = self._anchors()

        def prox(Wv, bv, step):
            t = step * self.alpha
            bn = _soft_threshold(bv, b_anchor, t) if b_anchor is not None else bv
            return _soft_threshold(Wv, anchor, t), bn

        def penalty(Wv, bv):
            p = np.sum(np.abs(Wv - anchor))
            return self.alpha * (p + (np.sum(np.abs(bv - b_anchor)) if b_anchor is not None else 0.0))

        step, t = 1.0, 1.0
        Wy, by = W.copy(), b.copy()
        prev = self._loss(W, b, data)[0] + penalty(W, b)
        self.n_iter_ = self.max_iter
        for it in range(self.max_iter):
            f, gW, gb = self._loss(Wy, by, data)
            while True:  # backtracking: the quadratic model must bound the smooth part
                Wn, bn = prox(Wy - step * gW, by - step * gb, step)
                fn = self._loss(Wn, bn, data)[0]
                dW, db = Wn - Wy, bn - by
                if fn <= f + np.sum(gW * dW) + np.sum(gb * db) + (np.sum(dW**2) + np.sum(db**2)) / (2 * step):
                    break
                step *= 0.5
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            Wy, by = Wn + (t - 1) / t_next * (Wn - W), bn + (t - 1) / t_next * (bn - b)
            W, b, t = Wn, bn, t_next
            obj = fn + penalty(W, b)
            if abs(prev - obj) < self.tol * max(1.0, abs(obj)):
                self.n_iter_ = it + 1
                break
            prev = obj
        return W, b

    # -- prediction ---------------------------------------------------------------------------------
    def decision_function(self, X, sample_domain=None):
        check_is_fitted(self, "coef_")
        return check_predict_input(self, X, sample_domain) @ self.coef_.T + self.intercept_

    def predict_proba(self, X, sample_domain=None):
        return _softmax(self.decision_function(X, sample_domain))

    def predict(self, X, sample_domain=None):
        scores = self.decision_function(X, sample_domain)  # checks that the model is fitted first
        return self.classes_[scores.argmax(1)]
