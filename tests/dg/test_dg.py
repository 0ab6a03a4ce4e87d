"""Domain generalization: each loss against a naive recomputation, GroupDRO's exponentiated-gradient
weights, per-sample and per-domain weights, domain balancing, no held-out row ever seen, seeded and
resumed runs identical, the leave-one-domain-out protocol's three selections, and clear errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import Killed, kill_at

from transferkit import registry
from transferkit.dg.coral import DGCORAL
from transferkit.dg.erm import ERM
from transferkit.dg.groupdro import GroupDRO
from transferkit.dg.irm import IRM
from transferkit.dg.mixup import Mixup
from transferkit.dg.mmd import DGMMD
from transferkit.dg.protocol import SELECTIONS, leave_one_domain_out
from transferkit.dg.randconv import RandConv, consistency, random_convolution
from transferkit.dg.swa import SWA
from transferkit.dg.vrex import VREx
from transferkit.errors import TransferkitError
from transferkit.nn.batch import DABatch, DomainLoader
from transferkit.nn.model import build_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
from transferkit.nn.weights import source_weights

DG = ["dg-coral", "dg-mmd", "erm", "groupdro", "irm", "mixup", "randconv", "swa", "vrex"]
K, D_IN = 3, 6
IMAGE = (1, 2, 3)  # rows reshaped to tiny one-channel images for the methods that filter images


def _domains(n=90, seed=0, n_domains=4, spread=2.5):
    """Three classes in ``n_domains`` domains; each domain moves and stretches the class blobs."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(K, D_IN)) * spread
    out = {}
    for d in range(n_domains):
        y = rng.integers(0, K, n)
        X = (centers[y] + rng.normal(size=(n, D_IN))) * (1 + 0.2 * d) + 0.8 * d
        out[f"d{d}"] = (X.astype(np.float32), y.astype(np.int64))
    return out


def _arrays(domains, names, method=None):
    X = np.concatenate([domains[d][0] for d in names])
    y = np.concatenate([domains[d][1] for d in names])
    sd = np.concatenate([np.full(len(domains[d][1]), i) for i, d in enumerate(names)])
    if method is not None and getattr(registry.entry("method", method).load(), "needs_images", False):
        X = X.reshape(len(X), *IMAGE)  # the MLP flattens them back
    return X, y, sd


def _net(seed=0):
    seed_everything(seed)
    return build_network("mlp", K, in_shape=(D_IN,), hidden=(16,), dropout=0.0)


def _batch(seed=0, n=12, weights=False, n_domains=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D_IN, generator=g)
    y = torch.randint(0, K, (n,), generator=g)
    d = torch.arange(n) % n_domains
    w = torch.rand(n, generator=g) + 0.2 if weights else None
    return DABatch(x, y, x[:0], None, d_source=d, w_source=w)


def _parts(model, batch):
    f, logits = model.forward_features_and_logits(batch.x_source)
    w = batch.w_source if batch.w_source is not None else torch.ones(len(batch.y_source))
    return f.detach().double(), logits.detach().double(), batch.y_source, batch.d_source, w.double()


def _ce(logits, y):
    """Cross-entropy of every row, written out."""
    return torch.tensor([math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in
                         zip(logits.tolist(), y.tolist())], dtype=torch.float64)  # fmt: skip


def _wmean(v, w):
    return float(sum(a * b for a, b in zip(v.tolist(), w.tolist())) / sum(w.tolist()))


def _risks(logits, y, d, w):
    ce = _ce(logits, y)
    return {int(g): _wmean(ce[d == g], w[d == g]) for g in torch.unique(d)}


def _cov(f):
    f = f.numpy()
    return np.cov(f, rowvar=False, ddof=1)


# ---------------------------------------------------------------- each loss vs a naive recomputation


@pytest.mark.parametrize("weights", [False, True])
def test_erm_is_the_weighted_mean_cross_entropy(weights):
    model, batch = _net(), _batch(weights=weights)
    _, logits, y, _, w = _parts(model, batch)
    got = float(ERM().loss(model, batch, 0.5).total.detach())
    assert got == pytest.approx(_wmean(_ce(logits, y), w), rel=1e-5)


@pytest.mark.parametrize("weights", [False, True])
def test_dg_coral_averages_mean_and_covariance_gaps_over_domain_pairs(weights):
    model, batch = _net(), _batch(weights=weights)
    f, logits, y, d, w = _parts(model, batch)
    k = f.shape[1]
    pairs = []
    for a, b in itertools.combinations(range(3), 2):
        fa, fb = f[d == a], f[d == b]
        mean_gap = float(((fa.mean(0) - fb.mean(0)) ** 2).sum()) / k
        pairs.append(mean_gap + float(((_cov(fa) - _cov(fb)) ** 2).sum()) / (4 * k * k))
    expected = _wmean(_ce(logits, y), w) + 0.7 * np.mean(pairs)
    assert float(DGCORAL(weight=0.7).loss(model, batch, 0.5).total.detach()) == pytest.approx(
        expected, rel=1e-4
    )


def test_dg_mmd_averages_a_multi_kernel_mmd_over_domain_pairs():
    model, batch = _net(), _batch()
    f, logits, y, d, w = _parts(model, batch)
    terms = []
    for a, b in itertools.combinations(range(3), 2):
        z = torch.cat([f[d == a], f[d == b]]).numpy()
        n, na = len(z), int((d == a).sum())
        sq = np.array([[((z[i] - z[j]) ** 2).sum() for j in range(n)] for i in range(n)])
        base = sq.sum() / (n * n - n)
        kern = sum(np.exp(-sq / (m * base)) for m in (0.25, 0.5, 1.0, 2.0, 4.0)) / 5
        terms.append(kern[:na, :na].mean() + kern[na:, na:].mean() - 2 * kern[:na, na:].mean())
    expected = _wmean(_ce(logits, y), w) + 2.0 * np.mean(terms)
    assert float(DGMMD(weight=2.0).loss(model, batch, 0.5).total.detach()) == pytest.approx(
        expected, rel=1e-4
    )


def test_dg_mmd_gives_no_gradient_towards_shrinking_the_features():
    batch = _batch()
    f = torch.randn(12, 5, generator=torch.Generator().manual_seed(3))
    c = torch.tensor(1.0, requires_grad=True)
    out = type("Out", (), {"f_source": c * f})()
    (grad,) = torch.autograd.grad(DGMMD().penalty(out, batch, 0.5)["mmd"], [c])
    assert abs(float(grad)) < 1e-5


@pytest.mark.parametrize("rescale", [False, True])
def test_vrex_adds_the_variance_of_the_domain_risks_annealed_by_step(rescale):
    model, batch = _net(), _batch(weights=True)
    _, logits, y, d, w = _parts(model, batch)
    risks = np.array(list(_risks(logits, y, d, w).values()))
    method = VREx(weight=10.0, anneal_steps=2, rescale=rescale)
    for step, beta in enumerate([1.0, 1.0, 10.0, 10.0]):
        expected = _wmean(_ce(logits, y), w) + beta * np.mean((risks - risks.mean()) ** 2)
        losses = method.loss(model, batch, 0.5)
        assert float(losses.total.detach()) == pytest.approx(expected / (beta if rescale else 1), rel=1e-5)
        assert float(losses.parts["vrex"].detach()) == pytest.approx(beta * np.var(risks), rel=1e-4)
        assert int(method.update_count) == step + 1
    method.eval()  # evaluation does not count as a training step
    method.loss(model, batch, 0.5)
    assert int(method.update_count) == 4


def test_irm_penalty_equals_the_autograd_gradient_product_of_a_dummy_scale():
    model, batch = _net(), _batch(n=18, weights=True)
    d, w = batch.d_source, batch.w_source

    def naive(logits):  # DomainBed's _irm_penalty, with autograd, weighted within each half
        pens = []
        for g in range(3):
            z, t, wg = logits[d == g], batch.y_source[d == g], w[d == g]
            scale = torch.tensor(1.0, requires_grad=True)
            grads = []
            for half in (slice(0, None, 2), slice(1, None, 2)):
                ce = F.cross_entropy(z[half] * scale, t[half], reduction="none")
                loss = (wg[half] * ce).sum() / wg[half].sum()
                grads.append(torch.autograd.grad(loss, [scale], create_graph=True)[0])
            pens.append(grads[0] * grads[1])
        return torch.stack(pens).mean()

    _, logits = model.forward_features_and_logits(batch.x_source)
    ce = (w * F.cross_entropy(logits, batch.y_source, reduction="none")).sum() / w.sum()
    expected = (ce + 100.0 * naive(logits)) / 100.0
    got = IRM(weight=100.0, anneal_steps=0, rescale=True).loss(model, batch, 0.5).total
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    # the closed form has the same gradient as the autograd version
    g1 = torch.autograd.grad(got, list(model.parameters()))
    g2 = torch.autograd.grad(expected, list(model.parameters()))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("weights", [False, True])
def test_mixup_mixes_rows_of_paired_domains(weights):
    model, batch = _net(), _batch(weights=weights)
    torch.manual_seed(5)
    got = float(Mixup(alpha=0.4).loss(model, batch, 0.5).total.detach())
    torch.manual_seed(5)  # the same draws: the order of the domains, then one lambda per pair
    order = torch.randperm(3).tolist()
    beta = torch.distributions.Beta(torch.tensor(0.4), torch.tensor(0.4))
    lams = [float(beta.sample()) for _ in range(3)]
    d, x, y = batch.d_source, batch.x_source, batch.y_source
    w = batch.w_source if weights else torch.ones(len(y))
    terms = []
    for i in range(3):
        a = [r for r in range(len(y)) if d[r] == order[i]]
        b = [r for r in range(len(y)) if d[r] == order[(i + 1) % 3]]
        n, lam = min(len(a), len(b)), lams[i]
        num = den = 0.0
        for ra, rb in zip(a[:n], b[:n]):
            z = model(lam * x[ra : ra + 1] + (1 - lam) * x[rb : rb + 1]).detach().double()
            num += lam * float(w[ra]) * float(_ce(z, y[ra : ra + 1])[0])
            num += (1 - lam) * float(w[rb]) * float(_ce(z, y[rb : rb + 1])[0])
            den += lam * float(w[ra]) + (1 - lam) * float(w[rb])
        terms.append(num / den)
    assert got == pytest.approx(float(np.mean(terms)), rel=1e-5)


# ---------------------------------------------------------------- GroupDRO's weights


def test_groupdro_weights_follow_the_exponentiated_gradient_formula():
    model, method = _net(), GroupDRO(eta=0.5)
    q = np.ones(3) / 3
    for step in range(3):
        batch = _batch(seed=step, weights=True)
        _, logits, y, d, w = _parts(model, batch)
        r = _risks(logits, y, d, w)
        risks = np.array([r[g] for g in range(3)])
        q = q * np.exp(0.5 * risks)
        q = q / q.sum()
        losses = method.loss(model, batch, 0.1)
        assert np.allclose(method.q.numpy(), q, rtol=1e-5)
        assert float(losses.total.detach()) == pytest.approx(float(q @ risks), rel=1e-5)
    # a domain absent from the batch has risk 0: its weight only shrinks relative to the others
    batch = _batch(seed=9, n_domains=2)
    _, logits, y, d, w = _parts(model, batch)
    r = _risks(logits, y, d, w)
    q = q * np.exp(0.5 * np.array([r[0], r[1], 0.0]))
    method.loss(model, batch, 0.1)
    assert np.allclose(method.q.numpy(), q / q.sum(), rtol=1e-5)
    # evaluation mode leaves q alone; the state dict carries q into a fresh module
    method.eval()
    before = method.q.clone()
    method.loss(model, batch, 0.1)
    assert torch.equal(method.q, before)
    fresh = GroupDRO(eta=0.5)
    fresh.load_state_dict(method.state_dict())
    assert torch.equal(fresh.q, method.q)


def test_groupdro_does_not_depend_on_how_the_domains_are_numbered():
    # sample_domain may be any ids >= 0: ids 10, 20, 30 must give what 0, 1, 2 give (an id never
    # seen used to hold mass in q, shrinking the loss about fourfold)
    model = _net()
    compact, spread = GroupDRO(eta=0.5), GroupDRO(eta=0.5)
    for step in range(3):
        batch = _batch(seed=step, weights=True)
        renamed = DABatch(batch.x_source, batch.y_source, batch.x_target, None,
                          d_source=(batch.d_source + 1) * 10, w_source=batch.w_source)  # fmt: skip
        a, b = compact.loss(model, batch, 0.1), spread.loss(model, renamed, 0.1)
        assert float(a.total) == pytest.approx(float(b.total), rel=1e-6)
    assert torch.allclose(spread.q[[10, 20, 30]], compact.q) and float(spread.q.sum()) == pytest.approx(1.0)
    # a domain first seen later starts at 1/m of the m domains seen, the others keep their ratios
    late = GroupDRO(eta=0.5)
    late.loss(model, _batch(seed=0, n_domains=2), 0.1)
    before = late.q.clone()
    late.loss(model, _batch(seed=1, n_domains=3), 0.1)
    assert len(before) == 2 and len(late.q) == 3 and float(late.q.sum()) == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore:the source cross-entropy ended")  # 6 steps: far from fitted
@pytest.mark.parametrize("name", ["erm", "vrex", "irm", "groupdro", "dg-coral", "dg-mmd"])
def test_a_domain_weighted_zero_is_no_training_domain(name):
    # the penalties between domains saw a zero-weight domain as one with risk 0 (V-REx 100x larger)
    rng = np.random.default_rng(0)
    sd = np.repeat([0, 1, 2, 3], 40)
    X = rng.normal(size=(160, D_IN)).astype(np.float32) + sd[:, None]
    y = rng.integers(0, K, 160)
    w = np.where(sd == 3, 0.0, 1.0)

    def run(X, y, sd, w):
        model = _net()
        cfg = TrainerConfig(steps=6, batch_size=16, device="cpu", seed=0)
        Trainer(model, registry.build("method", name), cfg).fit(X, y, sd, sample_weight=w)
        return [p.detach().clone() for p in model.parameters()]

    kept = sd < 3
    weighted, removed = run(X, y, sd, w), run(X[kept], y[kept], sd[kept], None)
    assert all(torch.equal(a, b) for a, b in zip(weighted, removed))
    if name != "erm":  # the others need two training domains, and one weighted above 0 is one
        with pytest.raises(TransferkitError, match="at least 2 labelled source domains .*weight above 0"):
            run(X, y, sd, np.where(sd == 0, 1.0, 0.0))


# ---------------------------------------------------------------- weights and balancing


def test_sample_and_domain_weights_enter_the_loss_as_lambda_weighted_mean():
    sd = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, -1])
    sw = np.array([1.0, 2.0, 0.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 7.0])
    lam = source_weights(sd, sw, domain_weight={1: 2.0, 2: 0.5})
    assert np.allclose(lam, sw * np.array([1, 1, 1, 2, 2, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0]))
    model = _net()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, D_IN, generator=g), torch.randint(0, K, (12,), generator=g)
    batch = DABatch(x, y, x[:0], None, d_source=torch.as_tensor(sd[:12]), w_source=torch.as_tensor(lam[:12]))
    ce = _ce(model(x).detach().double(), y).numpy()
    expected = sum(lam[i] * ce[i] for i in range(12)) / lam[:12].sum()
    assert float(ERM().loss(model, batch, 0.0).total.detach()) == pytest.approx(expected, rel=1e-5)
    # a row of weight 0 does not count; scaling every weight changes nothing
    batch2 = DABatch(x, y, x[:0], None, w_source=torch.as_tensor(lam[:12] * 3))
    assert float(ERM().loss(model, batch2, 0.0).total.detach()) == pytest.approx(expected, rel=1e-5)
    keep = lam[:12] > 0
    plain = DABatch(x[keep], y[keep], x[:0], None, w_source=torch.as_tensor(lam[:12][keep]))
    assert float(ERM().loss(model, plain, 0.0).total.detach()) == pytest.approx(expected, rel=1e-5)


def test_balance_domains_gives_every_domain_the_same_total_weight():
    sd = np.r_[np.zeros(10, int), np.ones(30, int), np.full(60, 2), -np.ones(5, int)]
    w = source_weights(sd, balance_domains=True)
    n, n_d = 100, np.array([10, 30, 60])
    assert np.allclose(w[sd >= 0], np.repeat(n / (3 * n_d), n_d)) and np.all(w[sd < 0] == 0)
    totals = [w[sd == d].sum() for d in range(3)]
    assert np.allclose(totals, totals[0])
    sw = np.random.default_rng(0).uniform(0.1, 2.0, len(sd))
    w2 = source_weights(sd, sw, balance_domains=True)
    assert np.allclose([w2[sd == d].sum() for d in range(3)], w2[sd >= 0].sum() / 3)
    # the loader passes each row's weight on as w_source, and the domain as d_source
    X = np.c_[np.arange(len(sd), dtype=np.float32), np.zeros(len(sd), np.float32)]
    y = np.where(sd >= 0, 0, -1)
    loader = DomainLoader(X, y, sd, batch_size=16, balance_domains=True, uses_target=False)
    for batch in loader.epoch(0):
        rows = batch.x_source[:, 0].long().numpy()
        assert np.allclose(batch.w_source.numpy(), w[rows], rtol=1e-6)
        assert np.array_equal(batch.d_source.numpy(), sd[rows])
        assert len(batch.x_target) == 0


def test_weights_through_the_trainer_change_training():
    doms = _domains(n=60)
    X, y, sd = _arrays(doms, ["d0", "d1", "d2"])

    def fit(sample_weight=None, **config):
        cfg = TrainerConfig(epochs=2, batch_size=16, lr=0.05, device="cpu", **config)
        t = Trainer(_net(), ERM(), cfg)
        t.fit(X, y, sd, sample_weight=sample_weight)
        return torch.cat([p.detach().flatten() for p in t.model.parameters()])

    plain = fit()
    assert torch.allclose(plain, fit(sample_weight=np.ones(len(y))), atol=1e-6)  # unit weights: the same
    assert not torch.allclose(plain, fit(sample_weight=np.r_[np.full(60, 5.0), np.ones(120)]), atol=1e-4)
    sd_uneven = np.r_[np.zeros(20, int), np.ones(160, int)]  # 20 rows against 160: balancing matters
    cfg = TrainerConfig(epochs=2, batch_size=16, lr=0.05, device="cpu", balance_domains=True)
    t = Trainer(_net(), ERM(), cfg)
    t.fit(X, y, sd_uneven)
    assert not torch.allclose(
        plain, torch.cat([p.detach().flatten() for p in t.model.parameters()]), atol=1e-4
    )


# ---------------------------------------------------------------- what training sees


@pytest.mark.parametrize("name", ["erm", "groupdro"])
def test_target_rows_are_dropped_before_any_batch(name):
    doms = _domains(n=60)
    X, y, sd = _arrays(doms, ["d0", "d1", "d2"])
    sd = np.where(sd == 2, -1, sd)  # d2 is the unseen domain, passed as target rows
    y = np.where(sd < 0, -1, y)
    seen = []

    class Spy(type(registry.build("method", name))):
        def loss(self, model, batch, progress):
            seen.append(batch)
            return super().loss(model, batch, progress)

    Trainer(_net(), Spy(), TrainerConfig(epochs=1, batch_size=16, device="cpu")).fit(X, y, sd)
    held = {tuple(r) for r in doms["d2"][0].tolist()}
    assert seen and all(len(b.x_target) == 0 and b.y_target is None and b.x_labelled is None for b in seen)
    assert not any(tuple(r) in held for b in seen for r in b.x_source.tolist())


def test_the_protocol_never_passes_a_held_out_row_to_training(monkeypatch):
    doms = _domains(n=50)
    held = {tuple(r) for r in doms["d3"][0].tolist()}
    fitted, batches = [], []
    original_fit, original_epoch = Trainer.fit, DomainLoader.epoch

    def spy_fit(self, X, y, sample_domain, **kw):
        fitted.append(np.asarray(X))
        return original_fit(self, X, y, sample_domain, **kw)

    def spy_epoch(self, epoch):
        for b in original_epoch(self, epoch):
            batches.append(b)
            yield b

    monkeypatch.setattr(Trainer, "fit", spy_fit)
    monkeypatch.setattr(DomainLoader, "epoch", spy_epoch)
    leave_one_domain_out(doms, "d3", "dg-coral", candidates=[{"weight": 1.0}],
                         settings={"epochs": 1, "batch_size": 16, "hidden": 8})  # fmt: skip
    assert len(fitted) == 4 and batches  # the main run and one per training domain left out
    assert not any(tuple(r) in held for X in fitted for r in X.tolist())
    assert not any(tuple(r) in held for b in batches for r in b.x_source.tolist())


def test_swa_ends_with_the_plain_mean_of_the_iterates_after_start():
    doms = _domains(n=60)
    X, y, sd = _arrays(doms, ["d0", "d1", "d2"])

    class Recording(SWA):
        def after_step(self, model, step, total):
            super().after_step(model, step, total)
            self.seen.append((step, total, [p.detach().clone() for p in model.parameters()]))

    method = Recording(start=0.5)
    method.seen = []
    t = Trainer(_net(), method, TrainerConfig(epochs=3, batch_size=16, device="cpu"))
    t.fit(X, y, sd)
    total = method.seen[-1][1]
    kept = [params for step, _, params in method.seen if step > total // 2]
    assert len(kept) == total - total // 2 == int(method.n_averaged)
    for i, p in enumerate(t.model.parameters()):
        naive = sum(params[i].double() for params in kept) / len(kept)
        assert torch.allclose(p.double(), naive, atol=1e-6)
        assert not torch.allclose(p, method.seen[-1][2][i])  # not simply the last iterate


def test_swa_recomputes_batchnorm_statistics_for_the_averaged_weights():
    doms = _domains(n=60)
    X, y, sd = _arrays(doms, ["d0", "d1", "d2"])  # 180 rows: 10 full batches of 18, each row once
    seed_everything(0)
    net = build_network("mlp", K, in_shape=(D_IN,), hidden=(16,), dropout=0.0, bottleneck_dim=4)
    t = Trainer(net, SWA(start=0.0), TrainerConfig(epochs=2, batch_size=18, device="cpu"))
    t.fit(X, y, sd)
    with torch.no_grad():
        z = net.bottleneck[0](net.backbone(torch.as_tensor(X)))  # what the BatchNorm layer sees
    assert torch.allclose(net.bottleneck[1].running_mean, z.mean(0), atol=1e-5)


def test_swa_refuses_early_stopping_and_a_bad_start():
    X, y, sd = _arrays(_domains(n=30), ["d0", "d1"])
    t = Trainer(_net(), SWA(), TrainerConfig(epochs=1, early_stopping="source-val", device="cpu"))
    with pytest.raises(TransferkitError, match="early_stopping"):
        t.fit(X, y, sd)
    with pytest.raises(TransferkitError, match="start must be in"):
        SWA(start=1.0)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", DG)
def test_seeded_runs_are_identical(name):
    doms = _domains(n=60)
    X, y, sd = _arrays(doms, ["d0", "d1", "d2"], method=name)

    def run():
        t = Trainer(
            _net(), registry.build("method", name), TrainerConfig(epochs=2, batch_size=16, device="cpu")
        )
        t.fit(X, y, sd)
        return {k: v.clone() for k, v in t.model.state_dict().items()}, t.method.state_dict()

    (a, ma), (b, mb) = run(), run()
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    assert all(torch.equal(v, mb[k]) for k, v in ma.items())


@pytest.mark.parametrize("name", ["groupdro", "mixup", "randconv", "swa"])
def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path, name):
    doms = _domains(n=60)
    X, y, sd = _arrays(doms, ["d0", "d1", "d2"], method=name)

    def trainer():
        return Trainer(
            _net(), registry.build("method", name), TrainerConfig(epochs=3, batch_size=16, device="cpu")
        )

    full = trainer()
    full.fit(X, y, sd)

    with pytest.raises(Killed):  # after epoch 2: SWA averages by then, its running mean is in the checkpoint
        trainer().fit(X, y, sd, checkpoint_dir=tmp_path, callbacks=[kill_at(2)])
    resumed = trainer()
    resumed.fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    for k, v in full.method.state_dict().items():
        assert torch.equal(v, resumed.method.state_dict()[k]), k


# ---------------------------------------------------------------- the protocol


def test_protocol_reports_three_selections_and_the_oracle_is_a_ceiling():
    doms = _domains(n=80, spread=1.0)  # overlapping classes: the candidates differ
    settings = {"epochs": 3, "batch_size": 16, "hidden": 16, "lr": 0.02, "anneal_steps": 10}
    res = leave_one_domain_out(doms, "d3", "vrex", candidates=[{"weight": 1.0}, {"weight": 3.0}],
                               settings=settings, seed=0, suite="toy-dg", lodo_epochs=2)  # fmt: skip
    assert [r["selection"] for r in res.rows] == list(SELECTIONS)
    acc = {r["selection"]: r["accuracy"] for r in res.rows}
    assert acc["oracle"] >= acc["training-domain"] and acc["oracle"] >= acc["leave-one-domain-out"]
    assert acc["oracle"] == pytest.approx(max(c.heldout_accuracy for c in res.candidates), abs=1e-4)
    for r in res.rows:
        assert r["task"] == r["target"] == "d3" and r["source"] == "d0+d1+d2" and r["suite"] == "toy-dg"
        assert r["target_labels"] == 0 and 0 <= r["accuracy"] <= 100
    assert all(set(c.lodo_folds) == {"d0", "d1", "d2"} for c in res.candidates)
    assert res.chosen["training-domain"] == int(np.argmax([c.val_accuracy for c in res.candidates]))
    assert max(c.heldout_accuracy for c in res.candidates) > 60  # it learns
    again = leave_one_domain_out(doms, "d3", "vrex", candidates=[{"weight": 1.0}, {"weight": 3.0}],
                                 settings=settings, seed=0, suite="toy-dg", lodo_epochs=2)  # fmt: skip
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(res.rows) == strip(again.rows)


def test_protocol_with_two_training_domains_trains_single_domain_folds():
    doms = {k: v for k, v in _domains(n=50, n_domains=3).items()}
    res = leave_one_domain_out(doms, "d0", "dg-mmd", candidates=[{"weight": 0.1}, {"weight": 10.0}],
                               settings={"epochs": 1, "batch_size": 16, "hidden": 8})  # fmt: skip
    assert res.single_domain_folds
    # one domain per fold: the penalty vanishes and both candidates score the same; the first wins
    assert res.candidates[0].lodo_folds == res.candidates[1].lodo_folds
    assert res.chosen["leave-one-domain-out"] == 0


def test_a_diverging_setting_is_a_failed_candidate_never_chosen():
    doms = _domains(n=40, n_domains=3)
    res = leave_one_domain_out(doms, "d2", "erm", candidates=[{"lr": 1e12}, {"lr": 0.05}],
                               settings={"epochs": 2, "batch_size": 16, "hidden": 8})  # fmt: skip
    bad, good = res.candidates
    assert "loss became" in bad.failed and bad.val_accuracy is None and bad.heldout_accuracy is None
    assert not good.failed and set(res.chosen.values()) == {1}
    settings = {"epochs": 1, "batch_size": 16, "hidden": 8}
    all_fail = leave_one_domain_out(doms, "d2", "erm", candidates=[{"lr": 1e12}], settings=settings)
    assert all(math.isnan(r["accuracy"]) for r in all_fail.rows)


def test_a_setting_that_failed_only_in_a_fold_is_never_chosen(monkeypatch):
    from transferkit.dg import protocol
    from transferkit.nn.trainer import NonFiniteLossError

    train = protocol._train

    def failing_fold(
        method, settings, X, y, sd, **kw
    ):  # the first setting diverges when a domain is left out
        if (
            settings.get("weight") == 1.0
            and kw.get("single_domain_ok") is not None
            and len(np.unique(sd)) < 2
        ):
            raise NonFiniteLossError("the loss became nan")
        return train(method, settings, X, y, sd, **kw)

    monkeypatch.setattr(protocol, "_train", failing_fold)
    doms = _domains(n=40, n_domains=3)
    res = leave_one_domain_out(doms, "d2", "vrex", candidates=[{"weight": 1.0}, {"weight": 3.0}],
                               settings={"epochs": 1, "batch_size": 16, "hidden": 8})  # fmt: skip
    first, second = res.candidates
    assert "the fold leaving" in first.failed and first.val_accuracy is not None  # it trained on all
    assert set(res.chosen.values()) == {1}


def test_unlabelled_held_out_rows_are_not_scored_and_labels_come_from_training_domains():
    # the held-out domain with every second label hidden scores as its labelled half alone (the
    # hidden rows were counted as errors); training never depends on the held-out labels
    doms = _domains(n=40, n_domains=3, spread=0.8)
    settings = {"epochs": 1, "batch_size": 16, "hidden": 8}
    X, y = doms["d2"]
    hidden = {**doms, "d2": (X, np.where(np.arange(len(y)) % 2 == 0, y, -1))}
    half = {**doms, "d2": (X[::2], y[::2])}
    a = leave_one_domain_out(hidden, "d2", "erm", candidates=[{}], settings=settings, lodo=False)
    b = leave_one_domain_out(half, "d2", "erm", candidates=[{}], settings=settings, lodo=False)
    assert a.candidates[0].heldout_accuracy == b.candidates[0].heldout_accuracy
    assert a.candidates[0].val_accuracy == b.candidates[0].val_accuracy
    assert 30 < a.candidates[0].heldout_accuracy < 100  # not a trivial score


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name", [n for n in DG if n not in ("erm", "randconv", "swa")])
def test_a_single_training_domain_is_a_clear_error(name):
    doms = _domains(n=40)
    X, y, sd = _arrays(doms, ["d0"])
    t = Trainer(_net(), registry.build("method", name), TrainerConfig(epochs=1, batch_size=8, device="cpu"))
    with pytest.raises(TransferkitError, match="at least 2 labelled source domains"):
        t.fit(X, y, sd)
    two = {k: doms[k] for k in ("d0", "d1")}
    with pytest.raises(TransferkitError, match="needs at least 2 training domains"):
        leave_one_domain_out(two, "d1", name, settings={"epochs": 1})


def test_erm_trains_on_one_domain_without_target_rows():
    doms = _domains(n=40)
    X, y, sd = _arrays(doms, ["d0"])
    Trainer(_net(), ERM(), TrainerConfig(epochs=1, batch_size=8, device="cpu")).fit(X, y, sd)


@pytest.mark.parametrize(
    "weights, match",
    [
        (lambda n: -np.ones(n), "must be >= 0"),
        (lambda n: np.ones(n - 1), "one weight per row"),
        (lambda n: np.ones((n, 2)), "one weight per row"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN or infinite"),
        (lambda n: np.zeros(n), "weight 0"),
    ],
)
def test_bad_weights_are_clear_errors(weights, match):
    doms = _domains(n=40)
    X, y, sd = _arrays(doms, ["d0", "d1"])
    t = Trainer(_net(), ERM(), TrainerConfig(epochs=1, batch_size=8, device="cpu"))
    with pytest.raises(TransferkitError, match=match):
        t.fit(X, y, sd, sample_weight=weights(len(y)))


def test_other_bad_inputs_are_clear_errors():
    sd = np.array([0, 0, 1, 1])
    with pytest.raises(TransferkitError, match="not a source domain"):
        source_weights(sd, domain_weight={5: 1.0})
    with pytest.raises(TransferkitError, match="finite number >= 0"):
        source_weights(sd, domain_weight={1: -2.0})
    with pytest.raises(TransferkitError, match="all zero"):
        source_weights(sd, np.array([1.0, 1.0, 0.0, 0.0]), balance_domains=True)
    doms = _domains(n=30, n_domains=3)
    with pytest.raises(TransferkitError, match="Did you mean 'd1'"):
        leave_one_domain_out(doms, "d11", "erm")
    with pytest.raises(TransferkitError, match="not a deep method"):
        leave_one_domain_out(doms, "d1", "coral")
    texts = {**doms, "d0": (doms["d0"][0], doms["d0"][1].astype(str))}
    with pytest.raises(TransferkitError, match="domain 'd0': labels must be one integer class index"):
        leave_one_domain_out(texts, "d1", "erm")
    narrow = {**doms, "d0": (doms["d0"][0][:, :3], doms["d0"][1])}
    with pytest.raises(TransferkitError, match="the same shape"):
        leave_one_domain_out(narrow, "d1", "erm")
    unlabelled = {**doms, "d1": (doms["d1"][0], -np.ones(30, np.int64))}
    with pytest.raises(TransferkitError, match="held-out domain 'd1' has no labelled row"):
        leave_one_domain_out(unlabelled, "d1", "erm")
    with pytest.raises(TransferkitError, match="training domain 'd1' has 30 rows without a label"):
        leave_one_domain_out(unlabelled, "d0", "erm")
    # a method that does use the target still needs target rows, as before
    X, y, sd3 = _arrays(doms, ["d0", "d1"])
    with pytest.raises(TransferkitError, match="source rows and target rows"):
        Trainer(_net(), registry.build("method", "deep-coral"), TrainerConfig(epochs=1, device="cpu")).fit(
            X, y, sd3
        )


# ---------------------------------------------------------------- RandConv


def _naive_conv(z, w):
    """A zero-padded "same" convolution (cross-correlation, as torch's) written as loops."""
    n, c, h, wd = z.shape
    k = w.shape[-1]
    r = k // 2
    out = torch.zeros(n, w.shape[0], h, wd, dtype=torch.float64)
    for i in range(n):
        for o in range(w.shape[0]):
            for a in range(h):
                for b in range(wd):
                    acc = 0.0
                    for ci in range(c):
                        for u in range(k):
                            for v in range(k):
                                aa, bb = a + u - r, b + v - r
                                if 0 <= aa < h and 0 <= bb < wd:
                                    acc += float(w[o, ci, u, v]) * float(z[i, ci, aa, bb])
                    out[i, o, a, b] = acc
    return out


@pytest.mark.parametrize("mixing", [False, True])
def test_random_convolution_filters_the_standardized_batch_with_one_he_normal_filter(mixing):
    x = torch.rand(3, 2, 5, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    got = random_convolution(x, (3, 5), identity_prob=0.2, mixing=mixing).double()
    torch.manual_seed(7)  # the same draws, in the documented order
    assert float(torch.rand(())) >= 0.2  # (seed 7 draws a filtered view)
    k = (3, 5)[int(torch.randint(2, ()))]
    w = torch.randn(2, 2, k, k) / math.sqrt(2 * k * k)
    alpha = float(torch.rand(())) if mixing else 1.0
    xd = x.double()
    mean = xd.mean(dim=(0, 2, 3), keepdim=True)
    std = xd.std(dim=(0, 2, 3), keepdim=True)
    z = (xd - mean) / std
    expected = (alpha * _naive_conv(z, w) + (1 - alpha) * z) * std + mean
    assert got.shape == x.shape and torch.allclose(got, expected, atol=1e-5)
    # every kernel size keeps the image's size; the identity comes back untouched
    for k in (1, 3, 7):
        assert random_convolution(x, (k,)).shape == x.shape
    torch.manual_seed(0)
    same = sum(random_convolution(x, (3,), identity_prob=0.5) is x for _ in range(400))
    assert 160 < same < 240


def test_consistency_is_the_mean_kl_of_each_view_to_the_mean_prediction():
    g = torch.Generator().manual_seed(3)
    views = [torch.randn(4, 3, generator=g).double() * 2 for _ in range(3)]
    p = [F.softmax(v, dim=1) for v in views]
    m = sum(p) / 3
    naive = np.mean([
        sum(float(pj[i, c]) * (math.log(float(pj[i, c])) - math.log(float(m[i, c])))
            for i in range(4) for c in range(3)) / 4
        for pj in p
    ])  # fmt: skip
    assert float(consistency(views)) == pytest.approx(naive, rel=1e-9)
    assert float(consistency([views[0]] * 3)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("weights", [False, True])
def test_randconv_loss_is_the_first_views_cross_entropy_plus_the_weighted_consistency(weights):
    model = _net()  # no dropout: the forward pass draws nothing
    b = _batch(weights=weights)
    x = b.x_source.reshape(len(b.x_source), *IMAGE)
    batch = DABatch(x, b.y_source, x[:0], None, d_source=b.d_source, w_source=b.w_source)
    torch.manual_seed(11)
    losses = RandConv(kernel_sizes=(1, 3), identity_prob=0.3, consistency_weight=4.0).loss(model, batch, 0.5)
    torch.manual_seed(11)
    views = [random_convolution(x, (1, 3), 0.3) for _ in range(3)]
    logits = [model(v).detach().double() for v in views]
    w = batch.w_source.double() if weights else torch.ones(len(x), dtype=torch.float64)
    ce = _wmean(_ce(logits[0], batch.y_source), w)
    assert float(losses.parts["source_ce"].detach()) == pytest.approx(ce, rel=1e-5)
    assert float(losses.parts["consistency"].detach()) == pytest.approx(
        4.0 * float(consistency(logits)), rel=1e-4
    )
    assert float(losses.total.detach()) == pytest.approx(ce + 4.0 * float(consistency(logits)), rel=1e-5)
    # no consistency weight: one view, plain (weighted) cross-entropy on it
    torch.manual_seed(11)
    single = RandConv(kernel_sizes=(1, 3), identity_prob=0.3, consistency_weight=0.0).loss(model, batch, 0.5)
    assert set(single.parts) == {"source_ce"}
    assert float(single.total.detach()) == pytest.approx(ce, rel=1e-5)


def test_randconv_refuses_vectors_and_bad_settings():
    model, batch = _net(), _batch()
    with pytest.raises(TransferkitError, match="randconv filters images.*shape \\(6,\\)"):
        RandConv().loss(model, batch, 0.5)
    with pytest.raises(TransferkitError, match="kernel_sizes must be odd"):
        RandConv(kernel_sizes=(2, 3))
    with pytest.raises(TransferkitError, match="identity_prob must be in"):
        RandConv(identity_prob=1.0)
    with pytest.raises(TransferkitError, match="consistency_weight must be >= 0"):
        RandConv(consistency_weight=float("nan"))
    with pytest.raises(TransferkitError, match="n_views must be"):
        RandConv(n_views=0)
    with pytest.raises(TransferkitError, match="settings must be numbers.*kernel_sizes='three'"):
        RandConv(kernel_sizes="three")
    with pytest.raises(TransferkitError, match="settings must be numbers.*identity_prob='half'"):
        RandConv(identity_prob="half")
    # one 1x1 grey image: no spread to standardize by, and the view stays finite
    one = torch.ones(1, 1, 1, 1)
    assert torch.isfinite(random_convolution(one, (3,))).all()
    assert registry.build("method", "randconv", {"kernel_sizes": "1,3"}).kernel_sizes == (1, 3)


def test_randconv_trains_on_one_domain_of_images():
    X, y, sd = _arrays(_domains(n=40), ["d0"], method="randconv")
    t = Trainer(_net(), RandConv(), TrainerConfig(epochs=1, batch_size=8, device="cpu"))
    t.fit(X, y, sd)
    assert np.isfinite(t.history[-1]["loss"]) and "consistency" in t.history[-1]


def test_the_dg_summary_compares_each_method_with_erm_on_the_seeds_both_ran():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "dg.py"
    spec = importlib.util.spec_from_file_location("dg_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def row(method, task, seed, acc):
        return {"task": task, "method": method, "seed": str(seed), "selection": "training-domain",
                "accuracy": str(acc), "seconds": "1"}  # fmt: skip

    rows = [row("erm", t, 0, 80) for t in ("a", "b")] + [row("erm", t, 1, 70) for t in ("a", "b")]
    rows += [row("vrex", t, 0, 79) for t in ("a", "b")]  # below ERM's seed 0, above its mean of 75
    rows += [row("irm", t, s, 76) for t in ("a", "b") for s in (0, 1)]
    text = bench.summary(rows, suite="s", commands=["c"], notes=[], quick=False)
    assert "| erm | 75.00 | 75.00 | 75.00 | 0 1 |" in text and "| vrex | 79.00 | 79.00 | 79.00 | 0 |" in text
    assert "Beat ERM on average: irm (+1.00, seeds 0 1)." in text
    even = bench.summary(
        [r for r in rows if r["seed"] == "0"], suite="s", commands=["c"], notes=[], quick=False
    )
    assert "seeds |" not in even and "Beat ERM on average: none." in even


@pytest.mark.parametrize("name", ["erm", "groupdro"])
def test_revealed_target_labels_reach_a_dg_methods_loss(name):
    # the target's unlabelled rows are dropped, its revealed rows train (weighted by target_weight)
    doms = _domains(n=40)
    X, y, sd = _arrays(doms, ["d0", "d1", "d2"])
    sd = np.where(sd == 2, -1, sd)  # d2 is the target
    hidden = np.where(sd < 0, -1, y)
    revealed = hidden.copy()
    rows = np.flatnonzero(sd < 0)[:6]
    revealed[rows] = y[rows]

    def trained(labels, **settings):
        config = TrainerConfig(epochs=2, batch_size=16, device="cpu")
        t = Trainer(_net(), registry.build("method", name, settings), config)
        t.fit(X, labels, sd)
        return [p.detach().clone() for p in t.model.parameters()]

    plain, semi = trained(hidden), trained(revealed)
    assert any(not torch.equal(a, b) for a, b in zip(plain, semi))
    heavy = trained(revealed, target_weight=10.0)
    assert any(not torch.equal(a, b) for a, b in zip(semi, heavy))


def test_swa_keeps_the_batchnorm_statistics_of_a_frozen_trunk():
    from transferkit.dg.swa import SWA

    X, y, sd = _arrays(_domains(n=40), ["d0", "d1"])
    seed_everything(0)
    net = build_network("mlp", K, in_shape=(D_IN,), hidden=(16,), dropout=0.0, bottleneck_dim=8)
    before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("bottleneck")}
    t = Trainer(net, SWA(), TrainerConfig(epochs=2, batch_size=16, device="cpu", freeze=("trunk",)))
    t.fit(X, y, sd)
    after = t.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # running stats too
    # the same network trained: its BatchNorm statistics are SWA's recomputed ones (they move)
    seed_everything(0)
    net = build_network("mlp", K, in_shape=(D_IN,), hidden=(16,), dropout=0.0, bottleneck_dim=8)
    t = Trainer(net, SWA(), TrainerConfig(epochs=2, batch_size=16, device="cpu"))
    t.fit(X, y, sd)
    assert not torch.equal(
        before["bottleneck.1.running_mean"], t.model.state_dict()["bottleneck.1.running_mean"]
    )


# ---------------------------------------------------------------- the unseen domain stays unseen


def _three_domain_table(path, target_shift: float):
    rng = np.random.default_rng(0)
    rows = []
    for name, shift in (("A", 0.0), ("B", 1.0), ("C", target_shift)):
        y = rng.integers(0, 3, 60)
        X = rng.normal(size=(60, D_IN)) + 2.0 * y[:, None] + shift
        rows += [[name, int(c), *x] for c, x in zip(y, X)]
    import pandas as pd

    columns = ["domain", "label", *[f"f{j}" for j in range(D_IN)]]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore:the predictions on the 60 target rows collapsed")
def test_a_domain_generalization_run_never_reads_the_held_out_domain(tmp_path, capsys):
    # the same training domains, the held-out domain's features changed: the trained network must
    # be the same (before, PCA/scaling were fitted on the held-out rows, and early stopping or
    # --select entropy scored them)
    from safetensors.numpy import load_file

    from transferkit.cli import main

    models = []
    for k, shift in enumerate((5.0, -3.0)):
        table = _three_domain_table(tmp_path / f"t{k}.csv", shift)
        out = tmp_path / f"run{k}"
        code = main(["run", "--dataset", str(table), "--source", "A", "B", "--target", "C", "--method", "erm",
                     "--set", "steps=20", "--preprocess", "standardize:per_domain=false",
                     "pca:n_components=3", "--out", str(out)])  # fmt: skip
        assert code == 0
        models.append(load_file(next(out.rglob("*.safetensors"))))
    assert models[0].keys() == models[1].keys()
    assert all(np.array_equal(models[0][k], models[1][k]) for k in models[0])
    # a scorer of the target rows cannot choose or stop a method that never sees them
    args = ["run", "--dataset", str(table), "--source", "A", "B", "--target", "C", "--method", "erm",
            "--set", "steps=20"]  # fmt: skip
    assert main([*args, "--select", "entropy"]) == 0
    assert "never sees the target" in capsys.readouterr().err
    X, y, sd = _table_arrays(table)
    trainer = Trainer(_net(), ERM(), TrainerConfig(steps=5, early_stopping="entropy", device="cpu"))
    with pytest.raises(TransferkitError, match="never sees the target.*source-val"):
        trainer.fit(X, y, sd)
    Trainer(_net(), ERM(), TrainerConfig(steps=5, early_stopping="source-val", device="cpu")).fit(X, y, sd)


def _table_arrays(table):
    import pandas as pd

    df = pd.read_csv(table)
    X = df[[f"f{j}" for j in range(D_IN)]].to_numpy(np.float32)
    sd = df["domain"].map({"A": 0, "B": 1, "C": -1}).to_numpy()
    y = np.where(sd < 0, -1, df["label"].to_numpy())
    return X, y, sd


def test_a_selection_suite_scores_domain_generalization_methods_with_source_val_only():
    from transferkit.benchmark import summarize_selection
    from transferkit.datasets import load_dataset
    from transferkit.experiment import RunSpec, select_runs

    ds = load_dataset("office-caltech10")
    spec = RunSpec(dataset="office-caltech10", sources=("dslr", "webcam"), targets=("amazon",), method="erm",
                   params={"steps": 5})  # fmt: skip
    with pytest.raises(TransferkitError, match="erm never sees the target.*entropy"):
        select_runs(spec, ds, ("standardize",), [{"lr": 0.01}], ["entropy", "source-val"])
    # a suite mixing such a method with others: its groups lack the target scorers' columns
    cands = [
        {"task": "t", "method": "erm", "seed": 0, "score:source-val": 0.7, "collapsed": 0, "accuracy": 40.0},
        {"task": "t", "method": "erm", "seed": 0, "score:source-val": 0.5, "collapsed": 0, "accuracy": 50.0},
        {"task": "t", "method": "coral", "seed": 0, "score:source-val": 0.5, "score:entropy": -0.1,
         "collapsed": 0, "accuracy": 45.0},
        {"task": "t", "method": "coral", "seed": 0, "score:source-val": 0.6, "score:entropy": -0.2,
         "collapsed": 0, "accuracy": 47.0},
    ]  # fmt: skip
    text = summarize_selection(cands)
    # source-val over both groups (regrets 10 and 0), entropy over coral's alone (regret 2)
    assert "| source-val | 5.00 | 50% |" in text and "| entropy | 2.00 | 0% |" in text


def test_a_quick_dg_bench_never_writes_over_the_committed_results(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "dg.py"
    spec = importlib.util.spec_from_file_location("dg_bench_quick", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    committed = path.parent / "results" / "digits-dg" / "results.csv"
    before = committed.read_bytes()
    with pytest.raises(SystemExit):  # before any data is loaded or any file written
        bench.main(["digits-dg", "--quick", "--methods", "erm"])
    assert "--quick is a smoke test, not results: name a scratch folder with --out" in capsys.readouterr().err
    assert committed.read_bytes() == before
