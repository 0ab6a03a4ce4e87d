"""Sweeps: a YAML file expanded into trials, run serially or on Ray workers, resumable, choices by
label-free scorers beside the oracle, MLflow logging, and clear errors for bad files."""

from __future__ import annotations

import csv
import json

import pytest

from transferkit.errors import TransferkitError
from transferkit.sweep import expand, load_spec, run_sweep

SPEC = """
dataset: office-caltech10
methods:
  coral: {reg: [0.1, 10.0]}
  source-only: {}
tasks: ["caltech->amazon"]
seeds: [0]
select: [entropy, snd]
"""


def _spec(tmp_path, text=SPEC):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return load_spec(path)


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_serial_sweep_writes_the_results_format_and_resumes(tmp_path):
    spec = _spec(tmp_path)
    assert len(expand(spec, spec.tasks)) == 3  # coral x 2 settings + source-only
    res = run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    assert res == {**res, "trials": 3, "ran": 3}
    rows = _rows(tmp_path / "out" / "results.csv")
    assert {r["selection"] for r in rows if r["method"] == "coral"} == {
        "select:entropy",
        "select:snd",
        "oracle",
    }
    assert [r["selection"] for r in rows if r["method"] == "source-only"] == ["fixed-defaults"]
    oracle = next(float(r["accuracy"]) for r in rows if r["selection"] == "oracle")
    assert all(float(r["accuracy"]) <= oracle for r in rows if r["method"] == "coral")
    trials = _rows(tmp_path / "out" / "trials.csv")
    assert {json.loads(t["params"])["reg"] for t in trials if t["method"] == "coral"} == {0.1, 10.0}
    assert "which scorer to trust" in (tmp_path / "out" / "summary.md").read_text()
    again = run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    assert again["ran"] == 0 and _rows(tmp_path / "out" / "results.csv") == rows
    # the balanced accuracy beside the accuracy, the chosen trial's in each row
    assert all(0 < float(r["balanced_accuracy"]) <= 100 for r in rows)
    by_params = {(t["method"], t["params"]): t["balanced_accuracy"] for t in trials}
    assert all(r["balanced_accuracy"] == by_params[(r["method"], r["params"])] for r in rows)
    assert "| balanced |" in (tmp_path / "out" / "summary.md").read_text()
    # a trial written before the balanced accuracy was recorded is still reused (its cell is left empty)
    for path in (tmp_path / "out" / "trials").glob("*.json"):
        rec = json.loads(path.read_text())
        del rec["balanced_accuracy"]
        path.write_text(json.dumps(rec))
    old = run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    assert old["ran"] == 0
    assert {r["balanced_accuracy"] for r in _rows(tmp_path / "out" / "results.csv")} == {""}
    assert "| balanced |" not in (tmp_path / "out" / "summary.md").read_text()


def test_ray_workers_run_trials_in_their_own_processes_with_the_same_results(tmp_path):
    pytest.importorskip("ray")
    import os

    import ray

    spec = _spec(tmp_path)
    run_sweep(spec, tmp_path / "serial", workers=1, quiet=True)
    try:
        run_sweep(spec, tmp_path / "ray", workers=2, quiet=True, mlflow_uri="")
    finally:
        ray.shutdown()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(_rows(tmp_path / "ray" / "results.csv")) == strip(_rows(tmp_path / "serial" / "results.csv"))
    pids = {json.loads(p.read_text())["pid"] for p in (tmp_path / "ray" / "trials").glob("*.json")}
    assert os.getpid() not in pids
    mlflow = pytest.importorskip("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'ray' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transferkit-sweep"])
    assert len(runs) == 3 and "metrics.accuracy" in runs.columns


@pytest.mark.parametrize(
    "text, match",
    [
        ("dataset: office-caltech10\nmethods: {corl: {}}\n", "(?i)did you mean 'coral'"),
        ("dataset: office-caltech10\nmethods: {coral: {}}\nseed: [0]\n", "unknown keys"),
        ("dataset: office-caltech10\nmethods: {coral: {reg: [fast]}}\n", "reg"),
        ("dataset: office-caltech10\nmethods: {coral: {}}\ntasks: [caltech-amazon]\n", "SOURCE->TARGET"),
        ("dataset: office-caltech10\nmethods: {coral: {}}\nselect: [entropi]\n", "scorer"),
        ("methods: {coral: {}}\n", "needs 'dataset'"),
    ],
)
def test_bad_sweep_files_are_clear_errors(tmp_path, text, match):
    with pytest.raises(TransferkitError, match=match):
        _spec(tmp_path, text)


def _table(path, n=8):
    """A tiny two-domain table: classes a/b, two features, the target shifted."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["domain,label,f1,f2"]
    for d, shift in (("src", 0.0), ("tgt", 0.5)):
        for c, centre in (("a", 0.0), ("b", 3.0)):
            for x in rng.normal(centre + shift, 1.0, size=(n, 2)):
                lines.append(f"{d},{c},{x[0]:.4f},{x[1]:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


TABLE_SPEC = "dataset: {dataset}\nmethods:\n  coral: {{reg: [0.1, 10.0]}}\n{extra}"


@pytest.mark.parametrize(
    "extra, match",
    [
        ("tasks: [src->tgt]\nseeds: [zero]\n", r"'seeds' must be a list of whole numbers.*'zero'"),
        ("tasks: [src->tgt]\nseeds: [-1]\n", r"'seeds' must be .* from 0 to 4294967295"),
        ("tasks: [src->tgt]\nsamples: many\n", r"'samples' must be a whole number 0 or more, got 'many'"),
        ("tasks: [src->tgt]\ntarget_labels: x\n", r"'target_labels' must be a whole number"),
        ("tasks: [src->tgt]\nseeds: []\n", r"'seeds' must be a list of at least one seed"),
        ("tasks: []\n", r"'tasks' must be a list of SOURCE->TARGET tasks"),
        ("tasks: [src->tgt]\nselect: 3\n", r"'select' must be a scorer name or a list"),
        ("tasks: [src->tgt]\nestimator: 'logreg:C=0'\n", r"estimator 'logreg' rejected .*'C' parameter"),
    ],
)
def test_wrongly_typed_or_empty_keys_are_clear_errors_before_any_trial(tmp_path, extra, match):
    with pytest.raises(TransferkitError, match=match):
        _spec(tmp_path, TABLE_SPEC.format(dataset="office-caltech10", extra=extra))


def test_a_sweep_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(TransferkitError, match="not UTF-8"):
        load_spec(path)


def test_one_scorer_may_be_named_without_a_list(tmp_path):
    spec = _spec(tmp_path, TABLE_SPEC.format(dataset="office-caltech10", extra="select: entropy\n"))
    assert spec.select == ["entropy"]


def test_empty_tasks_or_seeds_given_directly_are_errors(tmp_path):
    from dataclasses import replace

    spec = _spec(tmp_path, TABLE_SPEC.format(dataset="office-caltech10", extra=""))
    with pytest.raises(TransferkitError, match="no task"):
        run_sweep(replace(spec, tasks=[]), tmp_path / "out", workers=1, quiet=True)
    with pytest.raises(TransferkitError, match="no seed"):
        run_sweep(
            replace(spec, tasks=[("dslr", "webcam")], seeds=[]), tmp_path / "out", workers=1, quiet=True
        )


def test_a_sweep_runs_on_your_own_table_given_by_a_path_relative_to_the_sweep_file(tmp_path, monkeypatch):
    _table(tmp_path / "mine.csv")
    text = TABLE_SPEC.format(dataset="mine.csv", extra="tasks: [src->tgt]\nselect: entropy\n")
    spec = _spec(tmp_path, text)
    monkeypatch.chdir(tmp_path.parent)  # the path is read from the sweep file's folder, not from here
    res = run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    assert res == {**res, "trials": 2, "ran": 2}
    rows = _rows(tmp_path / "out" / "results.csv")
    assert {r["selection"] for r in rows} == {"select:entropy", "oracle"}
    assert all(r["task"] == "src->tgt" and 0 <= float(r["accuracy"]) <= 100 for r in rows)
    no_tasks = _spec(tmp_path, TABLE_SPEC.format(dataset=str(tmp_path / "mine.csv"), extra=""))
    with pytest.raises(TransferkitError, match=r"name the tasks .*src->tgt.*domains: src, tgt"):
        run_sweep(no_tasks, tmp_path / "out2", workers=1, quiet=True)


@pytest.mark.parametrize("damage", ["{trunc", '{"a": 1}', "[]"])
def test_a_damaged_trial_file_on_resume_is_a_clear_error_naming_it(tmp_path, damage):
    _table(tmp_path / "mine.csv")
    spec = _spec(tmp_path, TABLE_SPEC.format(dataset="mine.csv", extra="tasks: [src->tgt]\n"))
    run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    victim = sorted((tmp_path / "out" / "trials").glob("*.json"))[0]
    victim.write_text(damage)
    with pytest.raises(TransferkitError, match=rf"{victim.name} is not a finished trial's record.*delete it"):
        run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    victim.unlink()  # as the message says: the trial runs again
    assert run_sweep(spec, tmp_path / "out", workers=1, quiet=True)["ran"] == 1


MINE_SPEC = """dataset: {dataset}
methods:
  coral: {{reg: [0.1, 10.0]}}
  source-only: {{}}
tasks: [src->tgt]
select: {select}
{extra}"""


def _mine(tmp_path, dataset="mine.csv", select="entropy", extra=""):
    return _spec(tmp_path, MINE_SPEC.format(dataset=dataset, select=select, extra=extra))


def _fresh_rows(spec, out, monkeypatch):
    """The results of the same sweep run from scratch (no trial file, no dataset cached in this process)."""
    import transferkit.sweep as sweep

    monkeypatch.setattr(sweep, "_DATASETS", {})
    run_sweep(spec, out, workers=1, quiet=True)
    return _rows(out / "results.csv")


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _change_estimator(tmp_path, monkeypatch):
    return _mine(tmp_path, extra="estimator: logreg\n")


def _change_target_labels(tmp_path, monkeypatch):
    return _mine(tmp_path, extra="target_labels: 2\n")


def _change_dataset_path(tmp_path, monkeypatch):
    _table(tmp_path / "other.csv", n=12)
    return _mine(tmp_path, dataset="other.csv")


def _change_dataset_content(tmp_path, monkeypatch):
    _table(tmp_path / "mine.csv", n=12)  # the same path, other rows
    return _mine(tmp_path)


def _change_preprocess(tmp_path, monkeypatch):
    import transferkit.experiment as experiment

    monkeypatch.setattr(experiment, "default_preprocess", lambda dataset, dataset_id: ("normalize",))
    return _mine(tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        _change_estimator,
        _change_target_labels,
        _change_dataset_path,
        _change_dataset_content,
        _change_preprocess,
    ],
)
def test_a_changed_sweep_file_reruns_every_trial_it_changes_and_says_so(
    tmp_path, monkeypatch, capsys, change
):
    _table(tmp_path / "mine.csv")
    first = run_sweep(_mine(tmp_path), tmp_path / "out", workers=1, quiet=True)
    assert first == {**first, "trials": 3, "ran": 3}
    capsys.readouterr()
    spec = change(tmp_path, monkeypatch)
    res = run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    assert res == {**res, "trials": 3, "ran": 3, "changed": 3}
    assert "3 finished trials" in capsys.readouterr().err
    rows = _rows(tmp_path / "out" / "results.csv")
    assert _strip(rows) == _strip(_fresh_rows(spec, tmp_path / "fresh", monkeypatch))
    assert run_sweep(spec, tmp_path / "out", workers=1, quiet=True)["ran"] == 0  # now it resumes


def test_a_trial_file_from_before_settings_were_recorded_is_rerun(tmp_path):
    _table(tmp_path / "mine.csv")
    spec = _mine(tmp_path)
    run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    for path in (tmp_path / "out" / "trials").glob("*.json"):  # the older format: no settings in it
        rec = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in rec.items() if k not in ("settings", "settings_id")}))
    res = run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    assert res == {**res, "ran": 3, "changed": 3}


def test_a_scorer_added_to_select_rescores_the_trials_that_lack_it(tmp_path, capsys):
    _table(tmp_path / "mine.csv")
    run_sweep(_mine(tmp_path), tmp_path / "out", workers=1, quiet=True)
    capsys.readouterr()
    spec = _mine(tmp_path, select="[entropy, snd]")
    res = run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    assert res == {**res, "trials": 3, "ran": 2, "changed": 0}  # the grid's trials; source-only is not scored
    assert "snd" in capsys.readouterr().err
    rows = _rows(tmp_path / "out" / "results.csv")
    assert {r["selection"] for r in rows if r["method"] == "coral"} == {
        "select:entropy",
        "select:snd",
        "oracle",
    }
    back = run_sweep(_mine(tmp_path), tmp_path / "out", workers=1, quiet=True)  # a scorer dropped: no re-run
    assert back["ran"] == 0
    assert not any("score:snd" in t for t in _rows(tmp_path / "out" / "trials.csv"))


@pytest.mark.parametrize("select, extra", [("[]", ""), ("entropy", "target_labels: 2\n")])
def test_a_grid_without_select_reports_every_setting_on_its_own(tmp_path, select, extra):
    """Nothing chooses among the settings (no scorer; or target labels revealed, where the label-free
    scorers do not apply): each setting is its own row, never averaged with the others."""
    _table(tmp_path / "mine.csv")
    spec = _spec(
        tmp_path, MINE_SPEC.format(dataset="mine.csv", select=select, extra="seeds: [0, 1]\n" + extra)
    )
    run_sweep(spec, tmp_path / "out", workers=1, quiet=True)
    rows = _rows(tmp_path / "out" / "results.csv")
    coral = [r for r in rows if r["method"] == "coral"]
    assert sorted((r["selection"], r["seed"]) for r in coral) == [
        ("grid:reg=0.1", "0"),
        ("grid:reg=0.1", "1"),
        ("grid:reg=10.0", "0"),
        ("grid:reg=10.0", "1"),
    ]
    assert all(r["selection"] == f"grid:reg={json.loads(r['params'])['reg']}" for r in coral)
    assert [r["selection"] for r in rows if r["method"] == "source-only"] == ["fixed-defaults"] * 2
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| coral | grid:reg=0.1 |" in summary and "| coral | grid:reg=10.0 |" in summary
    assert "| coral | fixed-defaults |" not in summary
    trials = _rows(tmp_path / "out" / "trials.csv")  # written without scores too (none left over)
    assert sorted((t["method"], t["seed"]) for t in trials) == [("coral", s) for s in "0011"] + [
        ("source-only", "0"),
        ("source-only", "1"),
    ]
