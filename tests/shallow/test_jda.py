"""JDA: a domain-aware classifier that aligns marginals and pseudo-labelled class conditionals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.jda import JDA, jda_mmd_vectors


def _moved(seed=0, n=150):
    """Two classes apart along (1, 1, 0, 0); the target is moved across the source's boundary and
    along two nuisance directions."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, n), rng.integers(0, 2, n)

    def draw(y):
        return rng.normal(size=(n, 4)) + 3.0 * y[:, None] * [1.0, 1.0, 0.0, 0.0]

    Xs, Xt = draw(ys), draw(yt) + [2.0, 2.0, 4.0, 4.0]
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, np.full(n, -1)], sd, Xt, yt


def _jda(**kw):
    # the authors' unit-norm rows and embeddings suit non-negative image features, not these blobs
    plain = {"normalize_rows": False, "normalize_embedding": False}
    return JDA(**{"n_components": 2, "estimator": LogisticRegression(), **plain, **kw})


def test_beats_source_only_on_a_moved_target():
    X, y, sd, Xt, yt = _moved()
    src = sd >= 0
    source_only = np.mean(LogisticRegression(max_iter=1000).fit(X[src], y[src]).predict(Xt) == yt)
    adapted = np.mean(DAClassifier(estimator=_jda()).fit(X, y, sd).predict(Xt) == yt)
    one_nn = np.mean(DAClassifier(estimator=_jda(estimator=None)).fit(X, y, sd).predict(Xt) == yt)
    assert source_only < 0.7 and adapted > 0.9 and one_nn > 0.85, (source_only, adapted, one_nn)


def test_deterministic_and_estimator_by_registry_name():
    X, y, sd, Xt, _ = _moved()
    a = _jda().fit(X, y, sd).predict_proba(Xt)
    assert np.array_equal(a, _jda().fit(X, y, sd).predict_proba(Xt))
    by_name = _jda(estimator="logreg").fit(X, y, sd)
    assert np.array_equal(
        by_name.predict(Xt), _jda(estimator=LogisticRegression(max_iter=1000)).fit(X, y, sd).predict(Xt)
    )
    svm = _jda(estimator="linear-svm-cv").fit(X, y, sd)
    assert not hasattr(svm, "predict_proba") and svm.decision_function(Xt).shape == (len(Xt),)


def test_target_labels_are_never_read():
    X, y, sd, Xt, yt = _moved()
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    a = DAClassifier(estimator=_jda()).fit(X, y, sd).predict(Xt)
    assert np.array_equal(a, DAClassifier(estimator=_jda()).fit(X, scrambled, sd).predict(Xt))
    # JDA itself, handed the true or scrambled target labels, only ever uses its pseudo-labels
    truth = y.copy()
    truth[sd < 0] = yt
    for labels in (truth, scrambled):
        assert np.array_equal(_jda().fit(X, labels, sd).predict(Xt), a)


def test_bad_input_gives_a_clear_error():
    X, y, sd, Xt, _ = _moved(n=30)
    with pytest.raises(TransferkitError, match="no target rows"):
        _jda().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[2, 3] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        _jda().fit(bad, y, sd)
    for params, msg in (({"reg": 0.0}, "reg > 0"), ({"kernel": "poly"}, "kernel"), ({"n_iter": 0}, "n_iter")):
        with pytest.raises(TransferkitError, match=msg):
            _jda(**params).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="features"):
        _jda().fit(X, y, sd).predict(Xt[:, :2])


def test_mmd_matrix_matches_a_double_loop():
    ys = np.array([0, 0, 1, 1, 1, 2])
    pt = np.array([1, 0, 0, 1, 1])  # class 2 has no pseudo-labelled target row: its term is skipped
    classes = np.array([0, 1, 2])
    M = (lambda E: E @ E.T)(jda_mmd_vectors(ys, pt, classes))
    ns, nt = len(ys), len(pt)
    n = ns + nt
    dom = np.r_[np.zeros(ns), np.ones(nt)]
    lab = np.r_[ys, pt]
    naive = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            # M0 (counted C times, as in the authors' code)
            naive[i, j] += (
                len(classes) * (1 / ns if dom[i] == 0 else -1 / nt) * (1 / ns if dom[j] == 0 else -1 / nt)
            )
            for c in (0, 1):  # Mc, eq. (7) of the paper
                if lab[i] != c or lab[j] != c:
                    continue
                nsc, ntc = np.sum(ys == c), np.sum(pt == c)
                if dom[i] == dom[j] == 0:
                    naive[i, j] += 1 / nsc**2
                elif dom[i] == dom[j] == 1:
                    naive[i, j] += 1 / ntc**2
                else:
                    naive[i, j] -= 1 / (nsc * ntc)
    assert np.allclose(M, naive)


def test_projection_solves_the_generalized_eigenproblem_of_the_last_round():
    from scipy.linalg import eigh

    X, y, sd, _, _ = _moved(n=40)
    jda = _jda(n_components=2, n_iter=2, reg=0.7).fit(X, y, sd)
    F = np.vstack([X[sd >= 0], X[sd < 0]])
    ys = y[sd >= 0]
    E = jda_mmd_vectors(ys, jda.pseudo_history_[0], jda.classes_)  # M of round 2: round 1's labels
    M = E @ E.T
    n, d = F.shape
    H = np.eye(n) - 1.0 / n
    XHX = F.T @ H @ F
    XHX += 1e-6 * np.trace(XHX) / d * np.eye(d)  # the same tiny jitter
    XMX = F.T @ (M / np.linalg.norm(M)) @ F + 0.7 * np.eye(d)
    A = jda.projection_
    lam = np.diag(A.T @ XMX @ A) / np.diag(A.T @ XHX @ A)
    assert np.allclose(XMX @ A, XHX @ A * lam, atol=1e-8 * np.abs(XMX).max())
    assert np.allclose(np.sort(lam), eigh(XMX, XHX, eigvals_only=True)[:2])  # the two smallest
    assert np.allclose(np.linalg.norm(A, axis=0), 1.0)


@pytest.mark.parametrize("kernel", ["primal", "linear", "rbf"])
def test_out_of_sample_prediction_reuses_the_last_embedding(kernel):
    X, y, sd, Xt, yt = _moved(n=80)
    jda = _jda(n_components=3, kernel=kernel, estimator=None).fit(X, y, sd)
    # predicting the target rows again (through the out-of-sample path) gives the final pseudo-labels
    assert np.array_equal(jda.predict(Xt), jda.pseudo_history_[-1])
    assert np.array_equal(jda.predict(Xt), jda.predict(Xt, np.full(len(Xt), -1)))  # no domain: target
    if kernel == "primal":
        assert np.mean(jda.predict(Xt) == yt) > 0.85
    # the authors' normalizations go through the same path
    jda = JDA(n_components=3, kernel=kernel).fit(X, y, sd)
    assert np.array_equal(jda.predict(Xt), jda.pseudo_history_[-1])
