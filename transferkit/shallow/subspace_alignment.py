"""Subspace alignment (Fernando, Habrard, Sebban and Tuytelaars, ICCV 2013)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow.base import BaseAdapter


def principal_basis(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-``k`` principal directions (``D x k``, orthonormal columns) of the rows of ``X``."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(0)
    _, _, Vt = np.linalg.svd(X - mean, full_matrices=False)
    return mean, Vt[:k].T


def domain_dimension(n_components, n_features: int, n_source: int, n_target: int) -> int:
    """``n_components`` checked, and clipped to what both domains' PCA supports:
    ``min(n_components, D, n_s - 1, n_t - 1)`` (at least 1)."""
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise TransferkitError(f"n_components must be an integer >= 1, got {n_components!r}.")
    return int(max(1, min(n_components, n_features, n_source - 1, n_target - 1)))


class SubspaceAlignment(BaseAdapter):
    r"""Align the source's principal subspace with the target's by a linear map.

    With :math:`P_s, P_t \in \mathbb{R}^{D \times d}` the top-``n_components`` principal directions
    (orthonormal columns) of the source and of the target, the alignment matrix is the closed-form
    least-squares solution

    .. math:: M^* = \arg\min_M \|P_s M - P_t\|_F^2 = P_s^\top P_t,

    and rows are mapped to :math:`(x - \mu_s) P_s M^*` (source) and :math:`(x - \mu_t) P_t`
    (target): both in the target subspace's coordinates, where one classifier serves both. Each
    domain is centred on its own mean, as PCA requires. The dimension is clipped to what both
    domains support (``min(n_components, D, n_s - 1, n_t - 1)``). No labels are used; several
    source (or target) domains share one source (or target) subspace.

    Because :math:`M^*` relates the two bases, the arbitrary sign of each principal direction
    cancels out. ``n_components`` is a fixed 100 by default, a middle choice for features of
    hundreds of dimensions: the paper's stability bound for the largest usable dimension needs a
    confidence level and a tolerance of its own (and the paper then cross-validates below it), so
    it is not automated here; ``search_space`` lists a small grid for label-free selection.

    Reference: B. Fernando, A. Habrard, M. Sebban, T. Tuytelaars, "Unsupervised visual domain
    adaptation using subspace alignment", ICCV 2013.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(100, 3)) * [3.0, 1.0, 0.1]
    >>> Xt = Xs + [5.0, -2.0, 0.0]                          # the target is translated
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(100, int), -np.ones(100, int)]
    >>> Z = SubspaceAlignment(n_components=2).fit_transform(X, None, sd)
    >>> Z.shape, bool(np.allclose(Z[:100], Z[100:]))   # the same coordinates after alignment
    ((200, 2), True)
    """

    family = "alignment"
    search_space = {"n_components": (20, 50, 100, 200)}

    def __init__(self, n_components: int = 100):
        self.n_components = n_components

    def _fit(self, X, y, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        Xs, Xt = X[source_mask(sample_domain)], X[target_mask(sample_domain)]
        if len(Xt) < 2:  # one centred row is a zero: its subspace, and every prediction, says nothing
            raise TransferkitError(
                f"subspace alignment needs the target's principal directions, and the target has {len(Xt)} "
                "row: give at least 2 target rows (a subspace needs several)."
            )
        k = self.n_components_ = domain_dimension(self.n_components, X.shape[1], len(Xs), len(Xt))
        self.mean_source_, self.basis_source_ = principal_basis(Xs, k)
        self.mean_target_, self.basis_target_ = principal_basis(Xt, k)
        self.M_ = self.basis_source_.T @ self.basis_target_
        self.source_map_ = self.basis_source_ @ self.M_

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        src = source_mask(sample_domain)
        out = np.empty((len(X), self.n_components_))
        out[src] = (X[src] - self.mean_source_) @ self.source_map_
        out[~src] = (X[~src] - self.mean_target_) @ self.basis_target_
        return out
