"""ERM over all training domains: empirical risk minimization on the pooled, weighted sources."""

from __future__ import annotations

from transferkit.dg.base import DGMethod


class ERM(DGMethod):
    r"""Empirical risk minimization over every labelled domain, weighted (Vapnik 1998; DomainBed).

    .. math:: \mathcal{L} = \frac{\sum_d \sum_{i \in d} \lambda_{d,i}\, \ell(h(x_{d,i}), y_{d,i})}
        {\sum_d \sum_{i \in d} \lambda_{d,i}}

    over the batch's rows, :math:`\lambda_{d,i}` being the per-domain x per-sample weights
    (``sample_weight``, ``balance_domains``; all 1 by default). The baseline DomainBed found hard to
    beat. It never sees the held-out domain and works with one training domain too. The small grid
    is over the learning rate of the trainer's default SGD (the hyperparameter ERM is most sensitive
    to).
    """

    min_source_domains = 1
    search_space = {"lr": (0.01, 0.03)}
