"""Audit of naming a table's columns, categorical codes and shallow models saved for `transferkit predict`:
a skops file whose functions run code, codes written as floats by pandas, a column named alone in a
sweep file, a classifier.json naming too few classes, predict on a folder without a model, and the
warning for an earlier run's fitted classifier left in --out."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from transferkit.cli import main
from transferkit.datasets.table import load_table
from transferkit.errors import TransferkitError
from transferkit.shallow.saved import MODEL, SPEC, load_classifier


def _table(path, colour=lambda i, c: str(c + 1), domains=("a", "b"), header="domain"):
    """Domains 'a' (source) and 'b' (target), a number x and a code colour that tells the class."""
    rng = np.random.default_rng(0)
    rows = [f"{header},label,x,colour"]
    for dom in domains:
        for i in range(40):
            c = i % 2
            rows.append(f"{dom},{('no', 'yes')[c]},{rng.normal():.4f},{colour(i, c)}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _run(data, out, *more):
    args = ["run", "--dataset", str(data), "--source", "a", "--target", "b", "--quiet", "--out", str(out)]
    return main([*args, *more])


def _reseal(folder, blob):
    (folder / MODEL).write_bytes(blob)
    spec = json.loads((folder / SPEC).read_text())
    (folder / SPEC).write_text(json.dumps({**spec, "model_sha256": hashlib.sha256(blob).hexdigest()}))


def test_a_skops_file_holding_a_function_that_runs_code_is_refused(tmp_path):
    # numpy.testing's runstring exec()s its argument, and a FunctionTransformer calls whatever it holds:
    # a file of trusted packages' functions ran code at predict (the check took every numpy.* name)
    import skops.io as sio
    from numpy.testing._private.utils import runstring
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    out = tmp_path / "run"
    assert _run(_table(tmp_path / "t.csv"), out, "--method", "coral", "--categorical", "colour") == 0
    clf = load_classifier(out)
    clf.estimator_ = Pipeline([("f", FunctionTransformer(runstring, kw_args={"dict": {}})),
                               ("e", clf.estimator_)])  # fmt: skip
    _reseal(out / "model", sio.dumps(clf))
    with pytest.raises(TransferkitError, match=r"does not load \(numpy\.testing\._private\.utils\.runstring"):
        load_classifier(out)


def test_codes_written_as_floats_by_pandas_are_the_same_codes_for_predict(tmp_path):
    # an integer column with a hole is written 1.0, 2.0 by pandas: those were other values than the 1, 2
    # of the same codes saved without a hole, so predict read every row as an unseen value (42.5% vs 100%)
    train = _table(tmp_path / "train.csv", colour=lambda i, c: "" if i == 3 else f"{c + 1}.0")
    assert load_table(train, categorical=["colour"]).extras["categories"] == {"colour": ("1", "2")}
    out = tmp_path / "run"
    assert _run(train, out, "--method", "source-only", "--categorical", "colour", "--preprocess", "none") == 0
    new = _table(tmp_path / "new.csv", domains=("b",))
    assert main(["predict", str(out), "--dataset", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["prediction"] == r["label"] for r in rows)


def test_a_column_named_alone_is_one_column_not_its_letters(tmp_path):
    # a sweep file's `categorical: colour` passed its check and was read as columns 'c', 'o', 'l', ...
    data = _table(tmp_path / "t.csv")
    ds = load_table(data, categorical="colour", feature_columns="colour")
    assert ds.extras["feature_names"] == ("colour=1", "colour=2")
    assert ds.extras["reading"] == {"feature_columns": ["colour"], "categorical": ["colour"]}


def test_a_classifier_json_naming_too_few_classes_is_a_clear_error(tmp_path, capsys):
    # the default linear SVM has no probabilities: predict wrote the CSV with an IndexError traceback
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "coral") == 0
    spec = json.loads((out / "model" / SPEC).read_text())
    (out / "model" / SPEC).write_text(json.dumps({**spec, "classes": ["no"]}))
    assert main(["predict", str(out), "--dataset", str(data), "--out", str(tmp_path / "p.csv")]) == 2
    assert "predicts 2 classes but its classifier.json names 1" in capsys.readouterr().err


def test_predict_on_a_folder_without_a_model_says_so_before_reading_the_table(tmp_path, capsys):
    # the table was read first: a folder without a model (a typo, a multi-method run's folder) gave
    # "t.csv has no 'domain' column", and naming that column then gave the real error
    data = _table(tmp_path / "t.csv", header="site")
    out = tmp_path / "runs"
    assert _run(data, out, "--method", "coral", "source-only", "--domain-column", "site") == 0
    assert main(["predict", str(out), "--dataset", str(data), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "no saved model in" in err and "the run folders in it (coral, source-only) hold one each" in err
    assert (
        main(["predict", str(tmp_path / "typo"), "--dataset", str(data), "--out", str(tmp_path / "p.csv")])
        == 2
    )
    assert "no saved model in" in capsys.readouterr().err


def test_an_earlier_runs_fitted_classifier_left_in_the_folder_is_named_as_such(tmp_path):
    # the warning called it a network and spoke of init=DIR/model; it is what `predict DIR` reads
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "coral") == 0
    with pytest.warns(UserWarning, match="is a fitted classifier .* transferkit predict DIR does not pick"):
        assert _run(data, out, "--method", "target-only") == 0
