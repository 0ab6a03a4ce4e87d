"""KMM: kernel mean matching (Huang, Smola, Gretton, Borgwardt and Schoelkopf, NIPS 2006)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import check_dense_size, kernel, median_gamma
from transferkit.shallow.base import BaseReweighter


class KMM(BaseReweighter):
    r"""Weight source rows so that their kernel mean matches the target's, by quadratic programming.

    .. math::

        \min_\beta \tfrac12 \beta^\top K \beta - \kappa^\top \beta \quad\text{s.t.}\quad
        0 \le \beta_i \le B,\ \Big|\sum_i \beta_i - n_s\Big| \le n_s \epsilon

    with :math:`K_{ij} = k(x^s_i, x^s_j)` and :math:`\kappa_i = \frac{n_s}{n_t}\sum_j k(x^s_i, x^t_j)`:
    the weighted source mean embedding in the kernel's feature space comes as close as possible to
    the target's. The QP is solved by OSQP (an operator-splitting QP solver) to absolute and
    relative tolerance ``tol`` in at most ``max_iter`` iterations (a ``ConvergenceWarning`` when it
    stops early). ``gamma=None`` uses the median heuristic, :math:`1/\mathrm{median}\|x_i - x_j\|^2`
    over the pooled source and target rows (a sample of 1000 when there are more); ``eps=None``
    uses :math:`(\sqrt{n_s} - 1)/\sqrt{n_s}` (the paper asks for :math:`\epsilon = O(B/\sqrt{n_s})`).
    ``B`` bounds any one weight (loose by default). KMM is transductive: it weights
    the source rows it was fitted on; another source row gets the weight of its nearest fitted row,
    and target rows weight 1. Memory and time grow as :math:`n_s^2` (the kernel matrix).

    Reference: J. Huang et al., "Correcting sample selection bias by unlabeled data", NIPS 2006.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(0, 2, (200, 1)); Xt = rng.normal(1.5, 0.5, (100, 1))
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(200, int), -np.ones(100, int)]
    >>> w = KMM().fit(X, None, sd).compute_weights(X, sd)[:200]
    >>> bool(w[np.abs(Xs[:, 0] - 1.5) < 0.5].mean() > 3 * w[Xs[:, 0] < -1].mean())
    True
    """

    family = "reweighting"

    def __init__(
        self,
        kernel: Literal["rbf", "linear"] = "rbf",
        gamma: float | None = None,
        B: float = 1000.0,
        eps: float | None = None,
        tol: float = 1e-6,
        max_iter: int = 10000,
    ):
        self.kernel = kernel
        self.gamma = gamma
        self.B = B
        self.eps = eps
        self.tol = tol
        self.max_iter = max_iter

    def _fit(self, X, y, sample_domain):
        import osqp
        from scipy import sparse

        if self.kernel not in ("rbf", "linear"):
            raise TransferkitError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}.")
        if not self.B > 0:
            raise TransferkitError(f"B (the largest weight) must be > 0, got {self.B}.")
        if self.gamma is not None and not self.gamma > 0:
            raise TransferkitError(f"gamma must be > 0 (or None for the median heuristic), got {self.gamma}.")
        if self.eps is not None and not self.eps >= 0:
            raise TransferkitError(f"eps must be >= 0 (or None for the default), got {self.eps}.")
        if not self.tol > 0 or int(self.max_iter) < 1:
            raise TransferkitError(f"need tol > 0 and max_iter >= 1, got {self.tol} and {self.max_iter}.")
        X = np.asarray(X, dtype=np.float64)
        src, tgt = source_mask(sample_domain), target_mask(sample_domain)
        Xs, Xt = X[src], X[tgt]
        ns, nt = len(Xs), len(Xt)
        # the kernel's temporaries, K, its symmetrized copy, the upper triangle OSQP takes (values and
        # indices) and its KKT factors: a peak of 6.1 n_s x n_s float64 matrices, measured at n_s = 1500
        check_dense_size(ns, 7, "KMM", rows="the source rows")
        self.gamma_ = self.gamma if self.gamma is not None else median_gamma(X[src | tgt])
        K = kernel(Xs, Xs, self.kernel, self.gamma_)
        K = 0.5 * (K + K.T) + 1e-8 * np.eye(ns)
        kappa = (ns / nt) * kernel(Xs, Xt, self.kernel, self.gamma_).sum(1)
        eps = self.eps if self.eps is not None else (np.sqrt(ns) - 1) / np.sqrt(ns)
        if self.B * ns < ns * (1 - eps):
            raise TransferkitError(
                f"KMM's constraints cannot hold: weights <= B = {self.B} cannot sum to n_s (1 - eps) with "
                f"eps = {eps:.3g}; raise B or eps."
            )
        A = sparse.vstack([sparse.eye(ns), sparse.csr_matrix(np.ones((1, ns)))], format="csc")
        lower = np.r_[np.zeros(ns), ns * (1 - eps)]
        upper = np.r_[np.full(ns, float(self.B)), ns * (1 + eps)]
        solver = osqp.OSQP()
        # no solution polishing: OSQP 1.x prints a line on stdout when it skips one (osqp/osqp#785);
        # at tol = 1e-6 the objective is within ~1e-7 (relative) of the optimum without it
        P = sparse.triu(sparse.csc_matrix(K), format="csc")
        solver.setup(P, -kappa, A, lower, upper, verbose=False, eps_abs=self.tol, eps_rel=self.tol,
                     max_iter=int(self.max_iter), polishing=False)  # fmt: skip
        result = solver.solve(raise_error=False)
        status = str(result.info.status)
        if result.x is None or not np.isfinite(result.x).all() or "infeasible" in status:
            raise TransferkitError(f"KMM's quadratic program did not solve ({status}).")
        if status != "solved":
            import warnings

            from sklearn.exceptions import ConvergenceWarning

            warnings.warn(
                f"KMM's quadratic program stopped with status '{status}' after {result.info.iter} "
                "iterations; raise max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.solver_status_ = status
        self.n_iter_ = int(result.info.iter)
        self.weights_ = np.clip(result.x, 0.0, self.B)
        self.source_rows_ = Xs

    def _compute_weights(self, X, sample_domain):
        w = np.ones(len(X))
        src = source_mask(sample_domain)
        Xs = np.asarray(X, dtype=np.float64)[src]
        # rows seen in fit get their solved weight; any other source row the weight of its nearest
        # fitted source row (KMM is transductive: it has no weight function)
        from sklearn.neighbors import NearestNeighbors

        if src.any():
            nn = NearestNeighbors(n_neighbors=1).fit(self.source_rows_)
            w[src] = self.weights_[nn.kneighbors(Xs, return_distance=False)[:, 0]]
        return w
