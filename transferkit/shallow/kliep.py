"""KLIEP: Kullback-Leibler importance estimation (Sugiyama et al., NIPS 2007)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import median_gamma
from transferkit.shallow.base import BaseReweighter


def _sq_dist(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``||x - c||^2`` for every row and centre; ``log k(x, c) = -gamma`` times it (logs: no underflow)."""
    from sklearn.metrics.pairwise import euclidean_distances

    return euclidean_distances(X, centers, squared=True)


def kliep_objective(A: np.ndarray, a: np.ndarray) -> float:
    """``mean_j log (A a)_j``: the target log-likelihood of the ratio model (up to a constant)."""
    with np.errstate(divide="ignore"):
        return float(np.mean(np.log(A @ a)))


def _project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of a vector onto the probability simplex (the sort-and-threshold rule of
    Held, Wolfe and Crowder, 1974; Duchi et al., ICML 2008). The same operations, in the same order,
    as POT's ``ot.utils.proj_simplex`` (identical results), without its backend dispatch, which was
    most of a KLIEP step's time on 100 centres."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    rho = np.count_nonzero(u - cumulative / np.arange(1, len(v) + 1) > 0)
    return np.maximum(v - cumulative[rho - 1] / rho, 0.0)


def solve_kliep(A: np.ndarray, max_iter: int = 1000, tol: float = 1e-7) -> tuple[np.ndarray, int]:
    r"""Maximise :math:`\frac1n\sum_j \log (A a)_j` over the probability simplex.

    Projected gradient ascent (the paper's algorithm) in the variables :math:`a_l = b_l\alpha_l`,
    which turn the constraint :math:`b^\top\alpha = 1, \alpha \ge 0` into the simplex, so that the
    projection is exact (:func:`_project_to_simplex`) and the problem is free of the kernel's scale. The
    step along the gradient (scaled to unit max-norm) is found by backtracking (Armijo rule along
    the projection arc) and may grow again after a success. Stops when a step gains less than
    ``tol``. Returns the maximiser and the number of iterations.
    """
    n, m = A.shape
    a = np.full(m, 1.0 / m)
    f = kliep_objective(A, a)
    step = 1.0  # in units of the simplex: the largest coordinate moves by at most `step`
    for it in range(1, max_iter + 1):
        grad = A.T @ (1.0 / (A @ a)) / n
        direction = grad / np.abs(grad).max()
        for _ in range(60):
            cand = _project_to_simplex(a + step * direction)
            f_cand = kliep_objective(A, cand)
            if np.isfinite(f_cand) and f_cand >= f + 1e-4 * grad @ (cand - a):
                break
            step *= 0.5
        else:  # no ascent possible at machine precision: a is optimal
            return a, it
        gain = f_cand - f
        a, f = cand, f_cand
        step = min(2.0 * step, 10.0)  # grow again after a success
        if gain <= tol:
            return a, it
    return a, max_iter


class KLIEP(BaseReweighter):
    r"""Estimate the density ratio :math:`w(x) = p_t(x)/p_s(x)` as a mix of Gaussians on target points.

    .. math::

        w(x) = \sum_l \alpha_l\, \exp(-\gamma \|x - c_l\|^2), \qquad
        \max_{\alpha \ge 0} \frac{1}{n_t}\sum_j \log w(x^t_j)
        \ \text{s.t.}\ \frac{1}{n_s}\sum_i w(x^s_i) = 1

    (the KL divergence from the target to the reweighted source, minimised). Centres
    :math:`c_l` are ``n_centers`` target rows drawn with ``random_state``; the problem is solved by
    projected gradient ascent (:func:`solve_kliep`) until the log-likelihood gains less than
    ``tol`` per step, or ``max_iter`` steps. The width is chosen by likelihood cross-validation on
    the *target rows* (no label is used), as in the paper: ``gamma`` runs over ``gammas`` times the
    median-heuristic value :math:`1/\mathrm{median}\|x_i - x_j\|^2`; each of ``cv`` folds of target
    rows is held out in turn, the model is fitted on the other target rows with the centres that
    are not held out, and the held-out mean :math:`\log w` is the score. Being a function, ``w``
    weights any row, also a new one; source weights average 1.

    Reference: M. Sugiyama, S. Nakajima, H. Kashima, P. von Buenau, M. Kawanabe, "Direct importance
    estimation with model selection and its application to covariate shift adaptation", NIPS 2007.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(0, 2, (300, 1)); Xt = rng.normal(1.5, 0.5, (150, 1))
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(300, int), -np.ones(150, int)]
    >>> w = KLIEP().fit(X, None, sd).compute_weights(X, sd)[:300]
    >>> bool(w[np.abs(Xs[:, 0] - 1.5) < 0.5].mean() > 3 * w[Xs[:, 0] < -1].mean())
    True
    """

    family = "reweighting"

    def __init__(
        self,
        n_centers: int = 100,
        gammas: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0),
        cv: int = 5,
        max_iter: int = 1000,
        tol: float = 1e-7,
        random_state: int | None = 0,
    ):
        self.n_centers = n_centers
        self.gammas = gammas
        self.cv = cv
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _check_params(self, n_target: int) -> tuple[float, ...]:
        if int(self.n_centers) < 1:
            raise TransferkitError(f"n_centers must be >= 1, got {self.n_centers}.")
        gammas = tuple(float(g) for g in np.atleast_1d(self.gammas))
        if not gammas or not all(np.isfinite(g) and g > 0 for g in gammas):
            raise TransferkitError(f"gammas must be positive numbers, got {self.gammas!r}.")
        if int(self.max_iter) < 1 or not self.tol >= 0:
            raise TransferkitError(f"need max_iter >= 1 and tol >= 0, got {self.max_iter} and {self.tol}.")
        if len(gammas) > 1 and (int(self.cv) < 2 or n_target < int(self.cv)):
            raise TransferkitError(
                f"KLIEP chooses its width by {self.cv}-fold cross-validation on the target rows: it needs "
                f"cv >= 2 and at least cv target rows (got {n_target}); or give a single width in gammas."
            )
        return gammas

    @staticmethod
    def _design(log_t: np.ndarray, log_b: np.ndarray) -> np.ndarray:
        """Target basis divided by its source mean, each row scaled to max 1 (a constant per row)."""
        logs = log_t - log_b
        return np.exp(logs - logs.max(axis=1, keepdims=True))

    def _fit(self, X, y, sample_domain):
        from scipy.special import logsumexp

        X = np.asarray(X, dtype=np.float64)
        Xs, Xt = X[source_mask(sample_domain)], X[target_mask(sample_domain)]
        gammas = self._check_params(len(Xt))
        rng = np.random.default_rng(self.random_state)
        n_c = min(int(self.n_centers), len(Xt))
        center_rows = np.sort(rng.choice(len(Xt), n_c, replace=False))
        self.centers_ = Xt[center_rows]
        base = median_gamma(np.vstack([Xs, Xt]), random_state=self.random_state)
        is_center = np.zeros(len(Xt), bool)
        is_center[center_rows] = True
        folds = rng.permutation(len(Xt)) % max(int(self.cv), 1)

        # squared distances to the centres once; every width and fold takes a slice of them
        dist_t, dist_s = _sq_dist(Xt, self.centers_), _sq_dist(Xs, self.centers_)

        def fit_width(gamma, keep_rows, keep_centers):
            log_t = -gamma * dist_t[np.ix_(keep_rows, keep_centers)]
            log_b = logsumexp(-gamma * dist_s[:, keep_centers], axis=0) - np.log(len(Xs))
            a, n_iter = solve_kliep(self._design(log_t, log_b), int(self.max_iter), float(self.tol))
            return a, log_b, n_iter

        scores = {}
        if len(gammas) > 1:
            for g in gammas:
                gamma = g * base
                ll = []
                for k in range(int(self.cv)):
                    held = folds == k
                    keep_centers = ~held[center_rows]  # a held-out row must not be a centre
                    if not keep_centers.any():
                        keep_centers[:] = True
                    a, log_b, _ = fit_width(gamma, ~held, keep_centers)
                    log_w = -gamma * dist_t[np.ix_(held, keep_centers)] - log_b
                    with np.errstate(divide="ignore"):
                        ll.append(float(np.mean(logsumexp(log_w + np.log(a), axis=1))))
                scores[g] = float(np.mean(ll))
            best = max(scores, key=scores.get)  # first of equals: the widest kernel
        else:
            best = gammas[0]
        self.cv_scores_ = scores
        self.gamma_ = float(best * base)
        self.coef_, self.log_norm_, self.n_iter_ = fit_width(
            self.gamma_, np.ones(len(Xt), bool), np.ones(n_c, bool)
        )
        with np.errstate(over="ignore"):
            self.alpha_ = self.coef_ * np.exp(-self.log_norm_)  # the paper's coefficients

    def _compute_weights(self, X, sample_domain):
        from scipy.special import logsumexp

        log_k = -self.gamma_ * _sq_dist(np.asarray(X, dtype=np.float64), self.centers_) - self.log_norm_
        with np.errstate(divide="ignore"):
            log_w = logsumexp(log_k + np.log(self.coef_), axis=1)
        return np.exp(np.minimum(log_w, 700.0))
