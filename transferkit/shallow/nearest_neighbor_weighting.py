"""Nearest-neighbour weighting (Loog, MLSP 2012)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.shallow.base import BaseReweighter


class NearestNeighborWeighting(BaseReweighter):
    r"""Weight each source row by how many target rows have it as their nearest source neighbour.

    .. math:: w_i \propto \text{smoothing} + c_i, \qquad
              c_i = |\{j : \mathrm{NN}_s(x^t_j) = x^s_i\}|

    where :math:`c_i` counts the target rows whose nearest source row is :math:`x^s_i` (the Voronoi
    cell of :math:`x^s_i` holds that much target mass); ``smoothing`` (Laplace smoothing, 1 in the
    paper) keeps every source row in play. Weights are rescaled to mean 1. A new source row gets the
    weight of its nearest fitted one.

    Reference: M. Loog, "Nearest neighbor-based importance weighting", MLSP 2012.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [10.0], [9.0], [11.0]]); sd = np.array([0, 0, -1, -1])
    >>> NearestNeighborWeighting().fit(X, None, sd).compute_weights(X, sd)[:2].round(2).tolist()
    [0.5, 1.5]
    """

    family = "reweighting"

    def __init__(self, smoothing: float = 1.0, n_jobs: int | None = None):
        self.smoothing = smoothing
        self.n_jobs = n_jobs

    def _fit(self, X, y, sample_domain):
        from sklearn.neighbors import NearestNeighbors

        from transferkit.errors import TransferkitError

        if self.smoothing < 0:
            raise TransferkitError(f"smoothing must be >= 0, got {self.smoothing}.")
        X = np.asarray(X, dtype=np.float64)
        Xs, Xt = X[source_mask(sample_domain)], X[target_mask(sample_domain)]
        self.nn_ = NearestNeighbors(n_neighbors=1, n_jobs=self.n_jobs).fit(Xs)
        nearest = self.nn_.kneighbors(Xt, return_distance=False)[:, 0]
        counts = np.bincount(nearest, minlength=len(Xs)).astype(np.float64)
        # identical source rows share what their point collected (the search names one of them): each
        # copy of a row must weigh the same, here and in compute_weights, which finds any one copy
        _, point, copies = np.unique(Xs, axis=0, return_inverse=True, return_counts=True)
        point = point.ravel()
        shared = np.bincount(point, weights=counts, minlength=len(copies)) / copies
        w = self.smoothing + shared[point]
        self.source_weights_ = w / w.mean() if w.mean() > 0 else np.ones(len(Xs))

    def _compute_weights(self, X, sample_domain):
        w = np.ones(len(X))
        src = source_mask(sample_domain)
        if src.any():
            idx = self.nn_.kneighbors(np.asarray(X, dtype=np.float64)[src], return_distance=False)[:, 0]
            w[src] = self.source_weights_[idx]
        return w
