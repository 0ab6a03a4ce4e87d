"""A shallow run's fitted model saved under DIR/model (skops, no pickle) and `transferkit predict` with it:
the run's own target predictions again, new rows read as the training rows were, and files refused
that hold types outside transferkit's trusted packages or do not belong together."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import image_folder

from transferkit.cli import main
from transferkit.datasets import load_dataset
from transferkit.datasets.table import load_table
from transferkit.errors import TransferkitError
from transferkit.predict import predict_saved
from transferkit.shallow.saved import MODEL, SPEC, load_classifier


def _table(path, holes: bool = False, order=("domain", "x", "colour", "z", "label")):
    """Domains 'a' (source) and 'b' (shifted target), a number x, a category colour, a number z."""
    rng = np.random.default_rng(0)
    rows = []
    for dom, shift in (("a", 0.0), ("b", 0.7)):
        for i in range(60):
            c = i % 2
            z = "" if holes and i % 7 == 0 else f"{rng.normal() + c:.4f}"
            x = f"{rng.normal() + 2 * c + shift:.4f}"
            row = {
                "domain": dom,
                "x": x,
                "colour": ("red", "blue")[i % 3 == 0],
                "z": z,
                "label": ("no", "yes")[c],
            }
            rows.append(",".join(row[k] for k in order))
    path.write_text(",".join(order) + "\n" + "\n".join(rows) + "\n")
    return path


def _run(data, out, *more):
    args = ["run", "--dataset", str(data), "--source", "a", "--target", "b", "--quiet", "--out", str(out)]
    return main([*args, *more])


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_predict_with_a_shallow_runs_model_gives_the_runs_own_target_predictions(tmp_path):
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "coral") == 0
    assert sorted(p.name for p in (out / "model").iterdir()) == [SPEC, MODEL]
    spec = json.loads((out / "model" / SPEC).read_text())
    assert spec["method"] == "coral" and spec["domains"] == {"a": 0, "b": -1}
    assert spec["feature_names"] == ["x", "colour=blue", "colour=red", "z"]
    assert main(["predict", str(out), "--dataset", str(data), "--out", str(tmp_path / "p.csv")]) == 0
    ran = [r["predicted_class"] for r in _read(out / "predictions.csv") if r["target"] == "b"]
    again = [r["prediction"] for r in _read(tmp_path / "p.csv") if r["domain"] == "b"]
    assert again == ran
    assert {r["confidence"] for r in _read(tmp_path / "p.csv")} == {""}  # a linear SVM gives no probability


def test_new_rows_with_reordered_columns_and_an_unseen_domain_are_classified(tmp_path):
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "coral", "--estimator", "logreg") == 0
    first = predict_saved(out, load_table(data))
    moved = _table(tmp_path / "moved.csv", order=("z", "label", "colour", "domain", "x"))
    again = predict_saved(out, load_table(moved))
    for name in ("a", "b"):
        np.testing.assert_array_equal(again[name].predictions, first[name].predictions)
        np.testing.assert_allclose(again[name].probabilities, first[name].probabilities)
        np.testing.assert_allclose(first[name].probabilities.sum(1), 1.0)
    assert 100 * first["b"].accuracy == pytest.approx(
        json.loads((out / "result.json").read_text())["accuracy"]
    )


def test_a_new_domain_is_classified_as_the_target_was_or_as_the_domain_named(tmp_path):
    """Subspace alignment maps the target's rows with the target's subspace: a new domain's rows
    (here the target's own rows under another name) gave other predictions, or (shared-lda) an error."""
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "subspace-alignment", "--estimator", "logreg") == 0
    first = predict_saved(out, load_table(data))
    text = data.read_text().replace("\nb,", "\nc,")  # the target's rows as a new domain
    (tmp_path / "c.csv").write_text(text)
    with pytest.warns(UserWarning, match=r"not trained on domain\(s\) \['c'\].*as the target 'b''s were"):
        new = predict_saved(out, load_table(tmp_path / "c.csv"), domains=["c"])
    np.testing.assert_array_equal(new["c"].predictions, first["b"].predictions)
    as_source = predict_saved(out, load_table(tmp_path / "c.csv"), domains=["c"], as_domain="a")
    source_view = predict_saved(out, load_table(data), domains=["b"], as_domain="a")
    np.testing.assert_array_equal(as_source["c"].predictions, source_view["b"].predictions)
    with pytest.raises(
        TransferkitError, match=r"as_domain 'z' is not a domain the model was trained on \(a, b\)"
    ):
        predict_saved(out, load_table(data), as_domain="z")
    # two targets: which one's rows new ones are like is the user's to say
    three = tmp_path / "three.csv"
    three.write_text(data.read_text() + "\n".join(ln.replace("c,", "d,", 1) for ln in text.splitlines()[61:]))
    two = tmp_path / "two"
    assert main(["run", "--dataset", str(three), "--source", "a", "--target", "b", "d", "--quiet", "--method",
                 "coral", "--out", str(two)]) == 0  # fmt: skip
    with pytest.raises(TransferkitError, match=r"adapted to 2 targets \(b, d\); say which one.*--as-domain"):
        predict_saved(two, load_table(tmp_path / "c.csv"), domains=["c"])


def test_holes_are_filled_by_the_saved_impute_step(tmp_path):
    data = _table(tmp_path / "t.csv", holes=True)
    out = tmp_path / "run"
    assert _run(data, out, "--method", "subspace-alignment", "--preprocess", "impute",
                "standardize:per_domain=false") == 0  # fmt: skip
    got = predict_saved(out, load_table(data))
    assert 100 * got["b"].accuracy == pytest.approx(json.loads((out / "result.json").read_text())["accuracy"])


def test_an_image_folder_model_predicts_images(tmp_path):
    folder = image_folder(tmp_path / "imgs", per_class=6)
    out = tmp_path / "run"
    assert _run(folder, out, "--method", "source-only") == 0
    got = predict_saved(out, load_dataset(folder))
    assert got["b"].predictions.shape == (12,) and got["b"].classes == ["cat", "dog"]


def test_a_deep_and_a_shallow_run_into_one_folder_leave_one_model(tmp_path):
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "deep-source-only", "--set", "steps=5") == 0
    with pytest.warns(UserWarning, match="held a model from an earlier run"):
        assert _run(data, out, "--method", "coral") == 0
    assert sorted(p.name for p in (out / "model").iterdir()) == [SPEC, MODEL]
    with pytest.warns(UserWarning, match="held a model from an earlier run"):
        assert _run(data, out, "--method", "deep-source-only", "--set", "steps=5") == 0
    assert sorted(p.name for p in (out / "model").iterdir()) == ["model.safetensors", "network.json"]


class _NotTrusted:
    """A type outside transferkit's trusted packages (this test module's)."""


def test_a_file_with_a_type_outside_the_trusted_packages_is_refused(tmp_path):
    import hashlib

    import skops.io as sio

    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "coral") == 0
    clf = load_classifier(out)
    clf.smuggled_ = _NotTrusted()
    blob = sio.dumps(clf)
    (out / "model" / MODEL).write_bytes(blob)
    spec = json.loads((out / "model" / SPEC).read_text())
    (out / "model" / SPEC).write_text(json.dumps({**spec, "model_sha256": hashlib.sha256(blob).hexdigest()}))
    with pytest.raises(
        TransferkitError, match=r"holds objects of types transferkit does not load .*_NotTrusted"
    ):
        load_classifier(out)


@pytest.mark.parametrize(
    "damage, match",
    [
        (
            lambda m: (m / MODEL).write_bytes(b"PK\x03\x04 not a zip"),
            "is not the file classifier.json was saved",
        ),
        (lambda m: (m / SPEC).write_text("{trunc"), "is not valid JSON"),
        (lambda m: (m / SPEC).write_text(json.dumps({"classes": [], "domains": {}})), "damaged: classes"),
        (
            lambda m: (m / SPEC).write_text(json.dumps({"classes": ["a"], "domains": {"a": "0"}})),
            "damaged: domains",
        ),
    ],
)
def test_damaged_or_mismatched_files_are_clear_errors(tmp_path, damage, match, capsys):
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "coral") == 0
    damage(out / "model")
    assert main(["predict", str(out), "--dataset", str(data), "--out", str(tmp_path / "p.csv")]) == 2
    assert match in capsys.readouterr().err


def test_the_target_only_oracle_saves_no_model_and_predict_says_so(tmp_path, capsys):
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "target-only") == 0
    assert not (out / "model").exists()
    assert main(["predict", str(out), "--dataset", str(data), "--out", str(tmp_path / "p.csv")]) == 2
    assert "the target-only oracle saves no model" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["coral", "deep-source-only"])
def test_predict_reads_only_the_models_columns_of_a_new_table(tmp_path, method, capsys):
    """An identifier (more than 100 words: an error when read) or a notes column in the new rows stopped
    predict; they are no feature of the model and are not read."""
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", method, *(["--set", "steps=5"] if method != "coral" else [])) == 0
    lines = data.read_text().splitlines()
    extra = ["id,notes," + lines[0]] + [f"P{i:04d},seen on day {i} x,{ln}" for i, ln in enumerate(lines[1:])]
    (tmp_path / "new.csv").write_text("\n".join(extra) + "\n")
    assert (
        main(["predict", str(out), "--dataset", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p1.csv")])
        == 0
    )
    assert "not read (not the model's columns): id, notes" in capsys.readouterr().err
    assert main(["predict", str(out), "--dataset", str(data), "--out", str(tmp_path / "p2.csv")]) == 0
    assert (tmp_path / "p1.csv").read_text() == (tmp_path / "p2.csv").read_text()


def test_a_hole_for_a_model_trained_without_impute_says_the_model_cannot_fill_it(tmp_path, capsys):
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    assert _run(data, out, "--method", "coral") == 0
    holes = _table(tmp_path / "holes.csv", holes=True)
    assert main(["predict", str(out), "--dataset", str(holes), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "NaN (a missing value)" in err and "was trained without an impute step" in err
    assert "(run's option)" in err and "sweep file" not in err


def test_a_model_that_cannot_be_saved_costs_only_its_file(tmp_path, monkeypatch):
    from transferkit.shallow import saved

    def refuse(*args, **kwargs):
        raise TypeError("an object skops cannot store")

    monkeypatch.setattr(saved, "save_classifier", refuse)
    data = _table(tmp_path / "t.csv")
    out = tmp_path / "run"
    with pytest.warns(
        UserWarning, match="the fitted model could not be saved .*an object skops cannot store"
    ):
        assert _run(data, out, "--method", "coral") == 0
    assert (out / "result.json").exists() and (out / "predictions.csv").exists()
    assert not (out / "model").exists()
