"""AdaMatch: FixMatch made for domain shift (Berthelot et al., ICLR 2022).

FixMatch trusts the weak target view's confident predictions. Under a domain shift those predictions
drift towards a few classes, and training on them pushes further the same way until every target row
gets one class (on this project's benchmarks FixMatch's target accuracy fell to 20% on MNIST -> USPS
of the JDA split). AdaMatch adds three things, all label-free:

* **distribution alignment**: the target probabilities are multiplied by the ratio of the source
  batch's mean prediction to the target batch's before the pseudo-label is taken
  (:func:`~transferkit.nn.losses.align_distributions`), so a class that grows on the target
  without growing on the source is scaled back;
* **a relative confidence threshold**: a pseudo-label counts when its confidence reaches
  ``threshold`` times the source rows' mean confidence, not a fixed 0.95 the shifted target may never
  (or always) reach;
* **a slow start**: the target term's weight follows ``1/2 - cos(min(pi, 2 pi p)) / 2`` of the
  training progress ``p`` (0 at the start, 1 from half-way on), so the pseudo-labels are taken from
  a network that has first learnt the source.

The source is fitted on both its weak and its strong view (the network learns the strong
augmentation on labelled rows before it is asked to be consistent under it on the target). With
source row weights (per-domain or per-sample), the source's mean prediction and mean confidence are
their weighted means, as its loss is.
AdaMatch's random logit interpolation (a device for BatchNorm networks that run source and target in
separate passes) is left out: here every pass already carries both domains.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from transferkit.deep.base import Losses, weighted_cross_entropy
from transferkit.deep.fixmatch import FixMatch, strong_augment, weak_augment
from transferkit.nn.batch import DABatch
from transferkit.nn.losses import adamatch_loss

__all__ = ["AdaMatch", "adamatch_ramp"]


def adamatch_ramp(progress: float) -> float:
    """AdaMatch's weight of the target term: ``1/2 - cos(min(pi, 2 pi progress)) / 2``."""
    return 0.5 - 0.5 * math.cos(min(math.pi, 2.0 * math.pi * progress))


class AdaMatch(FixMatch):
    r"""FixMatch with distribution alignment, a relative threshold and a slow start, for domain shift.

    .. math:: \mathcal{L} = \mathcal{L}_s(\alpha(x^s)) + \mathcal{L}_s(\mathcal{A}(x^s))
        + \lambda_u\, \mu(p)\, \frac{1}{n_t} \sum_i
        \mathbb{1}\big[\max_k \tilde q_{ik} \ge \tau\, \bar c_s\big]\,
        \mathrm{CE}\big(z(\mathcal{A}(x^t_i)), \arg\max_k \tilde q_{ik}\big)

    with :math:`q_i = \mathrm{softmax}(z(\alpha(x^t_i)))`, the aligned
    :math:`\tilde q_i \propto q_i \odot \bar p_s / \bar q` (:math:`\bar p_s`, :math:`\bar q`: the batch
    means of the source and target predictions), :math:`\bar c_s` the source rows' mean confidence
    :math:`\max_k p_{s,ik}` and :math:`\mu(p) = \tfrac12 - \tfrac12\cos(\min(\pi, 2\pi p))`. The
    augmentations :math:`\alpha` (weak) and :math:`\mathcal{A}` (strong) are FixMatch's. Pseudo-labels,
    :math:`\bar p_s` and :math:`\bar c_s` carry no gradient. Paper defaults: :math:`\tau = 0.9`,
    :math:`\lambda_u = 1`. Unlike the reference code, the two source terms are added (it averages
    them), :math:`\bar p_s` and :math:`\bar q` are this batch's means (it keeps moving averages),
    the target batch has the source batch's size (its ratio is 3) and random logit interpolation is
    left out (see the module's notes).

    Reference: D. Berthelot, R. Roelofs, K. Sohn, N. Carlini and A. Kurakin, "AdaMatch: a unified
    approach to semi-supervised learning and domain adaptation", ICLR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.adamatch import AdaMatch, adamatch_ramp
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> method = AdaMatch(threshold=0.6)  # relative: 0.6 x the source rows' mean confidence
    >>> trainer = Trainer(net, method, TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['consistency', 'loss', 'source_ce', 'source_strong_ce']
    >>> [round(adamatch_ramp(p), 2) for p in (0.0, 0.25, 0.5, 1.0)]  # the target term's slow start
    [0.0, 0.5, 1.0, 1.0]
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "self-training"

    def __init__(self, weight: float = 1.0, threshold: float = 0.9, target_weight: float = 1.0):
        super().__init__(weight=weight, threshold=threshold, target_weight=target_weight)

    def loss(self, model: nn.Module, batch: DABatch, progress: float) -> Losses:
        g = self.step_generator()
        weak_s, strong_s = weak_augment(batch.x_source, g), strong_augment(batch.x_source, g)
        weak_t, strong_t = weak_augment(batch.x_target, g), strong_augment(batch.x_target, g)
        out = self.forward_domains(model, dataclasses.replace(batch, x_source=weak_s, x_target=weak_t))
        _, logits_strong = model.forward_features_and_logits(torch.cat([strong_s, strong_t]))
        n = batch.x_source.shape[0]
        parts = {
            **self.supervised(out, batch),
            "source_strong_ce": weighted_cross_entropy(logits_strong[:n], batch.y_source, batch.w_source),
            "consistency": self.weight
            * adamatch_ramp(progress)
            * adamatch_loss(
                out.logits_source, out.logits_target, logits_strong[n:], self.threshold, batch.w_source
            ),
        }
        return Losses(sum(parts.values()), parts)
