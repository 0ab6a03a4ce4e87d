"""KLIEP: Kullback-Leibler importance estimation (Sugiyama et al., NIPS 2007)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import kernel, median_gamma
from transferkit.shallow.base import BaseReweighter


class KLIEP(BaseReweighter):
    r"""Estimate the density ratio :math:`w(x) = p_t(x)/p_s(x)` as a mix of Gaussians on target points.

    .. math::

        w(x) = \sum_l \alpha_l\, \exp(-\gamma \|x - c_l\|^2), \qquad
        \max_{\alpha \ge 0} \frac{1}{n_t}\sum_j \log w(x^t_j)
        \ \text{s.t.}\ \frac{1}{n_s}\sum_i w(x^s_i) = 1

    (the KL divergence from the target to the reweighted source, minimised). Centres
    :math:`c_l` are ``n_centers`` target rows drawn with ``random_state``; the problem is solved by
    projected gradient ascent. ``gamma`` is chosen from ``gammas`` (multiples of the median-heuristic
    value) by ``cv``-fold likelihood cross-validation on the *target rows* (no label is used), as in
    the paper. Being a function, ``w`` weights any new row.

    Reference: M. Sugiyama et al., "Direct importance estimation with model selection and its
    application to covariate shift adaptation", NIPS 2007.

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
        max_iter: int = 2000,
        lr: float = 1e-3,
        tol: float = 1e-6,
        random_state: int | None = 0,
    ):
        self.n_centers = n_centers
        self.gammas = gammas
        self.cv = cv
        self.max_iter = max_iter
        self.lr = lr
        self.tol = tol
        self.random_state = random_state

    def _solve(self, Phi_t, phi_s_mean):
        """Projected gradient ascent on mean log(Phi_t alpha), keeping phi_s_mean . alpha = 1, alpha >= 0."""
        b = phi_s_mean
        alpha = np.ones(Phi_t.shape[1])
        alpha /= b @ alpha
        step = self.lr
        prev = -np.inf
        for _ in range(self.max_iter):
            grad = Phi_t.T @ (1.0 / np.clip(Phi_t @ alpha, 1e-300, None))
            alpha = alpha + step * grad
            alpha = alpha + (1 - b @ alpha) * b / (b @ b)
            alpha = np.clip(alpha, 0.0, None)
            alpha /= b @ alpha
            obj = np.mean(np.log(np.clip(Phi_t @ alpha, 1e-300, None)))
            if abs(obj - prev) < self.tol * max(1.0, abs(obj)):
                break
            prev = obj
        return alpha

    def _fit(self, X, y, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        Xs, Xt = X[source_mask(sample_domain)], X[target_mask(sample_domain)]
        if self.cv < 2 or len(Xt) < self.cv:
            raise TransferkitError(
                f"KLIEP's cross-validation needs cv >= 2 and >= cv target rows ({self.cv})."
            )
        rng = np.random.default_rng(self.random_state)
        n_c = min(self.n_centers, len(Xt))
        self.centers_ = Xt[np.sort(rng.choice(len(Xt), n_c, replace=False))]
        base = median_gamma(np.vstack([Xs, Xt]), random_state=self.random_state)
        folds = rng.permutation(len(Xt)) % self.cv
        scores = []
        for g in self.gammas:
            gamma = g * base
            phi_s = kernel(Xs, self.centers_, "rbf", gamma).mean(0)
            Phi_t = kernel(Xt, self.centers_, "rbf", gamma)
            ll = []
            for k in range(self.cv):
                alpha = self._solve(Phi_t[folds != k], phi_s)
                ll.append(np.mean(np.log(np.clip(Phi_t[folds == k] @ alpha, 1e-300, None))))
            scores.append(np.mean(ll))
        self.cv_scores_ = dict(zip(self.gammas, scores))
        self.gamma_ = float(self.gammas[int(np.argmax(scores))] * base)
        phi_s = kernel(Xs, self.centers_, "rbf", self.gamma_).mean(0)
        self.alpha_ = self._solve(kernel(Xt, self.centers_, "rbf", self.gamma_), phi_s)

    def _compute_weights(self, X, sample_domain):
        return kernel(np.asarray(X, dtype=np.float64), self.centers_, "rbf", self.gamma_) @ self.alpha_
