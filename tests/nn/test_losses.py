"""The pure loss functions of deep domain adaptation against naive loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transferkit.nn.losses import (
    cdan_map,
    consistency_loss,
    coral_loss,
    dann_lambda,
    entropy,
    entropy_weights,
    grad_reverse,
    mcc_loss,
    mmd2,
)


def _rand(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape)).double()


def test_mmd2_matches_a_naive_double_sum():
    fs, ft = _rand(6, 3, seed=1), _rand(5, 3, seed=2) + 0.5
    z = torch.cat([fs, ft])
    n = len(z)
    dist = [[float(((z[i] - z[j]) ** 2).sum()) for j in range(n)] for i in range(n)]
    base = sum(dist[i][j] for i in range(n) for j in range(n) if i != j) / (n * n - n)
    mults = (0.5, 1.0, 2.0)

    def k(i, j):
        return sum(math.exp(-dist[i][j] / (m * base)) for m in mults) / len(mults)

    s = range(6)
    t = range(6, 11)
    naive = (
        sum(k(i, j) for i in s for j in s) / 36 + sum(k(i, j) for i in t for j in t) / 25
        - 2 * sum(k(i, j) for i in s for j in t) / 30
    )  # fmt: skip
    assert float(mmd2(fs, ft, mults)) == pytest.approx(naive, rel=1e-10)
    assert float(mmd2(fs, fs.clone(), mults)) == pytest.approx(0.0, abs=1e-12)


def test_coral_loss_matches_numpy_covariances():
    fs, ft = _rand(20, 4, seed=3), _rand(15, 4, seed=4) * 2
    cs, ct = np.cov(fs.numpy(), rowvar=False), np.cov(ft.numpy(), rowvar=False)
    assert float(coral_loss(fs, ft)) == pytest.approx(((cs - ct) ** 2).sum() / (4 * 16), rel=1e-10)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = _rand(3, 2).requires_grad_()
    (grad_reverse(x, 0.3) * torch.arange(6.0).double().view(3, 2)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(6.0).double().view(3, 2))
    assert dann_lambda(0.0) == 0.0 and dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)


def test_cdan_map_is_the_outer_product():
    f, p = _rand(2, 3), torch.softmax(_rand(2, 4, seed=5), 1)
    m = cdan_map(f, p)
    assert m.shape == (2, 12)
    for n in range(2):
        naive = [float(p[n, k] * f[n, d]) for k in range(4) for d in range(3)]
        assert np.allclose(m[n].numpy(), naive)


def test_entropy_and_its_weights():
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(entropy(p, "none"), torch.tensor([math.log(2), 0.0], dtype=torch.float64))
    assert torch.allclose(entropy_weights(p), torch.tensor([1 + 0.5, 2.0], dtype=torch.float64))


def test_mcc_matches_a_naive_loop_and_vanishes_without_confusion():
    logits = _rand(8, 3, seed=6) * 2
    T, n, k = 2.5, 8, 3
    p = torch.softmax(logits / T, 1).numpy()
    h = [-sum(p[i, j] * math.log(p[i, j]) for j in range(k)) for i in range(n)]
    w = np.array([1 + math.exp(-x) for x in h])
    w = n * w / w.sum()
    c = np.array([[sum(w[i] * p[i, a] * p[i, b] for i in range(n)) for b in range(k)] for a in range(k)])
    c = c / c.sum(1, keepdims=True)
    naive = (c.sum() - np.trace(c)) / k
    assert float(mcc_loss(logits, T)) == pytest.approx(naive, rel=1e-10)
    confident = torch.eye(3).double().repeat(3, 1) * 200
    assert float(mcc_loss(confident)) == pytest.approx(0.0, abs=1e-6)


def test_consistency_loss_counts_only_confident_rows():
    weak = torch.tensor([[10.0, 0.0], [0.1, 0.0]])
    strong = torch.tensor([[0.0, 1.0], [5.0, 0.0]])
    expected = float(torch.nn.functional.cross_entropy(strong[:1], torch.tensor([0]))) / 2
    assert float(consistency_loss(weak, strong, 0.95)) == pytest.approx(expected)
    assert float(consistency_loss(weak, strong, 0.999)) == pytest.approx(expected)
    assert float(consistency_loss(weak, strong, 0.99999)) == 0.0
    assert float(consistency_loss(weak * 0, strong, 0.6)) == 0.0


@pytest.mark.parametrize("fn", [mmd2, coral_loss])
def test_discrepancies_give_finite_gradients_to_both_domains(fn):
    fs, ft = _rand(8, 4).requires_grad_(), (_rand(8, 4, seed=9) + 1).requires_grad_()
    fn(fs, ft).backward()
    assert torch.isfinite(fs.grad).all() and fs.grad.abs().sum() > 0 and ft.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mcc_stays_finite_and_continuous_when_logits_saturate(dtype):
    # every row confidently in class 0: the other classes' probabilities underflow to 0 for large
    # logits, and C's row over its sum was 0/0 = NaN. The limit is the mean prediction for those rows
    # (all mass on class 0, off the diagonal), so the loss tends to (K - 1) / K = 2/3, as at logit 20.
    for big in (20.0, 1e3, 1e6):
        logits = torch.zeros(8, 3, dtype=dtype)
        logits[:, 0] = big
        logits.requires_grad_()
        loss = mcc_loss(logits * 1.0)
        loss.backward()
        assert float(loss.detach()) == pytest.approx(2 / 3, abs=1e-6) and torch.isfinite(logits.grad).all()


def test_mcc_keeps_its_arithmetic_bit_for_bit_when_nothing_underflows():
    # the guard against 0/0 must not move committed benchmark numbers: the usual case is the
    # paper's expression evaluated as it always was
    import torch.nn.functional as F

    from transferkit.nn.losses import entropy

    logits = _rand(64, 10, seed=3).float() * 3
    p = F.softmax(logits / 2.5, dim=1)
    w = 1.0 + torch.exp(-entropy(p, reduction="none"))
    w = (64 * w / w.sum()).detach()
    c = p.T @ (w[:, None] * p)
    c = c / c.sum(1, keepdim=True)
    assert torch.equal(mcc_loss(logits, 2.5), (c.sum() - torch.trace(c)) / 10)


def test_coral_and_mmd_refuse_batches_they_cannot_compare():
    from transferkit.errors import TransferkitError

    # one row has no unbiased covariance (0/0: a NaN loss blamed on the learning rate), an empty
    # batch no mean: clear errors that say what to change
    with pytest.raises(TransferkitError, match="at least 2 rows per domain, got 1 source"):
        coral_loss(_rand(1, 4), _rand(5, 4))
    with pytest.raises(TransferkitError, match="needs rows in both, got 4 and 0"):
        mmd2(_rand(4, 3), _rand(0, 3))
    assert torch.isfinite(coral_loss(_rand(2, 4), _rand(2, 4, seed=1)))
    assert torch.isfinite(mmd2(_rand(1, 4), _rand(1, 4, seed=1)))
