"""RandConv: train on images seen through random convolutions (Xu et al., ICLR 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from transferkit.deep.base import Forward, Losses
from transferkit.dg.base import DGMethod
from transferkit.errors import TransferkitError, check_flag


def random_convolution(
    x: torch.Tensor, kernel_sizes: tuple[int, ...], identity_prob: float = 0.0, mixing: bool = False
) -> torch.Tensor:
    r"""One RandConv view of a batch of images ``x`` (N, C, H, W), drawn from torch's global generator.

    With probability ``identity_prob`` the batch is returned unchanged. Otherwise a kernel size
    :math:`k` is drawn uniformly from ``kernel_sizes`` and a :math:`C \to C` convolution with weights
    :math:`w \sim \mathcal N(0, 1 / (C k^2))` (the fan-in variance: the output keeps the input's
    second moment), no bias and zero "same" padding filters every image of the batch; with ``mixing``
    the view is :math:`\alpha\, w * z + (1 - \alpha)\, z` with :math:`\alpha \sim U(0, 1)`. The
    filter sees the batch standardized per channel, :math:`z = (x - \mu) / \sigma` (the authors
    filter standardized images; otherwise a black background would stay black under every filter),
    and the view is put back on the input's scale, :math:`\sigma \cdot (\cdot) + \mu`, so that the
    network sees filtered and original images on one scale. One filter for the whole batch, as in the
    paper: what changes from step to step is the texture and colour mapping, while shapes (the
    digits' strokes) survive any small kernel.
    """
    if float(torch.rand(())) < identity_prob:
        return x
    k = int(kernel_sizes[int(torch.randint(len(kernel_sizes), ()))])
    c = x.shape[1]
    w = torch.randn(c, c, k, k, device=x.device, dtype=x.dtype) / math.sqrt(c * k * k)
    mean = x.detach().mean(dim=(0, 2, 3), keepdim=True)
    # (a single value per channel has no spread: nan, read as 1; since the filter is linear without a
    # bias the scale cancels anyway, and what changes the view is the centring)
    std = torch.nan_to_num(x.detach().std(dim=(0, 2, 3), keepdim=True), nan=1.0).clamp_min(1e-6)
    z = (x - mean) / std
    out = F.conv2d(z, w, padding=k // 2)
    if mixing:
        alpha = float(torch.rand(()))
        out = alpha * out + (1.0 - alpha) * z
    return out * std + mean


def consistency(logits: list[torch.Tensor]) -> torch.Tensor:
    r"""The mean over views :math:`j` of :math:`\mathrm{KL}(p_j \,\|\, \bar p)`, :math:`\bar p` the mean of
    the views' softmax outputs (clamped at :math:`10^{-7}` before its log, as the authors do), each KL
    averaged over the rows: a generalised Jensen-Shannon divergence, 0 when every view agrees."""
    log_p = [F.log_softmax(z, dim=1) for z in logits]
    mean = torch.stack([lp.exp() for lp in log_p]).mean(0).clamp(1e-7, 1.0).log()
    return torch.stack([F.kl_div(mean, lp, reduction="batchmean", log_target=True) for lp in log_p]).mean()


class RandConv(DGMethod):
    r"""Random convolutions of the input images plus a consistency loss between views (RandConv).

    Every step draws ``n_views`` views of the batch with :func:`random_convolution` (each with its
    own filter: a kernel size from ``kernel_sizes``, weights N(0, 1/(C k^2)), the original batch with
    probability ``identity_prob``; ``mixing`` blends filtered and original images) and minimises

    .. math:: \mathcal{L} = \frac{\sum_i \lambda_i\, \ell(h(v^1_i), y_i)}{\sum_i \lambda_i}
        + \gamma\, \frac1J \sum_{j=1}^{J} \mathrm{KL}\big(p(v^j) \,\|\, \bar p\big),
        \qquad \bar p = \frac1J \sum_j p(v^j)

    (the cross-entropy on the first view, weighted by the per-domain x per-sample weights
    :math:`\lambda`, and :math:`\gamma` = ``consistency_weight`` times :func:`consistency`). A
    random linear filter keeps an object's shape but changes its local texture and colours, the
    features by which image domains (MNIST, MNIST-M, ...) differ; the consistency term asks the
    network to answer the same under every such filter. Predictions use the images as they are.

    Defaults are the paper's digit setting: kernel sizes 1, 3, 5, 7, ``identity_prob=0.5``, three
    views, :math:`\gamma = 5` (``RC_img1-7, p=0.5``). Images only: rows of shape (channels, height,
    width); vectors (sentence embeddings, tabular features) are a clear error. Works with one
    training domain (the paper's single-source setting). Randomness comes from torch's global
    generator (seeded by the trainer, saved in checkpoints). The views go through the network in one
    pass, so a step costs about ``n_views`` ERM steps.

    Reference: Z. Xu, D. Liu, J. Yang, C. Raffel and M. Niethammer, "Robust and generalizable visual
    representation learning via random convolutions", ICLR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.randconv import RandConv
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 64); X = rng.normal(0, 0.3, size=(64, 1, 6, 6))  # one-channel 6x6 images
    >>> X[y == 0, :, 2:4, :] += 1.0; X[y == 1, :, :, 2:4] += 1.0  # class 0: a horizontal bar, 1: vertical
    >>> sd = np.repeat([0, 1], 32); X[sd == 1] *= 2.0  # two training domains, of other contrasts
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(1, 6, 6), hidden=(16,))
    >>> trainer = Trainer(net, RandConv(kernel_sizes=(1, 3)), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['consistency', 'loss', 'source_ce']
    >>> trainer.predict(X[:5]).shape
    (5,)
    """

    min_source_domains = 1
    needs_images = True
    search_space = {"consistency_weight": (1.0, 5.0, 10.0)}

    def __init__(
        self,
        kernel_sizes: tuple[int, ...] = (1, 3, 5, 7),
        identity_prob: float = 0.5,
        mixing: bool = False,
        consistency_weight: float = 5.0,
        n_views: int = 3,
        target_weight: float = 1.0,
    ):
        super().__init__(target_weight=target_weight)
        try:
            listed = kernel_sizes if isinstance(kernel_sizes, (tuple, list)) else (kernel_sizes,)
            sizes = tuple(int(k) for k in listed)
            identity_prob, consistency_weight = float(identity_prob), float(consistency_weight)
            n_views_number = float(n_views)
        except (TypeError, ValueError):
            raise TransferkitError(
                "randconv's settings must be numbers: kernel_sizes whole numbers (such as 1,3,5,7), "
                f"identity_prob, consistency_weight and n_views numbers; got kernel_sizes={kernel_sizes!r}, "
                f"identity_prob={identity_prob!r}, consistency_weight={consistency_weight!r}, "
                f"n_views={n_views!r}."
            ) from None
        whole = all(float(k) == s for k, s in zip(listed, sizes))  # 3.7 used to become 3, silently
        if not sizes or not whole or any(k < 1 or k % 2 == 0 for k in sizes):
            raise TransferkitError(
                f"kernel_sizes must be odd sizes >= 1 (so that a filtered image keeps its size), "
                f"got {kernel_sizes}."
            )
        if not 0.0 <= float(identity_prob) < 1.0:
            raise TransferkitError(
                f"identity_prob must be in [0, 1): the chance that a view is the original batch; "
                f"got {identity_prob}."
            )
        if not float(consistency_weight) >= 0.0:
            raise TransferkitError(f"consistency_weight must be >= 0, got {consistency_weight}.")
        if isinstance(n_views, bool) or not (
            1 <= n_views_number < math.inf and int(n_views_number) == n_views_number
        ):
            raise TransferkitError(f"n_views must be a whole number >= 1, got {n_views}.")
        self.kernel_sizes = sizes
        self.identity_prob = float(identity_prob)
        self.mixing = check_flag("mixing", mixing)
        self.consistency_weight = float(consistency_weight)
        self.n_views = int(n_views)

    def loss(self, model, batch, progress):
        x = batch.x_source
        if x.dim() != 4:
            raise TransferkitError(
                f"randconv filters images: it needs rows of shape (channels, height, width), got rows of "
                f"shape {tuple(x.shape[1:])}. Use it on image data (digits, image folders); for vectors "
                "pick another domain generalization method (erm, mixup, dg-coral, ...)."
            )
        n_views = self.n_views if self.consistency_weight > 0 else 1
        views = [
            random_convolution(x, self.kernel_sizes, self.identity_prob, self.mixing) for _ in range(n_views)
        ]
        extra = [batch.x_labelled] if batch.x_labelled is not None else []
        f, logits = model.forward_features_and_logits(torch.cat(views + extra))
        n = len(x)
        labelled = (f[n * n_views :], logits[n * n_views :]) if extra else (None, None)
        out = Forward(f[:n], logits[:n], f[:0], logits[:0], *labelled)
        parts = self.supervised(out, batch)
        if n_views > 1:
            parts["consistency"] = self.consistency_weight * consistency(
                [logits[j * n : (j + 1) * n] for j in range(n_views)]
            )
        return Losses(sum(parts.values()), parts)
