"""Every registered deep method, on CPU with a toy network: a finite loss whose gradients reach the
trunk, a state_dict that round-trips, no unrevealed target label read, and a run through the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from transferkit import registry
from transferkit.errors import TransferkitError
from transferkit.nn.batch import DABatch
from transferkit.nn.model import build_network
from transferkit.nn.trainer import seed_everything

DEEP = [m for m in registry.list_methods() if registry.entry("method", m).role == "deep"]


def _images(name) -> bool:
    return bool(getattr(registry.entry("method", name).load(), "needs_images", False))


def _batch(seed=0, revealed=False, images=False):
    """Eight source and eight target rows of 6 features; as (1, 2, 3) images for the methods that
    filter images (the toy MLP flattens them back)."""
    g = torch.Generator().manual_seed(seed)
    y_t = torch.full((8,), -1) if revealed else None
    if revealed:
        y_t[:3] = torch.tensor([0, 1, 2])
    shape = (8, 1, 2, 3) if images else (8, 6)
    xs, ys = torch.randn(*shape, generator=g), torch.randint(0, 3, (8,), generator=g)
    xt = torch.randn(*shape, generator=g) + 1
    # the loader's stream of revealed target rows
    xl, yl = (xt[:3], y_t[:3]) if revealed else (None, None)
    return DABatch(xs, ys, xt, y_t, xl, yl)


def _setup(name, seed=0):
    seed_everything(seed)
    model = build_network("mlp", 3, in_shape=(6,), hidden=(16,))
    method = registry.build("method", name)
    method.setup(model)
    return model, method


def _needs_labels(name) -> bool:
    return bool(getattr(registry.entry("method", name).load(), "needs_target_labels", False))


@pytest.mark.parametrize("name", DEEP)
def test_one_step_is_finite_and_reaches_the_trunk(name):
    model, method = _setup(name)
    needs = _needs_labels(name)
    losses = method.loss(model, _batch(revealed=needs, images=_images(name)), progress=0.5)
    assert torch.isfinite(losses.total) and set(losses.parts) & {"source_ce", "target_ce"}
    losses.total.backward()
    first = next(model.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("name", DEEP)
def test_state_dict_round_trips_and_seeding_fixes_the_loss(name):
    model, method = _setup(name)
    batch = _batch(revealed=_needs_labels(name), images=_images(name))
    a = float(method.loss(model, batch, 0.3).total.detach())
    model2, method2 = _setup(name, seed=1)
    model2.load_state_dict(model.state_dict())
    method2.load_state_dict(method.state_dict())
    model.eval(), method.eval(), model2.eval(), method2.eval()

    def loss(method, model):  # the same draws for the methods that draw (augmentations, mixing)
        torch.manual_seed(123)
        return float(method.loss(model, batch, 0.3).total.detach())

    assert loss(method, model) == loss(method2, model2)
    model3, method3 = _setup(name)
    assert float(method3.loss(model3, batch, 0.3).total) == a


@pytest.mark.parametrize("name", DEEP)
def test_revealed_target_labels_add_a_term_and_unrevealed_ones_do_not_exist(name):
    model, method = _setup(name)
    if _needs_labels(name):  # nothing to learn from without revealed labels: a clear error
        with pytest.raises(TransferkitError, match="target-labels"):
            method.loss(model, _batch(images=_images(name)), 0.5)
    else:  # y_target is None: nothing read
        assert "target_ce" not in method.loss(model, _batch(images=_images(name)), 0.5).parts
    assert "target_ce" in method.loss(model, _batch(revealed=True, images=_images(name)), 0.5).parts


def test_cli_runs_a_deep_method_with_trainer_settings(tmp_path, capsys):
    from conftest import require_dataset

    from transferkit.cli import main

    require_dataset("mnist-usps-jda")
    argv = ["run", "--dataset", "mnist-usps-jda", "--source", "usps", "--target", "mnist", "--method", "dann",
            "--set", "epochs=2", "--set", "lr=0.05", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((tmp_path / "result.json").read_text())
    assert rec["config"]["trainer"]["epochs"] == 2 and rec["config"]["trainer"]["lr"] == 0.05
    assert len(rec["history"]) == 2 and rec["accuracy"] > 20
    assert main(["run", "--dataset", "mnist-usps-jda", "--source", "usps", "--target", "mnist",
                 "--method", "dann", "--set", "epoch=2"]) == 2  # fmt: skip
    assert "did you mean 'epochs'" in capsys.readouterr().err.lower()


def test_run_select_picks_a_deep_setting_with_a_label_free_scorer(tmp_path):
    from conftest import require_dataset

    from transferkit.cli import main

    require_dataset("mnist-usps-jda")
    argv = ["run", "--dataset", "mnist-usps-jda", "--source", "usps", "--target", "mnist", "--method", "dann",
            "--set", "epochs=1", "--select", "entropy", "--quiet", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((tmp_path / "result.json").read_text())
    assert rec["selection"] == "select:entropy"
    assert rec["config"]["method"]["params"]["weight"] in (0.1, 0.3, 1.0)
