"""MCC: minimum class confusion (Jin et al., ECCV 2020)."""

from __future__ import annotations

from transferkit.deep.base import DeepMethod
from transferkit.nn.losses import mcc_loss


class MCC(DeepMethod):
    r"""Reduce the confusion between classes in the target predictions.

    .. math:: \mathcal{L} = \mathcal{L}_s + \mu \frac{1}{K} \sum_{j \ne j'} \tilde{C}_{jj'},
        \qquad C = \hat{Y}^\top W \hat{Y}

    where :math:`\hat Y = \mathrm{softmax}(z_t / T)` are the temperature-scaled target predictions
    of the batch, :math:`W` the diagonal of entropy weights :math:`1 + e^{-H(\hat y_i)}` (normalised
    to sum to the batch size), and :math:`\tilde C` is :math:`C` with each row divided by its sum.
    Defaults from the paper: ``temperature`` :math:`T = 2.5`, ``weight`` :math:`\mu = 1`.
    """

    family = "self-training"

    def __init__(self, weight: float = 1.0, temperature: float = 2.5, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        self.weight = weight
        self.temperature = temperature

    def adaptation(self, out, batch, progress):
        return {"mcc": self.weight * mcc_loss(out.logits_target, self.temperature)}
