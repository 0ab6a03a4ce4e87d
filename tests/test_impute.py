"""Missing values: the ``impute`` step against scikit-learn's imputer, the runs and the predictions
that use it, and the errors that name a missing value when no step fills it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression

from transferkit.cli import main
from transferkit.errors import TransferkitError
from transferkit.preprocessing import Impute, Standardize, export_steps, replay_steps
from transferkit.shallow.base import DAClassifier


def _rows(seed: int = 0, n: int = 80):
    """Source and target rows of 3 columns with holes, the target's only in column 2; labels hidden."""
    rng = np.random.default_rng(seed)
    y = np.arange(2 * n) % 2
    X = rng.normal(size=(2 * n, 3)) + 2.0 * y[:, None]
    sd = np.r_[np.zeros(n, np.int64), -np.ones(n, np.int64)]
    X[n:] += 0.5
    holes = rng.random(X.shape) < 0.2
    holes[n:, :2] = False
    X[holes] = np.nan
    return X, np.where(sd < 0, -1, y), sd, y


@pytest.mark.parametrize("strategy", ["median", "mean"])
def test_impute_is_scikit_learns_imputer_on_the_source_with_an_indicator_over_every_row(strategy):
    X, y, sd, _ = _rows()
    Z = Impute(strategy=strategy).fit_transform(X, y, sd)
    filled = SimpleImputer(strategy=strategy).fit(X[sd >= 0]).transform(X)  # the source's statistics
    marks = MissingIndicator(features="missing-only").fit(X).transform(X)  # holes anywhere
    np.testing.assert_allclose(Z, np.hstack([filled, marks.astype(float)]))
    assert Z.shape[1] == 6 and not np.isnan(Z).any()
    # no target value moves the filling: the target's own holes get the source's statistic
    X2 = X.copy()
    X2[sd < 0] += 100.0
    step = Impute(strategy=strategy).fit(X2, y, sd)
    np.testing.assert_allclose(step.fill_, Impute(strategy=strategy).fit(X, y, sd).fill_)
    assert Impute(indicator=False).fit_transform(X, y, sd).shape[1] == 3


def test_impute_errors_and_its_place_first():
    X, y, sd, _ = _rows()
    Xe = X.copy()
    Xe[sd >= 0, 1] = np.nan  # no known value in the source
    with pytest.raises(TransferkitError, match=r"feature\(s\) 1 .*no known value in any source row"):
        Impute().fit(Xe, y, sd)
    with pytest.raises(TransferkitError, match="strategy must be 'median' or 'mean'"):
        Impute(strategy="mode").fit(X, y, sd)
    Xi = X.copy()
    Xi[0, 0] = np.inf  # an infinity is no missing value
    with pytest.raises(TransferkitError, match="infinite values"):
        Impute().fit(Xi, y, sd)
    # the composer takes NaN only when the first step fills it
    clf = DAClassifier(None, LogisticRegression(), (Impute(), Standardize(per_domain=False)))
    assert clf.fit(X, y, sd).predict(X[sd < 0], sd[sd < 0]).shape == ((sd < 0).sum(),)
    for steps in ((), (Standardize(), Impute())):
        with pytest.raises(TransferkitError, match="NaN or infinite values.*the 'impute' preprocessing step"):
            DAClassifier(None, LogisticRegression(), steps).fit(X, y, sd)


def test_replayed_impute_gives_the_fitted_transform():
    X, y, sd, _ = _rows(1)
    steps = [Impute().fit(X, y, sd)]
    records = export_steps(steps, ["impute"], {0: "a", -1: "b"})
    json.dumps(records)  # saved with a network as JSON
    names = np.where(sd < 0, "b", "a")
    np.testing.assert_allclose(replay_steps(records, X, names), steps[0].transform(X, sd))


def _table(path, seed: int = 0):
    """A table whose income holes say something (they are filled with the source's median)."""
    rng = np.random.default_rng(seed)
    lines = ["domain,label,age,income"]
    for dom, shift in (("north", 0.0), ("south", 0.4)):
        for i in range(70):
            c = i % 2
            age = rng.normal() + 1.5 * c + shift
            income = "" if rng.random() < 0.2 else f"{rng.normal() + 1.5 * c + shift:.4f}"
            lines.append(f"{dom},{('no', 'yes')[c]},{age:.4f},{income}")
    path.write_text("\n".join(lines) + "\n")


def test_a_table_with_missing_values_runs_with_impute_and_predict_replays_it(tmp_path, capsys):
    table = tmp_path / "t.csv"
    _table(table)
    base = ["run", "--dataset", str(table), "--source", "north", "--target", "south", "--quiet"]
    # without a step to fill them: one error, before any method, naming the cell and the fix
    assert main([*base, "--method", "source-only", "coral"]) == 2
    err = capsys.readouterr().err
    assert "has NaN (a missing value)" in err and "column 'income'" in err
    assert "--preprocess impute standardize:per_domain=false" in err and err.count("NaN") == 1
    out = tmp_path / "run"
    steps = ["--preprocess", "impute", "standardize:per_domain=false"]
    argv = [*base, *steps, "--method", "coral", "deep-source-only", "--set", "steps=150"]
    assert main(argv) == 2  # --set with two methods: the usual usage error
    capsys.readouterr()
    assert main([*base, *steps, "--method", "coral", "--out", str(tmp_path / "shallow")]) == 0
    assert json.loads((tmp_path / "shallow" / "result.json").read_text())["accuracy"] > 60
    assert main([*base, *steps, "--method", "deep-source-only", "--set", "steps=150", "--out", str(out)]) == 0
    spec = json.loads((out / "model" / "network.json").read_text())
    assert spec["in_shape"] == [3]  # age, income and income's 0/1 "was missing" column
    assert [r["step"] for r in spec["preprocess"]] == ["impute", "standardize:per_domain=false"]
    with open(out / "predictions.csv") as f:
        expected = [p["predicted_class"] for p in csv.DictReader(f)]
    target = tmp_path / "p.csv"
    assert (
        main(["predict", str(out), "--dataset", str(table), "--domains", "south", "--out", str(target)]) == 0
    )
    with open(target) as f:
        assert [p["prediction"] for p in csv.DictReader(f)] == expected
    # a model trained without impute refuses new rows with holes, naming them
    plain = tmp_path / "plain.csv"
    plain.write_text(table.read_text().replace(",,", ",0,").replace(",\n", ",0\n"))
    assert main([*base[:2], str(plain), *base[3:], "--method", "deep-source-only", "--set", "steps=50",
                 "--out", str(tmp_path / "p2")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "p2"), "--dataset", str(table), "--out", str(target)]) == 2
    assert "has NaN (a missing value)" in capsys.readouterr().err
