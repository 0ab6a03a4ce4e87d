"""How big is the shift between a source and a target, and of what kind?

Before choosing a method, measure. :func:`diagnose` runs every test below on labelled source rows and
*unlabelled* target rows (no target label is ever read) and says in plain words which family of
methods fits and why:

- **proxy A-distance** (Ben-David et al. 2007): ``PAD = 2 (1 - 2 err)`` where ``err`` is the
  cross-validated error of a linear classifier telling source from target. 0: indistinguishable,
  2: perfectly separable.
- **MMD two-sample test** (Gretton et al. 2012): unbiased MMD^2 with a Gaussian kernel (median
  heuristic bandwidth) and a permutation p-value.
- **label shift** by black-box shift estimation (Lipton et al. 2018): with the confusion matrix
  ``C[i, j] = p_s(yhat = i, y = j)`` of a source classifier on held-out source rows and the target's
  predicted-label distribution ``mu``, the class weights solve ``C w = mu``; the target class prior is
  ``w * p_s(y)``.
- **drifting features**: per-feature Kolmogorov-Smirnov statistic and standardized mean difference.
- **per-class distances**: distance between each class's source mean and the mean of the target rows
  *predicted* as that class, in units of the source within-class spread.
- **support overlap and importance-weight health**: the share of target rows that a domain
  classifier cannot confidently call target (p(target | x) < 0.9 at equal priors: the classifier's
  odds divided by the ratio of the row counts, so the share does not depend on how many target rows
  there are), and the effective sample size of
  the density ratio p_t/p_s on the source; reweighting only works when the target's support lies
  inside the source's.
- **alignment test**: the share of the MMD^2 that an affine alignment removes. Both domains are
  standardized with the source's per-feature mean and standard deviation (so the test does not
  depend on the features' units), and MMD^2 is measured there before and after aligning (each domain
  centred, then CORAL with its paper setting, ridge 1 on z-scored features), with one kernel width
  for both. A large drop says the shift is mostly a linear transformation of the feature space. (The proxy
  A-distance is no use here: a linear domain classifier cannot see past matched first and second
  moments, so it would always report success.)

The verdict: the domains **differ** when the MMD test is significant (p < 0.05), whatever the proxy
A-distance. With a proxy A-distance above 0.2 as well, the advice follows the support overlap and the
alignment test (reweighting, feature alignment, or non-linear methods; reweighting never from a proxy
A-distance of 1.8, where a linear classifier separates the domains). With a proxy A-distance of
0.2 or less, the shift is one a linear domain classifier cannot see (e.g. a change of covariance with
the means kept): the importance weights of that classifier say nothing, so reweighting is not advised;
feature alignment is advised when the alignment test removes more than half of the MMD, non-linear
alignment or self-training otherwise. Without a significant MMD test source-only is advised: the
summary calls the domains hard to tell apart or, when the proxy A-distance is above 0.2, says that any
shift is small or the rows too few to show it, and it warns when fewer than 19 permutations make a
significant p-value unreachable.

>>> from transferkit.datasets import load_dataset
>>> arr = load_dataset("office-caltech10").to_arrays(["dslr"], ["webcam"])
>>> rep = diagnose(arr.X[arr.source], arr.y[arr.source], arr.X[arr.target], n_permutations=20)
>>> 0.0 <= rep.proxy_a_distance <= 2.0
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from transferkit.errors import TransferkitError

__all__ = [
    "ShiftReport",
    "diagnose",
    "feature_drift",
    "label_shift",
    "mmd_test",
    "proxy_a_distance",
]


def _as_float(X, what):
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TransferkitError(
            f"the {what} rows are not numbers ({exc}); a shift diagnosis needs numeric features. Turn "
            "texts or other raw values into numbers first (e.g. TF-IDF: on the command line, leave "
            "--preprocess out to use the data set's own steps, or pass --preprocess tfidf)."
        ) from None
    return X.reshape(len(X), -1)


def _check(Xs, Xt):
    Xs = _as_float(Xs, "source")
    Xt = _as_float(Xt, "target")
    if Xs.shape[1] != Xt.shape[1]:
        raise TransferkitError(
            f"source rows have {Xs.shape[1]} features and target rows {Xt.shape[1]}; they must match."
        )
    if len(Xs) < 4 or len(Xt) < 4:
        raise TransferkitError("a shift diagnosis needs at least 4 source and 4 target rows.")
    if not (np.isfinite(Xs).all() and np.isfinite(Xt).all()):
        raise TransferkitError("the features contain NaN or infinite values; impute or drop them first.")
    return Xs, Xt


def _subsample(X, n, rng):
    return X if len(X) <= n else X[np.sort(rng.choice(len(X), n, replace=False))]


def proxy_a_distance(Xs, Xt, *, C: float = 1.0, random_state: int | None = 0, max_rows: int = 2000) -> float:
    """``2 (1 - 2 err)`` with ``err`` the 2-fold error of a logistic source-vs-target classifier.

    Both domains are subsampled to the same size (at most ``max_rows``), so chance error is 0.5.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xs, Xt = _check(Xs, Xt)
    rng = np.random.default_rng(random_state)
    n = min(len(Xs), len(Xt), max_rows)
    Xs, Xt = _subsample(Xs, n, rng), _subsample(Xt, n, rng)
    X = np.vstack([Xs, Xt])
    d = np.r_[np.zeros(n), np.ones(n)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    acc = cross_val_score(clf, X, d, cv=StratifiedKFold(2, shuffle=True, random_state=random_state)).mean()
    err = min(1.0 - acc, 0.5)
    return float(2.0 * (1.0 - 2.0 * err))


def _sq_dists(A, B):
    return np.maximum((A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T, 0.0)


def _mmd2_unbiased(K, n):
    Kxx, Kyy, Kxy = K[:n, :n], K[n:, n:], K[:n, n:]
    m = K.shape[0] - n
    sxx = (Kxx.sum() - np.trace(Kxx)) / (n * (n - 1))
    syy = (Kyy.sum() - np.trace(Kyy)) / (m * (m - 1))
    return sxx + syy - 2 * Kxy.mean()


def mmd_test(
    Xs, Xt, *, n_permutations: int = 200, gamma: float | None = None, random_state: int | None = 0,
    max_rows: int = 1000,
) -> tuple[float, float]:  # fmt: skip
    """Unbiased MMD^2 (Gaussian kernel) and its permutation p-value.

    ``gamma`` defaults to ``1 / median(squared distance)`` over the pooled rows (median heuristic).
    The p-value is ``(1 + #{permuted MMD^2 >= observed}) / (1 + n_permutations)``.
    """
    Xs, Xt = _check(Xs, Xt)
    rng = np.random.default_rng(random_state)
    Xs, Xt = _subsample(Xs, max_rows, rng), _subsample(Xt, max_rows, rng)
    Z = np.vstack([Xs, Xt])
    D = _sq_dists(Z, Z)
    if gamma is None:
        gamma = _median_width(D)
    K = np.exp(-gamma * D)
    n = len(Xs)
    observed = _mmd2_unbiased(K, n)
    count = 0
    for _ in range(n_permutations):
        p = rng.permutation(len(Z))
        count += _mmd2_unbiased(K[np.ix_(p, p)], n) >= observed
    return float(observed), float((1 + count) / (1 + n_permutations))


def label_shift(Xs, ys, Xt, *, estimator=None, random_state: int | None = 0) -> dict:
    """Black-box shift estimation (Lipton et al. 2018) of the target's class prior.

    Returns ``source_prior``, ``target_prior`` (estimated), ``weights`` (``p_t(y) / p_s(y)``) and
    ``total_variation`` between the two priors (see :func:`bbse`; the ``label-shift`` method
    corrects a classifier with the same estimate).
    """
    Xs, Xt = _check(Xs, Xt)
    classes, source_prior, target_prior = bbse(Xs, ys, Xt, estimator=estimator, random_state=random_state)
    return {
        "classes": classes.tolist(),
        "source_prior": source_prior.round(4).tolist(),
        "target_prior": target_prior.round(4).tolist(),
        "weights": (target_prior / np.clip(source_prior, 1e-12, None)).round(4).tolist(),
        "total_variation": float(0.5 * np.abs(target_prior - source_prior).sum()),
    }


def bbse(Xs, ys, Xt, *, estimator=None, random_state: int | None = 0):
    """Black-box shift estimation: ``(classes, source_prior, target_prior)``, unrounded.

    The classifier (default: :func:`calibrated_logreg`, its C chosen on that half) is trained on
    half of the source and its confusion matrix ``C`` measured on the other half; with ``mu`` its
    prediction rates on the target, ``C w = mu`` is solved by least squares (clipped at 0) and the
    estimated target prior is ``w * q(y)``, with ``q`` the class prior of that half (the one ``C``
    holds)."""
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    ys = np.asarray(ys)
    classes, y_idx = np.unique(ys, return_inverse=True)
    k = len(classes)
    if k < 2:
        raise TransferkitError("label-shift estimation needs at least 2 classes in the source.")
    # stratified when every class can give a row to each half (a class of one row cannot)
    stratify = y_idx if np.bincount(y_idx).min() >= 2 else None
    tr, ho = train_test_split(np.arange(len(ys)), test_size=0.5, stratify=stratify, random_state=random_state)
    if len(np.unique(y_idx[tr])) < 2:  # the black box would fail inside scikit-learn on one class
        raise TransferkitError(
            f"label-shift estimation trains on half of the {len(ys)} source rows, and that half holds one "
            "class: each class needs at least 2 source rows (one per half)."
        )
    est = clone(estimator) if estimator is not None else calibrated_logreg(Xs[tr], y_idx[tr], random_state)
    est.fit(Xs[tr], y_idx[tr])
    pred_ho = np.asarray(est.predict(Xs[ho]), dtype=np.int64)
    C = np.zeros((k, k))
    np.add.at(C, (pred_ho, y_idx[ho]), 1.0)
    C /= len(ho)
    mu = np.bincount(np.asarray(est.predict(Xt), dtype=np.int64), minlength=k) / len(Xt)
    w, *_ = np.linalg.lstsq(C, mu, rcond=None)
    w = np.clip(w, 0.0, None)
    source_prior = np.bincount(y_idx, minlength=k) / len(y_idx)
    # w = p_t(y) / p(y) for the p(y) of the rows C was measured on (C's column sums, the held-out
    # half), not of the whole source: the two differ by a row or so per class, which on a small
    # source would show as a label shift where there is none
    target_prior = w * C.sum(axis=0)
    target_prior = target_prior / target_prior.sum() if target_prior.sum() > 0 else source_prior
    return classes, source_prior, target_prior


def feature_drift(Xs, Xt, *, top: int = 10, names=None) -> list[dict]:
    """The ``top`` features whose distribution moves most (Kolmogorov-Smirnov statistic)."""
    from scipy.stats import ks_2samp

    Xs, Xt = _check(Xs, Xt)
    ks = ks_2samp(Xs, Xt, axis=0, method="asymp").statistic  # the statistic alone: no exact p-value
    pooled = np.sqrt((Xs.var(0) + Xt.var(0)) / 2)
    smd = (Xt.mean(0) - Xs.mean(0)) / np.where(pooled > 0, pooled, 1.0)
    order = np.argsort(-ks, kind="stable")[:top]
    names = list(names) if names is not None else [f"feature {i}" for i in range(Xs.shape[1])]
    return [{"feature": names[i], "ks": round(float(ks[i]), 4), "std_mean_diff": round(float(smd[i]), 4)}
            for i in order]  # fmt: skip


LOGREG_CS = (0.01, 0.1, 1.0, 10.0)
"""The strengths among which :func:`calibrated_logreg` chooses C."""


def _logreg(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def _out_of_fold(X, y, folds, C) -> np.ndarray:
    """Each row's class probabilities from a logistic regression (strength ``C``) fitted on the other
    folds."""
    P = np.zeros((len(y), int(y.max()) + 1))
    for fit, held in folds:
        clf = _logreg(C).fit(X[fit], y[fit])
        P[np.ix_(held, clf[-1].classes_)] = clf.predict_proba(X[held])
    return np.clip(P, 1e-6, 1 - 1e-6)


def calibrated_logreg(X, y, random_state=0):
    """A logistic regression on standardized features whose C (of :data:`LOGREG_CS`) gives the lowest
    log-loss out of fold (3 stratified folds, 2 when a class has only 2 rows; ``C=0.1`` when a class
    has 1), unfitted.

    A fixed C suits no data set: on a few hundred rows of many features a small one gives probabilities
    so flat that a correction of them (label-shift's posterior, a density ratio) over-corrects, and a
    domain classifier that cannot be confident calls separable domains overlapping. The log-loss
    rewards probabilities that mean what they say (the black box of :func:`bbse` and label-shift)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.unique(np.asarray(y), return_inverse=True)[1]
    smallest = int(np.bincount(y).min())
    if smallest < 2:
        return _logreg(0.1)
    folds = list(StratifiedKFold(min(3, smallest), shuffle=True, random_state=random_state).split(X, y))
    losses = [-np.mean(np.log(_out_of_fold(X, y, folds, c)[np.arange(len(y)), y])) for c in LOGREG_CS]
    return _logreg(LOGREG_CS[int(np.argmin(losses))])


SEPARABLE = 1.8
"""A proxy A-distance from which reweighting is never advised: the linear SVM puts under 5% of the rows on
the wrong side, so the supports barely overlap (a domain classifier's probabilities from a few dozen rows
can still leave most target rows uncertain)."""


def _domain_probabilities(Xs, Xt, random_state):
    """Each row's probability of being a target row, out of fold (2 shuffled stratified folds: rows
    often come sorted by class, a folder per class, and unshuffled halves would train the domain
    classifier on some classes and judge the rows of the others), from a logistic regression with
    ``C=0.1``. (Choosing C by the out-of-fold log-loss, as :func:`calibrated_logreg` does, picks 0.01 on
    Office-Caltech10: flatter probabilities, 94% and 100% overlap on caltech->amazon and dslr->webcam;
    the overlap is a rough screen either way, and this one is kept.)"""
    from sklearn.model_selection import StratifiedKFold

    X = np.vstack([Xs, Xt])
    d = np.r_[np.zeros(len(Xs), np.int64), np.ones(len(Xt), np.int64)]
    folds = list(StratifiedKFold(2, shuffle=True, random_state=random_state).split(X, d))
    p = _out_of_fold(X, d, folds, 0.1)[:, 1]
    return p[: len(Xs)], p[len(Xs) :]


def _coral_align(Xs, Xt):
    """Both domains standardized with the source's statistics (returned first), each centred, then
    CORAL(reg=1) (returned second).

    Standardizing first makes the ridge relative to the features' spread, so the result does not
    depend on their units (CORAL's ridge of 1 is meant for z-scored features). A feature constant on
    the source is scaled by its pooled standard deviation instead (or left as it is if constant on both).
    """
    from transferkit.shallow.coral import CORAL

    scale = Xs.std(0)
    pooled = np.vstack([Xs, Xt]).std(0)
    scale = np.where(scale > 0, scale, np.where(pooled > 0, pooled, 1.0))
    mean = Xs.mean(0)
    Xs, Xt = (Xs - mean) / scale, (Xt - mean) / scale
    sd = np.r_[np.zeros(len(Xs), np.int64), -np.ones(len(Xt), np.int64)]
    X = np.vstack([Xs - Xs.mean(0), Xt - Xt.mean(0)])
    Z = CORAL(reg=1.0).fit_transform(X, None, sd)
    return Xs, Xt, Z[: len(Xs)], Z[len(Xs) :]


def _median_gamma(Xs, Xt, random_state, max_rows: int = 1000) -> float:
    """The median-heuristic width :func:`mmd_test` would take on these rows (the same subsample)."""
    rng = np.random.default_rng(random_state)
    Z = np.vstack([_subsample(Xs, max_rows, rng), _subsample(Xt, max_rows, rng)])
    return _median_width(_sq_dists(Z, Z))


def _median_width(D) -> float:
    """``1 / median`` of the pairwise squared distances ``D`` (1 when they are all 0)."""
    med = np.median(D[np.triu_indices_from(D, k=1)])
    return 1.0 / med if med > 0 else 1.0


@dataclass
class ShiftReport:
    """Every measurement of :func:`diagnose`, and the advice drawn from them (``summary``)."""

    n_source: int
    n_target: int
    n_features: int
    proxy_a_distance: float
    mmd2: float
    mmd2_standardized: float
    mmd2_aligned: float
    alignment_drop: float
    mmd_p_value: float
    effective_sample_size: float
    support_overlap: float
    label_shift: dict
    drifting_features: list[dict]
    per_class_distance: dict
    recommendation: str
    summary: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"source rows {self.n_source}, target rows {self.n_target}, features {self.n_features}",
            f"proxy A-distance      {self.proxy_a_distance:.3f}   (0 same, 2 separable)",
            f"MMD^2                 {self.mmd2:.4g}   permutation p = {self.mmd_p_value:.3g}",
            f"  alignment test      {self.mmd2_standardized:.4g} -> {self.mmd2_aligned:.4g} on standardized "
            f"features (centring + CORAL removes {100 * self.alignment_drop:.0f}%)",
            f"support overlap       {100 * self.support_overlap:.1f}% of the target rows look like "
            "source rows to a domain classifier",
            f"importance weights    effective sample size {100 * self.effective_sample_size:.1f}% "
            "of the source",
            f"label shift (BBSE)    total variation {self.label_shift['total_variation']:.3f} "
            f"between source and estimated target class priors",
            "most drifting features: "
            + ", ".join(f"{d['feature']} (KS {d['ks']:.2f})" for d in self.drifting_features[:5]),
            "per-class distance (source class mean to target rows predicted as it, in source spreads): "
            + ", ".join(  # a class no target row is predicted as has no distance (NaN; null in JSON)
                f"{k} {v:.2f}" if v is not None and np.isfinite(v) else f"{k} -"
                for k, v in self.per_class_distance.items()
            )
            + (
                " (-: no target row predicted as it)"
                if any(v is None or not np.isfinite(v) for v in self.per_class_distance.values())
                else ""
            ),
            "",
            f"recommendation: {self.recommendation}",
        ]
        lines += [f"  - {s}" for s in self.summary]
        return "\n".join(lines)


def _class_labels(ys, class_names):
    """The name of each class in ``np.unique(ys)``, as shown in the report (unique, as dict keys)."""
    classes = np.unique(ys)
    if class_names is None:
        names = [str(c) for c in classes]
    else:
        class_names = [str(c) for c in class_names]
        if ys.dtype.kind not in "iu" or classes[-1] >= len(class_names):
            raise TransferkitError(
                f"with class_names ({len(class_names)} names), ys must hold class indices "
                f"0..{len(class_names) - 1}, one per source row; got labels {classes[:5].tolist()}"
                f"{' ...' if len(classes) > 5 else ''}. Pass the labels themselves and no class_names, "
                "or indices into class_names."
            )
        names = [class_names[int(c)] for c in classes]
    seen = {n: names.count(n) for n in names}
    return [n if seen[n] == 1 else f"{n} (class {c})" for n, c in zip(names, classes)]


def diagnose(
    Xs, ys, Xt, *, n_permutations: int = 200, random_state: int | None = 0, feature_names=None,
    max_features: int = 200, class_names=None,
) -> ShiftReport:  # fmt: skip
    """Measure the shift from labelled source rows to unlabelled target rows; advise a method family.

    Inputs with more than ``max_features`` columns are first projected on a PCA fitted to both
    domains (tests on hundreds of raw pixels or TF-IDF columns would be slow and noisy). The number
    of components is capped at half the number of rows: the tests standardize each component, and as
    many standardized components as rows (a PCA of ``n`` rows holds ``n - 1``) put every row equally
    far from every other, which hid any shift (a proxy A-distance of 0 for two domains a classifier
    on the raw features separates); the summary says so when the cap applies.

    ``n_permutations`` (at least 1) is the number of permutations of the MMD test; its p-value cannot
    go below ``1 / (1 + n_permutations)``, so at least 19 are needed for it to reach 0.05.

    ``ys`` holds the source labels. With ``class_names``, ``ys`` holds indices into it (0 .. K-1, as
    :meth:`DomainDataset.to_arrays` gives them) and the report names each class by its name (the
    per-class distances, the classes listed in the summary and ``label_shift["classes"]``); without,
    each class is named by its label in ``ys``. See the module docstring for how the verdict is drawn.
    """
    import operator

    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        n_permutations = operator.index(n_permutations)
    except TypeError:
        n_permutations = None
    if n_permutations is None or n_permutations < 1:
        raise TransferkitError(
            "n_permutations (permutations of the MMD test) must be a whole number >= 1; use 200 (the "
            "default): the p-value cannot go below 1 / (1 + n_permutations), so fewer than 19 can "
            "never show a significant shift."
        )
    Xs, Xt = _check(Xs, Xt)
    ys = np.asarray(ys)
    if ys.shape != (len(Xs),) or (ys.dtype.kind in "iufb" and (ys < 0).any()):
        raise TransferkitError("ys must hold one known label (>= 0) per source row.")
    labels = _class_labels(ys, class_names)
    notes = []
    drift = feature_drift(Xs, Xt, names=feature_names)
    if Xs.shape[1] > max_features:
        n_components = min(max_features, (len(Xs) + len(Xt)) // 2)
        pca = PCA(n_components, random_state=random_state).fit(np.vstack([Xs, Xt]))
        Xs_r, Xt_r = pca.transform(Xs), pca.transform(Xt)
        if n_components < max_features:
            notes.append(
                f"the {Xs.shape[1]} features were projected on {n_components} principal components, "
                f"not {max_features}: at most half of the {len(Xs) + len(Xt)} rows (more, standardized, "
                "would hide the shift); with this few rows every test here is rough."
            )
    else:
        Xs_r, Xt_r = Xs, Xt
    pad = proxy_a_distance(Xs_r, Xt_r, random_state=random_state)
    mmd2, p_value = mmd_test(Xs_r, Xt_r, n_permutations=n_permutations, random_state=random_state)
    # before and after the alignment in one kernel, on features standardized with the source's statistics:
    # the raw MMD above has another width (the raw features'), and its ratio to the aligned one would
    # depend on the features' units
    Xs_z, Xt_z, Xs_a, Xt_a = _coral_align(Xs_r, Xt_r)
    gamma = _median_gamma(Xs_z, Xt_z, random_state)
    mmd2_z, _ = mmd_test(Xs_z, Xt_z, n_permutations=0, gamma=gamma, random_state=random_state)
    mmd2_aligned, _ = mmd_test(Xs_a, Xt_a, n_permutations=0, gamma=gamma, random_state=random_state)
    p_src, p_tgt = _domain_probabilities(Xs_r, Xt_r, random_state)
    # target rows a domain classifier cannot pin as target, at equal priors: its odds carry the ratio
    # of the row counts (n_t / n_s), which would make the overlap depend on how many target rows there are
    odds = (p_tgt / (1 - p_tgt)) * (len(Xs) / len(Xt))
    overlap = float(np.mean(odds / (1 + odds) < 0.9))
    w = (p_src / (1 - p_src)) * (len(Xs) / len(Xt))
    ess = float(w.sum() ** 2 / (w**2).sum() / len(w))
    ls = label_shift(Xs_r, ys, Xt_r, random_state=random_state)
    ls["classes"] = list(labels)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(Xs_r, ys)
    pseudo = clf.predict(Xt_r)
    per_class = {}
    for c, name in zip(np.unique(ys), labels):
        src_c = Xs_r[ys == c]
        tgt_c = Xt_r[pseudo == c]
        if len(tgt_c) == 0:
            per_class[name] = float("nan")
            continue
        spread = np.sqrt(np.mean(np.sum((src_c - src_c.mean(0)) ** 2, axis=1))) or 1.0
        per_class[name] = round(float(np.linalg.norm(tgt_c.mean(0) - src_c.mean(0)) / spread), 3)

    summary, rec = [], ""
    drop = float(np.clip(1.0 - max(mmd2_aligned, 0.0) / mmd2_z, 0.0, 1.0)) if mmd2_z > 0 else 0.0
    aligned_sentence = (
        f"an affine alignment (centring + CORAL) removes {100 * drop:.0f}% of the MMD: the shift "
        "is largely a transformation of the feature space, which alignment methods undo."
    )
    if p_value >= 0.05:
        rec = "little covariate shift: a model trained on the source (source-only) is a sound start"
        if pad > 0.2:
            summary.append(
                f"the MMD test finds no significant difference (p = {p_value:.2g}), though a linear domain "
                f"classifier tells the domains apart somewhat (proxy A-distance {pad:.2f}): any shift is "
                "small, or the rows too few to show it; check the source-only model on a few target labels."
            )
        else:
            summary.append(
                f"source and target are hard to tell apart (proxy A-distance {pad:.2f}, "
                f"MMD p = {p_value:.2g})."
            )
        if n_permutations < 19:
            summary.append(
                f"with {n_permutations} permutations the MMD p-value cannot go below "
                f"{1 / (1 + n_permutations):.2g}, so no shift can show as significant: use at least 19 "
                "(200 by default)."
            )
    elif pad > 0.2:
        summary.append(
            f"the domains differ (proxy A-distance {pad:.2f}, MMD p = {p_value:.2g}): a source-only model "
            "is likely to lose accuracy on the target."
        )
        # a linear SVM that separates the domains (A-distance >= SEPARABLE: under 5% of the rows on the
        # wrong side) overrules the probabilistic classifier's overlap, which a few dozen rows keep flat
        if ess >= 0.1 and overlap >= 0.5 and pad < SEPARABLE:
            rec = "reweighting (kmm, kliep, density-ratio, nearest-neighbor-weighting)"
            summary.append(
                f"{100 * overlap:.0f}% of the target rows lie where the source also is, and the "
                f"importance weights are healthy (effective sample size {100 * ess:.0f}% of the source): "
                "the target looks like a region of the source, the covariate-shift setting where "
                "reweighting source rows works."
            )
        elif drop > 0.5:
            rec = "feature alignment (coral, subspace-alignment, tca, ot-mapping)"
            if pad >= SEPARABLE:
                summary.append(
                    f"a linear classifier separates the domains (proxy A-distance {pad:.2f}): their supports "
                    "barely overlap, so reweighting source rows cannot reach the target."
                )
            summary.append(aligned_sentence)
        else:
            rec = "non-linear alignment or self-training (ot-mapping, jda, self-training); not reweighting"
            why = (
                f"a linear classifier separates the domains (proxy A-distance {pad:.2f}): their supports "
                "barely overlap, whatever the share of target rows the domain classifier leaves uncertain"
                if pad >= SEPARABLE
                else f"the supports barely overlap ({100 * overlap:.0f}% of the target rows inside the "
                f"source's, effective sample size {100 * ess:.1f}%)"
                if overlap < 0.5
                else f"the importance weights are degenerate (effective sample size {100 * ess:.1f}% of "
                f"the source: a few source rows would carry the weight, though {100 * overlap:.0f}% of "
                "the target rows lie inside the source's support)"
            )
            summary.append(
                f"{why} and linear alignment does not close the gap: reweighting would not help; try "
                "non-linear alignment, joint methods or a few target labels."
            )
    else:
        # a significant MMD that a linear domain classifier cannot see: the means match, the shapes do not
        summary.append(
            f"the domains differ (MMD p = {p_value:.2g}) in a way a linear domain classifier cannot see "
            f"(proxy A-distance {pad:.2f}): their means are close but their shapes differ, e.g. the spread "
            "or correlations of the features (a covariance shift); a source-only model may lose "
            "accuracy on the target. The importance weights of such a classifier are blind to this "
            "shift, so reweighting is not advised."
        )
        if drop > 0.5:
            rec = "feature alignment (coral, subspace-alignment, tca, ot-mapping)"
            summary.append(aligned_sentence)
        else:
            rec = "non-linear alignment or self-training (ot-mapping, jda, self-training); not reweighting"
            summary.append(
                f"an affine alignment (centring + CORAL) removes only {100 * drop:.0f}% of the MMD: the "
                "change is not a linear transformation of the features; try non-linear alignment, joint "
                "methods or a few target labels."
            )
    # BBSE is noisy on small samples: flag a change only beyond ~ its sampling error, sqrt(k / n), with
    # n the smaller of the held-out source half (its confusion matrix) and the target (its prediction rates)
    ls_threshold = max(0.1, float(np.sqrt(len(ls["classes"]) / min(len(ys) / 2, len(Xt)))))
    if ls["total_variation"] > ls_threshold:
        rec += "; and correct the label shift (label-shift: class weights from the BBSE estimate)"
        summary.append(
            f"the class proportions seem to change (total variation {ls['total_variation']:.2f}); "
            "reweight classes by the estimated p_t(y)/p_s(y) (--method label-shift, or "
            "label_shift()['weights']) if each class keeps its look: the estimate assumes it, and a change "
            "of the features within a class also shows here as a change of proportions (check with a few "
            "target labels first)."
        )
    far = [k for k, v in per_class.items() if np.isfinite(v) and v > 1.0]
    if far:
        summary.append(
            "classes whose target rows sit far from their source mean: " + ", ".join(far)
            + " (look at these first)."
        )  # fmt: skip
    summary += notes
    return ShiftReport(
        n_source=len(Xs), n_target=len(Xt), n_features=Xs.shape[1], proxy_a_distance=round(pad, 4),
        mmd2=round(mmd2, 6), mmd2_standardized=round(mmd2_z, 6), mmd2_aligned=round(mmd2_aligned, 6),
        alignment_drop=round(drop, 4), mmd_p_value=round(p_value, 4),
        effective_sample_size=round(ess, 4), support_overlap=round(overlap, 4), label_shift=ls,
        drifting_features=drift, per_class_distance=per_class, recommendation=rec, summary=summary,
    )  # fmt: skip
