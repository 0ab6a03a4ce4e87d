"""Label-free scorers and shift diagnostics against naive reference implementations (plain loops)
on small random inputs, plus the degenerate cases and bad inputs each must handle."""

from __future__ import annotations

import math

import numpy as np
import pytest

import transferkit.diagnostics as diagnostics
import transferkit.selection as selection
from transferkit.errors import TransferkitError
from transferkit.selection import DomainShuffleSplit, choose, chosen_epoch, get_scorer


class Table:
    """A classifier with given probabilities per row; a row is identified by ``X[:, 0]`` (an index).
    Rows it was never given (mixtures) are predicted by the nearest index. Records the rows asked."""

    def __init__(self, proba, features=None):
        self.proba = np.asarray(proba, dtype=float)
        self.classes_ = np.arange(self.proba.shape[1])
        self._features = features
        self.asked = []

    def _rows(self, X):
        idx = np.rint(np.asarray(X, dtype=float)[:, 0]).astype(int)
        self.asked.append(np.asarray(X, dtype=float)[:, 0].copy())
        return idx

    def predict_proba(self, X):
        return self.proba[self._rows(X)]

    def predict(self, X):
        return self.predict_proba(X).argmax(1)

    def features(self, X, sample_domain=None):
        return self._features[self._rows(X)]


def _task(ns=12, nt=9, k=3, seed=0):
    rng = np.random.default_rng(seed)
    n = ns + nt
    proba = rng.dirichlet(np.ones(k), size=n)
    X = np.c_[np.arange(n, dtype=float), rng.normal(size=(n, 2))]
    y_true = rng.integers(0, k, n)
    sd = np.r_[np.zeros(ns, int), -np.ones(nt, int)]
    return X, y_true, sd, proba


# --- the scorers against loops ------------------------------------------------------------------


def test_entropy_is_minus_the_mean_entropy_of_the_target_rows_only():
    X, y_true, sd, proba = _task(seed=1)
    got = get_scorer("entropy")(Table(proba), X, y_true, sd)
    total = 0.0
    for i in range(len(X)):
        if sd[i] < 0:
            total += -sum(p * math.log(p) for p in proba[i])
    assert got == pytest.approx(-total / (sd < 0).sum(), abs=1e-10)


@pytest.mark.parametrize("max_rows", [2000, 5])
def test_snd_matches_the_paper_with_temperature_005_and_seeded_subsample(max_rows):
    X, y_true, sd, proba = _task(ns=4, nt=11, k=4, seed=2)
    got = get_scorer("snd", max_rows=max_rows, random_state=3)(Table(proba), X, y_true, sd)
    rows = list(np.flatnonzero(sd < 0))
    if len(rows) > max_rows:  # the documented seeded subsample
        rows = sorted(np.random.default_rng(3).choice(rows, max_rows, replace=False))
    norm = [proba[r] / math.sqrt(sum(v * v for v in proba[r])) for r in rows]
    total = 0.0
    for a in range(len(rows)):
        sims = [sum(u * v for u, v in zip(norm[a], norm[b])) / 0.05 for b in range(len(rows)) if b != a]
        top = max(sims)
        e = [math.exp(s - top) for s in sims]
        z = sum(e)
        total += -sum((v / z) * math.log(v / z) for v in e if v > 0)
    assert got == pytest.approx(total / len(rows), abs=1e-10)
    assert got == get_scorer("snd", max_rows=max_rows, random_state=3)(Table(proba), X, y_true, sd)


def test_mixval_matches_a_loop_over_its_pairs():
    rng = np.random.default_rng(4)
    nt = 10
    X = np.c_[np.arange(nt, dtype=float)]
    y = -np.ones(nt, int)

    class Threshold:
        """Class 1 where x > 4.3: mixtures near the boundary cross it."""

        def predict(self, X):
            return (np.asarray(X)[:, 0] > 4.3).astype(int)

    got = get_scorer("mixval", lam=0.6, n_pairs=200, random_state=7)(Threshold(), X, y)
    draws = np.random.default_rng(7)
    i, j = draws.integers(0, nt, 200), draws.integers(0, nt, 200)
    intra, inter = [], []
    for a, b in zip(i, j):
        pa, pb = int(a > 4.3), int(b > 4.3)
        keep = int(0.6 * a + 0.4 * b > 4.3) == pa
        if pa == pb and a != b:
            intra.append(keep)
        elif pa != pb:
            inter.append(keep)
    assert intra and inter and not all(inter)
    assert got == pytest.approx((np.mean(intra) + np.mean(inter)) / 2, abs=1e-12)
    assert rng is not None


def test_iwcv_and_dev_match_their_formulas_for_given_weights(monkeypatch):
    X, y_true, sd, proba = _task(ns=15, nt=8, seed=5)
    y = np.where(sd < 0, -1, y_true)
    w_given = np.random.default_rng(6).uniform(0.2, 3.0, len(X))

    def weights(Z, is_target, C, random_state):
        return w_given[: len(Z)]  # every row is scored: rows == all rows here

    monkeypatch.setattr(selection, "_density_ratio", weights)
    src = np.flatnonzero(sd >= 0)
    w = [w_given[r] for r in src]
    correct = [float(proba[r].argmax() == y[r]) for r in src]
    assert get_scorer("iwcv")(Table(proba), X, y, sd) == pytest.approx(
        sum(a * b for a, b in zip(w, correct)) / sum(w), abs=1e-12
    )
    loss = [-math.log(proba[r, y[r]]) for r in src]
    L = [a * b for a, b in zip(w, loss)]
    n = len(w)
    mL, mW = sum(L) / n, sum(w) / n
    cov = sum((a - mL) * (b - mW) for a, b in zip(L, w)) / (n - 1)
    var = sum((b - mW) ** 2 for b in w) / (n - 1)
    eta = -cov / var  # You et al. 2019, eq. (4)
    dev = mL + eta * mW - eta
    model = Table(proba, features=X[:, 1:])
    assert get_scorer("dev")(model, X, y, sd) == pytest.approx(-dev, abs=1e-10)


def test_dev_with_equal_weights_is_the_plain_weighted_loss(monkeypatch):
    # all weights equal: np.var gives rounding noise (3.6e-33 for 0.1 * 3), not 0, and eta = -cov/var
    # was a ratio of two noises
    X, y_true, sd, proba = _task(ns=7, nt=5, k=2, seed=8)
    y = np.where(sd < 0, -1, y_true)
    monkeypatch.setattr(selection, "_density_ratio", lambda Z, t, C, rs: np.full(len(Z), 0.1 * 3))
    src = np.flatnonzero(sd >= 0)
    expected = -sum(0.1 * 3 * -math.log(proba[r, y[r]]) for r in src) / len(src)
    got = get_scorer("dev")(Table(proba, features=X[:, 1:]), X, y, sd)
    assert got == pytest.approx(expected, abs=1e-12)


def test_each_scorer_reads_only_its_rows():
    """Source-val predicts held-out source rows only; the target scorers, target rows (or mixtures of
    them) only; nothing changes when target rows carry labels (given sample_domain)."""
    X, y_true, sd, proba = _task(ns=10, nt=10, seed=9)
    y = np.where(sd < 0, -1, y_true)
    src_ids, tgt_ids = set(np.flatnonzero(sd >= 0)), np.flatnonzero(sd < 0)
    for name in selection.list_scorers():
        model = Table(proba, features=X[:, 1:])
        masked = get_scorer(name)(model, X, y, sd)
        asked = np.concatenate(model.asked)
        if name == "source-val":
            assert set(asked.astype(int)) <= src_ids
        elif name in ("entropy", "snd", "mixval"):
            assert asked.min() >= tgt_ids.min()  # indices (and mixtures of indices) of target rows
        assert get_scorer(name)(Table(proba, features=X[:, 1:]), X, y_true, sd) == masked


# --- degenerate cases and bad input ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["snd", "mixval"])
def test_a_single_target_row_is_a_clear_error_not_nan_or_zero(name):
    # before: SND returned NaN (a row with no neighbour), MixVal 0.0 (no pair)
    X, y = np.c_[[0.0, 1.0, 2.0]], np.array([0, 1, -1])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    with pytest.raises(TransferkitError, match=f"'{name}' scorer .* needs at least 2; got 1"):
        get_scorer(name)(Table(proba), X, y)
    with pytest.raises(TransferkitError, match="needs at least 2; got 1"):
        selection.score_every_epoch(np.zeros((1, 3)), (name,))


def test_one_predicted_class_gives_finite_scores():
    X = np.c_[np.arange(8.0)]
    y = -np.ones(8, int)
    one = Table(np.tile([0.9, 0.1], (8, 1)))
    assert get_scorer("mixval")(one, X, y) == 1.0  # only intra-cluster pairs: their rate alone
    assert np.isfinite(get_scorer("snd")(one, X, y)) and np.isfinite(get_scorer("entropy")(one, X, y))


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("mixval", {"lam": 0.3}, "lam must lie strictly between 0.5 and 1"),
        ("mixval", {"lam": 1.0}, "lam must lie strictly between 0.5 and 1"),
        ("mixval", {"n_pairs": 0}, "n_pairs must be at least 1"),
        ("snd", {"temperature": 0.0}, "temperature must be > 0"),
        ("snd", {"max_rows": 1}, "max_rows must be at least 2"),
    ],
)
def test_bad_settings_are_clear_errors(name, params, match):
    with pytest.raises(TransferkitError, match=match):
        get_scorer(name, **params)


def test_a_y_of_the_wrong_length_is_a_clear_error():
    X, y_true, sd, proba = _task(seed=10)
    with pytest.raises(TransferkitError, match="y must hold one label per row of X"):
        get_scorer("source-val")(Table(proba), X, y_true[:-1], sd)


def test_nan_scores_rank_last():
    # a NaN first used to win: max() keeps it, every comparison with NaN being False
    cands = [
        {"scores": {"entropy": float("nan")}},
        {"scores": {"entropy": -0.5}},
        {"scores": {"entropy": -0.2}},
    ]
    assert choose(cands, "entropy") is cands[2]
    assert choose(cands[:1], "entropy") is cands[0]  # all NaN: still a choice
    rows = [{"score:iwcv": "nan"}, {"score:iwcv": "0.4"}]
    assert choose(rows, "iwcv", lambda c, n: c[f"score:{n}"]) is rows[1]
    history = [{"epoch": 1, "select_snd": float("nan")}, {"epoch": 2, "select_snd": 0.1}]
    assert chosen_epoch(history, "snd")["epoch"] == 2


def test_split_refuses_any_labelled_target_row():
    # every target row is in both parts: a labelled one would be scored as a held-out source row
    # (with its target label) although the model was fitted on it
    X, y_true, sd, _ = _task(ns=20, nt=10, k=2, seed=11)
    y = np.where(sd < 0, -1, y_true)
    y[np.flatnonzero(sd < 0)[:2]] = 1
    with pytest.raises(TransferkitError, match="label on 2 of the 10 target rows"):
        next(DomainShuffleSplit(1).split(X, y, sd))


# --- diagnostics against loops --------------------------------------------------------------------


def test_bbse_without_shift_and_a_perfect_classifier_finds_no_shift():
    # 7 rows per class: the stratified held-out half has 4, 4, 3 of them; weighting w by the whole
    # source's 1/3 each (not the half's prior, which C holds) reported a shift of 0.067 here
    centers = np.eye(3) * 20.0
    rng = np.random.default_rng(0)
    ys = np.repeat(np.arange(3), 7)
    yt = np.repeat(np.arange(3), 10)  # only shapes the target, never passed
    Xs = centers[ys] + rng.normal(size=(21, 3))
    Xt = centers[yt] + rng.normal(size=(30, 3))
    est = diagnostics.label_shift(Xs, ys, Xt)
    assert est["total_variation"] == pytest.approx(0.0, abs=1e-10)
    assert est["target_prior"] == [0.3333] * 3


def test_bbse_matches_a_loop_over_the_held_out_half():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    ys = rng.integers(0, 3, 60)
    yt = rng.choice(3, 50, p=[0.6, 0.3, 0.1])
    Xs = np.eye(3)[ys] * 2 + rng.normal(size=(60, 3))
    Xt = np.eye(3)[yt] * 2 + rng.normal(size=(50, 3))
    tr, ho = train_test_split(np.arange(60), test_size=0.5, stratify=ys, random_state=0)
    # the black box's strength: the one of lowest out-of-fold log-loss on that half (tested on its own)
    chosen = diagnostics.calibrated_logreg(Xs[tr], ys[tr], random_state=0)[-1].C
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=chosen, max_iter=2000)).fit(Xs[tr], ys[tr])
    pred_ho, pred_t = clf.predict(Xs[ho]), clf.predict(Xt)
    C = [[sum(1 for p, t in zip(pred_ho, ys[ho]) if p == i and t == j) / len(ho) for j in range(3)]
         for i in range(3)]  # fmt: skip
    mu = [sum(1 for p in pred_t if p == i) / len(pred_t) for i in range(3)]
    w = np.clip(np.linalg.solve(np.array(C), np.array(mu)), 0, None)
    q = [sum(C[i][j] for i in range(3)) for j in range(3)]
    prior = [w[j] * q[j] for j in range(3)]
    prior = [p / sum(prior) for p in prior]
    est = diagnostics.label_shift(Xs, ys, Xt, random_state=0)
    assert est["target_prior"] == pytest.approx(prior, abs=5e-5)
    ps = [np.mean(ys == j) for j in range(3)]
    assert est["total_variation"] == pytest.approx(
        0.5 * sum(abs(a - b) for a, b in zip(prior, ps)), abs=1e-10
    )


def test_mmd_permutation_p_value_matches_a_loop():
    rng = np.random.default_rng(2)
    Xs, Xt = rng.normal(size=(9, 2)), rng.normal(size=(7, 2)) + 0.4
    Z = np.vstack([Xs, Xt])
    d2 = [[float(np.sum((a - b) ** 2)) for b in Z] for a in Z]
    med = float(np.median([d2[i][j] for i in range(16) for j in range(i + 1, 16)]))
    K = [[math.exp(-v / med) for v in row] for row in d2]

    def mmd2(order):
        a, b = order[:9], order[9:]
        sxx = sum(K[i][j] for i in a for j in a if i != j) / (9 * 8)
        syy = sum(K[i][j] for i in b for j in b if i != j) / (7 * 6)
        sxy = sum(K[i][j] for i in a for j in b) / (9 * 7)
        return sxx + syy - 2 * sxy

    observed = mmd2(list(range(16)))
    perms = np.random.default_rng(5)  # no subsample below max_rows: the permutations come first
    count = sum(mmd2(list(perms.permutation(16))) >= observed for _ in range(30))
    got, p = diagnostics.mmd_test(Xs, Xt, n_permutations=30, random_state=5)
    assert got == pytest.approx(observed, abs=1e-10)
    assert p == (1 + count) / 31


def test_proxy_a_distance_matches_its_folds():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    Xs, Xt = rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 0.7
    X, d = np.vstack([Xs, Xt]), np.r_[np.zeros(20), np.ones(20)]
    accs = []
    for tr, te in StratifiedKFold(2, shuffle=True, random_state=0).split(X, d):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X[tr], d[tr])
        accs.append(sum(int(a == b) for a, b in zip(clf.predict(X[te]), d[te])) / len(te))
    err = min(1 - sum(accs) / 2, 0.5)
    assert diagnostics.proxy_a_distance(Xs, Xt) == pytest.approx(2 * (1 - 2 * err), abs=1e-12)


def test_feature_drift_matches_ks_and_standardized_mean_difference_loops():
    rng = np.random.default_rng(4)
    Xs, Xt = rng.normal(size=(13, 3)), rng.normal(size=(11, 3)) * [1, 2, 1] + [0, 0, 1]
    out = {d["feature"]: d for d in diagnostics.feature_drift(Xs, Xt)}
    for f in range(3):
        a, b = Xs[:, f], Xt[:, f]
        ks = max(abs(np.mean(a <= x) - np.mean(b <= x)) for x in np.r_[a, b])
        pooled = math.sqrt((np.var(a) + np.var(b)) / 2)
        assert out[f"feature {f}"]["ks"] == round(ks, 4)
        assert out[f"feature {f}"]["std_mean_diff"] == round((b.mean() - a.mean()) / pooled, 4)


def test_support_overlap_and_effective_sample_size_follow_their_formulas(monkeypatch):
    rng = np.random.default_rng(5)
    Xs, Xt = rng.normal(size=(30, 2)), rng.normal(size=(20, 2)) + 0.5
    ys = np.arange(30) % 2
    p_src, p_tgt = rng.uniform(0.05, 0.95, 30), rng.uniform(0.05, 0.99, 20)
    monkeypatch.setattr(diagnostics, "_domain_probabilities", lambda a, b, rs: (p_src, p_tgt))
    rep = diagnostics.diagnose(Xs, ys, Xt, n_permutations=1)
    inside = 0
    for p in p_tgt:  # p(target | x) at equal priors: odds times n_s / n_t
        odds = p / (1 - p) * 30 / 20
        inside += odds / (1 + odds) < 0.9
    w = [p / (1 - p) * 30 / 20 for p in p_src]
    ess = sum(w) ** 2 / sum(v * v for v in w) / 30
    assert rep.support_overlap == round(inside / 20, 4)
    assert rep.effective_sample_size == round(ess, 4)
