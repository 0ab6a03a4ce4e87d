"""Source-only: train on the labelled source, predict the target, adapt nothing."""

from __future__ import annotations

from transferkit.shallow.base import BaseAdapter


class SourceOnly(BaseAdapter):
    """Source-only baseline: the classifier sees the source features unchanged.

    The lower bound every adaptation method must beat. Composed with any classifier through
    :class:`~transferkit.shallow.base.DAClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [5.0]]); sd = np.array([0, 0, -1])
    >>> SourceOnly().fit_transform(X, np.array([0, 1, -1]), sd).ravel().tolist()
    [0.0, 1.0, 5.0]
    """

    family = "baseline"

    def _fit(self, X, y, sample_domain):
        pass

    def _transform(self, X, sample_domain):
        return X
