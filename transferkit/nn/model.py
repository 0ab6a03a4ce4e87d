"""The network every deep method trains: a backbone (features), an optional bottleneck, and a head."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Network", "build_network", "lenet", "make_head", "mlp", "standardize_images"]


def make_head(feature_dim: int, num_classes: int, hidden: int | None = None) -> nn.Module:
    """A linear head, or with ``hidden`` an MLP head ``Linear -> ReLU -> Dropout(0.1) -> Linear``."""
    if not hidden:
        return nn.Linear(feature_dim, num_classes)
    return nn.Sequential(
        nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, num_classes)
    )


class Network(nn.Module):
    """``backbone -> bottleneck -> head``; ``features`` is what adaptation losses look at.

    The head is linear, or a small MLP with ``head_hidden`` units (linear probing with an MLP head:
    ``freeze=trunk``). With ``input_norm`` each image is standardized per channel before the
    backbone (instance normalization of the input, no parameters): an image's brightness, contrast
    and colour cast are removed, the shift between grey MNIST and colour MNIST-M among them (Shu et
    al., *A DIRT-T Approach to Unsupervised Domain Adaptation*, ICLR 2018, normalize their inputs so).

    ``new_parameters``: patterns of the parts that start from a fresh initialization rather than
    transferred weights, the bottleneck and the head here (a network loaded from a saved model has
    only its head). L2-SP (:class:`transferkit.nn.finetune.Regularizer`) keeps these small instead
    of pulling them towards their random starting values.
    """

    def __init__(
        self, backbone: nn.Module, feature_dim: int, num_classes: int, bottleneck_dim: int | None = None,
        head_hidden: int | None = None, input_norm: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.input_norm = bool(input_norm)
        self.backbone = backbone
        if bottleneck_dim:
            self.bottleneck = nn.Sequential(
                nn.Linear(feature_dim, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim), nn.ReLU()
            )
            feature_dim = bottleneck_dim
        else:
            self.bottleneck = nn.Identity()
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.head_hidden = head_hidden
        self.head = make_head(feature_dim, num_classes, head_hidden)
        self.new_parameters: tuple[str, ...] = ("bottleneck.*", "head.*")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm:
            x = standardize_images(x)
        return self.bottleneck(self.backbone(x))

    def forward_features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def standardize_images(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each image of a ``(N, C, H, W)`` batch minus its channel's mean over the pixels, divided by
    ``sqrt(variance + eps)`` (the biased variance): ``torch.nn.functional.instance_norm`` without
    parameters. A constant channel becomes zeros (up to rounding), not a division by zero."""
    if x.ndim != 4:
        raise ValueError(
            f"standardize_images takes (N, C, H, W) images, got a tensor of shape {tuple(x.shape)}"
        )
    return nn.functional.instance_norm(x, eps=eps)


def lenet(in_channels: int = 3) -> tuple[nn.Module, int]:
    """LeNet-5 style trunk for 32x32 digits: two conv + pool blocks, then 500 units (as in DANN's code)."""
    trunk = nn.Sequential(
        nn.Conv2d(in_channels, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(20, 50, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(50 * 5 * 5, 500), nn.ReLU(), nn.Dropout(0.5),
    )  # fmt: skip
    return trunk, 500


def mlp(in_features: int, hidden: tuple[int, ...] = (256,), dropout: float = 0.1) -> tuple[nn.Module, int]:
    """A multilayer perceptron for feature vectors and sentence embeddings."""
    layers, d = [nn.Flatten()], in_features
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
        d = h
    return nn.Sequential(*layers), d


def build_network(
    backbone: str,
    num_classes: int,
    *,
    in_shape: tuple[int, ...],
    bottleneck_dim: int | None = None,
    pretrained: bool = False,
    head_hidden: int | None = None,
    input_norm: bool = False,
    **kw,
) -> Network:
    """A :class:`Network` on the backbone ``backbone`` of :mod:`transferkit.nn.backbones` (``lenet`` for
    (C, 32, 32) images, ``mlp`` for vectors, torchvision/EfficientNet-Lite0/``timm:<name>`` ImageNet
    networks); ``pretrained`` loads the backbone's ImageNet weights, ``kw`` are backbone options
    (``hidden``/``dropout`` for ``mlp``, ``input_size``/``normalize`` for ImageNet backbones);
    ``input_norm`` standardizes each (C, H, W) image per channel before the backbone."""
    from transferkit.errors import TransferkitError
    from transferkit.nn.backbones import build_backbone

    if input_norm and len(tuple(in_shape)) != 3:
        raise TransferkitError(
            f"input_norm standardizes (C, H, W) images per channel; these rows have shape {tuple(in_shape)}. "
            "Leave input_norm out for feature vectors (their preprocessing steps scale them)."
        )
    if input_norm and pretrained:
        import warnings

        warnings.warn(
            f"input_norm=true with pretrained weights: {backbone}'s own input normalization then sees "
            "standardized images, not the [0, 1] pixels its weights were trained on; input_norm is meant "
            "for networks trained from scratch.",
            UserWarning,
            stacklevel=2,
        )
    trunk, d = build_backbone(backbone, in_shape, pretrained=pretrained, **kw)
    net = Network(trunk, d, num_classes, bottleneck_dim, head_hidden, input_norm=input_norm)
    net.in_shape = tuple(int(s) for s in in_shape)  # what one row must look like (Trainer checks it)
    return net
