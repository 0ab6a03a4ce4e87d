"""Fine-tuning audit: LoRA adapters that reload exactly and leave the bottleneck trainable, L2-SP that
does not pull freshly initialized layers towards their random start, and clear errors for settings
and saved models that would otherwise fail deep inside torch (or train a NaN network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferkit.deep.source_only import SourceOnly
from transferkit.errors import TransferkitError
from transferkit.nn.finetune import Regularizer, parameter_groups
from transferkit.nn.model import build_network
from transferkit.nn.saved_model import load_network, save_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything

SPEC = {"backbone": "mlp", "num_classes": 3, "in_shape": [6], "options": {"hidden": [16]}}


def _net(bottleneck=None):
    seed_everything(0)
    return build_network("mlp", 3, in_shape=(6,), hidden=(16,), bottleneck_dim=bottleneck)


def _data(n=48):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(3, 6)) * 3)[y] + rng.normal(size=(n, 6))
    sd = np.repeat([0, -1], n // 2)  # source rows, then unlabelled target rows
    return X.astype(np.float32), np.where(sd >= 0, y, -1), sd


def test_lora_scale_dropout_and_layers_are_saved_so_the_model_reloads_to_the_same_predictions(tmp_path):
    pytest.importorskip("peft")
    from transferkit.nn.lora import apply_lora

    net = _net()
    apply_lora(net, rank=2, alpha=8.0, dropout=0.1)  # a scale of 4, not 1
    with torch.no_grad():  # trained adapters: B is no longer zero
        net.backbone[1].lora_B["default"].weight.normal_()
    save_network(net, tmp_path, SPEC)  # the spec does not mention the adapters: the network does
    saved = json.loads((tmp_path / "network.json").read_text())["lora"]
    assert saved == {"rank": 2, "alpha": 8.0, "dropout": 0.1, "targets": ["backbone.1"]}
    again = load_network(tmp_path)
    x = torch.randn(5, 6)
    net.eval(), again.eval()
    assert torch.allclose(net(x), again(x))


def test_a_model_saved_with_only_the_lora_rank_still_loads_as_before(tmp_path):
    pytest.importorskip("peft")
    from transferkit.nn.lora import apply_lora

    net = _net()
    apply_lora(net, rank=2)
    save_network(net, tmp_path, SPEC)
    spec = json.loads((tmp_path / "network.json").read_text())
    (tmp_path / "network.json").write_text(json.dumps({**spec, "lora": {"rank": 2}}))  # an older save
    x = torch.randn(4, 6)
    assert torch.allclose(net.eval()(x), load_network(tmp_path).eval()(x))


def test_lora_trains_the_bottleneck_instead_of_freezing_a_random_layer():
    pytest.importorskip("peft")
    from transferkit.nn.lora import apply_lora

    net = _net(bottleneck=8)
    assert apply_lora(net, rank=2) == ["backbone.1"]
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert {"bottleneck.0.weight", "bottleneck.1.weight", "head.weight"} <= trainable
    assert not any(n.startswith("backbone.") and "lora_" not in n for n in trainable)
    w0 = net.bottleneck[0].weight.detach().clone()
    Trainer(net, SourceOnly(), TrainerConfig(epochs=2, batch_size=16, lr=0.05, device="cpu")).fit(*_data())
    assert not torch.equal(w0, net.bottleneck[0].weight)


def test_lora_settings_are_checked():
    pytest.importorskip("peft")
    from transferkit.nn.lora import apply_lora

    for kw, message in (({"rank": 0}, "lora_rank"), ({"rank": 2, "alpha": float("nan")}, "alpha"),
                        ({"rank": 2, "dropout": 1.5}, "dropout"),
                        ({"rank": 2, "targets": ["backbone.9"]}, "not Linear or Conv2d")):  # fmt: skip
        with pytest.raises(TransferkitError, match=message):
            apply_lora(_net(), **kw)
    net = _net()
    apply_lora(net, rank=2)
    with pytest.raises(TransferkitError, match="already has LoRA adapters"):
        apply_lora(net, rank=2)


def test_l2_sp_keeps_a_fresh_bottleneck_small_and_anchors_a_loaded_one(tmp_path):
    fresh = _net(bottleneck=8)  # built: the bottleneck is as new as the head
    reg = Regularizer(fresh, "l2-sp", alpha=1.0, beta=0.5)
    assert {n for n in reg.new} == {
        n for n, _ in fresh.named_parameters() if n.startswith(("bottleneck.", "head."))
    }
    with torch.no_grad():
        expected = 0.5 * 0.5 * sum(float((p**2).sum()) for n, p in fresh.named_parameters() if n in reg.new)
    assert float(reg(fresh).detach()) == pytest.approx(
        expected, rel=1e-6
    )  # nothing moved: only the new parts count
    save_network(fresh, tmp_path, {**SPEC, "bottleneck_dim": 8})
    loaded = load_network(tmp_path, num_classes=4)  # transferred bottleneck, new head
    reg = Regularizer(loaded, "l2-sp", alpha=1.0, beta=0.5)
    assert reg.new == {"head.weight", "head.bias"} and "bottleneck.0.weight" in reg.anchor
    assert torch.equal(reg.anchor["bottleneck.0.weight"], fresh.bottleneck[0].weight)
    explicit = Regularizer(fresh, "l2-sp", alpha=1.0, new=("head.*",))  # an explicit choice wins
    assert explicit.new == {"head.weight", "head.bias"}


def test_non_finite_learning_rate_multipliers_and_regularization_strengths_are_errors():
    for entry in ("backbone.*:nan", "backbone.*:inf"):
        with pytest.raises(TransferkitError, match="finite multiplier"):
            parameter_groups(_net(), 0.1, [entry])
    for alpha, beta in ((float("nan"), 0.1), (0.1, float("inf")), ("x", 0.1)):
        with pytest.raises(TransferkitError, match="reg_alpha and reg_beta"):
            Regularizer(_net(), "l2-sp", alpha, beta)


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"bottleneck_dim": "x"}, "bottleneck_dim"),
        ({"bottleneck_dim": -3}, "bottleneck_dim"),
        ({"head_hidden": "x"}, "head_hidden"),
        ({"options": [1]}, "options"),
        ({"options": {"hidden": "abc"}}, "cannot be built"),
        ({"lora": {"rank": "x"}}, "lora"),
        ({"lora": True}, "lora"),
    ],
)
def test_a_damaged_network_json_is_a_clear_error(tmp_path, damage, message):
    save_network(_net(), tmp_path, SPEC)
    (tmp_path / "network.json").write_text(json.dumps({**SPEC, **damage}))
    with pytest.raises(TransferkitError, match=message):
        load_network(tmp_path)


def test_load_and_save_arguments_are_checked(tmp_path):
    save_network(_net(), tmp_path / "m", SPEC)
    for k in (0, -1):
        with pytest.raises(TransferkitError, match="num_classes must be a whole number"):
            load_network(tmp_path / "m", num_classes=k)
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(TransferkitError, match="is a file"):
        save_network(_net(), tmp_path / "file", SPEC)
    assert (tmp_path / "file").read_text() == "keep me"
    with pytest.raises(TransferkitError, match="has none"):
        save_network(_net(), tmp_path / "m2", {**SPEC, "lora": {"rank": 2}})


def test_many_adapted_layers_reload_although_peft_shortens_their_names(tmp_path):
    pytest.importorskip("peft")
    from transferkit.nn.lora import apply_lora

    seed_everything(0)
    net = build_network("mlp", 3, in_shape=(6,), hidden=(4,) * 24)  # over 20 targets: PEFT keeps suffixes
    adapted = apply_lora(net, rank=1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_()
    save_network(net, tmp_path, {**SPEC, "options": {"hidden": [4] * 24}})
    assert json.loads((tmp_path / "network.json").read_text())["lora"]["targets"] == sorted(adapted)
    x = torch.randn(3, 6)
    assert torch.allclose(net.eval()(x), load_network(tmp_path).eval()(x))


def test_weights_from_another_save_beside_the_spec_are_found_at_load(tmp_path):
    # the weights and network.json are two atomic writes: a save killed between them left new weights
    # beside the previous spec, which loaded without a word when the shapes agreed
    a, b = tmp_path / "a", tmp_path / "b"
    save_network(_net(), a, SPEC)
    torch.manual_seed(1)
    other = build_network("mlp", 3, in_shape=(6,), hidden=(16,))
    save_network(other, b, SPEC)
    x = torch.randn(4, 6)
    assert torch.equal(load_network(b).eval()(x), other.eval()(x))  # a whole save loads as it was
    (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())  # a's spec, b's weights
    with pytest.raises(TransferkitError, match="is not the weights .*network.json was saved with"):
        load_network(a)
    spec = json.loads((a / "network.json").read_text())
    del spec["weights_sha256"]  # a model saved before the checksum: loads as before
    (a / "network.json").write_text(json.dumps(spec))
    assert torch.equal(load_network(a).eval()(x), other.eval()(x))
