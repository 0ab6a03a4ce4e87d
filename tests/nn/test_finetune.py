"""Fine-tuning: fixed and updatable parameters, per-group learning rates, gradual unfreezing, L2-SP,
early stopping without target labels, exact step counts, per-domain augmentation, saved models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import Killed, kill_at

from transferkit.deep.fine_tune import FineTune
from transferkit.deep.source_only import SourceOnly
from transferkit.errors import TransferkitError
from transferkit.nn.augment import build_augmentation
from transferkit.nn.finetune import Regularizer, blocks, freeze, parameter_groups
from transferkit.nn.model import build_network
from transferkit.nn.saved_model import load_network, save_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything


def _data(seed=0, n=120, d=6, reveal=0):
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 3, n), rng.integers(0, 3, n)
    centers = rng.normal(size=(3, d)) * 3
    X = np.vstack([centers[ys] + rng.normal(size=(n, d)), centers[yt] + rng.normal(size=(n, d)) + 1.0])
    y = np.r_[ys, -np.ones(n, int)]
    y[n : n + reveal] = yt[:reveal]
    return X.astype(np.float32), y, np.r_[np.zeros(n, int), -np.ones(n, int)], yt


def _net(seed=0, bottleneck=8):
    seed_everything(seed)
    return build_network("mlp", 3, in_shape=(6,), hidden=(16,), bottleneck_dim=bottleneck)


def _fit(model, method=None, **kw):
    cfg = {"epochs": 3, "batch_size": 16, "lr": 0.05, "device": "cpu", **kw}
    t = Trainer(model, method or SourceOnly(), TrainerConfig(**cfg))
    X, y, sd, _ = _data(reveal=9 if isinstance(method, FineTune) else 0)
    t.fit(X, y, sd)
    return t


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_frozen_trunk_is_linear_probing_weights_and_batchnorm_statistics_stay():
    model = _net()
    before = _state(model)
    _fit(model, freeze=("trunk",))
    after = _state(model)
    trunk = [k for k in before if k.startswith(("backbone.", "bottleneck."))]
    assert any("running_mean" in k for k in trunk)  # the bottleneck's BatchNorm statistics
    assert all(torch.equal(before[k], after[k]) for k in trunk)
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_a_frozen_trunk_computes_its_features_without_dropout_while_the_head_trains():
    # a linear probe fitted on features with dropout (LeNet's trunk drops half of them) was scored
    # on clean ones; a trunk that trains keeps its dropout
    def run(freeze):
        seed_everything(0)
        model = build_network("mlp", 3, in_shape=(6,), hidden=(16,), dropout=0.5)
        seen = []

        def hook(module, inputs, output):
            if torch.is_grad_enabled():  # a training step (scoring and prediction run without gradients)
                seen.append((module.training, inputs[0].detach(), output.detach()))

        model.backbone.register_forward_hook(hook)
        _fit(model, freeze=freeze, epochs=1)
        return model, seen

    model, seen = run(("trunk",))
    assert seen and not any(training for training, _, _ in seen)
    model.backbone.eval()
    with torch.no_grad():
        assert all(torch.equal(model.backbone(x), out) for _, x, out in seen[:5])
    _, trained = run(())
    assert trained and all(training for training, _, _ in trained)


def test_only_modules_whose_parameters_are_all_fixed_leave_training_mode():
    from transferkit.nn.finetune import eval_frozen_modules

    model = build_network("mlp", 3, in_shape=(6,), hidden=(16, 16), dropout=0.5)
    for p in model.backbone[1].parameters():  # the first linear layer only
        p.requires_grad_(False)
    model.train()
    eval_frozen_modules(model)
    assert not model.backbone[1].training
    assert model.backbone.training and model.backbone[3].training  # its dropout regularizes what trains
    assert model.head.training


def test_freeze_pattern_that_matches_nothing_names_the_parameters():
    with pytest.raises(TransferkitError, match="matches no parameter.*backbone"):
        freeze(_net(), ["encoder.*"])


def test_trainable_depth_keeps_only_the_top_blocks():
    model = _net()
    names = [n for b in blocks(model) for n in b]
    assert names[-2:] == ["head.weight", "head.bias"] and names[0].startswith("backbone.")
    before = _state(model)
    _fit(model, trainable_depth=2)  # bottleneck and head
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))
    assert not torch.equal(before["bottleneck.0.weight"], after["bottleneck.0.weight"])


def test_gradual_unfreezing_opens_one_block_per_period_and_resumes_exactly(tmp_path):
    model = _net()
    before = _state(model)
    seen = []
    t = Trainer(model, SourceOnly(), TrainerConfig(epochs=3, batch_size=16, lr=0.05, device="cpu",
                                                   unfreeze_every=1))  # fmt: skip
    X, y, sd, _ = _data()
    t.fit(X, y, sd, callbacks=[lambda tr, rec: seen.append(_state(tr.model))])
    first = seen[0]
    assert torch.equal(first["bottleneck.0.weight"], before["bottleneck.0.weight"])  # epoch 1: head only
    assert not torch.equal(first["head.weight"], before["head.weight"])
    assert not torch.equal(seen[1]["bottleneck.0.weight"], first["bottleneck.0.weight"])  # epoch 2
    assert torch.equal(seen[1]["backbone.1.weight"], before["backbone.1.weight"])
    assert not torch.equal(seen[2]["backbone.1.weight"], before["backbone.1.weight"])  # epoch 3

    cfg = TrainerConfig(epochs=3, batch_size=16, lr=0.05, device="cpu", unfreeze_every=1)
    with pytest.raises(Killed):
        Trainer(_net(), SourceOnly(), cfg).fit(X, y, sd, checkpoint_dir=tmp_path, callbacks=[kill_at(1)])
    resumed = Trainer(_net(), SourceOnly(), cfg)
    resumed.fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)
    assert all(torch.equal(v, seen[2][k]) for k, v in _state(resumed.model).items())


def test_learning_rate_multipliers_per_pattern():
    model = _net()
    groups = parameter_groups(model, 0.1, ["backbone.*:0.1", "head.*:2"])
    lrs = {g["lr_mult"]: (g["lr"], len(g["params"])) for g in groups}
    assert lrs[0.1][0] == pytest.approx(0.01) and lrs[2.0][0] == pytest.approx(0.2)
    assert lrs[1.0][1] == len(list(model.bottleneck.parameters()))
    with pytest.raises(TransferkitError, match="PATTERN:MULTIPLIER"):
        parameter_groups(model, 0.1, ["backbone.*"])
    model2 = _net()
    before = _state(model2)
    _fit(model2, lr_mult=("backbone.*:0",))  # multiplier 0: the backbone is fixed
    assert all(torch.equal(before[k], v) for k, v in _state(model2).items() if k.startswith("backbone."))


def test_l2_sp_against_a_naive_sum_and_it_pulls_towards_the_start():
    model = _net()
    reg = Regularizer(model, "l2-sp", alpha=0.3, beta=0.05)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    start = dict(reg.anchor)
    naive = 0.0
    for name, p in ((n, q.detach()) for n, q in model.named_parameters()):
        if name.startswith(("head.", "bottleneck.")):  # a built network's fresh layers: kept small
            naive += 0.05 / 2 * float((p**2).sum())
        else:
            naive += 0.3 / 2 * float(((p - start[name]) ** 2).sum())
    assert float(reg(model)) == pytest.approx(naive, rel=1e-6)
    l1 = Regularizer(model, "l1", alpha=0.2)
    assert float(l1(model)) == pytest.approx(
        0.2 * sum(float(p.detach().abs().sum()) for p in model.parameters()), rel=1e-6
    )
    # strong L2-SP keeps the transferred weights near their start; none lets them move
    drift = {}
    for reg_kind, alpha in (("none", 0.0), ("l2-sp", 50.0)):
        m = _net()
        w0 = m.backbone[1].weight.detach().clone()
        _fit(m, reg=reg_kind, reg_alpha=alpha, epochs=5)
        drift[reg_kind] = float((m.backbone[1].weight - w0).norm())
    assert drift["l2-sp"] < 0.3 * drift["none"]


def test_steps_counts_exact_optimizer_steps():
    t = _fit(_net(), steps=10, epochs=1)
    assert t.history[-1]["step"] == 10 and len(t.history) == 2  # 7 steps per epoch at 120 rows / 16


def test_early_stopping_restores_the_best_epoch_and_never_reads_target_labels():
    X, y, sd, yt = _data()
    scored = []
    from transferkit import selection

    original = selection.EntropyScorer._score

    def spy(self, estimator, X_, y_, sd_, src, tgt):
        scored.append(np.asarray(y_)[np.asarray(sd_) < 0])
        return original(self, estimator, X_, y_, sd_, src, tgt)

    selection.EntropyScorer._score = spy
    try:
        t = Trainer(_net(), SourceOnly(), TrainerConfig(epochs=4, batch_size=16, lr=0.05, device="cpu",
                                                        early_stopping="entropy"))  # fmt: skip
        t.fit(X, y, sd)
    finally:
        selection.EntropyScorer._score = original
    assert scored and all((s == -1).all() for s in scored)
    scores = [h["select_entropy"] for h in t.history]
    assert t.best_epoch == int(np.argmax(scores)) + 1
    t2 = Trainer(_net(), SourceOnly(), TrainerConfig(epochs=6, batch_size=16, lr=0.05, device="cpu",
                                                     early_stopping="source-val", patience=1))  # fmt: skip
    t2.fit(X, y, sd)
    assert len(t2.history) <= 6 and "select_source-val" in t2.history[0]


def test_fine_tune_trains_on_the_revealed_target_rows_only():
    X, y, sd, yt = _data(reveal=9)
    seen = []

    class Spy(FineTune):
        def loss(self, model, batch, progress):
            seen.append(batch.y_labelled.clone())
            return super().loss(model, batch, progress)

    t = Trainer(_net(), Spy(), TrainerConfig(epochs=2, batch_size=4, lr=0.05, device="cpu"))
    t.fit(X, y, sd)
    labelled = torch.cat(seen)
    assert len(seen) == 4 and set(labelled.tolist()) <= set(yt[:9].tolist())  # 9 rows // 4 = 2 per epoch
    with pytest.raises(TransferkitError, match="--target-labels"):
        Trainer(_net(), FineTune(), TrainerConfig(epochs=1, device="cpu")).fit(*_data()[:3])


def test_augmentation_is_seeded_per_image_and_refuses_vectors():
    x = torch.rand(8, 3, 32, 32)
    aug = build_augmentation("crop+flip")
    torch.manual_seed(0)
    a = aug(x)
    torch.manual_seed(0)
    assert torch.equal(a, aug(x)) and a.shape == x.shape and not torch.equal(a, x)
    assert build_augmentation("none") is None and build_augmentation("center") is None
    with pytest.raises(TransferkitError, match="image batches"):
        aug(torch.rand(4, 6))
    with pytest.raises(TransferkitError, match="augmentation step"):
        build_augmentation("rotate")


def test_randconv_augmentation_is_a_random_filter_of_the_batch_or_the_batch_itself():
    from transferkit.dg.randconv import random_convolution

    x = torch.rand(4, 3, 32, 32)
    aug = build_augmentation("randconv")
    views = []
    for seed in range(12):
        torch.manual_seed(seed)
        view = aug(x)
        torch.manual_seed(seed)  # the same draws as the RandConv method's own views
        assert torch.equal(view, random_convolution(x, (1, 3, 5, 7), identity_prob=0.5))
        views.append(view)
    same = [torch.equal(v, x) for v in views]
    assert any(same) and not all(same)  # the batch as it is about half of the time
    assert all(v.shape == x.shape and torch.isfinite(v).all() for v in views)
    assert build_augmentation("randconv+crop") is not None


def test_saved_network_round_trips_and_gets_a_new_head(tmp_path):
    net = _net()
    spec = {"backbone": "mlp", "num_classes": 3, "in_shape": [6], "bottleneck_dim": 8,
            "options": {"hidden": [16]}}  # fmt: skip
    save_network(net, tmp_path, spec)
    again = load_network(tmp_path)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in net.state_dict().items())
    five = load_network(tmp_path, num_classes=5)
    assert five.head.out_features == 5 and torch.equal(five.backbone[1].weight, net.backbone[1].weight)
    assert json.loads((tmp_path / "network.json").read_text())["backbone"] == "mlp"
    with pytest.raises(TransferkitError, match="no saved model"):
        load_network(tmp_path / "missing")


def test_cli_source_model_then_fine_tuned_with_a_frozen_trunk(tmp_path):
    from conftest import require_dataset
    from safetensors.torch import load_file

    from transferkit.cli import main

    require_dataset("mnist-usps-jda")
    base = ["run", "--dataset", "mnist-usps-jda", "--source", "usps", "--target", "mnist", "--quiet"]
    src = tmp_path / "source"
    assert main(base + ["--method", "deep-source-only", "--out", str(src)]) == 0
    source_acc = json.loads((src / "result.json").read_text())["accuracy"]
    view = np.load(src / "embedding.npz")  # the report's 2-D view: inputs before, network features after
    assert view["before"].shape == view["after"].shape == (len(view["domain"]), 2)
    ft = tmp_path / "ft"
    argv = base + ["--method", "fine-tune", "--target-labels", "10", "--set", f"init={src / 'model'}",
                   "--set", "freeze=trunk", "--set", "epochs=30", "--out", str(ft)]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((ft / "result.json").read_text())
    a, b = load_file(src / "model" / "model.safetensors"), load_file(ft / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("backbone."))
    assert not torch.equal(a["head.weight"], b["head.weight"])
    assert rec["n_target_labels_revealed"] == 100 and rec["accuracy"] > source_acc


def test_lora_adapters_train_alone_and_survive_saving(tmp_path):
    pytest.importorskip("peft")
    from transferkit.nn.lora import apply_lora

    model = _net(bottleneck=None)
    before = _state(model)
    adapted = apply_lora(model, rank=2)
    assert adapted == ["backbone.1"]  # the trunk's one Linear layer
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"backbone.1.lora_A.default.weight", "backbone.1.lora_B.default.weight",
                         "head.weight", "head.bias"}  # fmt: skip
    _fit(model)
    after = _state(model)
    assert torch.equal(after["backbone.1.base_layer.weight"], before["backbone.1.weight"])
    assert not torch.equal(
        after["backbone.1.lora_B.default.weight"], torch.zeros_like(after["backbone.1.lora_B.default.weight"])
    )
    spec = {
        "backbone": "mlp",
        "num_classes": 3,
        "in_shape": [6],
        "options": {"hidden": [16]},
        "lora": {"rank": 2},
    }
    save_network(model, tmp_path, spec)
    again = load_network(tmp_path)
    x = torch.randn(5, 6)
    model.eval(), again.eval()
    assert torch.allclose(model(x), again(x))


def test_mlp_head_on_a_saved_trunk_and_lora_on_a_torchvision_network(tmp_path):
    net = _net()
    spec = {
        "backbone": "mlp",
        "num_classes": 3,
        "in_shape": [6],
        "bottleneck_dim": 8,
        "options": {"hidden": [16]},
    }
    save_network(net, tmp_path, spec)
    probe = load_network(tmp_path, new_head=True, head_hidden=32)  # linear probing with an MLP head
    assert isinstance(probe.head, torch.nn.Sequential) and probe.head[0].out_features == 32
    assert torch.equal(probe.backbone[1].weight, net.backbone[1].weight)
    before = _state(probe)
    _fit(probe, freeze=("trunk",))
    assert all(torch.equal(before[k], v) for k, v in _state(probe).items() if not k.startswith("head."))
    pytest.importorskip("peft")
    from transferkit.nn.lora import apply_lora

    resnet = build_network("resnet18", 10, in_shape=(3, 32, 32))
    adapted = apply_lora(resnet, rank=2)
    assert "backbone.layer1.0.conv1" in ",".join(adapted)
    trainable = [n for n, p in resnet.named_parameters() if p.requires_grad]
    assert all("lora_" in n or n.startswith("head.") for n in trainable)
    assert resnet(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_lora_on_a_timm_network():
    pytest.importorskip("peft")
    pytest.importorskip("timm")
    from transferkit.nn.lora import apply_lora

    net = build_network("timm:resnet18", 10, in_shape=(3, 32, 32))
    assert apply_lora(net, rank=2)
    assert all("lora_" in n or n.startswith("head.") for n, p in net.named_parameters() if p.requires_grad)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_rows_that_do_not_line_up_are_a_clear_error():
    X, y, sd, _ = _data()
    t = Trainer(_net(), SourceOnly(), TrainerConfig(epochs=1, device="cpu"))
    with pytest.raises(TransferkitError, match="X has 240 rows but y has 239 labels"):
        t.fit(X, y[:-1], sd)
    with pytest.raises(TransferkitError, match="sample_domain must hold one integer per row \\(240"):
        t.fit(X, y, sd[:-1])
    with pytest.raises(TransferkitError, match="non-numeric values"):
        t.fit(np.array([["a"] * 6] * len(y)), y, sd)
