"""TCA: transfer component analysis (Pan, Tsang, Kwok and Yang, IEEE TNN 2011)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import kernel, median_gamma
from transferkit.shallow.base import BaseAdapter


def mmd_matrix(n_source: int, n_target: int) -> np.ndarray:
    """``L = e e^T`` with ``e = [1/n_s, ..., -1/n_t, ...]``: ``tr(K L)`` is the (biased) MMD^2."""
    e = np.r_[np.full(n_source, 1.0 / n_source), np.full(n_target, -1.0 / n_target)]
    return np.outer(e, e)


class TCA(BaseAdapter):
    r"""Learn components in which source and target have the same kernel mean, keeping the variance.

    With :math:`K` the kernel matrix of all training rows, :math:`L` the MMD matrix and
    :math:`H = I - \frac1n \mathbf{1}\mathbf{1}^\top`, the components :math:`W` solve

    .. math:: \max_W \operatorname{tr}\big((W^\top (K L K + \mu I) W)^{-1} W^\top K H K W\big),

    i.e. the leading generalized eigenvectors of :math:`(K H K,\ K L K + \mu I)`. Rows are embedded as
    :math:`k(x, X_{\text{train}}) W`. For the linear kernel this is solved in the primal (feature
    space, :math:`D \times D`), which is the same problem and faster when :math:`D < n`.

    Reference: S. J. Pan, I. W. Tsang, J. T. Kwok, Q. Yang, "Domain adaptation via transfer
    component analysis", IEEE Trans. Neural Networks 22(2), 2011.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(100, 3)); Xt = rng.normal(size=(100, 3)) + [4.0, 0.0, 0.0]
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(100, int), -np.ones(100, int)]
    >>> Z = TCA(n_components=2).fit_transform(X, None, sd)
    >>> bool(np.abs(Z[:100].mean(0) - Z[100:].mean(0)).max() < 0.2)   # the mean gap is gone
    True
    """

    family = "alignment"
    search_space = {"mu": (0.1, 1.0, 10.0)}

    def __init__(
        self,
        kernel: Literal["linear", "rbf"] = "linear",
        n_components: int = 30,
        mu: float = 1.0,
        gamma: float | None = None,
    ):
        self.kernel = kernel
        self.n_components = n_components
        self.mu = mu
        self.gamma = gamma

    def _fit(self, X, y, sample_domain):
        from scipy.linalg import eigh

        if self.kernel not in ("linear", "rbf"):
            raise TransferkitError(f"kernel must be 'linear' or 'rbf', got {self.kernel!r}.")
        if self.mu <= 0 or self.n_components < 1:
            raise TransferkitError("TCA needs mu > 0 and n_components >= 1.")
        X = np.asarray(X, dtype=np.float64)
        src, tgt = source_mask(sample_domain), target_mask(sample_domain)
        Xtr = np.vstack([X[src], X[tgt]])
        ns, nt = int(src.sum()), int(tgt.sum())
        n = ns + nt
        e = np.r_[np.full(ns, 1.0 / ns), np.full(nt, -1.0 / nt)]
        if self.kernel == "linear":  # primal: X^T H X and X^T L X are D x D
            self.mean_ = Xtr.mean(0)
            Xc = Xtr - self.mean_
            A = Xc.T @ Xc
            u = Xtr.T @ e
            B = np.outer(u, u) + self.mu * np.eye(X.shape[1])
            self.train_ = None
        else:
            self.gamma_ = self.gamma if self.gamma is not None else median_gamma(Xtr)
            K = kernel(Xtr, Xtr, "rbf", self.gamma_)
            Kc = K - K.mean(0, keepdims=True)
            A = Kc.T @ Kc  # K H K (H idempotent)
            u = K @ e
            B = np.outer(u, u) + self.mu * np.eye(n)
            self.train_ = Xtr
        m = int(min(self.n_components, A.shape[0]))
        vals, vecs = eigh(0.5 * (A + A.T), 0.5 * (B + B.T), subset_by_index=[A.shape[0] - m, A.shape[0] - 1])
        self.eigenvalues_ = vals[::-1]
        W = vecs[:, ::-1]
        # one global scale so that the embedding has unit average variance on the training rows:
        # the components are only defined up to scale, and the downstream classifier's
        # regularization (and its solver's speed) should not depend on it
        Z = (Xtr - self.mean_) @ W if self.train_ is None else kernel(Xtr, Xtr, "rbf", self.gamma_) @ W
        self.components_ = W / np.sqrt(np.mean(np.var(Z, axis=0)))

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        if self.train_ is None:
            return (X - self.mean_) @ self.components_
        return kernel(X, self.train_, "rbf", self.gamma_) @ self.components_
