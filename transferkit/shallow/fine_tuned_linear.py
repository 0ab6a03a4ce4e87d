"""Fine-tuning a linear model: train on the source, then continue on the few labelled target rows."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from transferkit.domains import check_domain_data, check_features, source_mask, target_mask
from transferkit.errors import TransferkitError


class FineTunedLinear(ClassifierMixin, BaseEstimator):
    r"""Warm-started fine-tuning of a linear logistic model on the labelled target rows.

    Stage 1 trains ``SGDClassifier(loss="log_loss")`` on the labelled source (``source_epochs``
    passes, L2 strength ``alpha``; a source model with moderate weights is a starting point a few
    target steps can still move, where a nearly separable source drives unregularized weights to
    very large values). Stage 2 continues from those weights with ``n_epochs`` passes of
    plain SGD over the labelled target rows at a constant learning rate ``eta0``:

    .. math:: w \leftarrow w - \eta_0 \nabla \ell_t(w)

    The source weights are the starting point and the number of target steps is the only thing that
    keeps the model near them: *implicit* regularization by early stopping, where
    :class:`~transferkit.shallow.regularized_transfer.RegularizedTransferLR` (L2-SP) writes the pull
    towards the source as an explicit penalty. Target rows are shuffled with ``random_state``.

    Needs a few labelled target rows (target rows labelled >= 0; ``--target-labels K``).

    Reference: Yosinski et al., "How transferable are features in deep neural networks?", NIPS 2014
    (fine-tuning as transfer); Li, Grandvalet, Davoine, ICML 2018 (the comparison with L2-SP).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(300, 2)); ys = (Xs[:, 0] > 0).astype(int)
    >>> Xt = rng.normal(size=(300, 2)); yt = (Xt[:, 0] + 0.6 * Xt[:, 1] > 0).astype(int)
    >>> X = np.vstack([Xs, Xt]); sd = np.r_[np.zeros(300, int), -np.ones(300, int)]
    >>> y = np.r_[ys, np.where(np.arange(300) < 10, yt, -1)]
    >>> clf = FineTunedLinear().fit(X, y, sd)
    >>> clf.predict(Xt[:3]).shape
    (3,)
    """

    role = "classifier"
    family = "parameter"
    uses_target_labels = True
    needs_target_labels = True
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

        X, y, sd = check_domain_data(X, y, sample_domain, require_target=False, allow_nd=False)
        if self.n_epochs < 0 or self.eta0 <= 0:
            raise TransferkitError("n_epochs must be >= 0 and eta0 > 0.")
        src = source_mask(sd)
        tgt = target_mask(sd) & (y >= 0)
        if not tgt.any():
            raise TransferkitError(
                "no target rows with a label: FineTunedLinear needs a few labelled target samples; run "
                "with --target-labels K."
            )
        X = np.asarray(X, dtype=np.float64)
        model = SGDClassifier(loss="log_loss", alpha=self.alpha, max_iter=self.source_epochs, tol=None,
                              random_state=self.random_state)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[src], y[src])
        self.source_coef_ = model.coef_.copy()
        if not np.isin(y[tgt], model.classes_).all():
            raise TransferkitError("the target has labels the source does not; the label sets must match.")
        model.set_params(learning_rate="constant", eta0=self.eta0, alpha=0.0)
        rng = np.random.default_rng(self.random_state)
        rows = np.flatnonzero(tgt)
        for _ in range(self.n_epochs):
            order = rng.permutation(rows)
            model.partial_fit(X[order], y[order])
        self.model_ = model
        self.classes_ = model.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X, sample_domain=None):
        check_is_fitted(self, "model_")
        return self.model_.decision_function(check_features(X, allow_nd=False))

    def predict_proba(self, X, sample_domain=None):
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(check_features(X, allow_nd=False))

    def predict(self, X, sample_domain=None):
        check_is_fitted(self, "model_")
        return self.model_.predict(check_features(X, allow_nd=False))
