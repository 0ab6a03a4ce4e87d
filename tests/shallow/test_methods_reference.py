"""Each shallow method against a naive implementation written from its paper, on small random data.

The references below form the papers' matrices as they are written (dense n x n MMD and centring
matrices, explicit inverses, double loops) and solve them with generic solvers; the library's
implementations use closed forms and reductions, so agreement checks the mathematics, not a copy.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import eig, eigh, sqrtm

from transferkit.shallow.coral import CORAL
from transferkit.shallow.density_ratio import DensityRatio
from transferkit.shallow.gfk import GFK
from transferkit.shallow.jda import JDA
from transferkit.shallow.kliep import KLIEP
from transferkit.shallow.kmm import KMM
from transferkit.shallow.nearest_neighbor_weighting import NearestNeighborWeighting
from transferkit.shallow.ot_mapping import OTMapping
from transferkit.shallow.subspace_alignment import SubspaceAlignment
from transferkit.shallow.tca import TCA
from transferkit.shallow.tradaboost import TrAdaBoost


def _domains(ns=40, nt=30, d=5, seed=0, n_classes=3):
    rng = np.random.default_rng(seed)
    ys = np.arange(ns) % n_classes
    yt = np.arange(nt) % n_classes
    means = rng.normal(scale=3.0, size=(n_classes, d))
    Xs = means[ys] + rng.normal(size=(ns, d))
    Xt = means[yt] @ np.diag(rng.uniform(0.5, 1.5, d)) + rng.normal(size=(nt, d)) + 1.5
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(ns, int), -np.ones(nt, int)]
    return X, np.r_[ys, -np.ones(nt, int)], sd, ys, yt


def _same_span(A, B, atol=1e-6):
    """Whether the columns of A and B span the same subspace."""
    Qa, Qb = np.linalg.qr(A)[0], np.linalg.qr(B)[0]
    return np.allclose(Qa @ Qa.T, Qb @ Qb.T, atol=atol)


# -- TCA (Pan et al. 2011) ---------------------------------------------------------------------------
def test_tca_rbf_is_the_leading_eigenvectors_of_the_papers_matrix():
    X, _, sd, _, _ = _domains()
    ns, nt, m, mu, gamma = 40, 30, 4, 0.7, 0.05
    tca = TCA(kernel="rbf", n_components=m, mu=mu, gamma=gamma).fit(X, None, sd)
    n = ns + nt
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    K = np.exp(-gamma * sq)
    L = np.zeros((n, n))
    L[:ns, :ns] = 1 / ns**2
    L[ns:, ns:] = 1 / nt**2
    L[:ns, ns:] = L[ns:, :ns] = -1 / (ns * nt)
    H = np.eye(n) - np.ones((n, n)) / n
    vals, vecs = eig(np.linalg.inv(K @ L @ K + mu * np.eye(n)) @ K @ H @ K)
    order = np.argsort(-vals.real)[:m]
    W = vecs[:, order].real
    assert np.allclose(np.sort(tca.eigenvalues_)[::-1], vals.real[order], rtol=1e-6)
    assert _same_span(tca.components_, W)
    # rows are embedded as k(x, X_train) W (source rows first, as the library keeps them)
    Z = tca.transform(X, sd)
    assert _same_span(Z, K @ W)


def test_tca_linear_is_the_primal_trace_ratio():
    X, _, sd, _, _ = _domains()
    ns, nt, m, mu = 40, 30, 3, 0.5
    tca = TCA(kernel="linear", n_components=m, mu=mu).fit(X, None, sd)
    n = ns + nt
    e = np.r_[np.full(ns, 1 / ns), np.full(nt, -1 / nt)]
    H = np.eye(n) - np.ones((n, n)) / n
    vals, vecs = eig(np.linalg.inv(X.T @ np.outer(e, e) @ X + mu * np.eye(X.shape[1])) @ X.T @ H @ X)
    order = np.argsort(-vals.real)[:m]
    assert _same_span(tca.components_, vecs[:, order].real)


# -- JDA (Long et al. 2013), the authors' MATLAB loop written out ------------------------------------
def _jda_reference(X, ys, ns, k, lam, n_iter, classes, gamma=None):
    from sklearn.neighbors import KNeighborsClassifier

    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    if gamma is not None:  # the kernel form: K takes the place of the rows (Z = A^T K)
        X = np.exp(-gamma * ((X[:, None] - X[None]) ** 2).sum(-1))
    n = len(X)
    nt = n - ns
    C = len(classes)
    H = np.eye(n) - np.ones((n, n)) / n
    pseudo, history = None, []
    for _ in range(n_iter):
        e = np.r_[np.full(ns, 1 / ns), np.full(nt, -1 / nt)]
        M = np.outer(e, e) * C
        if pseudo is not None:
            for c in classes:
                e = np.zeros(n)
                if (ys == c).any() and (pseudo == c).any():
                    e[:ns][ys == c] = 1 / np.sum(ys == c)
                    e[ns:][pseudo == c] = -1 / np.sum(pseudo == c)
                    M += np.outer(e, e)
        M /= np.linalg.norm(M, "fro")
        B = X.T @ H @ X  # singular with a kernel (H kills the constant): the tiniest ridge, 1e-6 of its mean
        B += 1e-6 * np.trace(B) / len(B) * np.eye(len(B))
        _, A = eigh(X.T @ M @ X + lam * np.eye(X.shape[1]), B, subset_by_index=[0, k - 1])
        A = A / np.linalg.norm(A, axis=0)
        Z = X @ A
        Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        new = KNeighborsClassifier(1).fit(Z[:ns], ys).predict(Z[ns:])
        history.append(new)
        if pseudo is not None and np.array_equal(new, pseudo):
            break
        pseudo = new
    return A, history


@pytest.mark.parametrize("kernel", ["primal", "rbf"])
def test_jda_follows_the_authors_loop_round_by_round(kernel):
    X, y, sd, ys, _ = _domains(ns=60, nt=45, d=6, n_classes=3)
    k, lam, gamma = 3, 0.5, (None if kernel == "primal" else 2.0)
    jda = JDA(n_components=k, reg=lam, n_iter=5, kernel=kernel, gamma=gamma).fit(X, y, sd)
    A, history = _jda_reference(X, ys, 60, k, lam, 5, np.unique(ys), gamma)
    assert len(jda.pseudo_history_) == len(history)
    for got, want in zip(jda.pseudo_history_, history):
        assert np.array_equal(got, want)
    assert _same_span(jda.projection_, A, atol=1e-4)  # up to the library's 1e-6 jitter


def test_jda_never_reads_the_target_labels_it_is_given():
    X, y, sd, ys, yt = _domains(ns=60, nt=45, d=6)
    a = JDA(n_components=3, n_iter=3).fit(X, y, sd)
    b = JDA(n_components=3, n_iter=3).fit(X, np.r_[ys, yt[::-1]], sd)
    assert np.array_equal(a.predict(X[60:]), b.predict(X[60:]))
    assert np.allclose(a.projection_, b.projection_)


# -- subspace alignment (Fernando et al. 2013) --------------------------------------------------------
def test_subspace_alignment_projects_the_source_by_ps_m_and_the_target_by_pt():
    from sklearn.decomposition import PCA

    X, _, sd, _, _ = _domains(d=6)
    Xs, Xt = X[:40], X[40:]
    sa = SubspaceAlignment(n_components=3).fit(X, None, sd)
    Ps, Pt = PCA(3).fit(Xs).components_.T, PCA(3).fit(Xt).components_.T
    M = Ps.T @ Pt
    Z = sa.transform(X, sd)
    # each column of P is defined up to sign: the source map Ps M and the target map Pt flip together
    signs = np.sign(np.sum(sa.basis_target_ * Pt, axis=0))
    assert np.allclose(Z[:40], (Xs - Xs.mean(0)) @ Ps @ M * signs, atol=1e-8)
    assert np.allclose(Z[40:], (Xt - Xt.mean(0)) @ Pt * signs, atol=1e-8)


# -- GFK (Gong et al. 2012) ---------------------------------------------------------------------------
def test_gfk_inner_products_are_the_integral_over_the_geodesic():
    X, _, sd, _, _ = _domains(d=6)
    gfk = GFK(n_components=2).fit(X, None, sd)
    Ps, Pt = gfk.basis_source_, gfk.basis_target_
    # the geodesic written with the full orthogonal complement R_s (the paper's form)
    Rs = np.linalg.svd(np.eye(6) - Ps @ Ps.T)[0][:, :4]
    U1, cos, Vt = np.linalg.svd(Ps.T @ Pt)
    theta = np.arccos(np.clip(cos, -1, 1))
    B = Rs.T @ Pt @ Vt.T  # = -U2 sin(theta)
    U2 = -B / np.sin(theta)
    G = np.zeros((6, 6))
    ts = (np.arange(4000) + 0.5) / 4000
    for t in ts:  # midpoint rule
        Phi = Ps @ U1 * np.cos(t * theta) - Rs @ U2 * np.sin(t * theta)
        G += Phi @ Phi.T / len(ts)
    Z = gfk.transform(X, sd)
    assert np.allclose(Z @ Z.T, X @ G @ X.T, atol=1e-5)


# -- CORAL (Sun et al. 2016) ----------------------------------------------------------------------
def test_coral_whitens_with_cs_plus_i_and_recolours_with_ct_plus_i():
    X, _, sd, _, _ = _domains(d=4)
    Xs, Xt = X[:40], X[40:]
    Cs = np.cov(Xs, rowvar=False) + np.eye(4)
    Ct = np.cov(Xt, rowvar=False) + np.eye(4)
    want = Xs @ np.linalg.inv(sqrtm(Cs)).real @ sqrtm(Ct).real
    Z = CORAL(reg=1.0).fit_transform(X, None, sd)
    assert np.allclose(Z[:40], want, atol=1e-10)
    assert np.array_equal(Z[40:], Xt)  # the target stays


# -- KMM (Huang et al. 2006) ----------------------------------------------------------------------
def test_kmm_weights_satisfy_the_qp_constraints_and_reach_its_optimum():
    from scipy.optimize import minimize

    X, _, sd, _, _ = _domains(ns=30, nt=20, d=3)
    Xs, Xt = X[:30], X[30:]
    gamma, B, eps = 0.1, 5.0, 0.1
    kmm = KMM(gamma=gamma, B=B, eps=eps, tol=1e-9, max_iter=100000).fit(X, None, sd)
    beta = kmm.weights_
    assert (beta >= -1e-6).all() and (beta <= B + 1e-6).all()
    assert abs(beta.sum() - 30) <= 30 * eps + 1e-5
    K = np.exp(-gamma * ((Xs[:, None] - Xs[None]) ** 2).sum(-1))
    kappa = 30 / 20 * np.exp(-gamma * ((Xs[:, None] - Xt[None]) ** 2).sum(-1)).sum(1)

    def f(b):
        return 0.5 * b @ K @ b - kappa @ b

    cons = [{"type": "ineq", "fun": lambda b: 30 * eps - abs(b.sum() - 30)}]
    ref = minimize(f, np.ones(30), bounds=[(0, B)] * 30, constraints=cons, method="SLSQP",
                   options={"ftol": 1e-12, "maxiter": 1000})  # fmt: skip
    assert f(beta) <= ref.fun + 1e-5 * abs(ref.fun)


# -- KLIEP (Sugiyama et al. 2008) ---------------------------------------------------------------------
def test_kliep_maximises_the_target_likelihood_under_the_source_normalisation():
    from scipy.optimize import minimize

    X, _, sd, _, _ = _domains(ns=40, nt=30, d=2)
    Xs, Xt = X[:40], X[40:]
    kl = KLIEP(n_centers=10, gammas=(1.0,), tol=1e-12, max_iter=5000).fit(X, None, sd)
    c, g = kl.centers_, kl.gamma_
    Phi_t = np.exp(-g * ((Xt[:, None] - c[None]) ** 2).sum(-1))
    Phi_s = np.exp(-g * ((Xs[:, None] - c[None]) ** 2).sum(-1))
    b = Phi_s.mean(0)
    w = kl.compute_weights(X, sd)
    assert np.isclose(w[:40].mean(), 1.0)  # (1/n_s) sum_i w(x_i^s) = 1: normalised on the source
    assert np.allclose(w[40:], Phi_t @ kl.alpha_)  # the paper's model, on the target rows

    def neg(alpha):
        return -np.mean(np.log(Phi_t @ alpha + 1e-300))

    cons = [{"type": "eq", "fun": lambda a: b @ a - 1}]
    ref = minimize(neg, np.full(len(c), 1 / (len(c) * b.mean())), bounds=[(0, None)] * len(c),
                   constraints=cons, method="SLSQP", options={"ftol": 1e-14, "maxiter": 2000})  # fmt: skip
    assert neg(kl.alpha_) <= ref.fun + 1e-6


def test_kliep_width_maximises_the_held_out_target_likelihood():
    from transferkit.shallow._kernels import median_gamma

    X, _, sd, _, _ = _domains(ns=40, nt=30, d=2)
    gammas = (0.1, 1.0, 10.0)
    kl = KLIEP(n_centers=30, gammas=gammas, cv=3, random_state=0).fit(X, None, sd)
    assert set(kl.cv_scores_) == set(gammas)
    best = max(kl.cv_scores_, key=kl.cv_scores_.get)
    assert kl.gamma_ == pytest.approx(best * median_gamma(X, random_state=0))


# -- classifier density ratio ---------------------------------------------------------------------
def test_density_ratio_is_p_target_over_p_source_times_ns_over_nt_then_clipped_and_scaled():
    X, _, sd, _, _ = _domains(ns=40, nt=30, d=3)
    dr = DensityRatio(clip=1e9).fit(X, None, sd)
    p = dr.domain_classifier_.predict_proba(X[:40])[:, 1]
    raw = p / (1 - p) * 40 / 30
    assert np.allclose(dr.compute_weights(X, sd)[:40], raw / raw.mean())


# -- nearest-neighbour weighting (Loog 2012) ----------------------------------------------------------
def test_nearest_neighbour_weights_are_laplace_smoothed_cell_counts():
    X, _, sd, _, _ = _domains(ns=25, nt=40, d=2)
    Xs, Xt = X[:25], X[25:]
    counts = np.zeros(25)
    for x in Xt:
        counts[np.argmin(((Xs - x) ** 2).sum(1))] += 1
    w = (counts + 1) / (counts + 1).mean()
    got = NearestNeighborWeighting().fit(X, None, sd).compute_weights(X, sd)[:25]
    assert np.allclose(got, w)


# -- TrAdaBoost (Dai et al. 2007), binary: the paper's algorithm -----------------------------------
def test_tradaboost_binary_is_the_papers_algorithm():
    from sklearn.linear_model import LogisticRegression

    X, _, sd, ys, yt = _domains(ns=50, nt=40, d=3, n_classes=2)
    y = np.r_[ys, np.where(np.arange(40) < 12, yt, -1)]
    N = 7
    clf = TrAdaBoost(n_estimators=N).fit(X, y, sd)
    rows = np.r_[np.arange(50), 50 + np.arange(12)]
    Xl, yl = X[rows], y[rows]
    n, m = 50, 12
    w = np.ones(n + m)
    beta = 1 / (1 + np.sqrt(2 * np.log(n) / N))
    hs, betas = [], []
    for t in range(N):
        p = w / w.sum()
        h = LogisticRegression(max_iter=500, random_state=t).fit(Xl, yl, sample_weight=p * len(p))
        err = np.abs(h.predict(Xl) - yl)
        eps = np.sum(w[n:] * err[n:]) / np.sum(w[n:])  # on the target rows only
        # the paper requires eps < 1/2 (it happens here in round 1); the documented rule keeps it
        # just below, so that such a round gets no vote and leaves the target weights alone
        eps = float(np.clip(eps, 1e-10, 0.5 - 1e-10))
        bt = eps / (1 - eps)
        w[:n] *= beta ** err[:n]
        w[n:] *= bt ** (-err[n:])
        hs.append(h)
        betas.append(bt)
    first = int(np.ceil(N / 2)) - 1  # rounds ceil(N/2) .. N, from 1
    lhs = sum(-np.log(betas[t]) * hs[t].predict(X[50:]) for t in range(first, N))
    rhs = sum(-0.5 * np.log(betas[t]) for t in range(first, N))
    assert np.array_equal(clf.predict(X[50:]), (lhs >= rhs).astype(int))
    assert np.allclose(clf.source_weights_ / clf.source_weights_.sum(), w[:n] / w[:n].sum())


# -- optimal transport (Courty et al. 2017) -----------------------------------------------------------
def test_exact_ot_maps_each_source_row_to_the_barycentre_of_its_plan():
    import ot

    X, _, sd, _, _ = _domains(ns=20, nt=15, d=3)
    Xs, Xt = X[:20], X[20:]
    C = ((Xs[:, None] - Xt[None]) ** 2).sum(-1)
    G = ot.emd(np.full(20, 1 / 20), np.full(15, 1 / 15), C / np.median(C))
    Z = OTMapping(solver="emd").fit_transform(X, None, sd)
    assert np.allclose(Z[:20], (G @ Xt) / G.sum(1, keepdims=True))
    assert np.array_equal(Z[20:], Xt)
