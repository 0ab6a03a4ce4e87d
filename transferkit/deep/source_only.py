"""Deep source-only training (and joint source + revealed-target training)."""

from __future__ import annotations

import torch

from transferkit.deep.base import DeepMethod, Forward, Losses


class SourceOnly(DeepMethod):
    r"""Cross-entropy on the labelled source (plus, weighted, on any revealed target labels).

    :math:`\mathcal{L} = \mathcal{L}_s + \lambda \mathcal{L}_t`, where :math:`\mathcal{L}_t` is the
    cross-entropy on the target rows whose labels were revealed (few-shot labels,
    ``--target-labels K``), weighted by ``target_weight`` (:math:`\lambda`); without revealed
    labels this is plain source-only training, the baseline every adaptation method must beat.
    Unlabelled target rows are not passed through the network at all: even BatchNorm statistics
    computed on them would be a form of adaptation (AdaBN), which a baseline must not do.
    """

    family = "baseline"

    def loss(self, model, batch, progress):
        parts = [batch.x_source] + ([batch.x_labelled] if batch.x_labelled is not None else [])
        f, logits = model.forward_features_and_logits(torch.cat(parts))
        n = batch.x_source.shape[0]
        empty = f[:0]
        labelled = (f[n:], logits[n:]) if batch.x_labelled is not None else (None, None)
        out = Forward(f[:n], logits[:n], empty, logits[:0], *labelled)
        parts = self.supervised(out, batch)
        return Losses(sum(parts.values()), parts)
