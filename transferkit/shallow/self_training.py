"""Self-training with class-balanced, confidence-ranked pseudo-labels on the target."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import check_domain_data, remember_columns, source_mask, target_mask
from transferkit.errors import TransferkitError, check_flag
from transferkit.shallow.base import base_classifier
from transferkit.shallow.regularized_transfer import check_predict_input


def _scores(model, X) -> np.ndarray:
    """Class probabilities, or a softmax of the decision function for classifiers without them."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    z = np.asarray(model.decision_function(X), dtype=np.float64)
    if z.ndim == 1:
        z = np.c_[-z, z] / 2
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _frozen(template, fitted):
    """An unfitted copy of ``template`` with the hyperparameters ``fitted`` chose by cross-validation.

    Knows two conventions: a fitted search (``best_estimator_``, e.g. GridSearchCV) gives its best
    estimator; an estimator with a grid ``Cs`` and a chosen ``best_C_`` (LinearSVMCV) is narrowed to
    that one value. Anything else is refitted as it is.
    """
    if hasattr(fitted, "best_estimator_"):
        return clone(fitted.best_estimator_)
    if hasattr(fitted, "best_C_") and "Cs" in template.get_params(deep=False):
        return clone(template).set_params(Cs=(fitted.best_C_,))
    return clone(template)


class SelfTraining(ClassifierMixin, BaseEstimator):
    r"""Train on the source, pseudo-label the target's most confident rows, retrain with them; repeat.

    Round :math:`r = 1 \dots R` (``n_rounds``) trains ``estimator`` on the labelled rows (source,
    revealed target labels, and the current pseudo-labels), scores the unlabelled target rows,
    and keeps as pseudo-labels the rows whose top class probability :math:`\max_c p(c \mid x)` is at
    least ``threshold``, at most

    .. math:: m_c = \lceil f_r \, n_t \, \pi_c \rceil, \qquad f_r = \text{fraction} \cdot r / R

    per class :math:`c` (``class_balance``; :math:`\pi_c` the source class prior, :math:`n_t` the
    number of unlabelled target rows), the most confident first. The class balance keeps one dominant
    class from swallowing the target, the known failure of naive self-training under shift; the
    growing :math:`f_r` takes the easy rows first. ``threshold=None`` keeps the top :math:`m_c` per
    class whatever their confidence; without class balance the budget is global (the top
    :math:`f_r n_t` rows when ranking, every row above ``threshold`` otherwise).
    Pseudo-labels are recomputed from scratch each round (an early mistake can be dropped), and the
    rounds stop early once they no longer change.

    Classifiers without ``predict_proba`` are scored by a softmax of ``decision_function``; their margins are
    not probabilities, so ``threshold`` is ignored for them and only the per-class ranking is used. With
    ``freeze_hyperparameters`` (default), hyperparameters the estimator picks by its own cross-validation on
    the first fit, on the labelled rows only (LinearSVMCV's ``C``, a GridSearchCV's best parameters), are kept
    for the later rounds: that is the selection made on true labels alone, not re-made on pseudo-labels, and
    it saves a grid search per round.

    Unsupervised (every target label -1) or semi-supervised: revealed target labels (>= 0) are used
    as true labels and never overwritten. ``pseudo_labels_`` holds the final pseudo-label of each
    target row (-1: none, which includes the revealed rows); ``n_pseudo_per_round_`` their counts.

    scikit-learn's ``SelfTrainingClassifier`` is not used: it only accumulates pseudo-labels (never
    revises them), selects by a global threshold or global top-k (no per-class budget following the
    source prior), and has no notion of domains.

    Reference: D.-H. Lee, "Pseudo-label", ICML workshop 2013; Y. Zou, Z. Yu, B. V. K. Kumar, J. Wang,
    "Unsupervised domain adaptation for semantic segmentation via class-balanced self-training",
    ECCV 2018.

    Parameters
    ----------
    estimator : classifier, optional
        Any scikit-learn classifier, cloned for each round (default:
        ``LogisticRegression(max_iter=1000)``).
    threshold : float or None
        Lowest top-class probability for a pseudo-label, in [0, 1); None ranks only.
    fraction : float
        Largest share of the unlabelled target rows pseudo-labelled in the last round, in (0, 1].
    n_rounds : int
        Number of self-training rounds :math:`R`.
    class_balance : bool
        Give each class a budget proportional to its source prior.
    freeze_hyperparameters : bool
        Keep the hyperparameters the estimator chose on the source in later rounds.

    Attributes
    ----------
    estimator_ : classifier
        The model of the last round.
    pseudo_labels_ : ndarray
        One entry per target row (in order): its pseudo-label, or -1.
    n_pseudo_per_round_ : list of int
        The number of pseudo-labels in each round.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 100); Xs = rng.normal(size=(200, 2)) + 6 * y[:, None] * [1, 0]
    >>> Xt = rng.normal(size=(200, 2)) + 6 * y[:, None] * [1, 0] + [2.5, 1.0]  # translated
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(200, int), -np.ones(200, int)]
    >>> clf = SelfTraining().fit(X, np.r_[y, -np.ones(200, int)], sd)
    >>> bool(np.mean(clf.predict(Xt) == y) > 0.86)  # source-only: 0.825; self-training: 0.885
    True
    """

    role = "classifier"
    family = "self-training"
    uses_target_labels = True  # revealed target labels are kept as true labels
    needs_target_labels = False
    requires_target_labels = False
    search_space = {"threshold": (0.5, 0.7, 0.9)}

    def __init__(
        self,
        estimator=None,
        threshold: float | None = 0.9,
        fraction: float = 0.8,
        n_rounds: int = 5,
        class_balance: bool = True,
        freeze_hyperparameters: bool = True,
    ):
        self.estimator = estimator
        self.threshold = threshold
        self.fraction = fraction
        self.n_rounds = n_rounds
        self.class_balance = class_balance
        self.freeze_hyperparameters = freeze_hyperparameters

    def _base(self):
        if self.estimator is None:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(max_iter=1000)
        return base_classifier(self.estimator, type(self).__name__)

    def _select(self, proba, classes, prior, frac, probabilistic):
        """Which rows get a pseudo-label this round, and which label."""
        conf, guess = proba.max(1), classes[proba.argmax(1)]
        rank_only = self.threshold is None or not probabilistic
        confident = np.ones(len(conf), bool) if rank_only else conf >= self.threshold
        keep = np.zeros(len(conf), bool)
        if self.class_balance:
            for c, pi in zip(classes, prior):
                cand = np.flatnonzero((guess == c) & confident)
                cand = cand[np.argsort(-conf[cand], kind="stable")][: int(np.ceil(frac * len(conf) * pi))]
                keep[cand] = True
        elif rank_only:
            keep[np.argsort(-conf, kind="stable")[: int(np.ceil(frac * len(conf)))]] = True
        else:
            keep = confident
        return keep, guess

    def fit(self, X, y, sample_domain=None):
        remember_columns(self, X)
        X, y, sd = check_domain_data(X, y, sample_domain, allow_nd=False)
        if not 0 < self.fraction <= 1 or self.n_rounds < 1:
            raise TransferkitError("SelfTraining needs 0 < fraction <= 1 and n_rounds >= 1.")
        if self.threshold is not None and not 0 <= self.threshold < 1:
            raise TransferkitError(f"threshold must be in [0, 1) or None, got {self.threshold}.")
        check_flag("class_balance", self.class_balance)
        check_flag("freeze_hyperparameters", self.freeze_hyperparameters)
        tgt = target_mask(sd)
        labelled = y >= 0  # source rows and any revealed target rows; other target labels are -1
        rows = np.flatnonzero(tgt & ~labelled)  # the rows to pseudo-label
        y_src = y[source_mask(sd)]
        self.classes_ = np.unique(y[labelled])
        prior = np.array([np.mean(y_src == c) for c in self.classes_])
        model = self._base().fit(X[labelled], y[labelled])
        base = _frozen(self._base(), model) if self.freeze_hyperparameters else self._base()
        probabilistic = hasattr(model, "predict_proba")
        pseudo = np.full(len(y), -1)
        self.n_pseudo_per_round_ = []
        for r in range(self.n_rounds):
            if not rows.size:
                break
            frac = self.fraction * (r + 1) / self.n_rounds
            keep, guess = self._select(_scores(model, X[rows]), model.classes_, prior, frac, probabilistic)
            new = np.full(len(y), -1)
            new[rows[keep]] = guess[keep]
            self.n_pseudo_per_round_.append(int(keep.sum()))
            if r > 0 and np.array_equal(new, pseudo):
                break
            pseudo = new
            train = labelled | (pseudo >= 0)
            model = clone(base).fit(X[train], np.where(labelled, y, pseudo)[train])
        self.pseudo_labels_ = pseudo[tgt]
        self.estimator_ = model
        self.n_features_in_ = X.shape[1]
        self.target_domains_ = np.unique(sd[tgt])
        return self

    def predict(self, X, sample_domain=None):
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(check_predict_input(self, X, sample_domain))

    def predict_proba(self, X, sample_domain=None):
        check_is_fitted(self, "estimator_")
        return _scores(self.estimator_, check_predict_input(self, X, sample_domain))
