"""Audit of the preprocessing steps and of how a run composes them: constant features, the replay
of fitted steps, one-line errors for bad settings or misordered steps, and --target-labels given to a
method that takes no target label."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from transferkit import registry
from transferkit.domains import DomainDataset
from transferkit.errors import TransferkitError
from transferkit.preprocessing import SharedPCA, Standardize, Tfidf, export_steps, replay_steps


def _table(n: int = 30, seed: int = 0):
    """Two domains of 3 classes; column 4 is 0.1 on every target row (constant there only)."""
    rng = np.random.default_rng(seed)
    y = np.arange(2 * n) % 3
    X = rng.normal(size=(2 * n, 4)) + y[:, None]
    sd = np.r_[np.zeros(n, np.int64), -np.ones(n, np.int64)]
    X[n:] += 1.0
    const = np.where(sd < 0, 0.1, rng.normal(size=2 * n))
    return np.c_[X, const], np.where(sd < 0, -1, y), sd, y


def test_a_feature_constant_in_one_domain_standardizes_to_zero_not_to_rounding_noise():
    X, y, sd, _ = _table()
    assert X[sd < 0, 4].std() > 0  # 0.1 is not exact in binary: its computed spread is about 1e-17
    Z = Standardize().fit_transform(X, y, sd)
    assert np.abs(Z[sd < 0, 4]).max() < 1e-12  # was -1 on every target row (rounding / rounding)
    assert np.allclose(Z[sd >= 0].std(axis=0), 1.0)  # the varying columns are scaled as before
    for with_mean in (True, False):  # a source-constant column with the source's statistics
        Xs = X.copy()
        Xs[sd >= 0, 4] = 1e5 + 0.1
        Z = Standardize(per_domain=False, with_mean=with_mean).fit_transform(Xs, y, sd)
        expected = 0.0 if with_mean else 1e5 + 0.1
        assert np.allclose(Z[sd >= 0, 4], expected, atol=1e-6), with_mean


def test_whitened_pca_with_a_component_without_variance_replays_as_trained():
    X, y, sd, _ = _table()
    X = np.c_[X, np.full(len(X), 5.0)]  # a column constant everywhere: a component with no variance
    steps = [Standardize(), SharedPCA(n_components=6, whiten=True)]
    Z = X
    for step in steps:
        Z = step.fit(Z, y, sd).transform(Z, sd)
    assert np.isfinite(Z).all()
    records = export_steps(steps, ["standardize", "pca:n_components=6,whiten=true"], {0: "a", -1: "b"})
    for d, name in ((0, "a"), (-1, "b")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no division by zero
            R = replay_steps(records, X[sd == d], np.full(int((sd == d).sum()), name, dtype=object))
        assert np.isfinite(R).all() and np.allclose(R, Z[sd == d]), name  # was NaN in one column


def test_pca_takes_a_numpy_count_of_components():
    X, y, sd, _ = _table()
    assert SharedPCA(n_components=np.int64(50)).fit_transform(X, y, sd).shape == (len(X), 5)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("tfidf:max_features=0", "tfidf's max_features (words kept) must be a whole number >= 1, got 0"),
        ("tfidf:ngram_max=0", "tfidf's ngram_max (longest word sequence) must be a whole number >= 1"),
        ("tfidf:min_df=-1", "tfidf's min_df (texts a word must appear in) must be a whole number >= 1"),
        ("sentence-embedding:pooling=mean", "unknown pooling 'mean'"),
    ],
)
def test_bad_text_step_settings_are_refused_when_the_step_is_built(spec, message):
    # they were refused only at fit, after the data were read, tfidf's as "found no vocabulary"
    name, settings = registry.parse_spec(spec)
    with pytest.raises(TransferkitError) as info:
        registry.build("preprocessing", name, settings)
    assert message in str(info.value) and "vocabulary" not in str(info.value)
    assert "\n" not in str(info.value)


def test_a_numeric_step_given_texts_says_to_turn_them_into_features_first():
    from transferkit.shallow.base import DAClassifier

    texts = np.array(["a good book", "a bad film", "great read", "dull plot"] * 3)
    y = np.r_[np.arange(6) % 2, -np.ones(6, np.int64)]
    sd = np.r_[np.zeros(6, np.int64), -np.ones(6, np.int64)]
    clf = DAClassifier(preprocessing=(Standardize(), Tfidf(min_df=1)))
    with pytest.raises(TransferkitError, match=r"standardize step takes numeric features, but these rows are "
                       r"texts.*--preprocess tfidf standardize"):  # fmt: skip
        clf.fit(texts, y, sd)
    clf = DAClassifier(preprocessing=(Tfidf(min_df=1), Standardize()))  # the right order works
    assert clf.fit(texts, y, sd).predict(texts[6:], sd[6:]).shape == (6,)


def _dataset():
    X, _, sd, y = _table(n=30)
    return DomainDataset.from_arrays(X, y, sd, domain_names={0: "a", -1: "b"}, classes=("x", "y", "z"))


def test_target_labels_given_to_a_method_that_takes_none_are_said_to_reach_nothing():
    from transferkit.experiment import RunSpec, run

    ds = _dataset()
    base = dict(dataset="toy", sources=("a",), targets=("b",), estimator="logreg", target_labels=2,
                preprocess=("standardize",))  # fmt: skip
    with pytest.warns(UserWarning, match="method 'coral' learns from no target label"):
        rec = run(RunSpec(method="coral", **base), dataset=ds)
    assert rec["n_target_labels_revealed"] == 6  # still left out of its accuracy, as for the others
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*learns from no target label")
        run(RunSpec(method="self-training", **base), dataset=ds)  # it learns from them: no warning


def test_tfidf_refuses_a_dense_matrix_larger_than_half_the_memory(monkeypatch):
    # the methods take dense rows: a large max_features built the matrix without a word, then swapped
    from transferkit.shallow import _kernels

    texts = np.array(["good film", "bad film", "good plot", "bad plot"], dtype=object)
    sd = np.array([0, 0, -1, -1])
    step = Tfidf(min_df=1).fit(texts, np.array([1, 0, -1, -1]), sd)
    assert step.transform(texts, sd).shape == (4, 4)
    monkeypatch.setattr(_kernels, "_physical_memory", lambda: 200)  # 4 x 4 x 8 bytes > half of it
    with pytest.raises(TransferkitError, match="dense 4 x 4 matrix .* lower max_features"):
        step.transform(texts, sd)
