"""Audit of the multi-task, few-shot and domain generalization APIs: labels scored silently wrong,
episode labels checked as evaluate_episodes checks them, and bad settings that failed deep inside
numpy, torch or scikit-learn instead of as a clear TransferkitError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from transferkit.dg.protocol import leave_one_domain_out
from transferkit.dg.randconv import RandConv
from transferkit.dg.swa import SWA
from transferkit.errors import TransferkitError
from transferkit.fewshot import classify_episode, evaluate_episodes, sample_episodes
from transferkit.multitask import MultiTaskNetwork, evaluate, fit_multitask, predict


def _two_tasks(n=48, d=4, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 3, n)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] += 3.0 * a
    X[:, 1] += 3.0 * b
    return X, {"a": a, "b": b}


def _fit(**kw):
    X, targets = _two_tasks()
    return fit_multitask(X, targets, epochs=1, batch_size=16, trunk_kwargs={"hidden": (8,)}, **kw)


# ---------------------------------------------------------------- multi-task


def test_multitask_evaluate_refuses_unknown_and_fractional_labels_instead_of_scoring_them_wrong():
    # -1 (unknown), NaN and 1.5 were compared with the predictions and counted as errors, silently;
    # training refuses them, and so does scoring now
    X, targets = _two_tasks()
    model, _ = _fit()
    a = targets["a"]
    with pytest.raises(TransferkitError, match="task 'a' has negative labels"):
        evaluate(model, X, {"a": np.where(np.arange(len(a)) % 2 == 0, a, -1)})
    for bad in (np.where(a == 0, np.nan, a), a + 0.5):
        with pytest.raises(TransferkitError, match="not whole numbers"):
            evaluate(model, X, {"a": bad})
    with pytest.raises(TransferkitError, match=r"eval_sets\['val'\]: task 'a' has negative labels"):
        _fit(eval_sets={"val": (X, {"a": np.full(len(a), -1)})})
    # whole-number floats are class indices, as in training
    assert evaluate(model, X, {"a": a.astype(float)}) == evaluate(model, X, {"a": a})


@pytest.mark.parametrize(
    "setting, match",
    [
        ({"lr": "0.1"}, "learning rate lr must be a finite number > 0, got '0.1'"),
        ({"lr": None}, "learning rate lr must be a finite number > 0"),
        ({"momentum": -0.5}, "momentum must be a finite number >= 0"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0"),
        ({"seed": "0"}, "seed must be a whole number >= 0"),
        ({"seed": 1.5}, "seed must be a whole number >= 0"),
    ],
)
def test_multitask_optimizer_settings_and_seed_are_clear_errors(setting, match):
    # they failed inside torch (ValueError: Invalid momentum value), numpy or a comparison (TypeError);
    # a NaN weight decay trained and then blamed the learning rate
    with pytest.raises(TransferkitError, match=match):
        _fit(**setting)


def test_multitask_predict_and_evaluate_need_a_whole_batch_size():
    X, targets = _two_tasks()
    model, _ = _fit()
    for bs in (0, 1.5):
        with pytest.raises(TransferkitError, match="batch_size must be a whole number >= 1"):
            predict(model, X, batch_size=bs)
        with pytest.raises(TransferkitError, match="batch_size must be a whole number >= 1"):
            evaluate(model, X, {"a": targets["a"]}, batch_size=bs)


def test_multitask_a_custom_trunk_that_does_not_fit_is_a_clear_error():
    # both failed at the first step with torch's "mat1 and mat2 shapes cannot be multiplied"
    X, targets = _two_tasks()
    with pytest.raises(
        TransferkitError, match=r"gives features of shape \(8,\).*given as 16; pass \(module, 8\)"
    ):
        fit_multitask(X, targets, trunk=(nn.Linear(4, 8), 16), epochs=1)
    with pytest.raises(TransferkitError, match=r"cannot take the training rows of shape \(4,\)"):
        fit_multitask(X, targets, trunk=(nn.Linear(5, 8), 8), epochs=1)
    with pytest.raises(TransferkitError, match="feature size of a \\(module, feature size\\) trunk"):
        fit_multitask(X, targets, trunk=(nn.Linear(4, 8), 0), epochs=1)
    # a trunk that fits trains as before, and the check leaves the run's randomness alone
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        trunk = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2))
        runs.append(fit_multitask(X, targets, trunk=(trunk, 8), epochs=2, batch_size=16)[1])
    assert [r["loss"] for r in runs[0]] == [r["loss"] for r in runs[1]]


def test_multitask_network_needs_a_whole_number_of_classes():
    # 2.7 classes became a 2-output head, silently; "x" failed inside int()
    for k in (2.7, "x", None):
        with pytest.raises(TransferkitError, match="number of classes of task 'a' must be a whole number"):
            MultiTaskNetwork(nn.Linear(4, 8), 8, {"a": k})


# ---------------------------------------------------------------- few-shot


def test_sample_episodes_checks_labels_as_evaluate_episodes_does():
    # 0.5 was a class of its own, NaN and -2 silently unknown rows; evaluate_episodes refused them
    y = np.repeat([0, 1, 2], 10)
    with pytest.raises(TransferkitError, match="non-integer values"):
        sample_episodes(y + 0.5, 3, 1, n_episodes=2)
    with pytest.raises(TransferkitError, match="non-integer values"):
        sample_episodes(np.where(y == 0, np.nan, y), 2, 1, n_episodes=2)
    with pytest.raises(TransferkitError, match="or -1 for an unknown label"):
        sample_episodes(np.where(y == 0, -2, y), 2, 1, n_episodes=2)
    # whole-number floats and -1 still work, and draw the same rows as the integer labels
    a = sample_episodes(np.where(y == 0, -1, y).astype(float), 2, 1, n_episodes=3, random_state=4)
    b = sample_episodes(np.where(y == 0, -1, y), 2, 1, n_episodes=3, random_state=4)
    assert all(np.array_equal(u, v) for ea, eb in zip(a, b) for u, v in zip(ea, eb))


def test_fewshot_classifier_names_and_random_state_are_clear_errors():
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(30, 4)), np.repeat([0, 1, 2], 10)
    for name in (None, ["prototype"]):  # TypeError inside the dictionary look-up or difflib
        with pytest.raises(TransferkitError, match="few-shot classifier must be a name"):
            evaluate_episodes(Z, y, name, n_way=3, n_episodes=2)
        with pytest.raises(TransferkitError, match="few-shot classifier must be a name"):
            classify_episode(name, Z[:3], [0, 1, 2], Z[3:6], 3)
    for seed in ("a", -1, 1.5):  # numpy's SeedSequence errors
        with pytest.raises(TransferkitError, match="random_state must be a whole number >= 0"):
            evaluate_episodes(Z, y, "prototype", n_way=3, n_episodes=2, random_state=seed)


def test_an_episode_needs_a_query_row_and_a_feature():
    # no query row failed inside scikit-learn (finetune); no feature gave class 0 for every query
    Zs, ys = np.r_[np.zeros((2, 3)), np.ones((2, 3))], np.array([0, 0, 1, 1])
    center = np.full(3, 0.5)
    with pytest.raises(
        TransferkitError, match=r"Zq must hold at least one row and one feature, got shape \(0, 3\)"
    ):
        classify_episode("finetune", Zs, ys, Zs[:0], 2, center=center)
    with pytest.raises(
        TransferkitError, match=r"Zs must hold at least one row and one feature, got shape \(4, 0\)"
    ):
        classify_episode("prototype", Zs[:, :0], ys, Zs[:, :0], 2)


# ---------------------------------------------------------------- domain generalization


def _domains(n=30, n_domains=3, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for d in range(n_domains):
        y = rng.integers(0, 3, n).astype(np.int64)
        X = (rng.normal(size=(n, 4)) + 2.0 * y[:, None] + d).astype(np.float32)
        out[f"d{d}"] = (X, y)
    return out


SETTINGS = {"epochs": 1, "batch_size": 8, "hidden": 8}


def test_dg_protocol_refuses_bad_domains_before_training():
    doms = _domains()
    X0, y0 = doms["d0"]
    X2, y2 = doms["d2"]
    run = lambda d, **kw: leave_one_domain_out(  # noqa: E731
        d, "d2", "erm", candidates=[{}], settings=SETTINGS, lodo=False, **kw
    )
    # an empty training domain failed inside numpy ("zero-size array to reduction operation maximum")
    with pytest.raises(TransferkitError, match="training domain 'd0' has no rows"):
        run({**doms, "d0": (X0[:0], y0[:0])})
    # -2 in the held-out domain was left out of the score, silently, as if it were -1
    with pytest.raises(
        TransferkitError, match=r"domain 'd2': labels must be class indices >= 0, or -1.*\[-2\]"
    ):
        run({**doms, "d2": (X2, np.where(y2 == 0, -2, y2))})
    # training domains of one class trained a one-output network and reported 100% accuracy
    one = {k: (X, np.zeros_like(y)) for k, (X, y) in doms.items()}
    with pytest.raises(TransferkitError, match=r"training domains hold only one class \(0\)"):
        run(one)
    with pytest.raises(TransferkitError, match="domains must be a dict domain name"):
        leave_one_domain_out(list(doms.items()), "d2", "erm")


@pytest.mark.parametrize(
    "option, match",
    [
        ({"seed": "0"}, "seed must be a whole number >= 0"),
        ({"seed": 0.5}, "seed must be a whole number >= 0"),
        ({"val_fraction": "0.2"}, "val_fraction must be a number in \\(0, 1\\)"),
        ({"lodo_epochs": "2"}, "lodo_epochs must be a whole number >= 1"),
        ({"n_classes": "3"}, "n_classes must be a whole number >= 2"),
        ({"candidates": ["lr=0.1"]}, "candidates must be a list of dicts"),
    ],
)
def test_dg_protocol_bad_options_are_clear_errors(option, match):
    # each failed inside numpy, torch or dict() (TypeError / ValueError), some after training
    with pytest.raises(TransferkitError, match=match):
        leave_one_domain_out(_domains(), "d2", "erm", **{"candidates": [{}], "settings": SETTINGS, **option})


def test_swa_and_randconv_settings_are_clear_errors():
    for start in ("x", None):  # ValueError / TypeError inside float()
        with pytest.raises(TransferkitError, match="start must be in \\[0, 1\\)"):
            SWA(start=start)
    # a kernel size of 3.7 became 3, silently; an infinite number of views failed inside int()
    with pytest.raises(TransferkitError, match="kernel_sizes must be odd sizes >= 1"):
        RandConv(kernel_sizes=(3.7,))
    for n_views in (float("inf"), True):
        with pytest.raises(TransferkitError, match="n_views must be a whole number >= 1"):
            RandConv(n_views=n_views)
    assert RandConv(kernel_sizes=(1, 3.0)).kernel_sizes == (1, 3)


@pytest.mark.parametrize("bad", ["x", None, True, -1.0, float("nan")])
def test_a_deep_methods_target_weight_that_is_not_a_number_is_a_clear_error(bad):
    from transferkit.dg.erm import ERM

    with pytest.raises(TransferkitError, match=r"target_weight must be a finite number >= 0"):
        ERM(target_weight=bad)  # "x" and None failed inside float()


def test_multitask_labels_that_are_codes_not_indices_are_a_clear_error():
    X = np.random.default_rng(0).normal(size=(20, 3))
    codes = np.where(np.arange(20) % 2, 10**9, 7)  # a head of 10**9 outputs ran out of memory in torch
    with pytest.raises(TransferkitError, match=r"labels up to 1000000000 for 2 classes.*0\.\.K-1"):
        fit_multitask(X, {"a": codes}, epochs=1)
