"""Multi-task learning: each weighting against a hand computation, seeding, a two-task fit, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.errors import TransferkitError
from transferkit.multitask import (
    MultiTaskNetwork,
    PCGrad,
    StaticWeights,
    UncertaintyWeights,
    evaluate,
    fit_multitask,
    make_weighting,
    pcgrad_project,
)


def _two_tasks(n=400, d=6, seed=0):
    """Task 'a' depends on feature 0, task 'b' (3 classes) on feature 1; the rest is noise."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    b = rng.integers(0, 3, n)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] += 3.0 * a
    X[:, 1] += 3.0 * b
    return X, {"a": a, "b": b}


def _linear_losses(ga, gb):
    """Shared vector w with L_a = ga . w and L_b = gb . w, so the task gradients are exactly ga, gb."""
    w = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64))
    ga_t, gb_t = torch.tensor(ga, dtype=torch.float64), torch.tensor(gb, dtype=torch.float64)
    return w, {"a": ga_t @ w, "b": gb_t @ w}


def _naive_pcgrad(ga, gb):
    ga, gb = np.asarray(ga, float), np.asarray(gb, float)
    pa, pb = ga.copy(), gb.copy()
    if ga @ gb < 0:
        pa = ga - (ga @ gb) / (gb @ gb) * gb
        pb = gb - (gb @ ga) / (ga @ ga) * ga
    return pa + pb


def test_static_weights_equal_the_hand_computed_sum():
    losses = {"a": torch.tensor(0.7), "b": torch.tensor(2.5)}
    assert float(StaticWeights({"a": 0.25, "b": 2.0}).combine(losses, ())) == pytest.approx(
        0.25 * 0.7 + 2.0 * 2.5
    )
    assert float(StaticWeights().combine(losses, ())) == pytest.approx(3.2)


def test_uncertainty_weighting_matches_the_formula_and_learns_its_log_variances():
    uw = UncertaintyWeights(["a", "b"])
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([0.4, -1.1]))
    la = torch.tensor(0.9, requires_grad=True)
    lb = torch.tensor(1.7, requires_grad=True)
    total = uw.combine({"a": la, "b": lb}, ())
    by_hand = np.exp(-0.4) * 0.9 + 0.2 + np.exp(1.1) * 1.7 - 0.55
    assert float(total.detach()) == pytest.approx(by_hand, rel=1e-6)
    total.backward()
    # d/ds (e^{-s} L + s/2) = -e^{-s} L + 1/2
    expected = [-np.exp(-0.4) * 0.9 + 0.5, -np.exp(1.1) * 1.7 + 0.5]
    np.testing.assert_allclose(uw.log_vars.grad.numpy(), expected, rtol=1e-6)
    assert float(la.grad) == pytest.approx(np.exp(-0.4))
    assert uw.weights()["b"] == pytest.approx(np.exp(1.1))


@pytest.mark.parametrize(
    "ga, gb, conflict",
    [([1.0, 2.0, 0.0], [-2.0, 0.5, 1.0], True), ([1.0, 2.0, 0.0], [0.5, 1.0, -1.0], False)],
)
def test_pcgrad_gradient_matches_a_naive_projection(ga, gb, conflict):
    assert (np.dot(ga, gb) < 0) == conflict
    w, losses = _linear_losses(ga, gb)
    total = PCGrad(seed=0).combine(losses, [w])
    assert float(total.detach()) == pytest.approx(
        float(losses["a"].detach() + losses["b"].detach())
    )  # the value is the plain sum
    total.backward()
    np.testing.assert_allclose(w.grad.numpy(), _naive_pcgrad(ga, gb), rtol=1e-12)
    if not conflict:
        np.testing.assert_allclose(w.grad.numpy(), np.add(ga, gb), rtol=1e-12)
    projected = pcgrad_project(torch.tensor([ga, gb], dtype=torch.float64))
    np.testing.assert_allclose(projected.sum(0).numpy(), _naive_pcgrad(ga, gb), rtol=1e-12)
    if conflict:  # each projected gradient no longer conflicts with the other task's gradient
        assert float(projected[0] @ torch.tensor(gb, dtype=torch.float64)) == pytest.approx(0.0, abs=1e-12)


def test_pcgrad_leaves_the_heads_gradients_alone():
    torch.manual_seed(0)
    net = MultiTaskNetwork(torch.nn.Linear(4, 3), 3, {"a": 2, "b": 2})
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    out = net(x)
    losses = {t: torch.nn.functional.cross_entropy(out[t], y if t == "a" else 1 - y) for t in out}
    PCGrad().combine(losses, net.shared_parameters()).backward()
    head_grad = net.heads["a"].weight.grad.clone()
    net.zero_grad()
    net(x)  # the plain loss of task a alone gives head a the same gradient
    torch.nn.functional.cross_entropy(net(x)["a"], y).backward()
    torch.testing.assert_close(head_grad, net.heads["a"].weight.grad)


@pytest.mark.parametrize("weighting", ["static", "uncertainty", "pcgrad"])
def test_seeded_runs_are_identical_and_both_tasks_are_learned(weighting):
    X, y = _two_tasks()
    Xte, yte = _two_tasks(n=300, seed=1)
    kw = dict(trunk_kwargs={"hidden": (32,)}, weighting=weighting, epochs=8, batch_size=32, lr=0.05, seed=3)
    m1, h1 = fit_multitask(X, y, **kw)
    m2, h2 = fit_multitask(X, y, **kw)
    for p, q in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(p, q)
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    assert {"a_loss", "b_loss", "a_acc", "b_acc"} <= set(h1[-1])
    acc = evaluate(m1, Xte, yte)
    assert acc["a"] > 0.85 and acc["b"] > 0.8, acc
    with pytest.raises(TransferkitError, match="X is 1-d"):  # one row, not its features counted as rows
        evaluate(m1, Xte[0], {"a": yte["a"][:1]})
    if weighting == "uncertainty":
        assert set(h1[-1]) >= {"weight_a", "weight_b"} and h1[-1]["weight_a"] != 1.0


def test_one_task_is_one_model_and_eval_sets_are_recorded():
    X, y = _two_tasks(n=200)
    _, hist = fit_multitask(X, {"b": y["b"]}, epochs=2, eval_sets={"test": (X, {"b": y["b"]})})
    assert "test_b_acc" in hist[-1] and "a_acc" not in hist[-1]


def test_bad_input_raises_clear_errors():
    X, y = _two_tasks(n=50)
    with pytest.raises(TransferkitError, match="lengths"):
        fit_multitask(X, {"a": y["a"], "b": y["b"][:40]})
    with pytest.raises(TransferkitError, match="Did you mean 'pcgrad'"):
        fit_multitask(X, y, weighting="pcgrd")
    with pytest.raises(TransferkitError, match="only one class"):
        fit_multitask(X, {"a": y["a"], "b": np.zeros(50, int)})
    with pytest.raises(TransferkitError, match=">= 0"):
        fit_multitask(X, y, weights={"a": 1.0, "b": -0.5})
    with pytest.raises(TransferkitError, match="no weight for"):
        fit_multitask(X, y, weights={"a": 1.0})
    with pytest.raises(TransferkitError, match="only used with weighting='static'"):
        make_weighting("pcgrad", ["a", "b"], weights={"a": 1.0, "b": 1.0})
    with pytest.raises(TransferkitError, match="negative labels"):
        fit_multitask(X, {"a": y["a"] - 1, "b": y["b"]})
    with pytest.raises(TransferkitError, match="non-empty"):
        fit_multitask(X, {})
    with pytest.raises(TransferkitError, match="epochs"):
        fit_multitask(X, y, epochs=0)


def test_predict_checks_the_rows_it_is_given():
    from transferkit.multitask import predict

    X, y = _two_tasks(n=60)
    m, _ = fit_multitask(X, y, epochs=1, batch_size=16)
    with pytest.raises(TransferkitError, match="X is 1-d"):
        predict(m, X[0])
    with pytest.raises(TransferkitError, match="rows of shape \\(5,\\), but the network was trained on"):
        predict(m, X[:, :5])
    with pytest.raises(TransferkitError, match="lenet trunk needs \\(C, 32, 32\\) images"):
        fit_multitask(np.zeros((8, 3, 16, 16), np.float32), {"a": np.arange(8) % 2}, trunk="lenet", epochs=1)


def test_weights_go_to_a_static_weighting_object_and_other_weightings_refuse_them():
    X, y = _two_tasks(n=60)
    kw = dict(epochs=1, batch_size=16, weights={"a": 10.0, "b": 0.0})
    _, by_name = fit_multitask(X, y, weighting="static", **kw)
    _, by_object = fit_multitask(X, y, weighting=StaticWeights(), **kw)
    assert by_object[0]["loss"] == by_name[0]["loss"] == pytest.approx(10 * by_name[0]["a_loss"])
    assert by_object[0]["weight_a"] == 10.0
    for weighting in (PCGrad(), UncertaintyWeights(["a", "b"])):
        with pytest.raises(TransferkitError, match="only used with weighting='static'"):
            fit_multitask(X, y, weighting=weighting, **kw)
    with pytest.raises(TransferkitError, match="has its own weights"):
        fit_multitask(X, y, weighting=StaticWeights({"a": 1.0, "b": 1.0}), **kw)


def test_a_used_weighting_object_fits_as_its_name_does():
    X, y = _two_tasks(n=60)
    y["c"] = 1 - y["a"]  # three tasks, so PCGrad's random projection order matters
    kw = dict(epochs=2, batch_size=16, seed=3)
    for name, make in [
        ("uncertainty", lambda: UncertaintyWeights(["a", "b", "c"])),
        ("pcgrad", lambda: PCGrad(3)),
    ]:
        _, by_name = fit_multitask(X, y, weighting=name, **kw)
        w = make()
        m1, first = fit_multitask(X, y, weighting=w, **kw)
        m2, again = fit_multitask(X, y, weighting=w, **kw)  # w was trained by the first fit
        assert [r["loss"] for r in by_name] == [r["loss"] for r in first] == [r["loss"] for r in again]
        # the trained weighting is the object passed, also as model.weighting, and not in the state_dict
        assert m1.weighting is m2.weighting is w and not any(
            k.startswith("weighting") for k in m2.state_dict()
        )
        learned = {k[len("weight_") :]: v for k, v in again[-1].items() if k.startswith("weight_")}
        assert w.weights() == learned
        assert (learned != {"a": 1.0, "b": 1.0, "c": 1.0}) if name == "uncertainty" else learned == {}


def test_task_names_that_collide_as_text_are_refused():
    X, y = _two_tasks(n=40)
    with pytest.raises(TransferkitError, match="tasks 0 and '0' both become the task name '0'"):
        fit_multitask(X, {0: y["a"], "0": y["b"]}, epochs=1)


def test_bad_weights_trunk_kwargs_and_eval_sets_are_clear_errors_before_training():
    X, y = _two_tasks(n=40)
    with pytest.raises(TransferkitError, match="task weights must be a dict .* got a list"):
        fit_multitask(X, y, weights=[1.0, 2.0], epochs=1)
    with pytest.raises(TransferkitError, match="the weight of task 'a' must be a number, got 'x'"):
        fit_multitask(X, y, weights={"a": "x", "b": 1.0}, epochs=1)
    with pytest.raises(
        TransferkitError, match=r"trunk_kwargs \{'width': 3\} do not fit the mlp trunk.*hidden, dropout"
    ):
        fit_multitask(X, y, trunk_kwargs={"width": 3}, epochs=1)
    with pytest.raises(
        TransferkitError, match=r"eval_sets\['val'\]: each entry must be a pair \(X, targets\)"
    ):
        fit_multitask(X, y, epochs=1, eval_sets={"val": X})
    with pytest.raises(
        TransferkitError, match=r"eval_sets\['val'\]: X has rows of shape \(3,\), but the training"
    ):
        fit_multitask(X, y, epochs=1, eval_sets={"val": (X[:, :3], y)})
    with pytest.raises(TransferkitError, match="epochs must be a whole number >= 1, got 1.7"):
        fit_multitask(X, y, epochs=1.7)  # trained one epoch, silently
    trunk = (torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.ReLU()), 8)
    with pytest.raises(TransferkitError, match="a \\(module, feature size\\) trunk is already built"):
        fit_multitask(X, y, trunk=trunk, trunk_kwargs={"hidden": (4,)}, epochs=1)  # ignored, silently
    if not torch.cuda.is_available():
        with pytest.raises(TransferkitError, match="this machine has no CUDA GPU"):
            fit_multitask(X, y, epochs=1, device="cuda")


def test_a_batchnorm_trunk_skips_a_last_batch_of_one_row():
    X, y = _two_tasks(n=65, d=5)
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU())
    _, hist = fit_multitask(X, {"a": y["a"]}, trunk=(trunk, 8), epochs=2, batch_size=64)
    assert [r["step"] for r in hist] == [1, 2]  # 64 rows per epoch; the 65th would be a batch of one
