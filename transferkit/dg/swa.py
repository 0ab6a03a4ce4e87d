"""ERM with stochastic weight averaging: the final network is the mean of the weights along the run."""

from __future__ import annotations

import torch
from torch import nn

from transferkit.dg.erm import ERM
from transferkit.errors import TransferkitError


class SWA(ERM):
    r"""ERM whose final weights are the running mean of the iterates (Izmailov et al., UAI 2018).

    .. math:: \bar\theta = \frac{1}{T - t_0} \sum_{t = t_0 + 1}^{T} \theta_t,
        \qquad t_0 = \lfloor \mathrm{start} \cdot T \rfloor

    where :math:`\theta_t` are the weights after optimizer step :math:`t` of :math:`T`: every step
    of the last ``1 - start`` of the run is averaged with the same weight (dense averaging, as SWAD
    does for domain generalization: Cha et al., NeurIPS 2021, who found that flat minima transfer
    better to unseen domains and that averaging reaches them). The loss is ERM's; only the weights
    the run ends with change. BatchNorm statistics, which the average of weights does not give, are
    recomputed with one pass over the training inputs (:func:`torch.optim.swa_utils.update_bn`).

    The running mean lives in the method's buffers, so checkpoints carry it and a resumed run ends
    with the same weights as an uninterrupted one. It cannot be combined with ``early_stopping``
    (which would put one epoch's weights back). Works with one training domain too, and the small
    grid is ERM's.

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.swa import SWA
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, SWA(start=0.5), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'source_ce']
    >>> int(trainer.method.n_averaged)  # the last half of the 20 steps, averaged
    10
    >>> bool((next(net.parameters()) == trainer.method.mean_0).all())  # it ends with the mean weights
    True
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    replaces_final_weights = True

    def __init__(self, start: float = 0.5, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        try:
            number = float(start)
        except (TypeError, ValueError):  # None or "x" failed inside float()
            number = float("nan")
        if not 0.0 <= number < 1.0:
            raise TransferkitError(
                f"start must be in [0, 1): the share of the run before averaging begins; got {start!r}."
            )
        self.start = float(start)

    def setup(self, model: nn.Module) -> None:
        self._names = [name for name, _ in model.named_parameters()]
        for i, (_, p) in enumerate(model.named_parameters()):
            self.register_buffer(f"mean_{i}", p.detach().clone())
        self.register_buffer("n_averaged", torch.zeros((), dtype=torch.long))

    def _means(self) -> list[torch.Tensor]:
        return [getattr(self, f"mean_{i}") for i in range(len(self._names))]

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        if step <= int(self.start * total):
            return
        n = int(self.n_averaged) + 1
        for mean, p in zip(self._means(), model.parameters()):
            mean.add_((p.detach().to(mean.dtype) - mean) / n)
        self.n_averaged.fill_(n)

    @torch.no_grad()
    def finish(self, model: nn.Module, inputs) -> None:
        if int(self.n_averaged) == 0:  # no step was averaged (a run stopped before ``start``)
            return
        for mean, p in zip(self._means(), model.parameters()):
            p.copy_(mean)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms:
            # a fixed (frozen) BatchNorm keeps the statistics it was trained with, as in every other run:
            # update_bn resets them all, so those are put back afterwards
            fixed = [m for m in norms if (ps := list(m.parameters(recurse=False)))
                     and not any(p.requires_grad for p in ps)]  # fmt: skip
            kept = [{k: v.clone() for k, v in m.state_dict().items()} for m in fixed]
            torch.optim.swa_utils.update_bn(inputs, model)
            for m, state in zip(fixed, kept):
                m.load_state_dict(state)
