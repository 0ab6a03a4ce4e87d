r"""Which parameters a fine-tuning run updates, how fast, and what pulls them back towards the source.

Parameters are named as in ``model.named_parameters()`` (``backbone.0.weight``, ``head.bias``, ...)
and chosen with shell-style patterns (``backbone.*``). ``trunk`` is short for everything before
the head (``backbone.*`` and ``bottleneck.*``), so ``freeze=trunk`` is linear probing.

* :func:`freeze` fixes parameters by pattern, :func:`blocks` orders them by depth (input first)
  and :func:`trainable_depth` fixes all but the last blocks: the *fixed and updatable parameters*
  of parameter transfer. A module whose parameters are all fixed runs in eval mode
  (:func:`eval_frozen_modules`: frozen BatchNorm statistics, no dropout or stochastic depth): a frozen
  trunk must compute the features it was trained to compute.
* :func:`parameter_groups` gives each pattern its own learning rate (``backbone.*:0.1``: the
  pretrained trunk learns ten times slower than the new head).
* :class:`Regularizer`: L2-SP (Li et al., ICML 2018) pulls the transferred parameters towards their
  starting values, :math:`\frac{\alpha}{2}\|w - w^0\|^2`, and keeps the new ones (the head, and a
  bottleneck that was built rather than loaded) small with :math:`\frac{\beta}{2}\|w\|^2`; plain
  ``l2`` and ``l1`` pull everything towards zero.
* Gradual unfreezing (Howard and Ruder, ACL 2018): the top block trains first, one more block below
  it every ``unfreeze_every`` epochs (:func:`unfrozen_blocks`). Which blocks train is a function of
  the epoch alone, so a resumed run unfreezes exactly as an uninterrupted one.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from transferkit.errors import TransferkitError

__all__ = [
    "Regularizer",
    "blocks",
    "eval_frozen_modules",
    "expand_patterns",
    "freeze",
    "parameter_groups",
    "trainable_depth",
    "unfrozen_blocks",
]

ALIASES = {"trunk": ("backbone.*", "bottleneck.*"), "all": ("*",), "head": ("head.*",)}


def expand_patterns(patterns: Iterable[str]) -> list[str]:
    """Patterns with the aliases ``trunk``, ``head`` and ``all`` spelled out."""
    out: list[str] = []
    for p in patterns:
        out.extend(ALIASES.get(p, (p,)))
    return out


def _matching(model: nn.Module, patterns: Sequence[str], what: str) -> list[str]:
    names = [n for n, _ in model.named_parameters()]
    chosen = []
    for pattern in expand_patterns(patterns):
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits and not pattern.startswith("bottleneck."):  # no bottleneck is not a mistake
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise TransferkitError(
                f"{what} pattern '{pattern}' matches no parameter of this network; its parameters are "
                f"named like {shown} (patterns are shell-style: 'backbone.*', or 'trunk')."
            )
        chosen += [n for n in hits if n not in chosen]
    return chosen


def freeze(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Fix the parameters matching ``patterns`` (``requires_grad = False``); return their names."""
    names = _matching(model, patterns, "freeze")
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(False)
    return names


def blocks(model: nn.Module) -> list[list[str]]:
    """Parameter names grouped into blocks by depth, input first, head last.

    A block is a top-level child of ``model.backbone`` (a layer of a ``Sequential`` trunk, a stage
    of a torchvision network) that has parameters, then the bottleneck, then the head. Networks
    without a ``backbone`` attribute are split by their own top-level children.
    """
    groups: list[list[str]] = []
    trunk = getattr(model, "backbone", None)
    if trunk is not None:
        for child_name, child in trunk.named_children():
            names = [f"backbone.{child_name}.{n}" for n, _ in child.named_parameters()]
            if names:
                groups.append(names)
        for part in ("bottleneck", "head"):
            module = getattr(model, part, None)
            names = [f"{part}.{n}" for n, _ in module.named_parameters()] if module is not None else []
            if names:
                groups.append(names)
    else:
        for child_name, child in model.named_children():
            names = [f"{child_name}.{n}" for n, _ in child.named_parameters()]
            if names:
                groups.append(names)
    return groups


def trainable_depth(model: nn.Module, depth: int) -> list[str]:
    """Fix every block except the last ``depth`` ones (``depth=1``: only the head trains)."""
    groups = blocks(model)
    if depth < 1:
        raise TransferkitError(f"trainable depth must be >= 1 (the head), got {depth}.")
    fixed = [n for g in groups[: max(0, len(groups) - depth)] for n in g]
    params = dict(model.named_parameters())
    for n in fixed:
        params[n].requires_grad_(False)
    return fixed


def unfrozen_blocks(epoch: int, every: int, n_blocks: int) -> int:
    """How many top blocks train in ``epoch`` (0-based) under gradual unfreezing."""
    return min(n_blocks, 1 + epoch // every)


def eval_frozen_modules(model: nn.Module) -> None:
    """Put every module whose parameters are all fixed in eval mode, with everything inside it.

    A frozen trunk must compute the features it was trained to compute: its BatchNorm layers keep
    their statistics, and its dropout and stochastic depth (EfficientNet's drop-connect) stay off,
    else a linear probe is fitted on noisy features (LeNet's trunk drops half of them) and scored on
    clean ones. A dropout layer outside any fully fixed module (in a head, or between a fixed and a
    trained layer) keeps regularizing what trains.
    """
    for module in model.modules():
        if module.training:
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()


def parse_lr_mult(entries: Sequence[str]) -> list[tuple[str, float]]:
    """``["backbone.*:0.1"]`` -> ``[("backbone.*", 0.1)]``, with a clear error for bad entries."""
    out = []
    for entry in entries:
        pattern, sep, value = str(entry).rpartition(":")
        try:
            mult = float(value)
        except ValueError:
            mult = -1.0
        if not sep or not pattern or not (math.isfinite(mult) and mult >= 0):  # nan/inf: a NaN network
            raise TransferkitError(
                f"lr_mult entry '{entry}' must look like PATTERN:MULTIPLIER with a finite multiplier >= 0, "
                "for example 'backbone.*:0.1'."
            )
        out.append((pattern, mult))
    return out


def parameter_groups(
    model: nn.Module, lr: float, lr_mult: Sequence[str] = (), extra: Iterable[nn.Parameter] = ()
) -> list[dict]:
    """Optimizer groups: parameters matching an ``lr_mult`` pattern (first match wins) get
    ``lr * multiplier``; all others, and ``extra`` (a method's own modules), get ``lr``.

    Fixed parameters are included: they get no gradient, so the optimizer leaves them alone, and
    gradual unfreezing can hand them to the optimizer later without rebuilding it.
    """
    rules = parse_lr_mult(lr_mult)
    for pattern, _ in rules:
        _matching(model, [pattern], "lr_mult")
    grouped: dict[float, list] = {}
    for name, p in model.named_parameters():
        mult = next(
            (m for pat, m in rules for q in expand_patterns([pat]) if fnmatch.fnmatchcase(name, q)), 1.0
        )
        grouped.setdefault(mult, []).append(p)
    grouped.setdefault(1.0, []).extend(extra)
    return [{"params": ps, "lr": lr * m, "lr_mult": m} for m, ps in grouped.items() if ps]


class Regularizer:
    r"""``l2-sp``, ``l2`` or ``l1`` penalty on a network's parameters, as a callable ``reg(model)``.

    ``l2-sp``: :math:`\frac{\alpha}{2}\sum_{w \in S}\|w - w^0\|^2 + \frac{\beta}{2}\sum_{w \notin S}\|w\|^2`
    with :math:`w^0` the parameters' values when the regularizer was made (the source or pretrained
    model) and :math:`S` every parameter not matching ``new``: the parts that were freshly initialized
    rather than transferred, which have no source value to be pulled towards. By default these are
    the model's ``new_parameters`` (a :class:`~transferkit.nn.model.Network` built by
    ``build_network`` names its head and bottleneck, one loaded from a saved model its head), else the
    head. ``l2``: :math:`\frac{\alpha}{2}\sum\|w\|^2`; ``l1``: :math:`\alpha\sum|w|`. Fixed
    parameters are left out (their penalty is a constant).
    """

    KINDS = ("l2-sp", "l2", "l1")

    def __init__(
        self, model: nn.Module, kind: str, alpha: float, beta: float = 0.01, new: Sequence[str] | None = None
    ):
        if kind not in self.KINDS:
            raise TransferkitError(f"unknown regularizer {kind!r}; use none, {', '.join(self.KINDS)}.")
        try:
            alpha, beta = float(alpha), float(beta)
        except (TypeError, ValueError):
            raise TransferkitError(
                f"regularization strengths reg_alpha and reg_beta must be numbers, got {alpha!r}, {beta!r}."
            ) from None
        if not (math.isfinite(alpha) and math.isfinite(beta) and alpha >= 0 and beta >= 0):
            raise TransferkitError(
                f"regularization strengths reg_alpha and reg_beta must be finite numbers >= 0, got {alpha} "
                f"and {beta}."
            )
        if new is None:
            new = tuple(getattr(model, "new_parameters", None) or ("head.*",))
        self.kind, self.alpha, self.beta = kind, alpha, beta
        new_names = set(_matching(model, new, "reg_new")) if kind == "l2-sp" else set()
        # the starting values w^0 (only L2-SP reads them; l2 and l1 pull towards zero)
        self.anchor = (
            {n: p.detach().clone() for n, p in model.named_parameters() if n not in new_names}
            if kind == "l2-sp"
            else {}
        )
        self.new = new_names

    def __call__(self, model: nn.Module) -> torch.Tensor:
        total_sp, total_new = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if self.kind == "l1":
                total_sp.append(p.abs().sum())
            elif self.kind == "l2":
                total_sp.append(p.pow(2).sum())
            elif name in self.new:
                total_new.append(p.pow(2).sum())
            else:
                total_sp.append((p - self.anchor[name].to(p.device)).pow(2).sum())
        zero = next(model.parameters()).new_zeros(())
        sp = torch.stack(total_sp).sum() if total_sp else zero
        new = torch.stack(total_new).sum() if total_new else zero
        if self.kind == "l1":
            return self.alpha * sp
        return 0.5 * self.alpha * sp + 0.5 * self.beta * new
