"""Per-domain augmentation of image batches: each domain gets its own list of random transforms.

An augmentation is named by a string of steps joined with ``+``, for example ``crop+flip`` on the
source and ``none`` on the target (the usual choice: augment the labelled domain, look at the
target as it is). Steps, applied to a ``(N, C, H, W)`` batch with an independent draw per image:

============  ======================================================================================
``crop``      random crop after zero-padding by ``pad`` pixels (default 2 for digits: 1/16 of 32)
``flip``      random horizontal flip with probability 1/2 (not for digits: a flipped 2 is no 2)
``jitter``    random brightness and contrast in [0.8, 1.2] per image
``randconv``  a random convolution (RandConv, Xu et al., ICLR 2021): with probability 1/2 the batch as
              it is, otherwise one random filter (size 1, 3, 5 or 7, weights N(0, 1/(C k^2))) over the whole
              batch, which keeps shapes and changes texture and colour
              (:func:`~transferkit.dg.randconv.random_convolution`; the method ``randconv`` adds its
              consistency loss between views, this step is the augmentation alone)
``center``    the identity at the input size (the centre crop of a same-size image)
``none``      nothing
============  ======================================================================================

Randomness comes from torch's global generator, which the trainer seeds and checkpoints, so
augmented runs are reproducible and resume exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from transferkit.errors import TransferkitError, unknown_name

__all__ = ["STEPS", "build_augmentation"]


def random_crop(x: torch.Tensor, pad: int = 2) -> torch.Tensor:
    """Zero-pad by ``pad`` and cut a random window of the original size from each image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,)).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,)).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def random_flip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0]) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)


def jitter(x: torch.Tensor, strength: float = 0.2) -> torch.Tensor:
    n = x.shape[0]
    bright = (1 + (torch.rand(n) * 2 - 1) * strength).view(-1, 1, 1, 1).to(x)
    contrast = (1 + (torch.rand(n) * 2 - 1) * strength).view(-1, 1, 1, 1).to(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean) * bright


def randconv(x: torch.Tensor) -> torch.Tensor:
    from transferkit.dg.randconv import random_convolution

    return random_convolution(x, (1, 3, 5, 7), identity_prob=0.5)


STEPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "center": lambda x: x,
    "crop": random_crop,
    "flip": random_flip,
    "jitter": jitter,
    "none": lambda x: x,
    "randconv": randconv,
}


def build_augmentation(spec: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``"crop+flip"`` -> a callable applying both in order; ``"none"`` -> None."""
    names = [s.strip() for s in str(spec).split("+") if s.strip()]
    for name in names:
        if name not in STEPS:
            raise unknown_name("augmentation step", name, sorted(STEPS))
    steps = [STEPS[n] for n in names if n not in ("none", "center")]
    if not steps:
        return None

    def apply(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise TransferkitError(
                f"augmentation '{spec}' works on image batches (N, C, H, W); these inputs have shape "
                f"{tuple(x.shape)}. Use augment_source=none for feature vectors."
            )
        for step in steps:
            x = step(x)
        return x

    return apply
