"""`run_suite`: its parallel workers, its arguments and its summary."""

import csv
import warnings

import pytest
from conftest import require_dataset

from transferkit.benchmark import run_suite


def test_parallel_bench_keeps_its_workers_when_deep_jobs_follow_shallow_ones(tmp_path):
    """loky restarts a worker whose memory grows by 300 MB after its first job; torch's import did that
    at the first deep job of a worker that began with a shallow one (paying the imports again, with a
    'worker stopped' warning)."""
    pytest.importorskip("psutil")  # loky's leak guard is off without it
    require_dataset("office-caltech10")
    tasks = [("dslr", "webcam"), ("webcam", "dslr"), ("amazon", "dslr"), ("caltech", "dslr")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = run_suite(
            "office-caltech10", tmp_path, methods=["source-only", "deep-source-only"], tasks=tasks,
            params={"deep-source-only": {"epochs": 1}}, estimator="logreg", quiet=True, jobs=2,
        )  # fmt: skip
    assert len(rows) == 8
    assert not [w for w in caught if "worker stopped" in str(w.message)]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"seeds": []}, "seeds is empty"),  # was an IndexError after running nothing
        ({"methods": []}, "methods is empty"),  # was every registered method
        ({"tasks": []}, "tasks is empty"),  # was every pair
        ({"seeds": [0, 0]}, "seed 0 is named twice"),  # duplicate rows, counted twice in the means
        ({"methods": ["knn", "knn"]}, "method knn is named twice"),
        ({"tasks": [("dslr", "webcam"), ("dslr", "webcam")]}, "task dslr->webcam is named twice"),
        ({"select": ["entropy", "entropy"]}, "scorer entropy is named twice"),
        ({"seeds": [-1]}, "a seed is a whole number from 0"),
        ({"jobs": -2}, "jobs is a whole number >= 1"),
        ({"jobs": 0}, "jobs is a whole number >= 1"),
    ],
)
def test_run_suite_refuses_empty_repeated_or_negative_arguments_before_any_work(tmp_path, kwargs, message):
    from transferkit.errors import TransferkitError

    args = {"methods": ["knn"], "tasks": [("dslr", "webcam")], "quiet": True, **kwargs}
    with pytest.raises(TransferkitError, match=message):
        run_suite("office-caltech10", tmp_path, **args)
    assert not (tmp_path / "results.csv").exists()


def test_the_summary_marks_rows_trained_with_target_labels(tmp_path):
    """fine-tuned-linear gets 3 labelled target samples per class: its row stood under `fixed-defaults`,
    which the summary describes as 'no target label used', beside the label-free methods."""
    rows = run_suite("office-caltech10", tmp_path, methods=["knn", "fine-tuned-linear"],
                     tasks=[("dslr", "webcam")], quiet=True, jobs=1)  # fmt: skip
    assert {r["method"]: r["target_labels"] for r in rows} == {"knn": 0, "fine-tuned-linear": 3}
    summary = (tmp_path / "summary.md").read_text()
    assert "| method | selection | average | balanced | dslr->webcam | target labels per class |" in summary
    csv_rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    for r, c in zip(rows, csv_rows):  # the balanced accuracy beside the accuracy, as each run's record has it
        assert 0 < r["balanced_accuracy"] <= 100 and float(c["balanced_accuracy"]) == r["balanced_accuracy"]
    knn = next(line for line in summary.splitlines() if line.startswith("| knn |"))
    linear = next(line for line in summary.splitlines() if line.startswith("| fine-tuned-linear |"))
    assert knn.endswith(" 0 |") and linear.endswith(" 3 |")
    assert "semi-supervised, not label-free" in summary


def test_the_summary_never_averages_runs_given_different_numbers_of_target_labels():
    from transferkit.benchmark import summarize

    def row(k, acc):
        return {"method": "m", "selection": "fixed-defaults", "task": "a->b", "seed": 0,
                "target_labels": k, "accuracy": acc}  # fmt: skip

    text = summarize([row(0, 40.0), row(5, 60.0)], suite="s", command="c", total_seconds=1.0)
    assert "| m | fixed-defaults | 40.00 | 40.00 | 0 |" in text
    assert "| m | fixed-defaults | 60.00 | 60.00 | 5 |" in text


def test_the_summary_gives_the_balanced_accuracy_beside_the_accuracy_when_every_row_has_it():
    from transferkit.benchmark import summarize

    def row(task, seed, acc, bal=None):
        return {"method": "m", "selection": "fixed-defaults", "task": task, "seed": seed, "target_labels": 0,
                "accuracy": acc, **({"balanced_accuracy": bal} if bal is not None else {})}  # fmt: skip

    rows = [row("a->b", 0, 90.0, 50.0), row("a->b", 1, 80.0, 60.0), row("b->a", 0, 70.0, 70.0),
            row("b->a", 1, 70.0, 70.0)]  # fmt: skip
    text = summarize(rows, suite="s", command="c", total_seconds=1.0)
    assert "| method | selection | average | balanced | a->b | b->a |" in text
    assert "| m | fixed-defaults | 77.50 | 62.50 | 85.00 | 70.00 |" in text  # (55 + 70) / 2
    old = summarize([row("a->b", 0, 90.0)], suite="s", command="c", total_seconds=1.0)
    assert "| method | selection | average | a->b |" in old  # rows of an older results.csv: none


def test_a_cell_over_fewer_seeds_than_the_suite_says_so():
    # a failed run left one task with fewer seeds: its mean, and the average, are over other runs
    from transferkit.benchmark import summarize

    def row(task, seed, acc):
        return {"method": "m", "selection": "fixed-defaults", "task": task, "seed": seed,
                "target_labels": 0, "accuracy": acc}  # fmt: skip

    rows = [row("a->b", 0, 40.0), row("a->b", 1, 42.0), row("b->a", 0, 50.0)]
    text = summarize(rows, suite="s", command="c", total_seconds=1.0)
    assert "| m | fixed-defaults | 45.50 | 41.00 | 50.00 (1 of 2 seeds) |" in text
    full = summarize([*rows, row("b->a", 1, 52.0)], suite="s", command="c", total_seconds=1.0)
    assert "| m | fixed-defaults | 46.00 | 41.00 | 51.00 |" in full
