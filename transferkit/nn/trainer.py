"""THE training loop: every deep method is a loss trained by this one trainer.

Epochs, the optimizer and its schedule, regularizers, seeding, the device, evaluation, the metrics
history, checkpoints and resuming live here and nowhere else. A method only says what its loss is
(:class:`~transferkit.deep.base.DeepMethod`).

Guarantees, each tested: two runs with the same seed end with identical weights on CPU; a run killed
after any epoch and resumed from its checkpoint ends with exactly the weights of an uninterrupted
run; a non-finite loss stops the run with an error naming the step and leaves the last good
checkpoint untouched; no target label is read unless it was revealed (few-shot) or the evaluation
set is marked as the oracle's.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from transferkit.errors import TransferkitError
from transferkit.nn.batch import DomainLoader
from transferkit.nn.checkpoint import STATE, load_checkpoint, save_checkpoint

__all__ = ["Trainer", "TrainerConfig", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (call before building the model, so its initial weights are fixed)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainerConfig:
    """How to train. ``schedule='dann'`` is DANN's annealing ``lr / (1 + 10 p) ** 0.75``."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Literal["constant", "cosine", "dann"] = "constant"
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = False


def _factor(schedule: str, progress: float) -> float:
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "dann":
        return (1.0 + 10.0 * progress) ** -0.75
    raise TransferkitError(f"unknown schedule {schedule!r}; use constant, cosine or dann.")


class Trainer:
    """Train ``model`` with ``method``'s loss (+ ``regularizers``, each ``reg(model) -> tensor``)."""

    def __init__(
        self, model, method, config: TrainerConfig | None = None, regularizers: Sequence[Callable] = ()
    ):
        self.model = model
        self.method = method
        self.config = config or TrainerConfig()
        self.regularizers = list(regularizers)
        dev = self.config.device
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if dev == "auto" else dev)
        self.history: list[dict] = []

    def _optimizer(self):
        c = self.config
        params = [
            p for p in list(self.model.parameters()) + list(self.method.parameters()) if p.requires_grad
        ]
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay,
                                   nesterov=c.nesterov)  # fmt: skip
        if c.optimizer in ("adam", "adamw"):
            cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
            return cls(params, lr=c.lr, weight_decay=c.weight_decay)
        raise TransferkitError(f"unknown optimizer {c.optimizer!r}; use sgd, adam or adamw.")

    def fit(
        self, X, y, sample_domain, *, eval_sets: dict | None = None, checkpoint_dir=None,
        resume: bool = False, callbacks: Sequence[Callable] = (),
    ) -> list[dict]:  # fmt: skip
        """Train; return the per-epoch history. ``eval_sets``: name -> (X, y) scored after every epoch.

        ``y`` must hold -1 on every target row whose label was not deliberately revealed.
        ``callbacks`` are called as ``cb(trainer, epoch_record)`` after each epoch's checkpoint.
        """
        c = self.config
        loader = DomainLoader(X, y, sample_domain, batch_size=c.batch_size, seed=c.seed)
        seed_everything(c.seed)
        self.method.setup(self.model)
        self.model.to(self.device)
        self.method.to(self.device)
        optimizer = self._optimizer()
        total = max(1, c.epochs * len(loader))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _factor(c.schedule, step / total)
        )
        start_epoch, step = 0, 0
        if resume and checkpoint_dir is not None and (Path(checkpoint_dir) / STATE).exists():
            state = load_checkpoint(checkpoint_dir, model=self.model, method=self.method, optimizer=optimizer,
                                    scheduler=scheduler)  # fmt: skip
            start_epoch, step, self.history = state["epoch"], state["step"], state["history"]
        from transferkit.progress import progress_bar

        bar = progress_bar(range(start_epoch, c.epochs), desc="epochs", disable=not c.progress)
        for epoch in bar:
            self.model.train()
            self.method.train()
            started = time.perf_counter()
            sums: dict[str, torch.Tensor] = {}
            n_batches = 0
            for batch in loader.epoch(epoch):
                batch = batch.to(self.device)
                losses = self.method.loss(self.model, batch, step / total)
                loss = losses.total + sum(
                    (reg(self.model) for reg in self.regularizers), torch.zeros((), device=self.device)
                )
                if not torch.isfinite(loss):
                    raise TransferkitError(
                        f"the loss became {float(loss.detach())} at step {step} (epoch {epoch + 1}); the run "
                        "is stopped and the last good checkpoint kept. Lower the learning rate or clip "
                        "gradients (grad_clip)."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if c.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                n_batches += 1
                for k, v in {"loss": loss, **losses.parts}.items():
                    sums[k] = sums.get(k, 0.0) + v.detach()
            record = {"epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                      **{k: float(v) / max(1, n_batches) for k, v in sums.items()},
                      "seconds": round(time.perf_counter() - started, 4)}  # fmt: skip
            for name, (Xe, ye) in (eval_sets or {}).items():
                record[f"{name}_acc"] = float(np.mean(self.predict(Xe) == np.asarray(ye)))
            self.history.append(record)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix({k: round(v, 4) for k, v in record.items() if k.endswith(("loss", "_acc"))})
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, model=self.model, method=self.method, optimizer=optimizer,
                                scheduler=scheduler, state={"epoch": epoch + 1, "step": step,
                                "history": self.history, "config": asdict(c)})  # fmt: skip
            for cb in callbacks:
                cb(self, record)
        return self.history

    @torch.no_grad()
    def predict_proba(self, X, batch_size: int = 512) -> np.ndarray:
        self.model.eval()
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        out = [
            torch.softmax(self.model(X[i : i + batch_size].to(self.device)), 1).cpu()
            for i in range(0, len(X), batch_size)
        ]
        return torch.cat(out).numpy()

    def predict(self, X, batch_size: int = 512) -> np.ndarray:
        return self.predict_proba(X, batch_size).argmax(1)

    @torch.no_grad()
    def features(self, X, batch_size: int = 512) -> np.ndarray:
        self.model.eval()
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        return torch.cat([self.model.features(X[i : i + batch_size].to(self.device)).cpu()
                          for i in range(0, len(X), batch_size)]).numpy()  # fmt: skip
