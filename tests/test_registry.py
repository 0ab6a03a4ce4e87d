"""Contract tests driven by the registry: every listed name loads, clones, parses its settings,
is deterministic, and hides target labels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shifted_blobs
from sklearn.base import clone

from transferkit import registry
from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier, domain_aware

METHODS = [m for m in registry.list_methods() if registry.entry("method", m).role != "deep"]  # shallow
STEPS = registry.list_methods(kind="preprocessing")


def test_tables_are_sorted_and_resolve():
    for kind, table in registry._TABLES.items():
        assert list(table) == sorted(table), f"{kind} table must stay sorted"
        for name in table:
            entry = registry.entry(kind, name)
            assert entry.load() is not None
            if kind != "estimator":
                assert entry.summary, f"{name} needs a one-line docstring summary"
            # the one line the CLI and the docs' tables print is plain text: no reST, no LaTeX left
            assert not any(mark in entry.summary for mark in ("``", ":math:", "\\")), entry.summary


@pytest.mark.parametrize("name", METHODS + STEPS)
def test_clone_and_params_round_trip(name):
    kind = "method" if name in METHODS else "preprocessing"
    est = registry.build(kind, name)
    params = est.get_params()
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert type(est)(**params).get_params() == params


@pytest.mark.parametrize(
    "name",
    [
        m for m in METHODS
        if not registry.entry("method", m).requires_target_labels
        and not getattr(registry.entry("method", m).load(), "uses_target_labels", False)
    ],
)  # fmt: skip
def test_method_is_deterministic_and_never_sees_target_labels(name):
    X, y, sd = shifted_blobs()
    e = registry.entry("method", name)
    method = registry.build("method", name)

    def fit_predict(labels):
        if e.role == "classifier":
            clf = DAClassifier(estimator=clone(method))
        else:
            clf = DAClassifier(adapter=clone(method))
        return clf.fit(X, labels, sd).predict(X[sd < 0])

    first = fit_predict(y)
    assert (fit_predict(y) == first).all()
    scrambled = y.copy()
    scrambled[sd < 0] = np.random.default_rng(1).permutation(y[sd < 0])
    assert (fit_predict(scrambled) == first).all(), "target labels changed the predictions"


@pytest.mark.parametrize("name", STEPS)
def test_preprocessing_steps_need_target_rows_only_as_features(name):
    X, y, sd = shifted_blobs(n=60, d=8)
    step = registry.build("preprocessing", name, {"k": "3"} if name == "select-k-best" else None)
    if name in ("tfidf", "sentence-embedding"):  # text steps: texts in, numbers refused
        texts = np.array([f"word{i % 5} other{i % 3} common" for i in range(len(X))], dtype=object)
        Z = step.fit_transform(texts, np.where(sd < 0, -1, y), sd)
        with pytest.raises(TransferkitError, match=f"the {name} step turns texts into features"):
            step.fit_transform(X, np.where(sd < 0, -1, y), sd)
    elif name == "pca":
        Z = registry.build("preprocessing", "pca", {"n_components": "3"}).fit_transform(X, y, sd)
        assert Z.shape == (120, 3)
    else:
        Z = step.fit_transform(X, np.where(sd < 0, -1, y), sd)
    assert np.isfinite(np.asarray(Z)).all()
    assert domain_aware(step)


def test_settings_are_parsed_by_type_hints():
    assert registry.build("method", "knn", {"n_neighbors": "3", "metric": "cosine"}).get_params() == {
        "n_neighbors": 3,
        "metric": "cosine",
    }
    assert registry.build("preprocessing", "standardize", {"per_domain": "false"}).per_domain is False
    assert registry.build("preprocessing", "pca", {"n_components": "0.9"}).n_components == 0.9
    assert registry.build("preprocessing", "pca", {"n_components": "20"}).n_components == 20
    assert registry.build("estimator", "logreg", {"C": "0.1"}).C == 0.1
    with pytest.raises(TransferkitError, match="one of euclidean, cosine, manhattan"):
        registry.build("method", "knn", {"metric": "hamming"})
    with pytest.raises(TransferkitError, match="expects an integer"):
        registry.build("method", "knn", {"n_neighbors": "two"})
    assert registry.parse_spec("normalize:norm=l1") == ("normalize", {"norm": "l1"})


def test_listing_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys; from transferkit.registry import list_methods; list_methods(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    assert out == "False"


def _flags(kind: str, name: str) -> list[str]:
    import inspect

    signature = inspect.signature(registry.entry(kind, name).load().__init__)
    return [p.name for p in signature.parameters.values() if isinstance(p.default, bool)]


FLAGS = [
    (kind, name, flag)
    for kind in ("method", "preprocessing")
    for name in registry.list_methods(kind=kind)
    for flag in _flags(kind, name)
]


def test_a_flag_takes_python_and_numpy_bools_only():
    from transferkit.errors import check_flag

    assert check_flag("f", True) is True and check_flag("f", np.False_) is False
    for bad in ("true", 1, 0.0, None):
        with pytest.raises(TransferkitError, match="f must be true or false"):
            check_flag("f", bad)


def test_every_flag_is_found():
    found = {(name, flag) for _, name, flag in FLAGS}
    expected = {
        ("dan", "warmup"),
        ("pseudo-label", "align"),
        ("jda", "normalize_rows"),
        ("self-training", "class_balance"),
        ("cdan", "entropy_conditioning"),
        ("standardize", "per_domain"),
    }
    assert expected <= found  # fmt: skip


@pytest.mark.parametrize("kind,name,flag", FLAGS)
def test_a_flag_refuses_a_string_from_python(kind, name, flag):
    # from Python the string "false" is a true value: each method refuses it (the command line turns
    # ``flag=false`` into False before the method sees it)
    assert getattr(registry.build(kind, name, {flag: "false"}), flag) is False
    cls = registry.entry(kind, name).load()
    with pytest.raises(TransferkitError, match=f"{flag} must be true or false, got 'false'"):
        est = cls(**{flag: "false"})  # deep methods check at construction, estimators when fitted
        X, y, sd = shifted_blobs(n=40, seed=0)
        y[np.flatnonzero(sd < 0)[4:]] = -1  # four target labels revealed, for the methods that need some
        est.fit(X, y, sd)
