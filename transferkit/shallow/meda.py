"""MEDA: manifold embedded distribution alignment (Wang, Feng, Chen, Yu, Huang and Yu, ACM MM 2018)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import (
    check_columns,
    check_domain_data,
    check_features,
    predict_domains,
    remember_columns,
    source_mask,
    target_mask,
)
from transferkit.errors import TransferkitError
from transferkit.shallow._kernels import check_dense_size
from transferkit.shallow.gfk import geodesic_flow_map
from transferkit.shallow.jda import jda_mmd_vectors
from transferkit.shallow.subspace_alignment import domain_dimension, principal_basis


def a_distance(A: np.ndarray, B: np.ndarray, random_state=0) -> float:
    r"""Proxy :math:`\mathcal{A}`-distance :math:`2(1 - 2\epsilon)` between two sets of rows.

    :math:`\epsilon` is the training error of a linear SVM (hinge loss, ``C=1``; liblinear, whose
    coordinate order ``random_state`` seeds) separating ``A`` from ``B``, as in the MEDA authors'
    code: 2 for separable sets, about 0 for sets a linear classifier cannot tell apart.
    """
    from sklearn.svm import LinearSVC

    X = np.vstack([A, B])
    d = np.r_[np.zeros(len(A)), np.ones(len(B))]
    svm = LinearSVC(C=1.0, loss="hinge", dual=True, max_iter=5000, random_state=random_state)
    with warnings.catch_warnings():  # a training error is all that is needed, not the exact optimum
        warnings.simplefilter("ignore", ConvergenceWarning)
        err = float(np.mean(svm.fit(X, d).predict(X) != d))
    return 2.0 * (1.0 - 2.0 * err)


def adaptive_factor(Zs, ys, Zt, pseudo, classes, random_state=0) -> float:
    r"""MEDA's :math:`\mu`: how much the conditional distributions matter against the marginal one.

    :math:`\mu = \bar d_c / (\bar d_c + d_m)` with :math:`d_m` the :math:`\mathcal{A}`-distance of the
    two domains and :math:`\bar d_c` its mean over the classes, the target's classes being its
    pseudo-labels (classes missing on either side are skipped). Clipped to ``[0, 1]``; values up
    to 1e-3 become 0, as in the authors' code.
    """
    per_class = [
        a_distance(Zs[ys == c], Zt[pseudo == c], random_state)
        for c in classes
        if (ys == c).any() and (pseudo == c).any()
    ]
    d_c = float(np.mean(per_class)) if per_class else 0.0
    d_m = a_distance(Zs, Zt, random_state)
    if d_c + d_m <= 0:
        return 0.5  # neither distance is informative: weigh both equally
    mu = min(d_c / (d_c + d_m), 1.0)
    return 0.0 if mu <= 1e-3 else mu


def knn_laplacian(Z: np.ndarray, n_neighbors: int) -> np.ndarray:
    r"""Normalized graph Laplacian :math:`I - D^{-1/2} W D^{-1/2}` of a cosine ``k``-NN graph.

    ``Z`` has unit-norm rows. :math:`W_{ij}` is the cosine similarity when ``j`` is among the
    ``n_neighbors`` most similar other rows of ``i`` or ``i`` among those of ``j`` (symmetrized by
    the maximum), 0 otherwise. As in the graph construction of the authors' code (Deng Cai's
    ``constructW``, self-connected by default), every row is also its own neighbour:
    :math:`W_{ii} = 1`.
    """
    n = len(Z)
    k = int(min(n_neighbors, n - 1))
    S = Z @ Z.T
    np.fill_diagonal(S, -np.inf)
    W = np.zeros_like(S)
    if k > 0:
        nearest = np.argpartition(-S, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(n), k)
        W[rows, nearest.ravel()] = S[rows, nearest.ravel()]
    del S  # n x n matrices are the memory this method is limited by
    W = np.maximum(W, W.T)
    W[np.diag_indices(n)] = 1.0  # cos(z_i, z_i)
    degree = W.sum(1)
    inv = 1.0 / np.sqrt(np.clip(degree, 1e-12, None))  # >= 1 but for negative similarities
    W *= inv[:, None]
    W *= inv[None, :]
    np.negative(W, out=W)
    W[np.diag_indices(n)] += 1.0
    return W


class MEDA(ClassifierMixin, BaseEstimator):
    r"""Manifold embedding (GFK), then a kernel classifier that aligns marginal and conditional distributions.

    1. Rows are mapped through the geodesic flow kernel of the two domains' top-``n_components``
       principal subspaces (:class:`~transferkit.shallow.gfk.GFK`) and scaled to unit L2 norm.
    2. A classifier :math:`f(x) = \sum_j \beta_j k(x_j, x)` over every training row (RBF kernel,
       :math:`k(a, b) = \exp(-\gamma \|a - b\|^2)`) minimises

       .. math::

           \|(Y - K\beta)_{\text{source}}\|^2 + \eta\, \beta^\top K \beta
           + \lambda\, \operatorname{tr}\big(\beta^\top K M K \beta\big)
           + \rho\, \operatorname{tr}\big(\beta^\top K L K \beta\big),

       squared loss on the one-hot source labels, a ridge penalty (``ridge``, :math:`\eta`), the
       dynamic distribution alignment :math:`M = (1-\mu)\, C M_0 + \mu \sum_c M_c` (the marginal,
       counted once per class :math:`C` as in JDA and the authors' code, and
       the class-conditional MMD matrices of JDA over the target's pseudo-labels, normalized to
       unit Frobenius norm; ``mmd_weight``, :math:`\lambda`) and manifold regularization with the
       normalized Laplacian :math:`L` of a cosine ``n_neighbors``-NN graph over all rows
       (:func:`knn_laplacian`)
       (``manifold_weight``, :math:`\rho`). The minimiser solves
       :math:`\big((E + \lambda M + \rho L) K + \eta I\big)\beta = E Y` (:math:`E` selects the
       source rows).
    3. :math:`\mu` is the adaptive factor of :func:`adaptive_factor` (proxy
       :math:`\mathcal{A}`-distances), or fixed by ``mu``. Pseudo-labels start from a 1-NN
       trained on the embedded source and are replaced by :math:`\arg\max_c f_c(x)` after each of
       the ``n_iter`` rounds.

    Rows are scaled to unit norm after the embedding, which suits image and text features of tens
    to thousands of dimensions, not a handful. The defaults are the authors' settings for every
    task (:math:`d=20, \lambda=10, \rho=1, \eta=0.1, p=10, T=10`, :math:`\gamma = 1/2` on unit
    rows: :math:`\sigma = 1`). A domain-aware classifier: ``fit(X, y, sample_domain)`` reads only
    the source labels; ``predict`` maps any row and evaluates :math:`f`; ``decision_function``
    gives :math:`f(x)` itself (regression outputs, not probabilities; with two classes, scikit-learn's
    convention: :math:`f_1(x) - f_0(x)`). Each round solves one dense
    ``n x n`` linear system over all training rows (about 0.2 s for 2000 rows, 2 s for 4000);
    rows that would not fit in memory are a clear error before anything is allocated.

    Reference: J. Wang, W. Feng, Y. Chen, H. Yu, M. Huang, P. S. Yu, "Visual domain adaptation
    with manifold embedded distribution alignment", ACM Multimedia 2018.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 60)
    >>> def draw():                      # two classes apart in 2 dimensions, 4 nuisance dimensions
    ...     return np.c_[rng.normal(size=(120, 2)) + 3 * y[:, None], 0.5 * rng.normal(size=(120, 4))]
    >>> Xs, Xt = draw(), draw() + [2.0, 2.0, 3.0, 3.0, 0.0, 0.0]   # the target is moved
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(120, int), -np.ones(120, int)]
    >>> clf = MEDA(n_components=3).fit(X, np.r_[y, -np.ones(120, int)], sd)
    >>> bool(np.mean(clf.predict(Xt) == y) > 0.85)            # a source-trained logistic regression: 0.6
    True
    """

    role = "classifier"
    family = "alignment"
    search_space = {"mmd_weight": (1.0, 10.0, 100.0)}

    def __init__(
        self,
        n_components: int = 20,
        mmd_weight: float = 10.0,
        manifold_weight: float = 1.0,
        ridge: float = 0.1,
        n_neighbors: int = 10,
        n_iter: int = 10,
        mu: float | str = "auto",
        gamma: float = 0.5,
        random_state: int | None = 0,
    ):
        self.n_components = n_components
        self.mmd_weight = mmd_weight
        self.manifold_weight = manifold_weight
        self.ridge = ridge
        self.n_neighbors = n_neighbors
        self.n_iter = n_iter
        self.mu = mu
        self.gamma = gamma
        self.random_state = random_state

    def _check_params(self):
        ints = {"n_components": self.n_components, "n_neighbors": self.n_neighbors, "n_iter": self.n_iter}
        for name, value in ints.items():
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise TransferkitError(f"MEDA needs {name} to be an integer >= 1, got {value!r}.")
        reals = {"mmd_weight": self.mmd_weight, "manifold_weight": self.manifold_weight, "ridge": self.ridge,
                 "gamma": self.gamma}  # fmt: skip
        for name, value in reals.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TransferkitError(f"MEDA needs {name} to be a number, got {value!r}.")
        if not (self.mmd_weight >= 0 and self.manifold_weight >= 0 and self.ridge > 0 and self.gamma > 0):
            raise TransferkitError(
                "MEDA needs mmd_weight >= 0, manifold_weight >= 0, ridge > 0 and gamma > 0, got "
                f"{self.mmd_weight}, {self.manifold_weight}, {self.ridge}, {self.gamma}."
            )
        if not (self.mu == "auto" or (isinstance(self.mu, (int, float)) and 0.0 <= self.mu <= 1.0)):
            raise TransferkitError(f"mu must be 'auto' or a number in [0, 1], got {self.mu!r}.")

    def _unit(self, Z):
        return Z / np.clip(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12, None)

    def _kernel(self, A, B):
        from transferkit.shallow._kernels import kernel

        return kernel(A, B, "rbf", self.gamma)

    def fit(self, X, y, sample_domain=None):
        from sklearn.neighbors import KNeighborsClassifier

        remember_columns(self, X)

        X, y, sd = check_domain_data(X, y, sample_domain, allow_nd=False)
        self._check_params()
        src, tgt = source_mask(sd), target_mask(sd)
        ys = y[src]  # source labels only: target rows are never looked at through y
        Xs, Xt = np.asarray(X[src], dtype=np.float64), np.asarray(X[tgt], dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        self.target_domains_ = np.unique(sd[tgt])
        self.classes_ = np.unique(ys)
        ns, nt = len(Xs), len(Xt)
        # the graph's similarities and neighbour indices, K, L (until L K is formed), L K, the system A
        # and the copy LAPACK factors: a peak of 5.4 dense (n_s + n_t)^2 float64 matrices above the
        # rows, measured at n_s + n_t = 2000 (4.6 at 3000)
        check_dense_size(ns + nt, 6, "MEDA")
        k = self.n_components_ = domain_dimension(self.n_components, X.shape[1], ns, nt)
        self.map_ = geodesic_flow_map(principal_basis(Xs, k)[1], principal_basis(Xt, k)[1])
        Zs, Zt = Xs @ self.map_, Xt @ self.map_  # the A-distances use these, as the authors' code
        Z = self._unit(np.vstack([Zs, Zt]))
        L = knn_laplacian(Z, self.n_neighbors)
        K = self._kernel(Z, Z)
        LK = L @ K  # fixed across rounds
        del L
        onehot = (ys[:, None] == self.classes_[None, :]).astype(np.float64)
        rhs = np.vstack([onehot, np.zeros((nt, len(self.classes_)))])
        pseudo = KNeighborsClassifier(n_neighbors=1).fit(Z[:ns], ys).predict(Z[ns:])
        self.pseudo_history_, self.mu_history_ = [], []
        for _ in range(self.n_iter):
            if self.mu == "auto":
                mu = adaptive_factor(Zs, ys, Zt, pseudo, self.classes_, self.random_state)
            else:
                mu = float(self.mu)
            # M = (1 - mu) M_0 + mu sum_c M_c = E E^T with rescaled columns (JDA's vectors)
            E = jda_mmd_vectors(ys, pseudo, self.classes_)
            E[:, 0] *= np.sqrt(1.0 - mu)
            E[:, 1:] *= np.sqrt(mu)
            fro = np.sqrt(np.sum((E.T @ E) ** 2))  # |E E^T|_F without the n x n matrix
            # A = mmd_weight M K + manifold_weight L K + (K on the source rows), built in place (the
            # same numbers as the expression, without its n x n temporaries)
            A = E @ (E.T @ K)
            if fro > 0:
                A /= fro
            else:
                A[:] = 0.0
            A *= self.mmd_weight
            for start in range(0, len(A), 1024):
                rows = slice(start, start + 1024)
                A[rows] += self.manifold_weight * LK[rows]
            A[:ns] += K[:ns]
            A[np.diag_indices_from(A)] += self.ridge
            beta = np.linalg.solve(A, rhs)
            pseudo = self.classes_[np.argmax(K[ns:] @ beta, axis=1)]
            self.pseudo_history_.append(pseudo)
            self.mu_history_.append(mu)
        self.train_, self.dual_coef_ = Z, beta
        self.pseudo_labels_ = pseudo
        return self

    def decision_function(self, X, sample_domain=None):
        """:math:`f(x)`, one column per class; for two classes one value, positive for ``classes_[1]``."""
        check_is_fitted(self, "dual_coef_")
        check_columns(self, X)
        X = check_features(X, allow_nd=False)
        if X.shape[1] != self.n_features_in_:
            raise TransferkitError(
                f"X has {X.shape[1]} features, but MEDA was fitted with {self.n_features_in_}; every "
                "domain must have the same features."
            )
        if sample_domain is not None:  # checked only: one map serves every domain
            predict_domains(sample_domain, X.shape[0], self.target_domains_)
        F = (
            self._kernel(self._unit(np.asarray(X, dtype=np.float64) @ self.map_), self.train_)
            @ self.dual_coef_
        )
        return F[:, 1] - F[:, 0] if F.shape[1] == 2 else F

    def predict(self, X, sample_domain=None):
        """Class of each row: the largest output of :math:`f`."""
        F = self.decision_function(X, sample_domain)
        if F.ndim == 1:
            return self.classes_[(F > 0).astype(int)]
        return self.classes_[np.argmax(F, axis=1)]
