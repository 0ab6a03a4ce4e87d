"""Bad input gets a clear error that says what was wrong, never a traceback from deep inside numpy."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.domains import DomainDataset
from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.coral import CORAL


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = np.r_[np.arange(10) % 2, -np.ones(10, int)]
    sd = np.r_[np.zeros(10, int), -np.ones(10, int)]
    return X, y, sd


def test_nan_values():
    X, y, sd = _data()
    X[3, 1] = np.nan
    with pytest.raises(TransferkitError, match="NaN.*row 3, feature 1"):
        DAClassifier(CORAL()).fit(X, y, sd)


def test_mismatched_feature_sizes():
    with pytest.raises(TransferkitError, match="different feature shapes"):
        DomainDataset(
            "bad",
            {"a": np.zeros((3, 4)), "b": np.zeros((3, 5))},
            {"a": np.zeros(3, int), "b": np.zeros(3, int)},
            classes=("c",),
        )
    X, y, sd = _data()
    clf = DAClassifier(CORAL()).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="X has 4 features.*fitted with 3"):
        clf.predict(np.zeros((2, 4)))


def test_empty_domain():
    with pytest.raises(TransferkitError, match="domain 'b' is empty"):
        DomainDataset(
            "bad",
            {"a": np.zeros((3, 2)), "b": np.zeros((0, 2))},
            {"a": np.zeros(3, int), "b": np.zeros(0, int)},
            classes=("c",),
        )


@pytest.mark.parametrize("labels", [np.array([0.5] * 10 + [-1] * 10), np.array(["a"] * 10 + ["b"] * 10)])
def test_labels_not_integers(labels):
    X, _, sd = _data()
    with pytest.raises(TransferkitError, match="labels must be integers"):
        DAClassifier(CORAL()).fit(X, labels, sd)


def test_no_target_rows_and_single_source_class():
    X, y, sd = _data()
    with pytest.raises(TransferkitError, match="no target rows"):
        DAClassifier(CORAL()).fit(X[:10], y[:10], sd[:10])
    y1 = y.copy()
    y1[:10] = 0
    with pytest.raises(TransferkitError, match="1 class"):
        DAClassifier(CORAL()).fit(X, y1, sd)


def test_unknown_domain_suggests_the_closest():
    from transferkit.datasets import load_dataset

    ds = load_dataset("office-caltech10")
    with pytest.raises(TransferkitError, match="Did you mean 'amazon'"):
        ds.to_arrays(["amazn"], ["webcam"])


def test_repeated_names_each_value_given_more_than_once_in_order():
    from transferkit.errors import repeated

    assert repeated(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    assert repeated([0, 1, 2]) == [] and repeated([]) == []
