"""V-REx: penalize the variance of the training domains' risks (Krueger et al., ICML 2021)."""

from __future__ import annotations

import torch

from transferkit.deep.base import Losses, check_nonnegative
from transferkit.dg.base import DGMethod, domain_risks, source_domains, source_weights
from transferkit.errors import check_flag, check_whole


class AnnealedPenalty(DGMethod):
    """A penalty whose weight is 1 for the first ``anneal_steps`` training steps and ``weight`` after
    (DomainBed's ``penalty_anneal_iters``). The step count is a buffer, so it is checkpointed and a
    resumed run anneals at the same step; evaluation-mode calls do not count."""

    def __init__(self, weight: float, anneal_steps: int, rescale: bool, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        check_whole(f"{type(self).__name__}'s anneal_steps", anneal_steps, 0)
        self.weight = weight
        self.anneal_steps = anneal_steps
        self.rescale = check_flag("rescale", rescale)
        self.register_buffer("update_count", torch.zeros((), dtype=torch.long))

    def penalty_weight(self) -> float:
        """This step's penalty weight (and count the step when training)."""
        beta = float(self.weight) if int(self.update_count) >= self.anneal_steps else 1.0
        if self.training:
            self.update_count += 1
        return beta

    def combine(self, parts: dict[str, torch.Tensor], beta: float) -> Losses:
        total = sum(parts.values())
        if self.rescale and beta > 1.0:
            total = total / beta
        return Losses(total, parts)


class VREx(AnnealedPenalty):
    r"""Variance risk extrapolation: make the risks of the training domains equal.

    .. math:: \mathcal{L} = \mathcal{L}_{\mathrm{ERM}} + \beta_t\, \tfrac{1}{D} \sum_d (R_d - \bar R)^2,
        \quad \bar R = \frac{1}{D} \sum_d R_d

    over the :math:`D` domains present in the batch, :math:`R_d` their weighted risks;
    :math:`\mathcal{L}_{\mathrm{ERM}}` is the weighted cross-entropy over every row (with ``balance_domains``
    it is :math:`\bar R` in expectation over batches, DomainBed's form). :math:`\beta_t` is 1 during the first
    ``anneal_steps`` training steps and ``weight`` after (DomainBed's defaults: 500 steps, weight 10, searched
    over :math:`10^{[-1, 5]}`; Krueger et al., ICML 2021). ``rescale`` divides the objective by
    :math:`\beta_t` once it exceeds 1, as the authors' code does with Adam; off by default, since with SGD it
    divides the learning rate of the ERM term by :math:`\beta_t` (DomainBed instead resets its Adam optimizer
    at the anneal step, which the shared trainer does not do). The logged parts are not rescaled.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.vrex import VREx
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, VREx(weight=10.0, anneal_steps=5), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'source_ce', 'vrex']
    >>> int(trainer.method.update_count)  # training steps counted: the penalty weight was 1 for 5, then 10
    20
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    search_space = {"weight": (1.0, 10.0, 100.0)}

    def __init__(
        self, weight: float = 10.0, anneal_steps: int = 500, rescale: bool = False, target_weight: float = 1.0
    ):
        super().__init__(weight, anneal_steps, rescale, target_weight)

    def loss(self, model, batch, progress):
        out = self.forward_source(model, batch)
        _, risks = domain_risks(self.row_losses(out, batch), source_domains(batch), source_weights(batch))
        beta = self.penalty_weight()
        parts = {**self.supervised(out, batch), "vrex": beta * ((risks - risks.mean()) ** 2).mean()}
        return self.combine(parts, beta)
