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

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.source_only import SourceOnly
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[52:] = -1  # the labels of the first 4 target rows are revealed (few-shot), the rest unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, SourceOnly(target_weight=0.5), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'source_ce', 'target_ce']
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
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
