"""The black box of BBSE and label-shift: a logistic regression whose C is chosen by out-of-fold
log-loss (a fixed C=0.1 gave probabilities flat enough for label-shift's posterior to over-correct)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from transferkit.diagnostics import LOGREG_CS, bbse, calibrated_logreg


def _blobs(n=90, gap=5.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return rng.normal(size=(n, 4)) + gap * np.eye(4)[y], y


def test_the_chosen_C_is_the_one_of_lowest_out_of_fold_log_loss():
    for gap in (0.5, 5.0):  # overlapping classes, and classes far apart
        X, y = _blobs(gap=gap)
        folds = StratifiedKFold(3, shuffle=True, random_state=0)
        losses = []
        for c in LOGREG_CS:  # naive: scikit-learn's cross_val_predict and log_loss
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
            losses.append(log_loss(y, cross_val_predict(model, X, y, cv=folds, method="predict_proba")))
        chosen = calibrated_logreg(X, y, random_state=0)[-1].C
        assert chosen == LOGREG_CS[int(np.argmin(losses))]
    assert chosen > 0.1  # far apart: C=0.1 would be too flat


def test_a_class_of_one_row_keeps_the_old_default_and_bbse_uses_the_choice():
    X, y = _blobs()
    y = y.copy()
    y[0] = 3  # a class of one row: no fold can hold it out
    assert calibrated_logreg(X, y)[-1].C == 0.1
    X, y = _blobs(n=300)
    keep = (y != 0) | (np.arange(len(y)) % 5 == 0)  # the target: class 0 five times rarer
    classes, source, target = bbse(X, y, X[keep])
    assert np.allclose(source, 1 / 3) and target[0] < 0.12 and abs(target[1] - target[2]) < 0.05


def test_a_source_too_small_for_two_halves_and_columns_that_are_not_a_dict_are_clear_errors():
    import pytest

    from transferkit.errors import TransferkitError
    from transferkit.experiment import RunSpec
    from transferkit.shallow.label_shift import LabelShift

    X = np.random.default_rng(0).normal(size=(20, 3))
    sd = np.r_[np.zeros(10, int), -np.ones(10, int)]
    y = np.r_[[0] * 9 + [1], -np.ones(10, int)]  # one row of class 1: a ValueError inside scikit-learn
    with pytest.raises(TransferkitError, match="that half holds one class"):
        LabelShift().fit(X, y, sd)
    with pytest.raises(TransferkitError, match="columns must be a dict"):
        RunSpec(columns="label_column=outcome")
    assert RunSpec(columns=None).columns == {}
