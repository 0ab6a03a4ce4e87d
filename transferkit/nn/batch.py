"""The batch every deep method receives, and the loader that draws source and target together."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from transferkit.errors import TransferkitError

__all__ = ["DABatch", "DomainLoader"]


@dataclass
class DABatch:
    """One step's data.

    ``y_target`` is None in unsupervised adaptation; else -1 marks the target rows of this batch whose
    labels are unknown. ``x_labelled, y_labelled`` are a batch drawn from the revealed target rows
    only (None when no target label was revealed): few labelled rows would be rare in a random target
    batch, so they get a stream of their own, as in semi-supervised DA.

    With several labelled source domains, ``d_source`` is the ``sample_domain`` of each source row
    (domain generalization methods need it) and ``w_source`` its weight ``lambda_{d,i}``
    (None: every row weighs 1; :mod:`transferkit.nn.weights`).
    """

    x_source: torch.Tensor
    y_source: torch.Tensor
    x_target: torch.Tensor
    y_target: torch.Tensor | None = None
    x_labelled: torch.Tensor | None = None
    y_labelled: torch.Tensor | None = None
    d_source: torch.Tensor | None = None
    w_source: torch.Tensor | None = None

    def to(self, device) -> DABatch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return DABatch(*(move(getattr(self, f.name)) for f in fields(self)))


class DomainLoader:
    """Source and target streams in the ``X, y, sample_domain`` convention, as :class:`DABatch` es.

    ``y`` must already be masked (:func:`transferkit.domains.mask_target_labels`): the loader passes
    target labels on only where they are >= 0 (revealed few-shot labels), and ``y_target=None`` when
    none is. An epoch is one pass over the source in a new random order: each source row is seen
    once, but the ``n mod batch_size`` rows at the end of the order sit out that epoch (``drop_last``,
    so BatchNorm never sees a batch of one; ``drop_last=False`` gives them a last, smaller batch). The
    target rows are drawn alongside in their own random order, as many as the source batches need:
    they reshuffle every epoch, and repeat within it when the target is smaller. Both orders come from a
    ``torch.Generator`` seeded by ``seed`` and the epoch, so an epoch's batches are the same whether
    or not the run was resumed. ``transforms`` maps ``"source"``/``"target"`` to a callable applied to
    each batch of inputs (per-domain augmentation; the labelled target stream gets the target's).

    Revealed target rows also form a third stream (``x_labelled``), cycled in batches of
    ``min(batch_size, number revealed)``. ``epoch_over="labelled"`` makes an epoch one pass over that
    stream instead of the source (fine-tuning on the few target labels).

    ``shard=(rank, world)``: in a data-parallel run every process draws the same global batches (same
    seed), applies the transforms to the whole batch and keeps rows ``rank, rank + world, ...`` of
    each, so the processes together see exactly the batches, augmented alike, of a single-process
    run. A labelled batch that does not split evenly goes whole to every process.

    Several source domains: every batch mixes them (rows drawn uniformly from the pooled source) and
    carries ``d_source``. ``sample_weight`` (one per row) and ``balance_domains`` give each source row
    a weight, passed on as ``w_source`` (:func:`transferkit.nn.weights.source_weights`).
    ``uses_target=False`` (a method that never looks at the target, e.g. domain generalization):
    unlabelled target rows, if any, are dropped here and never reach a batch (``x_target`` is empty),
    so a run needs none; revealed target rows still form the labelled stream.
    A source row whose weight is 0 is left out altogether (a domain weighted 0 is not a training
    domain: it enters no batch, and no penalty between domains sees it).
    ``min_source_domains``: the number of distinct source domains the method needs.
    """

    def __init__(
        self, X, y, sample_domain, *, batch_size: int = 64, seed: int = 0,
        transforms: dict[str, Callable] | None = None, drop_last: bool = True,
        epoch_over: str = "source", shard: tuple[int, int] = (0, 1), sample_weight=None,
        balance_domains: bool = False, uses_target: bool = True, min_source_domains: int = 1,
    ):  # fmt: skip
        try:
            X = torch.as_tensor(np.asarray(X, dtype=np.float32))
            y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        except (TypeError, ValueError) as exc:
            raise TransferkitError(
                f"a deep run needs numeric inputs X and integer labels y ({exc}); embed texts or encode "
                "categories first."
            ) from None
        sd = np.asarray(sample_domain)
        if not (X.ndim >= 2 and y.ndim == 1 and sd.ndim == 1 and len(X) == len(y) == len(sd)):
            raise TransferkitError(
                f"X, y and sample_domain must have one entry per row: X has shape {tuple(X.shape)}, y "
                f"{tuple(y.shape)}, sample_domain {sd.shape} (X needs at least 2 dimensions, rows first)."
            )
        src = torch.as_tensor(sd >= 0)
        tgt = torch.as_tensor(sd < 0) if uses_target else torch.zeros(len(sd), dtype=torch.bool)
        if uses_target and (not bool(src.any()) or not bool(tgt.any())):
            raise TransferkitError("a deep adaptation run needs source rows and target rows.")
        if not bool(src.any()):
            raise TransferkitError("a deep run needs labelled source rows (sample_domain >= 0).")
        from transferkit.nn.weights import source_weights

        w = source_weights(sd, sample_weight, balance_domains=balance_domains)
        if w is not None:  # a row of weight 0 takes no part: in no batch, in no domain's penalty
            src = src & torch.as_tensor(w > 0)
        keep = src.numpy()
        if bool((y[src] < 0).any()):
            raise TransferkitError("every source row needs a label (>= 0).")
        n_domains = len(np.unique(sd[keep]))
        if n_domains < min_source_domains:
            raise TransferkitError(
                f"this method needs at least {min_source_domains} labelled source domains (distinct "
                f"sample_domain >= 0, with a weight above 0), got {n_domains}; train it on several "
                "domains, or use erm."
            )
        self.ds = torch.as_tensor(sd[keep].astype(np.int64))
        self.ws = None if w is None else torch.as_tensor(w[keep], dtype=torch.float32)
        self.xs, self.ys = X[src], y[src]
        self.xt, self.yt = X[tgt], y[tgt]
        # revealed target rows form the labelled stream, also for a method that drops the target
        known = torch.as_tensor(sd < 0) & (y >= 0)
        self.xl, self.yl = X[known], y[known]
        self.has_target_labels = bool(len(self.yl))
        if epoch_over not in ("source", "labelled"):
            raise TransferkitError(f"epoch_over must be 'source' or 'labelled', got {epoch_over!r}.")
        if epoch_over == "labelled" and not self.has_target_labels:
            raise TransferkitError(
                "this method trains on revealed target labels, and none was given; reveal K per class "
                "with --target-labels K."
            )
        self.epoch_over = epoch_over
        self.batch_size = int(batch_size)
        if self.batch_size < 2:
            raise TransferkitError(f"batch_size must be at least 2, got {self.batch_size}.")
        if epoch_over == "source" and self.batch_size > len(self.xs):
            raise TransferkitError(
                f"batch_size must be between 2 and the number of source rows ({len(self.xs)})."
            )
        self.labelled_batch = min(self.batch_size, len(self.xl))
        self.rank, self.world = int(shard[0]), int(shard[1])
        if self.world > 1 and (self.batch_size % self.world or self.batch_size < 2 * self.world):
            raise TransferkitError(
                f"batch_size ({self.batch_size}) is the global batch of a data-parallel run and must be a "
                f"multiple of the number of processes ({self.world}), at least 2 rows for each (BatchNorm "
                "cannot train on one row)."
            )
        rest = len(self.xs) % self.batch_size
        if self.world > 1 and not drop_last and epoch_over == "source" and rest % self.world:
            raise TransferkitError(
                f"the last batch of {rest} source rows cannot be split evenly over {self.world} processes; "
                "keep drop_last on or choose a batch_size that divides the source rows."
            )
        self.seed = seed
        self.transforms = transforms or {}
        self.drop_last = drop_last

    def __len__(self) -> int:
        if self.epoch_over == "labelled":
            return max(1, len(self.xl) // self.labelled_batch)
        n = len(self.xs)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @staticmethod
    def _cycle(n_rows: int, needed: int, g: torch.Generator) -> torch.Tensor:
        reps = -(-needed // n_rows)
        return torch.cat([torch.randperm(n_rows, generator=g) for _ in range(reps)])

    def epoch(self, epoch: int) -> Iterator[DABatch]:
        g = torch.Generator().manual_seed(int(self.seed) * 100_003 + int(epoch))
        b, n_steps = self.batch_size, len(self)
        # one pass over the source: a last partial batch (drop_last off) holds the rows left over,
        # not rows of a second shuffle (seen twice in the epoch)
        one_pass = self.epoch_over == "source" and not self.drop_last
        order_s = self._cycle(len(self.xs), len(self.xs) if one_pass else n_steps * b, g)
        order_t = (
            self._cycle(len(self.xt), n_steps * b, g) if len(self.xt) else torch.zeros(0, dtype=torch.long)
        )
        lb = self.labelled_batch
        order_l = self._cycle(len(self.xl), n_steps * lb, g) if self.has_target_labels else None
        ts, tt = self.transforms.get("source"), self.transforms.get("target")
        # every process draws the same global batch, augments all of it (so each row gets the random
        # draw it gets in a single-process run, not the draw of the row at the same place on another
        # process) and keeps its share: rows rank, rank + world, ...
        share = (lambda v: v[self.rank :: self.world]) if self.world > 1 else (lambda v: v)  # noqa: E731
        for i in range(n_steps):
            s, t = order_s[i * b : (i + 1) * b], order_t[i * b : (i + 1) * b]
            xs, xt = self.xs[s], self.xt[t]
            xs = share(ts(xs) if ts else xs)
            xt = share(tt(xt) if tt and len(xt) else xt)
            s, t = share(s), share(t)
            yt = self.yt[t] if self.has_target_labels else None
            xl = yl = None
            if order_l is not None:
                li = order_l[i * lb : (i + 1) * lb]
                xl = self.xl[li]
                xl = tt(xl) if tt else xl
                # split only into equal shares: then the mean of the processes' mean losses is the
                # mean over the batch; otherwise every process takes the whole labelled batch
                if len(li) % self.world == 0:
                    li, xl = share(li), share(xl)
                yl = self.yl[li]
            ws = None if self.ws is None else self.ws[s]
            yield DABatch(xs, self.ys[s], xt, yt, xl, yl, self.ds[s], ws)
