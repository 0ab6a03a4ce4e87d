"""The command line on a user's odd inputs: each a one-line error (exit 2) or the right result, never a
traceback, never a user's file overwritten (found by an audit with unseen tables and folders)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import image_folder
from PIL import Image

from transferkit.cli import main


def _table(path, n=40, targets=("street",), columns=("f1", "f2"), target_rows=None):
    rng = np.random.default_rng(0)
    lines = ["domain,label," + ",".join(columns)]
    for dom in ("shelter", *targets):
        rows = n if dom == "shelter" or target_rows is None else target_rows
        for i in range(rows):
            c = i % 2
            x = rng.normal(size=2) + 3 * c + (0.5 if dom != "shelter" else 0)
            # f1 tells the classes apart, f2 is wider noise: taking one for the other shows
            values = {"f1": x[0], "f2": 4 * x[1] - 6 * c, "g1": x[0], "g2": 4 * x[1] - 6 * c}
            lines.append(f"{dom},{('cat', 'dog')[c]}," + ",".join(f"{values[k]:.4f}" for k in columns))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _run(data, *extra, source=("shelter",), target=("street",)):
    return main(["run", "--dataset", str(data), "--source", *source, "--target", *target, "--quiet", *extra])


def test_seeds_domains_and_counts_are_checked_before_any_work(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv", targets=("street", "field"))
    for seed in ("-1", "4294967296"):
        with pytest.raises(SystemExit):
            _run(data, "--seed", seed)
        assert "a seed must be from 0 to 2**32 - 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(data, "--target-labels", "-2")
    assert "must be >= 0, got -2" in capsys.readouterr().err
    assert _run(data, target=("street", "street")) == 2
    assert "--target names street more than once" in capsys.readouterr().err
    assert _run(data, source=("shelter", "street"), target=("street",)) == 2
    err = capsys.readouterr()
    assert "street cannot be both source and target" in err.err and "failed" not in err.out


def test_out_of_range_settings_are_one_line_errors(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    for extra, message in (
        (["--method", "coral", "--estimator", "logreg:C=0"], "estimator 'logreg' rejected its settings"),
        (["--method", "knn", "--set", "n_neighbors=0"], "n_neighbors must be a whole number from 1 to"),
        (["--method", "knn", "--set", "n_neighbors=1000"], "number of source rows (40), got 1000"),
        (["--method", "coral", "--preprocess", "pca:n_components=-1"], "n_components must be a whole number"),
        (["--method", "coral", "--preprocess", "pca:n_components=2.5"], "got 2.5"),
        (["--method", "coral", "--preprocess", "tfidf"], "the tfidf step turns texts into features"),
        (["--method", "coral", "--preprocess", "sentence-embedding"], "sentence-embedding step turns texts"),
    ):
        assert _run(data, *extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
    # with several methods too: stopped before any training, not once per method
    assert _run(data, "--method", "source-only", "coral", "--preprocess", "pca:n_components=-3") == 2
    captured = capsys.readouterr()
    assert "n_components must be a whole number" in captured.err and "failed" not in captured.err


def test_a_failing_method_is_one_line_and_the_others_still_run(tmp_path, capsys):
    # CORAL on a target of one row: a covariance needs two; source-only's result still stands
    data = _table(tmp_path / "one.csv", target_rows=1)
    out = tmp_path / "runs"
    assert _run(data, "--method", "source-only", "coral", "--out", str(out)) == 2
    captured = capsys.readouterr()
    assert "coral failed: CORAL matches covariances, and domain -1 has 1 row" in captured.err
    assert (out / "source-only" / "result.json").exists()


def test_a_numerical_error_inside_a_library_is_reported_per_method(tmp_path, capsys, monkeypatch):
    import transferkit.shallow.coral as coral

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(coral, "_sym_power", broken)
    data = _table(tmp_path / "pets.csv")
    assert _run(data, "--method", "source-only", "coral") == 2
    captured = capsys.readouterr()
    assert "coral failed: LinAlgError: Eigenvalues did not converge" in captured.err
    assert "source-only" in captured.out
    assert _run(data, "--method", "coral") == 2  # alone: the same one line, exit 2
    assert "coral failed: LinAlgError" in capsys.readouterr().err
    monkeypatch.setenv("TRANSFERKIT_TRACEBACK", "1")  # where it failed, and the others still run
    assert _run(data, "--method", "coral", "source-only") == 2
    captured = capsys.readouterr()
    assert "Traceback" in captured.err and "in broken" in captured.err and "source-only" in captured.out
    assert "1 of 2 methods failed (coral); the others' results stand" in captured.err


def test_select_says_when_it_chooses_nothing_and_refuses_a_tiny_source(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    assert _run(data, "--method", "knn", "--select", "entropy") == 0
    assert "--select entropy leaves knn at its settings: it has no search space" in capsys.readouterr().err
    assert _run(data, "--method", "coral", "--set", "reg=1", "--select", "entropy") == 0
    assert "--set fixed every setting of its search space" in capsys.readouterr().err
    tiny = _table(tmp_path / "tiny.csv", n=4)
    assert _run(tiny, "--method", "coral", "--select", "entropy") == 2
    assert "needs at least 2 source rows per class and one held-out row per class" in capsys.readouterr().err


def test_predict_and_report_never_overwrite_the_users_files(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    run = tmp_path / "run"
    assert _run(data, "--method", "deep-source-only", "--set", "steps=20", "--out", str(run)) == 0
    before = (tmp_path / "pets.csv").read_text()
    assert main(["predict", str(run), "--dataset", data, "--out", data]) == 2
    assert "is the data file itself" in capsys.readouterr().err
    assert (tmp_path / "pets.csv").read_text() == before
    record = (run / "result.json").read_text()
    assert main(["report", str(run), "--out", str(run / "result.json")]) == 2
    assert "exists and is not a report transferkit wrote" in capsys.readouterr().err
    assert (run / "result.json").read_text() == record
    assert main(["report", str(run)]) == 0 and main(["report", str(run)]) == 0  # its own report: rewritten
    for content, message in (("{bad", "is not valid JSON"), ('{"a": 1}', "is not the record of a"),
                             ("[]", "is not the record of a")):  # fmt: skip
        junk = tmp_path / "junk"
        junk.mkdir(exist_ok=True)
        (junk / "result.json").write_text(content)
        assert main(["report", str(junk)]) == 2
        assert message in capsys.readouterr().err


def test_predict_replaces_only_its_own_output_and_names_each_row_of_the_table(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    run = tmp_path / "run"
    assert _run(data, "--method", "deep-source-only", "--set", "steps=20", "--out", str(run)) == 0
    spec = (run / "model" / "network.json").read_text()
    # a file predict did not write is never replaced: the model's own files, a table, a run's CSV
    for victim in (run / "model" / "network.json", run / "predictions.csv"):
        before = victim.read_bytes()
        assert main(["predict", str(run), "--dataset", data, "--out", str(victim)]) == 2
        assert "is not a predictions file written by `transferkit predict`" in capsys.readouterr().err
        assert victim.read_bytes() == before
    # interleaved domains: `row` is the row's number in the file, so each prediction finds its row
    lines = (tmp_path / "pets.csv").read_text().splitlines()
    header, body = lines[0], lines[1:]
    mixed = [header] + [r for pair in zip(body[:40], body[40:]) for r in pair]  # shelter, street, ...
    (tmp_path / "mixed.csv").write_text("\n".join(mixed) + "\n")
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--dataset", str(tmp_path / "mixed.csv"), "--out", str(out)]) == 0
    with open(out) as f:
        got = list(csv.DictReader(f))
    assert [int(r["row"]) for r in got if r["domain"] == "street"] == list(range(2, 81, 2))
    assert all(mixed[int(r["row"])].split(",")[0] == r["domain"] for r in got)
    assert main(["predict", str(run), "--dataset", data, "--out", str(out)]) == 0  # its own file: replaced
    # the model's network.json damaged by hand: one line, no traceback
    for damage in ({"num_classes": "two"}, {"in_shape": "abc"}, {"classes": ["cat"]}):
        (run / "model" / "network.json").write_text(json.dumps({**json.loads(spec), **damage}))
        assert main(["predict", str(run), "--dataset", data, "--out", str(out)]) == 2
        assert "network.json is damaged" in capsys.readouterr().err
    (run / "model" / "network.json").write_text(spec)
    # data without column names, of another width: named, not a numpy broadcast error
    assert main(["predict", str(run), "--dataset", "office-caltech10", "--domains", "dslr",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "was trained on 2 columns (f1, f2); domain 'dslr' has 800" in capsys.readouterr().err


def test_transparent_images_are_seen_over_white(tmp_path):
    from transferkit.datasets import load_dataset

    for dom in ("a", "b"):
        for c, band in (("h", np.s_[6:9, :]), ("v", np.s_[:, 6:9])):
            (tmp_path / "icons" / dom / c).mkdir(parents=True)
            rgba = np.zeros((16, 16, 4), np.uint8)  # transparent black, with an opaque black bar
            rgba[band + (3,)] = 255
            Image.fromarray(rgba, "RGBA").save(tmp_path / "icons" / dom / c / "0.png")
    ds = load_dataset(tmp_path / "icons", image_size=16)
    img = ds.X["a"][0]  # class h: white background, black horizontal bar
    assert img[:, 0, 0].tolist() == [1.0, 1.0, 1.0] and img[:, 7, 3].tolist() == [0.0, 0.0, 0.0]


def test_fine_tuning_a_saved_table_model_takes_its_columns_by_name(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    run = tmp_path / "run"
    assert _run(data, "--method", "deep-source-only", "--set", "steps=60", "--out", str(run)) == 0
    swapped = _table(tmp_path / "swapped.csv", columns=("f2", "f1"))  # the same columns, other order
    renamed = _table(tmp_path / "renamed.csv", columns=("g1", "g2"))
    # the saved network itself (lr ~ 0): the same predictions whichever order the columns come in
    tune = ["--method", "fine-tune", "--target-labels", "3", "--set", f"init={run / 'model'}", "--set",
            "steps=1", "--set", "lr=1e-12", "--preprocess", "none"]  # fmt: skip
    preds = []
    for name, table in (("same", data), ("swapped", swapped)):
        out = tmp_path / name
        assert _run(table, *tune, "--out", str(out)) == 0
        preds.append((out / "predictions.csv").read_text())
    assert preds[0] == preds[1]
    capsys.readouterr()
    assert _run(renamed, *tune) == 2
    assert "these data lack ['f1', 'f2']" in capsys.readouterr().err


def test_diagnose_names_classes_by_their_names(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["domain,label,f1,f2"]
    for dom, shift in (("a", 0.0), ("b", 1.0)):
        for i in range(60):
            c = (10, 20, 30)[i % 3]
            x = rng.normal(size=2) + c / 10 + shift
            lines.append(f"{dom},{c},{x[0]:.3f},{x[1]:.3f}")
    (tmp_path / "lab.csv").write_text("\n".join(lines) + "\n")
    argv = ["diagnose", "--dataset", str(tmp_path / "lab.csv"), "--source", "a", "--target", "b"]
    assert main([*argv, "--permutations", "50"]) == 0
    per_class = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("per-class distance")][0]
    assert all(f"{c} " in per_class for c in (10, 20, 30)) and " 0 " not in per_class
    assert main([*argv, "--permutations", "0"]) == 2
    assert "n_permutations" in capsys.readouterr().err


def test_predict_takes_new_rows_without_labels_and_long_texts_load(tmp_path, capsys):
    from transferkit.datasets import load_dataset

    data = _table(tmp_path / "pets.csv")
    run = tmp_path / "run"
    assert _run(data, "--method", "deep-source-only", "--set", "steps=20", "--out", str(run)) == 0
    rows = [ln.split(",") for ln in (tmp_path / "pets.csv").read_text().splitlines()]
    (tmp_path / "new.csv").write_text("\n".join(",".join([r[0], *r[2:]]) for r in rows) + "\n")  # no label
    capsys.readouterr()
    assert (
        main(["predict", str(run), "--dataset", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")])
        == 0
    )
    assert "accuracy" not in capsys.readouterr().out
    assert len((tmp_path / "p.csv").read_text().splitlines()) == len(rows)  # header + every row
    long_text = "great " * 40000  # 240 KB in one cell: past the csv module's default limit
    lines = ["domain,label,text"] + [f"{d},{c},{long_text if i == 0 else 'fine'}" for i, (d, c) in
                                     enumerate([("a", "pos"), ("a", "neg"), ("b", "pos")])]  # fmt: skip
    (tmp_path / "long.csv").write_text("\n".join(lines) + "\n")
    assert load_dataset(tmp_path / "long.csv").X["a"][0].startswith("great great")


def test_quiet_omissions_are_said(tmp_path, capsys):
    from transferkit.datasets import load_dataset

    lines = ["domain,label,text,price"] + [f"{d},{c},{w} item,{i}" for i, (d, c, w) in enumerate(
        [("a", "pos", "good"), ("a", "neg", "bad"), ("b", "pos", "good"), ("b", "neg", "bad")])]  # fmt: skip
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="the other columns \\['price'\\] are not used"):
        load_dataset(tmp_path / "t.csv")
    data = _table(tmp_path / "pets.csv", targets=("street", "field"))
    rows = (tmp_path / "pets.csv").read_text().splitlines()
    (tmp_path / "pets.csv").write_text(  # the target 'field' without labels
        "\n".join(
            r if not r.startswith("field") else ",".join([r.split(",")[0], "", *r.split(",")[2:]])
            for r in rows
        )
        + "\n"  # fmt: skip
    )
    with pytest.warns(UserWarning, match="target 'field' has no labels, so --target-labels 3 reveals none"):
        _run(data, "--method", "self-training", "--target-labels", "3", target=("field",))
    assert main(["methods", "deep-source-only"]) == 0
    out = capsys.readouterr().out
    assert "optimizer = 'sgd'   [one of sgd, adam, adamw]" in out
    assert main(["methods", "pca"]) == 0
    assert "settings (--preprocess pca:key=value,...)" in capsys.readouterr().out


def test_bench_runs_on_your_own_table(tmp_path, capsys):
    import csv

    data = _table(tmp_path / "pets.csv", targets=("street", "park"))
    lines = (tmp_path / "pets.csv").read_text().splitlines()  # a domain without labels: a target only
    (tmp_path / "pets.csv").write_text("\n".join(lines + ["field,,1.0,2.0", "field,,3.0,4.0"]) + "\n")
    out = tmp_path / "bench"
    assert main(["bench", data, "--methods", "source-only", "coral", "--out", str(out), "--quiet",
                 "--jobs", "1"]) == 0  # fmt: skip
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    tasks = {r["task"] for r in rows}
    assert len(tasks) == 6 and "shelter->street" in tasks and len(rows) == 12  # field: no labels to score
    assert not any(t.startswith("field->") or t.endswith("->field") for t in tasks)
    assert main(["bench", data, "--methods", "coral", "--tasks", "park->street", "--out", str(out / "one"),
                 "--quiet", "--jobs", "1"]) == 0  # fmt: skip
    with open(out / "one" / "results.csv") as f:
        assert [r["task"] for r in csv.DictReader(f)] == ["park->street"]


def test_a_bench_run_that_fails_costs_only_itself(tmp_path, capsys):
    # target-only cannot run on a partly labelled target: the suite used to stop there, with the
    # rest of its tasks never run
    data = _table(tmp_path / "pets.csv", targets=("street",))
    lines = (tmp_path / "pets.csv").read_text().splitlines()
    lines = [ln.replace(",cat,", ",,", 1) if ln.startswith("street") and i % 3 == 0 else ln
             for i, ln in enumerate(lines)]  # fmt: skip
    (tmp_path / "pets.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "bench"
    assert main(["bench", data, "--methods", "target-only", "source-only", "--tasks", "shelter->street",
                 "--out", str(out), "--quiet", "--jobs", "1"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "bench: target-only on shelter->street, seed 0:" in err and "1 of 2 runs failed" in err
    with open(out / "results.csv") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["source-only"]
    assert "## Runs that failed\n\n- target-only on shelter->street" in (out / "summary.md").read_text()
    assert main(["bench", data, "--methods", "target-only", "--tasks", "shelter->street",
                 "--out", str(out / "none"), "--quiet", "--jobs", "1"]) == 2  # fmt: skip
    assert "every run of the suite failed" in capsys.readouterr().err


def test_a_run_killed_after_one_method_leaves_that_methods_folder_whole(tmp_path, monkeypatch):
    # its predictions and its result.json come from the same run: the record used to be written only
    # after the last method, so a kill left new predictions beside an earlier run's record
    from transferkit import experiment

    data = _table(tmp_path / "pets.csv")
    out = tmp_path / "run"
    assert _run(data, "--method", "coral", "source-only", "--out", str(out)) == 0
    real = experiment.run

    def killed_at_the_second(spec, **kw):
        if spec.method == "source-only":
            raise KeyboardInterrupt
        return real(spec, **kw)

    monkeypatch.setattr(experiment, "run", killed_at_the_second)
    assert _run(data, "--method", "coral", "source-only", "--preprocess", "none", "--out", str(out)) == 130
    record = json.loads((out / "coral" / "result.json").read_text())
    assert record["config"]["preprocess"] == []  # this run's, as its predictions.csv
    with open(out / "coral" / "predictions.csv") as f:
        hits = [r["prediction"] == r["label"] for r in csv.DictReader(f) if r["label"] not in ("", "-1")]
    assert round(100 * sum(hits) / len(hits), 4) == round(record["accuracy"], 4)


def test_init_takes_a_runs_out_folder_and_target_only_needs_two_folds(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    src = tmp_path / "src"
    assert _run(data, "--method", "deep-source-only", "--set", "steps=20", "--out", str(src)) == 0
    # the run's --out folder itself (the model is under src/model), as predict takes it
    assert _run(data, "--method", "fine-tune", "--target-labels", "2", "--set", f"init={src}",
                "--set", "steps=5", "--out", str(tmp_path / "ft")) == 0  # fmt: skip
    assert _run(data, "--method", "target-only", "--set", "n_folds=1") == 2
    assert "target-only's n_folds must be a whole number >= 2, got 1" in capsys.readouterr().err


def test_a_target_class_no_source_has_is_named(tmp_path):
    data = _table(tmp_path / "pets.csv")
    text = (tmp_path / "pets.csv").read_text().splitlines()
    text = [ln.replace("street,dog", "street,fox") if i % 4 == 0 else ln for i, ln in enumerate(text)]
    (tmp_path / "pets.csv").write_text("\n".join(text) + "\n")
    with pytest.warns(UserWarning, match="target 'street' has classes no source has: \\['fox'\\]"):
        assert _run(data, "--method", "source-only") == 0


def test_deep_settings_that_would_be_ignored_or_overwrite_a_model_are_refused(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv")
    run = tmp_path / "run"
    assert _run(data, "--method", "deep-source-only", "--set", "steps=20", "--out", str(run)) == 0
    model = (run / "model" / "model.safetensors").read_bytes()
    tune = [
        "--method",
        "fine-tune",
        "--target-labels",
        "3",
        "--set",
        f"init={run / 'model'}",
        "--set",
        "steps=2",
    ]
    assert _run(data, *tune, "--out", str(run)) == 2  # its own starting point
    assert "holds the model this run starts from" in capsys.readouterr().err
    assert (run / "model" / "model.safetensors").read_bytes() == model
    for extra, message in ((["--set", "bottleneck_dim=8"], "bottleneck_dim=8 would not change it"),
                           (["--set", "hidden=7"], "hidden=7 would not change it"),
                           (["--set", "freeze=all"], "nothing would train")):  # fmt: skip
        assert _run(data, *tune, *extra) == 2, extra
        assert message in capsys.readouterr().err
    folder = image_folder(tmp_path / "imgs", per_class=4)
    assert main(["run", "--dataset", str(folder), "--source", "a", "--target", "b", "--quiet", "--method",
                 "dann", "--set", "hidden=7", "--set", "steps=2"]) == 2  # fmt: skip
    assert "hidden sets the width of the mlp backbone; the lenet backbone" in capsys.readouterr().err
    again = tmp_path / "again"
    assert _run(data, "--method", "deep-source-only", "--set", "steps=5", "--out", str(again)) == 0
    with pytest.warns(UserWarning, match="held a model from an earlier run in this folder; it is replaced"):
        _run(data, "--method", "deep-source-only", "--set", "steps=5", "--out", str(again))


def test_predictions_mark_revealed_rows_and_early_stopping_records_its_epoch(tmp_path):
    import csv

    data = _table(tmp_path / "pets.csv")
    out = tmp_path / "semi"
    assert _run(data, "--method", "self-training", "--target-labels", "3", "--out", str(out)) == 0
    rec = json.loads((out / "result.json").read_text())
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    counted = [r for r in rows if r["revealed"] == "0"]
    assert sum(r["revealed"] == "1" for r in rows) == rec["n_target_labels_revealed"] == 6
    acc = 100 * np.mean([r["prediction"] == r["label"] for r in counted])
    assert acc == pytest.approx(rec["accuracy"])  # the file's counted rows give the reported accuracy
    es = tmp_path / "es"
    assert _run(data, "--method", "dann", "--set", "epochs=3", "--set", "early_stopping=entropy", "--out",
                str(es)) == 0  # fmt: skip
    rec = json.loads((es / "result.json").read_text())
    assert rec["best_epoch"] in (1, 2, 3)


def test_the_record_holds_the_batch_size_a_small_source_was_trained_with(tmp_path):
    data = _table(tmp_path / "pets.csv", n=30)
    out = tmp_path / "small"
    with pytest.warns(UserWarning, match="using batches of 30"):
        assert _run(data, "--method", "dann", "--set", "steps=5", "--out", str(out)) == 0
    rec = json.loads((out / "result.json").read_text())
    assert rec["config"]["trainer"]["batch_size"] == 30


def test_too_many_target_labels_names_the_class(tmp_path, capsys):
    data = _table(tmp_path / "pets.csv", n=8)
    assert _run(data, "--method", "self-training", "--target-labels", "4") == 2
    assert (
        "class 'cat' has 4 target samples; 4 labelled per class would leave none" in capsys.readouterr().err
    )
