"""JDA: joint distribution adaptation (Long, Wang, Ding, Sun and Yu, ICCV 2013)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import check_domain_data, check_features, source_mask, target_mask
from transferkit.errors import TransferkitError


def jda_mmd_vectors(y_source, pseudo_target, classes) -> np.ndarray:
    """Columns ``e_0, e_c...`` such that ``M = sum_c e_c e_c^T`` is JDA's joint MMD matrix.

    ``e_0`` has ``1/n_s`` on source rows and ``-1/n_t`` on target rows (marginal); ``e_c`` has
    ``1/n_s^c`` on source rows of class ``c`` and ``-1/n_t^c`` on target rows pseudo-labelled ``c``
    (conditional; classes absent from either side are skipped). Rows: source first, then target.
    """
    ns, nt = len(y_source), len(pseudo_target)
    # the marginal term counts C times, as in the authors' code (M0 = e e^T * C), so that it weighs
    # as much as the C conditional terms together
    cols = [np.sqrt(len(classes)) * np.r_[np.full(ns, 1.0 / ns), np.full(nt, -1.0 / nt)]]
    if pseudo_target is not None:
        for c in classes:
            s, t = y_source == c, pseudo_target == c
            if s.any() and t.any():
                cols.append(np.r_[s / s.sum(), -(t / t.sum())])
    return np.stack(cols, axis=1)


class JDA(ClassifierMixin, BaseEstimator):
    r"""Match the marginal and the class-conditional distributions, with target pseudo-labels.

    A linear projection :math:`A` (``n_components`` columns) solves

    .. math::

        \min_A \operatorname{tr}\Big(A^\top X \big(\textstyle\sum_{c=0}^{C} M_c\big) X^\top A\Big)
        + \lambda \|A\|_F^2 \quad \text{s.t.}\ A^\top X H X^\top A = I,

    where :math:`M_0` is the MMD matrix of the marginals and :math:`M_c` that of class :math:`c`,
    using the target's *pseudo-labels*; :math:`H` centres the data. Solution: the smallest
    generalized eigenvectors of :math:`(X M X^\top + \lambda I,\ X H X^\top)`. The pseudo-labels come
    from ``estimator`` (default 1-NN, as in the paper) trained on the projected source, and the
    whole is repeated ``n_iter`` times. :math:`M` is normalized by its Frobenius norm and the
    rows (before and after the projection, ``normalize_rows`` and ``normalize_embedding``) by their
    L2 norm, and the marginal term counts :math:`C` times, all as in the authors' code (primal,
    linear kernel).

    A domain-aware classifier: ``fit(X, y, sample_domain)`` needs every row; ``predict`` projects
    any row and applies the final classifier. Only source labels are read.

    Reference: M. Long et al., "Transfer feature learning with joint distribution adaptation",
    ICCV 2013.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 60); Xs = rng.normal(size=(120, 4)) + 3 * y[:, None] * [1, 1, 0, 0]
    >>> Xt = Xs + [2.0, 2.0, 5.0, 5.0]                # moved, partly along nuisance directions
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(120, int), -np.ones(120, int)]
    >>> clf = JDA(n_components=2, normalize_rows=False).fit(X, np.r_[y, -np.ones(120, int)], sd)
    >>> bool(np.mean(clf.predict(Xt) == y) > 0.9)
    True
    """

    role = "classifier"
    family = "alignment"
    search_space = {"reg": (0.1, 1.0, 10.0)}

    def __init__(
        self,
        n_components: int = 100,
        reg: float = 1.0,
        n_iter: int = 10,
        estimator=None,
        normalize_rows: bool = True,
        normalize_embedding: bool = True,
    ):
        self.n_components = n_components
        self.reg = reg
        self.n_iter = n_iter
        self.estimator = estimator
        self.normalize_rows = normalize_rows
        self.normalize_embedding = normalize_embedding

    def _base(self):
        if self.estimator is not None:
            return clone(self.estimator)
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=1)

    def _unit_rows(self, X):
        X = np.asarray(X, dtype=np.float64)
        if not self.normalize_rows:
            return X
        return X / np.clip(np.linalg.norm(X, axis=1, keepdims=True), 1e-12, None)

    def _embed(self, X):
        Z = self._unit_rows(X) @ self.projection_
        if self.normalize_embedding:
            Z = Z / np.clip(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12, None)
        return Z

    def fit(self, X, y, sample_domain=None):
        from scipy.linalg import eigh

        X, y, sd = check_domain_data(X, y, sample_domain, allow_nd=False)
        if self.n_components < 1 or self.n_iter < 1 or self.reg <= 0:
            raise TransferkitError("JDA needs n_components >= 1, n_iter >= 1 and reg > 0.")
        src, tgt = source_mask(sd), target_mask(sd)
        Xs, Xt, ys = self._unit_rows(X[src]), self._unit_rows(X[tgt]), y[src]
        Xall = np.vstack([Xs, Xt])
        d = Xall.shape[1]
        Xc = Xall - Xall.mean(0)
        XHX = Xc.T @ Xc
        XHX += 1e-6 * np.trace(XHX) / d * np.eye(d)
        self.classes_ = np.unique(ys)
        k = int(min(self.n_components, d))
        pseudo = None
        self.pseudo_history_ = []
        for _ in range(self.n_iter):
            E = jda_mmd_vectors(ys, pseudo if pseudo is not None else np.full(len(Xt), -1), self.classes_)
            if pseudo is None:
                E = E[:, :1]
            fro = np.sqrt(np.sum((E.T @ E) ** 2))
            U = Xall.T @ E
            XMX = U @ U.T / fro + self.reg * np.eye(d)
            _, vecs = eigh(0.5 * (XMX + XMX.T), XHX, subset_by_index=[0, k - 1])
            # unit-norm directions, like MATLAB's eigs in the authors' code; scipy's B-orthonormal
            # vectors would whiten the embedding and amplify its noisiest directions
            self.projection_ = vecs / np.linalg.norm(vecs, axis=0, keepdims=True)
            self.estimator_ = self._base().fit(self._embed(X[src]), ys)
            new = self.estimator_.predict(self._embed(X[tgt]))
            self.pseudo_history_.append(new)
            if pseudo is not None and np.array_equal(new, pseudo):
                break
            pseudo = new
        self.pseudo_labels_ = pseudo
        self.n_features_in_ = d
        return self

    def predict(self, X, sample_domain=None):
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(self._embed(check_features(X, allow_nd=False)))

    def predict_proba(self, X, sample_domain=None):
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(self._embed(check_features(X, allow_nd=False)))
