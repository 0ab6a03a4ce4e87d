"""The trainer and its loader under a demanding user: clipping, early stopping across a resume,
degenerate scores, bad settings, and the batches a data-parallel process receives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import Killed, kill_at

from transferkit.deep.dann import DANN
from transferkit.deep.source_only import SourceOnly
from transferkit.errors import TransferkitError
from transferkit.nn.batch import DomainLoader
from transferkit.nn.model import build_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything


def _data(n=60, d=6):
    rng = np.random.default_rng(0)
    ys = rng.integers(0, 3, n)
    centers = rng.normal(size=(3, d)) * 3
    X = np.vstack([centers[ys] + rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 1.0]).astype(np.float32)
    return X, np.r_[ys, -np.ones(n, int)], np.r_[np.zeros(n, int), -np.ones(n, int)]


def _trainer(method=None, **kw):
    seed_everything(0)
    model = build_network("mlp", 3, in_shape=(6,), hidden=(16,), dropout=0.0)
    cfg = TrainerConfig(**{"epochs": 2, "batch_size": 16, "lr": 0.05, "seed": 0, "device": "cpu", **kw})
    return Trainer(model, method or SourceOnly(), cfg)


def test_grad_clip_bounds_the_norm_over_the_methods_parameters_too():
    # DANN's discriminator is trained by the same optimizer: its gradients went unclipped
    t = _trainer(DANN(), epochs=1, grad_clip=1e-3)
    t.fit(*_data())
    params = [*t.model.parameters(), *t.method.parameters()]
    norm = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in params if p.grad is not None))
    assert norm <= 1e-3 * 1.001


def _scores(monkeypatch, by_epoch):
    """Make the early-stopping scorer return ``by_epoch[e]`` after epoch ``e`` (1-based)."""
    import transferkit.selection as selection

    class ByEpoch:
        needs_source = True  # no collapse check

        def __call__(self, clf, X, y, sd):
            return by_epoch[len(clf.trainer.history) + 1]

    monkeypatch.setattr(selection, "get_scorer", lambda name: ByEpoch())


def test_a_run_that_stopped_early_stays_stopped_when_resumed(tmp_path, monkeypatch):
    # patience 1: epoch 2 does not improve on epoch 1, so the run stops there; epoch 3 would be better.
    # A kill after epoch 2's checkpoint (here: in a callback) resumed into epoch 3 and kept it.
    _scores(monkeypatch, {1: 1.0, 2: 0.0, 3: 5.0, 4: 0.0})
    X, y, sd = _data()
    full = _trainer(epochs=4, early_stopping="source-val", patience=1)
    full.fit(X, y, sd)
    assert [h["epoch"] for h in full.history] == [1, 2] and full.best_epoch == 1

    with pytest.raises(Killed):
        _trainer(epochs=4, early_stopping="source-val", patience=1).fit(
            X, y, sd, checkpoint_dir=tmp_path, callbacks=[kill_at(2)]
        )
    resumed = _trainer(epochs=4, early_stopping="source-val", patience=1)
    resumed.fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2] and resumed.best_epoch == 1
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_a_nan_score_is_never_the_best_epoch(monkeypatch):
    # NaN > x is always false: a first epoch scored NaN stayed "best" whatever came after
    _scores(monkeypatch, {1: float("nan"), 2: 1.0, 3: 0.5})
    t = _trainer(epochs=3, early_stopping="source-val")
    t.fit(*_data())
    assert t.best_epoch == 2


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"device": "gpu"}, "device 'gpu' is not a torch device"),
        ({"momentum": -0.5}, "momentum must be in \\[0, 1\\)"),
        ({"weight_decay": -1e-3}, "weight_decay, reg_alpha and reg_beta must be >= 0"),
        ({"nesterov": True, "momentum": 0.0}, "nesterov=true needs momentum > 0"),
        ({"epochs": 2.5}, "epochs must be a whole number >= 0, got 2.5"),
        ({"steps": 2.5}, "steps must be a whole number >= 1"),
        ({"batch_size": 16.5}, "batch_size must be a whole number >= 2"),
        ({"patience": 1.5, "early_stopping": "entropy"}, "patience must be a whole number"),
        ({"lr": float("nan")}, "lr must be a finite number, got nan"),
        ({"lr": float("inf")}, "lr must be a finite number, got inf"),
        ({"amp": "no"}, "amp must be true or false, got 'no'"),
        ({"seed": 1.5}, "seed must be a whole number"),
    ],
)
def test_bad_settings_are_one_line_errors_before_training(setting, message):
    # each of these was a torch ValueError/TypeError/RuntimeError from deep inside, a NaN-loss error
    # blaming the learning rate schedule, or (batch_size=16.5, amp='no') no error at all
    with pytest.raises(TransferkitError, match=message):
        _trainer(**setting).fit(*_data())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU takes device='cuda'")
def test_a_cuda_device_without_a_gpu_is_a_clear_error():
    with pytest.raises(TransferkitError, match="this machine has no CUDA GPU"):
        _trainer(device="cuda")


def _images(n_source=20, n_target=12, revealed=0):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n_source + n_target, 1, 4, 4)).astype(np.float32)
    sd = np.r_[np.zeros(n_source, int), -np.ones(n_target, int)]
    y = np.r_[rng.integers(0, 3, n_source), -np.ones(n_target, int)]
    y[n_source : n_source + revealed] = rng.integers(0, 3, revealed)
    return X, y, sd


def _batches(world, rank, revealed=0):
    """The batches of one epoch of process ``rank`` of ``world``, from the same global RNG state."""
    from transferkit.nn.augment import build_augmentation

    aug = build_augmentation("crop+jitter")
    transforms = {"source": aug, "target": aug}
    loader = DomainLoader(
        *_images(revealed=revealed), batch_size=8, seed=0, transforms=transforms, shard=(rank, world)
    )
    torch.manual_seed(3)
    return list(loader.epoch(0))


def test_data_parallel_shares_are_the_single_process_batches_augmented_alike():
    # each process augmented its own share with the same random draws: row 0 of every process got
    # the same crop, and the union differed from the single-process batch
    single = _batches(1, 0, revealed=3)
    shards = [_batches(2, r, revealed=3) for r in (0, 1)]
    assert len(single) == len(shards[0]) == len(shards[1]) == 2
    for one, a, b in zip(single, *shards):
        for name in ("x_source", "y_source", "x_target"):
            merged = torch.stack([getattr(a, name), getattr(b, name)], 1).flatten(0, 1)
            assert torch.equal(merged, getattr(one, name)), name
        # three labelled rows do not split evenly over two processes: each takes all three, so that
        # the mean of the two processes' mean losses is the single-process mean (not 2 rows vs 1)
        for part in (a, b):
            assert torch.equal(part.x_labelled, one.x_labelled)
            assert torch.equal(part.y_labelled, one.y_labelled)


def test_a_data_parallel_batch_needs_two_rows_per_process():
    with pytest.raises(TransferkitError, match="at least 2 rows for each"):
        DomainLoader(*_images(), batch_size=2, shard=(0, 2))


def test_without_drop_last_every_source_row_is_seen_once_and_the_last_batch_is_partial():
    # the last batch was filled up from a second shuffle: some rows twice in one epoch
    X, y, sd = _images(n_source=20)
    loader = DomainLoader(X, y, sd, batch_size=8, drop_last=False)
    batches = list(loader.epoch(0))
    assert len(loader) == len(batches) == 3
    assert [len(b.x_source) for b in batches] == [8, 8, 4]
    rows = torch.cat([b.x_source for b in batches]).flatten(1)
    assert len(torch.unique(rows, dim=0)) == 20


def test_with_drop_last_each_epoch_reshuffles_and_sees_distinct_rows():
    X, y, sd = _images(n_source=20)
    loader = DomainLoader(X, y, sd, batch_size=8)
    e0, e1 = (torch.cat([b.x_source for b in loader.epoch(e)]).flatten(1) for e in (0, 1))
    assert len(e0) == 16 and len(torch.unique(e0, dim=0)) == 16  # no row twice; 4 sit out
    assert not torch.equal(e0, e1)


def test_resume_without_a_checkpoint_folder_is_an_error():
    # it used to train from the start without a word, as if there were nothing to resume
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)).astype(np.float32)
    y, sd = np.r_[np.arange(10) % 2, -np.ones(10, int)], np.r_[np.zeros(10, int), -np.ones(10, int)]
    trainer = Trainer(
        build_network("mlp", 2, in_shape=(3,)), SourceOnly(), TrainerConfig(epochs=1, batch_size=4)
    )
    with pytest.raises(TransferkitError, match="pass checkpoint_dir"):
        trainer.fit(X, y, sd, resume=True)
