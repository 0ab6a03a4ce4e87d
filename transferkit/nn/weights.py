r"""Per-sample and per-domain weights of the labelled source rows (multi-domain training).

With several labelled domains the objective is

.. math:: \mathcal{L} = \frac{\sum_d \sum_{i \in d} \lambda_{d,i}\, \ell_{d,i}}
    {\sum_d \sum_{i \in d} \lambda_{d,i}},
    \qquad \lambda_{d,i} = \mu_d\, w_i,

with :math:`w_i` a weight per sample and :math:`\mu_d` a weight per domain. ``balance_domains``
rescales the weights so that every domain carries the same total weight: with unit weights this is
:math:`\lambda_{d,i} = n / (D\, n_d)` (``n`` source rows in ``D`` domains, ``n_d`` in domain ``d``),
so a small domain counts as much as a large one. In a mini-batch the loss is the weighted mean
:math:`\sum_i \lambda_i \ell_i / \sum_i \lambda_i` over the batch's source rows
(:meth:`transferkit.deep.base.DeepMethod.supervised`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from transferkit.errors import TransferkitError

__all__ = ["source_weights"]


def source_weights(
    sample_domain, sample_weight=None, *, domain_weight: Mapping[int, float] | None = None,
    balance_domains: bool = False,
) -> np.ndarray | None:  # fmt: skip
    r"""The weight :math:`\lambda_{d,i}` of every row (target rows get 0), or None when all are 1.

    ``sample_weight``: one non-negative finite number per row (aligned with ``sample_domain``; the
    target rows' entries are ignored). ``domain_weight``: source domain -> non-negative multiplier
    (domains not named keep 1). ``balance_domains``: rescale so each source domain's weights sum to
    the same total (the mean weight over the source stays 1).
    """
    sd = np.asarray(sample_domain)
    n = len(sd)
    src = sd >= 0
    if sample_weight is None and not domain_weight and not balance_domains:
        return None
    if sample_weight is None:
        w = np.ones(n, np.float64)
    else:
        try:
            w = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError):
            raise TransferkitError("sample_weight must hold numbers (one weight >= 0 per row).") from None
        if w.ndim != 1 or len(w) != n:
            raise TransferkitError(
                f"sample_weight must hold one weight per row ({n}), got shape {tuple(w.shape)}."
            )
        w = w.copy()
        if not np.isfinite(w[src]).all():
            raise TransferkitError("sample_weight holds NaN or infinite values on source rows.")
        if (w[src] < 0).any():
            raise TransferkitError(
                f"sample_weight must be >= 0; {int((w[src] < 0).sum())} source rows have a negative weight."
            )
    domains = np.unique(sd[src])
    for d, mu in (domain_weight or {}).items():
        if int(d) not in set(domains.tolist()):
            raise TransferkitError(
                f"domain_weight names domain {d}, which is not a source domain ({domains.tolist()})."
            )
        if not np.isfinite(mu) or mu < 0:
            raise TransferkitError(f"domain_weight of domain {d} must be a finite number >= 0, got {mu}.")
        w[sd == int(d)] *= float(mu)
    w[~src] = 0.0
    if balance_domains:
        totals = {int(d): w[sd == d].sum() for d in domains}
        if any(t <= 0 for t in totals.values()):
            empty = [d for d, t in totals.items() if t <= 0]
            raise TransferkitError(f"cannot balance domains whose weights are all zero: {empty}.")
        share = w[src].sum() / len(domains)
        for d, t in totals.items():
            w[sd == d] *= share / t
        w *= src.sum() / w[src].sum()  # mean weight 1 over the source rows
    if w[src].sum() <= 0:
        raise TransferkitError("every source row has weight 0; nothing to learn from.")
    return w
