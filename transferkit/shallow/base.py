"""Base classes for shallow methods and the one composer that turns them into classifiers.

A shallow method is a scikit-learn estimator in one of three roles:

``adapter``
    ``fit(X, y, sample_domain)`` then ``transform(X, sample_domain)``: maps rows into a space where
    source and target agree (CORAL, subspace alignment, TCA, optimal transport).
``reweighter``
    ``fit(X, y, sample_domain)`` then ``compute_weights(X, sample_domain)``: one weight per source row,
    large where the source looks like the target (KMM, KLIEP, density-ratio classifiers).
``classifier``
    a domain-aware classifier that needs every row (JDA's pseudo-labels, self-training).

:class:`DAClassifier` composes preprocessing steps, one adapter or reweighter, and a final
scikit-learn classifier. It hides the target labels once (:func:`~transferkit.domains.mask_target_labels`),
fits everything on all rows, fits the final classifier on the adapted, labelled source rows (with
the reweighter's weights), and predicts adapted target rows. Rows given without ``sample_domain``
at predict time are target rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from transferkit.domains import (
    check_columns,
    check_domain_data,
    check_features,
    mask_target_labels,
    predict_domains,
    remember_columns,
    source_mask,
    string_columns,
    target_mask,
)
from transferkit.errors import TransferkitError

__all__ = ["BaseAdapter", "BaseReweighter", "DAClassifier", "domain_aware"]


def base_classifier(estimator, owner: str):
    """A fresh copy of a method's inner classifier, given as a scikit-learn classifier or by a
    registered estimator name (``"logreg"``, as ``--set estimator=logreg`` passes it)."""
    if isinstance(estimator, str):
        from transferkit import registry

        return registry.build("estimator", estimator)
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise TransferkitError(
            f"{owner}'s estimator must be a classifier: a registered name (logreg, linear-svm-cv, ...; see "
            f"`transferkit methods`) or a scikit-learn classifier, got {estimator!r}."
        )
    return clone(estimator)


def domain_aware(estimator) -> bool:
    """Whether ``estimator.fit`` wants every row with ``sample_domain`` (a transferkit method)."""
    return getattr(estimator, "role", None) in {"adapter", "reweighter", "classifier", "preprocessing"}


def _fit_domains(
    X, y, sample_domain, *, allow_text: bool = False, require_target: bool = True, allow_nan: bool = False
):
    """Validate fit inputs of a standalone adapter or reweighter (labels are optional there)."""
    kw = {"min_source_classes": 1, "allow_text": allow_text, "require_target": require_target,
          "allow_nan": allow_nan}  # fmt: skip
    if y is None:
        if sample_domain is None:
            raise TransferkitError(
                "pass sample_domain (>= 0 source rows, < 0 target rows), or labels y with -1 for the "
                "target rows."
            )
        y = np.where(np.asarray(sample_domain) >= 0, 0, -1)
        X, _, sd = check_domain_data(X, y, sample_domain, **kw)
        return X, None, sd
    return check_domain_data(X, y, sample_domain, **kw)


class _DomainStep(BaseEstimator):
    """Shared fit-time bookkeeping: validated arrays, the domains seen, the predict-time rule."""

    role = "adapter"
    family = "alignment"
    accepts_text = False
    #: whether fitting needs target rows (adaptation does; a preprocessing step does not, so that a
    #: method that never sees the target can have its steps fitted without them)
    needs_target = True
    #: whether the step takes rows with missing values (NaN): an imputation step does
    accepts_missing = False

    def _validate_fit(self, X, y, sample_domain):
        if not self.accepts_text:
            remember_columns(self, X)
        X, y, sd = _fit_domains(
            X, y, sample_domain, allow_text=self.accepts_text, require_target=self.needs_target,
            allow_nan=self.accepts_missing,
        )  # fmt: skip
        if not self.accepts_text:
            X = check_features(X, allow_nd=False, allow_nan=self.accepts_missing)
        self.n_features_in_ = X.shape[1] if getattr(X, "ndim", 1) == 2 else 1
        self.source_domains_ = np.unique(sd[source_mask(sd)])
        self.target_domains_ = np.unique(sd[target_mask(sd)])
        return X, y, sd

    def _validate_apply(self, X, sample_domain):
        check_is_fitted(self, "target_domains_")
        if not self.accepts_text:
            check_columns(self, X)
        X = check_features(X, allow_nd=False, allow_text=self.accepts_text, allow_nan=self.accepts_missing)
        n_features = X.shape[1] if getattr(X, "ndim", 1) == 2 else 1
        if n_features != self.n_features_in_:
            raise TransferkitError(
                f"X has {n_features} features, but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}; every domain must have the same features."
            )
        sd = predict_domains(sample_domain, X.shape[0], self.target_domains_)
        return X, sd


class BaseAdapter(TransformerMixin, _DomainStep):
    """An adapter: ``fit`` on all rows, then ``transform`` rows of any known domain.

    Subclasses implement ``_fit(X, y, sample_domain)`` (``y`` has -1 on every target row) and
    ``_transform(X, sample_domain)``.
    """

    role = "adapter"

    def fit(self, X, y=None, sample_domain=None):
        X, y, sd = self._validate_fit(X, y, sample_domain)
        self._fit(X, y, sd)
        return self

    def transform(self, X, sample_domain=None):
        X, sd = self._validate_apply(X, sample_domain)
        return self._transform(X, sd)

    def fit_transform(self, X, y=None, sample_domain=None):
        return self.fit(X, y, sample_domain).transform(X, sample_domain)

    def _fit(self, X, y, sample_domain):  # pragma: no cover - abstract
        raise NotImplementedError

    def _transform(self, X, sample_domain):  # pragma: no cover - abstract
        raise NotImplementedError


class BaseReweighter(TransformerMixin, _DomainStep):
    """A reweighter: ``fit`` on all rows, then ``compute_weights`` gives one weight per row.

    Subclasses implement ``_fit`` and ``_compute_weights(X, sample_domain)``; weights of target rows
    are ignored by the composer.
    """

    role = "reweighter"
    family = "reweighting"

    def fit(self, X, y=None, sample_domain=None):
        X, y, sd = self._validate_fit(X, y, sample_domain)
        self._fit(X, y, sd)
        return self

    def compute_weights(self, X, sample_domain=None) -> np.ndarray:
        X, sd = self._validate_apply(X, sample_domain)
        w = np.asarray(self._compute_weights(X, sd), dtype=np.float64)
        if w.shape != (X.shape[0],) or not np.isfinite(w).all() or (w < 0).any():
            raise TransferkitError(f"{type(self).__name__} produced invalid weights.")
        return w

    def transform(self, X, sample_domain=None):
        """Reweighters leave the features unchanged."""
        X, _ = self._validate_apply(X, sample_domain)
        return X

    def fit_transform(self, X, y=None, sample_domain=None):
        """``fit`` then ``transform``, with ``sample_domain`` by position as the adapters take it."""
        return self.fit(X, y, sample_domain).transform(X, sample_domain)

    def _fit(self, X, y, sample_domain):  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute_weights(self, X, sample_domain):  # pragma: no cover - abstract
        raise NotImplementedError


def _default_estimator():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def _final_has(composer, name: str) -> bool:
    """Whether the final classifier (fitted, or as configured) offers method ``name``."""
    est = getattr(composer, "estimator_", None)
    if est is None:
        est = composer.estimator if composer.estimator is not None else _default_estimator()
    return hasattr(est, name)


def _feature_names(X):
    """A table's column names (a pandas DataFrame with string column names), else None."""
    return np.asarray(list(X.columns), dtype=object) if string_columns(X) else None


def _check_sample_weight(sample_weight, n: int):
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TransferkitError("sample_weight must hold numbers, one weight >= 0 per row.") from None
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
        raise TransferkitError(
            f"sample_weight must hold one finite weight >= 0 per row ({n}), got shape {w.shape}"
            + (" with negative or non-finite values" if w.shape == (n,) else "")
            + "."
        )
    return w


class DAClassifier(ClassifierMixin, BaseEstimator):
    """Preprocessing, then an adapter or reweighter, then a classifier trained on the source.

    Parameters
    ----------
    adapter : adapter or reweighter, optional
        A transferkit shallow method; None trains on the source as it is (source-only).
    estimator : classifier, optional
        Any scikit-learn classifier (default: ``LogisticRegression(max_iter=1000)``), or a
        domain-aware transferkit classifier, which then receives every row.
    preprocessing : sequence of transferkit preprocessing steps
        Applied in order before the adapter, each fitted on all rows.

    Examples
    --------
    >>> from transferkit.datasets import load_dataset
    >>> from transferkit.shallow.coral import CORAL
    >>> from transferkit.preprocessing import RowNormalize, Standardize
    >>> arr = load_dataset("office-caltech10").to_arrays(["caltech"], ["amazon"])
    >>> clf = DAClassifier(CORAL(), preprocessing=(RowNormalize("l1"), Standardize()))
    >>> clf = clf.fit(arr.X, arr.y, arr.sample_domain)
    >>> clf.predict(arr.X[arr.target]).shape
    (958,)
    """

    def __init__(self, adapter=None, estimator=None, preprocessing=()):
        self.adapter = adapter
        self.estimator = estimator
        self.preprocessing = preprocessing

    def _uses_target_labels(self) -> bool:
        parts = [self.adapter, self.estimator]
        return any(bool(getattr(p, "uses_target_labels", False)) for p in parts if p is not None)

    def _imputes(self) -> bool:
        """Whether the first preprocessing step fills missing values, so that rows may hold NaN."""
        steps = list(self.preprocessing or ())
        return bool(steps) and bool(getattr(steps[0], "accepts_missing", False))

    def _steps(self):
        return list(self.steps_) + ([self.adapter_] if self.adapter_ is not None else [])

    def fit(self, X, y, sample_domain=None, sample_weight=None):
        """Fit on every row; ``sample_weight`` (one weight >= 0 per row, optional) weighs the source
        rows in the final classifier's fit, multiplied by the reweighter's weights when there is
        one (the adapter and the preprocessing steps are fitted on all rows without weights)."""
        names = _feature_names(X)
        X, y, sd = check_domain_data(
            X, y, sample_domain, allow_text=True, allow_nd=False, allow_nan=self._imputes()
        )
        user_weights = _check_sample_weight(sample_weight, len(y))
        tgt = target_mask(sd)
        if self._uses_target_labels() and tgt.any() and (y[tgt] != -1).all():
            import warnings

            warnings.warn(
                f"every target row ({int(tgt.sum())}) has a label in y, and this method learns from the "
                "target labels it is given (semi-supervised), so it trains on all of them; give -1 for "
                "the labels a user would not have (transferkit.domains.few_shot_indices reveals a few "
                "per class).",
                UserWarning,
                stacklevel=2,
            )
        # the one place: nothing below sees a target label, unless the method is semi-supervised and
        # the caller deliberately gave a few (see transferkit.domains.few_shot_indices)
        y = mask_target_labels(y, sd, keep_given=self._uses_target_labels())
        self.target_domains_ = np.unique(sd[target_mask(sd)])
        self.source_domains_ = np.unique(sd[source_mask(sd)])
        self.steps_ = [clone(step) for step in (self.preprocessing or ())]
        self.adapter_ = clone(self.adapter) if self.adapter is not None else None
        Xt = X
        for step in self.steps_:
            Xt = step.fit_transform(Xt, y, sd)
        weights = None
        if self.adapter_ is not None:
            if self.adapter_.role == "reweighter":
                self.adapter_.fit(Xt, y, sd)
                weights = self.adapter_.compute_weights(Xt, sd)
            else:
                Xt = self.adapter_.fit_transform(Xt, y, sd)
        Xt = check_features(Xt, name="the features after preprocessing", allow_nd=False)
        self.estimator_ = clone(self.estimator) if self.estimator is not None else _default_estimator()
        if user_weights is not None:
            weights = user_weights if weights is None else weights * user_weights
        src = source_mask(sd)
        if weights is not None and not (weights[src] > 0).any():
            raise TransferkitError("every source row has weight 0 (sample_weight times the reweighter's).")
        # a reweighter's weights too: computed, they must be used (a domain-aware classifier without the
        # parameter dropped them; a plain one, such as nearest-neighbor, failed inside scikit-learn)
        if weights is not None and not has_fit_parameter(self.estimator_, "sample_weight"):
            given = (
                "sample_weight"
                if self.adapter_ is None or self.adapter_.role != "reweighter"
                else (f"the weights of {type(self.adapter_).__name__}")
            )
            raise TransferkitError(
                f"{type(self.estimator_).__name__} takes no sample weights, so {given} would be "
                "ignored; compose the reweighter with a classifier that takes them (e.g. logreg), or leave "
                "the weights out."
            )
        if domain_aware(self.estimator_):
            extra = {} if weights is None else {"sample_weight": weights}
            self.estimator_.fit(Xt, y, sample_domain=sd, **extra)
        elif weights is not None:
            self.estimator_.fit(Xt[src], y[src], sample_weight=weights[src])
        else:
            self.estimator_.fit(Xt[src], y[src])
        # the final classifier's classes: a semi-supervised one also learns revealed target classes
        self.classes_ = np.asarray(getattr(self.estimator_, "classes_", np.unique(y[src])))
        self.n_features_in_ = X.shape[1] if getattr(X, "ndim", 1) == 2 else 1
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def _apply(self, X, sample_domain):
        check_is_fitted(self, "estimator_")
        names, fitted = _feature_names(X), getattr(self, "feature_names_in_", None)
        if names is not None and fitted is not None and list(names) != list(fitted):
            same = sorted(names) == sorted(fitted)
            raise TransferkitError(
                "the columns of X are not the ones the model was fitted with"
                + (", in that order" if same else f": fitted with {list(fitted)}, got {list(names)}")
                + "; select them as in fit: X[model.feature_names_in_]."
            )
        X = check_features(X, allow_nd=False, allow_text=True, allow_nan=self._imputes())
        n_features = X.shape[1] if getattr(X, "ndim", 1) == 2 else 1
        if n_features != self.n_features_in_:
            raise TransferkitError(
                f"X has {n_features} features, but the model was fitted with {self.n_features_in_}; "
                "every domain must have the same features."
            )
        sd = predict_domains(sample_domain, X.shape[0], self.target_domains_)
        for step in self._steps():
            X = step.transform(X, sd)
        return X, sd

    def predict(self, X, sample_domain=None):
        Xt, sd = self._apply(X, sample_domain)
        if domain_aware(self.estimator_):
            return self.estimator_.predict(Xt, sample_domain=sd)
        return self.estimator_.predict(Xt)

    @available_if(lambda self: _final_has(self, "predict_proba"))
    def predict_proba(self, X, sample_domain=None):
        Xt, sd = self._apply(X, sample_domain)
        if domain_aware(self.estimator_):
            return self.estimator_.predict_proba(Xt, sample_domain=sd)
        return self.estimator_.predict_proba(Xt)

    @available_if(lambda self: _final_has(self, "decision_function"))
    def decision_function(self, X, sample_domain=None):
        """Scores per class from the final classifier (when it has a decision function)."""
        Xt, sd = self._apply(X, sample_domain)
        if domain_aware(self.estimator_):
            return self.estimator_.decision_function(Xt, sample_domain=sd)
        return self.estimator_.decision_function(Xt)

    def features(self, X, sample_domain=None) -> np.ndarray:
        """The rows as the final classifier sees them: preprocessed and adapted.

        Used by model-selection scorers that look at the representation (DEV) and by plots.
        """
        Xt, _ = self._apply(X, sample_domain)
        return Xt

    def score(self, X, y, sample_domain=None, sample_weight=None):
        """Accuracy on the rows whose label is known: rows labelled -1 (unlabelled target rows, as
        in a :class:`~transferkit.selection.DomainShuffleSplit` validation fold) are left out."""
        from sklearn.metrics import accuracy_score

        y = np.asarray(y)
        known = y != -1
        if not known.any():
            raise TransferkitError(
                "score needs labelled rows: every label of y is -1 (unknown); a label-free score comes "
                "from transferkit.selection.get_scorer (entropy, snd, mixval, ...)."
            )
        pred = self.predict(X, sample_domain)
        w = None if sample_weight is None else np.asarray(sample_weight)[known]
        return accuracy_score(y[known], pred[known], sample_weight=w)
