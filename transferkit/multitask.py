r"""Multi-task learning: one shared trunk, one linear head per task, and a rule for mixing the losses.

A :class:`MultiTaskNetwork` maps a batch :math:`x` to shared features :math:`h = f_\theta(x)` and, for
each task :math:`i`, logits :math:`g_i(h)`. Each task has its cross-entropy loss :math:`L_i`. A
*weighting* turns the task losses into the one scalar that is back-propagated
(:meth:`Weighting.combine`):

``static`` (:class:`StaticWeights`)
    :math:`L = \sum_i \lambda_i L_i` with fixed :math:`\lambda_i \ge 0` (default all 1).
``uncertainty`` (:class:`UncertaintyWeights`, Kendall, Gal & Cipolla, CVPR 2018)
    :math:`L = \sum_i e^{-s_i} L_i + \tfrac{1}{2} s_i` with learnable :math:`s_i = \log\sigma_i^2`.
``pcgrad`` (:class:`PCGrad`, Yu et al., NeurIPS 2020)
    the loss :math:`\sum_i L_i`, but on the shared parameters the gradient is the sum of the task
    gradients after each has been projected off the gradients it conflicts with.

:func:`fit_multitask` trains such a network and records, per epoch, each task's loss and accuracy;
:func:`evaluate` gives the per-task accuracy on held-out data. One model per task is the same call
with one task in ``targets``.

Why this loop is not :class:`transferkit.nn.trainer.Trainer`: the trainer's batches are
``(X, y, sample_domain)`` with *one* label per row and a source/target split, and a method hands it
one finished loss. Here a row carries one label per task and PCGrad needs the per-task gradients of
the shared parameters before the optimizer step. The short loop below reuses the trainer's pieces
instead: :func:`~transferkit.nn.trainer.seed_everything`, its optimizer conventions (``sgd`` with
momentum 0.9 and weight decay 5e-4, ``adam``, ``adamw``), the trunks of :mod:`transferkit.nn.model`
and :func:`transferkit.progress.progress_bar`.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from transferkit.errors import TransferkitError, check_whole, is_whole, unknown_name

__all__ = [
    "WEIGHTINGS",
    "MultiTaskNetwork",
    "PCGrad",
    "StaticWeights",
    "UncertaintyWeights",
    "Weighting",
    "evaluate",
    "fit_multitask",
    "make_weighting",
    "pcgrad_project",
    "predict",
]


class MultiTaskNetwork(nn.Module):
    """A shared ``trunk`` (``feature_dim`` outputs) and one linear head per task.

    ``task_classes`` maps each task's name to its number of classes; ``forward`` returns a dict
    task -> logits, in the order of ``task_classes``. :func:`fit_multitask` also sets ``in_shape``
    (the shape of a training row) and ``weighting`` (the trained :class:`Weighting`, kept as a plain
    attribute: it is not a submodule, so it is not in ``state_dict()``).
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, task_classes: Mapping[str, int]):
        super().__init__()
        if not task_classes:
            raise TransferkitError("a multi-task network needs at least one task in task_classes.")
        for task, k in task_classes.items():
            if not is_whole(k):  # 2.7 classes used to become 2, silently
                raise TransferkitError(
                    f"the number of classes of task '{task}' must be a whole number, got {k!r}."
                )
            if int(k) < 2:
                raise TransferkitError(f"task '{task}' has {k} class(es); a classification task needs >= 2.")
        self.trunk = trunk
        self.feature_dim = int(feature_dim)
        self.task_classes = {str(t): int(k) for t, k in task_classes.items()}
        self.heads = nn.ModuleDict({t: nn.Linear(self.feature_dim, k) for t, k in self.task_classes.items()})

    @property
    def tasks(self) -> list[str]:
        return list(self.task_classes)

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trunk's trainable parameters (those every task's loss reaches)."""
        return [p for p in self.trunk.parameters() if p.requires_grad]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {t: head(h) for t, head in self.heads.items()}


class Weighting(nn.Module):
    """How task losses become the one loss to back-propagate.

    ``combine(losses, shared_params)`` takes a dict task -> scalar loss and the shared parameters and
    returns a scalar tensor; calling ``backward`` on it gives every parameter its gradient under the
    scheme. ``weights()`` reports the current effective weight of each task (for the history). A
    weighting may own parameters (they are trained with the network's optimizer, without weight
    decay).
    """

    name = "weighting"

    def check_tasks(self, tasks: Sequence[str]) -> None:
        """Raise a :class:`TransferkitError` when the weighting does not fit these tasks."""

    def reset(self) -> None:
        """Return to the state of a new weighting (:func:`fit_multitask` calls it before training).

        A weighting that learns or draws random numbers overrides it, so that a fit gives the same
        result with a used weighting as with a new one.
        """

    def combine(
        self, losses: Mapping[str, torch.Tensor], shared_params: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, float]:
        return {}


class StaticWeights(Weighting):
    r"""Fixed weights: :math:`L = \sum_i \lambda_i L_i`.

    ``weights``: task -> :math:`\lambda_i \ge 0` (not all zero); ``None`` gives every task weight 1
    (the plain sum).
    """

    name = "static"

    def __init__(self, weights: Mapping[str, float] | None = None):
        super().__init__()
        if weights is not None:
            weights = _number_per_task(weights)
            bad = {t: w for t, w in weights.items() if not np.isfinite(w) or w < 0}
            if bad:
                raise TransferkitError(f"task weights must be finite and >= 0, got {bad}.")
            if weights and not any(weights.values()):
                raise TransferkitError("the task weights are all zero; at least one must be > 0.")
        self.lambdas = weights

    def check_tasks(self, tasks: Sequence[str]) -> None:
        if self.lambdas is None:
            return
        missing = [t for t in tasks if t not in self.lambdas]
        extra = [t for t in self.lambdas if t not in tasks]
        if missing or extra:
            raise TransferkitError(
                f"the static weights name tasks {sorted(self.lambdas)} but the tasks are {list(tasks)}"
                + (f" (no weight for {missing})" if missing else "")
                + (f" (unknown {extra})" if extra else "")
                + "; give one weight per task."
            )

    def combine(self, losses, shared_params=()):
        self.check_tasks(list(losses))
        lam = self.lambdas or {}
        return sum(lam.get(t, 1.0) * loss for t, loss in losses.items())

    def weights(self) -> dict[str, float]:
        return dict(self.lambdas) if self.lambdas is not None else {}


def _number_per_task(weights) -> dict[str, float]:
    """``weights`` (task -> number) with the task names as strings, or a :class:`TransferkitError`."""
    if not isinstance(weights, Mapping):
        raise TransferkitError(
            f"task weights must be a dict task name -> weight (for example {{'a': 1.0, 'b': 0.5}}), got a "
            f"{type(weights).__name__}."
        )
    out: dict[str, float] = {}
    for task, w in weights.items():
        if str(task) in out:
            raise TransferkitError(f"two task weights are both named '{task}' once written as text.")
        try:
            out[str(task)] = float(w)
        except (TypeError, ValueError):
            raise TransferkitError(f"the weight of task '{task}' must be a number, got {w!r}.") from None
    return out


class UncertaintyWeights(Weighting):
    r"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), classification form.

    For a softmax classifier with temperature :math:`\sigma_i^2` the paper's approximate negative
    log-likelihood is :math:`\frac{1}{\sigma_i^2} L_i + \log\sigma_i`. With the learnable
    :math:`s_i = \log\sigma_i^2` (initialised to 0, so every task starts at weight 1) this is

    .. math:: L = \sum_i e^{-s_i} L_i + \tfrac{1}{2} s_i .

    At the optimum over :math:`s_i`, :math:`e^{-s_i} = 1 / (2 L_i)`: a task with a larger loss gets
    a smaller weight. (The often used variant :math:`e^{-s_i} L_i + s_i` has the optimum
    :math:`e^{-s_i} = 1/L_i`, the same relative weights at twice the scale.) ``weights()`` reports
    :math:`e^{-s_i}`.

    Under SGD the weights also scale the step size: while every loss is large (2.3 for a fresh
    10-class head) they fall well below 1 within the first steps and slow a hard task down further
    (in ``benchmarks/multitask.py`` the LeNet digit task stalls this way). Adam is nearly insensitive
    to that common scale.
    """

    name = "uncertainty"

    def __init__(self, tasks: Sequence[str]):
        super().__init__()
        tasks = [str(t) for t in tasks]
        if not tasks:
            raise TransferkitError("uncertainty weighting needs at least one task.")
        if len(set(tasks)) != len(tasks):
            raise TransferkitError(f"task names must be unique, got {tasks}.")
        self.tasks = tasks
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def reset(self) -> None:
        """Log variances back to 0 (every task at weight 1)."""
        with torch.no_grad():
            self.log_vars.zero_()
        self.log_vars.grad = None

    def check_tasks(self, tasks: Sequence[str]) -> None:
        if sorted(tasks) != sorted(self.tasks):
            raise TransferkitError(
                f"this uncertainty weighting was built for tasks {self.tasks}, got {list(tasks)}."
            )

    def combine(self, losses, shared_params=()):
        self.check_tasks(list(losses))
        total = torch.zeros((), device=self.log_vars.device)
        for i, t in enumerate(self.tasks):
            s = self.log_vars[i]
            total = total + torch.exp(-s) * losses[t] + 0.5 * s
        return total

    def weights(self) -> dict[str, float]:
        w = torch.exp(-self.log_vars.detach()).cpu().tolist()
        return dict(zip(self.tasks, w))


def pcgrad_project(grads: torch.Tensor, order: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    r"""PCGrad's projection of per-task gradients (rows of ``grads``, shape ``(T, P)``).

    For each task :math:`i`, starting from :math:`g_i^{PC} = g_i`, for each other task :math:`j` in
    ``order[i]`` (default: increasing index): if :math:`g_i^{PC} \cdot g_j < 0`,

    .. math:: g_i^{PC} \leftarrow g_i^{PC} - \frac{g_i^{PC} \cdot g_j}{\lVert g_j \rVert^2}\, g_j .

    The projections use the *original* :math:`g_j`. Returns the projected rows :math:`g_i^{PC}`; the
    update direction is their sum.
    """
    n = grads.shape[0]
    out = grads.clone()
    for i in range(n):
        others = order[i] if order is not None else [j for j in range(n) if j != i]
        g = out[i]
        for j in others:
            if j == i:
                continue
            dot = torch.dot(g, grads[j])
            if dot < 0:
                g = g - dot / grads[j].pow(2).sum().clamp_min(1e-20) * grads[j]
        out[i] = g
    return out


class PCGrad(Weighting):
    r"""Projecting conflicting gradients (Yu et al., "Gradient Surgery for Multi-Task Learning",
    NeurIPS 2020).

    With :math:`g_i = \nabla_\theta L_i` on the shared parameters :math:`\theta` (all of them as one
    vector), each :math:`g_i` is projected onto the normal plane of every :math:`g_j` it conflicts
    with (:math:`g_i \cdot g_j < 0`), the :math:`j` taken in a random order drawn per step from a
    generator seeded with ``seed`` (:func:`pcgrad_project`). The shared parameters get
    :math:`\sum_i g_i^{PC}`; each head gets the gradient of its own loss.

    ``combine`` returns :math:`\sum_i L_i + \sum_p \langle p - \mathrm{sg}(p), \delta_p\rangle` with
    :math:`\delta = \sum_i g_i^{PC} - \sum_i g_i` held constant (``sg``: stop-gradient): its value is
    the plain sum :math:`\sum_i L_i`, and its gradient on the shared parameters is exactly the
    PCGrad direction, so it works with any optimizer. Cost: one extra backward pass per task.
    """

    name = "pcgrad"

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def reset(self) -> None:
        """The generator of the projection orders back to its seed."""
        self._rng = np.random.default_rng(self.seed)

    def combine(self, losses, shared_params):
        tasks = list(losses)
        total = sum(losses.values())
        params = [p for p in shared_params if p.requires_grad]
        if len(tasks) < 2 or not params or not torch.is_grad_enabled():
            return total
        rows = []
        for t in tasks:
            gs = torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                   for g, p in zip(gs, params)]))  # fmt: skip
        G = torch.stack(rows)
        n = len(tasks)
        order = [[int(j) for j in self._rng.permutation([j for j in range(n) if j != i])] for i in range(n)]
        delta = pcgrad_project(G, order).sum(0) - G.sum(0)
        correction = torch.zeros((), device=G.device, dtype=G.dtype)
        offset = 0
        for p in params:
            d = delta[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            correction = correction + (p * d).sum() - (p.detach() * d).sum()
        return total + correction


WEIGHTINGS = ("static", "uncertainty", "pcgrad")


def make_weighting(
    weighting: str | Weighting,
    tasks: Sequence[str],
    *,
    weights: Mapping[str, float] | None = None,
    seed: int = 0,
) -> Weighting:
    """A :class:`Weighting` from its name (``static``, ``uncertainty``, ``pcgrad``) or as given.

    ``weights`` go with ``static`` or a :class:`StaticWeights` given without weights of its own (a
    copy of it then gets them); any other weighting refuses them.
    """
    if isinstance(weighting, StaticWeights) and weights is not None:
        lambdas = StaticWeights(weights).lambdas
        if weighting.lambdas is not None and weighting.lambdas != lambdas:
            raise TransferkitError(
                f"the StaticWeights has its own weights {weighting.lambdas}, and weights={lambdas} were "
                "given too; give them in one place."
            )
        w = copy.deepcopy(weighting)
        w.lambdas = lambdas
    elif weights is not None and not (isinstance(weighting, str) and weighting == "static"):
        given = f"'{weighting}'" if isinstance(weighting, str) else f"a {type(weighting).__name__}"
        raise TransferkitError(
            f"task weights are only used with weighting='static' (or a StaticWeights), not {given}."
        )
    elif isinstance(weighting, Weighting):
        w = weighting
    elif weighting == "static":
        w = StaticWeights(weights)
    elif weighting == "uncertainty":
        w = UncertaintyWeights(tasks)
    elif weighting == "pcgrad":
        w = PCGrad(seed)
    else:
        raise unknown_name("weighting", str(weighting), WEIGHTINGS)
    w.check_tasks(list(tasks))
    return w


def _check_data(X, targets) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    from transferkit.domains import check_features

    if not isinstance(targets, Mapping) or not targets:
        raise TransferkitError("targets must be a non-empty dict task name -> label array.")
    X = check_features(X)
    lengths = {}
    ys, classes = {}, {}
    names: dict[str, object] = {}
    for task, y in targets.items():
        if str(task) in names:
            raise TransferkitError(
                f"tasks {names[str(task)]!r} and {task!r} both become the task name '{task}'; give every "
                "task a distinct name."
            )
        names[str(task)] = task
        y = np.asarray(y)
        if y.ndim != 1:
            raise TransferkitError(f"the labels of task '{task}' must be 1-d, got shape {y.shape}.")
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iub":
            raise TransferkitError(
                f"the labels of task '{task}' must be integer class indices, got dtype {y.dtype}; encode "
                "them with sklearn.preprocessing.LabelEncoder."
            )
        lengths[str(task)] = len(y)
        ys[str(task)] = y.astype(np.int64)
    if len(set(lengths.values())) > 1 or next(iter(lengths.values())) != X.shape[0]:
        raise TransferkitError(
            f"every task needs one label per row of X ({X.shape[0]} rows); got label arrays of lengths "
            f"{lengths}."
        )
    for task, y in ys.items():
        if y.min() < 0:
            raise TransferkitError(
                f"task '{task}' has negative labels; multi-task training needs every label known "
                "(class indices 0..K-1)."
            )
        if np.unique(y).size < 2:
            raise TransferkitError(
                f"task '{task}' has only one class ({int(y[0])}) in the training data; a task needs >= 2."
            )
        present = np.unique(y).size
        if y.max() >= MAX_HEAD and y.max() >= 2 * present:  # codes, not indices: a head of y.max() outputs
            raise TransferkitError(
                f"task '{task}' has labels up to {int(y.max())} for {present} classes: a head of "
                f"{int(y.max()) + 1} outputs. Encode the labels as class indices 0..K-1 first "
                "(sklearn.preprocessing.LabelEncoder)."
            )
        classes[task] = int(y.max()) + 1
    return X, ys, classes


MAX_HEAD = 10_000
"""Labels from this value on, for at most half as many classes, are codes rather than class indices."""


def _is_number(value) -> bool:
    """A real number (Python's or numpy's), not a bool nor a string such as ``"0.1"``."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _build_trunk(trunk, in_shape: tuple[int, ...], trunk_kwargs: Mapping | None):
    from transferkit.nn.model import lenet, mlp

    if isinstance(trunk, tuple) and len(trunk) == 2 and isinstance(trunk[0], nn.Module):
        if trunk_kwargs:
            raise TransferkitError(
                "trunk_kwargs configure a built-in trunk ('mlp', 'lenet'); a (module, feature size) trunk "
                "is already built: leave trunk_kwargs out."
            )
        check_whole("the feature size of a (module, feature size) trunk", trunk[1], 1)
        return trunk
    if trunk_kwargs is not None and not isinstance(trunk_kwargs, Mapping):
        raise TransferkitError(f"trunk_kwargs must be a dict, got a {type(trunk_kwargs).__name__}.")
    kwargs = dict(trunk_kwargs or {})
    if trunk == "mlp":
        build, first = mlp, int(np.prod(in_shape))
    elif trunk == "lenet":
        if len(in_shape) != 3 or tuple(in_shape[1:]) != (32, 32):
            raise TransferkitError(f"the lenet trunk needs (C, 32, 32) images, got rows of shape {in_shape}.")
        build, first = lenet, in_shape[0]
    else:
        raise unknown_name("trunk", str(trunk), ["lenet", "mlp"])
    try:
        return build(first, **kwargs)
    except (TypeError, ValueError) as exc:
        takes = list(inspect.signature(build).parameters)[1:]
        raise TransferkitError(
            f"trunk_kwargs {kwargs} do not fit the {trunk} trunk ({exc}); it takes "
            f"{', '.join(takes) if takes else 'no trunk_kwargs'}."
        ) from None


@torch.no_grad()
def _check_trunk(body: nn.Module, dim: int, rows: torch.Tensor) -> None:
    """A trunk built by the caller takes the training rows and gives ``dim`` features per row (else the
    first step fails deep inside torch with a matrix-size message)."""
    was_training = body.training
    body.eval()  # no BatchNorm statistic is updated and no dropout mask drawn
    try:
        out = body(rows)
    except RuntimeError as exc:
        raise TransferkitError(
            f"the trunk cannot take the training rows of shape {tuple(rows.shape[1:])} ({exc}); build it for "
            "rows of that shape."
        ) from None
    finally:
        body.train(was_training)
    if tuple(out.shape[1:]) != (dim,):
        raise TransferkitError(
            f"the trunk gives features of shape {tuple(out.shape[1:])} per row, but its feature size was "
            f"given as {dim}; pass (module, {out.shape[1] if out.dim() == 2 else 'its output width'})."
        )


def _optimizer(params, weighting_params, optimizer: str, lr: float, momentum: float, weight_decay: float):
    groups = [{"params": params}]
    if weighting_params:
        groups.append({"params": weighting_params, "weight_decay": 0.0})
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
        return cls(groups, lr=lr, weight_decay=weight_decay)
    raise unknown_name("optimizer", optimizer, ["sgd", "adam", "adamw"])


def fit_multitask(
    X, targets: Mapping[str, np.ndarray], *, trunk="mlp", trunk_kwargs: Mapping | None = None,
    weighting: str | Weighting = "static", weights: Mapping[str, float] | None = None, epochs: int = 10,
    batch_size: int = 64, lr: float = 0.01, optimizer: str = "sgd", momentum: float = 0.9,
    weight_decay: float = 5e-4, seed: int = 0, eval_sets: Mapping | None = None, device: str = "cpu",
    progress: bool = False,
) -> tuple[MultiTaskNetwork, list[dict]]:  # fmt: skip
    r"""Train a shared trunk with one head per task; return ``(model, history)``.

    ``X``: rows (vectors, or (C, H, W) images for ``lenet``); ``targets``: task -> integer labels
    (one per row, classes 0..K-1, at least 2 classes). ``trunk``: ``"mlp"`` (``trunk_kwargs``:
    ``hidden``, ``dropout``), ``"lenet"``, or a ``(module, feature_dim)`` pair (then built by the
    caller, so seed before building it). ``weighting``: ``"static"`` (``weights`` task ->
    :math:`\lambda_i`, default all 1), ``"uncertainty"``, ``"pcgrad"`` or a :class:`Weighting`.
    The weighting's own parameters get no weight decay. A :class:`Weighting` object is first
    :meth:`~Weighting.reset` (uncertainty: log variances 0; PCGrad: its generator back to its
    ``seed``), then trained in place, so a fit gives the same result whether the weighting is named or
    given as an object, new or already used. The trained weighting is ``model.weighting`` (the object
    passed, when one was); its learned weights are also in ``history``.

    With a trunk that has BatchNorm layers (a custom one), a last batch of a single row is left out
    of each epoch: BatchNorm cannot train on one row.

    ``history``: one dict per epoch with ``loss`` (the combined loss), ``<task>_loss`` and
    ``<task>_acc`` (training batches, in training mode), ``weight_<task>`` (the current effective
    weights, when the weighting has them), ``seconds``, and ``<name>_<task>_acc`` for every
    ``eval_sets`` entry ``name -> (X, targets)``. Two runs with the same ``seed`` are identical on
    the CPU.
    """
    from transferkit.nn.trainer import seed_everything
    from transferkit.progress import progress_bar

    X, ys, classes = _check_data(X, targets)
    for name, value in {"epochs": epochs, "batch_size": batch_size}.items():
        check_whole(name, value, 1)  # 1.7 epochs used to train one, silently
    check_whole("seed", seed, 0)
    if not (_is_number(lr) and np.isfinite(lr) and lr > 0):
        raise TransferkitError(f"the learning rate lr must be a finite number > 0, got {lr!r}.")
    for name, value in {"momentum": momentum, "weight_decay": weight_decay}.items():
        if not (_is_number(value) and np.isfinite(value) and value >= 0):
            raise TransferkitError(f"{name} must be a finite number >= 0, got {value!r}.")
    tasks = list(ys)
    in_shape = tuple(int(s) for s in X.shape[1:])
    _check_eval_sets(eval_sets, in_shape, tasks)  # before training, not after the first epoch
    seed_everything(seed)
    weigher = make_weighting(weighting, tasks, weights=weights, seed=seed)
    weigher.reset()  # a used weighting starts where a new one does
    body, dim = _build_trunk(trunk, X.shape[1:], trunk_kwargs)
    model = MultiTaskNetwork(body, dim, classes)
    model.in_shape = in_shape  # what predict checks new rows against
    object.__setattr__(model, "weighting", weigher)  # for the user; not a submodule (no state_dict entry)
    # BatchNorm cannot train on one row: such a network skips a last batch of a single row
    batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if batch_norm and int(batch_size) < 2:
        raise TransferkitError(f"batch_size must be >= 2 with a trunk that has BatchNorm, got {batch_size}.")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise TransferkitError(
            f"device {device!r} is not a torch device ({exc}); use 'cpu' or 'cuda'."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TransferkitError(f"device {device!r}: this machine has no CUDA GPU; use device='cpu'.")
    model.to(dev)
    weigher.to(dev)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if isinstance(trunk, tuple):  # built by the caller: check it fits the rows before training
        _check_trunk(body, dim, Xt[:2].to(dev))
    opt = _optimizer(
        list(model.parameters()), list(weigher.parameters()), optimizer, lr, momentum, weight_decay
    )
    Yt = {t: torch.as_tensor(y) for t, y in ys.items()}
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    step = 0
    for epoch in progress_bar(range(int(epochs)), desc="epochs", disable=not progress):
        model.train()
        started = time.perf_counter()
        sums = {k: 0.0 for k in ["loss", *(f"{t}_loss" for t in tasks)]}
        correct = dict.fromkeys(tasks, 0)
        seen = 0
        batches = torch.randperm(len(Xt), generator=gen).split(int(batch_size))
        if batch_norm and len(batches[-1]) == 1:
            batches = batches[:-1]
        for idx in batches:
            xb = Xt[idx].to(dev)
            logits = model(xb)
            yb = {t: Yt[t][idx].to(dev) for t in tasks}
            losses = {t: F.cross_entropy(logits[t], yb[t]) for t in tasks}
            loss = weigher.combine(losses, model.shared_parameters())
            if not torch.isfinite(loss):
                raise TransferkitError(
                    f"the loss became {float(loss.detach())} at step {step} (epoch {epoch + 1}); lower the "
                    "learning rate."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            n = len(idx)
            seen += n
            sums["loss"] += float(loss.detach()) * n
            for t in tasks:
                sums[f"{t}_loss"] += float(losses[t].detach()) * n
                correct[t] += int((logits[t].detach().argmax(1) == yb[t]).sum())
        record = {"epoch": epoch + 1, "step": step, **{k: v / seen for k, v in sums.items()}}
        record.update({f"{t}_acc": correct[t] / seen for t in tasks})
        record.update({f"weight_{t}": w for t, w in weigher.weights().items()})
        record["seconds"] = round(time.perf_counter() - started, 4)
        for name, (Xe, ye) in (eval_sets or {}).items():
            record.update({f"{name}_{t}_acc": a for t, a in evaluate(model, Xe, ye).items()})
        history.append(record)
    return model, history


@torch.no_grad()
def predict(model: MultiTaskNetwork, X, batch_size: int = 512) -> dict[str, np.ndarray]:
    """Predicted class per task: task -> array of labels."""
    from transferkit.domains import check_features

    X = check_features(X)  # a 1-d row, NaN: clear errors
    check_whole("batch_size", batch_size, 1)
    shape = getattr(model, "in_shape", None)
    if shape is not None and tuple(X.shape[1:]) != tuple(shape):
        raise TransferkitError(
            f"X has rows of shape {tuple(X.shape[1:])}, but the network was trained on rows of shape {shape}."
        )
    model.eval()
    dev = next(model.parameters()).device
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    out: dict[str, list] = {t: [] for t in model.tasks}
    for i in range(0, len(Xt), batch_size):
        for t, z in model(Xt[i : i + batch_size].to(dev)).items():
            out[t].append(z.argmax(1).cpu())
    return {t: torch.cat(v).numpy() for t, v in out.items()}


def _eval_targets(targets, n: int, tasks: Sequence[str], where: str = "") -> dict[str, np.ndarray]:
    """``targets`` (task -> labels of ``n`` rows) with the task names as strings, or a clear error."""
    if not isinstance(targets, Mapping):
        raise TransferkitError(
            f"{where}targets must be a dict task name -> label array, got a {type(targets).__name__}."
        )
    unknown = [t for t in targets if str(t) not in tasks]
    if unknown:
        raise TransferkitError(f"{where}{unknown_name('task', str(unknown[0]), tasks)}")
    out = {}
    for t, y in targets.items():
        if str(t) in out:
            raise TransferkitError(f"{where}two tasks are named '{t}' once written as text.")
        y = np.asarray(y)
        if y.ndim != 1:
            raise TransferkitError(f"{where}the labels of task '{t}' must be 1-d, got shape {y.shape}.")
        if len(y) != n:
            raise TransferkitError(f"{where}X has {n} rows but task '{t}' has {len(y)} labels.")
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iub":  # NaN or 1.5 used to be scored as a wrong prediction, silently
            got = (
                "values that are not whole numbers (NaN or fractions)"
                if y.dtype.kind == "f"
                else f"dtype {y.dtype}"
            )
            raise TransferkitError(
                f"{where}the labels of task '{t}' must be integer class indices (as in training), got {got}."
            )
        if len(y) and y.min() < 0:  # -1 (unknown) used to be scored as a wrong prediction, silently
            raise TransferkitError(
                f"{where}task '{t}' has negative labels; every scored label must be known (class indices "
                "0..K-1, as in training): leave the rows without a label for this task out of its scoring."
            )
        out[str(t)] = y
    return out


def _check_eval_sets(eval_sets, in_shape: tuple[int, ...], tasks: Sequence[str]) -> None:
    """Every ``eval_sets`` entry is a name -> ``(X, targets)`` pair that :func:`evaluate` can score."""
    from transferkit.domains import check_features

    if eval_sets is None:
        return
    if not isinstance(eval_sets, Mapping):
        raise TransferkitError(
            f"eval_sets must be a dict name -> (X, targets), got a {type(eval_sets).__name__}."
        )
    for name, pair in eval_sets.items():
        where = f"eval_sets['{name}']: "
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            got = f"type {type(pair).__name__}" + (
                f" of length {len(pair)}" if isinstance(pair, (tuple, list)) else ""
            )
            raise TransferkitError(
                f"{where}each entry must be a pair (X, targets), targets a dict task -> labels; got {got}."
            )
        Xe, ye = pair
        Xe = check_features(Xe, name=f"eval_sets['{name}'] X")
        if tuple(Xe.shape[1:]) != in_shape:
            raise TransferkitError(
                f"{where}X has rows of shape {tuple(Xe.shape[1:])}, but the training rows have shape "
                f"{in_shape}."
            )
        _eval_targets(ye, len(Xe), tasks, where)


def evaluate(model: MultiTaskNetwork, X, targets: Mapping[str, np.ndarray], batch_size: int = 512) -> dict:
    """Accuracy per task (a fraction in [0, 1]) for the tasks named in ``targets``."""
    from transferkit.domains import check_features

    unknown = [t for t in targets if str(t) not in model.task_classes] if isinstance(targets, Mapping) else []
    if unknown:  # an unknown task first, before anything about X
        raise unknown_name("task", str(unknown[0]), model.tasks)
    n = len(check_features(X))  # a 1-d row is an error here, not n features counted as rows
    targets = _eval_targets(targets, n, model.tasks)
    pred = predict(model, X, batch_size)
    return {t: float(np.mean(pred[t] == y)) for t, y in targets.items()}
