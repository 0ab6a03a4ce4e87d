"""Deep source-only training (and joint source + revealed-target training)."""

from __future__ import annotations

from transferkit.deep.base import DeepMethod


class SourceOnly(DeepMethod):
    r"""Cross-entropy on the labelled source: :math:`\mathcal{L} = \mathcal{L}_s + \lambda \mathcal{L}_t`.

    :math:`\mathcal{L}_t` is the cross-entropy on the target rows whose labels were revealed (few-shot
    labels, ``--target-labels K``), weighted by ``target_weight`` (:math:`\lambda`); without revealed
    labels this is plain source-only training, the baseline every adaptation method must beat.
    """

    family = "baseline"
