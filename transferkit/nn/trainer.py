"""THE training loop: every deep method is a loss trained by this one trainer.

Epochs, the optimizer and its schedule, regularizers, seeding, the device, evaluation, the metrics
history, checkpoints and resuming live here and nowhere else. A method only says what its loss is
(:class:`~transferkit.deep.base.DeepMethod`), and may look at the weights after every step and have
the last word when training ends (``after_step``, ``finish``: weight averaging, :mod:`transferkit.dg.swa`).
A run that ends with its source cross-entropy at chance level gets a warning, and so does one whose
predictions on the unlabelled target rows collapse onto one class; both signs need no target label.

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
from transferkit.selection import target_collapse

__all__ = ["NonFiniteLossError", "Trainer", "TrainerClassifier", "TrainerConfig", "seed_everything"]

BEST = "best.safetensors"


class NonFiniteLossError(TransferkitError):
    """The loss became NaN or infinite: the run stopped (callers may treat the setting as failed)."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (call before building the model, so its initial weights are fixed)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainerConfig:
    """How to train. Every field can be set from the command line with ``--set name=value``.

    Length: ``epochs`` passes, or exactly ``steps`` optimizer steps when given; ``min_steps`` adds
    whole passes until at least that many optimizer steps are taken (a small data set has few
    batches per pass: ten passes over 157 rows in batches of 64, the last partial batch dropped, are 20
    steps, too few to fit even the source).
    Optimizer: ``sgd`` (``momentum``, ``nesterov``), ``adam`` or ``adamw``; ``schedule`` ``constant``,
    ``cosine`` or ``dann`` (DANN's annealing ``lr / (1 + 10 p) ** 0.75``).

    Fine-tuning (:mod:`transferkit.nn.finetune`): ``freeze`` fixes parameters by pattern
    (``trunk`` = linear probing), ``trainable_depth`` keeps only the last N blocks trainable,
    ``unfreeze_every`` unfreezes one more block from the top every N epochs, ``lr_mult`` scales the
    learning rate per pattern (``backbone.*:0.1``), ``reg`` adds ``l2-sp`` (towards the starting
    weights; ``reg_alpha`` on them, ``reg_beta`` on the new parts: the head, and a bottleneck built
    rather than loaded), ``l2`` or ``l1``. A regularizer
    replaces weight decay (it is switched off when ``reg`` is set).

    ``augment_source``/``augment_target``: per-domain augmentation (:mod:`transferkit.nn.augment`).

    Early stopping: ``early_stopping`` names a label-free scorer (:mod:`transferkit.selection`:
    ``source-val`` on a held-out ``val_fraction`` of the source, ``entropy``, ``snd``, ``mixval``,
    ``iwcv``, ``dev``) evaluated after every epoch; the best epoch's weights are restored at the end
    and the run stops after ``patience`` epochs without improvement (0: never stops early). No
    target label is read. With a target-only scorer (``entropy``, ``snd``, ``mixval``), an epoch whose
    target predictions collapse onto one class (:func:`target_collapse`) is never kept: a network
    that puts every target row in one class is a degenerate optimum of those scores (its mixups
    trivially agree, its predictions are all alike); nor is an epoch whose score is NaN or infinite;
    if no epoch can be kept, the last one stays. A run that stopped early stays stopped when resumed.
    In a data-parallel run the first process scores, and every process follows its verdict.

    ``grad_clip``: the largest norm of the gradient of every trained parameter, the network's and
    the method's own (a discriminator), taken together, as ``torch.nn.utils.clip_grad_norm_``.

    ``balance_domains``: with several labelled source domains, weight each source row by
    ``n / (D n_d)`` so that every domain counts equally in the loss (:mod:`transferkit.nn.weights`).

    ``amp``: mixed precision (bfloat16 autocast) when training on a GPU; ignored on the CPU.

    Data-parallel (:mod:`transferkit.nn.distributed`): under ``torchrun`` (or ``run --nproc N``)
    the same settings train on every process, ``batch_size`` being the global batch (a multiple of
    the number of processes, at least 2 rows each); ``sync_bn`` turns BatchNorm into SyncBatchNorm
    (GPUs only). It ends where one process ends only for losses that are means over rows; see the
    module for what is computed per process.
    """

    epochs: int = 10
    steps: int | None = None
    min_steps: int = 0
    batch_size: int = 64
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Literal["constant", "cosine", "dann"] = "constant"
    grad_clip: float | None = None
    freeze: tuple[str, ...] = ()
    trainable_depth: int | None = None
    unfreeze_every: int = 0
    lr_mult: tuple[str, ...] = ()
    reg: Literal["none", "l2-sp", "l2", "l1"] = "none"
    reg_alpha: float = 0.1
    reg_beta: float = 0.01
    augment_source: str = "none"
    augment_target: str = "none"
    early_stopping: str | None = None
    patience: int = 0
    val_fraction: float = 0.1
    balance_domains: bool = False
    amp: bool = True
    sync_bn: bool = False
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
        if dev == "auto":
            import os

            dev = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(dev)
        except (RuntimeError, TypeError):
            raise TransferkitError(
                f"device {dev!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
            ) from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise TransferkitError(
                f"device {dev!r}: this machine has no CUDA GPU; use device='cpu' or 'auto'."
            )
        self.history: list[dict] = []
        self.best_epoch: int | None = None

    def _optimizer(self):
        from transferkit.nn.finetune import parameter_groups

        c = self.config
        # every parameter goes in (fixed ones get no gradient, so they stay put until unfrozen)
        groups = parameter_groups(self.model, c.lr, c.lr_mult, extra=self.method.parameters())
        wd = 0.0 if c.reg != "none" else c.weight_decay
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=wd, nesterov=c.nesterov)
        if c.optimizer in ("adam", "adamw"):
            cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
            return cls(groups, lr=c.lr, weight_decay=wd)
        raise TransferkitError(f"unknown optimizer {c.optimizer!r}; use sgd, adam or adamw.")

    def _check_config(self) -> None:
        from transferkit.errors import check_flag, check_whole, is_whole

        c = self.config
        # counts must be whole numbers (epochs=2.5 failed deep in range(), batch_size=2.5 trained on
        # batches of 2) and flags true or false (amp="no" is a non-empty string: on)
        for name, minimum in (("epochs", 0), ("steps", 1), ("min_steps", 0), ("batch_size", 2),
                              ("patience", 0), ("unfreeze_every", 0), ("trainable_depth", 0)):  # fmt: skip
            value = getattr(c, name)
            if value is None and name in ("steps", "trainable_depth"):
                continue
            check_whole(name, value, minimum)
        if not is_whole(c.seed):
            raise TransferkitError(f"seed must be a whole number, got {c.seed!r}.")
        for name in ("nesterov", "balance_domains", "amp", "sync_bn", "progress"):
            check_flag(name, getattr(c, name))
        for name in ("lr", "momentum", "weight_decay", "reg_alpha", "reg_beta"):
            value = getattr(c, name)
            try:
                ok = math.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise TransferkitError(f"{name} must be a finite number, got {value!r}.")
        if c.optimizer == "sgd" and not 0 <= c.momentum < 1:
            raise TransferkitError(f"momentum must be in [0, 1), got {c.momentum}.")
        if c.weight_decay < 0 or c.reg_alpha < 0 or c.reg_beta < 0:
            raise TransferkitError(
                "weight_decay, reg_alpha and reg_beta must be >= 0 (a negative one pushes the weights away): "
                f"got {c.weight_decay}, {c.reg_alpha} and {c.reg_beta}."
            )
        if c.optimizer == "sgd" and c.nesterov and c.momentum == 0:
            raise TransferkitError("nesterov=true needs momentum > 0 (Nesterov momentum without momentum).")
        if c.epochs < 1 and not c.steps:
            raise TransferkitError(f"epochs must be >= 1 (or give steps), got {c.epochs}.")
        if c.steps is not None and c.steps < 1:
            raise TransferkitError(f"steps must be >= 1, got {c.steps}.")
        if c.min_steps < 0:
            raise TransferkitError(f"min_steps must be >= 0 (0: off), got {c.min_steps}.")
        if c.lr <= 0:
            raise TransferkitError(f"the learning rate lr must be > 0, got {c.lr}.")
        if c.unfreeze_every < 0 or c.patience < 0:
            raise TransferkitError("unfreeze_every and patience must be >= 0.")
        if not 0 < c.val_fraction < 1:
            raise TransferkitError(f"val_fraction must be in (0, 1), got {c.val_fraction}.")
        if c.grad_clip is not None and not c.grad_clip > 0:  # a negative norm turns descent into ascent
            raise TransferkitError(
                f"grad_clip (the largest gradient norm) must be > 0 or none, got {c.grad_clip}."
            )
        # settings that only act with another one: given without it, they would change nothing
        default = TrainerConfig()
        idle = [
            f"{k}={getattr(c, k)!r} without {needs}"
            for k, needs, active in (
                ("patience", "early_stopping", c.early_stopping),
                ("val_fraction", "early_stopping", c.early_stopping),
                ("reg_alpha", "reg", c.reg != "none"),
                ("reg_beta", "reg", c.reg != "none"),
            )
            if not active and getattr(c, k) != getattr(default, k)
        ]
        if idle:
            import warnings

            warnings.warn(
                f"{', '.join(idle)} has no effect; set the setting it works with, or leave it out.",
                UserWarning,
                stacklevel=3,
            )

    def _warn_changed_config(self, saved: dict) -> None:
        """Warn when a resumed run's settings differ from the checkpoint's: it then continues, but
        no longer ends with the weights an uninterrupted run of either setting would have."""
        import json

        now = json.loads(json.dumps(asdict(self.config)))
        changed = sorted(k for k in saved if k not in ("progress", "device") and now.get(k) != saved[k])
        if changed:
            import warnings

            warnings.warn(
                "resuming with other settings than the checkpoint's: "
                + ", ".join(f"{k} {saved[k]!r} -> {now.get(k)!r}" for k in changed)
                + "; the run continues with the new ones (not the run an uninterrupted training gives).",
                UserWarning,
                stacklevel=3,
            )

    def _check_rows(self, X, name: str = "X") -> np.ndarray:
        """``X`` as rows the network takes: numbers, finite, and of the network's row shape when it
        is known (``build_network`` records it)."""
        from transferkit.domains import check_features

        shape = getattr(self.model, "in_shape", None)
        if not isinstance(X, np.ndarray):
            try:
                X = np.asarray(X)
            except (TypeError, ValueError) as exc:  # ragged lists and the like
                raise TransferkitError(f"{name} could not be read as an array: {exc}") from None
        if shape is not None and X.ndim == len(shape) and tuple(X.shape) == tuple(shape):
            raise TransferkitError(
                f"{name} is one row of shape {tuple(X.shape)}; pass an array of rows, e.g. {name}[None]."
            )
        X = check_features(X, name=name, allow_nd=True)
        backbone = getattr(self.model, "backbone", None)
        flattens = isinstance(backbone, torch.nn.Sequential) and isinstance(backbone[0], torch.nn.Flatten)
        same = (
            tuple(X.shape[1:]) == tuple(shape or ())
            or (  # an MLP takes any rows of as many values
                flattens and shape is not None and int(np.prod(X.shape[1:])) == int(np.prod(shape))
            )
        )
        if shape is not None and not same:
            raise TransferkitError(
                f"{name} has rows of shape {tuple(X.shape[1:])}, but the network takes rows of shape "
                f"{tuple(shape)}."
            )
        return X

    def _check_inputs(self, X, y, sample_domain):
        """The training rows, checked: finite numbers of the network's row shape, integer labels from
        0 to the number of outputs - 1 (or -1: unknown), one integer domain per row."""
        from transferkit.domains import _check_labels

        X = self._check_rows(X)
        y = _check_labels(y, len(X))
        sd = np.asarray(sample_domain)
        if sd.shape != (len(X),) or sd.dtype.kind not in "iu":
            raise TransferkitError(
                f"sample_domain must hold one integer per row ({len(X)}: >= 0 source, < 0 target), got "
                f"shape {sd.shape} and dtype {sd.dtype}."
            )
        k = getattr(self.model, "num_classes", None)
        if k is not None and len(y) and int(y.max()) >= int(k):
            raise TransferkitError(
                f"labels must be class indices 0..{int(k) - 1} (the network has {k} outputs), or -1 for "
                f"unknown; got {sorted(set(np.unique(y[y >= int(k)]).tolist()))[:5]}. Encode class names "
                "or other codes with sklearn.preprocessing.LabelEncoder."
            )
        return X, y, sd.astype(np.int64, copy=False)

    def _trainable(self, epoch: int, fixed: set[str], blocks: list[list[str]]) -> None:
        """Set which parameters train in ``epoch``: all but ``fixed``, and under gradual unfreezing
        only the top blocks (a function of the epoch, so resuming reproduces it)."""
        from transferkit.nn.finetune import unfrozen_blocks

        c = self.config
        open_names = None
        if c.unfreeze_every:
            k = unfrozen_blocks(epoch, c.unfreeze_every, len(blocks))
            open_names = {n for b in blocks[len(blocks) - k :] for n in b}
        for name, p in self.model.named_parameters():
            p.requires_grad_(name not in fixed and (open_names is None or name in open_names))

    def _selection_split(self, X, y, sd):
        """(train rows, scorer's X, scorer's y) for early stopping; no target label is kept."""
        c = self.config
        from transferkit.selection import reads_target

        if not getattr(self.method, "uses_target", True):  # it must never see the target: not here either
            if reads_target(c.early_stopping):
                raise TransferkitError(
                    f"early_stopping={c.early_stopping!r} scores the target rows, and "
                    f"{type(self.method).__name__} is a method that never sees the target (domain "
                    "generalization); use early_stopping='source-val' (held-out training rows)."
                )
            scorer_rows = np.zeros(0, np.int64)
        else:
            scorer_rows = np.flatnonzero(sd < 0)
        rng = np.random.default_rng(c.seed)
        if len(scorer_rows) > 2000:
            scorer_rows = np.sort(rng.choice(scorer_rows, 2000, replace=False))
        train = np.ones(len(X), bool)
        val = np.zeros(0, np.int64)
        if c.early_stopping in ("source-val", "iwcv", "dev"):  # these read held-out source labels
            src = np.flatnonzero(sd >= 0)
            val = np.sort(rng.choice(src, max(2, int(round(c.val_fraction * len(src)))), replace=False))
            train[val] = False
        rows = np.r_[val, scorer_rows]
        y_sel = np.r_[np.asarray(y)[val], -np.ones(len(scorer_rows), np.int64)]
        return (
            train,
            np.asarray(X)[rows],
            y_sel,
            np.r_[np.zeros(len(val), np.int64), -np.ones(len(scorer_rows), np.int64)],
        )

    def fit(
        self, X, y, sample_domain, *, eval_sets: dict | None = None, checkpoint_dir=None,
        resume: bool = False, callbacks: Sequence[Callable] = (), sample_weight=None,
    ) -> list[dict]:  # fmt: skip
        """Train; return the per-epoch history. ``eval_sets``: name -> (X, y) scored after every epoch.

        ``y`` must hold -1 on every target row whose label was not deliberately revealed.
        ``callbacks`` are called as ``cb(trainer, epoch_record)`` after each epoch's checkpoint.
        ``sample_weight``: one weight >= 0 per row (source rows' ``lambda_{d,i}``; the loss is their
        weighted mean), combined with ``balance_domains``.
        """
        from transferkit.nn import distributed
        from transferkit.nn.augment import build_augmentation
        from transferkit.nn.finetune import Regularizer, blocks, eval_frozen_modules, freeze, trainable_depth

        c = self.config
        self._check_config()
        if resume and checkpoint_dir is None:  # it would silently train from the start
            raise TransferkitError(
                "resume=True continues from a checkpoint folder: pass checkpoint_dir (the folder an "
                "earlier fit wrote its checkpoints to)."
            )
        X, y, sample_domain = self._check_inputs(X, y, sample_domain)
        if sample_weight is not None:  # checked against the rows given, before any hold-out
            try:
                sample_weight = np.asarray(sample_weight, dtype=np.float64)
            except (TypeError, ValueError):
                raise TransferkitError("sample_weight must hold numbers (one weight >= 0 per row).") from None
            if sample_weight.ndim != 1 or len(sample_weight) != len(X):
                raise TransferkitError(
                    f"sample_weight must hold one weight per row ({len(X)}), got shape "
                    f"{tuple(sample_weight.shape)}."
                )
        if not resume:  # a new run (scikit-learn's rule for a second fit): nothing of the last one
            self.history, self.best_epoch = [], None
        distributed.init_from_env()
        rank, n_proc = distributed.world()
        if n_proc > 1 and c.unfreeze_every:
            raise TransferkitError(
                "gradual unfreezing (unfreeze_every) changes the trainable parameters during the run, which "
                "DistributedDataParallel cannot follow; use freeze or trainable_depth in a data-parallel run."
            )
        sd = np.asarray(sample_domain)
        scorer = None
        if c.early_stopping and getattr(self.method, "replaces_final_weights", False):
            raise TransferkitError(
                f"early_stopping={c.early_stopping!r} would restore one epoch's weights, but this method "
                "replaces the final weights by their average over the run; leave early_stopping out."
            )
        if c.early_stopping:
            from transferkit.selection import get_scorer

            scorer = get_scorer(c.early_stopping)
            train, X_sel, y_sel, sd_sel = self._selection_split(X, y, sd)
            X, y, sd = np.asarray(X)[train], np.asarray(y)[train], sd[train]
            if sample_weight is not None:
                sample_weight = sample_weight[train]
            held, left = int((~train).sum()), int((sd >= 0).sum())
            if held and getattr(self.method, "epoch_over", "source") == "source" and c.batch_size > left:
                raise TransferkitError(
                    f"batch_size {c.batch_size} is larger than the {left} source rows left for training: "
                    f"early_stopping={c.early_stopping!r} holds out {held} source rows (val_fraction="
                    f"{c.val_fraction}). Lower batch_size or val_fraction, or choose a target-only scorer "
                    "(entropy, snd, mixval)."
                )
        transforms = {
            "source": build_augmentation(c.augment_source),
            "target": build_augmentation(c.augment_target),
        }
        loader = DomainLoader(X, y, sd, batch_size=c.batch_size, seed=c.seed, transforms=transforms,
                              epoch_over=getattr(self.method, "epoch_over", "source"),
                              shard=(rank, n_proc), sample_weight=sample_weight,
                              balance_domains=c.balance_domains,
                              uses_target=getattr(self.method, "uses_target", True),
                              min_source_domains=getattr(self.method, "min_source_domains", 1))  # fmt: skip
        seed_everything(c.seed)
        self.method.setup(self.model)
        if c.sync_bn and n_proc > 1:
            if self.device.type != "cuda":
                raise TransferkitError(
                    "sync_bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA devices only; leave it out "
                    "on the CPU (each process then keeps its own BatchNorm statistics)."
                )
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        self.method.to(self.device)
        # parameters the caller already fixed (a PEFT adapter's base weights, ...) stay fixed
        fixed = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        fixed |= set(freeze(self.model, c.freeze)) if c.freeze else set()
        if c.trainable_depth is not None:
            fixed |= set(trainable_depth(self.model, c.trainable_depth))
        trainable = [n for n, p in self.model.named_parameters() if n not in fixed]
        if not trainable and not any(p.requires_grad for p in self.method.parameters()):
            raise TransferkitError(
                f"freeze={list(c.freeze)} / trainable_depth={c.trainable_depth} fix every parameter of the "
                "network, and the method has none of its own: nothing would train. Freeze part of it (e.g. "
                "freeze=trunk) or leave freeze out."
            )
        model_blocks = blocks(self.model)
        regularizers = list(self.regularizers)
        if c.reg != "none":  # anchored at the starting weights, before any checkpoint is restored
            regularizers.append(Regularizer(self.model, c.reg, c.reg_alpha, c.reg_beta))
        optimizer = self._optimizer()
        clipped = [p for group in optimizer.param_groups for p in group["params"]]
        passes = max(c.epochs, -(-c.min_steps // len(loader)))  # whole passes, at least min_steps steps
        total = c.steps if c.steps else max(1, passes * len(loader))
        n_epochs = -(-total // len(loader))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _factor(c.schedule, step / total)
        )
        start_epoch, step, best, best_file = 0, 0, None, None
        if resume and checkpoint_dir is not None and (Path(checkpoint_dir) / STATE).exists():
            state = load_checkpoint(checkpoint_dir, model=self.model, method=self.method, optimizer=optimizer,
                                    scheduler=scheduler)  # fmt: skip
            start_epoch, step, self.history = state["epoch"], state["step"], state["history"]
            self._warn_changed_config(state.get("config") or {})
            best = state.get("best")
            if best is not None and not (isinstance(best, list) and len(best) == 2):
                raise TransferkitError(f"the checkpoint in {checkpoint_dir} is damaged (its best epoch).")
            if best is not None:
                best_file = state.get("best_file", BEST)
                best = (best[0], best[1], _load_best(checkpoint_dir, best_file))
        # a run that had stopped early (patience) stays stopped: the rule is a function of the saved
        # best epoch, so a run killed after its last checkpoint resumes to the uninterrupted run's end
        stopped = (
            scorer is not None and best is not None and c.patience > 0 and start_epoch - best[0] >= c.patience
        )
        use_amp = c.amp and self.device.type == "cuda"
        if n_proc > 1:  # one DDP module whose forward is the whole loss: network and method synced
            from torch.nn.parallel import DistributedDataParallel

            self._trainable(0, fixed, model_blocks)
            ddp = DistributedDataParallel(
                distributed.LossModule(self.model, self.method),
                device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )

            def compute(batch, progress):
                return ddp(batch, progress)
        else:

            def compute(batch, progress):
                losses = self.method.loss(self.model, batch, progress)
                return losses.total, losses.parts

        from transferkit.progress import progress_bar

        bar = progress_bar(
            range(start_epoch, start_epoch if stopped else n_epochs),
            desc="epochs",
            disable=not c.progress or rank != 0,  # one bar in a data-parallel run
        )
        for epoch in bar:
            self._trainable(epoch, fixed, model_blocks)
            self.model.train()
            self.method.train()
            eval_frozen_modules(self.model)
            started = time.perf_counter()
            sums: dict[str, torch.Tensor] = {}
            n_batches = 0
            for batch in loader.epoch(epoch):
                if step >= total:
                    break
                batch = batch.to(self.device)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                    total_loss, parts = compute(batch, step / total)
                loss = total_loss.float() + sum(
                    (reg(self.model) for reg in regularizers), torch.zeros((), device=self.device)
                )
                if not _finite_everywhere(loss, n_proc):
                    raise NonFiniteLossError(
                        f"the loss became {float(loss.detach())} at step {step} (epoch {epoch + 1}); the run "
                        "is stopped and the last good checkpoint kept. Lower the learning rate or clip "
                        "gradients (grad_clip)."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if c.grad_clip:  # the norm over every trained parameter: the method's own too
                    torch.nn.utils.clip_grad_norm_(clipped, c.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                self.method.after_step(self.model, step, total)
                n_batches += 1
                for k, v in {"loss": loss, **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().float()
            means = distributed.reduce_mean({k: float(v) / max(1, n_batches) for k, v in sums.items()})
            record = {"epoch": epoch + 1, "step": step, "lr": c.lr * _factor(c.schedule, (step - 1) / total),
                      **means,
                      "seconds": round(time.perf_counter() - started, 4)}  # fmt: skip
            for name, (Xe, ye) in (eval_sets or {}).items():
                record[f"{name}_acc"] = float(np.mean(self.predict(Xe) == np.asarray(ye)))
            stop = False
            if scorer is not None:
                score, collapsed = 0.0, False
                if rank == 0:  # scored once; every process takes the first one's verdict (below)
                    clf = TrainerClassifier(self, rows=X_sel[sd_sel < 0])  # one pass over the target rows
                    score = float(scorer(clf, X_sel, y_sel, sd_sel))
                    # a network that puts the target into one class is a degenerate optimum of the
                    # target-only scorers (its mixups agree, its predictions are alike): never kept
                    labels = np.asarray(y)[(sd >= 0) & (np.asarray(y) >= 0)]
                    collapsed = not scorer.needs_source and self._collapse(clf.rows, labels, clf) is not None
                # one verdict for all: processes that kept or stopped at different epochs would deadlock
                score, collapsed = distributed.broadcast_values([score, float(collapsed)])
                collapsed = bool(collapsed)
                record[f"select_{c.early_stopping}"] = score
                if collapsed:
                    record["target_collapsed"] = True
                # a NaN or infinite score (a degenerate scorer) is never kept: NaN > x is always false,
                # so a first epoch that scored NaN would otherwise stay the best for good
                if not collapsed and math.isfinite(score) and (best is None or score > best[1]):
                    best = (
                        epoch + 1,
                        score,
                        {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                    )
                stop = best is not None and c.patience > 0 and epoch + 1 - best[0] >= c.patience
            self.history.append(record)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix({k: round(v, 4) for k, v in record.items() if k.endswith(("loss", "_acc"))})
            if checkpoint_dir is not None and rank == 0:  # one writer in a data-parallel run
                if best is not None and best[0] == epoch + 1:  # a new name: the last state's file stays
                    best_file = f"best-e{epoch + 1}.safetensors"
                    _save_best(checkpoint_dir, best_file, best[2])
                extra = {"best": [best[0], best[1]], "best_file": best_file} if best is not None else {}
                save_checkpoint(checkpoint_dir, model=self.model, method=self.method, optimizer=optimizer,
                                scheduler=scheduler, state={"epoch": epoch + 1, "step": step,
                                "history": self.history, "config": asdict(c), **extra})  # fmt: skip
            if checkpoint_dir is not None:
                distributed.barrier()
            for cb in callbacks:
                cb(self, record)
            if stop or step >= total:
                break
        if best is not None:  # the epoch the scorer liked best, not the last one
            self.model.load_state_dict(best[2])
            self.best_epoch = best[0]
        # the method's last word (weight averaging swaps in the mean weights); lazy: only a method
        # that recomputes BatchNorm statistics draws the training inputs once more
        self.method.finish(self.model, (b.to(self.device).x_source for b in loader.epoch(n_epochs)))
        self._warn_at_chance(y, sd)
        self._warn_target_collapse(X, y, sd)
        return self.history

    def _warn_at_chance(self, y, sd) -> None:
        """Warn when the last epoch's source cross-entropy is no better than predicting the class
        frequencies (their entropy): the network has not learnt the source task, which a collapsed
        adaptation term causes and which is visible without any target label."""
        last = self.history[-1] if self.history else {}
        labels = np.asarray(y)[(np.asarray(sd) >= 0) & (np.asarray(y) >= 0)]
        if "source_ce" not in last or len(labels) == 0:
            return
        p = np.bincount(labels.astype(np.int64)) / len(labels)
        chance = float(-(p[p > 0] * np.log(p[p > 0])).sum())
        if chance > 0 and last["source_ce"] >= 0.95 * chance:
            import warnings

            warnings.warn(
                f"the source cross-entropy ended at {last['source_ce']:.3f}, at chance level ({chance:.3f}, "
                "the entropy of the source labels): the network has not learnt the source classes. If the "
                "adaptation term dominates (a discrepancy driving every feature to one point), lower its "
                "weight or warm it up; otherwise train longer or raise the learning rate.",
                RuntimeWarning,
                stacklevel=3,
            )

    def _collapse(self, X_target, source_labels, clf: TrainerClassifier | None = None) -> str | None:
        """:func:`target_collapse` of the network's predictions on ``X_target`` (``None`` with fewer
        than 20 rows: too few to tell), through ``clf`` when given (its remembered pass). Reads
        source labels and predictions only."""
        if len(X_target) < 20:
            return None
        return target_collapse((clf or self).predict(X_target), source_labels)

    def _warn_target_collapse(self, X, y, sd) -> None:
        """Warn when the final network puts the target rows into one class far more often than the
        source labels do (:func:`target_collapse`): no target label is read, only predictions."""
        sd, y = np.asarray(sd), np.asarray(y)
        message = self._collapse(np.asarray(X)[sd < 0], y[(sd >= 0) & (y >= 0)])
        if message:
            import warnings

            warnings.warn(message, RuntimeWarning, stacklevel=3)

    @torch.no_grad()
    def predict_proba(self, X, batch_size: int = 512) -> np.ndarray:
        self.model.to(self.device).eval()  # the trainer's device, also for a network never fitted here
        X = torch.as_tensor(np.asarray(self._check_rows(X), dtype=np.float32))
        out = [
            torch.softmax(self.model(X[i : i + batch_size].to(self.device)), 1).cpu()
            for i in range(0, len(X), batch_size)
        ]
        return torch.cat(out).numpy()

    def predict(self, X, batch_size: int = 512) -> np.ndarray:
        return self.predict_proba(X, batch_size).argmax(1)

    @torch.no_grad()
    def features(self, X, batch_size: int = 512) -> np.ndarray:
        self.model.to(self.device).eval()
        X = torch.as_tensor(np.asarray(self._check_rows(X), dtype=np.float32))
        return torch.cat([self.model.features(X[i : i + batch_size].to(self.device)).cpu()
                          for i in range(0, len(X), batch_size)]).numpy()  # fmt: skip


class TrainerClassifier:
    """A trained network seen as a fitted classifier (``predict``, ``predict_proba``, ``features``
    with the ``sample_domain`` argument of the shallow methods), for the selection scorers.

    With ``rows`` (network inputs), the network runs on them once, at the first prediction asked
    for them, and every later prediction on the same rows (the same values: a scorer's copy of them)
    comes from that pass: the scorers of one epoch (entropy, MixVal, the collapse check, the target
    accuracy) then share one pass over the target instead of one each. The memory assumes the
    weights do not change meanwhile: make one such classifier per scoring, not one per run.
    """

    def __init__(self, trainer: Trainer, rows=None):
        self.trainer = trainer
        self.rows = None if rows is None else np.asarray(rows)
        self._proba = None

    def _are_rows(self, X) -> bool:
        r = self.rows
        return r is not None and (X is r or (np.shape(X) == r.shape and np.array_equal(X, r)))

    def predict_proba(self, X, sample_domain=None):
        if not self._are_rows(X):
            return self.trainer.predict_proba(X)
        if self._proba is None:
            self._proba = self.trainer.predict_proba(self.rows)
        return self._proba.copy()

    def predict(self, X, sample_domain=None):
        return self.predict_proba(X).argmax(1)  # as Trainer.predict

    def features(self, X, sample_domain=None):
        return self.trainer.features(X)


def _save_best(folder, name: str, weights: dict) -> None:
    from safetensors.torch import save

    from transferkit.io import atomic_write_bytes

    atomic_write_bytes(Path(folder) / name, save({k: v.contiguous() for k, v in weights.items()}))


def _load_best(folder, name: str) -> dict:
    from safetensors.torch import load

    path = Path(folder) / name
    if not isinstance(name, str) or Path(name).name != name or not path.exists():
        raise TransferkitError(
            f"the checkpoint in {folder} is damaged: it records a best epoch, but its weights file "
            f"{name!r} is missing; delete the checkpoint or start afresh."
        )
    try:
        return load(path.read_bytes())
    except Exception as exc:  # a truncated or foreign file
        raise TransferkitError(f"the checkpoint in {folder} is damaged ({exc}); start afresh.") from exc


def _finite_everywhere(loss: torch.Tensor, n_proc: int) -> bool:
    """Whether the loss is finite on every process (so that all stop together when one is not)."""
    finite = bool(torch.isfinite(loss))
    if n_proc == 1:
        return finite
    import torch.distributed as dist

    flag = torch.tensor([0.0 if finite else 1.0], device=loss.device)
    dist.all_reduce(flag)
    return float(flag) == 0.0
