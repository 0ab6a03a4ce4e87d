"""MMD across training domains (Li et al., CVPR 2018, as in DomainBed)."""

from __future__ import annotations

from transferkit.deep.base import check_nonnegative
from transferkit.dg.base import DGMethod, source_domains
from transferkit.dg.coral import pairwise_penalty
from transferkit.nn.losses import mmd2


def _scale_free_mmd2(fa, fb):
    return mmd2(fa, fb, detach_bandwidth=False)


class DGMMD(DGMethod):
    r"""Match the feature distributions of every pair of training domains with a kernel MMD.

    .. math:: \mathcal{L} = \mathcal{L}_{\mathrm{ERM}} + \gamma \binom{D}{2}^{-1} \sum_{a < b}
        \mathrm{MMD}^2(f_a, f_b), \qquad \mathrm{MMD}^2 = \overline{k(f_a, f_a)} + \overline{k(f_b, f_b)}
        - 2\, \overline{k(f_a, f_b)}

    over the domains present in the batch (at least two rows each), with the multi-kernel Gaussian
    MMD of :func:`transferkit.nn.losses.mmd2` (bandwidths at multiples of the mean pairwise squared
    distance; DomainBed fixes them instead). MMD-AAE without the autoencoder and adversary, as in
    DomainBed (Li et al., CVPR 2018; Gulrajani & Lopez-Paz, ICLR 2021). The gradient flows through the
    bandwidth too, which makes the penalty invariant to the features' scale: with a detached bandwidth
    (or DomainBed's fixed ones) the gradient rewards shrinking every feature, and a LeNet trained from
    scratch on digits collapses its features (cross-entropy stuck at :math:`\log K`) at weight 1.
    ``weight`` is :math:`\gamma`
    (default 1, searched over :math:`10^{[-1, 1]}`).

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.mmd import DGMMD
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, DGMMD(weight=0.5), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'mmd', 'source_ce']
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    search_space = {"weight": (0.1, 1.0, 10.0)}

    def __init__(self, weight: float = 1.0, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        self.weight = weight

    def penalty(self, out, batch, progress):
        return {"mmd": self.weight * pairwise_penalty(out.f_source, source_domains(batch), _scale_free_mmd2)}
