"""A user's own tables through the category columns, the impute step and the metrics beyond accuracy:
the awkward inputs an audit found mishandled (a regression target read as classes, words Python reads
as numbers, a column the source never fills, names lost after impute, a fine-tuned network's impute
columns, a sweep that could not impute), each fixed and kept so here."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from transferkit.cli import main
from transferkit.datasets.table import load_table
from transferkit.errors import TransferkitError
from transferkit.predict import DomainPredictions

STEPS = ["--preprocess", "impute", "standardize:per_domain=false"]


def _table(path, seed: int = 0, holes: float = 0.25, source_holes: bool = True, n: int = 50):
    """Domains 'north' (source) and 'south' (target): a number x, a category city and an income with
    holes (``holes`` of the cells; with ``source_holes=False`` every source income is empty)."""
    rng = np.random.default_rng(seed)
    lines = ["domain,label,x,city,income"]
    for dom, shift in (("north", 0.0), ("south", 0.5)):
        for i in range(n):
            c = i % 2
            city = ("lyon", "new york", "k=v")[i % 3]
            gap = rng.random() < holes if (source_holes or dom == "south") else True
            income = "" if gap else f"{rng.normal() + 2 * c + shift:.4f}"
            lines.append(f"{dom},{('no', 'yes')[c]},{rng.normal() + 2 * c + shift:.4f},{city},{income}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _args(table, *more):
    return ["run", "--dataset", str(table), "--source", "north", "--target", "south", "--quiet", *more]


def test_a_continuous_label_column_is_a_regression_error_and_many_whole_numbers_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    rows = [f"{'st'[i % 2]},{v:.3f},{3 * v + 0.1:.5f}" for i, v in enumerate(x)]
    (tmp_path / "price.csv").write_text("domain,x,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(
        TransferkitError, match=r"label column 'label' holds 120 different numbers.*regression"
    ):
        load_table(tmp_path / "price.csv")
    # whole numbers, nearly one class per row: kept (they may be codes), with a warning
    rows = [f"{'st'[i % 2]},{v:.3f},{int(100 * v)}" for i, v in enumerate(x)]
    (tmp_path / "codes.csv").write_text("domain,x,label\n" + "\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match="regression target"):
        assert len(load_table(tmp_path / "codes.csv").classes) > 50
    # a few decimal class names stay classes, without a word
    rows = [f"{'st'[i % 2]},{v:.3f},{(0.5, 1.5)[i % 2]}" for i, v in enumerate(x)]
    (tmp_path / "few.csv").write_text("domain,x,label\n" + "\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_table(tmp_path / "few.csv").classes == ("0.5", "1.5")


def test_words_that_python_reads_as_numbers_are_a_category(tmp_path):
    # float() reads 'Infinity' and '1_000'; among words they are words (a model, a product code)
    text = "domain,label,model,code,x\ns,a,Infinity,1_000,1\ns,b,Galaxy,B,2\n"
    text += "t,a,Galaxy,B,3\nt,b,Infinity,1_000,4\n"
    (tmp_path / "w.csv").write_text(text)
    ds = load_table(tmp_path / "w.csv")
    assert ds.extras["feature_names"] == ("model=Galaxy", "model=Infinity", "code=1_000", "code=B", "x")
    # an infinity among numbers stays a number column (and the run's error names it)
    (tmp_path / "n.csv").write_text("domain,label,v\ns,a,inf\ns,b,2\nt,a,3\nt,b,1\n")
    assert load_table(tmp_path / "n.csv").extras["feature_names"] == ("v",)


def test_a_column_the_source_never_fills_is_named_by_its_column_for_impute(tmp_path, capsys):
    table = _table(tmp_path / "t.csv", source_holes=False)
    assert main(_args(table, *STEPS, "--method", "coral")) == 2
    err = capsys.readouterr().err
    assert "column 'income'" in err and "no value in any row of the source (north)" in err, err
    assert "counting from 0" not in err and err.count("\n") == 1
    argv = ["diagnose", "--dataset", str(table), "--source", "north", "--target", "south", "--preprocess",
            "impute", "--permutations", "5"]  # fmt: skip
    assert main(argv) == 2
    assert "column 'income'" in capsys.readouterr().err


def test_diagnose_names_the_columns_impute_adds(tmp_path, capsys):
    table = _table(tmp_path / "t.csv")
    argv = ["diagnose", "--dataset", str(table), "--source", "north", "--target", "south", "--permutations",
            "5", "--out", str(tmp_path / "d"), *STEPS]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "d" / "diagnosis.json").read_text())
    named = {f["feature"] for f in report["drifting_features"]}
    assert {"x", "income", "income (missing)", "city=k=v", "city=new york"} <= named, named
    assert "income (missing)" in capsys.readouterr().out


def test_predictions_balanced_accuracy_is_scikit_learns():
    labels = np.r_[np.zeros(8, np.int64), np.ones(2, np.int64), -np.ones(3, np.int64)]
    pred = np.r_[np.zeros(9, np.int64), np.ones(4, np.int64)]
    p = DomainPredictions(["a", "b"], pred, np.zeros((13, 2)), labels)
    known = labels >= 0
    assert p.balanced_accuracy == balanced_accuracy_score(labels[known], pred[known]) == 0.75
    assert (
        DomainPredictions(["a", "b"], pred, np.zeros((13, 2)), -np.ones(13, np.int64)).balanced_accuracy
        is None
    )


def test_report_of_a_run_on_a_target_of_one_class_says_its_balanced_accuracy_without_a_warning(tmp_path):
    lines = ["domain,label,x"] + [f"s,{'ab'[i % 2]},{i % 2 + 0.01 * i}" for i in range(20)]
    lines += [f"t,b,{1 + 0.01 * i}" for i in range(10)]  # every target row of class b
    (tmp_path / "one.csv").write_text("\n".join(lines) + "\n")
    run = ["run", "--dataset", str(tmp_path / "one.csv"), "--source", "s", "--target", "t", "--quiet"]
    assert main([*run, "--method", "source-only", "--out", str(tmp_path / "r")]) == 0
    rec = json.loads((tmp_path / "r" / "result.json").read_text())
    assert rec["accuracy"] == rec["balanced_accuracy"] == 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's note on a 1x1 confusion matrix was printed
        assert main(["report", str(tmp_path / "r")]) == 0
    assert "balanced accuracy (%)" in (tmp_path / "r" / "report.html").read_text()


def test_fine_tuning_a_network_trained_after_impute_keeps_its_missing_columns(tmp_path, capsys):
    holes = _table(tmp_path / "holes.csv")
    full = _table(tmp_path / "full.csv", seed=1, holes=0.0)  # no missing value here: no hole to mark
    first = tmp_path / "first"
    deep = ["--method", "deep-source-only", "--set", "epochs=2", "--set", "min_steps=0"]
    assert main(_args(holes, *STEPS, *deep, "--out", str(first))) == 0
    assert json.loads((first / "model" / "network.json").read_text())["in_shape"] == [6]
    init = ["--set", f"init={first / 'model'}"]
    assert main(_args(full, *STEPS, *deep, *init, "--out", str(tmp_path / "tuned"))) == 0
    spec = json.loads((tmp_path / "tuned" / "model" / "network.json").read_text())
    assert spec["preprocess"][0]["state"]["impute"]["indicator_columns"] == [4]  # income's, as saved
    capsys.readouterr()
    # other steps than the saved network's: the error says which it was trained after
    assert main(_args(full, *deep, *init)) == 2
    assert "--preprocess impute standardize:per_domain=false" in capsys.readouterr().err
    # and predict says the balanced accuracy beside the accuracy
    assert main(["predict", str(first), "--dataset", str(holes), "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    assert "south: 50 rows  accuracy " in out and "% (balanced " in out


def test_a_sweep_file_names_its_preprocessing_so_a_table_with_holes_can_be_swept(tmp_path):
    from transferkit.sweep import load_spec, run_sweep

    _table(tmp_path / "t.csv")
    text = "dataset: t.csv\nmethods: [source-only]\ntasks: [north->south]\n"
    (tmp_path / "plain.yaml").write_text(text)
    with pytest.raises(TransferkitError, match=r"has NaN.*preprocess: \[impute"):
        run_sweep(load_spec(tmp_path / "plain.yaml"), tmp_path / "o1", workers=1, quiet=True)
    (tmp_path / "s.yaml").write_text(text + "preprocess: [impute, 'standardize:per_domain=false']\n")
    assert run_sweep(load_spec(tmp_path / "s.yaml"), tmp_path / "o2", workers=1, quiet=True)["ran"] == 1
    results = (tmp_path / "o2" / "results.csv").read_text()
    assert "impute standardize:per_domain=false" in results
    (tmp_path / "bad.yaml").write_text(text + "preprocess: [imputee]\n")
    with pytest.raises(TransferkitError, match="impute"):
        load_spec(tmp_path / "bad.yaml")
