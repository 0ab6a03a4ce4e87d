"""Density ratio from a domain classifier (Bickel, Brueckner and Scheffer, ICML 2007)."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow.base import BaseReweighter


class DensityRatio(BaseReweighter):
    r"""Weight source rows by :math:`p_t(x)/p_s(x)` estimated by a source-vs-target classifier.

    By Bayes' rule, with a probabilistic classifier :math:`d(x) = P(\text{target} \mid x)`,

    .. math:: w(x) = \frac{p_t(x)}{p_s(x)} = \frac{d(x)}{1 - d(x)} \cdot \frac{n_s}{n_t}.

    The classifier is an L2 logistic regression (``C`` the inverse regularization strength) on standardized
    features; weights are clipped to ``[0, clip]`` (a few near-target rows must not take all the mass) and
    rescaled to mean 1 over the source rows.

    Reference: S. Bickel, M. Brueckner, T. Scheffer, "Discriminative learning for differing training
    and test distributions", ICML 2007.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(0, 2, (300, 1)); Xt = rng.normal(1.5, 0.5, (150, 1))
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(300, int), -np.ones(150, int)]
    >>> w = DensityRatio().fit(X, None, sd).compute_weights(X, sd)[:300]
    >>> round(float(w.mean()), 6), bool(w[Xs[:, 0] > 1].mean() > w[Xs[:, 0] < -1].mean())
    (1.0, True)
    """

    family = "reweighting"

    def __init__(self, C: float = 1.0, clip: float = 20.0, random_state: int | None = 0):
        self.C = C
        self.clip = clip
        self.random_state = random_state

    def _fit(self, X, y, sample_domain):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if not self.clip > 0:
            raise TransferkitError(f"clip must be > 0, got {self.clip}.")
        if not self.C > 0:
            raise TransferkitError(f"C (the inverse regularization strength) must be > 0, got {self.C}.")
        src, tgt = source_mask(sample_domain), target_mask(sample_domain)
        rows = src | tgt
        d = tgt[rows].astype(int)
        self.domain_classifier_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        ).fit(X[rows], d)
        self.prior_ratio_ = src.sum() / tgt.sum()
        raw = self._raw(X[src])
        self.scale_ = 1.0 / raw.mean()

    def _raw(self, X):
        p = np.clip(self.domain_classifier_.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
        return np.clip(p / (1 - p) * self.prior_ratio_, 0.0, self.clip)

    def _compute_weights(self, X, sample_domain):
        return self._raw(X) * self.scale_
