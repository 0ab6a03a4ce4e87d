"""IRMv1: invariant risk minimization (Arjovsky et al., 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transferkit.dg.base import source_domains, source_weights
from transferkit.dg.vrex import AnnealedPenalty


def scale_gradient(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r""":math:`\partial_s \mathcal{L}(s \cdot z)` at :math:`s = 1` for the weighted mean cross-entropy
    :math:`\mathcal{L}`, in closed form: the weighted mean of :math:`\sum_k p_k z_k - z_y` with
    :math:`p = \mathrm{softmax}(z)` (differentiable in :math:`z`, like ``autograd.grad`` with
    ``create_graph``)."""
    p = F.softmax(logits, dim=1)
    g = (p * logits).sum(1) - logits.gather(1, y[:, None]).squeeze(1)
    return (w * g).sum() / w.sum().clamp_min(1e-12)


def irm_penalty(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """DomainBed's unbiased IRMv1 penalty of one domain: the product of the scale gradients of its even
    and odd rows (0 for a domain with fewer than two rows)."""
    if len(y) < 2:
        return logits.new_zeros(())
    return scale_gradient(logits[::2], y[::2], w[::2]) * scale_gradient(logits[1::2], y[1::2], w[1::2])


class IRM(AnnealedPenalty):
    r"""IRMv1: the classifier on top of the features should be optimal for every domain at once.

    .. math:: \mathcal{L} = \mathcal{L}_{\mathrm{ERM}} + \beta_t\, \frac{1}{D} \sum_d
        \partial_s R_d^{\mathrm{even}}(s h)\big|_{s=1}\; \partial_s R_d^{\mathrm{odd}}(s h)\big|_{s=1}

    the squared gradient norm :math:`\|\nabla_{s|s=1} R_d(s \cdot h)\|^2` of each domain's risk with
    respect to a dummy scale :math:`s` on the logits, estimated without bias as the product of the
    gradients on the even and on the odd rows of the domain in the batch (as DomainBed does; computed in
    closed form, :func:`scale_gradient`). :math:`\beta_t` is 1 during the first ``anneal_steps``
    training steps and ``weight`` after (Arjovsky et al., arXiv:1907.02893; DomainBed's defaults:
    ``irm_lambda`` 100 after 500 steps, searched over :math:`10^{[-1, 5]}`). ``rescale`` divides the
    objective by :math:`\beta_t` once it exceeds 1, as the paper's code does with Adam; off by default
    (see :class:`~transferkit.dg.vrex.VREx`). A large weight with plain SGD can make the loss diverge:
    the trainer then stops with an error, and the DG protocol records the setting as failed.

    Reference: M. Arjovsky, L. Bottou, I. Gulrajani and D. Lopez-Paz, "Invariant risk minimization",
    arXiv:1907.02893, 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.irm import IRM
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, IRM(weight=10.0, anneal_steps=5), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['irm', 'loss', 'source_ce']
    >>> int(trainer.method.update_count)  # training steps counted: the penalty weight was 1 for 5, then 10
    20
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    search_space = {"weight": (1.0, 10.0, 100.0)}

    def __init__(
        self,
        weight: float = 100.0,
        anneal_steps: int = 500,
        rescale: bool = False,
        target_weight: float = 1.0,
    ):
        super().__init__(weight, anneal_steps, rescale, target_weight)

    def loss(self, model, batch, progress):
        out = self.forward_source(model, batch)
        d, w = source_domains(batch), source_weights(batch, out.logits_source.dtype)
        y, z = batch.y_source, out.logits_source
        pen = torch.stack([irm_penalty(z[d == g], y[d == g], w[d == g]) for g in torch.unique(d)])
        beta = self.penalty_weight()
        parts = {**self.supervised(out, batch), "irm": beta * pen.mean()}
        return self.combine(parts, beta)
