"""Every built-in data set: sample counts, shapes, label ranges and classes, read from the real files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_dataset

from transferkit.datasets import dataset_info, list_datasets, load_dataset

EXPECTED = {
    "office-caltech10": ({"amazon": 958, "caltech": 1123, "dslr": 157, "webcam": 295}, (800,), 10),
    "mnist-usps-jda": ({"mnist": 2000, "usps": 1800}, (256,), 10),
    "digits": ({"mnist": 10000, "usps": 2007, "mnist_m": 9001}, (3, 32, 32), 10),
    "amazon-reviews": ({"books": 2000, "dvd": 2000, "electronics": 2000, "kitchen": 2000}, (), 2),
}


def test_registry_of_datasets_is_complete():
    assert list_datasets() == sorted(EXPECTED)
    for d, (counts, _shape, n_classes) in EXPECTED.items():
        info = dataset_info(d)
        assert info.counts == counts and info.n_classes == n_classes


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_dataset_contents(dataset):
    require_dataset(dataset)
    counts, shape, n_classes = EXPECTED[dataset]
    ds = load_dataset(dataset)
    assert ds.counts() == counts
    assert len(ds.classes) == n_classes
    for d in ds.domains:
        X, y = np.asarray(ds.X[d]), ds.labels(d)
        assert X.shape[1:] == shape
        assert y.dtype.kind == "i" and y.min() == 0 and y.max() == n_classes - 1
        assert set(np.unique(y)) == set(range(n_classes)), f"{d} misses a class"
        if ds.modality == "text":
            assert all(isinstance(t, str) and len(t) > 20 for t in X[:50])
        else:
            assert np.isfinite(X.astype(np.float64)).all()


def test_office_caltech10_embedded_needs_no_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_DATA", str(tmp_path))  # an empty root: the embedded copy is used
    ds = load_dataset("office-caltech10")
    assert ds.counts()["caltech"] == 1123
    assert ds.X["amazon"].sum() > 0


def test_digits_common_shape_and_range():
    require_dataset("digits")
    ds = load_dataset("digits")
    for d in ds.domains:
        X = ds.X[d]
        assert X.dtype == np.float32 and X.min() >= 0.0 and X.max() <= 1.0
    # MNIST and USPS digits occupy the same centred 20x20 box (padding stays empty)
    for d, pad in (("mnist", 2), ("usps", 6)):
        X = ds.X[d]
        assert X[:, :, :pad].max() == 0 and X[:, :, -pad:].max() == 0
        assert np.allclose(X[:, 0], X[:, 1]) and np.allclose(X[:, 0], X[:, 2])  # grey x3


def test_amazon_reviews_balanced():
    require_dataset("amazon-reviews")
    ds = load_dataset("amazon-reviews")
    assert ds.classes == ("negative", "positive")
    for d in ds.domains:
        assert np.bincount(ds.labels(d)).tolist() == [1000, 1000]
