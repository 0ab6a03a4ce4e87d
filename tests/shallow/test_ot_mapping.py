"""OT mapping: the source is moved onto the target by a transport plan, solved by POT."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.ot_mapping import OTMapping

SOLVERS = ["emd", "sinkhorn", "class-reg"]


def _transformed(seed=0, n=200):
    """The target is the source rotated by 30 degrees, scaled by 1.3 and translated across the
    source's decision boundary."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, n), rng.integers(0, 2, n)
    centers = np.array([[0.0, 0.0], [4.0, 0.0]])
    theta = np.pi / 6
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    Xs = centers[ys] + rng.normal(size=(n, 2))
    Xt = ((centers[yt] + rng.normal(size=(n, 2))) @ R.T) * 1.3 + [3.0, 1.0]
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, np.full(n, -1)], sd, Xt, yt


def _model(**kw):
    return DAClassifier(OTMapping(**kw), LogisticRegression(max_iter=1000))


@pytest.mark.parametrize("solver", SOLVERS)
def test_beats_source_only_on_a_rotated_scaled_translated_target(solver):
    X, y, sd, Xt, yt = _transformed()
    src = sd >= 0
    source_only = np.mean(LogisticRegression(max_iter=1000).fit(X[src], y[src]).predict(Xt) == yt)
    adapted = np.mean(_model(solver=solver).fit(X, y, sd).predict(Xt) == yt)
    assert source_only < 0.7 and adapted > 0.85 and adapted >= source_only + 0.2, (source_only, adapted)


@pytest.mark.parametrize("solver", SOLVERS)
def test_deterministic(solver):
    X, y, sd, Xt, _ = _transformed(n=80)
    a = _model(solver=solver).fit(X, y, sd).predict_proba(Xt)
    assert np.array_equal(a, _model(solver=solver).fit(X, y, sd).predict_proba(Xt))


@pytest.mark.parametrize("solver", SOLVERS)
def test_target_labels_are_never_read(solver):
    X, y, sd, Xt, yt = _transformed(n=80)
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    a = _model(solver=solver).fit(X, y, sd).predict(Xt)
    assert np.array_equal(a, _model(solver=solver).fit(X, scrambled, sd).predict(Xt))
    truth = y.copy()
    truth[sd < 0] = yt
    Z = [OTMapping(solver=solver).fit(X, labels, sd).transform(X, sd) for labels in (y, scrambled, truth)]
    assert np.array_equal(Z[0], Z[1]) and np.array_equal(Z[0], Z[2])


def test_bad_input_gives_a_clear_error():
    X, y, sd, _, _ = _transformed(n=30)
    with pytest.raises(TransferkitError, match="no target rows"):
        OTMapping().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[1, 1] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        OTMapping().fit(bad, y, sd)
    with pytest.raises(TransferkitError, match="solver"):
        OTMapping(solver="greenkhorn").fit(X, y, sd)
    with pytest.raises(TransferkitError, match="reg_e"):
        OTMapping(solver="sinkhorn", reg_e=0.0).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="source labels"):
        OTMapping(solver="class-reg").fit(X, None, sd)
    with pytest.raises(TransferkitError, match="max_iter"):
        OTMapping(max_iter=0).fit(X, y, sd)


def test_exact_transport_is_the_best_permutation_by_brute_force():
    """Uniform weights and as many source as target rows: the optimal plan is a permutation
    (Birkhoff), found here by trying all of them; each source row lands on its target row."""
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) * 2.0 + 1.0
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(6, int), -np.ones(6, int)]
    cost = lambda p: sum(np.sum((Xs[i] - Xt[p[i]]) ** 2) for i in range(6))  # noqa: E731
    best = min(itertools.permutations(range(6)), key=cost)
    ot_map = OTMapping(solver="emd").fit(X, None, sd)
    Z = ot_map.transform(X, sd)
    assert np.allclose(Z[:6], Xt[list(best)])
    assert np.array_equal(Z[6:], Xt)  # target rows stay where they are
    assert np.allclose(ot_map.coupling_ * 6, np.eye(6)[list(best)])


def test_sinkhorn_plan_has_the_entropic_form_and_the_marginals():
    """gamma = diag(u) exp(-C / eps) diag(v): log(gamma) + C / eps is a sum f_i + g_j."""
    X, y, sd, Xs_t, _ = _transformed(n=40)
    ot_map = OTMapping(solver="sinkhorn", reg_e=0.5).fit(X, y, sd)
    G = ot_map.coupling_
    Xs, Xt = X[sd >= 0], X[sd < 0]
    C = ((Xs[:, None, :] - Xt[None, :, :]) ** 2).sum(-1)
    C /= np.median(C)
    S = np.log(G) + C / 0.5
    residual = S - S.mean(1, keepdims=True) - S.mean(0, keepdims=True) + S.mean()
    assert np.abs(residual).max() < 1e-6
    assert np.allclose(G.sum(1), 1 / 40, atol=1e-7) and np.allclose(G.sum(0), 1 / 40, atol=1e-7)
    # the barycentric map, row by row
    Z = ot_map.transform(X, sd)
    for i in (0, 17, 39):
        assert np.allclose(Z[i], G[i] @ Xt / G[i].sum())


def test_class_regularization_keeps_classes_apart():
    """With class regularization, each target row receives its mass from fewer source classes."""
    X, y, sd, _, _ = _transformed(n=100)
    ys = y[sd >= 0]

    def purity(solver, **kw):
        G = OTMapping(solver=solver, **kw).fit(X, y, sd).coupling_
        per_class = np.stack([G[ys == c].sum(0) for c in (0, 1)])
        return np.mean(per_class.max(0) / per_class.sum(0))

    plain, regularized = purity("sinkhorn"), purity("class-reg")
    assert regularized > plain + 0.03 and regularized > 0.99, (plain, regularized)


def test_a_plan_stopped_early_gives_one_clear_warning():
    X, y, sd, _, _ = _transformed(n=60)
    with pytest.warns(UserWarning, match="marginals off") as record:
        ot_map = OTMapping(solver="sinkhorn", reg_e=0.01, max_iter=3).fit(X, y, sd)
    assert len(record) == 1 and ot_map.marginal_error_ > 1e-3


def test_out_of_sample_source_rows_move_with_their_nearest_fitted_row():
    X, y, sd, Xt, _ = _transformed(n=60)
    ot_map = OTMapping().fit(X, y, sd)
    Z = ot_map.transform(X, sd)
    Xs = X[sd >= 0]
    new = Xs[:5] + 0.01  # new source rows close to fitted ones
    mapped = ot_map.transform(new, np.zeros(5, int))
    assert np.allclose(mapped, Z[:5] + 0.01)
    assert np.array_equal(ot_map.transform(Xt), Xt)  # rows without a domain are target rows: unchanged


def test_sinkhorn_out_of_sample_map_agrees_with_the_plan_on_fitted_rows():
    """The entropic map for new rows, applied to fitted source rows one subset at a time, gives
    back their barycentric images; a row nudged a little moves a little."""
    X, y, sd, _, _ = _transformed(n=60)
    ot_map = OTMapping(solver="sinkhorn").fit(X, y, sd)
    Z = ot_map.transform(X, sd)
    Xs = X[sd >= 0]
    assert np.allclose(ot_map.transform(Xs[:7], np.zeros(7, int)), Z[:7], atol=1e-8)
    moved = ot_map.transform(Xs[:7] + 1e-4, np.zeros(7, int))
    assert np.abs(moved - Z[:7]).max() < 0.05
