"""The scripts in benchmarks/: a mistake in their arguments, or a run that would write over results, ends
with one usage line (exit code 2) before any data is loaded or any file written. Nothing here trains or
writes under benchmarks/results."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCHMARKS / "results"


def _script(name: str):
    if str(BENCHMARKS) not in sys.path:  # as `python benchmarks/NAME.py` has it: dg, _common
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _usage_error(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _snapshot() -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in RESULTS.rglob("*") if p.is_file()}


@pytest.fixture
def committed():
    """The committed results, byte for byte, before and after the test."""
    before = _snapshot()
    yield
    assert _snapshot() == before


def _deep_rows(folder: Path, params: dict) -> None:
    deep_da = _script("deep_da")
    folder.mkdir(parents=True, exist_ok=True)
    row = {c: "" for c in deep_da.COLUMNS}
    row.update(suite="mnist-usps-jda", task="usps->mnist", source="usps", target="mnist",
               method="deep-source-only", params=json.dumps(params, sort_keys=True), seed=0,
               selection="fixed-defaults", target_labels=0, accuracy=50.0, seconds=1.0)  # fmt: skip
    with open(folder / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, deep_da.COLUMNS)
        w.writeheader()
        w.writerow(row)


def test_deep_da_never_writes_over_results_without_resume(tmp_path, capsys, committed):
    """Without --resume a run replaced results.csv with its own rows: `deep_da.py digits --methods dann`
    into the default folder dropped every other method's committed rows."""
    deep_da = _script("deep_da")
    settings = {**deep_da.SUITES["mnist-usps-jda"]["settings"], "epochs": 1}
    _deep_rows(tmp_path, settings)
    before = (tmp_path / "results.csv").read_bytes()
    argv = ["mnist-usps-jda", "--methods", "dann", "--seeds", "0", "--epochs", "1", "--out", str(tmp_path)]
    err = _usage_error(capsys, deep_da.main, argv)
    assert "already holds results: pass --resume" in err
    assert (tmp_path / "results.csv").read_bytes() == before
    # the committed folder is refused the same way, before any data is loaded
    err = _usage_error(capsys, deep_da.main, ["digits", "--methods", "dann", "--seeds", "0"])
    assert "already holds results" in err


def test_deep_da_resumes_only_rows_of_the_same_settings(tmp_path, capsys):
    """A resumed --epochs 1 smoke test sat in one table with the 30-epoch rows (one `average` over both)."""
    deep_da = _script("deep_da")
    _deep_rows(tmp_path, deep_da.SUITES["mnist-usps-jda"]["settings"])  # 30 epochs
    argv = ["mnist-usps-jda", "--methods", "dann", "--seeds", "0", "--epochs", "1", "--resume"]
    err = _usage_error(capsys, deep_da.main, [*argv, "--out", str(tmp_path)])
    assert '"epochs": 30' in err and '"epochs": 1' in err and "name another --out" in err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--methods", "nope"], "unknown method 'nope'"),  # was a traceback
        (["--methods", "coral"], "coral is not a deep method"),  # a shallow method failed mid-run
        (["--methods", "dann", "dann"], "--methods: dann is named twice"),  # duplicate rows
        (["--seeds", "0", "0"], "--seeds: 0 is named twice"),
        (["--seeds", "-1"], "--seeds takes whole numbers >= 0"),
        (["--epochs", "0"], "--epochs must be >= 1"),  # was the suite's epochs, silently
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--tasks", "usps:usps"], "SOURCE:TARGET pairs of two domains"),
        (["--tasks", "usps:svhn"], "no domain 'svhn'"),  # was a traceback
        (["--resume", "--replace"], "pass one"),
        (["--jobs", "1", "--jobs", "2"], "--jobs was given twice"),  # ran with the last one
    ],
)
def test_deep_da_refuses_bad_arguments_in_one_line(tmp_path, capsys, extra, message):
    deep_da = _script("deep_da")
    epochs = [] if "--epochs" in extra else ["--epochs", "1"]  # an option given twice is an error of its own
    argv = ["mnist-usps-jda", "--out", str(tmp_path / "out"), *epochs, *extra]
    assert message in _usage_error(capsys, deep_da.main, argv)
    assert not (tmp_path / "out").exists()


def test_dg_never_writes_over_results_without_resume_nor_resumes_other_settings(tmp_path, capsys, committed):
    """`dg.py digits-dg --max-per-domain 2000 --epochs 20` (a docstring command) wrote over the committed
    5-epoch digits-dg results; with --resume it put 20-epoch rows in their table."""
    dg = _script("dg")
    err = _usage_error(capsys, dg.main, ["digits-dg", "--max-per-domain", "2000", "--epochs", "20"])
    assert "already holds results: pass --resume" in err
    err = _usage_error(
        capsys, dg.main, ["digits-dg", "--max-per-domain", "2000", "--epochs", "20", "--resume"]
    )
    assert "holds rows made with" in err and '"epochs": 5' in err and '"epochs": 20' in err
    # a scratch folder made by a --quick run is not resumed by a full one either
    (tmp_path / "results.csv").write_text((RESULTS / "digits-dg" / "results.csv").read_text())
    setting = dg._setting({**dg.SUITES["digits-dg"]["settings"], "epochs": 5}, 2, 1000)
    (tmp_path / "summary.md").write_text(
        f"# digits-dg (QUICK SMOKE TEST: not results)\n\n{setting}; the latest command ran with 2 "
        "torch threads.\n"
    )
    argv = ["digits-dg", "--max-per-domain", "1000", "--epochs", "5", "--resume", "--out", str(tmp_path)]
    assert "(--quick), this run makes them with" in _usage_error(capsys, dg.main, argv)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--methods", "bogus"], "unknown method 'bogus'"),  # was a traceback
        (["--methods", "dann"], "dann is not a domain generalization method"),
        (["--seeds", "1", "1"], "--seeds: 1 is named twice"),
        (["--held-out", "usps", "usps"], "--held-out: usps is named twice"),
        (["--epochs", "0"], "--epochs must be >= 1"),  # was the suite's epochs, silently
        (["--max-per-domain", "0"], "--max-per-domain must be >= 1"),  # was every row, silently
    ],
)
def test_dg_refuses_bad_arguments_in_one_line(tmp_path, capsys, extra, message):
    dg = _script("dg")
    argv = ["digits-dg", "--quick", "--out", str(tmp_path / "out"), *extra]
    assert message in _usage_error(capsys, dg.main, argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name,argv,message",
    [
        # a smoke test or a subset into the default --out rewrote the committed folder whole
        ("fewshot", ["digits-fewshot", "--episodes", "5"], "--episodes changed from the defaults"),
        ("multitask", ["--suites", "amazon", "--epochs-amazon", "1"], "--suites, --epochs-amazon changed"),
        ("pretrained_vs_scratch", ["--seeds", "0", "--steps", "2"], "--seeds, --steps changed"),
        ("finetune_digits", ["--shots", "1"], "--shots changed"),
        ("kernel_memory", ["--sizes", "200"], "--sizes changed"),
        ("skada_comparison", ["--methods", "kmm"], "--methods changed"),
        ("trainer_overhead", ["--synthetic", "--rounds", "1"], "--rounds, --synthetic changed"),
        # wrong values: silently dropped, a KeyError, or an empty table
        ("skada_comparison", ["--methods", "kmmm", "--out", "/nonexistent"], "kmmm is not compared"),
        ("pretrained_vs_scratch", ["--shots", "0", "--out", "/nonexistent"], ">= 1, got 0"),
        ("finetune_digits", ["--targets", "mnist", "--out", "/nonexistent"], "a target is usps or mnist_m"),
        (
            "fewshot",
            ["digits-fewshot", "--episodes", "0", "--out", "/nonexistent"],
            "--episodes must be >= 1",
        ),
        ("multitask", ["--seeds", "0", "0", "--out", "/nonexistent"], "--seeds: 0 is named twice"),
        ("label_shift", ["--seeds", "0"], "--seeds changed"),
        ("label_shift", ["--seeds", "1", "1", "--out", "/nonexistent"], "--seeds: 1 is named twice"),
    ],
)
def test_scripts_without_resume_refuse_to_rewrite_committed_results_and_bad_values(
    capsys, committed, name, argv, message
):
    script = _script(name)
    assert message in _usage_error(capsys, script.main, argv)
    assert not Path("/nonexistent").exists()


def test_scale_help_prints_usage_instead_of_running_the_benchmark(capsys, committed):
    """scale.py read no arguments: `--help` ran the whole benchmark and wrote over its results."""
    scale = _script("scale")
    with pytest.raises(SystemExit) as exit_:
        scale.main(["--help"])
    assert exit_.value.code == 0 and "--out" in capsys.readouterr().out


def test_deep_da_summary_says_which_cells_have_fewer_seeds():
    # a run that failed or was not made left a task with fewer seeds than the table's: its cell said
    # nothing, and the average mixed 2- and 3-seed means
    summary = _script("deep_da").summary

    def row(task, seed, acc):
        return {"suite": "s", "task": task, "method": "dann", "params": "{}", "seed": str(seed),
                "selection": "fixed-defaults", "accuracy": str(acc), "seconds": "1"}  # fmt: skip

    rows = [row("a->b", 0, 40.0), row("a->b", 1, 44.0), row("b->a", 0, 50.0)]
    text = summary(rows, suite="s", commands=["c"], notes=[])
    assert "| dann | 46.00 | 42.00 ± 2.83 | 50.00 (1 of 2 seeds) |" in text
    assert "of 2 seeds" not in summary([*rows, row("b->a", 1, 50.0)], suite="s", commands=["c"], notes=[])
