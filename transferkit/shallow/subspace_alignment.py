"""Subspace alignment (Fernando, Habrard, Sebban and Tuytelaars, ICCV 2013)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow.base import BaseAdapter


class SubspaceAlignment(BaseAdapter):
    r"""Align the source's principal subspace with the target's by a linear map.

    With :math:`P_s, P_t \in \mathbb{R}^{D \times d}` the top-``n_components`` principal directions of
    the source and of the target, the alignment

    .. math:: M^* = \arg\min_M \|P_s M - P_t\|_F = P_s^\top P_t

    maps source rows to :math:`(x - \mu_s) P_s M^*` and target rows to :math:`(x - \mu_t) P_t`: both
    live in the target's subspace coordinates. The dimension is clipped to what both domains
    support. Several source domains share one source subspace.

    Reference: B. Fernando et al., "Unsupervised visual domain adaptation using subspace
    alignment", ICCV 2013.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(100, 3)) * [3.0, 1.0, 0.1]
    >>> Xt = Xs + [5.0, -2.0, 0.0]                          # the target is translated
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(100, int), -np.ones(100, int)]
    >>> sa = SubspaceAlignment(n_components=2).fit(X, None, sd)
    >>> Z = sa.transform(X, sd)
    >>> Z.shape, bool(np.allclose(np.abs(Z[:100]), np.abs(Z[100:])))   # same coordinates after alignment
    ((200, 2), True)
    """

    family = "alignment"
    search_space = {"n_components": (20, 50, 100, 200)}

    def __init__(self, n_components: int = 100):
        self.n_components = n_components

    @staticmethod
    def _basis(X, k):
        mean = X.mean(0)
        _, _, Vt = np.linalg.svd(X - mean, full_matrices=False)
        return mean, Vt[:k].T

    def _fit(self, X, y, sample_domain):
        if self.n_components < 1:
            raise TransferkitError(f"n_components must be >= 1, got {self.n_components}.")
        X = np.asarray(X, dtype=np.float64)
        Xs, Xt = X[source_mask(sample_domain)], X[target_mask(sample_domain)]
        k = int(min(self.n_components, X.shape[1], len(Xs), len(Xt)))
        self.n_components_ = k
        self.mean_source_, Ps = self._basis(Xs, k)
        self.mean_target_, Pt = self._basis(Xt, k)
        self.M_ = Ps.T @ Pt
        self.source_map_ = Ps @ self.M_
        self.target_map_ = Pt

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        src = source_mask(sample_domain)
        out = np.empty((len(X), self.n_components_))
        out[src] = (X[src] - self.mean_source_) @ self.source_map_
        out[~src] = (X[~src] - self.mean_target_) @ self.target_map_
        return out
