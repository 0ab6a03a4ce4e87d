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

    References: V. Vapnik, "Statistical learning theory", Wiley 1998; I. Gulrajani and D. Lopez-Paz,
    "In search of lost domain generalization", ICLR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.erm import ERM
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, ERM(), TrainerConfig(steps=20, batch_size=16))
    >>> w = np.where(sd == 0, 2.0, 1.0)  # per-row weights: domain 0 counts twice
    >>> record = trainer.fit(X, y, sd, sample_weight=w)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'source_ce']
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    min_source_domains = 1
    search_space = {"lr": (0.01, 0.03)}
