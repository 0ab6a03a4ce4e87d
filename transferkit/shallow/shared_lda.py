"""A shared discriminant space: LDA learnt on the source, applied to every domain."""

from __future__ import annotations

import numpy as np

from transferkit.domains import source_mask
from transferkit.errors import TransferkitError, check_flag
from transferkit.shallow.base import BaseAdapter


class SharedLDA(BaseAdapter):
    r"""Project every domain on the source's linear discriminant directions.

    Fisher's LDA on the labelled source rows finds :math:`W` maximizing
    :math:`\operatorname{tr}((W^\top S_w W)^{-1} W^\top S_b W)` (between-class over within-class
    scatter); all rows are mapped to :math:`(x - \mu_{d(x)}) W`, where, with ``center_domains=True``,
    :math:`\mu_{d}` is the mean of the row's own domain (a first-order alignment that removes a
    translation between domains before projecting; it presumes similar class proportions in the
    domains). The within-class covariance is shrunk with the Ledoit-Wolf estimate (``solver="eigen"``,
    ``shrinkage="auto"``), which keeps LDA stable with hundreds of features and few rows per class.
    ``n_components=None`` keeps ``classes - 1`` directions; the embedding is scaled to unit average
    variance on the source. Only source labels are read. For a shared *unsupervised* space use the
    ``pca`` preprocessing step (:class:`~transferkit.preprocessing.SharedPCA`).

    Reference: R. A. Fisher, "The use of multiple measurements in taxonomic problems", 1936;
    O. Ledoit, M. Wolf, "A well-conditioned estimator for large-dimensional covariance matrices", 2004.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50); Xs = rng.normal(size=(100, 5)) + 3 * y[:, None] * [1, 0, 0, 0, 0]
    >>> Xt = Xs + 10.0                              # the target is translated
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(100, int), -np.ones(100, int)]
    >>> Z = SharedLDA().fit_transform(X, np.r_[y, -np.ones(100, int)], sd)
    >>> Z.shape, bool(np.allclose(Z[:100], Z[100:]))
    ((200, 1), True)
    """

    family = "alignment"

    def __init__(self, n_components: int | None = None, center_domains: bool = True):
        self.n_components = n_components
        self.center_domains = center_domains

    def _fit(self, X, y, sample_domain):
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        if self.n_components is not None and self.n_components < 1:
            raise TransferkitError(f"n_components must be >= 1 (or None), got {self.n_components}.")
        check_flag("center_domains", self.center_domains)
        if y is None:
            raise TransferkitError("SharedLDA learns from the source labels; pass y.")
        X = np.asarray(X, dtype=np.float64)
        if self.center_domains:
            small = [int(d) for d in np.unique(sample_domain) if int(np.sum(sample_domain == d)) < 2]
            if small:  # one row minus its own mean is zero: the domain would be one point
                raise TransferkitError(
                    f"SharedLDA centres each domain on its mean, and domain(s) {small} have 1 row (which "
                    "centring makes zero); give at least 2 rows per domain, or center_domains=false."
                )
        self.means_ = {int(d): X[sample_domain == d].mean(0) for d in np.unique(sample_domain)}
        Xc = self._center(X, sample_domain)
        src = source_mask(sample_domain)
        n_classes = np.unique(y[src]).size
        # at most min(features, classes - 1) discriminant directions exist
        most = min(X.shape[1], n_classes - 1)
        k = most if self.n_components is None else min(self.n_components, most)
        if k < 1:
            raise TransferkitError("SharedLDA needs at least 2 source classes.")
        if src.sum() <= n_classes:  # scikit-learn's LDA estimates a within-class covariance
            raise TransferkitError(
                f"SharedLDA needs more source rows than source classes to estimate the within-class "
                f"spread: got {int(src.sum())} rows for {n_classes} classes."
            )
        self.lda_ = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto", n_components=k)
        self.lda_.fit(Xc[src], y[src])
        # one global scale: unit average variance of the source projection (see TCA)
        self.scale_ = 1.0 / np.sqrt(np.mean(np.var(self.lda_.transform(Xc[src]), axis=0)))

    def _center(self, X, sample_domain):
        if not self.center_domains:
            return X
        unseen = sorted(set(np.unique(sample_domain).tolist()) - set(self.means_))
        if unseen:
            raise TransferkitError(
                f"domain(s) {unseen} were not seen at fit time, so their mean is unknown; fit with their "
                "rows, or use center_domains=False."
            )
        X = X.copy()
        for d in np.unique(sample_domain):
            X[sample_domain == d] -= self.means_[int(d)]
        return X

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        Xc = self._center(X, sample_domain)
        return self.lda_.transform(Xc) * self.scale_
