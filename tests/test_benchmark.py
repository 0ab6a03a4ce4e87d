"""`run_suite`'s parallel workers."""

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
