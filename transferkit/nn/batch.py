"""The batch every deep method receives, and the loader that draws source and target together."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from transferkit.errors import TransferkitError

__all__ = ["DABatch", "DomainLoader"]


@dataclass
class DABatch:
    """One step's data. ``y_target`` is None in unsupervised adaptation; else -1 marks unknown labels."""

    x_source: torch.Tensor
    y_source: torch.Tensor
    x_target: torch.Tensor
    y_target: torch.Tensor | None = None

    def to(self, device) -> DABatch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return DABatch(move(self.x_source), move(self.y_source), move(self.x_target), move(self.y_target))


class DomainLoader:
    """Source and target streams in the ``X, y, sample_domain`` convention, as :class:`DABatch` es.

    ``y`` must already be masked (:func:`transferkit.domains.mask_target_labels`): the loader passes
    target labels on only where they are >= 0 (revealed few-shot labels), and ``y_target=None`` when
    none is. An epoch is one pass over the source (``drop_last``, so BatchNorm never sees a batch of
    one); the target stream cycles and reshuffles independently. Both orders come from a
    ``torch.Generator`` seeded by ``seed`` and the epoch, so an epoch's batches are the same whether
    or not the run was resumed. ``transforms`` maps ``"source"``/``"target"`` to a callable applied to
    each batch of inputs (per-domain augmentation).
    """

    def __init__(
        self, X, y, sample_domain, *, batch_size: int = 64, seed: int = 0,
        transforms: dict[str, Callable] | None = None, drop_last: bool = True,
    ):  # fmt: skip
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        sd = np.asarray(sample_domain)
        src, tgt = torch.as_tensor(sd >= 0), torch.as_tensor(sd < 0)
        if not bool(src.any()) or not bool(tgt.any()):
            raise TransferkitError("a deep adaptation run needs source rows and target rows.")
        if bool((y[src] < 0).any()):
            raise TransferkitError("every source row needs a label (>= 0).")
        self.xs, self.ys = X[src], y[src]
        self.xt, self.yt = X[tgt], y[tgt]
        self.has_target_labels = bool((self.yt >= 0).any())
        self.batch_size = int(batch_size)
        if self.batch_size < 2 or self.batch_size > len(self.xs):
            raise TransferkitError(
                f"batch_size must be between 2 and the number of source rows ({len(self.xs)})."
            )
        self.seed = seed
        self.transforms = transforms or {}
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.xs)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[DABatch]:
        g = torch.Generator().manual_seed(int(self.seed) * 100_003 + int(epoch))
        order_s = torch.randperm(len(self.xs), generator=g)
        n_t_needed = len(self) * self.batch_size
        reps = -(-n_t_needed // len(self.xt))
        order_t = torch.cat([torch.randperm(len(self.xt), generator=g) for _ in range(reps)])
        ts, tt = self.transforms.get("source"), self.transforms.get("target")
        for i in range(len(self)):
            s = order_s[i * self.batch_size : (i + 1) * self.batch_size]
            t = order_t[i * self.batch_size : (i + 1) * self.batch_size]
            xs, xt = self.xs[s], self.xt[t]
            xs = ts(xs) if ts else xs
            xt = tt(xt) if tt else xt
            yt = self.yt[t] if self.has_target_labels else None
            yield DABatch(xs, self.ys[s], xt, yt)
