"""Feature tables reach deep methods through the run's preprocessing steps (images and texts do not)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from transferkit.deep.runner import input_preprocess, inputs
from transferkit.domains import DomainDataset
from transferkit.experiment import RunSpec, run
from transferkit.nn.trainer import NonFiniteLossError


def _scaled_table(seed: int = 0) -> DomainDataset:
    """Two classes told apart by column 1 (spread about 1); column 0 is noise spread 1e4, as a price
    in cents beside a ratio; the target is shifted in both."""
    rng = np.random.default_rng(seed)
    X, y = {}, {}
    for dom, shift in (("s", 0.0), ("t", 0.5)):
        labels = np.tile([0, 1], 100)
        X[dom] = np.c_[rng.normal(0, 1e4, 200), 2.0 * labels - 1 + shift + rng.normal(0, 0.3, 200)]
        y[dom] = labels
    return DomainDataset("scaled", X, y, classes=("a", "b"), modality="tabular")


def test_steps_are_fitted_on_the_training_rows_and_applied_to_every_row():
    ds = _scaled_table()
    arrays = ds.to_arrays(["s"], ["t"])
    sd = arrays.sample_domain
    fit_rows = np.r_[np.flatnonzero(sd >= 0)[:150], np.flatnonzero(sd < 0)]  # 50 source rows held out
    Z = inputs(ds, arrays, ("standardize:per_domain=false",), fit_rows=fit_rows)  # the source's statistics
    X = np.asarray(arrays.X, np.float64)
    mean, std = X[fit_rows[:150]].mean(0), X[fit_rows[:150]].std(0)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z, (X - mean) / std, rtol=1e-5, atol=1e-5)
    assert input_preprocess(ds, ("standardize",)) == "standardize"


def test_unscaled_columns_warn_naming_them_and_standardized_ones_train():
    ds = _scaled_table()
    ds.extras = {"feature_names": ["price_cents", "ratio"]}
    arrays = ds.to_arrays(["s"], ["t"])
    with pytest.warns(
        UserWarning, match=r"column 'price_cents' spreads 9.81e\+03 .*--preprocess standardize"
    ):
        inputs(ds, arrays)
    # rows already on a small scale do not warn, nearly constant columns (image borders) or not
    rng = np.random.default_rng(1)
    pixels = rng.random((40, 64)) * 0.8
    pixels[:, :8] = 0.0
    pixels[0, :8] = 1e-3  # a border pixel lit once: spread 1.6e-4, a ratio of 1500 to the others
    labels = {"s": np.tile([0, 1], 10), "t": np.tile([0, 1], 10)}
    flat = DomainDataset("px", {"s": pixels[:20], "t": pixels[20:]}, labels, ("a", "b"), modality="tabular")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inputs(flat, flat.to_arrays(["s"], ["t"]))
    settings = {"epochs": 15, "batch_size": 32}
    spec = RunSpec(dataset="scaled", sources=("s",), targets=("t",), method="deep-source-only",
                   params=settings, preprocess=("standardize",))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scaled: no warning
        rec = run(spec, dataset=ds)
    assert rec["config"]["preprocess"][0]["name"] == "standardize"
    assert rec["accuracy"] > 90  # column 1 separates the classes once the noise column is scaled down
    # without the step the same network on the same rows does not train: its loss leaves the finite
    # numbers (a clear error, not a silently useless model)
    with pytest.warns(UserWarning, match="unscaled"), pytest.raises(NonFiniteLossError):
        run(RunSpec(dataset="scaled", sources=("s",), targets=("t",), method="deep-source-only",
                    params=settings, preprocess=()), dataset=ds)  # fmt: skip


@pytest.mark.filterwarnings("ignore:the source cross-entropy ended")
def test_images_take_no_steps():
    rng = np.random.default_rng(0)
    images = {d: rng.random((8, 1, 32, 32), dtype=np.float32) for d in "st"}
    ds = DomainDataset("imgs", images, {d: np.tile([0, 1], 4) for d in "st"}, ("a", "b"), modality="image")
    arrays = ds.to_arrays(["s"], ["t"])
    np.testing.assert_array_equal(inputs(ds, arrays, ("standardize",)), arrays.X)
    assert input_preprocess(ds, ("standardize",)) == ""
    spec = RunSpec(dataset="imgs", sources=("s",), targets=("t",), method="deep-source-only",
                   params={"epochs": 1, "batch_size": 8}, preprocess=("standardize",))  # fmt: skip
    rec = run(spec, dataset=ds)
    assert rec["config"]["preprocess"] == []


def test_label_reading_steps_see_only_the_source_labels_and_the_revealed_ones(monkeypatch):
    # the target's true labels never reach a step (garbage ones give the same inputs); the labels a
    # semi-supervised run reveals do, as in the shallow composer
    from transferkit.preprocessing import SelectKBest

    ds = _scaled_table()
    garbage = DomainDataset("scaled", ds.X, {"s": ds.y["s"], "t": 1 - np.asarray(ds.y["t"])}, ds.classes)
    steps = ("standardize:per_domain=false", "select-k-best:k=1")
    a, b = ds.to_arrays(["s"], ["t"]), garbage.to_arrays(["s"], ["t"])
    np.testing.assert_array_equal(inputs(ds, a, steps), inputs(garbage, b, steps))
    assert inputs(ds, a, steps).shape == (400, 1)
    seen = []
    fit = SelectKBest._fit
    monkeypatch.setattr(
        SelectKBest, "_fit", lambda self, X, y, sd: (seen.append(np.array(y)), fit(self, X, y, sd))[1]
    )
    target = a.sample_domain < 0
    inputs(ds, a, steps)
    assert (seen[-1][target] == -1).all() and (seen[-1][~target] == a.y[~target]).all()
    revealed = a.y.copy()
    revealed[np.flatnonzero(target)[:3]] = np.asarray(ds.y["t"])[:3]
    inputs(ds, a, steps, labels=revealed)
    np.testing.assert_array_equal(seen[-1], revealed)


@pytest.mark.filterwarnings("ignore:the source cross-entropy ended")
def test_input_norm_is_saved_with_the_network_and_a_fine_tune_cannot_drop_it(tmp_path):
    import torch

    from transferkit.errors import TransferkitError
    from transferkit.nn.saved_model import load_network

    rng = np.random.default_rng(0)
    images = {d: rng.random((8, 3, 32, 32), dtype=np.float32) for d in "st"}
    ds = DomainDataset("imgs", images, {d: np.tile([0, 1], 4) for d in "st"}, ("a", "b"), modality="image")
    spec = RunSpec(dataset="imgs", sources=("s",), targets=("t",), method="deep-source-only",
                   params={"epochs": 1, "batch_size": 8, "input_norm": True})  # fmt: skip
    run(spec, dataset=ds, artifacts=tmp_path / "m")
    saved = load_network(tmp_path / "m" / "model").eval()
    assert saved.input_norm
    x = torch.as_tensor(images["t"])
    with torch.no_grad():  # the saved network standardizes its inputs: a brighter copy, the same outputs
        torch.testing.assert_close(saved(0.5 * x + 0.2), saved(x), rtol=1e-4, atol=1e-4)
    init = {"init": str(tmp_path / "m" / "model"), "epochs": 1, "batch_size": 8}
    tune = RunSpec(dataset="imgs", sources=("s",), targets=("t",), method="deep-source-only", params=init)
    assert run(tune, dataset=ds)["accuracy"] is not None  # kept from the saved network
    dropped = RunSpec(dataset="imgs", sources=("s",), targets=("t",), method="deep-source-only",
                      params={**init, "input_norm": False})  # fmt: skip
    with pytest.raises(TransferkitError, match="trained with input_norm=true"):
        run(dropped, dataset=ds)


def test_replayed_steps_transform_new_rows_as_the_fitted_steps_did():
    from transferkit.errors import TransferkitError
    from transferkit.experiment import build_steps
    from transferkit.preprocessing import export_steps, replay_steps

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(5, 2, size=(30, 3)), rng.normal(-1, 0.5, size=(20, 3))])
    sd = np.r_[np.zeros(30, int), -np.ones(20, int)]
    names = {0: "lab", -1: "field"}
    y = np.r_[(X[:30, 0] > 5).astype(int), -np.ones(20, int)]  # source labels for select-k-best
    for specs in (["standardize"], ["standardize:per_domain=false"], ["normalize:norm=l1", "standardize"],
                  ["standardize", "pca:n_components=2"], ["pca:n_components=2,whiten=true"],
                  ["select-k-best:k=2", "standardize"]):  # fmt: skip
        steps, Z = build_steps(tuple(specs), 0)[0], X
        for step in steps:
            Z = step.fit(Z, y, sd).transform(Z, sd)
        records = json.loads(json.dumps(export_steps(steps, specs, names)))  # as saved with the network
        domains = np.where(sd == 0, "lab", "field")
        assert np.allclose(replay_steps(records, X, domains), Z)
        # one row at a time: a domain seen in training keeps its saved statistics (its own single row
        # would standardize to zeros)
        assert np.allclose(replay_steps(records, X[:1], domains[:1]), Z[:1])
    # a new domain under per-domain standardization: its own statistics, with a warning when few rows
    (per_domain,) = build_steps(("standardize",), 0)[0]
    records = export_steps([per_domain.fit(X, None, sd)], ["standardize"], names)
    with pytest.warns(UserWarning, match="domain 'new' was not among the training domains"):
        out = replay_steps(records, X[:5], np.full(5, "new"))
    assert np.allclose(out.mean(0), 0) and np.allclose(out.std(0), 1)
    # a step whose state was not saved (a text step): refused, not approximated
    with pytest.raises(TransferkitError, match="after the preprocessing step 'tfidf'"):
        replay_steps([{"step": "tfidf", "state": None}], X, domains)
