"""The loaders are right: 1-NN reproduces the published baselines exactly, through the full run path."""

from __future__ import annotations

import warnings

import pytest
from conftest import require_dataset

from transferkit.datasets import load_dataset
from transferkit.experiment import RunSpec, run

# Published 1NN accuracies (GFK / JDA papers, collected in jindongwang/transferlearning).
OFFICE_1NN = {
    ("caltech", "amazon"): 23.70, ("caltech", "webcam"): 25.76, ("caltech", "dslr"): 25.48,
    ("amazon", "caltech"): 26.00, ("amazon", "webcam"): 29.83, ("amazon", "dslr"): 25.48,
    ("webcam", "caltech"): 19.86, ("webcam", "amazon"): 22.96, ("webcam", "dslr"): 59.24,
    ("dslr", "caltech"): 26.27, ("dslr", "amazon"): 28.50, ("dslr", "webcam"): 63.39,
}  # fmt: skip


@pytest.fixture(scope="module")
def office():
    return load_dataset("office-caltech10")


@pytest.mark.parametrize("source,target", sorted(OFFICE_1NN))
def test_office_caltech10_1nn_matches_published(office, source, target):
    rec = run(RunSpec("office-caltech10", (source,), (target,), "knn"), dataset=office, command="test")
    assert rec["accuracy"] == pytest.approx(OFFICE_1NN[source, target], abs=0.01)
    assert rec["config"]["preprocess"][0]["params"] == {"norm": "l1"}


def test_office_caltech10_1nn_average(office):
    accs = [
        run(RunSpec("office-caltech10", (s,), (t,), "knn"), dataset=office, command="")["accuracy"]
        for s, t in OFFICE_1NN
    ]
    assert sum(accs) / len(accs) == pytest.approx(31.37, abs=0.01)


@pytest.mark.parametrize("source,target,expected", [("mnist", "usps", 65.94), ("usps", "mnist", 44.70)])
def test_mnist_usps_jda_1nn_matches_published(source, target, expected):
    require_dataset("mnist-usps-jda")
    rec = run(RunSpec("mnist-usps-jda", (source,), (target,), "knn"), command="test")
    assert rec["accuracy"] == pytest.approx(expected, abs=0.01)


# Published JDA accuracies (Long et al., ICCV 2013, Table 2; collected in jindongwang/transferlearning),
# with the authors' settings of their Office-Caltech10 script: k=100, lambda=1, T=10 and the linear
# kernel (transferkit's default, the primal form, gives 43.83 on average against 46.31); the four
# three quick tasks, amazon->dslr the one the primal form missed most (28.66); all twelve are in
# benchmarks/results/jda-published-settings
JDA_OFFICE = {("amazon", "dslr"): 39.49, ("webcam", "dslr"): 89.17, ("dslr", "webcam"): 89.49}


@pytest.mark.parametrize("source,target", sorted(JDA_OFFICE))
def test_office_caltech10_jda_with_the_authors_kernel_matches_published(office, source, target):
    spec = RunSpec("office-caltech10", (source,), (target,), "jda", params={"kernel": "linear"})
    assert run(spec, dataset=office, command="test")["accuracy"] == pytest.approx(
        JDA_OFFICE[source, target], abs=0.01
    )


@pytest.mark.parametrize("source,target,expected", [("mnist", "usps", 67.28), ("usps", "mnist", 59.65)])
def test_mnist_usps_jda_with_the_authors_lambda_matches_published(source, target, expected):
    # the authors' digit script: the primal form with lambda = 0.1 (transferkit's default lambda is 1)
    require_dataset("mnist-usps-jda")
    spec = RunSpec("mnist-usps-jda", (source,), (target,), "jda", params={"reg": 0.1})
    assert run(spec, command="test")["accuracy"] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    "method,params,source,target,expected",
    [
        # GFK + 1-NN: the JDA paper's GFK row is reproduced task by task, six tasks at dimension 20 and the
        # other six at 10 (benchmarks/results/published-1nn); one of each here
        ("gfk", {"n_components": 20}, "caltech", "amazon", 41.02),
        ("gfk", {"n_components": 10}, "webcam", "dslr", 80.89),
        # linear TCA (k=100) + 1-NN on rows standardized per domain is PCA: the paper's PCA row
        ("tca", {"n_components": 100}, "dslr", "webcam", 75.93),
    ],
)
def test_office_caltech10_published_1nn_rows(office, method, params, source, target, expected):
    spec = RunSpec(
        "office-caltech10", (source,), (target,), method, params=params, estimator="nearest-neighbor"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TCA's "this is PCA" warning
        assert run(spec, dataset=office, command="test")["accuracy"] == pytest.approx(expected, abs=0.01)
