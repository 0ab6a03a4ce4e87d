"""TrAdaBoost: with a few target labels it beats source-only under a partial concept shift, follows the
paper's algorithm step by step, reads only the revealed target labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from transferkit.domains import few_shot_indices
from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.tradaboost import TrAdaBoost


def partial_concept_shift(seed=0, n=400, k=10, frac=0.4):
    """Target rule x0 > 0; a fraction of the source rows follows another rule (x1 > 0).

    Returns X, y with ``k`` revealed labels per class on the target (-1 elsewhere), sample_domain, the
    true target labels and the mask of the target rows left to score.
    """
    rng = np.random.default_rng(seed)
    Xs, Xt = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    other = rng.random(n) < frac
    ys = np.where(other, Xs[:, 1] > 0, Xs[:, 0] > 0).astype(int)
    yt = (Xt[:, 0] > 0).astype(int)
    picked = few_shot_indices(yt, k, seed)
    y = np.r_[ys, np.full(n, -1)]
    y[n + picked] = yt[picked]
    test = np.ones(n, bool)
    test[picked] = False
    return np.vstack([Xs, Xt]), y, np.r_[np.zeros(n, int), -np.ones(n, int)], yt, test


def test_beats_source_only_with_a_few_target_labels():
    X, y, sd, yt, test = partial_concept_shift()
    Xt = X[sd < 0]
    src = sd >= 0
    source_only = np.mean(LogisticRegression().fit(X[src], y[src]).predict(Xt[test]) == yt[test])
    labelled = y >= 0  # source plus the revealed target rows, pooled without reweighting
    pooled = np.mean(LogisticRegression().fit(X[labelled], y[labelled]).predict(Xt[test]) == yt[test])
    adapted = np.mean(DAClassifier(estimator=TrAdaBoost()).fit(X, y, sd).predict(Xt[test]) == yt[test])
    assert adapted >= source_only + 0.1, (adapted, source_only)
    assert adapted >= pooled + 0.1, (adapted, pooled)


def test_conflicting_source_rows_fade():
    X, y, sd, yt, _ = partial_concept_shift()
    m = TrAdaBoost().fit(X, y, sd)
    Xs, ys = X[sd >= 0], y[sd >= 0]
    agrees = ys == (Xs[:, 0] > 0)  # source rows whose label the target's rule would give
    assert m.source_weights_[agrees].mean() > 5 * m.source_weights_[~agrees].mean()


def _paper_tradaboost(Xs, ys, Xt, yt, n_rounds, seed):
    """Algorithm 1 of Dai et al. (2007), binary labels, written as in the paper."""
    n, m = len(Xs), len(Xt)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, yt]
    w = np.ones(n + m)
    beta = 1 / (1 + np.sqrt(2 * np.log(n) / n_rounds))
    hs, betas = [], []
    for t in range(n_rounds):
        p = w / w.sum()
        h = DecisionTreeClassifier(max_depth=3, random_state=seed + t).fit(X, y, sample_weight=p)
        err = np.abs(h.predict(X) - y)
        eps = np.sum(w[n:] * err[n:]) / np.sum(w[n:])
        assert 0 < eps < 0.5  # the paper's assumption, so that no safeguard is at work
        beta_t = eps / (1 - eps)
        w[:n] *= beta ** err[:n]
        w[n:] *= beta_t ** (-err[n:])
        hs.append(h)
        betas.append(beta_t)

    def predict(Z):
        first = int(np.ceil(n_rounds / 2)) - 1  # rounds ceil(N/2) .. N, counted from 1
        lhs = sum(-np.log(b) * h.predict(Z) for h, b in zip(hs[first:], betas[first:]))
        rhs = sum(-np.log(b) * 0.5 for b in betas[first:])
        return (lhs >= rhs).astype(int)

    return predict, w


@pytest.mark.parametrize("n_rounds", [7, 10])
def test_matches_the_papers_algorithm(n_rounds):
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(150, 2)), rng.normal(size=(40, 2))
    ys = (Xs[:, 0] + 0.3 * rng.normal(size=150) > 0).astype(int)
    yt = (Xt[:, 0] + 0.6 * Xt[:, 1] + 0.5 * rng.normal(size=40) > 0.2).astype(int)
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(150, int), -np.ones(40, int)]
    y = np.r_[ys, yt]
    tree = DecisionTreeClassifier(max_depth=3)
    ours = TrAdaBoost(estimator=tree, n_estimators=n_rounds, random_state=0).fit(X, y, sd)
    paper, w = _paper_tradaboost(Xs, ys, Xt, yt, n_rounds, seed=0)
    Z = rng.normal(size=(300, 2)) * 1.5
    assert np.array_equal(ours.predict(Z), paper(Z))
    assert np.allclose(ours.source_weights_ / ours.source_weights_.sum(), w[:150] / w[:150].sum())
    eps = [np.clip(1 / (1 + np.exp(a)), 0, 1) for a in ours.alphas_]
    assert all(0 < e < 0.5 for e in eps)


def test_multiclass_vote():
    rng = np.random.default_rng(1)
    centers = np.array([[0, 0], [4, 0], [0, 4]])
    ys, yt = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    Xs = centers[ys] + rng.normal(size=(300, 2))
    Xt = centers[yt] + rng.normal(size=(300, 2)) + [0.8, 0.8]
    picked = few_shot_indices(yt, 5, 0)
    y = np.r_[ys, np.full(300, -1)]
    y[300 + picked] = yt[picked]
    sd = np.r_[np.zeros(300, int), -np.ones(300, int)]
    m = TrAdaBoost().fit(np.vstack([Xs, Xt]), y, sd)
    proba = m.predict_proba(Xt)
    assert proba.shape == (300, 3) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(m.classes_[proba.argmax(1)], m.predict(Xt))
    assert np.mean(m.predict(Xt) == yt) > 0.85


def test_deterministic_given_random_state():
    X, y, sd, _, _ = partial_concept_shift(n=200, k=5)
    tree = DecisionTreeClassifier(max_depth=2, max_features=1)  # random: the seed matters
    a = TrAdaBoost(estimator=tree, random_state=5).fit(X, y, sd).predict_proba(X)
    b = TrAdaBoost(estimator=tree, random_state=5).fit(X, y, sd).predict_proba(X)
    assert np.array_equal(a, b)
    d = DAClassifier(estimator=TrAdaBoost())
    assert np.array_equal(d.fit(X, y, sd).predict_proba(X), d.fit(X, y, sd).predict_proba(X))


def test_reads_only_the_revealed_target_labels():
    X, y, sd, yt, _ = partial_concept_shift(n=200, k=5)
    # unlabelled target rows (-1) play no part: dropping them changes nothing
    keep = (sd >= 0) | (y >= 0)
    a = TrAdaBoost().fit(X, y, sd).predict_proba(X)
    b = TrAdaBoost().fit(X[keep], y[keep], sd[keep]).predict_proba(X)
    assert np.array_equal(a, b)
    # nor do their features
    moved = X.copy()
    moved[(sd < 0) & (y < 0)] += 100.0
    assert np.array_equal(a, TrAdaBoost().fit(moved, y, sd).predict_proba(X))
    # through the composer with every target label hidden: a clear error, nothing read
    hidden = np.where(sd < 0, -1, y)
    with pytest.raises(TransferkitError, match="--target-labels K"):
        DAClassifier(estimator=TrAdaBoost()).fit(X, hidden, sd)
    with pytest.raises(TransferkitError, match="needs a few labelled target samples"):
        TrAdaBoost().fit(X, hidden, sd)


def test_bad_input_gives_a_clear_error():
    X, y, sd, _, _ = partial_concept_shift(n=100, k=3)
    with pytest.raises(TransferkitError, match="no target rows"):
        DAClassifier(estimator=TrAdaBoost()).fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    with pytest.raises(TransferkitError, match="no target rows"):
        TrAdaBoost().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        TrAdaBoost().fit(bad, y, sd)
    with pytest.raises(TransferkitError, match="n_estimators"):
        TrAdaBoost(n_estimators=1).fit(X, y, sd)
    from sklearn.neighbors import KNeighborsClassifier

    with pytest.raises(TransferkitError, match="sample_weight"):
        TrAdaBoost(estimator=KNeighborsClassifier()).fit(X, y, sd)
    m = TrAdaBoost().fit(X, y, sd)
    with pytest.raises(TransferkitError, match="features"):
        m.predict(np.c_[X, X])
