"""Data-parallel training on ``torch.distributed``: the one trainer, on several processes.

Launch with ``torchrun --nproc_per_node N -m transferkit.cli run ...`` or simply
``transferkit run ... --nproc N`` (which calls torchrun for you). Each process reads the usual
environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...); :func:`init_from_env` joins the process
group with ``gloo`` on CPU and ``nccl`` on GPU. The trainer then

* gives each process its share of every global batch (``batch_size`` is the global batch, as in a
  single-process run; see :class:`~transferkit.nn.batch.DomainLoader`), source and target alike;
* wraps the network *and* the method's own modules (a discriminator, ...) in one
  ``DistributedDataParallel`` module whose forward is the method's loss, so every deep method runs
  unchanged, however many forward passes its loss makes;
* averages the logged metrics over processes; only the first process writes checkpoints and results,
  and only it runs the early-stopping scorer (every process follows its verdict).

``sync_bn=true`` converts BatchNorm layers to ``SyncBatchNorm`` (statistics over the global batch).

What is and is not the single-process run: each process's loss is computed on its share of the
global batch, and DDP averages the gradients. For a loss that is a mean over rows (cross-entropy,
a domain discriminator's loss) that average is the gradient of the global batch's mean, so N
processes end where one process ends (up to the order of float sums; dropout masks, drawn per
share, differ). A term computed from a whole batch is computed per share instead: BatchNorm's
statistics (without ``sync_bn``), MMD (DAN), CORAL, MCC's class confusion, AdaMatch's batch-mean
alignment. Such runs are sound but are not the single-process run. The weighted mean of the source
loss under ``sample_weight``/``balance_domains`` divides by the global batch's sum of weights
(:func:`global_mean_of`), so it is the single-process one.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "LossModule", "barrier", "broadcast_values", "global_mean_of", "init_from_env", "is_main", "reduce_mean",
    "world",
]  # fmt: skip


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def init_from_env() -> bool:
    """Join the process group described by torchrun's environment; False when there is none."""
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return True


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over processes (the same dict on every process)."""
    if world()[1] == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    t = (t / world()[1]).cpu()
    return {k: float(v) for k, v in zip(keys, t)}


def broadcast_values(values: list[float]) -> list[float]:
    """The first process's ``values`` on every process (as they are outside a process group)."""
    if world()[1] == 1:
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, 0)
    return [float(v) for v in t.cpu()]


def global_mean_of(local: torch.Tensor) -> torch.Tensor:
    """The mean over processes of ``local`` (a scalar, no gradient): the share of a global-batch sum
    that the average of the processes' gradients expects of each process. ``local`` as it is
    outside a process group."""
    if world()[1] == 1:
        return local
    t = local.detach().clone()
    dist.all_reduce(t)
    return t / world()[1]


class LossModule(nn.Module):
    """The network and the method as one module whose forward is the method's loss.

    ``DistributedDataParallel`` synchronizes the gradients of the parameters used in its forward;
    making the whole loss that forward covers every pass over the network and every module of the
    method (a discriminator's gradients are averaged too).
    """

    def __init__(self, model: nn.Module, method: nn.Module):
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, batch, progress: float):
        losses = self.method.loss(self.model, batch, progress)
        return losses.total, losses.parts
