"""DAN: deep adaptation networks with multi-kernel MMD (Long et al., ICML 2015)."""

from __future__ import annotations

import math

from transferkit.deep.base import DeepMethod, check_nonnegative
from transferkit.errors import TransferkitError, check_flag
from transferkit.nn.losses import dann_lambda, mmd2


class DAN(DeepMethod):
    r"""Match source and target feature distributions with a multi-kernel MMD penalty.

    .. math:: \mathcal{L} = \mathcal{L}_s + \lambda \sum_{\ell} \mathrm{MMD}_k^2\big(f^\ell_s, f^\ell_t\big),
        \qquad k = \frac{1}{M}\sum_{m=1}^{M} e^{-\|a-b\|^2 / (\beta_m \bar{d})}

    summed over the adapted layers :math:`\ell`: the features and, as in the paper (which adapts
    fc6 to fc8), the logits (``match_logits``). The kernel is the average of Gaussian kernels whose
    bandwidths are ``multipliers`` :math:`\beta_m` times the mean pairwise squared distance
    :math:`\bar d` of the pooled batch; the estimate is the biased quadratic one over the batch.
    ``weight`` is :math:`\lambda` (1 in the paper's experiments and its reference code).

    ``warmup`` (default on) ramps :math:`\lambda` up with DANN's schedule,
    :math:`\lambda_p = \lambda\,(2/(1+e^{-10p}) - 1)` at training progress :math:`p`. The paper
    fine-tunes an ImageNet network, whose features are already discriminative; trained from scratch
    with the full weight from the first step, the penalty is smallest when every feature is the same
    constant, and the network goes there before it learns the source classes (on MNIST -> MNIST-M
    with a LeNet the source cross-entropy stayed at chance level, ln 10, for the whole run, and the
    MMD at 0). The ramp lets the classifier learn first. ``warmup=false`` is the paper's constant
    weight.

    Reference: M. Long, Y. Cao, J. Wang and M. I. Jordan, "Learning transferable features with deep
    adaptation networks", ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.dan import DAN
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, DAN(match_logits=False), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'mmd_features', 'source_ce']
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "discrepancy"

    def __init__(
        self,
        weight: float = 1.0,
        match_logits: bool = True,
        multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0),
        warmup: bool = True,
        target_weight: float = 1.0,
    ):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        self.weight = weight
        self.warmup = check_flag("warmup", warmup)
        self.match_logits = check_flag("match_logits", match_logits)
        try:
            values = tuple(float(m) for m in multipliers)
        except (TypeError, ValueError):
            values = ()
        if not values or not all(math.isfinite(m) and m > 0 for m in values):
            raise TransferkitError(
                "DAN's multipliers (of the mean pairwise squared distance, one per Gaussian kernel) must be "
                f"numbers > 0, at least one; got {multipliers!r}."
            )
        self.multipliers = values

    def adaptation(self, out, batch, progress):
        w = self.weight * (dann_lambda(progress) if self.warmup else 1.0)
        parts = {"mmd_features": w * mmd2(out.f_source, out.f_target, self.multipliers)}
        if self.match_logits:
            parts["mmd_logits"] = w * mmd2(out.logits_source, out.logits_target, self.multipliers)
        return parts
