"""Fine-tuning a linear model: train on the source, then continue on the few labelled target rows."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import check_domain_data, remember_columns, source_mask, target_mask
from transferkit.errors import TransferkitError
from transferkit.shallow.regularized_transfer import check_predict_input, check_target_classes


class FineTunedLinear(ClassifierMixin, BaseEstimator):
    r"""Warm-started fine-tuning of a linear logistic model on the labelled target rows.

    Stage 1 trains ``SGDClassifier(loss="log_loss")`` on the labelled source (``source_epochs``
    passes, L2 strength ``alpha``; a source model with moderate weights is a starting point a few
    target steps can still move, where a nearly separable source drives unregularized weights to
    very large values). Stage 2 continues from those weights with ``n_epochs`` passes of
    plain SGD over the labelled target rows (one row at a time, no weight decay) at a constant
    learning rate ``eta0``; for each one-vs-rest score :math:`w_c^\top x + b_c`,

    .. math::

        w_c \leftarrow w_c - \eta_0\,(\sigma(w_c^\top x + b_c) - [y = c])\,x, \qquad
        b_c \leftarrow b_c - \eta_0\,(\sigma(w_c^\top x + b_c) - [y = c]).

    The source weights are the starting point and the number of target steps (``n_epochs`` times
    the number of labelled target rows, at step ``eta0``) is the only thing that keeps the model near
    them: *implicit* regularization by early stopping. With more epochs it drifts to the target-only
    solution, whatever the source said.
    :class:`~transferkit.shallow.regularized_transfer.RegularizedTransferLR` (L2-SP) instead writes
    the pull towards the source as an explicit penalty
    :math:`\frac{\alpha}{2}\|w - w_0\|^2` and solves to convergence, so its answer does not depend
    on how long one trains. ``n_epochs=0`` returns the source model. Target rows are shuffled each
    epoch with ``random_state``.

    Needs a few labelled target rows: target rows whose label is >= 0 (the few-shot labels a user
    gives, ``--target-labels K``); every other target row is ignored.

    Reference: Yosinski et al., "How transferable are features in deep neural networks?", NIPS 2014
    (fine-tuning as transfer); Li, Grandvalet, Davoine, ICML 2018 (the comparison with L2-SP).

    Parameters
    ----------
    n_epochs : int
        Passes over the labelled target rows (0: the source model).
    eta0 : float
        The constant learning rate of the target passes.
    alpha : float
        L2 strength of the source training (scikit-learn's ``SGDClassifier(alpha=...)``).
    source_epochs : int
        Passes over the source rows.
    random_state : int or None
        Seed of the source SGD and of the target rows' order.

    Attributes
    ----------
    model_ : SGDClassifier
        The fine-tuned model.
    source_coef_, source_intercept_ : ndarray
        The weights after the source stage (the starting point).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(300, 2)); ys = (Xs[:, 0] > 0).astype(int)
    >>> Xt = rng.normal(size=(300, 2)); yt = (Xt[:, 0] + 0.6 * Xt[:, 1] > 0).astype(int)
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(300, int), -np.ones(300, int)]
    >>> y = np.r_[ys, np.where(np.arange(300) < 10, yt, -1)]
    >>> clf = FineTunedLinear().fit(X, y, sd)
    >>> bool(np.mean(clf.predict(Xt[10:]) == yt[10:]) > 0.9)  # source-only 0.85, target-only 0.82
    True
    """

    role = "classifier"
    family = "parameter"
    uses_target_labels = True  # keeps the target labels the caller revealed (few-shot)
    needs_target_labels = True  # a run needs --target-labels K
    requires_target_labels = False  # not an oracle: only the revealed rows are read
    search_space = {"n_epochs": (1, 5, 20)}

    def __init__(
        self,
        n_epochs: int = 20,
        eta0: float = 0.1,
        alpha: float = 1e-2,
        source_epochs: int = 20,
        random_state: int | None = 0,
    ):
        self.n_epochs = n_epochs
        self.eta0 = eta0
        self.alpha = alpha
        self.source_epochs = source_epochs
        self.random_state = random_state

    def fit(self, X, y, sample_domain=None):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDClassifier

        remember_columns(self, X)

        X, y, sd = check_domain_data(X, y, sample_domain, allow_nd=False)
        if self.n_epochs < 0 or not self.eta0 > 0 or self.alpha < 0 or self.source_epochs < 1:
            raise TransferkitError(
                "FineTunedLinear needs n_epochs >= 0, eta0 > 0, alpha >= 0 and source_epochs >= 1."
            )
        src = source_mask(sd)
        tgt = target_mask(sd) & (y >= 0)
        if not tgt.any():
            raise TransferkitError(
                "no target rows with a label: FineTunedLinear needs a few labelled target samples (target "
                "rows labelled >= 0); run with --target-labels K."
            )
        X = np.asarray(X, dtype=np.float64)
        model = SGDClassifier(loss="log_loss", alpha=self.alpha, max_iter=self.source_epochs, tol=None,
                              random_state=self.random_state)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[src], y[src])
        self.source_coef_, self.source_intercept_ = model.coef_.copy(), model.intercept_.copy()
        check_target_classes(y[tgt], model.classes_, "FineTunedLinear")
        # plain constant-step SGD from the source weights; rows are shuffled here, once per epoch
        model.set_params(learning_rate="constant", eta0=self.eta0, alpha=0.0, shuffle=False)
        rng = np.random.default_rng(self.random_state)
        rows = np.flatnonzero(tgt)
        for _ in range(self.n_epochs):
            order = rng.permutation(rows)
            model.partial_fit(X[order], y[order])
        self.model_ = model
        self.classes_ = model.classes_
        self.n_features_in_ = X.shape[1]
        self.target_domains_ = np.unique(sd[target_mask(sd)])
        return self

    def decision_function(self, X, sample_domain=None):
        check_is_fitted(self, "model_")
        return self.model_.decision_function(check_predict_input(self, X, sample_domain))

    def predict_proba(self, X, sample_domain=None):
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(check_predict_input(self, X, sample_domain))

    def predict(self, X, sample_domain=None):
        check_is_fitted(self, "model_")
        return self.model_.predict(check_predict_input(self, X, sample_domain))
