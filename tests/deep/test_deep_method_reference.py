"""Each deep method's loss step against a naive reference of its paper / its authors' code.

Covers what ``test_deep_methods.py`` leaves out: DANN (one loss step recomputed in numpy, the
gradient reversal's sign and scale, no target label read), the exact semi-supervised term of every
method, and which gradients reach which inputs (pseudo-labels carry none, MCC's and DAN's gradients
are those of the reference code's formulas). Deviations from the reference code that would change
trained results are written as strict ``xfail`` tests: they document the difference without changing
the committed benchmark numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transferkit import registry
from transferkit.deep.base import Forward
from transferkit.deep.cdan import CDANE
from transferkit.deep.dan import DAN
from transferkit.deep.pseudo_label import PseudoLabel
from transferkit.errors import TransferkitError
from transferkit.nn.batch import DABatch
from transferkit.nn.losses import adamatch_loss, consistency_loss, mcc_loss, mmd2
from transferkit.nn.model import build_network
from transferkit.nn.trainer import seed_everything

K = 3
NAMES = ["adamatch", "cdan", "cdan-e", "dan", "dann", "deep-coral", "deep-source-only", "fixmatch", "mcc",
         "pseudo-label"]  # fmt: skip
ACTIVE = {
    "adamatch": {"threshold": 0.0},
    "fixmatch": {"threshold": 0.0},
    "pseudo-label": {"warmup": 0.0, "rampup": 0.0},
}


def _net(seed=0):
    seed_everything(seed)
    return build_network("mlp", K, in_shape=(3, 8, 8), hidden=(16,), dropout=0.0)


def _batch(seed=0, n=8, revealed=False):
    g = torch.Generator().manual_seed(seed)
    xs, xt = torch.rand(n, 3, 8, 8, generator=g), torch.rand(n, 3, 8, 8, generator=g) + 0.3
    ys = torch.randint(0, K, (n,), generator=g)
    if not revealed:
        return DABatch(xs, ys, xt)
    xl, yl = torch.rand(4, 3, 8, 8, generator=g) + 0.3, torch.tensor([0, 1, 2, 1])
    return DABatch(xs, ys, xt, None, xl, yl)


def _setup(name, **settings):
    model = _net()
    method = registry.build("method", name, {**ACTIVE.get(name, {}), **settings})
    method.setup(model)
    model.eval()
    method.eval()  # no dropout; FixMatch/AdaMatch draw the same views on every call
    return model, method


def _np(t):
    return t.detach().double().numpy()


def _np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _np_ce(z, y):
    p = _np_softmax(z)
    return np.array([-math.log(p[i, int(y[i])]) for i in range(len(z))])


def _np_bce(z, d):
    return np.array([max(v, 0) - v * t + math.log1p(math.exp(-abs(v))) for v, t in zip(z, d)])


class _Poison:
    """Stands for target labels that must not be read: any use of the values raises."""

    def _fail(self, *a, **k):
        raise AssertionError("a target label was read")

    __getitem__ = __ge__ = __lt__ = __eq__ = __bool__ = __len__ = __iter__ = __getattr__ = _fail
    __hash__ = None


# DANN ----------------------------------------------------------------------------------------------


def _np_discriminator(disc, h):
    """The discriminator in eval mode, layer by layer: Linear, ReLU, (Dropout), Linear, ReLU, (Dropout),
    Linear; one output per row."""
    linears = [m for m in disc if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 and sum(isinstance(m, torch.nn.Dropout) for m in disc) == 2
    out = []
    for row in h:
        a = row
        for i, lin in enumerate(linears):
            a = _np(lin.weight) @ a + _np(lin.bias)
            if i < 2:
                a = np.maximum(a, 0.0)
        out.append(float(a[0]))
    return np.array(out)


@pytest.mark.parametrize("progress", [0.0, 0.4])
def test_dann_matches_a_naive_discriminator_loss(progress):
    model, method = _setup("dann", weight=0.3, disc_hidden=8)
    batch = _batch()
    with torch.no_grad():
        f, z = model.forward_features_and_logits(torch.cat([batch.x_source, batch.x_target]))
        losses = method.loss(model, batch, progress)
    d = np.r_[np.zeros(8), np.ones(8)]  # source 0, target 1: the plain BCE is symmetric in the labels
    expected = _np_bce(_np_discriminator(method.discriminator, _np(f)), d).mean()
    # the forward pass is the identity: the weight and lambda_p only scale the reversed gradient
    assert float(losses.parts["domain_bce"]) == pytest.approx(expected, rel=1e-5)
    source_ce = _np_ce(_np(z[:8]), batch.y_source).mean()
    assert float(losses.total) == pytest.approx(source_ce + expected, rel=1e-5)
    assert method.discriminator[0].out_features == 8 and method.discriminator[-1].out_features == 1


@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0])
def test_dann_reverses_the_feature_gradient_by_weight_times_lambda_p_and_trains_the_discriminator_plainly(
    progress,
):
    model, method = _setup("dann", weight=0.5, disc_hidden=8)
    with torch.no_grad():
        f = model.forward_features_and_logits(torch.cat([_batch().x_source, _batch().x_target]))[0]
    fs, ft = f[:8].clone().requires_grad_(), f[8:].clone().requires_grad_()
    method.adaptation(Forward(fs, None, ft, None), None, progress)["domain_bce"].backward()
    disc_grads = [p.grad.clone() for p in method.discriminator.parameters()]
    method.discriminator.zero_grad()
    # the same BCE without the reversal layer
    plain = f.clone().requires_grad_()
    d = torch.cat([torch.zeros(8), torch.ones(8)])
    F.binary_cross_entropy_with_logits(method.discriminator(plain).squeeze(1), d).backward()
    lam = 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0  # Ganin et al.'s lambda_p, gamma = 10
    coeff = 0.5 * lam
    assert torch.allclose(torch.cat([fs.grad, ft.grad]), -coeff * plain.grad, atol=1e-8)
    for got, p in zip(disc_grads, method.discriminator.parameters()):
        assert torch.allclose(got, p.grad, atol=1e-8)  # the discriminator minimises the plain BCE
    assert any(float(g.abs().sum()) > 0 for g in disc_grads)


def test_dann_reads_no_target_label():
    model, method = _setup("dann", disc_hidden=8)
    batch = _batch()
    with torch.no_grad():
        clean = method.loss(model, batch, 0.5)
        poisoned = method.loss(model, DABatch(batch.x_source, batch.y_source, batch.x_target, _Poison()), 0.5)
    assert float(poisoned.total) == float(clean.total) and "target_ce" not in clean.parts


# semi-supervised: the revealed target rows add exactly target_weight x their cross-entropy ----------


@pytest.mark.parametrize("name", NAMES)
def test_revealed_target_labels_add_exactly_target_weight_times_their_cross_entropy(name):
    model, method = _setup(name, target_weight=0.7)
    revealed = _batch(revealed=True)
    plain = DABatch(revealed.x_source, revealed.y_source, revealed.x_target)
    # only the revealed stream is read: the target batch's own labels stay poisoned
    poisoned = DABatch(revealed.x_source, revealed.y_source, revealed.x_target, _Poison(),
                       revealed.x_labelled, revealed.y_labelled)  # fmt: skip
    with torch.no_grad():
        base = method.loss(model, plain, 0.6)
        semi = method.loss(model, poisoned, 0.6)
        zl = model(revealed.x_labelled)
    expected = 0.7 * _np_ce(_np(zl), revealed.y_labelled).mean()
    assert "target_ce" not in base.parts
    assert float(semi.parts["target_ce"]) == pytest.approx(expected, rel=1e-5)
    assert set(semi.parts) == set(base.parts) | {"target_ce"}
    for key, value in base.parts.items():  # the other terms do not see the revealed rows
        assert float(semi.parts[key]) == pytest.approx(float(value), rel=1e-5, abs=1e-7)
    assert float(semi.total) == pytest.approx(float(base.total) + expected, rel=1e-5)


# which gradients reach which inputs ----------------------------------------------------------------


def _logits(seed, n=12, scale=2.0):
    return torch.randn(n, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def _np_ce_grad(z, labels, mask):
    """d/dz of (1/n) sum_i mask_i CE(z_i, labels_i), labels fixed: (softmax - onehot) mask / n."""
    p = _np_softmax(z)
    onehot = np.eye(z.shape[1])[labels]
    return (p - onehot) * mask[:, None] / len(z)


def test_pseudo_labels_carry_no_gradient():
    zs, zt = _logits(1).requires_grad_(), (_logits(2) + torch.tensor([1.0, 0, 0])).requires_grad_()
    method = PseudoLabel(weight=2.0, threshold=0.7, portion=0.25, warmup=0.0, rampup=0.0)
    out = Forward(torch.zeros(12, 2), zs, torch.zeros(12, 2), zt)
    batch = DABatch(torch.zeros(12, 2), torch.zeros(12, dtype=torch.long), torch.zeros(12, 2))
    method.adaptation(out, batch, 1.0)["pseudo_ce"].backward()
    assert zs.grad is None  # the source's mean prediction only aligns the pseudo-labels
    # the pseudo-labels and the mask, by hand: aligned probabilities, threshold or top portion per class
    ps, pt = _np_softmax(_np(zs)), _np_softmax(_np(zt))
    q = pt * ps.mean(0) / pt.mean(0)
    q /= q.sum(1, keepdims=True)
    labels, conf = q.argmax(1), q.max(1)
    mask = np.zeros(12)
    for i in range(12):
        same = conf[labels == labels[i]]
        mask[i] = conf[i] >= 0.7 or (same > conf[i]).sum() < int(0.25 * len(same))
    assert 0 < mask.sum() < 12
    np.testing.assert_allclose(_np(zt.grad), 2.0 * _np_ce_grad(_np(zt), labels, mask), atol=1e-12)


def test_fixmatch_gradient_reaches_only_the_strong_view():
    weak, strong = _logits(3, scale=3.0).requires_grad_(), _logits(4).requires_grad_()
    consistency_loss(weak, strong, threshold=0.8).backward()
    assert weak.grad is None
    p = _np_softmax(_np(weak))
    np.testing.assert_allclose(
        _np(strong.grad), _np_ce_grad(_np(strong), p.argmax(1), (p.max(1) >= 0.8).astype(float)), atol=1e-12
    )


def test_adamatch_gradient_reaches_only_the_strong_target_view():
    zs, weak = _logits(5, scale=3.0).requires_grad_(), _logits(6, scale=3.0).requires_grad_()
    strong = _logits(7).requires_grad_()
    adamatch_loss(zs, weak, strong, threshold=0.8).backward()
    assert zs.grad is None and weak.grad is None  # alignment, threshold and pseudo-labels: no gradient
    ps, pt = _np_softmax(_np(zs)), _np_softmax(_np(weak))
    q = pt * ps.mean(0) / pt.mean(0)
    q /= q.sum(1, keepdims=True)
    mask = (q.max(1) >= 0.8 * ps.max(1).mean()).astype(float)
    assert 0 < mask.sum() < 12
    np.testing.assert_allclose(_np(strong.grad), _np_ce_grad(_np(strong), q.argmax(1), mask), atol=1e-12)


def test_mcc_value_and_gradient_are_the_authors_formula():
    # Jin et al.'s code: entropy weights detached and scaled to sum to the batch size, then
    # ``cov / cov.sum(dim=1)``, which broadcasts over columns; the confusion matrix is symmetric, so
    # that is the row normalisation used here, with the same value and gradient
    z = _logits(8, n=10).requires_grad_()
    mcc_loss(z, 2.5).backward()
    z_ref = z.detach().clone().requires_grad_()
    p = F.softmax(z_ref / 2.5, dim=1)
    h = -(p * torch.log(p + 1e-5)).sum(1).detach()
    w = 1 + torch.exp(-h)
    w = 10 * w / w.sum()
    cov = p.mul(w.view(-1, 1)).transpose(1, 0).mm(p)
    cov = cov / torch.sum(cov, dim=1)
    ref = (cov.sum() - torch.trace(cov)) / K
    ref.backward()
    assert float(mcc_loss(z.detach(), 2.5)) == pytest.approx(
        float(ref.detach()), rel=1e-4
    )  # eps 1e-5 vs 1e-12
    assert torch.allclose(z.grad, z_ref.grad, rtol=1e-3, atol=1e-6)


def test_dan_bandwidth_carries_no_gradient_as_in_the_authors_code():
    # DAN/JAN's guassian_kernel: bandwidth = sum(L2.data) / (n^2 - n), divided by kernel_mul^(num // 2),
    # times kernel_mul^i, i < kernel_num (2 and 5: multipliers 1/4 .. 4); kernels summed, then
    # XX + YY - XY - YX (equal batch sizes; the sum of 5 kernels, where mmd2 averages them)
    xs, xt = _logits(9, n=6).requires_grad_(), (_logits(10, n=6) + 1).requires_grad_()
    mmd2(xs, xt).backward()
    a, b = xs.detach().clone().requires_grad_(), xt.detach().clone().requires_grad_()
    total = torch.cat([a, b])
    l2 = ((total[None] - total[:, None]) ** 2).sum(2)
    bandwidth = l2.data.sum() / (12**2 - 12) / 2 ** (5 // 2)
    kernels = sum(torch.exp(-l2 / (bandwidth * 2**i)) for i in range(5))
    ref = (kernels[:6, :6] + kernels[6:, 6:] - kernels[:6, 6:] - kernels[6:, :6]).mean() / 5
    ref.backward()
    assert float(mmd2(xs.detach(), xt.detach())) == pytest.approx(float(ref.detach()), rel=1e-10)
    assert torch.allclose(xs.grad, a.grad, atol=1e-12) and torch.allclose(xt.grad, b.grad, atol=1e-12)


def test_dan_multipliers_error_names_the_mean_distance():
    # the bandwidths are multiples of the mean pairwise squared distance, not the median
    with pytest.raises(TransferkitError, match=r"multipliers \(of the mean pairwise squared distance"):
        DAN(multipliers=(-1.0,))


# deviations from the authors' code that would change trained results (documented, not fixed) -------


@pytest.mark.xfail(
    strict=True,
    reason="CDAN+E: the authors' code (thuml/CDAN loss.py) registers the reversal hook on the entropy "
    "and does not detach it, so the reversed gradient also reaches the logits through the weights "
    "1 + exp(-H); transferkit detaches the weights, as their later Transfer-Learning-Library does (changing "
    "it would change the deep-cdan-e numbers)",
)
def test_cdan_e_entropy_weights_pass_the_reversed_gradient_to_the_logits_as_in_the_authors_code():
    model = _net()
    method = CDANE(disc_hidden=8)
    method.setup(model)
    model.eval()
    method.eval()
    with torch.no_grad():
        f, z = model.forward_features_and_logits(torch.cat([_batch().x_source, _batch().x_target]))
    zs, zt = z[:8].clone().requires_grad_(), z[8:].clone().requires_grad_()
    method.adaptation(Forward(f[:8], zs, f[8:], zt), None, 0.5)["domain_bce"].backward()
    assert zt.grad is not None and float(zt.grad.abs().sum()) > 0


@pytest.mark.xfail(
    strict=True,
    reason="AdaMatch: the authors' code (google-research/adamatch) averages the source cross-entropies "
    "of the weak and the strong view, 0.5 * (CE_w + CE_s); transferkit adds them, doubling the source "
    "term against the target term (changing it would change the deep-adamatch numbers)",
)
def test_adamatch_source_term_is_the_mean_of_the_two_views_as_in_the_authors_code():
    model, method = _setup("adamatch", weight=0.0)  # no target term: the source terms only
    with torch.no_grad():
        losses = method.loss(model, _batch(), 0.0)
    source = float(losses.parts["source_ce"]) + float(losses.parts["source_strong_ce"])
    assert float(losses.total) == pytest.approx(0.5 * source, rel=1e-6)


def test_the_docstrings_state_where_the_methods_leave_the_reference():
    # what the generated method reference tells a reader who compares numbers with the papers
    from transferkit.deep.adamatch import AdaMatch
    from transferkit.deep.cdan import CDAN
    from transferkit.deep.fixmatch import FixMatch

    def text(cls):
        return " ".join(cls.__doc__.split())

    assert "the target batch has as many rows as the source batch" in text(FixMatch)
    assert "the source rows are not augmented" in text(FixMatch)
    assert "the two source terms are added (it averages them)" in text(AdaMatch)
    assert "moving averages" in text(AdaMatch) and "random logit interpolation" in text(AdaMatch)
    assert "The weights carry no gradient" in text(CDAN)


def test_fine_tune_weights_its_source_term_by_the_rows_sample_weights():
    # its source cross-entropy was a plain mean: sample_weight and balance_domains reached every method
    # but fine-tune's joint loss
    from transferkit.deep.fine_tune import FineTune

    seed_everything(0)
    net = build_network("mlp", 3, in_shape=(4,), hidden=(8,)).eval()  # no dropout draws to compare
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(6, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    xl, yl = torch.randn(3, 4, generator=g), torch.tensor([0, 1, 2])
    w = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # only the first three source rows count
    batch = DABatch(xs, ys, torch.randn(2, 4, generator=g), None, xl, yl, None, w)
    parts = FineTune(source_weight=0.5).loss(net, batch, 0.0).parts
    expected = 0.5 * F.cross_entropy(net(xs[:3]), ys[:3])
    assert float(parts["source_ce"]) == pytest.approx(float(expected), rel=1e-6)
    unweighted = DABatch(xs, ys, batch.x_target, None, xl, yl, None, None)
    plain = FineTune(source_weight=0.5).loss(net, unweighted, 0.0).parts["source_ce"]
    assert torch.equal(
        plain, 0.5 * F.cross_entropy(net(torch.cat([xl, xs]))[3:], ys)
    )  # as before, bit for bit
