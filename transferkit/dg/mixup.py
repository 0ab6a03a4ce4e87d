"""Inter-domain mixup (Yan et al. 2020; Wang et al., ICASSP 2020; DomainBed's Mixup)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transferkit.deep.base import Losses, check_nonnegative
from transferkit.dg.base import DGMethod, source_domains, source_weights
from transferkit.errors import TransferkitError


def domain_pairs(d: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """DomainBed's random pairs of domains: the domains present, in a random order, each paired with
    the next (the last with the first); each pair as row indices cut to the smaller domain's count."""
    ids = torch.unique(d)
    order = ids[torch.randperm(len(ids)).to(ids.device)]
    pairs = []
    for i in range(len(order)):
        a = torch.nonzero(d == order[i]).flatten()
        b = torch.nonzero(d == order[(i + 1) % len(order)]).flatten()
        n = min(len(a), len(b))
        pairs.append((a[:n], b[:n]))
    return pairs


class Mixup(DGMethod):
    r"""Train on convex combinations of rows from two different training domains.

    For each pair of domains :math:`(a, b)` (DomainBed's random cyclic pairing of the domains present
    in the batch), draw :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)` and mix row :math:`k` of
    :math:`a` with row :math:`k` of :math:`b`:

    .. math:: \tilde x_k = \lambda x_{a,k} + (1 - \lambda) x_{b,k}, \qquad
        \mathcal{L}_{ab} = \frac{\sum_k \big[\lambda w_{a,k}\, \ell(h(\tilde x_k), y_{a,k})
        + (1 - \lambda) w_{b,k}\, \ell(h(\tilde x_k), y_{b,k})\big]}
        {\sum_k \big[\lambda w_{a,k} + (1 - \lambda) w_{b,k}\big]}

    and :math:`\mathcal{L}` is the mean of :math:`\mathcal{L}_{ab}` over the pairs (with unit weights
    :math:`w`, DomainBed's ``lam * CE(y_a) + (1 - lam) * CE(y_b)``). Inter-domain mixup: Yan et al.,
    arXiv:2001.00677 (2020); Wang et al., ICASSP 2020. ``alpha`` is :math:`\alpha` (DomainBed's
    default 0.2, searched over :math:`10^{[-1, 1]}`). A batch with a single domain falls back to the
    plain weighted cross-entropy. The logged ``source_ce`` is the mixed loss. Randomness comes from
    torch's global generator (seeded by the trainer, saved in checkpoints).

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.mixup import Mixup
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, Mixup(alpha=0.4), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'source_ce']
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    search_space = {"alpha": (0.1, 0.2, 1.0)}

    def __init__(self, alpha: float = 0.2, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "alpha", alpha)
        if not alpha > 0:
            raise TransferkitError(
                f"Mixup's alpha (of its Beta(alpha, alpha) draws) must be > 0, got {alpha!r}."
            )
        self.alpha = alpha

    def loss(self, model, batch, progress):
        d, w = source_domains(batch), source_weights(batch)
        if len(torch.unique(d)) < 2:
            return super().loss(model, batch, progress)
        pairs = domain_pairs(d)
        beta = torch.distributions.Beta(torch.tensor(float(self.alpha)), torch.tensor(float(self.alpha)))
        lams = [float(beta.sample()) for _ in pairs]
        x = batch.x_source
        mixed = [lam * x[a] + (1 - lam) * x[b] for lam, (a, b) in zip(lams, pairs)]
        extra = [batch.x_labelled] if batch.x_labelled is not None else []
        _, logits = model.forward_features_and_logits(torch.cat(mixed + extra))
        y = batch.y_source
        terms, start = [], 0
        for lam, (a, b) in zip(lams, pairs):
            z = logits[start : start + len(a)]
            start += len(a)
            ce_a = F.cross_entropy(z, y[a], reduction="none")
            ce_b = F.cross_entropy(z, y[b], reduction="none")
            wa, wb = lam * w[a], (1 - lam) * w[b]
            terms.append((wa * ce_a + wb * ce_b).sum() / (wa + wb).sum().clamp_min(1e-12))
        parts = {"source_ce": torch.stack(terms).mean()}
        if batch.x_labelled is not None and self.target_weight > 0:  # as in DeepMethod.supervised
            parts["target_ce"] = self.target_weight * F.cross_entropy(logits[start:], batch.y_labelled)
        return Losses(sum(parts.values()), parts)
