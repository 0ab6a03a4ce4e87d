"""The contract of a deep method: a module with a loss over the one shared network.

A deep method holds its hyperparameters and its own auxiliary modules (a discriminator, ...). It
never loops over data: :class:`~transferkit.nn.trainer.Trainer` calls ``setup(model)`` once, then
``loss(model, batch, progress)`` every step and adds the returned ``total`` to the optimizer's
objective. How source and target go through the network is decided once, in
:meth:`DeepMethod.forward_domains`: one forward pass over the concatenated batch, so BatchNorm sees
both domains together in every method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.errors import TransferkitError
from transferkit.nn.batch import DABatch

__all__ = ["DeepMethod", "Forward", "Losses", "weighted_cross_entropy"]


def weighted_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy, or with weights ``w`` the weighted mean ``sum_i w_i CE_i / sum_i w_i``
    (0 when every weight is 0). In a data-parallel run the rows are a process's share of the global
    batch, and the denominator is the global batch's sum over the number of processes, so that the
    processes' average is the global batch's weighted mean (each share's own sum would weight the
    shares equally, whatever their weights)."""
    if w is None:
        return F.cross_entropy(logits, y)
    from transferkit.nn.distributed import global_mean_of

    ce = F.cross_entropy(logits, y, reduction="none")
    w = w.to(ce.dtype)
    return (w * ce).sum() / global_mean_of(w.sum()).clamp_min(torch.finfo(ce.dtype).tiny)


@dataclass
class Losses:
    """The step's objective (``total``) and its named parts, logged in the history."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Forward:
    """Features and logits of the source and target rows of one batch."""

    f_source: torch.Tensor
    logits_source: torch.Tensor
    f_target: torch.Tensor
    logits_target: torch.Tensor
    f_labelled: torch.Tensor | None = None
    logits_labelled: torch.Tensor | None = None


def check_nonnegative(method: object, name: str, value) -> None:
    """Refuse a setting that is not a finite number >= 0, such as a loss weight (a negative one would
    maximise the term it weighs) or a confidence threshold."""
    try:
        ok = math.isfinite(float(value)) and float(value) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TransferkitError(
            f"{type(method).__name__}'s {name} must be a finite number >= 0, got {value!r}."
        )


class DeepMethod(nn.Module):
    """Base class: source cross-entropy, plus ``target_weight`` x cross-entropy on revealed target labels.

    Subclasses add their adaptation term in :meth:`adaptation` and may create modules in
    :meth:`setup`. ``uses_target_labels``: whether revealed target labels reach the loss.
    ``uses_target``: whether the method looks at target rows at all (False: the loader drops them,
    so a run may have none). ``min_source_domains``: how many labelled source domains it needs.
    """

    role = "deep"
    family = "baseline"
    uses_target_labels = True
    uses_target = True
    min_source_domains = 1

    def __init__(self, target_weight: float = 1.0):
        super().__init__()
        try:  # "x" or None failed inside float()
            number = float(target_weight)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(target_weight, bool) or not (math.isfinite(number) and number >= 0):
            raise TransferkitError(f"target_weight must be a finite number >= 0, got {target_weight!r}.")
        self.target_weight = target_weight

    #: whether :meth:`finish` replaces the trained weights (weight averaging): then no scorer may
    #: restore an earlier epoch's weights instead (``early_stopping`` is refused)
    replaces_final_weights = False

    def setup(self, model: nn.Module) -> None:
        """Create auxiliary modules sized from ``model.feature_dim`` / ``model.num_classes``."""

    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        """Called after every optimizer step, ``step`` of ``total`` steps being done (nothing by default)."""

    def finish(self, model: nn.Module, inputs) -> None:
        """Called once when training ends; ``inputs`` iterates over batches of training inputs (for
        BatchNorm statistics). Nothing by default."""

    @staticmethod
    def forward_domains(model: nn.Module, batch: DABatch) -> Forward:
        """One pass over source, target and (when revealed) labelled target rows together."""
        parts = [batch.x_source, batch.x_target]
        if batch.x_labelled is not None:
            parts.append(batch.x_labelled)
        f, logits = model.forward_features_and_logits(torch.cat(parts))
        n, m = batch.x_source.shape[0], batch.x_source.shape[0] + batch.x_target.shape[0]
        labelled = (f[m:], logits[m:]) if batch.x_labelled is not None else (None, None)
        return Forward(f[:n], logits[:n], f[n:m], logits[n:m], *labelled)

    def supervised(self, out: Forward, batch: DABatch) -> dict[str, torch.Tensor]:
        """``L_source + lambda * L_target``, the target term over the revealed target labels' stream
        (the knowledge-transfer loss; ``lambda`` is ``target_weight``). With source weights
        (``batch.w_source``) ``L_source`` is their weighted mean ``sum_i w_i CE_i / sum_i w_i``."""
        parts = {"source_ce": weighted_cross_entropy(out.logits_source, batch.y_source, batch.w_source)}
        if out.logits_labelled is not None and self.target_weight > 0:
            parts["target_ce"] = self.target_weight * F.cross_entropy(out.logits_labelled, batch.y_labelled)
        return parts

    def adaptation(self, out: Forward, batch: DABatch, progress: float) -> dict[str, torch.Tensor]:
        """The method's own terms (none for source-only)."""
        return {}

    def loss(self, model: nn.Module, batch: DABatch, progress: float) -> Losses:
        out = self.forward_domains(model, batch)
        parts = {**self.supervised(out, batch), **self.adaptation(out, batch, progress)}
        return Losses(sum(parts.values()), parts)
