"""The one trainer: determinism, resume equals uninterrupted, NaN stops, checkpoints never unpickle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import Killed, kill_at

from transferkit.deep.dann import DANN
from transferkit.deep.source_only import SourceOnly
from transferkit.errors import TransferkitError
from transferkit.nn.checkpoint import STATE, weights_file
from transferkit.nn.model import build_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything, target_collapse


def _data(seed=0, n=120, d=6):
    rng = np.random.default_rng(seed)
    ys, yt = rng.integers(0, 3, n), rng.integers(0, 3, n)
    centers = rng.normal(size=(3, d)) * 3
    Xs = centers[ys] + rng.normal(size=(n, d))
    Xt = centers[yt] + rng.normal(size=(n, d)) + 1.0
    X = np.vstack([Xs, Xt]).astype(np.float32)
    sd = np.r_[np.zeros(n, int), -np.ones(n, int)]
    return X, np.r_[ys, -np.ones(n, int)], sd, Xt, yt


def _trainer(method=None, epochs=4, seed=0, **kw):
    seed_everything(seed)
    model = build_network("mlp", 3, in_shape=(6,), hidden=(32,), dropout=0.2)
    cfg = TrainerConfig(
        **{"epochs": epochs, "batch_size": 16, "lr": 0.05, "schedule": "cosine", "seed": seed,
           "device": "cpu", **kw}
    )  # fmt: skip
    return Trainer(model, method or SourceOnly(), cfg)


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("method", [SourceOnly, DANN])
def test_seeded_runs_are_identical_and_learn(method):
    X, y, sd, Xt, yt = _data()
    a, b = _trainer(method()), _trainer(method())
    a.fit(X, y, sd)
    b.fit(X, y, sd)
    for k, v in _weights(a).items():
        assert torch.equal(v, _weights(b)[k]), k
    assert np.mean(a.predict(Xt) == yt) > 0.6
    assert len(a.history) == 4 and all(np.isfinite(h["loss"]) for h in a.history)


def test_a_run_that_never_learns_the_source_warns_and_one_that_does_not():
    X, y, sd, _, _ = _data()
    with pytest.warns(RuntimeWarning, match="at chance level"):
        _trainer(epochs=1, lr=1e-7).fit(X, y, sd)  # the weights barely move: CE stays at ~ln 3
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _trainer().fit(X, y, sd)


def test_target_collapse_rule():
    balanced = np.repeat(np.arange(10), 50)  # ten classes, 10% each
    collapsed = np.r_[np.full(300, 3), np.arange(200) % 10]  # class 3 takes 320 of 500
    assert "collapsed onto class 3: it takes 64%" in target_collapse(collapsed, balanced)
    shifted = np.r_[np.zeros(200, int), np.arange(300) % 10]  # a label shift: class 0 at 46%
    assert target_collapse(shifted, balanced) is None
    assert target_collapse(balanced, balanced) is None
    two = np.repeat([0, 1], 50)
    assert target_collapse(np.r_[np.zeros(90, int), np.ones(10, int)], two) is None  # 90%: could be real
    assert "96%" in target_collapse(np.r_[np.zeros(96, int), np.ones(4, int)], two)
    assert target_collapse(np.zeros(0, int), two) is None


def test_a_run_whose_target_predictions_collapse_warns():
    X, y, sd, _, _ = _data()
    X = X.copy()
    X[sd < 0] = 100.0  # every target row the same far-away point: one predicted class
    with pytest.warns(RuntimeWarning, match="collapsed onto class"):
        _trainer(epochs=1).fit(X, y, sd)


@pytest.mark.parametrize("collapsed_epochs", [(), (1,), (1, 2, 3)])
def test_early_stopping_never_keeps_an_epoch_whose_target_predictions_collapse(monkeypatch, collapsed_epochs):
    import transferkit.nn.trainer as trainer_module
    import transferkit.selection as selection

    class PrefersEarly:  # a target-only scorer that likes the first epoch best
        needs_source = False
        calls = 0

        def __call__(self, estimator, X, y, sd):
            PrefersEarly.calls += 1
            return -PrefersEarly.calls

    seen = []

    def collapse(pred, labels):  # the rule, told which epochs collapse
        seen.append(len(seen) + 1)
        return "collapsed" if seen[-1] in collapsed_epochs else None

    monkeypatch.setattr(selection, "get_scorer", lambda name: PrefersEarly())
    monkeypatch.setattr(trainer_module, "target_collapse", collapse)
    X, y, sd, _, _ = _data()
    t = _trainer(epochs=3, early_stopping="entropy")
    t.fit(X, y, sd)
    kept = [e for e in (1, 2, 3) if e not in collapsed_epochs]
    assert getattr(t, "best_epoch", None) == (kept[0] if kept else None)
    assert [h.get("target_collapsed", False) for h in t.history] == [e in collapsed_epochs for e in (1, 2, 3)]


@pytest.mark.parametrize("method", [SourceOnly, DANN])
def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path, method):
    X, y, sd, _, _ = _data()
    full = _trainer(method())
    full.fit(X, y, sd)

    first = _trainer(method())
    with pytest.raises(Killed):
        first.fit(X, y, sd, checkpoint_dir=tmp_path, callbacks=[kill_at(2)])
    resumed = _trainer(method())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the same settings: no "other settings" warning
        resumed.fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)
    for k, v in _weights(full).items():
        assert torch.equal(v, _weights(resumed)[k]), k
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]


@pytest.mark.parametrize("early_stopping", [None, "source-val"])
def test_a_kill_between_the_checkpoint_files_resumes_as_if_uninterrupted(
    tmp_path, monkeypatch, early_stopping
):
    # the process dies after epoch 3's weights (and best weights) are written, before its state: the
    # state of epoch 2 must still name epoch 2's files (one file for both left epoch 3's weights
    # beside epoch 2's state, and the resumed run silently differed)
    from transferkit.nn import checkpoint

    X, y, sd, _, _ = _data()
    kw = {"early_stopping": early_stopping} if early_stopping else {}
    full = _trainer(DANN(), **kw)
    full.fit(X, y, sd)

    write = checkpoint.atomic_write_json

    def dies_writing_epoch_three(path, obj, *a, **k):
        if obj.get("epoch") == 3:
            raise Killed
        return write(path, obj, *a, **k)

    monkeypatch.setattr(checkpoint, "atomic_write_json", dies_writing_epoch_three)
    with pytest.raises(Killed):
        _trainer(DANN(), **kw).fit(X, y, sd, checkpoint_dir=tmp_path)
    monkeypatch.setattr(checkpoint, "atomic_write_json", write)
    assert json.loads((tmp_path / STATE).read_text())["epoch"] == 2
    resumed = _trainer(DANN(), **kw)
    resumed.fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)
    for k, v in _weights(full).items():
        assert torch.equal(v, _weights(resumed)[k]), k
    assert resumed.best_epoch == full.best_epoch
    # only the files the last state names are left
    names = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert names == sorted({weights_file(tmp_path).name, *([f"best-e{full.best_epoch}.safetensors"]
                                                           if early_stopping else [])})  # fmt: skip


@pytest.mark.parametrize(
    "damage",
    [
        lambda st: st.pop("epoch"),
        lambda st: st.update(history=5),
        lambda st: st["scheduler"].pop("lr_lambdas"),
        lambda st: st.update(weights_file="../elsewhere.safetensors"),
        lambda st: st.update(best=[1, 0.5], best_file="best-e9.safetensors"),
    ],
    ids=["no-epoch", "history-not-a-list", "scheduler", "path-outside", "best-file-missing"],
)
def test_a_tampered_checkpoint_is_a_clear_error(tmp_path, damage):
    X, y, sd, _, _ = _data()
    _trainer(epochs=1).fit(X, y, sd, checkpoint_dir=tmp_path)
    state = json.loads((tmp_path / STATE).read_text())
    damage(state)
    (tmp_path / STATE).write_text(json.dumps(state))
    with pytest.raises(TransferkitError, match="damaged"):
        _trainer(epochs=2).fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    X, y, sd, _, _ = _data()
    t = _trainer(epochs=2)
    t.fit(X, y, sd, checkpoint_dir=tmp_path)
    before = weights_file(tmp_path).read_bytes()
    t2 = _trainer(epochs=2)

    class Diverging(SourceOnly):  # a loss that turns NaN in the third epoch
        def loss(self, model, batch, progress):
            out = super().loss(model, batch, progress)
            return out if progress < 0.7 else type(out)(out.total * float("nan"), out.parts)

    t2.method = Diverging()
    t2.config = TrainerConfig(**{**t2.config.__dict__, "epochs": 3})
    with pytest.warns(UserWarning, match="epochs 2 -> 3"):
        with pytest.raises(TransferkitError, match=r"loss became nan at step \d+"):
            t2.fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)
    assert weights_file(tmp_path).read_bytes() == before


def test_bad_inputs_are_clear_errors_before_training():
    X, y, sd, Xt, _ = _data()
    t = _trainer(epochs=1)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(
        TransferkitError, match="X contains 1 NaN or infinite values \\(first at row 3, feature 2"
    ):
        t.fit(bad, y, sd)
    with pytest.raises(
        TransferkitError, match="class indices 0..2 \\(the network has 3 outputs\\).*\\[7, 11\\]"
    ):
        t.fit(X, np.where(y == 2, 11, np.where(y == 1, 7, y)), sd)
    with pytest.raises(
        TransferkitError, match="rows of shape \\(4,\\), but the network takes rows of shape \\(6,\\)"
    ):
        t.fit(X[:, :4], y, sd)
    with pytest.raises(TransferkitError, match="sample_domain must hold one integer per row"):
        t.fit(X, y, sd.astype(float))
    t.fit(X, y, sd)
    with pytest.raises(TransferkitError, match="one row of shape \\(6,\\); pass an array of rows"):
        t.predict(Xt[0])
    with pytest.raises(TransferkitError, match="the network takes rows of shape \\(6,\\)"):
        t.predict_proba(Xt[:, :4])
    assert t.predict(Xt[:1]).shape == (1,)
    with pytest.raises(TransferkitError, match="X could not be read as an array"):
        t.predict([[1.0] * 6, [1.0] * 5])


def test_a_second_fit_starts_a_new_history():
    X, y, sd, _, _ = _data()
    t = _trainer(epochs=2)
    t.fit(X, y, sd)
    assert [h["epoch"] for h in t.fit(X, y, sd)] == [1, 2]


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    X, y, sd, _, _ = _data()
    _trainer(epochs=1).fit(X, y, sd, checkpoint_dir=tmp_path)
    weights_file(tmp_path).write_bytes(b"\x00" * 40)
    with pytest.raises(TransferkitError, match="damaged"):
        _trainer(epochs=2).fit(X, y, sd, checkpoint_dir=tmp_path, resume=True)


def test_unrevealed_target_labels_never_reach_the_loss():
    X, y, sd, _, _ = _data()
    seen = []

    class Spy(SourceOnly):
        def loss(self, model, batch, progress):
            seen.append(batch.y_target)
            return super().loss(model, batch, progress)

    _trainer(Spy(), epochs=1).fit(X, y, sd)
    assert seen and all(t is None for t in seen)
    y2 = y.copy()
    y2[np.flatnonzero(sd < 0)[:5]] = 1  # five revealed labels
    seen.clear()
    _trainer(Spy(), epochs=1).fit(X, y2, sd)
    assert any(t is not None and (t >= 0).any() for t in seen)


def test_min_steps_adds_whole_passes_and_a_given_length_is_kept():
    from transferkit.deep.runner import split_settings

    X, y, sd, _, _ = _data()  # 120 source rows, batches of 16: 7 steps per pass
    history = _trainer(epochs=2, min_steps=30).fit(X, y, sd)
    per_pass = history[0]["step"]
    assert per_pass == 7 and len(history) == 5 and history[-1]["step"] == 35  # ceil(30 / 7) whole passes
    assert len(_trainer(epochs=2, min_steps=10).fit(X, y, sd)) == 2  # two passes are 14 steps already
    assert _trainer(steps=5, min_steps=30).fit(X, y, sd)[-1]["step"] == 5  # exactly steps, when given
    with pytest.raises(TransferkitError, match="min_steps"):
        _trainer(min_steps=-1).fit(X, y, sd)
    # a run's default length has a floor of 500 steps; a length the user gave is kept as given
    assert split_settings({})[1]["min_steps"] == 500
    assert split_settings({"epochs": 3})[1]["min_steps"] == 0
    assert split_settings({"steps": 3})[1]["min_steps"] == 0
    assert split_settings({"epochs": 3, "min_steps": 50})[1]["min_steps"] == 50


def test_settings_that_act_only_with_another_one_warn_when_it_is_missing():
    X, y, sd, _, _ = _data(n=40)
    with pytest.warns(
        UserWarning, match="patience=3 without early_stopping, reg_alpha=0.5 without reg has no"
    ):
        _trainer(epochs=1, patience=3, reg_alpha=0.5).fit(X, y, sd)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _trainer(epochs=1, patience=3, early_stopping="entropy", reg="l2-sp", reg_alpha=0.5).fit(X, y, sd)


def test_a_batch_larger_than_the_source_left_after_the_hold_out_says_why():
    X, y, sd, _, _ = _data(n=40)  # 40 source rows; source-val holds out 10 of them at val_fraction 0.25
    with pytest.raises(TransferkitError, match="larger than the 30 source rows left.*holds out 10"):
        _trainer(epochs=1, batch_size=32, early_stopping="source-val", val_fraction=0.25).fit(X, y, sd)
    _trainer(epochs=1, batch_size=32, early_stopping="entropy").fit(X, y, sd)  # holds out nothing
