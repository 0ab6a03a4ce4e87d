"""Every shallow method beats source-only on a synthetic shift of its own kind, and behaves.

Driven by the registry: a method added to the table is picked up here by its family and flags.
Shifts: covariate shift (the target is a region of the source where the labelling is simpler) for
reweighting; rotation + scaling + translation for alignment and optimal transport; a translation
for self-training; a slightly different labelling rule with a few target labels for parameter
transfer and TrAdaBoost.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from transferkit import registry
from transferkit.errors import TransferkitError
from transferkit.shallow.base import DAClassifier

METHODS = [
    m for m in registry.list_methods()
    if registry.entry("method", m).family != "baseline" and registry.entry("method", m).role != "deep"
]  # fmt: skip


def _covariate(seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-4, 4, (600, 1))
    xt = rng.uniform(0.5, 4, (400, 1))
    label = lambda x: (np.abs(x[:, 0] - 1.5) < 1.0).astype(int)  # noqa: E731  a bump: not linear
    flip = lambda y: np.where(rng.random(len(y)) < 0.05, 1 - y, y)  # noqa: E731
    Xs = np.c_[xs, rng.normal(size=(600, 1))]
    Xt = np.c_[xt, rng.normal(size=(400, 1))]
    return Xs, flip(label(xs)), Xt, label(xt)


def _transformed(seed=0):
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    centers = np.array([[0.0, 0.0], [3.0, 3.0]])
    Xs = centers[ys] + rng.normal(size=(300, 2))
    theta = np.pi / 5
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    Xt = ((centers[yt] + rng.normal(size=(300, 2))) @ R.T) * [1.8, 0.6] + [4.0, -3.0]
    return Xs, ys, Xt, yt


def _translated(seed=0):
    rng = np.random.default_rng(seed)
    ys, yt = np.repeat([0, 1], 150), np.repeat([0, 1], 150)
    Xs = rng.normal(size=(300, 2)) + 4 * ys[:, None] * [1, 0]
    Xt = rng.normal(size=(300, 2)) + 4 * yt[:, None] * [1, 0] + [1.6, 1.0]
    return Xs, ys, Xt, yt


def _recoloured(seed=0):
    """Second-order shift: the target is the source rotated and stretched (means unchanged)."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    centers = np.array([[-1.2, -1.2], [1.2, 1.2]])
    Xs = centers[ys] + rng.normal(size=(400, 2)) * 0.8
    theta = np.pi / 3
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    Xt = ((centers[yt] + rng.normal(size=(400, 2)) * 0.8) @ R.T) * [2.5, 0.5]
    return Xs, ys, Xt, yt


def _moved(seed=0):
    """The target is the source scaled and translated across the source's decision boundary."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    centers = np.array([[0.0, 0.0], [3.0, 3.0]])
    Xs = centers[ys] + rng.normal(size=(300, 2))
    Xt = (centers[yt] + rng.normal(size=(300, 2))) * 1.5 + [2.5, 2.0]
    return Xs, ys, Xt, yt


def _nuisance(seed=0):
    """A nuisance feature is mildly predictive on the source and shifted far on the target."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    Xs = np.c_[0.6 * ys + rng.normal(size=300) * 0.5, 3.0 * ys + rng.normal(size=300)]
    Xt = np.c_[0.6 * yt + rng.normal(size=300) * 0.5 - 3.0, 3.0 * yt + rng.normal(size=300)]
    return Xs, ys, Xt, yt


def _moved_with_noise(seed=0):
    """``_moved`` in 6-D: the domains also differ along nuisance dimensions a projection can drop."""
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    centers = np.array([[0.0, 0.0], [3.0, 3.0]])
    Xs = np.c_[centers[ys] + rng.normal(size=(300, 2)), rng.normal(size=(300, 4)) * 0.5]
    Xt = np.c_[centers[yt] + rng.normal(size=(300, 2)), rng.normal(size=(300, 4)) * 0.5]
    return Xs, ys, Xt + [2.0, 2.0, 3.0, 3.0, 0.0, 0.0], yt


def _concept(seed=0):
    rng = np.random.default_rng(seed)
    Xs, Xt = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    return Xs, (Xs[:, 0] > 0).astype(int), Xt, (Xt[:, 0] + 0.5 * Xt[:, 1] > 0.7).astype(int)


# method -> (shift of its kind, settings for the synthetic problem's two features)
SHIFTS = {
    "coral": (_recoloured, {}),
    "gfk": (_nuisance, {"n_components": 1}),
    "jda": (_moved_with_noise, {"n_components": 3, "normalize_rows": False}),
    "meda": (_moved_with_noise, {"n_components": 3}),
    "ot-mapping": (_moved, {}),
    "shared-lda": (_moved, {}),
    "subspace-alignment": (_nuisance, {"n_components": 1}),
    "tca": (_nuisance, {"n_components": 1}),
}


def shift_for(name):
    e = registry.entry("method", name)
    if name in SHIFTS:
        return SHIFTS[name][0]
    if getattr(e.load(), "needs_target_labels", False):
        return _concept
    return {"reweighting": _covariate, "self-training": _translated}[e.family]


def _model(name, **settings):
    settings = {**SHIFTS.get(name, (None, {}))[1], **settings}
    method = registry.build("method", name, settings)
    if registry.entry("method", name).role == "classifier":
        return DAClassifier(estimator=method)
    return DAClassifier(method, LogisticRegression(max_iter=1000))


def _problem(name, k=5):
    Xs, ys, Xt, yt = shift_for(name)()
    X = np.vstack([Xs, Xt])
    sd = np.r_[np.zeros(len(Xs), int), -np.ones(len(Xt), int)]
    y = np.r_[ys, np.full(len(Xt), -1)]
    test = np.ones(len(Xt), bool)
    if getattr(registry.entry("method", name).load(), "needs_target_labels", False):
        from transferkit.domains import few_shot_indices

        picked = few_shot_indices(yt, k, 0)
        y[len(Xs) + picked] = yt[picked]
        test[picked] = False
    return X, y, sd, Xt, yt, test


@pytest.mark.parametrize("name", METHODS)
def test_beats_source_only_on_a_shift_of_its_kind(name):
    X, y, sd, Xt, yt, test = _problem(name)
    src = sd >= 0
    base = LogisticRegression(max_iter=1000).fit(X[src], y[src])
    source_only = np.mean(base.predict(Xt[test]) == yt[test])
    adapted = np.mean(_model(name).fit(X, y, sd).predict(Xt[test]) == yt[test])
    assert adapted >= source_only + 0.03, f"{name}: {adapted:.3f} vs source-only {source_only:.3f}"


class _Untouchable(np.ndarray):
    """A label array whose target entries blow up when read."""


@pytest.mark.parametrize("name", METHODS)
def test_target_labels_are_never_read_unless_revealed(name):
    X, y, sd, Xt, yt, _ = _problem(name)
    rng = np.random.default_rng(1)
    scrambled = y.copy()
    hidden = (sd < 0) & (y < 0)
    scrambled[hidden] = rng.integers(0, 2, hidden.sum())  # what a careless caller might pass
    a = _model(name).fit(X, y, sd).predict(Xt)
    b = _model(name).fit(X, scrambled, sd).predict(Xt)
    uses = getattr(registry.entry("method", name).load(), "uses_target_labels", False)
    if not uses:  # the composer hides target labels from unsupervised methods
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_given_random_state(name):
    X, y, sd, Xt, _, _ = _problem(name)
    a = _model(name).fit(X, y, sd).predict_proba(Xt) if hasattr(_model(name), "predict_proba") else None
    b = _model(name).fit(X, y, sd).predict_proba(Xt) if a is not None else None
    if a is not None:
        assert np.array_equal(a, b)
    assert np.array_equal(_model(name).fit(X, y, sd).predict(Xt), _model(name).fit(X, y, sd).predict(Xt))


@pytest.mark.parametrize("name", METHODS)
def test_bad_input_gives_a_clear_error(name):
    X, y, sd, Xt, _, _ = _problem(name)
    with pytest.raises(TransferkitError, match="no target rows"):
        _model(name).fit(X[sd >= 0], y[sd >= 0], sd[sd >= 0])
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(TransferkitError, match="NaN"):
        _model(name).fit(bad, y, sd)
    one = y.copy()
    one[(sd >= 0)] = 0
    with pytest.raises(TransferkitError, match="at least 2"):
        _model(name).fit(X, one, sd)
    model = _model(name).fit(X, y, sd)
    with pytest.raises(TransferkitError, match="features"):
        model.predict(np.c_[Xt, Xt])


@pytest.mark.parametrize(
    "name, params, rows",
    [
        ("meda", {"n_components": 3}, "160 x 160 matrices over all training rows"),
        ("tca", {"kernel": "rbf"}, "160 x 160 matrices over all training rows"),
        ("jda", {"kernel": "rbf"}, "160 x 160 matrices over all training rows"),
        ("jda", {"kernel": "linear"}, "160 x 160 matrices over all training rows"),
        ("kmm", {}, "80 x 80 matrices over the source rows"),
    ],
)
def test_kernel_methods_refuse_more_rows_than_memory_before_allocating(monkeypatch, name, params, rows):
    from transferkit.shallow import _kernels

    rng = np.random.default_rng(0)
    y = np.r_[np.arange(80) % 3, np.full(80, -1)]
    X = np.vstack(
        [rng.normal(size=(80, 4)) + 2 * (np.arange(80) % 3)[:, None], rng.normal(1.0, 1.5, (80, 4))]
    )
    sd = np.r_[np.zeros(80, int), -np.ones(80, int)]
    method = registry.build("method", name, params)
    clf = DAClassifier(estimator=method) if registry.entry("method", name).role == "classifier" else None
    clf = clf or DAClassifier(adapter=method)
    monkeypatch.setattr(_kernels, "_physical_memory", lambda: 2**18)  # a 256 KiB machine
    with pytest.raises(
        TransferkitError,
        match=rf"dense {rows}.*: about [0-9.]+ MiB, more than this machine's 0.2 MiB .* random subset",
    ):
        clf.fit(X, y, sd)
    monkeypatch.undo()
    assert clf.fit(X, y, sd).predict(X[80:]).shape == (80,)  # where they fit, they run


@pytest.mark.parametrize("reg", [-1.0, float("nan"), "abc"])
def test_coral_says_which_reg_is_wrong(reg):
    from transferkit.shallow.coral import CORAL

    X, y, sd, *_ = _problem("coral")
    with pytest.raises(TransferkitError, match=f"CORAL's reg .* must be a number >= 0, got {reg!r}"):
        CORAL(reg=reg).fit_transform(X, y, sd)


def test_coral_needs_two_rows_per_domain():
    from transferkit.shallow.coral import CORAL

    X, y, sd, *_ = _problem("coral")
    keep = (sd >= 0) | (np.arange(len(sd)) == np.flatnonzero(sd < 0)[0])  # one target row
    with pytest.raises(TransferkitError, match="domain -1 has 1 row: a covariance needs at least 2"):
        CORAL().fit(X[keep], y[keep], sd[keep])
