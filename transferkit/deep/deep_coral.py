"""Deep CORAL: correlation alignment of deep activations (Sun & Saenko, ECCV-W 2016)."""

from __future__ import annotations

from typing import Literal

from transferkit.deep.base import DeepMethod, check_nonnegative
from transferkit.errors import TransferkitError
from transferkit.nn.losses import coral_loss


class DeepCORAL(DeepMethod):
    r"""Align the second-order statistics (covariances) of source and target activations.

    .. math:: \mathcal{L} = \mathcal{L}_s + \lambda \frac{1}{4d^2} \big\| C_s - C_t \big\|_F^2

    with :math:`C_s, C_t` the unbiased batch covariances of the ``d``-dimensional activations. The
    paper applies the loss to the last classification layer (fc8): ``on='logits'``; ``on='features'``
    aligns the features instead. ``weight`` is :math:`\lambda` (1, as in common reimplementations;
    the paper picks it so the two terms end training at about the same size).

    Reference: B. Sun and K. Saenko, "Deep CORAL: correlation alignment for deep domain adaptation",
    ECCV 2016 Workshops.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.deep_coral import DeepCORAL
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, DeepCORAL(weight=0.5, on="features"), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['coral', 'loss', 'source_ce']
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "discrepancy"

    def __init__(
        self, weight: float = 1.0, on: Literal["logits", "features"] = "logits", target_weight: float = 1.0
    ):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        if on not in ("logits", "features"):
            raise TransferkitError(f"DeepCORAL's on must be 'logits' or 'features', got {on!r}.")
        self.weight = weight
        self.on = on

    def adaptation(self, out, batch, progress):
        if self.on == "logits":
            return {"coral": self.weight * coral_loss(out.logits_source, out.logits_target)}
        return {"coral": self.weight * coral_loss(out.f_source, out.f_target)}
