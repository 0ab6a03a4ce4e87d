"""The deep adaptation methods: DAN, Deep CORAL, CDAN(+E), MCC, pseudo-labelling, FixMatch and AdaMatch.

For each: one step is finite and its adaptation term reaches the trunk; the loss of a fixed batch
equals a naive recomputation (explicit loops and direct formulas); no target label is read in
unsupervised mode; seeded runs are identical; revealed target labels add the ``target_ce`` term.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import Killed, kill_at

from transferkit import registry
from transferkit.deep.adamatch import AdaMatch, adamatch_ramp
from transferkit.deep.base import Forward
from transferkit.deep.cdan import CDAN, CDANE
from transferkit.deep.dan import DAN
from transferkit.deep.dann import DANN
from transferkit.deep.deep_coral import DeepCORAL
from transferkit.deep.fixmatch import (
    FixMatch,
    adjust_contrast_brightness,
    affine_images,
    cutout,
    shift_images,
    strong_augment,
    weak_augment,
)
from transferkit.deep.mcc import MCC
from transferkit.deep.pseudo_label import PseudoLabel, ramp, select_pseudo_labels
from transferkit.domains import mask_target_labels
from transferkit.errors import TransferkitError
from transferkit.nn.batch import DABatch
from transferkit.nn.losses import adamatch_loss, align_distributions
from transferkit.nn.model import build_network
from transferkit.nn.trainer import Trainer, TrainerClassifier, TrainerConfig, seed_everything
from transferkit.selection import get_scorer, score_every_epoch, target_collapse

NAMES = ["adamatch", "cdan", "cdan-e", "dan", "deep-coral", "fixmatch", "mcc", "pseudo-label"]
# settings under which every adaptation term is active on an untrained network
ACTIVE = {
    "adamatch": {"threshold": 0.0},
    "fixmatch": {"threshold": 0.0},
    "pseudo-label": {"warmup": 0.0, "rampup": 0.0},
}
VIEWS = ("adamatch", "cdan-e", "fixmatch")  # random augmentations or the randomized CDAN map
K = 3


def _images(n, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) + shift


def _batch(seed=0, n=8, revealed=False):
    g = torch.Generator().manual_seed(seed + 100)
    xs, xt = _images(n, seed), _images(n, seed + 1, shift=0.3)
    ys = torch.randint(0, K, (n,), generator=g)
    if not revealed:
        return DABatch(xs, ys, xt)
    y_t = torch.full((n,), -1)
    y_t[:3] = torch.tensor([0, 1, 2])
    return DABatch(xs, ys, xt, y_t, xt[:3], y_t[:3])


def _net(seed=0, backbone="mlp"):
    seed_everything(seed)
    kw = {"hidden": (16,), "dropout": 0.0} if backbone == "mlp" else {}
    return build_network(backbone, K, in_shape=(3, 32, 32), **kw)


def _setup(name, seed=0, backbone="mlp", **settings):
    model = _net(seed, backbone)
    method = registry.build("method", name, settings)
    method.setup(model)
    return model, method


def _eval(model, method):
    model.eval()
    method.eval()
    return model, method


def _forward(model, batch):
    with torch.no_grad():
        f, z = model.forward_features_and_logits(torch.cat([batch.x_source, batch.x_target]))
    n = len(batch.x_source)
    return f[:n].double(), z[:n].double(), f[n:].double(), z[n:].double()


@torch.no_grad()
def _loss(method, model, batch, progress):
    return method.loss(model, batch, progress)


def _rows(t):
    return t.tolist()


def _softmax(row, temperature=1.0):
    m = max(row)
    e = [math.exp((v - m) / temperature) for v in row]
    return [v / sum(e) for v in e]


def _ce(row, label):
    m = max(row)
    return -(row[label] - m - math.log(sum(math.exp(v - m) for v in row)))


def _mean_ce(logits, labels):
    return sum(_ce(r, int(y)) for r, y in zip(_rows(logits), labels.tolist())) / len(labels)


def _entropy(p):
    return -sum(v * math.log(max(v, 1e-12)) for v in p)


def _bce(z, d):
    # -[d log s(z) + (1 - d) log(1 - s(z))], written stably
    return max(z, 0) - z * d + math.log1p(math.exp(-abs(z)))


# (1) one step --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_one_step_is_finite_and_the_adaptation_term_reaches_the_trunk(name):
    model, method = _setup(name, **ACTIVE.get(name, {}))
    assert method.family in {"discrepancy", "adversarial", "self-training"}
    assert method.__doc__ and ".. math::" in method.__doc__
    losses = method.loss(model, _batch(), progress=0.5)
    assert torch.isfinite(losses.total) and "source_ce" in losses.parts and len(losses.parts) >= 2
    adaptation = sum(v for k, v in losses.parts.items() if k != "source_ce")
    adaptation.backward()
    first = next(model.backbone.parameters())
    assert first.grad is not None and torch.isfinite(first.grad).all() and first.grad.abs().sum() > 0


def test_lenet_step_reaches_the_first_convolution():
    for name in VIEWS:  # the randomized CDAN map (forced: 500 x 3 < 4096) and views
        model, method = _setup(name, backbone="lenet", **({"max_dim": 100} if name == "cdan-e" else {}))
        method.loss(model, _batch(n=4), 0.5).total.backward()
        assert model.backbone[0].weight.grad.abs().sum() > 0


# (2) references recomputed by hand -----------------------------------------------------------------


def _naive_mmd2(a, b, multipliers):
    z = _rows(a) + _rows(b)
    n, ns = len(z), len(_rows(a))
    d = [[sum((x - y) ** 2 for x, y in zip(z[i], z[j])) for j in range(n)] for i in range(n)]
    base = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * n - n)

    def k(i, j):
        return sum(math.exp(-d[i][j] / (m * base)) for m in multipliers) / len(multipliers)

    s, t = range(ns), range(ns, n)
    return (
        sum(k(i, j) for i in s for j in s) / ns**2
        + sum(k(i, j) for i in t for j in t) / (n - ns) ** 2
        - 2 * sum(k(i, j) for i in s for j in t) / (ns * (n - ns))
    )


@pytest.mark.parametrize("warmup", [True, False])
def test_dan_matches_a_naive_multi_kernel_mmd_on_features_and_logits(warmup):
    model, method = _eval(*_setup("dan", weight=0.7, warmup=warmup))
    batch = _batch()
    fs, zs, ft, zt = _forward(model, batch)
    mults = method.multipliers
    ramp = 2 / (1 + math.exp(-10 * 0.3)) - 1 if warmup else 1.0  # DANN's schedule at progress 0.3
    expected = {
        "mmd_features": 0.7 * ramp * _naive_mmd2(fs, ft, mults),
        "mmd_logits": 0.7 * ramp * _naive_mmd2(zs, zt, mults),
    }
    losses = _loss(method, model, batch, 0.3)
    for k, v in expected.items():
        assert float(losses.parts[k]) == pytest.approx(v, rel=1e-4, abs=1e-7)
    total = _mean_ce(zs, batch.y_source) + sum(expected.values())
    assert float(losses.total) == pytest.approx(total, rel=1e-4)
    assert float(_loss(method, model, batch, 0.0).parts["mmd_features"]) == (0.0 if warmup else pytest.approx(
        0.7 * _naive_mmd2(fs, ft, mults), rel=1e-4))  # fmt: skip
    no_logits = DAN(match_logits=False)
    no_logits.setup(model)
    assert set(no_logits.loss(model, batch, 0.5).parts) == {"source_ce", "mmd_features"}


def _naive_cov(rows):
    n, d = len(rows), len(rows[0])
    mean = [sum(r[j] for r in rows) / n for j in range(d)]
    return [
        [sum((r[a] - mean[a]) * (r[b] - mean[b]) for r in rows) / (n - 1) for b in range(d)] for a in range(d)
    ]


@pytest.mark.parametrize("on", ["logits", "features"])
def test_deep_coral_matches_naive_covariances(on):
    model, method = _eval(*_setup("deep-coral", weight=2.0, on=on))
    batch = _batch()
    fs, zs, ft, zt = _forward(model, batch)
    a, b = (zs, zt) if on == "logits" else (fs, ft)
    cs, ct = _naive_cov(_rows(a)), _naive_cov(_rows(b))
    d = len(cs)
    expected = 2.0 * sum((cs[i][j] - ct[i][j]) ** 2 for i in range(d) for j in range(d)) / (4 * d * d)
    losses = _loss(method, model, batch, 0.5)
    assert float(losses.parts["coral"]) == pytest.approx(expected, rel=1e-4, abs=1e-9)
    assert float(losses.total) == pytest.approx(_mean_ce(zs, batch.y_source) + expected, rel=1e-4)


@pytest.mark.parametrize("entropy_conditioning", [False, True])
@pytest.mark.parametrize("randomized", [False, True])
def test_cdan_matches_a_naive_multilinear_discriminator_loss(entropy_conditioning, randomized):
    model = _net()
    method = CDAN(entropy_conditioning=entropy_conditioning, disc_hidden=8, random_dim=5,
                  max_dim=10 if randomized else 4096)  # fmt: skip
    method.setup(model)
    _eval(model, method)
    assert method.randomized == randomized
    batch = _batch()
    fs, zs, ft, zt = _forward(model, batch)
    f, z = _rows(fs) + _rows(ft), _rows(zs) + _rows(zt)
    n, ns = len(f), len(_rows(fs))
    g = [_softmax(r) for r in z]
    if randomized:
        rf, rg = method.random_f.double().tolist(), method.random_g.double().tolist()
        h = [[sum(f[i][a] * rf[a][j] for a in range(len(f[i]))) * sum(g[i][c] * rg[c][j] for c in range(K))
              / math.sqrt(5) for j in range(5)] for i in range(n)]  # fmt: skip
    else:
        h = [[g[i][c] * f[i][a] for c in range(K) for a in range(len(f[i]))] for i in range(n)]
    with torch.no_grad():
        out = method.discriminator(torch.tensor(h, dtype=torch.float32)).squeeze(1).double().tolist()
    d = [0.0] * ns + [1.0] * (n - ns)
    bce = [_bce(out[i], d[i]) for i in range(n)]
    if entropy_conditioning:
        w = [1 + math.exp(-_entropy(p)) for p in g]
        ws, wt = sum(w[:ns]), sum(w[ns:])
        expected = 0.5 * (
            sum(w[i] * bce[i] for i in range(ns)) / ws + sum(w[i] * bce[i] for i in range(ns, n)) / wt
        )
    else:
        expected = sum(bce) / n
    losses = _loss(method, model, batch, 0.5)
    assert float(losses.parts["domain_bce"]) == pytest.approx(expected, rel=1e-4)
    assert float(losses.total) == pytest.approx(_mean_ce(zs, batch.y_source) + expected, rel=1e-4)


def test_cdan_reverses_the_feature_gradient_with_the_dann_warm_up():
    from transferkit.deep.base import Forward

    model = _net()
    method = CDANE(weight=0.5, disc_hidden=8)
    method.setup(model)
    _eval(model, method)
    fs, zs, ft, zt = (t.float().requires_grad_() for t in _forward(model, _batch()))
    method.adaptation(Forward(fs, zs, ft, zt), None, 0.3)["domain_bce"].backward()
    # the same loss without reversal: the features' gradient is -coeff times the plain one
    fs2, ft2 = fs.detach().clone().requires_grad_(), ft.detach().clone().requires_grad_()
    f = torch.cat([fs2, ft2])
    p = torch.softmax(torch.cat([zs, zt]).detach(), 1)
    logit = method.discriminator(method.conditioning(f, p)).squeeze(1)
    dom = torch.cat([torch.zeros(8), torch.ones(8)])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, dom, reduction="none")
    w = 1 + torch.exp((p * torch.log(p)).sum(1))
    (0.5 * ((w[:8] * bce[:8]).sum() / w[:8].sum() + (w[8:] * bce[8:]).sum() / w[8:].sum())).backward()
    coeff = 0.5 * (2 / (1 + math.exp(-3.0)) - 1)
    assert torch.allclose(fs.grad, -coeff * fs2.grad, atol=1e-7)
    assert torch.allclose(ft.grad, -coeff * ft2.grad, atol=1e-7)
    assert zs.grad is None or zs.grad.abs().sum() == 0  # predictions condition, they are not pushed


def test_mcc_matches_a_naive_class_confusion():
    model, method = _eval(*_setup("mcc", weight=1.5, temperature=2.0))
    batch = _batch()
    _, zs, _, zt = _forward(model, batch)
    p = [_softmax(r, 2.0) for r in _rows(zt)]
    n = len(p)
    w = [1 + math.exp(-_entropy(r)) for r in p]
    w = [n * v / sum(w) for v in w]
    c = [[sum(w[i] * p[i][a] * p[i][b] for i in range(n)) for b in range(K)] for a in range(K)]
    c = [[v / sum(row) for v in row] for row in c]
    expected = 1.5 * sum(c[a][b] for a in range(K) for b in range(K) if a != b) / K
    losses = _loss(method, model, batch, 0.5)
    assert float(losses.parts["mcc"]) == pytest.approx(expected, rel=1e-4)
    assert float(losses.total) == pytest.approx(_mean_ce(zs, batch.y_source) + expected, rel=1e-4)


def test_pseudo_label_selection_matches_naive_ranks():
    probs = torch.softmax(torch.randn(40, 4, generator=torch.Generator().manual_seed(3)) * 2, 1)
    pseudo, mask = select_pseudo_labels(probs, threshold=0.8, portion=0.3)
    rows = _rows(probs)
    for i, r in enumerate(rows):
        conf, k = max(r), r.index(max(r))
        same = [max(q) for q in rows if q.index(max(q)) == k]
        rank = sum(c > conf for c in same)  # rows of the same class more confident than this one
        assert int(pseudo[i]) == k
        assert bool(mask[i]) == (conf >= 0.8 or rank < int(0.3 * len(same)))
    assert 0 < int(mask.sum()) < 40
    _, only_threshold = select_pseudo_labels(probs, threshold=0.8, portion=0.0)
    assert torch.equal(only_threshold, probs.max(1).values >= 0.8)


@pytest.mark.parametrize("align", [False, True])
def test_pseudo_label_loss_matches_by_hand_and_waits_for_the_warm_up(align):
    assert (
        ramp(0.05, 0.1, 0.2) == 0.0 and ramp(0.2, 0.1, 0.2) == pytest.approx(0.5) and ramp(0.9, 0.1, 0.2) == 1
    )
    model, method = _eval(*_setup("pseudo-label", weight=2.0, threshold=0.4, portion=0.3, align=align))
    batch = _batch(n=12)
    _, zs, _, zt = _forward(model, batch)
    rows = _rows(zt)
    raw = [_softmax(r) for r in rows]
    probs = raw
    if align:  # each class scaled by (mean source probability) / (mean target probability), renormalized
        p_source = [_softmax(r) for r in _rows(zs)]
        ratio = [
            sum(p[k] for p in p_source) / len(p_source) / (sum(p[k] for p in raw) / len(raw))
            for k in range(K)
        ]
        probs = [[p[k] * ratio[k] / sum(p[j] * ratio[j] for j in range(K)) for k in range(K)] for p in raw]
    labels = [p.index(max(p)) for p in probs]
    total = 0.0
    for i, p in enumerate(probs):
        same = [max(q) for q, k in zip(probs, labels) if k == labels[i]]
        if max(p) >= 0.4 or sum(c > max(p) for c in same) < int(0.3 * len(same)):
            total += _ce(rows[i], labels[i])
    expected = 2.0 * 0.5 * total / len(rows)  # progress 0.2: half-way up the ramp
    losses = _loss(method, model, batch, 0.2)
    assert expected > 0 and float(losses.parts["pseudo_ce"]) == pytest.approx(expected, rel=1e-4)
    assert float(losses.total) == pytest.approx(_mean_ce(zs, batch.y_source) + expected, rel=1e-4)
    assert float(_loss(method, model, batch, 0.05).parts["pseudo_ce"]) == 0.0
    if align:  # on this batch alignment changes which rows pass the threshold, so this case tests it
        _, plain = _eval(*_setup("pseudo-label", weight=2.0, threshold=0.4, portion=0.3, align=False))
        assert float(_loss(plain, model, batch, 0.2).parts["pseudo_ce"]) != pytest.approx(expected, rel=1e-3)


def test_pseudo_label_alignment_scales_back_a_class_the_target_overpredicts():
    # the source predicts the three classes evenly, the target favours class 0 (a collapse beginning)
    g = torch.Generator().manual_seed(5)
    zs = torch.randn(30, K, generator=g)
    zt = torch.randn(30, K, generator=g) + torch.tensor([1.5, 0.0, 0.0])
    out = Forward(torch.zeros(30, 2), zs, torch.zeros(30, 2), zt)
    batch = DABatch(torch.zeros(30, 2), torch.zeros(30, dtype=torch.long), torch.zeros(30, 2))
    counts = {}
    for align in (False, True):
        method = PseudoLabel(threshold=2.0, portion=1.0, warmup=0.0, rampup=0.0, align=align)
        probs = torch.softmax(zt, 1)
        if align:
            probs = align_distributions(probs, torch.softmax(zs, 1))
        pseudo = probs.argmax(1)
        counts[align] = torch.bincount(pseudo, minlength=K).tolist()
        # every row is kept (portion 1): the loss is the mean cross-entropy against these labels
        expected = float(F.cross_entropy(zt, pseudo))
        assert float(method.adaptation(out, batch, 1.0)["pseudo_ce"]) == pytest.approx(expected, rel=1e-5)
    assert counts[False][0] > 20  # unaligned: most rows take the favoured class
    assert counts[True][0] < counts[False][0] and min(counts[True]) > 0
    with pytest.raises(TransferkitError, match="align must be true or false"):
        PseudoLabel(align="false")
    assert registry.build("method", "pseudo-label", {"align": "false"}).align is False  # as --set parses it
    # with source row weights the source's class mix is their weighted mean: integer weights act as
    # repeating each source row that often
    w = torch.arange(30) % 3
    method = PseudoLabel(threshold=0.6, portion=0.0, warmup=0.0, rampup=0.0)
    weighted = method.adaptation(out, dataclasses.replace(batch, w_source=w.float()), 1.0)["pseudo_ce"]
    repeated = Forward(torch.zeros(int(w.sum()), 2), zs.repeat_interleave(w, dim=0), out.f_target, zt)
    assert float(weighted) == pytest.approx(
        float(method.adaptation(repeated, batch, 1.0)["pseudo_ce"]), rel=1e-6
    )
    assert float(weighted) != pytest.approx(float(method.adaptation(out, batch, 1.0)["pseudo_ce"]), rel=1e-3)


def test_fixmatch_matches_a_naive_consistency_on_its_views():
    model, method = _eval(*_setup("fixmatch", weight=1.5))
    batch = _batch(n=10)
    weak, strong = method.views(batch.x_target)  # in eval mode the step does not move on
    w2, s2 = method.views(batch.x_target)
    assert torch.equal(weak, w2) and torch.equal(strong, s2)
    with torch.no_grad():
        _, z = model.forward_features_and_logits(torch.cat([batch.x_source, weak]))
        _, z_strong = model.forward_features_and_logits(strong)
    zs, zw = z[:10].double(), _rows(z[10:].double())
    conf = sorted(max(_softmax(r)) for r in zw)
    method.threshold = (conf[4] + conf[5]) / 2  # half the rows are confident
    expected = 0.0
    for r, rs in zip(zw, _rows(z_strong.double())):
        p = _softmax(r)
        if max(p) >= method.threshold:
            expected += _ce(rs, p.index(max(p)))
    expected = 1.5 * expected / 10
    losses = _loss(method, model, batch, 0.5)
    assert expected > 0 and float(losses.parts["consistency"]) == pytest.approx(expected, rel=1e-4)
    assert float(losses.total) == pytest.approx(_mean_ce(zs, batch.y_source) + expected, rel=1e-4)


def test_fixmatch_views_are_seeded_per_step():
    model, method = _setup("fixmatch")
    x = _images(6)
    method.aug_step.fill_(7)
    w1, s1 = method.views(x)  # training mode: the counter moves on
    assert int(method.aug_step) == 8
    w2, s2 = method.views(x)
    assert not torch.equal(s1, s2) and not torch.equal(w1, w2)
    method.aug_step.fill_(7)
    w3, s3 = method.views(x)
    assert torch.equal(w1, w3) and torch.equal(s1, s3)
    assert not torch.equal(w1, s1) and s1.shape == x.shape
    assert float(s1.min()) >= float(x.min()) - 1e-6 and float(s1.max()) <= float(x.max()) + 1e-6


def test_adamatch_matches_a_naive_aligned_relative_threshold_on_its_views():
    model, method = _eval(*_setup("adamatch", weight=1.5))
    batch = _batch(n=10)
    g = method.step_generator()  # eval mode: the step does not move on, so loss() draws the same views
    ws, ss = weak_augment(batch.x_source, g), strong_augment(batch.x_source, g)
    wt, st = weak_augment(batch.x_target, g), strong_augment(batch.x_target, g)
    with torch.no_grad():
        _, z = model.forward_features_and_logits(torch.cat([ws, wt]))
        _, z_strong = model.forward_features_and_logits(torch.cat([ss, st]))
    zs, zt = _rows(z[:10].double()), _rows(z[10:].double())
    ps, pt = [_softmax(r) for r in zs], [_softmax(r) for r in zt]
    mean_s = [sum(p[k] for p in ps) / 10 for k in range(K)]
    mean_t = [sum(p[k] for p in pt) / 10 for k in range(K)]
    aligned = []
    for p in pt:
        q = [p[k] * mean_s[k] / mean_t[k] for k in range(K)]
        aligned.append([v / sum(q) for v in q])
    source_conf = sum(max(p) for p in ps) / 10
    conf = sorted(max(q) for q in aligned)
    method.threshold = (conf[4] + conf[5]) / 2 / source_conf  # half the target rows pass
    expected = 0.0
    for q, rs in zip(aligned, _rows(z_strong[10:].double())):
        if max(q) >= method.threshold * source_conf:
            expected += _ce(rs, q.index(max(q)))
    for progress, mu in ((0.25, 0.5), (0.5, 1.0), (0.9, 1.0), (0.0, 0.0)):
        assert adamatch_ramp(progress) == pytest.approx(mu)
        losses = _loss(method, model, batch, progress)
        assert float(losses.parts["consistency"]) == pytest.approx(
            1.5 * mu * expected / 10, rel=1e-4, abs=1e-12
        )
    assert expected > 0
    assert float(losses.parts["source_ce"]) == pytest.approx(
        _mean_ce(z[:10].double(), batch.y_source), rel=1e-4
    )
    strong_ce = _mean_ce(z_strong[:10].double(), batch.y_source)
    assert float(losses.parts["source_strong_ce"]) == pytest.approx(strong_ce, rel=1e-4)


def test_distribution_alignment_scales_back_a_class_that_grows_on_the_target_only():
    p_source = torch.tensor([[0.5, 0.3, 0.2], [0.3, 0.4, 0.3]])
    same = align_distributions(p_source, p_source)
    assert torch.allclose(same, p_source)  # the target predicted like the source: unchanged
    # the target drifting onto class 0: rows leaning to class 0 by a little are handed back to the
    # class the source would give them; a row that is clearly class 0 keeps it
    p_target = torch.tensor([[0.45, 0.40, 0.15], [0.50, 0.10, 0.40], [0.90, 0.05, 0.05], [0.6, 0.3, 0.1]])
    q = align_distributions(p_target, p_source)
    assert torch.allclose(q.sum(1), torch.ones(4))
    assert q.mean(0)[0] < p_target.mean(0)[0]
    assert q[0].argmax() == 1 and q[1].argmax() == 2 and q[2].argmax() == 0
    assert isinstance(registry.build("method", "adamatch"), AdaMatch)


def test_alignment_with_source_weights_is_alignment_over_the_rows_repeated_by_their_weights():
    g = torch.Generator().manual_seed(3)
    p_source = torch.softmax(torch.randn(4, 3, generator=g) * 2, 1)
    p_target = torch.softmax(torch.randn(6, 3, generator=g) * 2, 1)
    counts = torch.tensor([3, 0, 1, 2])  # integer weights: the same as repeating each row that often
    repeated = p_source.repeat_interleave(counts, dim=0)
    weighted = align_distributions(p_target, p_source, counts.float())
    assert torch.allclose(weighted, align_distributions(p_target, repeated), atol=1e-6)
    assert not torch.allclose(weighted, align_distributions(p_target, p_source), atol=1e-3)
    assert torch.allclose(align_distributions(p_target, p_source, torch.full((4,), 0.5)),
                          align_distributions(p_target, p_source), atol=1e-6)  # fmt: skip
    # AdaMatch's loss: the weighted batch against the repeated one (pseudo-labels and relative threshold)
    zs, zw, zst = torch.randn(4, 3, generator=g) * 3, torch.randn(6, 3, generator=g) * 3, torch.randn(6, 3)
    for threshold in (0.5, 0.9):
        assert float(adamatch_loss(zs, zw, zst, threshold, counts.float())) == pytest.approx(
            float(adamatch_loss(zs.repeat_interleave(counts, dim=0), zw, zst, threshold)), rel=1e-6
        )


@pytest.mark.parametrize(
    "name,settings,message",
    [
        ("adamatch", {"weight": -2.0}, "weight must be a finite number >= 0, got -2.0"),
        ("fixmatch", {"weight": float("nan")}, "weight must be a finite number >= 0, got nan"),
        ("adamatch", {"threshold": 1.5}, "threshold must be in \\[0, 1\\], got 1.5"),
        ("fixmatch", {"threshold": -0.1}, "threshold must be in \\[0, 1\\], got -0.1"),
        ("mcc", {"target_weight": -1.0}, "target_weight must be a finite number >= 0, got -1.0"),
    ],
)
def test_settings_out_of_range_are_refused_with_their_name(name, settings, message):
    from transferkit.errors import TransferkitError

    with pytest.raises(TransferkitError, match=message):
        registry.build("method", name, settings)


# the augmentations against naive pixel loops


def test_shift_images_moves_pixels_and_repeats_the_border():
    x = _images(3, seed=5)
    dx, dy = torch.tensor([2, -3, 0]), torch.tensor([-1, 4, 0])
    out = shift_images(x, dx, dy)
    for n in range(3):
        for i in range(32):
            for j in range(0, 32, 3):
                si, sj = min(max(i - int(dy[n]), 0), 31), min(max(j - int(dx[n]), 0), 31)
                assert torch.equal(out[n, :, i, j], x[n, :, si, sj])
    assert torch.equal(out[2], x[2])


def test_affine_images_identity_translation_and_quarter_turn():
    x = _images(2, seed=6)
    zero, one = torch.zeros(2), torch.ones(2)
    assert torch.allclose(affine_images(x, zero, zero, one, zero, zero), x, atol=1e-5)
    moved = affine_images(x, zero, zero, one, torch.tensor([3.0, -2.0]) / 32, torch.tensor([1.0, 5.0]) / 32)
    assert torch.allclose(moved, shift_images(x, torch.tensor([3, -2]), torch.tensor([1, 5])), atol=1e-5)
    turned = affine_images(x, torch.full((2,), math.pi / 2), zero, one, zero, zero)
    # output point u samples the input at R^-1 u: pixel (row i, col j) comes from (row 31 - j, col i)
    for i in range(0, 32, 5):
        for j in range(0, 32, 7):
            assert torch.allclose(turned[:, :, i, j], x[:, :, 31 - j, i], atol=1e-5)
    assert torch.allclose(affine_images(x, zero, zero, 2 * one, zero, zero)[:, :, 15:17, 15:17],
                          x[:, :, 15:17, 15:17], atol=0.6)  # fmt: skip


def test_cutout_and_contrast_brightness_by_hand():
    x = _images(2, seed=7)
    out = cutout(x, torch.tensor([4, 0]), torch.tensor([1, 10]), torch.tensor([30, 10]))
    mean0 = float(x[0].mean())
    for i in range(32):
        for j in range(32):
            inside = -1 <= i < 3 and 28 <= j < 32  # centre (1, 30), side 4: rows -1..2, cols 28..31
            want = torch.full((3,), mean0) if inside else x[0, :, i, j]
            assert torch.allclose(out[0, :, i, j], want)
    assert torch.equal(out[1], x[1])  # side 0: nothing cut
    y = adjust_contrast_brightness(x, torch.tensor([0.5, 2.0]), torch.tensor([1.2, 0.9]))
    for n, (c, b) in enumerate([(0.5, 1.2), (2.0, 0.9)]):
        m = float(x[n].mean())
        assert torch.allclose(y[n], b * (m + c * (x[n] - m)), atol=1e-6)


def test_augmentations_of_feature_vectors():
    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(0)) * torch.arange(1.0, 7.0)
    g = torch.Generator().manual_seed(1)
    weak, strong = weak_augment(x, g), strong_augment(x, g)
    assert weak.shape == strong.shape == x.shape
    assert 0 < float((weak - x).abs().mean()) < float((strong - x).abs().mean())
    dropped = strong == x.mean(0, keepdim=True)
    assert 0 < float(dropped.float().mean()) < 0.5


# (3) unsupervised mode never reads target labels ---------------------------------------------------


class _Poison:
    """Stands for target labels that must not be read: any use of the values raises."""

    def _fail(self, *a, **k):
        raise AssertionError("a target label was read")

    __getitem__ = __ge__ = __lt__ = __eq__ = __bool__ = __len__ = __iter__ = __getattr__ = _fail
    __hash__ = None


@pytest.mark.parametrize("name", NAMES)
def test_unsupervised_loss_reads_no_target_label(name):
    model, method = _eval(*_setup(name, **ACTIVE.get(name, {})))
    batch = _batch()
    clean = _loss(method, model, batch, 0.5)
    poisoned = DABatch(batch.x_source, batch.y_source, batch.x_target, _Poison())
    assert float(_loss(method, model, poisoned, 0.5).total) == float(clean.total)
    assert "target_ce" not in clean.parts


def _data(seed=0, n=48, images=False):
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, K, n), rng.integers(0, K, n)
    if images:
        base = rng.uniform(size=(K, 3, 32, 32))
        Xs = base[ys] + 0.3 * rng.normal(size=(n, 3, 32, 32))
        Xt = 0.8 * base[yt] + 0.3 * rng.normal(size=(n, 3, 32, 32)) + 0.2
    else:
        centers = rng.normal(size=(K, 6)) * 3
        Xs = centers[ys] + rng.normal(size=(n, 6))
        Xt = centers[yt] + rng.normal(size=(n, 6)) + 1.0
    X = np.concatenate([Xs, Xt]).astype(np.float32)
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, yt], sd


def _trainer(name, seed=0, epochs=2, images=False, **settings):
    if name.startswith("cdan"):  # a small discriminator keeps the test fast
        settings.setdefault("disc_hidden", 32)
    seed_everything(seed)
    shape = (3, 32, 32) if images else (6,)
    model = build_network("mlp", K, in_shape=shape, hidden=(16,), dropout=0.2)
    method = registry.build("method", name, settings)
    cfg = TrainerConfig(epochs=epochs, batch_size=16, lr=0.05, seed=seed, device="cpu")
    return Trainer(model, method, cfg)


def _state(trainer):
    return {**trainer.model.state_dict(), **{f"m.{k}": v for k, v in trainer.method.state_dict().items()}}


def _same(a, b):
    sa, sb = _state(a), _state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", NAMES)
def test_hidden_or_garbage_target_labels_give_the_same_run(name):
    X, y, sd = _data()
    seen = []

    hidden = y.copy()
    hidden[sd < 0] = -1
    garbage = y.copy()
    garbage[sd < 0] = np.random.default_rng(9).integers(0, K, int((sd < 0).sum()))
    a, b = _trainer(name, **ACTIVE.get(name, {})), _trainer(name, **ACTIVE.get(name, {}))
    loss = b.method.loss

    def spy(model, batch, progress):
        seen.append((batch.y_target, batch.y_labelled))
        return loss(model, batch, progress)

    b.method.loss = spy
    a.fit(X, hidden, sd)
    b.fit(X, mask_target_labels(garbage, sd), sd)
    assert seen and all(t is None and lab is None for t, lab in seen)
    assert _same(a, b)


@pytest.mark.parametrize("name", ["dann", "pseudo-label"])
def test_scoring_the_target_every_epoch_leaves_the_run_unchanged(name):
    # the deep benchmarks' oracle row reads the target accuracy after every epoch: that must not
    # touch the training (no RNG draw, no batch-norm update, nothing the loss sees)
    X, y, sd = _data()
    hidden = y.copy()
    hidden[sd < 0] = -1
    a, b = _trainer(name, **ACTIVE.get(name, {})), _trainer(name, **ACTIVE.get(name, {}))
    a.fit(X, hidden, sd)
    # and the label-free scorers the benchmarks record per epoch (what early_stopping would keep)
    b.fit(X, hidden, sd, eval_sets={"target": (X[sd < 0], y[sd < 0])},
          callbacks=[score_every_epoch(X[sd < 0], source_labels=y[sd >= 0])])  # fmt: skip
    assert _same(a, b)
    assert all(0.0 <= h["target_acc"] <= 1.0 for h in b.history) and "target_acc" not in a.history[0]
    assert all(np.isfinite(h[f"select_{n}"]) for h in b.history for n in ("entropy", "snd", "mixval"))


def test_one_pass_scoring_writes_what_a_pass_per_scorer_wrote():
    # score_every_epoch(..., eval_labels=) runs the network once per epoch over the target rows
    # (entropy, SND on all of these few rows, MixVal's pseudo-labels, the collapse check and the
    # accuracy share it): the same records as eval_sets plus a pass for every scorer
    X, y, sd = _data()
    hidden = y.copy()
    hidden[sd < 0] = -1
    tgt = sd < 0
    a, b = _trainer("dann"), _trainer("dann")
    passes = {}
    for name, trainer in (("a", a), ("b", b)):

        def count(module, args, name=name):
            if not module.training and len(args[0]) == int(tgt.sum()):
                passes[name] = passes.get(name, 0) + 1

        trainer.model.register_forward_pre_hook(count)
    unlabelled = np.full(int(tgt.sum()), -1)

    def pass_per_scorer(trainer, record):  # what score_every_epoch did before it shared a pass
        model = TrainerClassifier(trainer)
        for n in ("entropy", "snd", "mixval"):
            record[f"select_{n}"] = float(get_scorer(n)(model, X[tgt], unlabelled, unlabelled))
        if target_collapse(model.predict(X[tgt]), y[sd >= 0]):
            record["target_collapsed"] = True

    a.fit(X, hidden, sd, eval_sets={"target": (X[tgt], y[tgt])}, callbacks=[pass_per_scorer])
    b.fit(X, hidden, sd, callbacks=[score_every_epoch(X[tgt], source_labels=y[sd >= 0], eval_labels=y[tgt])])
    keys = ("target_acc", "select_entropy", "select_snd", "select_mixval", "target_collapsed")
    assert [{k: h.get(k) for k in keys} for h in b.history] == [
        {k: h.get(k) for k in keys} for h in a.history
    ]
    assert _same(a, b) and len(b.history) == 2
    # per epoch: eval, entropy, SND, MixVal, collapse check, one pass each; then the trainer's own
    # final collapse check (one pass) in both
    assert passes == {"a": 5 * 2 + 1, "b": 1 * 2 + 1}
    with pytest.raises(TransferkitError, match="one label per target row"):
        score_every_epoch(X[tgt], eval_labels=y[:3])


# (4) seeded runs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_seeded_runs_are_identical(name):
    images = name in VIEWS  # the image augmentations and the randomized map
    settings = {"max_dim": 10} if name == "cdan-e" else {}
    X, y, sd = _data(images=images)
    y[sd < 0] = -1
    a = _trainer(name, images=images, **settings)
    b = _trainer(name, images=images, **settings)
    a.fit(X, y, sd)
    b.fit(X, y, sd)
    assert _same(a, b)
    assert all(np.isfinite(h["loss"]) for h in a.history) and len(a.history) == 2
    c = _trainer(name, seed=1, images=images, **settings)
    c.fit(X, y, sd)
    assert not _same(a, c)


@pytest.mark.parametrize("name", VIEWS)
def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path, name):
    X, y, sd = _data(images=True)
    y[sd < 0] = -1
    settings = {"max_dim": 10} if name == "cdan-e" else {}
    full = _trainer(name, epochs=3, images=True, **settings)
    full.fit(X, y, sd)

    with pytest.raises(Killed):
        _trainer(name, epochs=3, images=True, **settings).fit(
            X, y, sd, checkpoint_dir=tmp_path, callbacks=[kill_at(1)]
        )
    resumed = _trainer(name, epochs=3, images=True, **settings)
    resumed.fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)
    assert _same(full, resumed)


# (5) semi-supervised -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_revealed_target_labels_add_the_target_term(name):
    model, method = _setup(name, target_weight=0.5)
    batch = _batch(revealed=True)
    parts = method.loss(model, batch, 0.5).parts
    assert "target_ce" in parts and torch.isfinite(parts["target_ce"])
    X, y, sd = _data()
    y[np.flatnonzero(sd < 0)[6:]] = -1  # six revealed target labels
    t = _trainer(name, epochs=1)
    t.fit(X, y, sd)
    assert "target_ce" in t.history[0] and np.isfinite(t.history[0]["target_ce"])


def test_cdan_e_is_cdan_with_entropy_conditioning():
    assert CDANE().entropy_conditioning and not CDAN().entropy_conditioning
    assert registry.entry("method", "cdan-e").load() is CDANE
    assert isinstance(DeepCORAL(), type(registry.build("method", "deep-coral")))
    assert isinstance(registry.build("method", "mcc"), MCC) and isinstance(
        registry.build("method", "fixmatch"), FixMatch
    )
    assert isinstance(registry.build("method", "pseudo-label"), PseudoLabel)


@pytest.mark.parametrize("cls", [DANN, DAN, CDAN, CDANE, MCC, DeepCORAL, FixMatch, AdaMatch, PseudoLabel])
@pytest.mark.parametrize("weight", [-1.0, float("nan"), "a lot"])
def test_a_loss_weight_that_is_not_a_number_at_least_zero_is_refused(cls, weight):
    # a negative weight would maximise the adaptation term; NaN would poison every step
    with pytest.raises(TransferkitError, match=f"{cls.__name__}'s weight must be a finite number >= 0"):
        cls(weight=weight)


def test_deep_coral_and_mcc_refuse_settings_they_would_silently_misread():
    with pytest.raises(TransferkitError, match="on must be 'logits' or 'features', got 'logit'"):
        DeepCORAL(on="logit")  # any value but "logits" used to align the features
    with pytest.raises(TransferkitError, match="temperature must be a finite number > 0"):
        MCC(temperature=0)
    for setting in ("portion", "warmup", "rampup"):  # fractions; 20 would be read as 2000%
        with pytest.raises(TransferkitError, match=f"PseudoLabel's {setting} must be a number in"):
            PseudoLabel(**{setting: 20})
    with pytest.raises(TransferkitError, match="PseudoLabel's threshold must be a finite number >= 0"):
        PseudoLabel(threshold=-0.5)


def test_settings_outside_their_range_are_refused_before_training():
    # each of these trained before, silently wrong: a negative weight maximised a penalty, a negative
    # gradient-norm clip climbed the loss, a zero-width discriminator could not adapt
    from transferkit.deep.fine_tune import FineTune
    from transferkit.dg.coral import DGCORAL
    from transferkit.dg.groupdro import GroupDRO
    from transferkit.dg.irm import IRM
    from transferkit.dg.mixup import Mixup
    from transferkit.dg.mmd import DGMMD
    from transferkit.dg.vrex import VREx

    bad = [
        (DGCORAL, {"weight": -5}, "weight must be a finite number >= 0"),
        (DGMMD, {"weight": -5}, "weight must be a finite number >= 0"),
        (IRM, {"weight": -100}, "weight must be a finite number >= 0"),
        (VREx, {"anneal_steps": -3}, "anneal_steps must be a whole number >= 0"),
        (GroupDRO, {"eta": -1}, "eta must be a finite number >= 0"),
        (Mixup, {"alpha": 0}, "alpha .* must be > 0"),
        (FineTune, {"source_weight": -1}, "source_weight must be a finite number >= 0"),
        (DAN, {"multipliers": (0.0,)}, "multipliers .* must be numbers > 0"),
        (DAN, {"multipliers": ()}, "multipliers .* must be numbers > 0"),
        (CDAN, {"disc_hidden": 0}, "disc_hidden must be a whole number >= 1"),
        (CDANE, {"random_dim": 0}, "random_dim must be a whole number >= 1"),
        (DANN, {"disc_hidden": 0}, "disc_hidden must be a whole number >= 1"),
    ]
    for cls, kw, message in bad:
        with pytest.raises(TransferkitError, match=message):
            cls(**kw)
    with pytest.raises(TransferkitError, match="grad_clip .* must be > 0 or none, got -1"):
        Trainer(build_network("mlp", 2, in_shape=(3,)), DANN(), TrainerConfig(grad_clip=-1.0))._check_config()
