"""MCC: minimum class confusion (Jin et al., ECCV 2020)."""

from __future__ import annotations

import math

from transferkit.deep.base import DeepMethod, check_nonnegative
from transferkit.errors import TransferkitError
from transferkit.nn.losses import mcc_loss


class MCC(DeepMethod):
    r"""Reduce the confusion between classes in the target predictions.

    .. math:: \mathcal{L} = \mathcal{L}_s + \mu \frac{1}{K} \sum_{j \ne j'} \tilde{C}_{jj'},
        \qquad C = \hat{Y}^\top W \hat{Y}

    where :math:`\hat Y = \mathrm{softmax}(z_t / T)` are the temperature-scaled target predictions
    of the batch, :math:`W` the diagonal of entropy weights :math:`1 + e^{-H(\hat y_i)}` (normalised
    to sum to the batch size), and :math:`\tilde C` is :math:`C` with each row divided by its sum.
    Defaults from the paper: ``temperature`` :math:`T = 2.5`, ``weight`` :math:`\mu = 1`.

    Reference: Y. Jin, X. Wang, M. Long and J. Wang, "Minimum class confusion for versatile domain
    adaptation", ECCV 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.mcc import MCC
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, MCC(temperature=2.0), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'mcc', 'source_ce']
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "self-training"

    def __init__(self, weight: float = 1.0, temperature: float = 2.5, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        if not (math.isfinite(float(temperature)) and temperature > 0):
            raise TransferkitError(f"MCC's temperature must be a finite number > 0, got {temperature!r}.")
        self.weight = weight
        self.temperature = temperature

    def adaptation(self, out, batch, progress):
        return {"mcc": self.weight * mcc_loss(out.logits_target, self.temperature)}
