"""Label-free model selection: scorers against naive references, no target label read, sklearn use."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import shifted_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from transferkit.errors import TransferkitError
from transferkit.selection import (
    DomainShuffleSplit,
    choose,
    chosen_epoch,
    get_scorer,
    list_scorers,
    predict_proba,
    score_every_epoch,
)
from transferkit.shallow.base import DAClassifier
from transferkit.shallow.coral import CORAL


class Fixed:
    """A stand-in classifier with given probabilities per row (rows are identified by X[:, 0])."""

    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=float)
        self.classes_ = np.arange(self.proba.shape[1])

    def predict_proba(self, X):
        return self.proba[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return self.predict_proba(X).argmax(1)


def test_snd_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=30)
    X = np.arange(30.0)[:, None]
    y = -np.ones(30, int)
    got = get_scorer("snd", temperature=0.1)(Fixed(p), X, y)
    q = p / np.linalg.norm(p, axis=1, keepdims=True)
    total = 0.0
    for i in range(30):
        sims = np.array([q[i] @ q[j] / 0.1 for j in range(30) if j != i])
        a = np.exp(sims - sims.max())
        a /= a.sum()
        total += -np.sum(a * np.log(a))
    assert got == pytest.approx(total / 30, rel=1e-10)


def test_entropy_matches_the_definition_and_prefers_confident_models():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    X, y = np.array([[0.0], [1.0]]), np.array([-1, -1])
    expected = np.mean([np.sum(r * np.log(r)) for r in p])
    assert get_scorer("entropy")(Fixed(p), X, y) == pytest.approx(expected)
    sharp = Fixed([[0.99, 0.01], [0.01, 0.99]])
    assert get_scorer("entropy")(sharp, X, y) > get_scorer("entropy")(Fixed(p), X, y)


def test_dev_matches_its_formula():
    rng = np.random.default_rng(1)
    X, y, sd = shifted_blobs(n=80, d=3, seed=1)
    y = np.where(sd < 0, -1, y)
    clf = LogisticRegression().fit(X[sd >= 0], y[sd >= 0])
    scorer = get_scorer("dev", random_state=0)
    got = scorer(clf, X, y, sd)
    # naive: the same density ratio, then the control-variate estimate written out
    from transferkit.selection import _density_ratio

    w = _density_ratio(X, sd < 0, None, 0)[sd >= 0]
    p = clf.predict_proba(X[sd >= 0])
    loss = np.array([-np.log(p[i, y[sd >= 0][i]]) for i in range(len(w))])
    wl = w * loss
    n = len(w)
    cov = sum((a - wl.mean()) * (b - w.mean()) for a, b in zip(wl, w)) / (n - 1)
    var = sum((b - w.mean()) ** 2 for b in w) / (n - 1)  # both unbiased, as in the DEV authors' code
    eta = -cov / var
    assert got == pytest.approx(-(wl.mean() + eta * w.mean() - eta))
    assert rng is not None


def test_iwcv_with_no_shift_is_plain_accuracy_and_with_shift_weights_the_target_region():
    # target lives where x > 0; the classifier is right only there: IWCV must score it above
    # plain source accuracy
    rng = np.random.default_rng(0)
    xs = rng.uniform(-3, 3, 400)
    xt = rng.uniform(0, 3, 400)
    X = np.r_[xs, xt][:, None]
    y = np.r_[(xs > 0).astype(int), -np.ones(400, int)]

    class RightOnPositive:
        classes_ = np.array([0, 1])

        def predict(self, X):
            x = np.asarray(X)[:, 0]
            return np.where(x > 0, 1, 1)  # always 1: right for x > 0, wrong for x < 0

    plain = get_scorer("source-val")(RightOnPositive(), X, y)
    weighted = get_scorer("iwcv")(RightOnPositive(), X, y)
    assert plain == pytest.approx(np.mean(xs > 0))
    assert weighted > plain + 0.25


@pytest.mark.parametrize("name", list_scorers())
def test_scorers_never_read_target_labels(name):
    X, y_true, sd = shifted_blobs(n=60, d=3, seed=2)
    y = np.where(sd < 0, -1, y_true)
    clf = DAClassifier(CORAL(), LogisticRegression()).fit(X, y, sd)
    scrambled = y_true.copy()
    scrambled[sd < 0] = np.random.default_rng(0).permutation(scrambled[sd < 0])
    scorer = get_scorer(name)
    masked = scorer(clf, X, y, sd)
    # given sample_domain, whatever labels sit on target rows are ignored
    assert scorer(clf, X, scrambled, sd) == pytest.approx(masked)
    assert scorer(clf, X, y_true, sd) == pytest.approx(masked)


# SND is left out on purpose: a collapsed model that predicts the same soft distribution for every
# row makes every neighbourhood "dense" and scores high; a known weakness of SND (Saito et al. 2021
# pair it with a check against collapse), which the bench shows by reporting it beside the oracle.
@pytest.mark.parametrize("name", [n for n in list_scorers() if n != "snd"])
def test_scorers_rank_a_real_model_above_a_broken_one(name):
    X, y_true, sd = shifted_blobs(n=150, d=4, seed=3, shift=0.5)
    y = np.where(sd < 0, -1, y_true)
    good = DAClassifier(CORAL(), LogisticRegression()).fit(X, y, sd)
    noisy = y.copy()
    src = np.flatnonzero(sd >= 0)
    noisy[src] = np.random.default_rng(0).permutation(noisy[src])  # a model that learned noise
    bad = DAClassifier(CORAL(), LogisticRegression(C=1e-3)).fit(X, noisy, sd)
    scorer = get_scorer(name)
    assert scorer(good, X, y, sd) > scorer(bad, X, y, sd)


def test_decision_function_gives_probabilities_by_softmax():
    from transferkit.estimators import LinearSVMCV

    X, y, sd = shifted_blobs(n=40, d=2)
    y = np.where(sd < 0, -1, y)
    clf = DAClassifier(CORAL(), LinearSVMCV()).fit(X, y, sd)
    assert not hasattr(clf, "predict_proba")
    p = predict_proba(clf, X[sd < 0], sd[sd < 0])
    assert p.shape == (40, 2) and np.allclose(p.sum(1), 1)
    assert np.array_equal(p.argmax(1), clf.predict(X[sd < 0], sd[sd < 0]))


def test_domain_shuffle_split_holds_out_source_and_keeps_the_target_in_both():
    X, y, sd = shifted_blobs(n=50)
    y = np.where(sd < 0, -1, y)
    ((train, test),) = DomainShuffleSplit(1, 0.2, 0).split(X, y)
    tgt = set(np.flatnonzero(sd < 0))
    assert tgt <= set(train) and tgt <= set(test)
    assert not (set(train) - tgt) & (set(test) - tgt)
    assert len(set(test) - tgt) == 10
    with pytest.raises(TransferkitError, match="both source rows and target rows"):
        next(DomainShuffleSplit().split(X[sd >= 0], y[sd >= 0]))


def test_grid_search_with_a_label_free_scorer():
    X, y, sd = shifted_blobs(n=80, d=3, seed=4, scale=2.0)
    y = np.where(sd < 0, -1, y)
    search = GridSearchCV(
        DAClassifier(CORAL(), LogisticRegression()),
        {"adapter__reg": [0.1, 1.0]},
        scoring=get_scorer("iwcv"),
        cv=DomainShuffleSplit(2, 0.25, 0),
    )
    search.fit(X, y)  # sample_domain inferred from y == -1, in fit and in the scorer
    assert search.best_params_["adapter__reg"] in (0.1, 1.0)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_unknown_scorer_is_a_clear_error():
    with pytest.raises(TransferkitError, match="Did you mean 'entropy'"):
        get_scorer("entropi")


def test_chosen_epoch_takes_the_best_score_and_the_earliest_of_ties():
    history = [
        {"epoch": 1, "select_snd": 0.2},
        {"epoch": 2, "select_snd": 0.5},
        {"epoch": 3, "select_snd": 0.5},
    ]
    assert chosen_epoch(history, "snd")["epoch"] == 2
    with pytest.raises(TransferkitError, match="no epoch of this history has a 'select_mixval' score"):
        chosen_epoch(history, "mixval")
    # epochs whose target predictions collapsed are passed over (as read back from history.csv too)
    history[1]["target_collapsed"] = True
    assert chosen_epoch(history, "snd")["epoch"] == 3
    history[2]["target_collapsed"] = "True"
    assert chosen_epoch(history, "snd")["epoch"] == 1
    history[0]["target_collapsed"] = True  # all collapsed: the score alone decides
    assert chosen_epoch(history, "snd")["epoch"] == 2


def test_score_every_epoch_marks_collapsed_epochs(monkeypatch):
    """An epoch whose network puts every target row into one class is marked, the others not."""
    import transferkit.nn.trainer as trainer_module

    epochs = iter([np.zeros(40, int), np.arange(40) % 2])  # epoch 1: one class; epoch 2: both

    class Network(Fixed):
        def predict(self, X):
            return next(epochs)

    monkeypatch.setattr(
        trainer_module, "TrainerClassifier", lambda trainer, rows=None: Network(np.full((40, 2), 0.5))
    )
    callback = score_every_epoch(np.c_[np.arange(40)], ("entropy",), source_labels=np.arange(40) % 2)
    records = [{}, {}]
    for record in records:
        callback(None, record)
    assert records[0].get("target_collapsed") is True and "target_collapsed" not in records[1]
    assert all("select_entropy" in r for r in records)


def test_score_every_epoch_takes_target_only_scorers():
    with pytest.raises(TransferkitError, match="iwcv need held-out source rows"):
        score_every_epoch(np.zeros((4, 2)), ("entropy", "iwcv"))
    with pytest.raises(TransferkitError, match="X_target is empty"):
        score_every_epoch(np.zeros((0, 2)))


def test_bench_reports_each_scorers_choice_beside_the_oracle(tmp_path):
    from transferkit.benchmark import run_suite

    rows = run_suite(
        "office-caltech10", tmp_path, methods=["coral"], tasks=[("dslr", "webcam")],
        select=["iwcv", "snd"], estimator="logreg", quiet=True, jobs=1,
    )  # fmt: skip
    selections = [r["selection"] for r in rows]
    assert selections == ["fixed-defaults", "select:iwcv", "select:snd", "oracle"]
    oracle = rows[-1]["accuracy"]
    assert all(r["accuracy"] <= oracle for r in rows[1:])
    with open(tmp_path / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    summary = (tmp_path / "summary.md").read_text()
    assert "select:iwcv" in summary and "which scorer to trust" in summary
    with open(tmp_path / "selection.csv") as fh:
        cands = list(csv.DictReader(fh))
    assert len(cands) == 3  # coral's grid: reg in (0.1, 1, 10)
    assert max(float(c["accuracy"]) for c in cands) == pytest.approx(oracle)


def test_run_select_picks_by_the_scorer_and_records_the_candidates(tmp_path, capsys):
    import json

    from transferkit.cli import main

    argv = ["run", "--dataset", "office-caltech10", "--source", "dslr", "--target", "webcam",
            "--method", "coral", "--select", "iwcv", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((tmp_path / "result.json").read_text())
    assert rec["selection"] == "select:iwcv"
    cands = rec["candidates"]
    best = max(cands, key=lambda c: c["scores"]["iwcv"])
    assert rec["config"]["method"]["params"]["reg"] == best["params"]["reg"]
    assert "oracle" in capsys.readouterr().out
    assert main(["run", "--method", "coral", "--select", "entropi"]) == 2


def test_choose_skips_collapsed_candidates_for_target_only_scorers():
    cands = [
        {"params": {"a": 1}, "scores": {"entropy": -0.0, "iwcv": 0.4}, "collapsed": True},
        {"params": {"a": 2}, "scores": {"entropy": -0.7, "iwcv": 0.9}, "collapsed": False},
        {"params": {"a": 3}, "scores": {"entropy": -0.5, "iwcv": 0.5}, "collapsed": False},
    ]
    assert choose(cands, "entropy")["params"] == {"a": 3}  # the collapsed one scores best, but is skipped
    assert choose(cands, "iwcv")["params"] == {"a": 2}
    cands[0]["scores"]["iwcv"] = 1.0  # source-based scorers choose among every candidate
    assert choose(cands, "iwcv")["params"] == {"a": 1}
    every = [{**c, "collapsed": True} for c in cands]  # all collapsed: the scorer's choice stands
    assert choose(every, "entropy")["params"] == {"a": 1}
    rows = [{"score:snd": "2.0", "collapsed": "1"}, {"score:snd": "1.0", "collapsed": "0"}]  # read from CSV
    assert choose(rows, "snd", lambda c, name: c[f"score:{name}"]) is rows[1]
    with pytest.raises(TransferkitError, match="no candidate"):
        choose([], "snd")


def test_select_runs_marks_candidates_whose_target_predictions_collapse(monkeypatch, tmp_path):
    """A candidate predicting one class everywhere is the most confident (best entropy): ``select_runs``
    marks it and neither the bench nor ``run --select`` chooses it with a target-only scorer."""
    import json

    from transferkit import experiment
    from transferkit.benchmark import run_suite
    from transferkit.cli import main

    real_build = experiment.build_classifier

    class OneClass:
        """Predicts class 0 for every row, with certainty."""

        def fit(self, X, y, sample_domain=None):
            self.classes_ = np.unique(y[y >= 0])
            return self

        def predict_proba(self, X, sample_domain=None):
            p = np.zeros((len(X), len(self.classes_)))
            p[:, 0] = 1.0
            return p

        def predict(self, X, sample_domain=None):
            return np.zeros(len(X), dtype=int)

    def build(spec, preprocess):
        clf, config = real_build(spec, preprocess)
        return (OneClass() if float(spec.params.get("reg", 1)) == 10.0 else clf), config

    monkeypatch.setattr(experiment, "build_classifier", build)
    rows = run_suite(
        "office-caltech10", tmp_path, methods=["coral"], tasks=[("dslr", "webcam")],
        select=["entropy", "source-val"], estimator="logreg", quiet=True, jobs=1,
    )  # fmt: skip
    with open(tmp_path / "selection.csv") as fh:
        cands = {json.loads(c["params"])["reg"]: c for c in csv.DictReader(fh)}
    assert cands[10.0]["collapsed"] == "1" and cands[1.0]["collapsed"] == "0"
    # the one-class candidate has the best entropy there is (0) but is not chosen
    assert float(cands[10.0]["score:entropy"]) == max(float(c["score:entropy"]) for c in cands.values())
    chosen = {r["selection"]: json.loads(r["params"]).get("reg") for r in rows}
    assert chosen["select:entropy"] in (0.1, 1.0)
    out = str(tmp_path / "r")
    argv = ["run", "--dataset", "office-caltech10", "--source", "dslr", "--target", "webcam", "--method",
            "coral", "--estimator", "logreg", "--select", "entropy", "--out", out]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((tmp_path / "r" / "result.json").read_text())
    assert float(rec["config"]["method"]["params"]["reg"]) != 10.0


def test_scorers_refuse_to_guess_domains_and_splits_refuse_labelled_targets():
    X, y_true, sd = shifted_blobs(n=60, d=3, seed=2)
    two = np.where((sd < 0) & (np.arange(len(sd)) % 2 == 0), -2, sd)  # two target domains
    y = np.where(sd < 0, -1, y_true)
    clf = DAClassifier(CORAL()).fit(X, y, two)
    for name in ("entropy", "source-val"):
        with pytest.raises(
            TransferkitError, match="several target domains \\[-2, -1\\].*call the scorer with"
        ):
            get_scorer(name)(clf, X, y)
        assert np.isfinite(get_scorer(name)(clf, X, y, two))  # told the domains: scored
    with pytest.raises(TransferkitError, match="y holds a label on every target row"):
        next(DomainShuffleSplit(1).split(X, y_true, sd))
    assert next(DomainShuffleSplit(1).split(X, y, sd))  # -1 on the target rows: fine


def test_mixval_mixes_integer_rows_as_numbers():
    # counts: the mixture 0.55 * 1 + 0.45 * 2 is 1.45, not the integer 1
    seen = []

    class Spy(Fixed):
        def predict(self, X, sample_domain=None):
            seen.append(np.asarray(X))
            return np.zeros(len(X), int)

    X = np.arange(40).reshape(20, 2)
    y = -np.ones(20, int)
    get_scorer("mixval", n_pairs=10)(Spy(np.full((20, 2), 0.5)), X, y)
    assert seen[-1].dtype == np.float64 and not np.allclose(seen[-1], np.round(seen[-1]))


def test_select_runs_refuses_a_spec_that_reveals_target_labels():
    # it chooses among unsupervised runs: with revealed labels it fitted every candidate without them
    from transferkit.datasets import load_dataset
    from transferkit.experiment import RunSpec, select_runs

    spec = RunSpec(dataset="office-caltech10", sources=("dslr",), targets=("webcam",), method="coral",
                   target_labels=3)  # fmt: skip
    with pytest.raises(TransferkitError, match="reveals 3 target labels per class"):
        select_runs(spec, load_dataset("office-caltech10"), (), [{}], ["entropy"])


def test_density_ratio_is_cross_fitted_so_rows_it_could_memorize_get_no_false_shift():
    # no shift at all, but more features than rows: a domain classifier scored on the rows it was
    # fitted on separates them perfectly (every source ratio near 0: a shift that is not there);
    # cross-fitted, with its strength chosen by out-of-fold log-loss, it sees no shift
    from transferkit.selection import _density_ratio

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(160, 200))  # more features than rows: separable
    is_target = np.r_[np.zeros(80, bool), np.ones(80, bool)]
    w = _density_ratio(Z, is_target, None, 0)
    assert 0.8 < w[~is_target].mean() < 1.25 and 0.8 < w.min() and w.max() < 1.25
    in_sample = LogisticRegression(C=1.0, max_iter=1000).fit(Z, is_target).predict_proba(Z)[:, 1]
    assert np.all((in_sample > 0.5) == is_target)  # what the in-sample fit made of the same rows
    assert np.mean(in_sample[~is_target] / (1 - in_sample[~is_target])) < 0.3


def test_density_ratio_matches_a_naive_cross_fitting_loop():
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from transferkit.selection import DENSITY_RATIO_CS, _density_ratio

    X, _, sd = shifted_blobs(n=60, d=4, seed=3)
    t = sd < 0
    Zs = StandardScaler().fit_transform(X)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=7).split(Zs, t))
    losses, ratios = [], []
    for C in DENSITY_RATIO_CS:
        p = np.zeros(len(X))
        for fit, held in folds:  # each row's probability from the classifier that did not see it
            clf = LogisticRegression(C=C, max_iter=1000, random_state=7).fit(Zs[fit], t[fit])
            for i in held:
                p[i] = clf.predict_proba(Zs[i : i + 1])[0, 1]
        p = np.clip(p, 1e-6, 1 - 1e-6)
        losses.append(-np.mean([np.log(p[i]) if t[i] else np.log(1 - p[i]) for i in range(len(p))]))
        ratios.append(p / (1 - p) * ((~t).sum() / t.sum()))
    np.testing.assert_allclose(_density_ratio(X, t, None, 7), ratios[int(np.argmin(losses))], rtol=1e-7)
    np.testing.assert_allclose(_density_ratio(X, t, 0.01, 7), ratios[1], rtol=1e-7)


def test_density_ratio_settings_and_domains_too_small_to_cross_fit():
    from transferkit.selection import _density_ratio

    X = np.arange(12.0).reshape(6, 2)
    one_target = np.r_[np.zeros(5, bool), True]
    np.testing.assert_array_equal(_density_ratio(X, one_target, None, 0), np.ones(6))  # no evidence
    for C in (0, -1.0, float("nan"), "1", True):
        with pytest.raises(TransferkitError, match="C must be a number > 0"):
            _density_ratio(X, np.r_[np.zeros(3, bool), np.ones(3, bool)], C, 0)


def test_iwcv_estimates_the_weights_of_the_same_rows_once(monkeypatch):
    from transferkit import selection

    X, y, sd = shifted_blobs(n=60, d=3, seed=2)
    y = np.where(sd < 0, -1, y)
    calls = []
    real = selection._density_ratio
    monkeypatch.setattr(selection, "_density_ratio", lambda *a: calls.append(1) or real(*a))
    scorer = get_scorer("iwcv", random_state=0)
    a = LogisticRegression().fit(X[sd >= 0], y[sd >= 0])
    b = LogisticRegression(C=1e-3).fit(X[sd >= 0], y[sd >= 0])
    first = scorer(a, X, y, sd)
    scorer(b, X, y, sd)  # another candidate, the same rows: the same weights
    assert len(calls) == 1 and scorer(a, X, y, sd) == first
    scorer(a, X[5:], y[5:], sd[5:])  # other rows: estimated again
    assert len(calls) == 2
    assert repr(scorer) == "IWCVScorer(C=None, random_state=0)"
