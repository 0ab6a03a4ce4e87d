"""The command line: the default run, listings, result records, suites and one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import image_folder

from transferkit.cli import main


def test_default_run_is_fast_and_needs_no_data_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERKIT_DATA", str(tmp_path))  # empty: only the embedded data exists
    start = time.perf_counter()
    assert main([]) == 0
    assert time.perf_counter() - start < 10
    out = capsys.readouterr().out
    assert "caltech -> amazon" in out and "source-only" in out and "coral" in out


def test_console_script_runs_in_a_fresh_process():
    proc = subprocess.run(
        [sys.executable, "-m", "transferkit.cli", "methods"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "coral" in proc.stdout


def test_run_writes_result_record(tmp_path, capsys):
    out = tmp_path / "a2w"
    code = main(["run", "--dataset", "office-caltech10", "--source", "amazon", "--target", "webcam",
                 "--method", "coral", "--set", "reg=0.5", "--seed", "3", "--out", str(out)])  # fmt: skip
    assert code == 0
    rec = json.loads((out / "result.json").read_text())
    assert rec["config"]["method"] == {"name": "coral", "params": {"reg": 0.5}}
    assert rec["config"]["seed"] == 3 and rec["config"]["task"] == "amazon->webcam"
    assert rec["config"]["estimator"]["name"] == "linear-svm-cv"
    assert [s["name"] for s in rec["config"]["preprocess"]] == ["normalize", "standardize"]
    assert rec["selection"] == "fixed-defaults" and 0 <= rec["accuracy"] <= 100
    assert {"numpy", "scikit-learn", "transferkit", "python"} <= set(rec["versions"])
    assert rec["seconds"] > 0 and rec["n_target"] == 295 and "command" in rec
    assert not list(out.glob("*.tmp"))
    assert f"{rec['accuracy']:.2f}" in capsys.readouterr().out


def test_oracle_is_labelled(tmp_path):
    assert main(["run", "--dataset", "office-caltech10", "--source", "amazon", "--target", "dslr",
                 "--method", "target-only", "--out", str(tmp_path)]) == 0  # fmt: skip
    rec = json.loads((tmp_path / "result.json").read_text())
    assert rec["selection"] == "oracle" and rec["accuracy"] > 50


def test_bench_writes_results_and_summary(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "office-caltech10", "--methods", "knn", "source-only", "--seeds", "0", "1",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 * 2 * 2
    for col in ("suite", "task", "source", "target", "method", "seed", "selection", "accuracy", "seconds"):
        assert col in rows[0]
    assert {r["task"] for r in rows} >= {"caltech->amazon", "dslr->webcam"}
    assert all(r["selection"] == "fixed-defaults" and r["suite"] == "office-caltech10" for r in rows)
    knn = [float(r["accuracy"]) for r in rows if r["method"] == "knn" and r["seed"] == "0"]
    assert sum(knn) / 12 == pytest.approx(31.37, abs=0.01)
    summary = (out / "summary.md").read_text()
    assert "| knn | fixed-defaults | 31.37 |" in summary and "transferkit bench office-caltech10" in summary


def test_listings(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "office-caltech10" in out and "caltech (1123)" in out and "embedded" in out
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("coral", "knn", "source-only", "target-only", "standardize", "select-k-best", "pca"):
        assert name in out
    assert "oracle" in out
    assert main(["methods", "coral"]) == 0
    assert "reg = 1.0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,expected",
    [
        (
            ["run", "--dataset", "office-caltech1", "--source", "a", "--target", "b"],
            "Did you mean 'office-caltech10'",
        ),
        (
            ["run", "--dataset", "office-caltech10", "--source", "amazn", "--target", "dslr"],
            "Did you mean 'amazon'",
        ),
        (["run", "--method", "corall"], "Did you mean 'coral'"),
        (["run", "--method", "coral", "--set", "regg=1"], "Did you mean 'reg'"),
        (["run", "--method", "coral", "--set", "reg=abc"], "expects a number"),
        (["run", "--method", "coral", "--set", "reg"], "key=value"),
        (["run", "--preprocess", "standardise"], "Did you mean 'standardize'"),
        (["run", "--estimator", "logreg:CC=1"], "Did you mean 'C'"),
        (["bench", "digitz", "--out", "x"], "Did you mean 'digits'"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def _table(path, classes=("cat", "dog"), nan_row=False, targets=("street",)):
    rng = np.random.default_rng(0)
    lines = ["domain,label,f1,f2"]
    for dom in ("shelter", *targets):
        for i in range(40):
            c = i % 2
            x = rng.normal(size=2) + 3 * c + (0.5 if dom != "shelter" else 0)
            label = classes[c] if dom != "field" else ""  # "field": a target without labels
            lines.append(f"{dom},{label},{x[0]:.4f},{x[1]:.4f}")
    if nan_row:
        lines.append(f"{targets[0]},{classes[0]},nan,1.0")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_run_checks_its_out_folder_and_which_preprocessing_deep_methods_take(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    (tmp_path / "file").write_text("mine")
    base = ["run", "--dataset", data, "--source", "shelter", "--target", "street", "--quiet"]
    assert main([*base, "--method", "coral", "--out", str(tmp_path / "file")]) == 2
    assert "--out" in capsys.readouterr().err and (tmp_path / "file").read_text() == "mine"
    assert main([*base, "--method", "deep-source-only", "--set", "epochs=1", "--set", "batch_size=16"]) == 0
    # a user's table is scaled by the source's statistics unless told otherwise, for every method
    assert "preprocessing: standardize:per_domain=false;" in capsys.readouterr().out
    # on a feature table the steps reach the deep methods too, so the header names one preprocessing
    assert main([*base, "--method", "coral", "deep-source-only", "--preprocess", "standardize"]) == 0
    assert "preprocessing: standardize;" in capsys.readouterr().out
    # images take no steps: --preprocess with only deep methods on them is an error, before training
    folder = image_folder(tmp_path / "imgs", per_class=2)
    argv = ["run", "--dataset", str(folder), "--source", "a", "--target", "b", "--quiet", "--method", "dann"]
    assert main([*argv, "--preprocess", "standardize"]) == 2
    assert "--preprocess is not applied by deep methods to image data (dann" in capsys.readouterr().err


def test_deep_rows_with_nan_are_a_clear_error(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv", nan_row=True)
    argv = ["run", "--dataset", data, "--source", "shelter", "--target", "street", "--quiet",
            "--method", "deep-source-only", "--set", "epochs=1"]  # fmt: skip
    assert main(argv) == 2
    assert "NaN" in capsys.readouterr().err


def test_an_unlabelled_target_is_left_out_of_the_average_and_json_stays_standard(tmp_path):
    data = _table(tmp_path / "pets.csv", targets=("street", "field"))
    out = tmp_path / "run"
    assert main(["run", "--dataset", data, "--source", "shelter", "--target", "street", "field", "--quiet",
                 "--method", "coral", "--out", str(out)]) == 0  # fmt: skip

    def no_nan(token):
        raise AssertionError(f"result.json holds {token}, which is not JSON")

    rec = json.loads((out / "result.json").read_text(), parse_constant=no_nan)
    with open(out / "predictions.csv") as f:
        preds = list(csv.DictReader(f))
    street = [p for p in preds if p["target"] == "street"]
    assert {(p["prediction"], p["predicted_class"]) for p in street} == {("0", "cat"), ("1", "dog")}
    assert {p["label_class"] for p in preds if p["target"] == "field"} == {""}
    assert rec["accuracy_per_target"]["field"] is None
    assert rec["accuracy"] == rec["accuracy_per_target"]["street"] > 80


def test_init_with_other_classes_needs_a_new_head(tmp_path, capsys):
    src = _table(tmp_path / "pets.csv")
    base = ["--source", "shelter", "--target", "street", "--quiet", "--set", "epochs=1"]
    assert (
        main(["run", "--dataset", src, *base, "--method", "deep-source-only", "--out", str(tmp_path / "m")])
        == 0
    )
    other = _table(tmp_path / "zoo.csv", classes=("cat", "zebra"))
    tune = [
        "run",
        "--dataset",
        other,
        *base,
        "--method",
        "deep-source-only",
        "--set",
        f"init={tmp_path / 'm' / 'model'}",
    ]
    assert main(tune) == 2
    err = capsys.readouterr().err
    assert "predicts the classes ['cat', 'dog']" in err and "new_head=true" in err
    assert main([*tune, "--set", "new_head=true"]) == 0


def test_a_misspelt_data_set_is_named_before_the_missing_domains(capsys):
    assert main(["run", "--dataset", "office-caltec10"]) == 2
    assert "Did you mean 'office-caltech10'" in capsys.readouterr().err
    assert main(["run", "--dataset", "office-caltech10"]) == 2
    assert "name the domains" in capsys.readouterr().err


def test_one_failing_method_does_not_cost_the_others(tmp_path, capsys):
    # an unscaled column (spread 1e4, scaling switched off) makes the MLP's loss leave the finite
    # numbers; the shallow method beside it still runs and its result is written
    rng = np.random.default_rng(0)
    lines = ["domain,label,price_cents,ratio"]
    for dom, shift in (("shop", 0.0), ("web", 0.5)):
        for i in range(60):
            c = i % 2
            lines.append(
                f"{dom},{'ab'[c]},{rng.normal(0, 1e4):.1f},{2 * c - 1 + shift + rng.normal(0, 0.3):.3f}"
            )
    data = tmp_path / "prices.csv"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    argv = ["run", "--dataset", str(data), "--source", "shop", "--target", "web", "--quiet", "--method",
            "deep-source-only", "knn", "--preprocess", "none", "--out", str(out)]  # fmt: skip
    with pytest.warns(UserWarning, match="unscaled"):
        assert main(argv) == 2
    captured = capsys.readouterr()
    assert "deep-source-only failed: the loss became inf" in captured.err
    assert "1 of 2 methods failed (deep-source-only)" in captured.err
    assert "failed" in captured.out and (out / "knn" / "result.json").exists()
    assert not (out / "deep-source-only" / "result.json").exists()


def test_predict_replays_a_saved_table_model_with_its_scaling_and_columns_by_name(tmp_path, capsys):
    # columns of very different scales: a prediction that skipped the saved scaling, or took the
    # columns in the new file's order, would not give the run's predictions back
    rng = np.random.default_rng(1)
    lines, rows = ["domain,label,f1,f2"], []
    for dom, shift in (("shelter", 0.0), ("street", 0.7)):
        for i in range(60):
            c = i % 2
            f1, f2 = rng.normal() + 2.5 * c + shift, 1000 * (rng.normal() - 2.0 * c) + 5000
            lines.append(f"{dom},{('cat', 'dog')[c]},{f1:.4f},{f2:.2f}")
            rows.append((dom, ("cat", "dog")[c], f1, f2))
    (tmp_path / "pets.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    argv = ["run", "--dataset", str(tmp_path / "pets.csv"), "--source", "shelter", "--target", "street",
            "--quiet", "--method", "deep-source-only", "--set", "steps=150", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((out / "result.json").read_text())
    assert rec["accuracy"] > 80  # a network that learnt something: its predictions depend on the inputs
    with open(out / "predictions.csv") as f:
        expected = [p["predicted_class"] for p in csv.DictReader(f)]
    # the new file: columns swapped, labels of the street rows removed, plus an extra column
    new = ["f2,label,extra,domain,f1"] + [f"{f2:.2f},,1,{dom},{f1:.4f}" for dom, _, f1, f2 in rows]
    (tmp_path / "new.csv").write_text("\n".join(new) + "\n")
    target = tmp_path / "street.csv"
    code = main(["predict", str(out), "--dataset", str(tmp_path / "new.csv"), "--domains", "street",
                 "--out", str(target)])  # fmt: skip
    assert code == 0
    assert "not read (not the model's columns): extra" in capsys.readouterr().err  # left out, never parsed
    with open(target) as f:
        got = list(csv.DictReader(f))
    assert [p["prediction"] for p in got] == expected and {p["domain"] for p in got} == {"street"}
    assert all(0.5 <= float(p["confidence"]) <= 1 for p in got) and {p["label"] for p in got} == {""}
    # with the labels: the same accuracy as the run's, printed
    assert main(["predict", str(out / "model"), "--dataset", str(tmp_path / "pets.csv"), "--out",
                 str(tmp_path / "all.csv")]) == 0  # fmt: skip
    assert f"street: 60 rows  accuracy {rec['accuracy']:.2f}%" in capsys.readouterr().out
    # a missing column: a clear error
    (tmp_path / "short.csv").write_text("domain,label,f1\nstreet,cat,1.0\n")
    assert main(["predict", str(out), "--dataset", str(tmp_path / "short.csv"), "--out", str(target)]) == 2
    assert "these data lack ['f2']" in capsys.readouterr().err
    # steps with more fitted state, a whitened shared PCA after a selection of columns, replayed too
    pca = tmp_path / "pca"
    assert main(["run", "--dataset", str(tmp_path / "pets.csv"), "--source", "shelter", "--target", "street",
                 "--quiet", "--method", "deep-source-only", "--set", "steps=150", "--preprocess",
                 "standardize", "select-k-best:k=2", "pca:n_components=2,whiten=true", "--out",
                 str(pca)])  == 0  # fmt: skip
    with open(pca / "predictions.csv") as f:
        expected = [p["predicted_class"] for p in csv.DictReader(f)]
    assert main(["predict", str(pca), "--dataset", str(tmp_path / "new.csv"), "--domains", "street",
                 "--out", str(target)]) == 0  # fmt: skip
    with open(target) as f:
        assert [p["prediction"] for p in csv.DictReader(f)] == expected


def test_a_category_column_trains_and_predict_matches_its_values_by_name(tmp_path, capsys):
    # a column of words is one 0/1 column per value; new data lacking a value, or holding one the
    # model never saw, still get the run's predictions (the unseen value as a missing cell)
    rng = np.random.default_rng(2)
    rows = []
    for dom, shift in (("shelter", 0.0), ("street", 0.5)):
        for i in range(60):
            c = i % 2
            coat = ("long", "short", "")[(i // 2) % 3] if c else ("short", "")[(i // 2) % 2]
            rows.append((dom, ("cat", "dog")[c], coat, rng.normal() + 2.0 * c + shift))
    (tmp_path / "pets.csv").write_text(
        "domain,label,coat,f1\n" + "\n".join(",".join(map(str, r)) for r in rows)
    )
    out = tmp_path / "run"
    argv = ["run", "--dataset", str(tmp_path / "pets.csv"), "--source", "shelter", "--target", "street",
            "--quiet", "--method", "deep-source-only", "--set", "steps=150", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    spec = json.loads((out / "model" / "network.json").read_text())
    assert spec["feature_names"] == ["coat=long", "coat=short", "f1"]
    with open(out / "predictions.csv") as f:
        expected = [p["predicted_class"] for p in csv.DictReader(f)]
    street = [r for r in rows if r[0] == "street"]
    # the street rows without a long coat (no coat=long column at all), columns in another order
    kept = [i for i, r in enumerate(street) if r[2] != "long"]
    (tmp_path / "new.csv").write_text(
        "f1,coat,domain\n" + "\n".join(f"{street[i][3]},{street[i][2]},street" for i in kept)
    )
    target = tmp_path / "p.csv"
    assert main(["predict", str(out), "--dataset", str(tmp_path / "new.csv"), "--out", str(target)]) == 0
    with open(target) as f:
        assert [p["prediction"] for p in csv.DictReader(f)] == [expected[i] for i in kept]
    # a coat the model never saw: a warning, and the prediction of a row whose coat is unknown
    (tmp_path / "curly.csv").write_text(
        "f1,coat,domain\n" + "\n".join(f"{r[3]},curly,street" for r in street)
    )
    with pytest.warns(UserWarning, match=r"values the model never saw .* \['coat=curly'\]"):
        assert (
            main(["predict", str(out), "--dataset", str(tmp_path / "curly.csv"), "--out", str(target)]) == 0
        )
    with open(target) as f:
        curly = [p["prediction"] for p in csv.DictReader(f)]
    (tmp_path / "blank.csv").write_text("f1,coat,domain\n" + "\n".join(f"{r[3]},,street" for r in street))
    with pytest.warns(UserWarning, match="column 'coat' is empty in every row"):
        assert (
            main(["predict", str(out), "--dataset", str(tmp_path / "blank.csv"), "--out", str(target)]) == 0
        )
    with open(target) as f:
        assert [p["prediction"] for p in csv.DictReader(f)] == curly
    # a table without the category column at all: the usual missing-column error
    (tmp_path / "nocoat.csv").write_text("f1,domain\n1.0,street\n")
    assert main(["predict", str(out), "--dataset", str(tmp_path / "nocoat.csv"), "--out", str(target)]) == 2
    assert "these data lack ['coat=long', 'coat=short']" in capsys.readouterr().err


def test_predict_refuses_data_of_another_kind_or_shape(tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", per_class=3)
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(folder), "--source", "a", "--target", "b", "--quiet", "--method",
                 "deep-source-only", "--set", "steps=100", "--out", str(out)]) == 0  # fmt: skip
    preds = tmp_path / "p.csv"
    assert main(["predict", str(out), "--dataset", str(folder), "--domains", "b", "--out", str(preds)]) == 0
    with open(out / "predictions.csv") as f:
        expected = [p["predicted_class"] for p in csv.DictReader(f)]
    with open(preds) as f:
        got = list(csv.DictReader(f))
    assert [p["prediction"] for p in got] == expected
    assert [p["file"] for p in got] == [f"b/{c}/{i}.png" for c in ("cat", "dog") for i in range(3)]
    assert main(["predict", str(out), "--dataset", _table(tmp_path / "pets.csv"), "--out", str(preds)]) == 2
    assert "was trained on image data; these data are tabular" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--dataset", str(folder), "--out", str(preds)]) == 2
    assert "no saved model in" in capsys.readouterr().err
    (out / "model" / "network.json").write_text("{not json")
    assert main(["predict", str(out), "--dataset", str(folder), "--out", str(preds)]) == 2
    err = capsys.readouterr().err
    assert "network.json is not valid JSON" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,option",
    [
        (["run", "--select", "iwcv", "--select", "dev"], "--select"),  # scored with DEV alone
        (["run", "--seed", "0", "--seed=1"], "--seed"),  # ran seed 1
        (["run", "--out", "a", "--out", "b"], "--out"),
        (["bench", "office-caltech10", "--out", "x", "--jobs", "1", "--jobs", "2"], "--jobs"),
        (
            ["diagnose", "--dataset", "d", "--source", "a", "--target", "b", "--seed", "1", "--seed", "2"],
            "--seed",
        ),
    ],
)
def test_a_single_valued_option_given_twice_is_an_error_not_the_last_one(argv, option, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        main(argv)
    assert exc.value.code == 2
    assert f"{option} was given twice; it takes one value" in capsys.readouterr().err


def test_options_given_once_leave_no_trace_in_the_arguments():
    from transferkit.cli import parser

    args = parser().parse_args(["run", "--seed", "3", "--select", "entropy"])
    assert args.seed == 3 and args.select == "entropy"
    assert not [k for k in vars(args) if k.startswith("_")]  # the benchmark scripts compare vars(args)
    assert parser().parse_args(["bench", "office-caltech10", "--out", "x"]).jobs is None  # defaults stay


def test_a_list_option_given_twice_adds_up_instead_of_keeping_the_last():
    # argparse's nargs="+" kept only the last occurrence: `--method coral --method source-only` ran
    # source-only alone, and `--preprocess pca --preprocess standardize` dropped pca
    from transferkit.cli import parser

    args = parser().parse_args(["run", "--source", "amazon", "--target", "caltech", "--method", "coral",
                                "--method", "source-only", "--preprocess", "normalize", "--preprocess",
                                "standardize"])  # fmt: skip
    assert args.method == ["coral", "source-only"]
    assert args.preprocess == ["normalize", "standardize"]
    args = parser().parse_args(
        ["bench", "office-caltech10", "--out", "x", "--methods", "coral", "--methods", "knn"]
    )
    assert args.methods == ["coral", "knn"] and args.seeds == [0]
    args = parser().parse_args(["bench", "office-caltech10", "--out", "x", "--seeds", "1", "--seeds", "2",
                                "--select", "snd", "--select", "entropy"])  # fmt: skip
    assert args.seeds == [1, 2] and args.select == [
        "snd",
        "entropy",
    ]  # the default [0] replaced, not extended
    assert parser().parse_args(["bench", "office-caltech10", "--out", "x"]).seeds == [0]
    # a method named twice ran twice
    assert main(["run", "--dataset", "office-caltech10", "--source", "amazon", "--target", "caltech",
              "--method", "coral", "--method", "coral"]) == 2  # fmt: skip
