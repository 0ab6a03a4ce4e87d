"""TCA: transfer component analysis (Pan, Tsang, Kwok and Yang, IEEE TNN 2011)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import check_dense_size, kernel, median_gamma
from transferkit.shallow.base import BaseAdapter


def mmd_matrix(n_source: int, n_target: int) -> np.ndarray:
    """``L = e e^T`` with ``e = [1/n_s, ..., -1/n_t, ...]``: ``tr(K L)`` is the (biased) MMD^2."""
    e = np.r_[np.full(n_source, 1.0 / n_source), np.full(n_target, -1.0 / n_target)]
    return np.outer(e, e)


def leading_generalized_eigenvectors(A: np.ndarray, u: np.ndarray, mu: float, m: int):
    """The ``m`` leading solutions of ``A w = lambda (u u^T + mu I) w`` (largest ``lambda`` first).

    ``B = u u^T + mu I`` is a rank-one update of a multiple of the identity, so ``B^{-1/2}`` has the
    closed form ``P = a I + b v v^T`` (``v = u / |u|``); the problem becomes the ordinary symmetric
    eigenproblem of ``P A P`` (solved by LAPACK through scipy), and ``w = P x``.
    """
    from scipy.linalg import eigh

    n = A.shape[0]
    m = int(min(m, n))
    s = float(u @ u)
    a = 1.0 / np.sqrt(mu)
    if s > 0:
        v = u / np.sqrt(s)
        b = 1.0 / np.sqrt(mu + s) - a
        Av = A @ v
        PAP = a * a * A + a * b * (np.outer(v, Av) + np.outer(Av, v)) + b * b * float(v @ Av) * np.outer(v, v)
    else:
        v, b, PAP = np.zeros(n), 0.0, a * a * A
    vals, V = eigh(0.5 * (PAP + PAP.T), subset_by_index=[n - m, n - 1])
    vals, V = vals[::-1], V[:, ::-1]
    return vals, a * V + b * np.outer(v, v @ V)


class TCA(BaseAdapter):
    r"""Learn components in which source and target have the same kernel mean, keeping the variance.

    With :math:`K` the kernel matrix of all training rows, :math:`L` the MMD matrix and
    :math:`H = I - \frac1n \mathbf{1}\mathbf{1}^\top`, the components :math:`W` solve

    .. math:: \max_W \operatorname{tr}\big((W^\top (K L K + \mu I) W)^{-1} W^\top K H K W\big),

    i.e. the leading generalized eigenvectors of :math:`(K H K,\ K L K + \mu I)`; :math:`L` has
    rank one, so the problem reduces exactly to an ordinary symmetric eigenproblem. Rows, including
    new ones (out of sample), are embedded as :math:`k(x, X_{\text{train}}) W`. For the linear
    kernel TCA is solved in its primal form (feature space, :math:`D \times D`, as in the JDA
    authors' code): the components :math:`A = X^\top W` solve the same trace ratio with the
    regularizer :math:`\mu \|A\|_F^2` on the projection instead of :math:`\mu \|W\|_F^2`, and rows
    are embedded as :math:`(x - \bar x) A`. The embedding is scaled to unit average variance
    (components are only defined up to scale). ``gamma=None`` takes the median heuristic for the
    RBF kernel. No labels are used. The linear kernel matches only the domains' means: on rows whose
    domains were standardized one by one (Office-Caltech10's standard steps) they are equal already,
    and linear TCA is exactly PCA of the pooled rows (it warns; ``mean_gap_`` is the mean difference
    over the rows' spread). The JDA authors' code divides each row by its norm first, which brings
    a difference back; the RBF kernel compares whole distributions.

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
        if self.kernel not in ("linear", "rbf"):
            raise TransferkitError(f"kernel must be 'linear' or 'rbf', got {self.kernel!r}.")
        if not self.mu > 0 or self.n_components < 1:
            raise TransferkitError(
                f"TCA needs mu > 0 and n_components >= 1, got {self.mu}, {self.n_components}."
            )
        if self.gamma is not None and not self.gamma > 0:
            raise TransferkitError(f"gamma must be > 0 (or None for the median heuristic), got {self.gamma}.")
        X = np.asarray(X, dtype=np.float64)
        src, tgt = source_mask(sample_domain), target_mask(sample_domain)
        Xtr = np.vstack([X[src], X[tgt]])
        ns, nt = int(src.sum()), int(tgt.sum())
        e = np.r_[np.full(ns, 1.0 / ns), np.full(nt, -1.0 / nt)]
        self.mean_ = Xtr.mean(0)
        if self.kernel == "linear":  # primal: X^T H X and X^T L X are D x D
            F = Xtr - self.mean_
            self.train_ = None
        else:
            # K, K - mean, K H K, P A P with its temporaries, the eigensolver's copy: a peak of 6.3 dense
            # n x n float64 matrices above the rows, measured at n = 2000 (6.2 at 3000)
            check_dense_size(ns + nt, 7, "TCA with kernel='rbf'")
            self.gamma_ = float(self.gamma) if self.gamma is not None else median_gamma(Xtr)
            F = kernel(Xtr, Xtr, "rbf", self.gamma_)
            self.train_ = Xtr
        Fc = F - F.mean(0, keepdims=True)
        A = Fc.T @ Fc  # X^T H X, or K H K (H is idempotent)
        gap = F.T @ e  # the difference of the two domains' means (in feature or kernel space)
        self.mean_gap_ = float(np.linalg.norm(gap) / np.sqrt(max(np.trace(A) / len(F), 1e-300)))
        if self.kernel == "linear" and self.mean_gap_ < 1e-6:
            import warnings

            warnings.warn(
                "TCA: source and target have the same mean on these rows (as after standardizing each "
                "domain), so the linear kernel's distribution term is zero and TCA is plain PCA of the "
                "pooled rows; use kernel='rbf', or standardize with per_domain=false, to align anything.",
                UserWarning,
                stacklevel=3,
            )
        vals, W = leading_generalized_eigenvectors(A, gap, self.mu, self.n_components)
        self.eigenvalues_ = vals
        # one global scale so that the embedding has unit average variance on the training rows:
        # the components are only defined up to scale, and the downstream classifier's
        # regularization (and its solver's speed) should not depend on it
        Z = F @ W
        self.components_ = W / np.sqrt(max(float(np.mean(np.var(Z, axis=0))), 1e-300))

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        if self.train_ is None:
            return (X - self.mean_) @ self.components_
        return kernel(X, self.train_, "rbf", self.gamma_) @ self.components_
