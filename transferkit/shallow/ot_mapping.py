"""Optimal transport mapping of the source onto the target (Courty, Flamary, Tuia and Rakotomamonjy, 2017)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow.base import BaseAdapter


class OTMapping(BaseAdapter):
    r"""Move every source row to the barycentre of the target rows it is transported to.

    The coupling :math:`\gamma` solves

    .. math::

        \min_{\gamma \in \Pi(a, b)} \langle \gamma, C \rangle
        - \epsilon\, H(\gamma) + \eta\, \Omega_{\text{class}}(\gamma),

    with :math:`C_{ij} = \|x^s_i - x^t_j\|^2` (divided by its median, so that the regularization
    strengths mean the same on any data), uniform marginals :math:`a, b`, and

    - ``solver="emd"``: exact optimal transport (:math:`\epsilon = \eta = 0`), network simplex;
    - ``solver="sinkhorn"``: entropic regularization :math:`\epsilon` = ``reg_e`` (Sinkhorn);
    - ``solver="class-reg"``: entropic plus the group-lasso class regularizer :math:`\eta` =
      ``reg_cl``, which stops a target row from receiving mass from source rows of different
      classes (only source labels are used).

    Source rows are mapped to :math:`\hat x^s_i = \frac{\sum_j \gamma_{ij} x^t_j}{\sum_j \gamma_{ij}}`;
    target rows stay. New source rows are mapped by POT's out-of-sample rule (the displacement of
    their nearest fitted source row). Solved by POT (``ot.da``); nothing hand-written.

    Reference: N. Courty, R. Flamary, D. Tuia, A. Rakotomamonjy, "Optimal transport for domain
    adaptation", IEEE TPAMI 39(9), 2017.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(50, 2)); Xt = rng.normal(size=(50, 2)) * 0.5 + 3.0
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(50, int), -np.ones(50, int)]
    >>> Z = OTMapping(solver="emd").fit_transform(X, None, sd)
    >>> bool(np.allclose(np.sort(Z[:50], 0), np.sort(Xt, 0)))   # exact OT: a permutation of the target
    True
    """

    family = "optimal-transport"
    search_space = {"solver": ("emd", "sinkhorn", "class-reg")}

    def __init__(
        self,
        solver: Literal["emd", "sinkhorn", "class-reg"] = "emd",
        reg_e: float = 0.1,
        reg_cl: float = 1.0,
        max_iter: int = 100000,
    ):
        self.solver = solver
        self.reg_e = reg_e
        self.reg_cl = reg_cl
        self.max_iter = max_iter

    def _fit(self, X, y, sample_domain):
        import ot

        X = np.asarray(X, dtype=np.float64)
        src, tgt = source_mask(sample_domain), target_mask(sample_domain)
        Xs, Xt = X[src], X[tgt]
        if self.solver == "emd":
            self.transport_ = ot.da.EMDTransport(metric="sqeuclidean", norm="median", max_iter=self.max_iter)
            self.transport_.fit(Xs=Xs, Xt=Xt)
        elif self.solver == "sinkhorn":
            self.transport_ = ot.da.SinkhornTransport(reg_e=self.reg_e, metric="sqeuclidean", norm="median",
                                                      max_iter=min(self.max_iter, 1000))  # fmt: skip
            self.transport_.fit(Xs=Xs, Xt=Xt)
        elif self.solver == "class-reg":
            if y is None:
                raise TransferkitError("the class-regularized solver needs the source labels y.")
            self.transport_ = ot.da.SinkhornLpl1Transport(reg_e=self.reg_e, reg_cl=self.reg_cl,
                                                          metric="sqeuclidean", norm="median")  # fmt: skip
            self.transport_.fit(Xs=Xs, ys=y[src], Xt=Xt)
        else:
            raise TransferkitError(f"solver must be 'emd', 'sinkhorn' or 'class-reg', got {self.solver!r}.")
        coupling = self.transport_.coupling_
        if not np.isfinite(coupling).all() or coupling.sum() <= 0:
            raise TransferkitError(
                f"the {self.solver} transport failed (non-finite coupling); raise reg_e or use solver='emd'."
            )

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64).copy()
        src = source_mask(sample_domain)
        if src.any():
            X[src] = self.transport_.transform(Xs=X[src])
        return X
