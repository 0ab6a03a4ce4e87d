"""Label-shift correction by black-box shift estimation (Lipton, Wang and Smola, ICML 2018)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline as _Pipeline
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from transferkit.domains import check_domain_data, remember_columns, source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow.base import base_classifier
from transferkit.shallow.regularized_transfer import check_predict_input
from transferkit.shallow.self_training import _scores


class LabelShift(ClassifierMixin, BaseEstimator):
    r"""Correct a change of the class proportions: weigh each class by its estimated p_t(y)/p_s(y).

    Under label shift the classes keep their look, :math:`p_t(x \mid y) = p_s(x \mid y)`, and only
    their proportions change (a disease more frequent at the target hospital). Black-box shift
    estimation (BBSE) trains ``estimator`` on half of the source rows, measures on the other half
    the joint distribution :math:`C_{ij} = P_s(\hat y = i, y = j)` of its predictions and the
    labels, and its prediction rates on the target, :math:`\mu_i = P_t(\hat y = i)`. Since
    :math:`\mu = C w` for the class weights :math:`w_j = p_t(j)/p_s(j)`, it solves that linear
    system (least squares, clipped at 0); the classifier needs to be accurate enough that
    :math:`C` is well conditioned, not calibrated. Then ``correction``:

    * ``"reweight"`` (default; the paper's importance-weighted training) fits ``estimator`` on every
      source row with sample weight :math:`w_{y_i}`, which needs an estimator that takes
      ``sample_weight``;
    * ``"posterior"`` fits it without weights and moves its class probabilities,
      :math:`p_t(y \mid x) \propto w_y \, p_s(y \mid x)` (Saerens et al., 2002), which needs
      ``predict_proba`` (and is exact for calibrated probabilities).

    With the default estimator the estimate is the one ``transferkit diagnose`` reports
    (:func:`transferkit.diagnostics.label_shift`, the same split for the same ``random_state``):
    ``class_weights_``, ``source_prior_`` and ``target_prior_`` hold it. No target label is read.
    Nothing corrects a change of
    :math:`p(x \mid y)` here: for a covariate shift use a reweighter (kmm, density-ratio), for
    both a feature alignment first.

    Reference: Z. Lipton, Y.-X. Wang, A. Smola, "Detecting and correcting for label shift with black
    box predictors", ICML 2018; M. Saerens, P. Latinne, C. Decaestecker, "Adjusting the outputs of a
    classifier to new a priori probabilities", Neural Computation 2002.

    Parameters
    ----------
    estimator : classifier, optional
        The black box and the final classifier: a scikit-learn classifier or a registered estimator
        name (default: logistic regression on standardized features, its C chosen by the source's
        out-of-fold log-loss: :func:`transferkit.diagnostics.calibrated_logreg`, diagnose's; a fixed small
        C gave probabilities flat enough for ``posterior`` to over-correct).
    correction : {"reweight", "posterior"}
        How the estimated weights correct the classifier.
    random_state : int or None
        The split of the source rows into the halves BBSE trains and measures on.

    Attributes
    ----------
    class_weights_ : ndarray
        :math:`\hat p_t(y) / p_s(y)` per class of ``classes_``.
    source_prior_, target_prior_ : ndarray
        The source's class proportions and the target's estimated ones.
    estimator_ : classifier
        The final classifier.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ys = np.repeat([0, 1], 300); yt = np.r_[np.zeros(540, int), np.ones(60, int)]  # 50/50 -> 90/10
    >>> Xs = rng.normal(size=(600, 2)) + 1.2 * ys[:, None]; Xt = rng.normal(size=(600, 2)) + 1.2 * yt[:, None]
    >>> X = np.vstack([Xs, Xt])
    >>> sd = np.r_[np.zeros(600, int), -np.ones(600, int)]
    >>> clf = LabelShift().fit(X, np.r_[ys, -np.ones(600, int)], sd)
    >>> clf.target_prior_.round(1).tolist()
    [0.9, 0.1]
    >>> bool(np.mean(clf.predict(X[600:]) == yt) > 0.88)  # source-only: 0.80
    True
    """

    role = "classifier"
    family = "reweighting"
    uses_target_labels = False
    needs_target_labels = False
    requires_target_labels = False

    def __init__(
        self,
        estimator=None,
        correction: Literal["reweight", "posterior"] = "reweight",
        random_state: int | None = 0,
    ):
        self.estimator = estimator
        self.correction = correction
        self.random_state = random_state

    def _base(self, Xs, ys):
        if self.estimator is None:
            from transferkit.diagnostics import calibrated_logreg

            return calibrated_logreg(Xs, ys, self.random_state)
        return base_classifier(self.estimator, type(self).__name__)

    def fit(self, X, y, sample_domain=None):
        from transferkit.diagnostics import bbse

        remember_columns(self, X)
        X, y, sd = check_domain_data(X, y, sample_domain, allow_nd=False)
        if self.correction not in ("reweight", "posterior"):
            raise TransferkitError(
                f"label-shift's correction must be 'reweight' or 'posterior', got {self.correction!r}."
            )
        src, tgt = source_mask(sd), target_mask(sd)
        Xs, ys = X[src], y[src]  # the target's labels are never read
        base = self._base(Xs, ys)
        if self.correction == "reweight" and not _takes_weights(base):
            raise TransferkitError(
                f"label-shift's correction 'reweight' fits the estimator with sample weights, which "
                f"{type(base).__name__} does not take; choose another estimator or correction=posterior."
            )
        if self.correction == "posterior" and not hasattr(base, "predict_proba"):
            raise TransferkitError(
                "label-shift's correction 'posterior' moves class probabilities, which "
                f"{type(base).__name__} does not give; choose an estimator with predict_proba (logreg) or "
                "correction=reweight."
            )
        classes, source_prior, target_prior = bbse(
            Xs, ys, X[tgt], estimator=base, random_state=self.random_state
        )
        self.classes_ = classes
        self.source_prior_, self.target_prior_ = source_prior, target_prior
        self.class_weights_ = target_prior / np.clip(source_prior, 1e-12, None)
        index = np.searchsorted(classes, ys)
        if self.correction == "reweight":
            weights = self.class_weights_[index]
            if not (weights > 0).any():
                raise TransferkitError("label-shift estimated a weight of 0 for every source class.")
            if isinstance(base, _Pipeline):  # the last step takes the weights
                kw = {f"{base.steps[-1][0]}__sample_weight": weights}
            else:
                kw = {"sample_weight": weights}
            self.estimator_ = base.fit(Xs, ys, **kw)
        else:
            self.estimator_ = base.fit(Xs, ys)
        self.n_features_in_ = X.shape[1]
        self.target_domains_ = np.unique(sd[tgt])
        return self

    def predict_proba(self, X, sample_domain=None):
        check_is_fitted(self, "estimator_")
        p = _scores(self.estimator_, check_predict_input(self, X, sample_domain))
        if self.correction == "posterior":
            p = p * self.class_weights_[np.searchsorted(self.classes_, self.estimator_.classes_)]
            total = p.sum(axis=1, keepdims=True)
            p = np.divide(p, total, out=np.full_like(p, 1.0 / p.shape[1]), where=total > 0)
        return p

    def predict(self, X, sample_domain=None):
        check_is_fitted(self, "estimator_")
        if self.correction == "reweight":
            return self.estimator_.predict(check_predict_input(self, X, sample_domain))
        return self.estimator_.classes_[self.predict_proba(X, sample_domain).argmax(axis=1)]


def _takes_weights(estimator) -> bool:
    if isinstance(estimator, _Pipeline):
        return has_fit_parameter(estimator.steps[-1][1], "sample_weight")
    return has_fit_parameter(estimator, "sample_weight")
