"""Group DRO: minimize the worst training domain's risk (Sagawa et al., ICLR 2020)."""

from __future__ import annotations

import torch

from transferkit.deep.base import Losses, check_nonnegative
from transferkit.dg.base import DGMethod, domain_risks, source_domains, source_weights


class GroupDRO(DGMethod):
    r"""Online group distributionally robust optimization over the training domains.

    Each step, with :math:`R_g` the (weighted) risk of domain :math:`g` in the batch, the domain
    weights :math:`q` (a point of the simplex, kept across steps) take an exponentiated-gradient step
    and the network descends the :math:`q`-weighted risk (Sagawa et al., ICLR 2020, Algorithm 1):

    .. math:: q_g \leftarrow \frac{q_g\, e^{\eta R_g}}{\sum_{g'} q_{g'}\, e^{\eta R_{g'}}}, \qquad
        \mathcal{L} = \sum_g q_g R_g

    A domain absent from the batch keeps :math:`R_g = 0` (its :math:`q_g` shrinks relatively, as in
    the paper's code). A domain enters :math:`q` at its first batch with weight :math:`1/m` (of the
    :math:`m` domains seen by then; the others keep their ratios), so :math:`q` is uniform over the
    domains of the first batch, and it does not depend on how the domains are numbered; :math:`q`
    is part of the checkpoint. ``eta`` is
    :math:`\eta` (DomainBed's default 0.01, searched over :math:`10^{[-3, -1]}`). The per-domain
    weights :math:`\lambda` cancel in :math:`R_g`; per-sample weights act within each domain.
    The logged ``source_ce`` is :math:`\sum_g q_g R_g`; ``worst_risk`` is :math:`\max_g R_g` (logged,
    not optimized).

    Examples
    --------
    >>> import numpy as np
    >>> from transferkit.dg.groupdro import GroupDRO
    >>> from transferkit.nn.model import build_network
    >>> from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
    >>> rng = np.random.default_rng(0)
    >>> sd = np.repeat([0, 1, 2], 32)  # three labelled training domains (no target rows needed)
    >>> y = rng.integers(0, 2, 96); X = rng.normal(size=(96, 4)); X[:, 0] += 3 * y; X[:, 1] += sd
    >>> seed_everything(0); net = build_network("mlp", 2, in_shape=(4,), hidden=(16,))
    >>> trainer = Trainer(net, GroupDRO(eta=0.1), TrainerConfig(steps=20, batch_size=16))
    >>> record = trainer.fit(X, y, sd)[-1]  # the last epoch's mean loss and loss parts
    >>> sorted(set(record) - {"epoch", "step", "lr", "seconds"})
    ['loss', 'source_ce', 'worst_risk']
    >>> q = trainer.method.q  # the domain weights: a point of the simplex
    >>> tuple(q.shape), round(float(q.sum()), 4)
    ((3,), 1.0)
    >>> trainer.predict(rng.normal(size=(5, 4)) + [0, 4, 0, 0]).shape  # rows of a domain never seen
    (5,)
    """

    search_space = {"eta": (0.001, 0.01, 0.1)}

    def __init__(self, eta: float = 0.01, target_weight: float = 1.0):
        super().__init__(target_weight=target_weight)
        check_nonnegative(self, "eta", eta)  # a negative step would move weight to the easiest domain
        self.eta = eta
        self.register_buffer("q", torch.zeros(0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "q")
        if saved is not None and saved.shape != self.q.shape:  # q grows with the domains seen
            self.q = torch.zeros_like(saved, device=self.q.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def _admit(self, ids: torch.Tensor, device) -> None:
        """Give the domains seen for the first time their share: ``q`` is indexed by domain id, and
        an id never seen (``sample_domain`` need not count 0, 1, 2, ...) holds no mass."""
        q = self.q.to(device)
        n = int(ids.max()) + 1
        if n > len(q):
            q = torch.cat([q, torch.zeros(n - len(q), dtype=q.dtype, device=device)])
        new = ids[q[ids] == 0]
        if len(new):  # new domains start at 1/m of m domains seen, the others keep their relative weights
            seen = int((q > 0).sum())
            m = seen + len(new)
            q = q * seen / m
            q[new] = 1.0 / m
        self.q = q

    def loss(self, model, batch, progress):
        out = self.forward_source(model, batch)
        ids, risks = domain_risks(self.row_losses(out, batch), source_domains(batch), source_weights(batch))
        self._admit(ids, risks.device)
        if self.training:
            with torch.no_grad():
                q = self.q.clone()
                q[ids] = q[ids] * torch.exp(self.eta * risks.detach().float())
                self.q = q / q.sum()
        parts = {**self.supervised(out, batch), "source_ce": (self.q[ids].to(risks.dtype) * risks).sum()}
        total = sum(parts.values())
        return Losses(total, {**parts, "worst_risk": risks.detach().max()})
