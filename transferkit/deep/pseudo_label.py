"""Pseudo-labelling with a confidence threshold and class-balanced selection.

The self-training of Lee (ICML-W 2013), with its warm-up and ramp-up of the pseudo-label weight,
selecting target rows as FixMatch does (a confidence threshold, Sohn et al. 2020) and, so that the
classes the network is least sure of are not starved, as class-balanced self-training does (the
most confident portion of each predicted class, Zou et al., ECCV 2018).

Left alone, pseudo-labelling under a domain shift drifts: a class the network slightly favours on the
target gets more pseudo-labels, which make it favour that class more, until every target row has it
(the 23% on MNIST -> MNIST-M and the 51% on kitchen -> dvd in this project's benchmarks before
alignment was added). Taking the class balance only from the predicted classes does not stop that,
since it follows the predictions. So by default the target probabilities are first aligned with the
source's (ReMixMatch's distribution alignment, Berthelot et al., ICLR 2020, as AdaMatch uses it):
multiplied by the ratio of the source batch's mean prediction to the target batch's, so a class the
network gives the target more often than the source is scaled back before it is pseudo-labelled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transferkit.deep.base import DeepMethod, check_nonnegative
from transferkit.errors import TransferkitError, check_flag
from transferkit.nn.losses import align_distributions

__all__ = ["PseudoLabel", "ramp", "select_pseudo_labels"]


def select_pseudo_labels(
    probs: torch.Tensor, threshold: float = 0.95, portion: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels ``argmax p`` and the mask of the rows that keep theirs.

    A row is kept when its confidence ``max p`` is at least ``threshold``, or when it is among the
    ``floor(portion * n_k)`` most confident of the ``n_k`` rows predicted as its class ``k`` in the
    batch (class balance: every predicted class gives some rows, however unsure the network is).
    """
    conf, pseudo = probs.max(1)
    mask = conf >= threshold
    if portion > 0:
        for k in pseudo.unique():
            rows = torch.nonzero(pseudo == k).squeeze(1)
            n_top = int(portion * len(rows))
            if n_top > 0:
                mask[rows[conf[rows].topk(n_top).indices]] = True
    return pseudo, mask


def ramp(progress: float, warmup: float, rampup: float) -> float:
    """0 before ``warmup``, then linear up to 1 over ``rampup`` (fractions of training), then 1."""
    if progress < warmup:
        return 0.0
    if rampup <= 0:
        return 1.0
    return min(1.0, (progress - warmup) / rampup)


class PseudoLabel(DeepMethod):
    r"""Train on the network's own confident, class-balanced predictions of the target.

    .. math:: \mathcal{L} = \mathcal{L}_s + \alpha(p)\, \frac{1}{n_t} \sum_{i} m_i\,
        \mathrm{CE}\big(z^t_i, \hat y_i\big), \qquad \hat y_i = \arg\max_k \mathrm{softmax}(z^t_i)_k

    where :math:`m_i = 1` when :math:`\max_k \mathrm{softmax}(z^t_i)_k \ge \tau` (``threshold``;
    above 1 no row passes it and only the class balance picks) or row :math:`i` is among the
    ``portion`` most confident of the batch rows predicted as :math:`\hat y_i` (class balance; 0
    turns it off). With ``align`` (the default) the softmax is
    first aligned with the source batch's, :math:`q_i \propto \mathrm{softmax}(z^t_i) \odot \bar p_s /
    \bar q` (:func:`~transferkit.nn.losses.align_distributions`; :math:`\bar p_s`, :math:`\bar q` the
    batch means of the source and target predictions; with source row weights the source's is their
    weighted mean), and :math:`\hat y_i`, the threshold and the
    ranks are taken from :math:`q_i`. Pseudo-labels are recomputed every step and
    carry no gradient. :math:`\alpha(p)` is Lee's schedule: 0 while the network warms up on the
    source (``warmup``, a fraction of training), then linear up to ``weight`` over ``rampup``.
    Defaults: :math:`\tau = 0.95` (FixMatch), portion 0.2 (CBST's starting portion), weight 1.

    References: D.-H. Lee, "Pseudo-label: the simple and efficient semi-supervised learning method for
    deep neural networks", ICML 2013 Workshop on Challenges in Representation Learning; Y. Zou,
    Z. Yu, B. V. K. Vijaya Kumar and J. Wang, "Unsupervised domain adaptation for semantic
    segmentation via class-balanced self-training", ECCV 2018; D. Berthelot et al., "ReMixMatch:
    semi-supervised learning with distribution matching and augmentation anchoring", ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.pseudo_label import PseudoLabel, ramp
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> method = PseudoLabel(threshold=0.9, align=True, warmup=0.0, rampup=0.5)
    >>> trainer = Trainer(net, method, TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'pseudo_ce', 'source_ce']
    >>> [ramp(p, warmup=0.0, rampup=0.5) for p in (0.0, 0.25, 0.5)]  # the weight's factor over training
    [0.0, 0.5, 1.0]
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "self-training"

    def __init__(
        self,
        weight: float = 1.0,
        threshold: float = 0.95,
        portion: float = 0.2,
        warmup: float = 0.1,
        rampup: float = 0.2,
        align: bool = True,
        target_weight: float = 1.0,
    ):
        super().__init__(target_weight=target_weight)
        self.align = check_flag("align", align)  # a string such as "false" would otherwise count as on
        check_nonnegative(self, "weight", weight)
        # a threshold above 1 is allowed: no row is then confident enough, only the class balance picks
        check_nonnegative(self, "threshold", threshold)
        for name, value in (("portion", portion), ("warmup", warmup), ("rampup", rampup)):
            if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
                raise TransferkitError(
                    f"PseudoLabel's {name} must be a number in [0, 1] (a fraction of a class or of "
                    f"training), got {value!r}."
                )
        self.weight = weight
        self.threshold = threshold
        self.portion = portion
        self.warmup = warmup
        self.rampup = rampup

    def adaptation(self, out, batch, progress):
        logits = out.logits_target
        with torch.no_grad():
            probs = F.softmax(logits, dim=1)
            if self.align:
                probs = align_distributions(probs, F.softmax(out.logits_source, dim=1), batch.w_source)
            pseudo, mask = select_pseudo_labels(probs, self.threshold, self.portion)
        ce = F.cross_entropy(logits, pseudo, reduction="none")
        alpha = self.weight * ramp(progress, self.warmup, self.rampup)
        return {"pseudo_ce": alpha * (ce * mask.to(ce.dtype)).mean()}
