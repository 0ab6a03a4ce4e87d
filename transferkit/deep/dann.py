"""DANN: domain-adversarial training with a gradient reversal layer (Ganin et al., JMLR 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.deep.base import DeepMethod
from transferkit.nn.losses import dann_lambda, grad_reverse


class DANN(DeepMethod):
    r"""Make source and target features indistinguishable to a domain discriminator.

    .. math:: \mathcal{L} = \mathcal{L}_s + \lambda_p\, \mathrm{BCE}\big(D(R(f)), d\big)

    where :math:`R` reverses gradients, so the discriminator :math:`D` learns to tell the domains
    apart while the feature extractor learns to fool it; :math:`\lambda_p = w (2/(1+e^{-10p}) - 1)`
    warms up with the training progress :math:`p` (``weight`` = :math:`w`). The discriminator is the
    paper's: two hidden layers of ``disc_hidden`` units with ReLU and dropout.
    """

    family = "adversarial"
    search_space = {"weight": (0.1, 0.3, 1.0)}

    def __init__(self, weight: float = 1.0, disc_hidden: int = 1024, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        self.weight = weight
        self.disc_hidden = disc_hidden

    def setup(self, model: nn.Module) -> None:
        h = self.disc_hidden
        self.discriminator = nn.Sequential(
            nn.Linear(model.feature_dim, h), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(h, h), nn.ReLU(), nn.Dropout(0.5), nn.Linear(h, 1),
        )  # fmt: skip

    def adaptation(self, out, batch, progress):
        coeff = self.weight * dann_lambda(progress)
        f = grad_reverse(torch.cat([out.f_source, out.f_target]), coeff)
        d = torch.cat([torch.zeros(len(out.f_source)), torch.ones(len(out.f_target))]).to(f.device)
        return {"domain_bce": F.binary_cross_entropy_with_logits(self.discriminator(f).squeeze(1), d)}
