"""The math of deep domain adaptation as pure functions of tensors (no modules, no training loop).

Each function is tested against a naive loop in ``tests/nn/test_losses.py``. Shapes: ``f`` features
``[N, D]``, ``logits`` ``[N, K]``, ``p`` probabilities ``[N, K]``.

- :func:`mmd2`: multi-kernel MMD^2 (DAN, Long et al. 2015): Gaussian kernels whose bandwidths are
  multiples of the mean pairwise squared distance, averaged.
- :func:`coral_loss`: Deep CORAL (Sun & Saenko 2016), ``||C_s - C_t||_F^2 / (4 d^2)``.
- :func:`grad_reverse` and :func:`dann_lambda`: the gradient reversal layer of DANN (Ganin et al.
  2016) and its warm-up schedule ``2 / (1 + exp(-gamma p)) - 1``.
- :func:`cdan_map` and :func:`entropy_weights`: CDAN's multilinear conditioning ``f (x) g`` and
  CDAN+E's weights ``1 + exp(-H(g))`` (Long et al. 2018).
- :func:`entropy`: mean prediction entropy.
- :func:`mcc_loss`: minimum class confusion (Jin et al. 2020).
- :func:`consistency_loss`: FixMatch's confident pseudo-label cross-entropy between a weak and a
  strong view (Sohn et al. 2020).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from transferkit.errors import TransferkitError

__all__ = [
    "adamatch_loss",
    "align_distributions",
    "cdan_map",
    "consistency_loss",
    "coral_loss",
    "dann_lambda",
    "entropy",
    "entropy_weights",
    "grad_reverse",
    "mcc_loss",
    "mmd2",
]


def _sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T).clamp_min(0)


def mmd2(
    fs: torch.Tensor,
    ft: torch.Tensor,
    multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0),
    detach_bandwidth: bool = True,
) -> torch.Tensor:
    """Multi-kernel MMD^2 between two batches (biased quadratic estimate, as in DAN's code).

    Bandwidths: ``sigma^2 = m * mean pairwise squared distance`` (over the pooled batch, detached) for
    each multiplier ``m``; ``k(a, b) = exp(-||a - b||^2 / sigma^2)``; kernels averaged. With
    ``detach_bandwidth=False`` the gradient also flows through the bandwidth, which makes the loss
    invariant to the scale of the features (no gradient towards shrinking them).
    """
    if len(fs) == 0 or len(ft) == 0:  # the means over an empty batch are NaN
        raise TransferkitError(
            f"MMD compares two batches and needs rows in both, got {len(fs)} and {len(ft)}; "
            "give the run rows of both domains."
        )
    z = torch.cat([fs, ft])
    d = _sq_dists(z, z)
    n = z.shape[0]
    base = d.sum() / (n * n - n)
    base = (base.detach() if detach_bandwidth else base).clamp_min(1e-12)
    k = sum(torch.exp(-d / (m * base)) for m in multipliers) / len(multipliers)
    ns = fs.shape[0]
    return k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()


def coral_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """``||C_s - C_t||_F^2 / (4 d^2)`` with unbiased batch covariances (each batch needs 2 rows)."""
    if min(len(fs), len(ft)) < 2:  # the unbiased covariance of one row divides 0 by 0
        raise TransferkitError(
            f"CORAL compares batch covariances, which need at least 2 rows per domain, got {len(fs)} source "
            f"and {len(ft)} target rows; raise batch_size (in a data-parallel run, per process)."
        )
    d = fs.shape[1]

    def cov(f):
        c = f - f.mean(0, keepdim=True)
        return c.T @ c / (f.shape[0] - 1)

    return ((cov(fs) - cov(ft)) ** 2).sum() / (4 * d * d)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-coeff`` on the way back."""
    return _GradReverse.apply(x, float(coeff))


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's adaptation weight ``2 / (1 + exp(-gamma p)) - 1`` for training progress ``p`` in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-gamma * float(progress))) - 1.0


def entropy(p: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Entropy of each row of probabilities (natural log), averaged unless ``reduction='none'``."""
    h = -(p * torch.log(p.clamp_min(1e-12))).sum(1)
    return h if reduction == "none" else h.mean()


def entropy_weights(p: torch.Tensor) -> torch.Tensor:
    """CDAN+E: ``1 + exp(-H(p))`` per row (confident rows count more), detached."""
    return (1.0 + torch.exp(-entropy(p.detach(), reduction="none"))).detach()


def cdan_map(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """CDAN's multilinear map: the flattened outer product ``f (x) p``, shape ``[N, D * K]``."""
    return torch.bmm(p.unsqueeze(2), f.unsqueeze(1)).flatten(1)


def mcc_loss(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """Minimum class confusion on a target batch (Jin et al. 2020).

    ``P = softmax(logits / T)``; rows weighted by ``w = 1 + exp(-H(P))`` normalised to sum to the
    batch size; ``C = P^T diag(w) P``; each row of ``C`` divided by its sum; the loss is the mass off
    the diagonal divided by the number of classes.
    """
    n, k = logits.shape
    p = F.softmax(logits / temperature, dim=1)
    w = 1.0 + torch.exp(-entropy(p, reduction="none"))
    w = (n * w / w.sum()).detach()
    c = p.T @ (w[:, None] * p)
    s = c.sum(1, keepdim=True)
    if bool((s > 0).all()):
        c = c / s
    else:
        # a class that every row gives ~0 probability (large logits) underflows both sums of its row to
        # 0 (0/0 = NaN); that row's limit, sum_i r_ia p_i with r_ia = w_i p_ia / sum_j w_j p_ja, is a
        # softmax over the rows in log space (only here, so that the usual case keeps its arithmetic)
        r = torch.softmax(torch.log(w)[:, None] + F.log_softmax(logits / temperature, dim=1), dim=0)
        c = torch.where(s > 0, c / s.clamp_min(torch.finfo(c.dtype).tiny), r.T @ p)
    return (c.sum() - torch.trace(c)) / k


def consistency_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor, threshold: float = 0.95):
    """FixMatch: cross-entropy of the strong view against the weak view's confident pseudo-labels.

    Rows whose weak-view confidence is below ``threshold`` count zero; the mean is over all rows
    (as in FixMatch), so the loss grows as more rows become confident.
    """
    with torch.no_grad():
        conf, pseudo = F.softmax(logits_weak, dim=1).max(1)
        mask = (conf >= threshold).float()
    return (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()


def align_distributions(
    p_target: torch.Tensor, p_source: torch.Tensor, w_source: torch.Tensor | None = None
) -> torch.Tensor:
    """AdaMatch's distribution alignment: each target row's class probabilities multiplied by the
    ratio of the source batch's mean prediction to the target batch's, then renormalized.

    A class the network already gives most target rows (the start of a collapse) is scaled down; a
    class the source predicts as often as the target keeps its probabilities. With source row weights
    ``w_source`` (the trainer's ``w_source``: per-domain or per-sample weights) the source mean is
    their weighted mean, the class mix the weighted source loss trains towards.
    """
    tiny = torch.finfo(p_target.dtype).tiny
    if w_source is None:
        mean_source = p_source.mean(0)
    else:
        w = w_source.to(p_source.dtype)
        mean_source = (w[:, None] * p_source).sum(0) / w.sum().clamp_min(tiny)
    ratio = mean_source / p_target.mean(0).clamp_min(tiny)
    q = p_target * ratio
    return q / q.sum(1, keepdim=True)


def adamatch_loss(
    logits_source: torch.Tensor,
    logits_weak: torch.Tensor,
    logits_strong: torch.Tensor,
    threshold: float = 0.9,
    w_source: torch.Tensor | None = None,
) -> torch.Tensor:
    """AdaMatch: cross-entropy of the strong target view against pseudo-labels of the weak view after
    distribution alignment, kept where their confidence reaches ``threshold`` times the source rows'
    mean confidence (the relative threshold). The mean is over all target rows; no gradient flows
    through the pseudo-labels. With source row weights ``w_source`` both source means (the class mix
    of the alignment and the confidence) are weighted means.
    """
    with torch.no_grad():
        p_source = F.softmax(logits_source, dim=1)
        q = align_distributions(F.softmax(logits_weak, dim=1), p_source, w_source)
        conf, pseudo = q.max(1)
        confidence = p_source.max(1).values
        if w_source is not None:
            w = w_source.to(confidence.dtype)
            confidence = (w * confidence).sum() / w.sum().clamp_min(torch.finfo(confidence.dtype).tiny)
        mask = (conf >= threshold * confidence.mean()).to(logits_strong.dtype)
    return (F.cross_entropy(logits_strong, pseudo, reduction="none") * mask).mean()
