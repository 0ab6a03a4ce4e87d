"""DANN: domain-adversarial training with a gradient reversal layer (Ganin et al., JMLR 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.deep.base import DeepMethod, check_nonnegative
from transferkit.errors import check_whole
from transferkit.nn.losses import dann_lambda, grad_reverse


class DANN(DeepMethod):
    r"""Make source and target features indistinguishable to a domain discriminator.

    .. math:: \mathcal{L} = \mathcal{L}_s + \mathrm{BCE}\big(D(R_{\lambda_p}(f)), d\big)

    where :math:`R_{\lambda}` is the identity forward and multiplies the gradient by :math:`-\lambda`
    backward, so the discriminator :math:`D` learns to tell the domains apart (on the plain BCE) while
    the feature extractor learns to fool it with weight :math:`\lambda_p = w (2/(1+e^{-10p}) - 1)`,
    which warms up with the training progress :math:`p` (``weight`` = :math:`w`). The discriminator is the
    paper's: two hidden layers of ``disc_hidden`` units with ReLU and dropout.

    Reference: Y. Ganin, E. Ustinova, H. Ajakan, P. Germain, H. Larochelle, F. Laviolette, M. Marchand
    and V. Lempitsky, "Domain-adversarial training of neural networks", JMLR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.dann import DANN
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, DANN(weight=0.3, disc_hidden=64), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['domain_bce', 'loss', 'source_ce']
    >>> trainer.method.discriminator[0]  # made by setup(), sized from the network's 16 features
    Linear(in_features=16, out_features=64, bias=True)
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "adversarial"
    search_space = {"weight": (0.1, 0.3, 1.0)}

    def __init__(self, weight: float = 1.0, disc_hidden: int = 1024, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        check_whole("DANN's disc_hidden", disc_hidden, 1)
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
