"""CDAN and CDAN+E: conditional domain-adversarial networks (Long et al., NeurIPS 2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.deep.base import DeepMethod, check_nonnegative
from transferkit.errors import check_flag, check_whole
from transferkit.nn.losses import cdan_map, dann_lambda, entropy_weights, grad_reverse


class CDAN(DeepMethod):
    r"""A domain discriminator on the multilinear map of features and predictions.

    .. math:: \mathcal{L} = \mathcal{L}_s + \mathrm{BCE}_w\big(D(R_{\lambda_p}(h)), d\big),
        \qquad h = f \otimes g \ \text{ or } \ h = \tfrac{1}{\sqrt{m}} (R_f f) \odot (R_g g)

    with :math:`g = \mathrm{softmax}(z)` (detached, as in the reference code) and :math:`R_\lambda`
    the gradient reversal layer with DANN's warm-up :math:`\lambda_p = w (2/(1+e^{-10p}) - 1)`
    (``weight`` = :math:`w`). When :math:`\dim f \cdot K` exceeds ``max_dim`` (4096) the map is the
    paper's randomized multilinear map of ``random_dim`` (1024) dimensions, with fixed Gaussian
    :math:`R_f, R_g` drawn at setup. The discriminator has two hidden layers of ``disc_hidden``
    (1024) units with ReLU and dropout 0.5. With ``entropy_conditioning`` (CDAN+E) each row's
    cross-entropy is weighted by :math:`1 + e^{-H(g)}`, normalised to sum to one within each domain,
    and the two domains are averaged; otherwise it is the plain mean. The weights carry no gradient, as
    in the authors' later Transfer-Learning-Library (their original CDAN code lets the reversed gradient
    reach the predictions through them).

    Reference: M. Long, Z. Cao, J. Wang and M. I. Jordan, "Conditional adversarial domain adaptation",
    NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.cdan import CDAN
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, CDAN(disc_hidden=64), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['domain_bce', 'loss', 'source_ce']
    >>> trainer.method.discriminator[0].in_features  # f (x) g: 16 features x 2 classes
    32
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "adversarial"

    def __init__(
        self,
        weight: float = 1.0,
        entropy_conditioning: bool = False,
        disc_hidden: int = 1024,
        random_dim: int = 1024,
        max_dim: int = 4096,
        target_weight: float = 1.0,
    ):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        self.weight = weight
        self.entropy_conditioning = check_flag("entropy_conditioning", entropy_conditioning)
        for name, value in (("disc_hidden", disc_hidden), ("random_dim", random_dim), ("max_dim", max_dim)):
            check_whole(f"{type(self).__name__}'s {name}", value, 1)
        self.disc_hidden = disc_hidden
        self.random_dim = random_dim
        self.max_dim = max_dim

    def setup(self, model: nn.Module) -> None:
        d, k = model.feature_dim, model.num_classes
        self.randomized = d * k > self.max_dim
        if self.randomized:  # buffers: saved in checkpoints, identical for a given seed
            self.register_buffer("random_f", torch.randn(d, self.random_dim))
            self.register_buffer("random_g", torch.randn(k, self.random_dim))
        h = self.disc_hidden
        self.discriminator = nn.Sequential(
            nn.Linear(self.random_dim if self.randomized else d * k, h), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(h, h), nn.ReLU(), nn.Dropout(0.5), nn.Linear(h, 1),
        )  # fmt: skip

    def conditioning(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The discriminator's input: ``f (x) g``, or its randomized version."""
        if self.randomized:
            return (f @ self.random_f) * (g @ self.random_g) / math.sqrt(self.random_dim)
        return cdan_map(f, g)

    def adaptation(self, out, batch, progress):
        ns = len(out.f_source)
        f = torch.cat([out.f_source, out.f_target])
        g = F.softmax(torch.cat([out.logits_source, out.logits_target]), dim=1).detach()
        h = grad_reverse(self.conditioning(f, g), self.weight * dann_lambda(progress))
        logit = self.discriminator(h).squeeze(1)
        d = torch.cat([torch.zeros(ns), torch.ones(len(f) - ns)]).to(logit.device)
        if not self.entropy_conditioning:
            return {"domain_bce": F.binary_cross_entropy_with_logits(logit, d)}
        bce = F.binary_cross_entropy_with_logits(logit, d, reduction="none")
        w = entropy_weights(g)
        ws, wt = w[:ns] / w[:ns].sum(), w[ns:] / w[ns:].sum()
        return {"domain_bce": 0.5 * ((ws * bce[:ns]).sum() + (wt * bce[ns:]).sum())}


class CDANE(CDAN):
    r"""CDAN+E: CDAN with entropy conditioning (confident predictions weigh more for the discriminator).

    .. math:: \mathcal{L} = \mathcal{L}_s + \sum_{i} w_i\, \mathrm{BCE}\big(D(R_{\lambda_p}(h_i)), d_i\big),
        \qquad w_i \propto 1 + e^{-H(g_i)}

    See :class:`CDAN`; this is the same module with ``entropy_conditioning=True``.

    Reference: M. Long, Z. Cao, J. Wang and M. I. Jordan, "Conditional adversarial domain adaptation",
    NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.cdan import CDANE
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> method = CDANE(disc_hidden=64, max_dim=16, random_dim=8)
    >>> trainer = Trainer(net, method, TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['domain_bce', 'loss', 'source_ce']
    >>> method.randomized, tuple(method.random_f.shape)  # 16 features x 2 classes > max_dim: randomized
    (True, (16, 8))
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    def __init__(
        self,
        weight: float = 1.0,
        entropy_conditioning: bool = True,
        disc_hidden: int = 1024,
        random_dim: int = 1024,
        max_dim: int = 4096,
        target_weight: float = 1.0,
    ):
        super().__init__(weight, entropy_conditioning, disc_hidden, random_dim, max_dim, target_weight)
