"""The one data convention, and the proof that an unsupervised run never reads a target label."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.domains import (
    DomainDataset,
    check_domain_data,
    few_shot_indices,
    mask_target_labels,
    predict_domains,
)
from transferkit.errors import TransferkitError
from transferkit.experiment import RunSpec, evaluate, fit_predict
from transferkit.shallow.base import BaseAdapter, DAClassifier


class PoisonedLabels:
    """Stands in for a target's labels: converting, indexing or iterating it fails the test."""

    def __init__(self, values):
        self.shape = np.shape(values)

    def _fail(self, *args, **kwargs):
        raise AssertionError("a target label was read")

    __array__ = __getitem__ = __iter__ = __len__ = tolist = _fail


def _toy(seed=0):
    rng = np.random.default_rng(seed)
    Xa, Xb = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 1
    ya, yb = np.arange(40) % 2, np.arange(30) % 2
    return DomainDataset("toy", {"a": Xa, "b": Xb}, {"a": ya, "b": yb}, classes=("x", "y"))


def test_to_arrays_convention_and_round_trip():
    ds = _toy()
    arr = ds.to_arrays(["a"], ["b"])
    assert arr.sample_domain.tolist() == [0] * 40 + [-1] * 30
    assert (arr.y[arr.target] == -1).all() and (arr.y[arr.source] == ds.y["a"]).all()
    back = DomainDataset.from_arrays(arr.X, arr.y, arr.sample_domain, domain_names=arr.domain_names)
    assert back.counts() == {"a": 40, "b": 30}
    assert (back.y["b"] == -1).all()


def test_several_sources_and_targets():
    ds = DomainDataset(
        "multi",
        {d: np.full((n, 2), i, float) for i, (d, n) in enumerate([("a", 3), ("b", 4), ("c", 2), ("d", 5)])},
        {d: np.zeros(n, int) for d, n in [("a", 3), ("b", 4), ("c", 2), ("d", 5)]},
        classes=("only",),
    )
    arr = ds.to_arrays(["a", "b"], ["c", "d"])
    assert arr.sample_domain.tolist() == [0] * 3 + [1] * 4 + [-1] * 2 + [-2] * 5
    assert arr.domain_names == {0: "a", 1: "b", -1: "c", -2: "d"}
    with pytest.raises(TransferkitError, match="both source and target"):
        ds.to_arrays(["a"], ["a"])


def test_mask_target_labels_never_reads_target_entries():
    y = np.array([0, 1, 1, 0, 1])
    sd = np.array([0, 0, -1, -1, -1])
    assert mask_target_labels(y, sd).tolist() == [0, 1, -1, -1, -1]


def test_full_run_path_never_reads_target_labels():
    ds = _toy()
    truth = ds.y["b"].copy()
    ds.y["b"] = PoisonedLabels(truth)  # reading any of it fails the test
    spec = RunSpec("toy", ("a",), ("b",), "coral", preprocess=("standardize",))
    preds, revealed = fit_predict(spec, ds, spec.preprocess)  # must not touch ds.y["b"]
    ds.y["b"] = truth
    assert set(evaluate(preds, ds, revealed)) == {"b"} and len(revealed["b"]) == 0


def test_oracle_is_the_only_method_that_reads_target_labels():
    ds = _toy()
    ds.y["b"] = PoisonedLabels(ds.y["b"])
    spec = RunSpec("toy", ("a",), ("b",), "target-only", preprocess=())
    with pytest.raises(AssertionError, match="target label was read"):
        fit_predict(spec, ds, ())


class SpyAdapter(BaseAdapter):
    """Records the labels an adapter is given."""

    def _fit(self, X, y, sample_domain):
        SpyAdapter.seen = (y.copy(), sample_domain.copy())

    def _transform(self, X, sample_domain):
        return X


def test_composer_hides_target_labels_from_the_adapter():
    ds = _toy()
    X = np.vstack([ds.X["a"], ds.X["b"]])
    y = np.r_[ds.y["a"], ds.y["b"]]  # real target labels passed in by mistake
    sd = np.r_[np.zeros(40, int), -np.ones(30, int)]
    DAClassifier(SpyAdapter()).fit(X, y, sd)
    seen_y, seen_sd = SpyAdapter.seen
    assert (seen_y[seen_sd < 0] == -1).all()
    assert (seen_y[seen_sd >= 0] == ds.y["a"]).all()


def test_sample_domain_inferred_from_missing_labels():
    X = np.zeros((4, 2))
    _, _, sd = check_domain_data(X, np.array([0, 1, -1, -1]), None)
    assert sd.tolist() == [0, 0, -1, -1]


def test_rows_without_domain_are_target_rows():
    assert predict_domains(None, 3, [-1]).tolist() == [-1, -1, -1]
    assert predict_domains(None, 2, [-2]).tolist() == [-2, -2]
    with pytest.raises(TransferkitError, match="several target domains"):
        predict_domains(None, 2, [-1, -2])


def test_few_shot_indices_per_class_and_errors():
    labels = np.array([0] * 5 + [1] * 4 + [2] * 3)
    idx = few_shot_indices(labels, 2, random_state=0)
    assert np.bincount(labels[idx]).tolist() == [2, 2, 2]
    assert (few_shot_indices(labels, 2, random_state=0) == idx).all()
    with pytest.raises(TransferkitError, match="class 2 has 3 target samples"):
        few_shot_indices(labels, 3)


def test_revealed_target_labels_are_hidden_from_unsupervised_methods_and_not_scored():
    ds = _toy()
    spec = RunSpec("toy", ("a",), ("b",), "coral", preprocess=(), target_labels=2)
    preds, revealed = fit_predict(spec, ds, ())
    assert len(revealed["b"]) == 4
    unsup, _ = fit_predict(RunSpec("toy", ("a",), ("b",), "coral", preprocess=()), ds, ())
    assert (preds["b"] == unsup["b"]).all()  # CORAL is unsupervised: the revealed labels are masked
    assert evaluate(preds, ds, revealed)["b"] == pytest.approx(
        100 * np.mean(~(preds["b"] != ds.y["b"])[np.setdiff1d(np.arange(30), revealed["b"])])
    )
