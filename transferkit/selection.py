"""Choosing a model without target labels: scorers that only read source labels and target features.

Every scorer is a callable ``scorer(estimator, X, y, sample_domain=None) -> float`` where **higher is
better**, so it plugs into scikit-learn's ``GridSearchCV(scoring=...)`` and ``cross_validate``. ``X``
holds held-out labelled source rows and (unlabelled) target rows; ``y`` has -1 on every target row.
When ``sample_domain`` is not given (as inside ``GridSearchCV``) it is read off ``y``: rows labelled
-1 are target rows, exactly the convention of :func:`transferkit.domains.check_domain_data`. So
``y`` must hold -1 on the target rows: target labels in ``y`` would be read as held-out *source*
labels (transferkit's own selection masks them; :class:`DomainShuffleSplit` refuses a ``y`` that
labels a target row). A model fitted with several target (or source) domains cannot be scored
with domains read off ``y`` (every target row would be called domain -1): pass ``sample_domain``.

=================  ==========================================================  ===================
name               what it measures                                            reads
=================  ==========================================================  ===================
``source-val``     accuracy on held-out source rows                            source labels
``iwcv``           source accuracy weighted by p_t(x)/p_s(x) (IWCV)            source labels
``dev``            deep embedded validation: IWCV on the model's features,     source labels
                   with a control variate (lower variance)
``entropy``        minus the mean prediction entropy on the target             target features
``snd``            soft neighbourhood density of the target predictions        target features
``mixval``         agreement of predictions on mixup of target rows            target features
=================  ==========================================================  ===================

Probabilities come from ``predict_proba`` when the classifier has it, else from a softmax of its
``decision_function`` (margins of an SVM are not calibrated probabilities; the entropy-type scores
then rank models by the sharpness of their margins, which is what they are used for).

References: Sugiyama et al. 2007 (IWCV, JMLR 8); You et al. 2019 (DEV, ICML); Saito et al. 2021
(SND, ICCV); Hu et al. 2023 (MixVal, NeurIPS); Morerio et al. 2018 (entropy for model selection).

>>> from transferkit.selection import get_scorer, list_scorers
>>> list_scorers()
['dev', 'entropy', 'iwcv', 'mixval', 'snd', 'source-val']
"""

from __future__ import annotations

import numpy as np

from transferkit.domains import UNLABELLED, source_mask, target_mask
from transferkit.errors import TransferkitError, unknown_name

__all__ = [
    "DEVScorer",
    "DomainShuffleSplit",
    "EntropyScorer",
    "IWCVScorer",
    "MixValScorer",
    "SNDScorer",
    "SourceValScorer",
    "choose",
    "get_scorer",
    "list_scorers",
    "predict_proba",
    "target_collapse",
]


def _domains(X, y, sample_domain):
    X = np.asarray(X)
    if y is None:
        raise TransferkitError("a selection scorer needs y: source labels, and -1 on the target rows.")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise TransferkitError(
            f"y must hold one label per row of X ({X.shape[0]}), got shape {y.shape}: pass the source "
            "labels with -1 on the target rows."
        )
    sd = np.where(y == UNLABELLED, -1, 0) if sample_domain is None else np.asarray(sample_domain)
    if sd.shape != (X.shape[0],):
        raise TransferkitError(f"sample_domain must have one entry per row ({X.shape[0]}), got {sd.shape}.")
    return X, y, sd.astype(np.int64)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:  # binary decision function: one margin per row
        z = np.c_[-z, z] / 2.0
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _call(estimator, name, X, sd):
    method = getattr(estimator, name)
    try:
        return method(X, sample_domain=sd)
    except TypeError:  # a plain scikit-learn classifier
        return method(X)


def predict_proba(estimator, X, sample_domain=None) -> np.ndarray:
    """Class probabilities; a softmax of the decision function for classifiers without them."""
    try:
        return np.asarray(_call(estimator, "predict_proba", X, sample_domain), dtype=np.float64)
    except AttributeError:
        pass
    if hasattr(estimator, "decision_function"):
        return _softmax(_call(estimator, "decision_function", X, sample_domain))
    raise TransferkitError(
        f"{type(estimator).__name__} has neither predict_proba nor decision_function; this scorer "
        "needs scores per class."
    )


def _features(estimator, X, sd):
    """The representation the final classifier sees (adapted features for a composed model)."""
    if hasattr(estimator, "features"):
        return np.asarray(estimator.features(X, sample_domain=sd), dtype=np.float64)
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)


#: the domain classifier's inverse regularization strengths tried when ``C`` is not given
DENSITY_RATIO_CS = (1e-3, 1e-2, 1e-1, 1.0)


def _density_ratio(Z: np.ndarray, is_target: np.ndarray, C: float | None, random_state) -> np.ndarray:
    """p_t(z)/p_s(z) for every row, from a logistic domain classifier (prior-corrected), cross-fitted:
    each row's ratio comes from a classifier fitted on the other folds (5, stratified by domain).

    A classifier scored on the rows it was fitted on separates the two domains perfectly as soon as
    there are about as many features as rows (every held-out Office-Caltech10 set: in-sample accuracy
    1.0): its ratios then describe the rows it memorised, not the shift. The DEV authors fit theirs
    on other rows (the source's training features) for the same reason. With
    ``C=None`` the strength is the one of :data:`DENSITY_RATIO_CS` whose out-of-fold predictions have
    the lowest log-loss (the DEV authors choose theirs on held-out domain accuracy). Fewer than 2
    rows of either domain cannot be cross-fitted: every ratio is then 1 (no evidence of a shift).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    if C is not None and (
        isinstance(C, bool) or not isinstance(C, (int, float)) or not np.isfinite(C) or C <= 0
    ):
        raise TransferkitError(
            f"the domain classifier's C must be a number > 0 (or None to choose it by log-loss); got {C!r}"
        )
    is_target = np.asarray(is_target, dtype=bool)
    n_t, n_s = int(is_target.sum()), int((~is_target).sum())
    folds = min(5, n_t, n_s)
    if folds < 2:
        return np.ones(len(Z))
    Zs = StandardScaler().fit_transform(Z)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=random_state).split(Zs, is_target))
    best, best_loss = None, np.inf
    for c in DENSITY_RATIO_CS if C is None else (C,):
        p = np.empty(len(Z))
        for fit, held in splits:
            clf = LogisticRegression(C=c, max_iter=1000, random_state=random_state)
            p[held] = clf.fit(Zs[fit], is_target[fit]).predict_proba(Zs[held])[:, 1]
        p = np.clip(p, 1e-6, 1 - 1e-6)
        loss = -np.mean(np.where(is_target, np.log(p), np.log1p(-p)))
        if loss < best_loss:
            best, best_loss = p, loss
    return (best / (1 - best)) * (n_s / n_t)


def _filled(Z: np.ndarray, is_source: np.ndarray) -> np.ndarray:
    """Input features for the domain classifier: a table's rows with holes (NaN, in a run whose first step
    is ``impute``) filled as that step fills them (:class:`~transferkit.preprocessing.Impute`: the source
    rows' medians, and a 0/1 column per column with a hole). Rows without a hole come back unchanged."""
    Z = np.asarray(Z, dtype=np.float64)
    if not np.isnan(Z).any():
        return Z
    from transferkit.preprocessing import Impute

    return Impute().fit_transform(Z, None, np.where(is_source, 0, -1))


def _check_domains_readable(estimator) -> None:
    """Refuse to read domains off ``y`` (all targets -1, all sources 0) for a model that was fitted
    with several target or source domains: its domain-wise steps would see the wrong domain."""
    for kind in ("target", "source"):
        fitted = getattr(estimator, f"{kind}_domains_", None)
        if fitted is not None and len(fitted) > 1:
            raise TransferkitError(
                f"the model was fitted with several {kind} domains {sorted(int(d) for d in fitted)}, but the "
                "scorer got no sample_domain and reads the domains off y (-1 target, else source), which "
                "cannot tell them apart; call the scorer with sample_domain (or select with transferkit's "
                "own selection, transferkit.experiment.select_runs, which passes it)."
            )


class _Scorer:
    name = ""
    needs_source = False
    #: whether the score looks at target rows (all but source-val): a method that never sees the
    #: target (domain generalization) must not be chosen by one
    reads_target = True

    def __call__(self, estimator, X, y=None, sample_domain=None) -> float:
        if sample_domain is None:
            _check_domains_readable(estimator)
        X, y, sd = _domains(X, y, sample_domain)
        src, tgt = source_mask(sd) & (y != UNLABELLED), target_mask(sd)
        if self.needs_source and not src.any():
            raise TransferkitError(
                f"the '{self.name}' scorer needs held-out labelled source rows; none given."
            )
        if not self.needs_source and not tgt.any():
            raise TransferkitError(f"the '{self.name}' scorer needs target rows; none given.")
        return float(self._score(estimator, X, y, sd, src, tgt))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class SourceValScorer(_Scorer):
    """Accuracy on held-out source rows: the naive rule, blind to the shift."""

    name = "source-val"
    needs_source = True
    reads_target = False

    def __init__(self, random_state: int | None = None):
        self.random_state = random_state  # unused: accepted so every scorer takes the same settings

    def _score(self, estimator, X, y, sd, src, tgt):
        return np.mean(_call(estimator, "predict", X[src], sd[src]) == y[src])


class IWCVScorer(_Scorer):
    """Importance-weighted validation: source accuracy weighted by p_t(x) / p_s(x).

    The weights come from a logistic domain classifier on the input features (Sugiyama et al. 2007),
    cross-fitted (each row's weight from a classifier that did not see it) with its strength ``C``
    chosen by out-of-fold log-loss unless given, so the validation error estimates the target error
    under covariate shift. The mean is
    self-normalised, ``sum(w * correct) / sum(w)`` (Sugiyama et al. divide by the number of rows
    instead): a little bias for much less variance, and a score that stays an accuracy in [0, 1].
    """

    name = "iwcv"
    needs_source = True

    def __init__(self, C: float | None = None, random_state: int | None = 0):
        self.C = C
        self.random_state = random_state
        self._last: tuple[str, np.ndarray] | None = None

    def _weights(self, Z: np.ndarray, is_target: np.ndarray) -> np.ndarray:
        """The density ratios of these rows, estimated once for the last rows seen: a search scores
        every candidate setting on the same rows, and the input features do not depend on the model."""
        import hashlib

        digest = hashlib.blake2b(np.ascontiguousarray(Z, dtype=np.float64).tobytes(), digest_size=16)
        digest.update(np.ascontiguousarray(is_target, dtype=bool).tobytes())
        key = f"{digest.hexdigest()}{Z.shape}{self.C!r}{self.random_state!r}"
        if self._last is None or self._last[0] != key:
            self._last = (key, _density_ratio(Z, is_target, self.C, self.random_state))
        return self._last[1].copy()

    def _score(self, estimator, X, y, sd, src, tgt):
        if not tgt.any():
            raise TransferkitError("the 'iwcv' scorer needs target rows to estimate the weights.")
        rows = src | tgt
        flat = X.reshape(len(X), -1)
        w = self._weights(_filled(flat[rows], src[rows]), tgt[rows])[src[rows]]
        correct = _call(estimator, "predict", X[src], sd[src]) == y[src]
        return float(np.sum(w * correct) / np.sum(w))


class DEVScorer(_Scorer):
    """Deep embedded validation (You et al. 2019): weighted source loss with a control variate.

    ``DEV = mean(w * l) + eta * mean(w) - eta`` with ``eta = -Cov(w * l, w) / Var(w)``, where ``l`` is
    the cross-entropy of held-out source rows and ``w`` the density ratio estimated on the model's
    own features by a cross-fitted logistic domain classifier (``C`` chosen by out-of-fold log-loss
    unless given; the authors fit theirs on the source's training features, which a scorer does not
    see). Returned negated (higher is better). With equal weights (no variance) ``eta`` is 0.
    """

    name = "dev"
    needs_source = True

    def __init__(self, C: float | None = None, random_state: int | None = 0):
        self.C = C
        self.random_state = random_state

    def _score(self, estimator, X, y, sd, src, tgt):
        if not tgt.any():
            raise TransferkitError("the 'dev' scorer needs target rows to estimate the weights.")
        rows = src | tgt
        Z = _features(estimator, X[rows], sd[rows])
        w = _density_ratio(Z, tgt[rows], self.C, self.random_state)[src[rows]]
        proba = predict_proba(estimator, X[src], sd[src])
        classes = np.asarray(getattr(estimator, "classes_", np.arange(proba.shape[1])))
        index = np.searchsorted(classes, y[src])
        index = np.clip(index, 0, proba.shape[1] - 1)
        known = classes[index] == y[src]
        loss = np.where(known, -np.log(np.clip(proba[np.arange(len(index)), index], 1e-12, None)), 30.0)
        weighted = w * loss
        # both moments with ddof=1 (np.cov's default), as in the DEV authors' code. Weights that are all
        # equal (a domain classifier that sees no difference) have no variance to use: their np.var is
        # rounding noise (~1e-33), which would make eta = -cov / var a ratio of two noises
        spread = np.ptp(w) if len(w) > 1 else 0.0
        var = np.var(w, ddof=1) if spread > 1e-12 * np.max(np.abs(w)) else 0.0
        eta = -np.cov(weighted, w)[0, 1] / var if var > 0 else 0.0
        return -(np.mean(weighted) + eta * np.mean(w) - eta)


class EntropyScorer(_Scorer):
    """Minus the mean entropy of the target predictions (confident models score higher)."""

    name = "entropy"

    def __init__(self, random_state: int | None = None):
        self.random_state = random_state  # unused: accepted so every scorer takes the same settings

    def _score(self, estimator, X, y, sd, src, tgt):
        p = np.clip(predict_proba(estimator, X[tgt], sd[tgt]), 1e-12, 1.0)
        return np.mean(np.sum(p * np.log(p), axis=1))


class SNDScorer(_Scorer):
    """Soft neighbourhood density (Saito et al. 2021) of the target predictions.

    With ``P`` the L2-normalised target probabilities, ``S = P P^T`` without its diagonal and
    ``A = softmax(S / T)`` per row, the score is the mean entropy of the rows of ``A``: high when
    target points sit in dense clusters of consistent predictions. Needs at least 2 target rows; above
    ``max_rows`` a random subsample (seeded by ``random_state``) is scored.
    """

    name = "snd"

    def __init__(self, temperature: float = 0.05, max_rows: int = 2000, random_state: int | None = 0):
        if not temperature > 0:
            raise TransferkitError(f"SND's temperature must be > 0 (0.05 in the paper), got {temperature}.")
        if max_rows < 2:
            raise TransferkitError(
                f"SND's max_rows must be at least 2 (a row needs a neighbour), got {max_rows}."
            )
        self.temperature = temperature
        self.max_rows = max_rows
        self.random_state = random_state

    def _score(self, estimator, X, y, sd, src, tgt):
        rows = np.flatnonzero(tgt)
        _need_two_target_rows(self.name, rows.size)
        if rows.size > self.max_rows:
            rows = np.sort(
                np.random.default_rng(self.random_state).choice(rows, self.max_rows, replace=False)
            )
        p = predict_proba(estimator, X[rows], sd[rows])
        p = p / np.clip(np.linalg.norm(p, axis=1, keepdims=True), 1e-12, None)
        s = p @ p.T / self.temperature
        np.fill_diagonal(s, -np.inf)
        s = s - s.max(axis=1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=1, keepdims=True)
        return np.mean(-np.sum(a * np.log(np.clip(a, 1e-300, None)), axis=1))


class MixValScorer(_Scorer):
    """MixVal (Hu et al. 2023): do predictions stay consistent on mixups of target rows?

    Target rows are pseudo-labelled by the model. For random pairs with *different* pseudo-labels
    (inter-cluster) and with the *same* pseudo-label (intra-cluster), the mixture
    ``lam * x_i + (1 - lam) * x_j`` (``0.5 < lam < 1``) should be predicted as ``x_i``'s pseudo-label
    (hard pseudo-labels, as in the authors' code). The score is the mean of the two agreement rates (the
    ICE score), or the one rate there is when every pair shares its pseudo-label (a model predicting one
    class: see :func:`choose`) or none does. ``n_pairs`` pairs are drawn with replacement (seeded by
    ``random_state``); a row paired with itself is not counted. Needs at least 2 target rows; only
    target features are read.
    """

    name = "mixval"

    def __init__(self, lam: float = 0.55, n_pairs: int = 1000, random_state: int | None = 0):
        if not 0.5 < lam < 1:
            raise TransferkitError(
                f"MixVal's lam must lie strictly between 0.5 and 1 (the mixture is closer to x_i, whose "
                f"pseudo-label it should keep; 0.55 in the paper), got {lam}."
            )
        if n_pairs < 1:
            raise TransferkitError(f"MixVal's n_pairs must be at least 1 (1000 by default), got {n_pairs}.")
        self.lam = lam
        self.n_pairs = n_pairs
        self.random_state = random_state

    def _score(self, estimator, X, y, sd, src, tgt):
        rows = np.flatnonzero(tgt)
        _need_two_target_rows(self.name, rows.size)
        Xt = X[rows].astype(np.float64)
        pseudo = np.asarray(_call(estimator, "predict", X[rows], sd[rows]))
        rng = np.random.default_rng(self.random_state)
        i = rng.integers(0, len(rows), self.n_pairs)
        j = rng.integers(0, len(rows), self.n_pairs)
        mixed = self.lam * Xt[i] + (1 - self.lam) * Xt[j]
        # mixtures of integer rows (counts) stay fractional; float32 rows (images) stay float32
        dtype = X.dtype if X.dtype.kind == "f" else np.float64
        agree = np.asarray(_call(estimator, "predict", mixed.astype(dtype), sd[rows][i])) == pseudo[i]
        same = pseudo[i] == pseudo[j]
        rates = [agree[m].mean() for m in (same & (i != j), ~same) if m.any()]
        return float(np.mean(rates)) if rates else 0.0


def _need_two_target_rows(name: str, n: int) -> None:
    if n < 2:
        raise TransferkitError(
            f"the '{name}' scorer compares target rows with one another and needs at least 2; got {n}. "
            "Score on more target rows, or use the 'entropy' scorer."
        )


class DomainShuffleSplit:
    """Cross-validation for domain adaptation: hold out source rows, keep every target row in both.

    Each split trains on a random part of the labelled source rows plus all target rows (unlabelled,
    as the method would see them) and validates on the held-out source rows plus all target rows, so
    both source-based scorers (``source-val``, ``iwcv``, ``dev``) and target-based ones (``entropy``,
    ``snd``, ``mixval``) have what they need. Target rows are those labelled -1 in ``y``, or with a
    negative ``groups`` entry when ``groups`` holds ``sample_domain``. Use it as ``cv=`` of
    ``GridSearchCV`` with a scorer from :func:`get_scorer`.
    """

    def __init__(self, n_splits: int = 1, test_size: float = 0.2, random_state: int | None = 0):
        self.n_splits = n_splits
        self.test_size = test_size
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X, y=None, groups=None):
        from sklearn.model_selection import StratifiedShuffleSplit

        if y is None:
            raise TransferkitError("DomainShuffleSplit needs y (-1 on the target rows) to find the source.")
        y = np.asarray(y)
        sd = np.asarray(groups) if groups is not None else np.where(y == UNLABELLED, -1, 0)
        src, tgt = np.flatnonzero(source_mask(sd)), np.flatnonzero(target_mask(sd))
        if not src.size or not tgt.size:
            raise TransferkitError("DomainShuffleSplit needs both source rows and target rows.")
        if (labelled := int((y[tgt] != UNLABELLED).sum())) > 0:
            # every target row sits in the training part too: a scorer reading domains off y (as inside
            # GridSearchCV) would score these rows as held-out source rows, with their target labels
            which = (
                "every target row" if labelled == tgt.size else f"{labelled} of the {tgt.size} target rows"
            )
            raise TransferkitError(
                f"y holds a label on {which}: the scorers take the rows labelled -1 as the target "
                "and would read these target labels as held-out source labels, on rows the model was "
                "fitted on. Pass y with -1 on the target rows: "
                "transferkit.domains.mask_target_labels(y, sample_domain)."
            )
        classes, counts = np.unique(y[src], return_counts=True)
        n_val = int(np.ceil(self.test_size * src.size)) if self.test_size < 1 else int(self.test_size)
        if counts.min() < 2 or n_val < len(classes) or src.size - n_val < len(classes):
            rare = classes[counts.argmin()]
            raise TransferkitError(
                f"label-free selection holds out {self.test_size:g} of the source rows, stratified by class, "
                f"and needs at least 2 source rows per class and one held-out row per class: the source has "
                f"{src.size} rows of {len(classes)} classes (class {rare} has {counts.min()}). Use more "
                "source rows, or run without --select."
            )
        inner = StratifiedShuffleSplit(
            self.n_splits, test_size=self.test_size, random_state=self.random_state
        )
        for train, val in inner.split(src, y[src]):
            yield np.sort(np.r_[src[train], tgt]), np.sort(np.r_[src[val], tgt])


SCORERS = {
    cls.name: cls for cls in (DEVScorer, EntropyScorer, IWCVScorer, MixValScorer, SNDScorer, SourceValScorer)
}


def list_scorers() -> list[str]:
    """Names of the label-free scorers, sorted."""
    return sorted(SCORERS)


def reads_target(name: str) -> bool:
    """Whether the named scorer looks at target rows (every scorer but ``source-val``)."""
    if name not in SCORERS:
        raise unknown_name("scorer", name, list_scorers())
    return SCORERS[name].reads_target


def get_scorer(name: str, **params) -> _Scorer:
    """A scorer by name (see the module table)."""
    if name not in SCORERS:
        raise unknown_name("scorer", name, list_scorers())
    return SCORERS[name](**params)


def score_every_epoch(X_target, names=("entropy", "snd", "mixval"), source_labels=None, eval_labels=None):
    """A trainer callback that writes target-only scorers into every epoch's record.

    ``Trainer.fit(..., callbacks=[score_every_epoch(X_target)])`` adds ``select_<name>`` for each
    scorer in ``names`` (the key ``early_stopping`` uses) after every epoch, from the network's
    predictions on the unlabelled rows ``X_target``; nothing is restored, so the run ends as it would
    have, and the history shows which epoch each rule would have kept. Only scorers that read
    target features alone are allowed (no held-out source is split off). The scorers draw from
    their own seeded numpy generators: training is unchanged (tested). With ``source_labels``, an
    epoch whose target predictions collapse onto one class (:func:`target_collapse`) is marked
    ``target_collapsed`` (the key ``early_stopping`` writes), and :func:`chosen_epoch` passes over it.
    With ``eval_labels`` (the labels of ``X_target``, for a benchmark's oracle row: read after the
    scores, never by them nor by the loss), the epoch's accuracy on them is written as ``target_acc``
    (the key ``eval_sets={"target": ...}`` writes). The network runs once per epoch on ``X_target``
    for all of these (:class:`~transferkit.nn.trainer.TrainerClassifier` with ``rows``); SND's and
    MixVal's extra rows (a subsample, the mixtures) take their own small passes.
    """
    if eval_labels is not None and len(eval_labels) != len(X_target):
        raise TransferkitError(
            f"eval_labels must hold one label per target row: got {len(eval_labels)} labels for "
            f"{len(X_target)} rows."
        )
    if len(X_target) == 0:
        raise TransferkitError(
            "score_every_epoch needs the unlabelled target rows to score; X_target is empty."
        )
    scorers = {name: get_scorer(name) for name in names}
    if len(X_target) < 2 and (pairwise := [n for n in names if n in ("snd", "mixval")]):
        _need_two_target_rows(pairwise[0], len(X_target))
    source_based = [n for n, s in scorers.items() if s.needs_source]
    if source_based:
        raise TransferkitError(
            f"score_every_epoch takes scorers that read the target only; {', '.join(source_based)} need "
            "held-out source rows (use the trainer's early_stopping, which splits them off)."
        )
    unlabelled = np.full(len(X_target), UNLABELLED)

    def callback(trainer, record):
        from transferkit.nn.trainer import TrainerClassifier

        model = TrainerClassifier(trainer, rows=X_target)  # one pass over X_target, shared
        scores = {f"select_{name}": float(scorer(model, X_target, unlabelled, unlabelled))
                  for name, scorer in scorers.items()}  # fmt: skip
        if eval_labels is not None:  # after the scores: nothing above reads a label
            record["target_acc"] = float(np.mean(model.predict(X_target) == np.asarray(eval_labels)))
        record.update(scores)
        if source_labels is not None and target_collapse(model.predict(X_target), source_labels):
            record["target_collapsed"] = True

    return callback


def chosen_epoch(history, name: str) -> dict:
    """The epoch record with the highest ``select_<name>`` score (the earliest among ties), passing
    over epochs marked ``target_collapsed`` (see :func:`score_every_epoch`) unless all are. A NaN score
    (a network whose outputs went NaN) ranks below every number."""
    key = f"select_{name}"
    scored = [h for h in history if key in h]
    if not scored:
        raise TransferkitError(f"no epoch of this history has a {key!r} score.")
    kept = [h for h in scored if not _is_true(h.get("target_collapsed", False))] or scored
    return max(kept, key=lambda h: (_rank(h[key]), -int(h["epoch"])))


def target_collapse(pred_target, source_labels) -> str | None:
    """A warning's text when the predictions on the target collapse onto one class, else ``None``.

    Collapse: the most predicted class takes at least half of the target rows and at least three
    times its share of the source labels (capped at 95%, so that a two-class task warns when 95% of
    the target goes to one side). Self-training that confirms its own mistakes and a discriminator
    that wins both end like this; a genuine label shift rarely goes that far.
    """
    pred = np.asarray(pred_target, dtype=np.int64)
    labels = np.asarray(source_labels, dtype=np.int64)
    if len(pred) == 0 or len(labels) == 0:
        return None
    n_classes = max(int(pred.max()), int(labels.max())) + 1
    share = np.bincount(pred, minlength=n_classes) / len(pred)
    prior = np.bincount(labels, minlength=n_classes) / len(labels)
    c = int(share.argmax())
    if share[c] < max(0.5, min(0.95, 3 * prior[c])):
        return None
    return (
        f"the predictions on the {len(pred)} target rows collapsed onto class {c}: it takes "
        f"{100 * share[c]:.0f}% of them, against {100 * prior[c]:.0f}% of the source labels. The adaptation "
        "has probably failed (pseudo-labels confirming their own mistakes, or a discriminator that "
        "won); compare with source-only, lower the adaptation weight, or (deep methods) keep an "
        "earlier epoch chosen without target labels (early_stopping)."
    )


def choose(candidates: list[dict], scorer: str, score=None) -> dict:
    """The candidate ``scorer`` prefers (highest score; the first among ties).

    A scorer that reads the target alone (entropy, SND, MixVal) has a degenerate optimum: a model
    that puts every target row into one class is as confident, as dense and as consistent as can
    be. So a candidate marked ``collapsed`` (its target predictions collapsed onto one class,
    :func:`target_collapse`; :func:`transferkit.experiment.select_runs` marks them) is never
    chosen by such a scorer, unless every candidate collapsed. Scorers that read held-out source
    labels choose among all candidates. ``score(candidate, scorer)`` reads a candidate's score
    (default ``candidate["scores"][scorer]``). A NaN score ranks below every number.
    """
    if not candidates:
        raise TransferkitError("there is no candidate to choose from.")
    if score is None:

        def score(c, name):
            return c["scores"][name]

    pool = candidates
    if not get_scorer(scorer).needs_source:
        pool = [c for c in candidates if not _is_true(c.get("collapsed", False))] or candidates
    return max(pool, key=lambda c: _rank(score(c, scorer)))


def _rank(value) -> float:
    """A score as a sort key: NaN (which compares False with everything, so ``max`` would keep a NaN
    that came first) ranks below every number."""
    value = float(value)
    return -np.inf if np.isnan(value) else value


def _is_true(value) -> bool:
    """A flag as written by Python or read back from a CSV file."""
    return value is True or str(value).strip().lower() in {"1", "true"}
