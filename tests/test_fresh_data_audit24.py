"""Fresh data sets a user brings (a clinical table with holes, a selection bias and spaces in its names;
digit images as folders): the problems an audit found running them end to end, each fixed and kept so."""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import replace

import numpy as np
import pytest

from transferkit.cli import main

STEPS = ["--preprocess", "impute", "standardize:per_domain=false"]


def _table(path, n: int = 40, seed: int = 0):
    """Domains 'rural clinic' (source) and 'city hospital' (target), interleaved in the file, a label
    column named 'diagnosis', and holes in 'mean texture'."""
    rng = np.random.default_rng(seed)
    lines = ["hospital,diagnosis,mean radius,mean texture"]
    for i in range(2 * n):
        dom, shift = (("rural clinic", 0.0), ("city hospital", 0.7))[i % 2]
        c = (i // 2) % 2
        texture = "" if rng.random() < 0.15 else f"{rng.normal() + c + shift:.4f}"
        lines.append(f"{dom},{('benign', 'malignant')[c]},{rng.normal() + 2 * c + shift:.4f},{texture}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _args(table, *more):
    return ["run", "--dataset", str(table), "--domain-column", "hospital", "--label-column", "diagnosis",
            "--source", "rural clinic", "--target", "city hospital", "--quiet", *more]  # fmt: skip


def test_iwcv_selects_on_a_table_whose_holes_the_run_imputes(tmp_path):
    # the importance weights were fitted on the raw inputs, NaN and all: a scikit-learn ValueError
    table = _table(tmp_path / "t.csv")
    out = tmp_path / "r"
    assert main(_args(table, *STEPS, "--method", "coral", "--select", "iwcv", "--out", str(out))) == 0
    assert json.loads((out / "result.json").read_text())["selection"] == "select:iwcv"


def test_iwcvs_filling_is_the_impute_steps_and_leaves_inputs_without_holes_as_they_are():
    from transferkit.preprocessing import Impute
    from transferkit.selection import _filled

    Z = np.arange(15, dtype=float).reshape(5, 3)
    is_source = np.array([True, True, True, False, False])
    assert np.array_equal(_filled(Z, is_source), Z)
    Z[1, 2], Z[4, 0] = np.nan, np.nan
    filled = _filled(Z, is_source)
    # the source rows' median (2 and 8 of rows 0 and 2), not all rows', and one 0/1 column per holed column
    assert filled.shape == (5, 5) and filled[1, 2] == 5.0 and filled[4, 0] == 3.0
    assert np.array_equal(filled[:, 3:], [[0, 0], [0, 1], [0, 0], [0, 0], [1, 0]])
    assert np.array_equal(filled, Impute().fit_transform(Z, None, np.where(is_source, 0, -1)))


def test_a_runs_predictions_name_each_table_row_as_predict_does(tmp_path):
    # the run's predictions.csv numbered a target's rows 0, 1, ... within the domain, predict's the file
    table = _table(tmp_path / "t.csv")
    out = tmp_path / "r"
    assert main(_args(table, *STEPS, "--method", "coral", "--out", str(out))) == 0
    lines = table.read_text().splitlines()
    with open(out / "predictions.csv") as f:
        run = list(csv.DictReader(f))
    for r in run:
        domain, label = lines[int(r["row"])].split(",")[:2]
        assert (domain, label) == (r["target"], r["label_class"])
    assert main(["predict", str(out), "--dataset", str(table), "--domains", "city hospital",
                 "--out", str(tmp_path / "p.csv")]) == 0  # fmt: skip
    with open(tmp_path / "p.csv") as f:
        again = list(csv.DictReader(f))
    assert [(r["row"], r["predicted_class"]) for r in run] == [(r["row"], r["prediction"]) for r in again]


def test_a_runs_predictions_of_images_name_their_files(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for dom in ("clean", "noisy"):
        for c in ("0", "1"):
            (tmp_path / "img" / dom / c).mkdir(parents=True)
            for i in range(4):
                a = (rng.random((8, 8)) * 60 + 180 * int(c)).astype(np.uint8)
                Image.fromarray(a).save(tmp_path / "img" / dom / c / f"{c}_{i}.png")
    out = tmp_path / "r"
    args = ["--method", "source-only", "--estimator", "logreg", "--out", str(out), "--quiet"]
    assert (
        main(["run", "--dataset", str(tmp_path / "img"), "--source", "clean", "--target", "noisy", *args])
        == 0
    )
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["file"].split("/")[:2] == ["noisy", r["label_class"]] for r in rows)


def test_estimator_given_to_a_method_that_classifies_itself_is_said_to_be_unused(tmp_path):
    # JDA classifies with its own 1-NN: --estimator logreg was silently ignored, and classifier.json
    # recorded it as the model's estimator
    table = _table(tmp_path / "t.csv")
    out = tmp_path / "r"
    with pytest.warns(UserWarning, match="'jda' classifies with its own estimator: --estimator logreg"):
        assert main(_args(table, *STEPS, "--method", "jda", "--estimator", "logreg", "--out", str(out))) == 0
    assert json.loads((out / "model" / "classifier.json").read_text())["estimator"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default estimator: nothing to say
        assert main(_args(table, *STEPS, "--method", "jda", "--out", str(tmp_path / "r2"))) == 0


def test_diagnose_prints_a_class_nothing_is_predicted_as_without_nan():
    from transferkit.diagnostics import diagnose

    rng = np.random.default_rng(0)
    ys = np.repeat([0, 1], 30)
    Xs = rng.normal(size=(60, 3)) + 2 * ys[:, None]
    rep = diagnose(Xs, ys, rng.normal(size=(30, 3)) + 2, n_permutations=20, class_names=["a", "b"])
    rep = replace(rep, per_class_distance={"a": float("nan"), "b": 1.5})
    line = next(s for s in str(rep).splitlines() if s.startswith("per-class distance"))
    assert "nan" not in line and "a -, b 1.50" in line and "no target row predicted" in line
