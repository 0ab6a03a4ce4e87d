"""Fine-tuning a source (or pretrained) network on the few labelled target samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from transferkit.deep.base import DeepMethod, Losses


class FineTune(DeepMethod):
    r"""Train on the revealed target labels, optionally keeping the source in the loss.

    .. math:: \mathcal{L} = \mathcal{L}_t + \lambda_s\, \mathcal{L}_s

    :math:`\mathcal{L}_t` is the cross-entropy on the labelled target rows (``--target-labels K``),
    :math:`\mathcal{L}_s` the source's, weighted by ``source_weight`` :math:`\lambda_s` (0: plain
    fine-tuning, the target rows alone; > 0: training on both, the joint "knowledge transfer" loss
    seen from the target). An epoch is one pass over the labelled target rows.

    What fine-tuning starts from and what it may change are trainer and network settings, shared by
    every deep method: ``init=DIR`` loads a saved source model (``transferkit run ... --out DIR``
    saves one) or ``pretrained=true`` ImageNet weights; ``new_head=true`` gives it a new head
    (structure transfer, also automatic when the label sets differ in size); ``freeze=trunk`` is
    linear probing; ``trainable_depth``, ``unfreeze_every`` and ``lr_mult`` choose the updatable
    parameters and their learning rates; ``reg=l2-sp`` pulls towards the starting weights.

    Reference: Yosinski et al., "How transferable are features in deep neural networks?", NIPS 2014;
    Kornblith et al., "Do better ImageNet models transfer better?", CVPR 2019.
    """

    family = "parameter"
    needs_target_labels = True
    epoch_over = "labelled"

    def __init__(self, source_weight: float = 0.0):
        super().__init__(target_weight=1.0)
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
                "source_ce": self.source_weight * F.cross_entropy(logits[n:], batch.y_source),
            }
        else:
            parts = {"target_ce": F.cross_entropy(model(batch.x_labelled), batch.y_labelled)}
        return Losses(sum(parts.values()), parts)
