"""Data-parallel training: 2 CPU processes (gloo) end where one process with the same global batch
ends, and a killed data-parallel run resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from transferkit.deep.dann import DANN
from transferkit.deep.source_only import SourceOnly
from transferkit.nn.model import build_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")


def _data():
    rng = np.random.default_rng(0)
    n = 128
    ys, yt = rng.integers(0, 3, n), rng.integers(0, 3, n)
    centers = rng.normal(size=(3, 6)) * 3
    X = np.vstack([centers[ys] + rng.normal(size=(n, 6)), centers[yt] + rng.normal(size=(n, 6)) + 1.0])
    return X.astype(np.float32), np.r_[ys, -np.ones(n, int)], np.r_[np.zeros(n, int), -np.ones(n, int)]


class _DANNWithoutDropout(DANN):
    """Dropout masks depend on the batch shape, which differs between 1 and 2 processes."""

    def setup(self, model):
        super().setup(model)
        for mod in self.discriminator.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0


def _trainer(method: str, epochs: int = 3):
    seed_everything(0)
    model = build_network("mlp", 3, in_shape=(6,), hidden=(16,), dropout=0.0)
    m = SourceOnly() if method == "source-only" else _DANNWithoutDropout(disc_hidden=16)
    cfg = TrainerConfig(epochs=epochs, batch_size=32, lr=0.05, seed=0, device="cpu")
    return Trainer(model, m, cfg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Killed(Exception):
    pass


def _worker(rank, world, port, method, out, ckpt, kill_after, resume):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    import torch.distributed as dist

    def kill(trainer, record):
        if kill_after and record["epoch"] == kill_after:
            raise Killed

    t = _trainer(method)
    try:
        t.fit(*_data(), checkpoint_dir=ckpt, resume=resume, callbacks=[kill])
        if rank == 0:
            torch.save({k: v.clone() for k, v in t.model.state_dict().items()}, out)
            with open(str(out) + ".json", "w") as fh:
                json.dump(t.history, fh)
    except Killed:
        pass
    finally:
        # both processes leave together: one tearing gloo down while the other still writes its files
        # aborted the process now and then ("terminate called without an active exception", in CI)
        dist.barrier()
        dist.destroy_process_group()


def _spawn(tmp_path, name, method, ckpt=None, kill_after=0, resume=False):
    out = tmp_path / f"{name}.pt"
    mp.spawn(_worker, args=(2, _free_port(), method, out, ckpt, kill_after, resume), nprocs=2, join=True)
    return out


@pytest.mark.parametrize("method", ["dann"])  # the network and the method's discriminator, both synced
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, method):
    single = _trainer(method)
    single.fit(*_data())
    out = _spawn(tmp_path, "ddp", method)
    ddp = torch.load(out, weights_only=True)
    for k, v in single.model.state_dict().items():
        assert torch.allclose(v, ddp[k], atol=1e-5), k  # float sums in another order: 1e-5
    history = json.loads((tmp_path / "ddp.pt.json").read_text())
    assert [h["step"] for h in history] == [h["step"] for h in single.history]  # 4 global steps per epoch
    assert history[-1]["loss"] == pytest.approx(single.history[-1]["loss"], rel=1e-4)


def test_a_killed_data_parallel_run_resumes_to_the_same_weights(tmp_path):
    full = torch.load(_spawn(tmp_path, "full", "source-only"), weights_only=True)
    ckpt = tmp_path / "ckpt"
    _spawn(tmp_path, "killed", "source-only", ckpt=ckpt, kill_after=1)
    assert (ckpt / "state.json").exists() and json.loads((ckpt / "state.json").read_text())["epoch"] == 1
    resumed = torch.load(
        _spawn(tmp_path, "resumed", "source-only", ckpt=ckpt, resume=True), weights_only=True
    )
    for k, v in full.items():
        assert torch.equal(v, resumed[k]), k


def test_cli_nproc_runs_under_torchrun_and_writes_once(tmp_path):
    from conftest import require_dataset

    from transferkit.cli import main

    require_dataset("mnist-usps-jda")
    argv = ["run", "--dataset", "mnist-usps-jda", "--source", "usps", "--target", "mnist", "--method",
            "deep-source-only", "--set", "epochs=1", "--preprocess", "none", "--nproc", "2", "--quiet",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((tmp_path / "result.json").read_text())
    assert rec["accuracy"] > 15 and len(rec["history"]) == 1
    assert "--nproc 2" in rec["command"]


def _scoring_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    import torch.distributed as dist

    import transferkit.progress as progress
    import transferkit.selection as selection

    calls, bars = [], []

    class ByEpoch:  # a scorer that liked epoch 2 best, then stopped the run (patience 1)
        needs_source = True

        def __call__(self, clf, X, y, sd):
            calls.append(len(clf.trainer.history) + 1)
            return {1: 0.0, 2: 1.0, 3: 0.5, 4: 2.0}[calls[-1]]

    selection.get_scorer = lambda name: ByEpoch()
    shown = progress.progress_bar
    progress.progress_bar = lambda *a, **k: bars.append(not k["disable"]) or shown(*a, **k)
    seed_everything(0)
    model = build_network("mlp", 3, in_shape=(6,), hidden=(16,), dropout=0.0)
    cfg = TrainerConfig(epochs=4, batch_size=32, lr=0.05, seed=0, device="cpu", early_stopping="source-val",
                        patience=1, progress=True)  # fmt: skip
    t = Trainer(model, SourceOnly(), cfg)
    try:
        t.fit(*_data())
        with open(f"{out}.{rank}.json", "w") as fh:
            json.dump({"calls": calls, "bars": bars, "best": t.best_epoch, "epochs": len(t.history)}, fh)
    finally:
        dist.destroy_process_group()


def test_early_stopping_scores_on_the_first_process_only_and_all_follow_it(tmp_path):
    # every process scored on its own (the same work twice; on GPUs two processes whose scores differ
    # in the last bit could keep or stop at different epochs and then wait for each other forever),
    # and every process drew a progress bar
    out = tmp_path / "scores"
    mp.spawn(_scoring_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    first, second = (json.loads(open(f"{out}.{r}.json").read()) for r in (0, 1))
    assert first["calls"] == [1, 2, 3] and second["calls"] == []
    assert first["best"] == second["best"] == 2 and first["epochs"] == second["epochs"] == 3
    assert first["bars"] == [True] and second["bars"] == [False]


def test_the_weighted_source_loss_of_the_shares_averages_to_the_global_weighted_mean(monkeypatch):
    # DDP averages the processes' gradients; with sample weights each share must divide by the global
    # batch's sum of weights (over the number of processes), not its own, or a share of light rows
    # would count as much as a share of heavy ones
    from transferkit.deep.base import weighted_cross_entropy
    from transferkit.nn import distributed as D

    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g)
    w = torch.tensor([5.0, 4.0, 6.0, 5.0, 0.1, 0.2, 0.1, 0.3])  # a heavy share and a light one
    full = weighted_cross_entropy(logits, y, w)
    shares = [slice(0, 4), slice(4, 8)]
    own = [weighted_cross_entropy(logits[s], y[s], w[s]) for s in shares]
    assert abs(float(sum(own) / 2 - full)) > 0.01  # each share's own sum: another objective
    monkeypatch.setattr(D, "global_mean_of", lambda local: w.sum() / 2)  # what all_reduce gives 2 processes
    shared = [weighted_cross_entropy(logits[s], y[s], w[s]) for s in shares]
    assert float(sum(shared) / 2) == pytest.approx(float(full), rel=1e-6)
