"""Deep CORAL: correlation alignment of deep activations (Sun & Saenko, ECCV-W 2016)."""

from __future__ import annotations

from typing import Literal

from transferkit.deep.base import DeepMethod
from transferkit.nn.losses import coral_loss


class DeepCORAL(DeepMethod):
    r"""Align the second-order statistics (covariances) of source and target activations.

    .. math:: \mathcal{L} = \mathcal{L}_s + \lambda \frac{1}{4d^2} \big\| C_s - C_t \big\|_F^2

    with :math:`C_s, C_t` the unbiased batch covariances of the ``d``-dimensional activations. The
    paper applies the loss to the last classification layer (fc8): ``on='logits'``; ``on='features'``
    aligns the features instead. ``weight`` is :math:`\lambda` (1, as in common reimplementations;
    the paper picks it so the two terms end training at about the same size).
    """

    family = "discrepancy"

    def __init__(
        self, weight: float = 1.0, on: Literal["logits", "features"] = "logits", target_weight: float = 1.0
    ):
        super().__init__(target_weight=target_weight)
        self.weight = weight
        self.on = on

    def adaptation(self, out, batch, progress):
        if self.on == "logits":
            return {"coral": self.weight * coral_loss(out.logits_source, out.logits_target)}
        return {"coral": self.weight * coral_loss(out.f_source, out.f_target)}
