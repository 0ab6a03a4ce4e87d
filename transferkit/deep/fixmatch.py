"""FixMatch-style consistency between weak and strong views of the target (Sohn et al., NeurIPS 2020).

The augmentations work on tensors inside the method, so any data set can use them: images
``[N, C, H, W]`` get shifts, affine warps, contrast/brightness changes and cutout; feature vectors
(any other shape, flattened) get Gaussian noise scaled by each feature's batch spread and, in the
strong view, feature dropout. Their randomness comes from a generator seeded, for each training
step, from a seed drawn at setup (from the trainer-seeded global RNG) and a step counter; both are
buffers, so checkpoints carry them and a resumed run draws the same views.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.deep.base import DeepMethod, Losses, check_nonnegative
from transferkit.errors import TransferkitError
from transferkit.nn.batch import DABatch
from transferkit.nn.losses import consistency_loss

__all__ = [
    "FixMatch",
    "adjust_contrast_brightness",
    "affine_images",
    "cutout",
    "shift_images",
    "strong_augment",
    "weak_augment",
]


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def shift_images(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Move each image ``dx`` pixels right and ``dy`` down (integers); the border pixels fill the gap."""
    n, _, h, w = x.shape
    dx, dy = dx.to(x.device).long(), dy.to(x.device).long()
    rows = (torch.arange(h, device=x.device)[None, :] - dy[:, None]).clamp(0, h - 1)  # [N, H]
    cols = (torch.arange(w, device=x.device)[None, :] - dx[:, None]).clamp(0, w - 1)  # [N, W]
    idx = torch.arange(n, device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def affine_images(
    x: torch.Tensor, angle: torch.Tensor, shear: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor,
    ty: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Warp each image by ``u = R(angle) [[1, shear], [0, 1]] scale v + t`` about its centre.

    ``angle`` in radians, ``tx``/``ty`` in fractions of the width/height; bilinear sampling, the
    border pixels fill what comes from outside. Per image: all arguments are ``[N]``.
    """
    angle, shear, scale, tx, ty = (a.to(x.device, x.dtype) for a in (angle, shear, scale, tx, ty))
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    sh = torch.stack([torch.stack([one, shear], 1), torch.stack([zero, one], 1)], 1)
    inv = torch.linalg.inv(rot @ sh * scale[:, None, None])  # the grid maps output to input points
    t = torch.stack([2 * tx, 2 * ty], 1)[:, :, None]  # normalised coordinates span 2
    theta = torch.cat([inv, -inv @ t], 2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def adjust_contrast_brightness(x: torch.Tensor, contrast: torch.Tensor, brightness: torch.Tensor):
    """``brightness * (m + contrast * (x - m))`` per image, ``m`` the image's mean (``[N]`` factors)."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    c, b = contrast.to(x).view(shape), brightness.to(x).view(shape)
    m = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    return b * (m + c * (x - m))


def cutout(x: torch.Tensor, size: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
    """Fill a ``size x size`` square centred at ``(cy, cx)`` (integers, clipped to the image) with the
    image's mean."""
    _, _, h, w = x.shape
    size, cy, cx = (a.to(x.device).long() for a in (size, cy, cx))
    y0, x0 = cy - size // 2, cx - size // 2
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    in_r = (r >= y0[:, None]) & (r < (y0 + size)[:, None])  # [N, H]
    in_c = (c >= x0[:, None]) & (c < (x0 + size)[:, None])  # [N, W]
    box = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # [N, 1, H, W]
    return torch.where(box, x.mean(dim=(1, 2, 3), keepdim=True), x)


def weak_augment(x: torch.Tensor, g: torch.Generator, translate: float = 0.125, noise: float = 0.1):
    """Images: a random shift of up to ``translate`` of the size (whole pixels, no flip, FixMatch's
    weak view for digits). Vectors: Gaussian noise of ``noise`` times each feature's batch std."""
    n = x.shape[0]
    if x.ndim == 4:
        h, w = x.shape[-2:]
        rh, rw = round(translate * h), round(translate * w)
        dy = torch.randint(-rh, rh + 1, (n,), generator=g)
        dx = torch.randint(-rw, rw + 1, (n,), generator=g)
        return shift_images(x, dx, dy)
    flat = x.reshape(n, -1)
    std = flat.std(0, unbiased=False).detach()
    return (flat + noise * std * torch.randn(flat.shape, generator=g).to(x)).view_as(x)


def strong_augment(
    x: torch.Tensor, g: torch.Generator, rotate: float = 30.0, shear: float = 0.3, translate: float = 0.2,
    scale: tuple[float, float] = (0.8, 1.2), contrast: tuple[float, float] = (0.5, 1.5),
    brightness: tuple[float, float] = (0.5, 1.5), cutout_max: float = 0.5, noise: float = 0.3,
    drop: float = 0.2,
) -> torch.Tensor:  # fmt: skip
    """Images: a random affine warp (rotation up to ``rotate`` degrees, ``shear``, ``translate``,
    ``scale``), random contrast and brightness (clipped to the batch's value range), then a cutout
    square of up to ``cutout_max`` of the side (RandAugment's operations at fixed strength, plus
    FixMatch's cutout). Vectors: Gaussian noise of ``noise`` times each feature's batch std, then a
    ``drop`` fraction of the features set to their batch mean."""
    n = x.shape[0]
    if x.ndim == 4:
        h, w = x.shape[-2:]
        lo, hi = x.min().detach(), x.max().detach()
        rad = math.radians(rotate)
        y = affine_images(
            x, _uniform(n, -rad, rad, g), _uniform(n, -shear, shear, g), _uniform(n, *scale, g),
            _uniform(n, -translate, translate, g), _uniform(n, -translate, translate, g),
        )  # fmt: skip
        y = adjust_contrast_brightness(y, _uniform(n, *contrast, g), _uniform(n, *brightness, g)).clamp(
            lo, hi
        )
        size = (torch.rand(n, generator=g) * cutout_max * min(h, w)).floor()
        cy, cx = torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)
        return cutout(y, size, cy, cx)
    flat = x.reshape(n, -1)
    std = flat.std(0, unbiased=False).detach()
    y = flat + noise * std * torch.randn(flat.shape, generator=g).to(x)
    dropped = (torch.rand(flat.shape, generator=g) < drop).to(x.device)
    return torch.where(dropped, flat.mean(0, keepdim=True).detach(), y).view_as(x)


class FixMatch(DeepMethod):
    r"""Predict on a strong view of each target row the label the weak view gives it confidently.

    .. math:: \mathcal{L} = \mathcal{L}_s + \lambda_u \frac{1}{n_t} \sum_i
        \mathbb{1}\big[\max_k q_{ik} \ge \tau\big]\,
        \mathrm{CE}\big(z(\mathcal{A}(x^t_i)), \arg\max_k q_{ik}\big),
        \qquad q_i = \mathrm{softmax}\big(z(\alpha(x^t_i))\big)

    :math:`\alpha` is the weak augmentation (a shift; :func:`weak_augment`), :math:`\mathcal{A}` the
    strong one (affine warp, contrast, brightness, cutout; :func:`strong_augment`); :math:`q` carries
    no gradient. Source rows, weak target views and the revealed target rows (as given, not
    augmented) go through the network together (the one forward rule); the strong view is a second
    pass.
    Paper defaults: ``threshold`` :math:`\tau = 0.95`, ``weight`` :math:`\lambda_u = 1`. Unlike the
    paper, the target batch has as many rows as the source batch (the paper's :math:`\mu = 7`
    unlabelled rows per labelled row), and the source rows are not augmented (the paper trains on
    their weak view; ``augment_source`` can add one).

    Reference: K. Sohn et al., "FixMatch: simplifying semi-supervised learning with consistency and
    confidence", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.deep.fixmatch import FixMatch
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y  # the class: feature 0
    >>> sd = np.repeat([0, -1], 48); X[sd < 0, 1] += 2.0  # 48 source rows, then 48 shifted target rows
    >>> y[sd < 0] = -1  # target labels are unknown
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, FixMatch(threshold=0.8), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['consistency', 'loss', 'source_ce']
    >>> int(trainer.method.aug_step)  # one pair of views per step, counted in a checkpointed buffer
    20
    >>> trainer.predict(X[sd < 0]).shape
    (48,)
    """

    family = "self-training"

    def __init__(self, weight: float = 1.0, threshold: float = 0.95, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "weight", weight)
        if not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) <= 1.0):
            raise TransferkitError(f"{type(self).__name__}'s threshold must be in [0, 1], got {threshold}.")
        self.weight = weight
        self.threshold = threshold
        self.register_buffer("aug_seed", torch.zeros((), dtype=torch.int64))
        self.register_buffer("aug_step", torch.zeros((), dtype=torch.int64))

    def setup(self, model: nn.Module) -> None:
        self.aug_seed.fill_(int(torch.randint(0, 2**31 - 1, ())))
        self.aug_step.zero_()

    def step_generator(self) -> torch.Generator:
        """The generator of this step's views (training mode moves on to the next step's draws)."""
        g = torch.Generator().manual_seed(int(self.aug_seed) * 1_000_003 + int(self.aug_step))
        if self.training:
            self.aug_step += 1
        return g

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The weak and strong views of this step (training mode moves on to the next step's draws)."""
        g = self.step_generator()
        return weak_augment(x, g), strong_augment(x, g)

    def loss(self, model: nn.Module, batch: DABatch, progress: float) -> Losses:
        weak, strong = self.views(batch.x_target)
        out = self.forward_domains(model, dataclasses.replace(batch, x_target=weak))
        _, logits_strong = model.forward_features_and_logits(strong)
        parts = {
            **self.supervised(out, batch),
            "consistency": self.weight * consistency_loss(out.logits_target, logits_strong, self.threshold),
        }
        return Losses(sum(parts.values()), parts)
