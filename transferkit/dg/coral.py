"""CORAL across training domains (Sun & Saenko 2016, as a DG method in DomainBed)."""

from __future__ import annotations

import torch

from transferkit.deep.base import check_nonnegative
from transferkit.dg.base import DGMethod, source_domains
from transferkit.nn.losses import coral_loss


def coral_pair(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    r"""DomainBed's CORAL distance of two feature batches: the squared distance of the means (averaged
    over dimensions) plus Deep CORAL's :math:`\|C_a - C_b\|_F^2 / (4 d^2)`."""
    return (fa.mean(0) - fb.mean(0)).pow(2).mean() + coral_loss(fa, fb)


def pairwise_penalty(f: torch.Tensor, d: torch.Tensor, distance, min_rows: int = 2) -> torch.Tensor:
    """The mean of ``distance(f_a, f_b)`` over every pair of domains present in the batch with at least
    ``min_rows`` rows each (0 when there is no such pair)."""
    ids = [g for g in torch.unique(d) if int((d == g).sum()) >= min_rows]
    terms = [distance(f[d == a], f[d == b]) for i, a in enumerate(ids) for b in ids[i + 1 :]]
    return torch.stack(terms).mean() if terms else f.new_zeros(())


class DGCORAL(DGMethod):
    r"""Align the feature means and covariances of every pair of training domains (Deep CORAL for DG).

    .. math:: \mathcal{L} = \mathcal{L}_{\mathrm{ERM}} + \gamma \binom{D}{2}^{-1} \sum_{a < b}
        \Big( \tfrac{1}{k} \|\mu_a - \mu_b\|^2 + \tfrac{1}{4k^2} \|C_a - C_b\|_F^2 \Big)

    over the :math:`D` training domains present in the batch (with at least two rows each), on the
    :math:`k`-dimensional features; :math:`\mu, C` are each domain's batch mean and unbiased
    covariance. This is DomainBed's CORAL (Sun & Saenko, ECCV-W 2016; Gulrajani & Lopez-Paz, ICLR
    2021), with Deep CORAL's :math:`1/(4k^2)` on the covariance term. ``weight`` is :math:`\gamma`
    (DomainBed's default 1, searched over :math:`10^{[-1, 1]}`). The weights :math:`\lambda` enter the
    ERM term only.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.coral import DGCORAL
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, DGCORAL(weight=0.5), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['coral', 'loss', 'source_ce']
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    search_space = {"weight": (0.1, 1.0, 10.0)}

    def __init__(self, weight: float = 1.0, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        self.weight = weight

    def penalty(self, out, batch, progress):
        return {"coral": self.weight * pairwise_penalty(out.f_source, source_domains(batch), coral_pair)}
