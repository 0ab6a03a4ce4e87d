"""Optimal transport mapping of the source onto the target (Courty, Flamary, Tuia and Rakotomamonjy, 2017)."""

from __future__ import annotations

import warnings
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
    - ``solver="class-reg"``: entropic plus the class regularizer
      :math:`\Omega_{\text{class}}(\gamma) = \sum_j \sum_c \|\gamma_{I_c, j}\|_{1}^{1/2}`
      (:math:`\ell_p`-:math:`\ell_1`, :math:`I_c` the source rows of class :math:`c`) with strength
      :math:`\eta` = ``reg_cl``, which stops a target row from receiving mass from source rows of
      several classes; solved by majorization-minimization with Sinkhorn steps. Only source labels
      are used.

    Defaults: :math:`\epsilon = 0.1` of the median cost keeps the plan close to the exact one
    (a pair at the median distance weighs :math:`e^{-10}` of a coincident pair), and
    :math:`\eta = 0.1` is POT's default, at which the majorization steps converge; ``max_iter`` is
    the solver's iteration limit (``None``: network simplex 100000, Sinkhorn 1000, and 1000 Sinkhorn
    iterations per majorization step). A plan whose marginals are off by more than 0.1% at the
    limit gives one warning (``marginal_error_`` holds the largest relative error).

    Source rows are mapped to :math:`\hat x^s_i = \frac{\sum_j \gamma_{ij} x^t_j}{\sum_j \gamma_{ij}}`;
    target rows stay. New source rows are mapped by POT's out-of-sample rules: the displacement of
    their nearest fitted source row (``emd``, ``class-reg``), or the entropic map, which extends the
    barycentric formula to any point through the dual potentials (``sinkhorn``). Solved by POT
    (``ot.da``); nothing hand-written.

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
        reg_cl: float = 0.1,
        max_iter: int | None = None,
    ):
        self.solver = solver
        self.reg_e = reg_e
        self.reg_cl = reg_cl
        self.max_iter = max_iter

    def _fit(self, X, y, sample_domain):
        import ot

        if self.solver not in ("emd", "sinkhorn", "class-reg"):
            raise TransferkitError(f"solver must be 'emd', 'sinkhorn' or 'class-reg', got {self.solver!r}.")
        if self.solver != "emd" and not self.reg_e > 0:
            raise TransferkitError(f"reg_e must be > 0, got {self.reg_e}.")
        if self.solver == "class-reg" and not self.reg_cl >= 0:
            raise TransferkitError(f"reg_cl must be >= 0, got {self.reg_cl}.")
        if self.max_iter is not None and self.max_iter < 1:
            raise TransferkitError(
                f"max_iter must be >= 1 (or None for the solver's default), got {self.max_iter}."
            )
        if int(target_mask(sample_domain).sum()) < 2:  # every source row would land on the one row
            raise TransferkitError(
                "optimal transport maps the source onto the target's rows, and the target has 1 row: every "
                "source row would become it; give at least 2 target rows."
            )
        X = np.asarray(X, dtype=np.float64)
        src, tgt = source_mask(sample_domain), target_mask(sample_domain)
        Xs, Xt = X[src], X[tgt]
        if self.solver == "class-reg" and y is None:
            raise TransferkitError("the class-regularized solver needs the source labels y.")
        common = {"metric": "sqeuclidean", "norm": "median"}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if self.solver == "emd":
                it = 100000 if self.max_iter is None else int(self.max_iter)
                transport = ot.da.EMDTransport(max_iter=it, **common)
                transport.fit(Xs=Xs, Xt=Xt)
            elif self.solver == "sinkhorn":
                it = 1000 if self.max_iter is None else int(self.max_iter)
                transport = ot.da.SinkhornTransport(reg_e=self.reg_e, max_iter=it, **common)
                transport.fit(Xs=Xs, Xt=Xt)
            else:
                it = 1000 if self.max_iter is None else int(self.max_iter)
                transport = ot.da.SinkhornLpl1Transport(
                    reg_e=self.reg_e, reg_cl=self.reg_cl, max_inner_iter=it, **common
                )
                transport.fit(Xs=Xs, ys=y[src], Xt=Xt)  # source labels only: no yt, no target label
        self.transport_ = transport
        coupling = np.asarray(transport.coupling_)
        if not np.isfinite(coupling).all() or coupling.sum() <= 0 or (coupling.sum(1) <= 0).any():
            raise TransferkitError(
                f"the {self.solver} transport failed (a source row received no mass or the coupling is not "
                "finite); raise reg_e or use solver='emd'."
            )
        self.coupling_ = coupling
        # POT warns at every inner solve that stops at its iteration limit; what matters is whether
        # the final plan has the right marginals, so say that once, with the size of the error
        error = max(
            float(np.abs(coupling.sum(1) * len(Xs) - 1).max()),
            float(np.abs(coupling.sum(0) * len(Xt) - 1).max()),
        )
        self.marginal_error_ = error
        for w in caught:  # anything else POT said is passed on
            if "converge" not in str(w.message) and "numItermax" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if error > 1e-3:
            warnings.warn(
                f"OTMapping: the {self.solver} transport stopped at its iteration limit with marginals off "
                f"by up to {100 * error:.1f}%; raise max_iter (or reg_e).",
                UserWarning,
                stacklevel=3,
            )

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64).copy()
        src = source_mask(sample_domain)
        if src.any():
            X[src] = self.transport_.transform(Xs=X[src])
        return X
