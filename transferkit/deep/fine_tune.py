"""Fine-tuning a source (or pretrained) network on the few labelled target samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transferkit.deep.base import DeepMethod, Losses, check_nonnegative, weighted_cross_entropy


class FineTune(DeepMethod):
    r"""Train on the revealed target labels, optionally keeping the source in the loss.

    .. math:: \mathcal{L} = \mathcal{L}_t + \lambda_s\, \mathcal{L}_s

    :math:`\mathcal{L}_t` is the cross-entropy on the labelled target rows (``--target-labels K``),
    :math:`\mathcal{L}_s` the source's, weighted by ``source_weight`` :math:`\lambda_s` (0: plain
    fine-tuning, the target rows alone; > 0: training on both, the joint "knowledge transfer" loss
    seen from the target). An epoch is one pass over the labelled target rows.

    What fine-tuning starts from and what it may change are trainer and network settings, shared by
    every deep method: ``init=DIR`` loads a saved source model (``transferkit run ... --out DIR``
    saves one, under ``DIR/model``; either folder may be named) or ``pretrained=true`` ImageNet
    weights; ``new_head=true`` gives it a new head (structure transfer: required when the data's
    classes are not the saved model's, in the same order, which is otherwise an error); ``freeze=trunk`` is
    linear probing; ``trainable_depth``, ``unfreeze_every`` and ``lr_mult`` choose the updatable
    parameters and their learning rates; ``reg=l2-sp`` pulls towards the starting weights.

    Reference: Yosinski et al., "How transferable are features in deep neural networks?", NIPS 2014;
    Kornblith et al., "Do better ImageNet models transfer better?", CVPR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.fine_tune import FineTune
    >>> from transferkit.deep.source_only import SourceOnly
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[56:] = -1  # 8 target rows keep their labels (revealed), the other 40 are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> source_labels = np.where(sd >= 0, y, -1)  # first a source model, trained without target labels
    >>> _ = Trainer(net, SourceOnly(), TrainerConfig(steps=20, batch_size=16)).fit(X, source_labels, sd)
    >>> config = TrainerConfig(epochs=5, batch_size=8, freeze=("trunk",))  # linear probing
    >>> trainer = Trainer(net, FineTune(source_weight=0.5), config)
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"}), record["step"]  # an epoch: 8 rows, 1 step
    (['loss', 'source_ce', 'target_ce'], 5)
    >>> [name for name, p in net.named_parameters() if p.requires_grad]
    ['head.weight', 'head.bias']
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "parameter"
    needs_target_labels = True
    epoch_over = "labelled"

    def __init__(self, source_weight: float = 0.0):
        super().__init__(target_weight=1.0)
        check_nonnegative(self, "source_weight", source_weight)
        self.source_weight = source_weight

    def loss(self, model, batch, progress):
        if batch.x_labelled is None:
            from transferkit.errors import TransferkitError

            raise TransferkitError("fine-tune needs revealed target labels (--target-labels K).")
        if self.source_weight > 0:
            n = batch.x_labelled.shape[0]
            logits = model(torch.cat([batch.x_labelled, batch.x_source]))
            parts = {
                "target_ce": F.cross_entropy(logits[:n], batch.y_labelled),
                # the source rows' sample weights (sample_weight, balance_domains), as every method's
                "source_ce": self.source_weight
                * weighted_cross_entropy(logits[n:], batch.y_source, batch.w_source),
            }
        else:
            parts = {"target_ce": F.cross_entropy(model(batch.x_labelled), batch.y_labelled)}
        return Losses(sum(parts.values()), parts)
