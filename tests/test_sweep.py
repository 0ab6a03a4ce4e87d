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
