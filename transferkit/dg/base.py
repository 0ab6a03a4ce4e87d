r"""What every domain generalization method shares: source-only forward passes and per-domain risks.

A batch mixes the labelled training domains; ``batch.d_source`` says which domain each row comes
from (all rows count as domain 0 when it is absent) and ``batch.w_source`` holds the weights
:math:`\lambda_{d,i}` (1 when absent). The risk of domain :math:`d` in the batch is the weighted
mean

.. math:: R_d = \frac{\sum_{i \in d} \lambda_{d,i}\, \ell_i}{\sum_{i \in d} \lambda_{d,i}},

and the plain (ERM) term is the weighted mean over every row,
:math:`\sum_i \lambda_i \ell_i / \sum_i \lambda_i = \sum_d a_d R_d` with :math:`a_d` the share of
domain :math:`d` in the batch's total weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.deep.base import DeepMethod, Forward, Losses
from transferkit.nn.batch import DABatch

__all__ = ["DGMethod", "domain_risks", "source_domains", "source_weights"]


def source_domains(batch: DABatch) -> torch.Tensor:
    """The domain of each source row (zeros when the batch does not say)."""
    if batch.d_source is None:
        return torch.zeros(len(batch.y_source), dtype=torch.long, device=batch.y_source.device)
    return batch.d_source


def source_weights(batch: DABatch, dtype=torch.float32) -> torch.Tensor:
    """The weight of each source row (ones when the batch carries none)."""
    if batch.w_source is None:
        return torch.ones(len(batch.y_source), dtype=dtype, device=batch.y_source.device)
    return batch.w_source.to(dtype)


def domain_risks(
    per_row: torch.Tensor, d: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(domain ids present, R_d)``: the weighted mean of ``per_row`` within each domain present."""
    ids = torch.unique(d)
    risks = []
    for g in ids:
        m = d == g
        risks.append((w[m] * per_row[m]).sum() / w[m].sum().clamp_min(torch.finfo(per_row.dtype).tiny))
    return ids, torch.stack(risks) if risks else per_row.new_zeros(0)


class DGMethod(DeepMethod):
    """Base class of the domain generalization losses.

    The network sees the source rows (and revealed target rows, when a caller passes some) and never
    the unlabelled target: ``uses_target = False`` makes the loader drop target rows altogether.
    Subclasses add their terms in :meth:`penalty`; :meth:`loss` sums them with :meth:`supervised`.
    """

    family = "domain-generalization"
    uses_target = False
    min_source_domains = 2

    def forward_source(self, model: nn.Module, batch: DABatch) -> Forward:
        """One pass over the source rows (and the revealed target rows' stream, if any)."""
        parts = [batch.x_source] + ([batch.x_labelled] if batch.x_labelled is not None else [])
        f, logits = model.forward_features_and_logits(torch.cat(parts))
        n = batch.x_source.shape[0]
        labelled = (f[n:], logits[n:]) if batch.x_labelled is not None else (None, None)
        return Forward(f[:n], logits[:n], f[:0], logits[:0], *labelled)

    @staticmethod
    def row_losses(out: Forward, batch: DABatch) -> torch.Tensor:
        """The cross-entropy of every source row."""
        return F.cross_entropy(out.logits_source, batch.y_source, reduction="none")

    def penalty(self, out: Forward, batch: DABatch, progress: float) -> dict[str, torch.Tensor]:
        """The method's terms beside the supervised ones (none for ERM)."""
        return {}

    def loss(self, model: nn.Module, batch: DABatch, progress: float) -> Losses:
        out = self.forward_source(model, batch)
        parts = {**self.supervised(out, batch), **self.penalty(out, batch, progress)}
        return Losses(sum(parts.values()), parts)
