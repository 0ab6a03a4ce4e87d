"""GFK: the geodesic flow kernel (Gong, Shi, Sha and Grauman, CVPR 2012)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.shallow.base import BaseAdapter
from transferkit.shallow.subspace_alignment import domain_dimension, principal_basis


def geodesic_flow_map(basis_source: np.ndarray, basis_target: np.ndarray) -> np.ndarray:
    r"""A ``D x 2d`` matrix :math:`R` with :math:`R R^\top = G`, the geodesic flow kernel.

    ``basis_source`` and ``basis_target`` are ``D x d`` matrices with orthonormal columns (two
    points of the Grassmannian). Along the geodesic :math:`\Phi(t)` from the source subspace
    (:math:`t=0`) to the target subspace (:math:`t=1`),

    .. math::

        G = \int_0^1 \Phi(t)\, \Phi(t)^\top \, dt,
        \qquad \Phi(t) = P_s U_1 \cos(t\Theta) - Q \sin(t\Theta),

    where :math:`P_s^\top P_t = U_1 \cos\Theta\, V^\top` (SVD; :math:`\Theta` are the principal
    angles) and :math:`Q = -(I - P_s P_s^\top) P_t V \sin\Theta^{-1}` is the part of the target basis
    outside the source subspace, with orthonormal columns. The integrals are closed-form:
    :math:`\int\cos^2 = \tfrac12(1 + \tfrac{\sin 2\theta}{2\theta})`, :math:`\int\sin^2 =
    \tfrac12(1 - \tfrac{\sin 2\theta}{2\theta})`, :math:`-\int\cos\sin = \tfrac12\tfrac{\cos 2\theta -
    1}{2\theta}` (the matrices :math:`\Lambda_1, \Lambda_3, \Lambda_2` of the paper). Since
    :math:`[P_s U_1, Q]` has orthonormal columns, :math:`G = [P_s U_1, Q]\, S\, [P_s U_1, Q]^\top` with a
    ``2d x 2d`` block matrix :math:`S`, and :math:`R = [P_s U_1, Q]\, S^{1/2}` gives the same inner
    products as the paper's :math:`G^{1/2}` without forming the ``D x D`` matrix.
    """
    Ps, Pt = np.asarray(basis_source, dtype=np.float64), np.asarray(basis_target, dtype=np.float64)
    U1, cos, Vt = np.linalg.svd(Ps.T @ Pt)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    PtV = Pt @ Vt.T
    outside = PtV - Ps @ (Ps.T @ PtV)  # columns of norm sin(theta), mutually orthogonal
    sin = np.sin(theta)
    moving = sin > 1e-10  # a shared direction (theta = 0) has no component outside P_s
    Q = np.zeros_like(outside)
    Q[:, moving] = -outside[:, moving] / sin[moving]
    t = np.where(moving, theta, 1.0)
    sinc2 = np.where(moving, np.sin(2 * t) / (2 * t), 1.0)  # sin(2 theta) / (2 theta) -> 1 at 0
    lam1 = 0.5 * (1.0 + sinc2)
    lam2 = np.where(moving, 0.5 * (np.cos(2 * t) - 1.0) / (2 * t), 0.0)
    lam3 = 0.5 * (1.0 - sinc2)
    S = np.block([[np.diag(lam1), np.diag(lam2)], [np.diag(lam2), np.diag(lam3)]])
    w, V = np.linalg.eigh(S)
    return np.hstack([Ps @ U1, Q]) @ (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


class GFK(BaseAdapter):
    r"""Map rows so that their inner products are the geodesic flow kernel between the two subspaces.

    The source and the target are each summarised by their top-``n_components`` principal subspace
    (:math:`P_s, P_t`). GFK integrates over every subspace on the geodesic between them on the
    Grassmann manifold, :math:`\langle x, z \rangle_G = x^\top G z` with
    :math:`G = \int_0^1 \Phi(t)\Phi(t)^\top dt` in closed form (:func:`geodesic_flow_map`). Rows are
    mapped to :math:`x R` with :math:`R R^\top = G` (``2 * n_components`` columns), so that any
    classifier (a 1-NN in the paper) measures similarity through :math:`G`. As in the authors'
    code, rows are mapped as they are (standardized beforehand, not centred by the map) and the
    subspaces come from PCA of each domain's centred rows. The dimension is clipped to what both
    domains support (``min(n_components, D, n_s - 1, n_t - 1)``). No labels are used.

    It is also the first stage of :class:`~transferkit.shallow.meda.MEDA`.

    Reference: B. Gong, Y. Shi, F. Sha, K. Grauman, "Geodesic flow kernel for unsupervised domain
    adaptation", CVPR 2012.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)); sd = np.r_[np.zeros(100, int), -np.ones(100, int)]
    >>> gfk = GFK(n_components=2).fit(X, None, sd)
    >>> gfk.transform(X, sd).shape
    (200, 4)
    >>> R = gfk.map_; G = R @ R.T                    # the kernel itself, D x D
    >>> bool(np.allclose(G, G.T)), bool(np.linalg.eigvalsh(G).min() > -1e-12)
    (True, True)
    """

    family = "alignment"
    search_space = {"n_components": (10, 20, 40)}

    def __init__(self, n_components: int = 20):
        self.n_components = n_components

    def _fit(self, X, y, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        Xs, Xt = X[source_mask(sample_domain)], X[target_mask(sample_domain)]
        k = self.n_components_ = domain_dimension(self.n_components, X.shape[1], len(Xs), len(Xt))
        _, self.basis_source_ = principal_basis(Xs, k)
        _, self.basis_target_ = principal_basis(Xt, k)
        self.map_ = geodesic_flow_map(self.basis_source_, self.basis_target_)

    def _transform(self, X, sample_domain):
        return np.asarray(X, dtype=np.float64) @ self.map_
