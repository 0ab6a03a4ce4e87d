"""CORAL: correlation alignment (Sun, Feng and Saenko, AAAI 2016)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow.base import BaseAdapter


def _sym_power(C: np.ndarray, p: float) -> np.ndarray:
    """``C ** p`` for a symmetric positive definite matrix, through its eigendecomposition.

    NumPy's ``eigh`` calls LAPACK's divide-and-conquer driver (``syevd``): all eigenpairs of a dense
    matrix, nearly twice as fast as scipy's default driver (``syevr``) on a covariance of SURF features.
    """
    w, V = np.linalg.eigh(C)
    w = np.clip(w, np.finfo(float).tiny, None)
    return (V * w**p) @ V.T


class CORAL(BaseAdapter):
    r"""Re-colour the source so that its covariance matches the target's.

    For each source domain with covariance :math:`C_s` and the target covariance :math:`C_t`,

    .. math:: X_s \leftarrow X_s\,(C_s + \lambda I)^{-1/2}\,(C_t + \lambda I)^{1/2}

    whitens the source and re-colours it with the target's second-order statistics; target rows
    are left as they are. A classifier trained on the re-coloured source then suits the target.
    ``reg`` is :math:`\lambda` (1 in the paper, on z-scored features). No labels are used.

    Reference: B. Sun, J. Feng, K. Saenko, "Return of frustratingly easy domain adaptation",
    AAAI 2016.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) * [3.0, 0.5]
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(200, int), -np.ones(200, int)]
    >>> Z = CORAL(reg=1e-6).fit_transform(X, None, sd)
    >>> bool(np.allclose(Z[:200].std(axis=0), Xt.std(axis=0), rtol=0.02))  # source now spreads as the target
    True
    """

    family = "alignment"
    search_space = {"reg": (0.1, 1.0, 10.0)}

    def __init__(self, reg: float = 1.0):
        self.reg = reg

    def _cov(self, X):
        X = np.asarray(X, dtype=np.float64)
        return np.cov(X, rowvar=False) + self.reg * np.eye(X.shape[1])

    def _fit(self, X, y, sample_domain):
        try:
            reg = float(self.reg)
        except (TypeError, ValueError):
            reg = float("nan")
        if not (np.isfinite(reg) and reg >= 0):
            raise TransferkitError(
                f"CORAL's reg (added to each covariance's diagonal) must be a number >= 0, got {self.reg!r}."
            )
        for d in np.unique(sample_domain):
            if (n := int(np.sum(sample_domain == d))) < 2:
                raise TransferkitError(
                    f"CORAL matches covariances, and domain {int(d)} has {n} row: a covariance needs at "
                    "least 2 rows per domain (give more rows of it)."
                )
        ct_half = _sym_power(self._cov(X[target_mask(sample_domain)]), 0.5)
        self.maps_ = {
            int(d): _sym_power(self._cov(X[sample_domain == d]), -0.5) @ ct_half
            for d in np.unique(sample_domain[source_mask(sample_domain)])
        }

    def _transform(self, X, sample_domain):
        unseen = sorted(
            {int(d) for d in np.unique(sample_domain[source_mask(sample_domain)])} - set(self.maps_)
        )
        if unseen:  # its rows would pass unchanged, as if they were target rows
            raise TransferkitError(
                f"source domain(s) {unseen} were not seen at fit time: CORAL has no map for them (fit it "
                f"with their rows, or give rows of the fitted source domains {sorted(self.maps_)})."
            )
        X = np.asarray(X, dtype=np.float64).copy()
        for d, A in self.maps_.items():
            rows = sample_domain == d
            X[rows] = X[rows] @ A
        return X
