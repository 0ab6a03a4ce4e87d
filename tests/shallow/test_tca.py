"""TCA: drops the directions along which the domains' means differ, and solves its eigenproblem."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import kernel
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.tca import TCA, leading_generalized_eigenvectors


def _nuisance(seed=0, n=150):
    """A strong signal feature, and two nuisance features that help on the source but are
    translated far on the target (the shift TCA's MMD term removes)."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, n), rng.integers(0, 2, n)

    def draw(y):
        return np.c_[3.0 * y + rng.normal(size=n), 0.7 * y[:, None] + 0.5 * rng.normal(size=(n, 2))]

    Xs, Xt = draw(ys), draw(yt) + [0.0, -2.5, -2.5]
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, np.full(n, -1)], sd, Xt, yt


def _model(**kw):
    return DAClassifier(TCA(**{"n_components": 1, **kw}), LogisticRegression(max_iter=1000))


@pytest.mark.parametrize("kern", ["linear", "rbf"])
def test_beats_source_only_on_a_nuisance_translation(kern):
    X, y, sd, Xt, yt = _nuisance()
    src = sd >= 0
    source_only = np.mean(LogisticRegression(max_iter=1000).fit(X[src], y[src]).predict(Xt) == yt)
    adapted = np.mean(_model(kernel=kern).fit(X, y, sd).predict(Xt) == yt)
    assert adapted >= source_only + 0.15, (source_only, adapted)
    assert adapted > 0.85


def test_deterministic():
    X, y, sd, Xt, _ = _nuisance()
    for kern in ("linear", "rbf"):
        a = _model(kernel=kern, n_components=2).fit(X, y, sd).predict_proba(Xt)
        assert np.array_equal(a, _model(kernel=kern, n_components=2).fit(X, y, sd).predict_proba(Xt))


def test_target_labels_are_never_read():
    X, y, sd, Xt, _ = _nuisance()
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).integers(0, 2, (sd < 0).sum())
    assert np.array_equal(_model().fit(X, y, sd).predict(Xt), _model().fit(X, scrambled, sd).predict(Xt))
    Z = [TCA(n_components=2).fit(X, lab, sd).transform(X, sd) for lab in (y, scrambled, None)]
    assert np.array_equal(Z[0], Z[1]) and np.array_equal(Z[0], Z[2])


def test_bad_input_gives_a_clear_error():
    X, y, sd, _, _ = _nuisance(n=40)
    with pytest.raises(TransferkitError, match="no target rows"):
        TCA().fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[0, 2] = np.inf
    with pytest.raises(TransferkitError, match="NaN"):
        TCA().fit(bad, y, sd)
    for params, msg in (({"mu": 0.0}, "mu > 0"), ({"kernel": "poly"}, "kernel"), ({"gamma": -1.0}, "gamma")):
        with pytest.raises(TransferkitError, match=msg):
            TCA(**params).fit(X, y, sd)


def _naive_matrices(Xtr, ns, kern, gamma):
    """K, L and H built entry by entry, as written in the paper."""
    n = len(Xtr)
    K = np.array(
        [[kernel(Xtr[i : i + 1], Xtr[j : j + 1], kern, gamma)[0, 0] for j in range(n)] for i in range(n)]
    )
    L = np.empty((n, n))
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            si, sj = i < ns, j < ns
            L[i, j] = (
                1 / ns**2 if si and sj else 1 / (n - ns) ** 2 if not (si or sj) else -1 / (ns * (n - ns))
            )
            H[i, j] = (i == j) - 1 / n
    return K, L, H


@pytest.mark.parametrize("kern", ["linear", "rbf"])
def test_components_solve_the_generalized_eigenproblem(kern):
    from scipy.linalg import eigh

    X, y, sd, _, _ = _nuisance(n=25)
    tca = TCA(kernel=kern, n_components=2, mu=0.5, gamma=0.3).fit(X, y, sd)
    K, L, H = _naive_matrices(X, 25, kern, 0.3)
    if kern == "linear":  # primal: X^T H X a = lambda (X^T L X + mu I) a
        A, B = X.T @ H @ X, X.T @ L @ X + 0.5 * np.eye(X.shape[1])
    else:  # K H K w = lambda (K L K + mu I) w
        A, B = K @ H @ K, K @ L @ K + 0.5 * np.eye(len(X))
    W, lam = tca.components_, tca.eigenvalues_
    assert np.allclose(A @ W, (B @ W) * lam, atol=1e-8 * np.abs(A).max())
    ref = eigh(A, B, eigvals_only=True)[::-1][:2]  # a generic generalized solver: the same leading values
    assert np.allclose(lam, ref, rtol=1e-8)
    # the embedding of the training rows is k(x, X_train) W, up to TCA's one global scale
    Z = tca.transform(X, sd)
    raw = (X - X.mean(0)) @ W if kern == "linear" else K @ W
    assert np.allclose(Z, raw * (Z[:, 0] @ raw[:, 0]) / (raw[:, 0] @ raw[:, 0]))


def test_rank_one_reduction_matches_a_generic_generalized_solver():
    from scipy.linalg import eigh

    rng = np.random.default_rng(0)
    G = rng.normal(size=(7, 7))
    A, u = G @ G.T, rng.normal(size=7)
    for uu in (u, np.zeros(7)):
        vals, W = leading_generalized_eigenvectors(A, uu, 0.3, 3)
        ref_vals, ref_W = eigh(A, np.outer(uu, uu) + 0.3 * np.eye(7))
        assert np.allclose(vals, ref_vals[::-1][:3])
        for k in range(3):  # the same directions (up to sign and scale)
            cos = abs(W[:, k] @ ref_W[:, -1 - k]) / np.linalg.norm(W[:, k]) / np.linalg.norm(ref_W[:, -1 - k])
            assert cos == pytest.approx(1.0, abs=1e-8)


def test_out_of_sample_rows_use_the_training_kernel():
    X, y, sd, Xt, _ = _nuisance(n=60)
    for kern in ("linear", "rbf"):
        tca = TCA(kernel=kern, n_components=2).fit(X, y, sd)
        full = tca.transform(X, sd)
        part = tca.transform(X[::7], sd[::7])  # a subset transformed on its own gives the same rows
        assert np.allclose(part, full[::7])
        new = Xt[:5] + 0.01
        assert np.allclose(tca.transform(new), tca.transform(new, np.full(5, -1)))  # no domain: target
    assert np.abs(full[sd >= 0].mean(0) - full[sd < 0].mean(0)).max() < 0.3  # the mean gap is small


def test_linear_tca_on_rows_standardized_per_domain_is_pca_and_says_so():
    # each domain standardized on its own: the two means are equal, the linear kernel's only
    # distribution term vanishes, and the components are the pooled rows' principal axes
    rng = np.random.default_rng(0)
    X = np.vstack(
        [rng.normal(size=(80, 5)) * [3, 2, 1, 1, 1], rng.normal(size=(60, 5)) * [1, 1, 1, 2, 3] + 4]
    )
    sd = np.r_[np.zeros(80, int), -np.ones(60, int)]
    for d in (0, -1):
        X[sd == d] = (X[sd == d] - X[sd == d].mean(0)) / X[sd == d].std(0)
    with pytest.warns(UserWarning, match="TCA is plain PCA of the pooled rows"):
        tca = TCA(n_components=3).fit(X, None, sd)
    assert tca.mean_gap_ < 1e-6
    pca = np.linalg.svd(X - X.mean(0), full_matrices=False)[2][:3].T  # the three leading axes
    A = tca.components_ / np.linalg.norm(tca.components_, axis=0)
    np.testing.assert_allclose(np.abs(A.T @ pca), np.eye(3), atol=1e-8)
    # with a mean difference left (one standardization for both) it aligns and does not warn
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X[sd == -1] += 1.0
        assert TCA(n_components=3).fit(X, None, sd).mean_gap_ > 0.1
