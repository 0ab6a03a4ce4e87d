"""Suites: every task of a data set x methods x seeds, as one tidy table.

A suite id is a data set id; its tasks are every ordered pair of distinct domains. Each run is one
row of ``results.csv``:

``suite, task, source, target, method, params, estimator, preprocess, seed, selection,
target_labels, accuracy, seconds``

``selection`` is ``fixed-defaults`` for a setting fixed in advance (no target label used to choose
it) and ``oracle`` for rows that read target labels (the target-only ceiling). ``target_labels`` is
the number of labelled target samples per class the method was given (0: unsupervised; methods that
need a few get 3 unless the suite says otherwise); those rows are left out of the accuracy.
``summary.md`` holds the per-method averages, the command that made the table and the machine it ran
on. Both files are rewritten atomically after every row, so an interrupted suite keeps what it
finished.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from transferkit import registry
from transferkit.errors import TransferkitError, is_whole, repeated
from transferkit.experiment import (
    ORACLE,
    RunSpec,
    default_preprocess,
    grid,
    machine,
    run,
    select_runs,
    versions,
)
from transferkit.io import atomic_write_text
from transferkit.progress import progress_bar
from transferkit.selection import choose, reads_target

__all__ = ["COLUMNS", "default_methods", "run_suite", "summarize", "summarize_selection"]

COLUMNS = [
    "suite", "task", "source", "target", "method", "params", "estimator", "preprocess",
    "seed", "selection", "target_labels", "accuracy", "balanced_accuracy", "seconds",
]  # fmt: skip
DEFAULT_TARGET_LABELS = 3
"""Labelled target samples per class given to methods that need some, when the suite names none."""


def default_methods() -> list[str]:
    """Every registered method (the oracle included, reported as such), except the domain
    generalization ones: a suite's tasks have one source domain, and those need several
    (``benchmarks/dg.py`` runs them under the leave-one-domain-out protocol)."""
    return [
        m for m in registry.list_methods() if registry.entry("method", m).family != "domain-generalization"
    ]


def _csv(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in columns})
    return buf.getvalue()


def summarize_selection(candidates: list[dict]) -> str:
    """Which label-free scorer comes closest to the oracle, across every task and method of a suite.

    For each scorer: the mean regret (oracle accuracy minus the accuracy of the scorer's choice,
    in points), how often it picked the oracle's setting, and the mean Spearman rank correlation
    between its scores and the target accuracy over each task's candidates.
    """
    from scipy.stats import spearmanr

    groups = defaultdict(list)
    for c in candidates:
        groups[(c["task"], c["method"], c["seed"])].append(c)
    columns = dict.fromkeys(k for c in candidates for k in c)  # every scorer any method was scored by
    scorers = [k.split(":", 1)[1] for k in columns if k.startswith("score:")]
    lines = [
        "## Choosing without target labels: which scorer to trust",
        "",
        f"Over {len(groups)} task x method x seed groups with a search space. Regret: oracle accuracy "
        "minus the accuracy of the scorer's choice (points, lower is better). Spearman: rank correlation "
        "of the scores with target accuracy over each group's candidates (higher is better). Candidates "
        "are fitted on 80% of the source (the other 20% is the scorers' held-out source).",
        "",
        "| scorer | mean regret | picked the oracle's setting | mean Spearman |",
        "|---|---|---|---|",
    ]
    ranked = []
    for scorer in scorers:
        regrets, hits, rhos = [], [], []
        for group in groups.values():
            if any(c.get(f"score:{scorer}", "") == "" for c in group):
                continue  # not scored by it (a domain generalization method and a target scorer)
            acc = np.array([float(c["accuracy"]) for c in group])
            score = np.array([float(c[f"score:{scorer}"]) for c in group])
            chosen = float(choose(group, scorer, lambda c, name: c[f"score:{name}"])["accuracy"])
            regrets.append(acc.max() - chosen)
            hits.append(chosen == acc.max())
            if len(group) > 2 and np.ptp(acc) > 0 and np.ptp(score) > 0:
                rhos.append(spearmanr(score, acc).statistic)
        rho = f"{np.mean(rhos):.2f}" if rhos else "n/a"
        ranked.append((np.mean(regrets), scorer, f"| {scorer} | {np.mean(regrets):.2f} | "
                      f"{100 * np.mean(hits):.0f}% | {rho} |"))  # fmt: skip
    lines += [line for _, _, line in sorted(ranked)]
    return "\n".join(lines) + "\n"


def summarize(rows: list[dict], *, suite: str, command: str, total_seconds: float) -> str:
    """Markdown: per-method average over tasks (mean over seeds) and the per-task table."""
    by = defaultdict(list)
    tasks = []

    def labels(r) -> int:  # labelled target samples per class the run was given (0: none)
        return int(r.get("target_labels") or 0)

    # the balanced accuracy's average beside the accuracy's, when every row has one (rows written by
    # an older transferkit have none)
    balanced = all(r.get("balanced_accuracy") not in (None, "") for r in rows)
    by_balanced = defaultdict(list)
    for r in rows:
        by[(r["method"], r["selection"], labels(r), r["task"])].append(float(r["accuracy"]))
        if balanced:
            by_balanced[(r["method"], r["selection"], labels(r), r["task"])].append(
                float(r["balanced_accuracy"])
            )
        if r["task"] not in tasks:
            tasks.append(r["task"])
    methods = []
    for r in rows:
        key = (r["method"], r["selection"], labels(r))
        if key not in methods:
            methods.append(key)
    revealed = sorted({k for _, selection, k in methods if k and selection != ORACLE})
    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [
        f"# {suite}",
        "",
        f"Command: `{command}`  ",
        f"Seeds: {', '.join(map(str, seeds))}; total time {total_seconds:.1f} s; "
        f"machine: {machine()['processor']}, {machine()['cpus']} CPUs; "
        f"versions: {', '.join(f'{k} {v}' for k, v in versions().items())}.",
        "",
        "Accuracy on the target in percent (mean over seeds). `fixed-defaults`: one setting per method "
        "fixed in advance for every task, no target label used. `oracle`: reads target labels."
        + (
            " `target labels per class` K > 0: the method was trained with K labelled target samples per "
            "class (left out of the accuracy): semi-supervised, not label-free."
            if revealed
            else ""
        )
        + (
            " `balanced`: the average of the balanced accuracy (the mean of the per-class recalls: it "
            "falls below the accuracy where a model favours a target's largest classes)."
            if balanced
            else ""
        ),
        "",
        "| method | selection | average | "
        + ("balanced | " if balanced else "")
        + " | ".join(tasks)
        + " |"
        + (" target labels per class |" if revealed else ""),
        "|---|---|---|" + "---|" * (len(tasks) + bool(revealed) + balanced),
    ]
    for method, selection, k in methods:
        cells, means = [], []
        for t in tasks:
            accs = by.get((method, selection, k, t))
            if accs:
                means.append(float(np.mean(accs)))
                # fewer runs than the suite's seeds (a failed run): that cell, and the average, say so
                short = f" ({len(accs)} of {len(seeds)} seeds)" if len(accs) < len(seeds) else ""
                cells.append(f"{means[-1]:.2f}{short}")
            else:
                cells.append("")
        avg = f"{np.mean(means):.2f}" if len(means) == len(tasks) else "(incomplete)"
        if balanced:
            per_task = [np.mean(v) for t in tasks if (v := by_balanced.get((method, selection, k, t)))]
            avg += f" | {np.mean(per_task):.2f}" if len(means) == len(tasks) else " | (incomplete)"
        lines.append(
            f"| {method} | {selection} | {avg} | "
            + " | ".join(cells)
            + " |"
            + (f" {k} |" if revealed else "")
        )
    return "\n".join(lines) + "\n"


def _applied(entry, dataset, preprocess) -> str:
    """The preprocessing a method's rows really went through: deep methods take the steps on feature
    vectors only (texts become sentence embeddings, images stay images)."""
    if entry.role == "deep":
        from transferkit.deep.runner import input_preprocess

        return input_preprocess(dataset, preprocess)
    return " ".join(preprocess)


def _job_rows(
    job, dataset, base: RunSpec, preprocess, params, target_labels, select, command, warm_torch=False
) -> tuple[list[dict], list[dict], str]:
    """One task x method x seed: result rows, scored candidates, and why it failed ("" if it did not).

    A run that fails (a method that cannot run on this task, a solver that gives up, a diverging
    loss) costs only itself: the suite goes on and says which one failed and why."""
    from numpy.linalg import LinAlgError

    try:
        rows, candidates = _job_rows_or_raise(
            job, dataset, base, preprocess, params, target_labels, select, command, warm_torch
        )
        return rows, candidates, ""
    except (TransferkitError, ValueError, ArithmeticError, LinAlgError) as exc:
        if os.environ.get("TRANSFERKIT_TRACEBACK"):
            import traceback

            traceback.print_exc()
        message = str(exc) if isinstance(exc, TransferkitError) else f"{type(exc).__name__}: {exc}"
        (source, target), method, seed = job
        return [], [], f"{method} on {source}->{target}, seed {seed}: {message}"


def _job_rows_or_raise(
    job, dataset, base: RunSpec, preprocess, params, target_labels, select, command, warm_torch=False
) -> tuple[list[dict], list[dict]]:
    """One task x method x seed: result rows (fixed defaults, then selections) and scored candidates.

    ``warm_torch`` imports torch first (see :func:`run_suite`)."""
    if warm_torch:
        import torch  # noqa: F401
    candidate_rows: list[dict] = []
    (source, target), method, seed = job
    entry = registry.entry("method", method)
    method_params = dict((params or {}).get(method, {}))
    k = target_labels
    if k == 0 and getattr(entry.load(), "needs_target_labels", False):
        k = DEFAULT_TARGET_LABELS
    spec = replace(
        base, sources=(source,), targets=(target,), method=method, params=method_params, seed=seed,
        target_labels=k,
    )  # fmt: skip
    rec = run(spec, dataset=dataset, command=command)
    common = {
        "suite": base.dataset, "task": f"{source}->{target}", "source": source, "target": target,
        "method": method, "estimator": "" if rec["config"]["estimator"] is None else base.estimator,
        "preprocess": _applied(entry, dataset, preprocess), "seed": seed, "target_labels": k,
    }  # fmt: skip
    rows = [
        {**common, "params": json.dumps(method_params, sort_keys=True), "selection": rec["selection"],
         "accuracy": round(rec["accuracy"], 4), "balanced_accuracy": round(rec["balanced_accuracy"], 4),
         "seconds": round(rec["seconds"], 4)}
    ]  # fmt: skip
    space = {key: v for key, v in entry.search_space.items() if key not in method_params}
    if not getattr(entry.load(), "uses_target", True):  # domain generalization: no scorer of the target
        select = tuple(s for s in select if not reads_target(s))
    if select and space and k == 0 and not entry.requires_target_labels:
        candidates = grid(space)
        scored = select_runs(spec, dataset, preprocess, candidates, list(select))
        for c in scored:
            candidate_rows.append(
                {"task": common["task"], "method": method, "seed": seed,
                 "params": json.dumps({**method_params, **c["params"]}, sort_keys=True),
                 **{f"score:{k}": round(v, 6) for k, v in c["scores"].items()},
                 "collapsed": int(c["collapsed"]), "accuracy": round(c["accuracy"], 4)}
            )  # fmt: skip
        seconds = sum(c["seconds"] for c in scored)
        for scorer in [*select, ORACLE]:
            if scorer == ORACLE:  # the best candidate by target accuracy: a ceiling, never a headline
                best = max(scored, key=lambda c: c["accuracy"])
            else:  # target-only scorers skip collapsed candidates (selection.choose)
                best = choose(scored, scorer)
            rows.append(
                {**common, "params": json.dumps({**method_params, **best["params"]}, sort_keys=True),
                 "selection": scorer if scorer == ORACLE else f"select:{scorer}",
                 "accuracy": round(best["accuracy"], 4),
                 "balanced_accuracy": round(best["balanced_accuracy"], 4), "seconds": round(seconds, 4)}
            )  # fmt: skip
    return rows, candidate_rows


def run_suite(
    suite: str,
    out: str | Path,
    *,
    methods: list[str] | None = None,
    seeds: list[int] | tuple[int, ...] = (0,),
    tasks: list[tuple[str, str]] | None = None,
    estimator: str = registry.DEFAULT_ESTIMATOR,
    estimator_params: dict | None = None,
    preprocess: tuple[str, ...] | None = None,
    params: dict[str, dict] | None = None,
    data_root: str | None = None,
    columns: dict | None = None,
    target_labels: int = 0,
    select: list[str] | tuple[str, ...] = (),
    jobs: int | None = None,
    quiet: bool = False,
    command: str | None = None,
) -> list[dict]:
    """Run every task x method x seed of a suite; write ``results.csv`` and ``summary.md`` in ``out``.

    ``select`` names label-free scorers (:mod:`transferkit.selection`): every method with a
    ``search_space`` is then also run over its grid, and the setting each scorer picks is reported
    (``selection = select:<scorer>``) beside the best setting by target accuracy (``oracle``).
    ``jobs`` runs that many tasks at once in separate processes (default: one per CPU core).
    ``columns``: how to read a table of your own (see :class:`transferkit.experiment.RunSpec`).
    """
    from joblib import Parallel, delayed

    from transferkit.datasets import dataset_info, list_datasets, load_dataset
    from transferkit.selection import list_scorers

    builtin = suite in list_datasets()
    info = dataset_info(suite) if builtin else None  # else the path of your own table or folder
    if methods is not None and not list(methods):
        raise TransferkitError("methods is empty: name at least one (None runs every registered method).")
    methods = list(methods) if methods is not None else default_methods()
    seeds = list(seeds)
    if not seeds:
        raise TransferkitError("seeds is empty: name at least one seed.")
    bad = [s for s in seeds if not (is_whole(s) and 0 <= s < 2**32)]
    if bad:
        raise TransferkitError(f"a seed is a whole number from 0 to 2**32 - 1, got {bad[0]!r}.")
    if jobs is not None and not (is_whole(jobs) and jobs >= 1):
        raise TransferkitError(f"jobs is a whole number >= 1 (tasks run at once), got {jobs!r}.")
    if tasks is not None and not list(tasks):
        raise TransferkitError("tasks is empty: name at least one (None runs every pair of domains).")
    named = (("method", methods), ("seed", seeds), ("task", list(tasks or [])), ("scorer", list(select)))
    for what, values in named:
        values = [tuple(v) if what == "task" else v for v in values]
        twice = repeated(values)
        if twice:  # each run once: a repeated one gave duplicate rows, counted twice in the averages
            shown = "->".join(twice[0]) if what == "task" else twice[0]
            raise TransferkitError(f"{what} {shown} is named twice; name each once.")
    for m in methods:
        registry.entry("method", m)  # unknown names fail before any work
    for name in select:
        if name not in list_scorers():
            from transferkit.errors import unknown_name

            raise unknown_name("scorer", name, list_scorers())
    dataset = load_dataset(suite, data_root, **RunSpec(columns=dict(columns or {})).columns)
    if not tasks and info is not None:
        tasks = info.tasks
    elif not tasks:  # your own data: every ordered pair of a labelled source and a target to score
        labels = {d: np.asarray(dataset.labels(d)) for d in dataset.domains}
        sources = [d for d, y in labels.items() if (y >= 0).all()]  # every source row needs a label
        scored = [d for d, y in labels.items() if (y >= 0).any()]
        tasks = [(s, t) for s in sources for t in scored if s != t]
        if not tasks:
            raise TransferkitError(
                f"{suite} has domains {list(dataset.domains)}: a bench needs two domains, a fully labelled "
                "source and a target with labels to score; name the tasks with --tasks 'S->T'."
            )
    tasks = list(tasks)
    for source, target in tasks:
        dataset.check_domains([source, target])
    preprocess = tuple(preprocess) if preprocess is not None else default_preprocess(dataset, suite)
    command = command if command is not None else " ".join(["transferkit", *sys.argv[1:]])
    out = Path(out)
    jobs_list = [(t, m, s) for t in tasks for m in methods for s in seeds]
    n_jobs = max(1, min(jobs or os.cpu_count() or 1, len(jobs_list)))
    rows: list[dict] = []
    start = time.perf_counter()
    base = RunSpec(
        dataset=suite, estimator=estimator, estimator_params=dict(estimator_params or {}),
        preprocess=preprocess, data_root=data_root, columns=dict(columns or {}),
    )  # fmt: skip
    # joblib's loky workers restart when their memory grows by 300 MB after their first job (a leak
    # guard). torch's import alone does that, so a worker whose first job was shallow restarted at its
    # first deep one and paid its imports again (12 restarts and a "worker stopped" warning in the
    # 21-method office-caltech10 suite). Importing torch at the start of every job puts it in the
    # reference instead.
    warm = n_jobs > 1 and any(registry.entry("method", m).role == "deep" for m in methods)
    work = (
        delayed(_job_rows)(
            job, dataset, base, preprocess, params, target_labels, tuple(select), command, warm
        )
        for job in jobs_list
    )
    results = Parallel(n_jobs=n_jobs, return_as="generator")(work) if n_jobs > 1 else (
        _job_rows(job, dataset, base, preprocess, params, target_labels, tuple(select), command)
        for job in jobs_list
    )  # fmt: skip
    bar = progress_bar(total=len(jobs_list), desc=suite, disable=quiet)
    candidates: list[dict] = []
    failures: list[str] = []
    for job_rows, job_candidates, failure in results:
        bar.update(1)
        if failure:
            failures.append(failure)
            print(f"transferkit: bench: {failure}", file=sys.stderr)
            continue
        rows.extend(job_rows)
        candidates.extend(job_candidates)
        first = job_rows[0]
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{first['method']} {first['task']} {first['accuracy']:.1f}%")
        _write(out, rows, suite, command, time.perf_counter() - start, candidates, failures)
    bar.close()
    if not rows:
        raise TransferkitError(f"every run of the suite failed; the first: {failures[0]}")
    if failures:
        _write(out, rows, suite, command, time.perf_counter() - start, candidates, failures)
        print(f"transferkit: bench: {len(failures)} of {len(jobs_list)} runs failed (listed in summary.md); "
              "the others' results stand", file=sys.stderr)  # fmt: skip
    return rows


def _write(
    out: Path, rows: list[dict], suite: str, command: str, seconds: float, candidates: list[dict] = (),
    failures: list[str] = (),
) -> None:  # fmt: skip
    atomic_write_text(out / "results.csv", _csv(rows))
    text = summarize(rows, suite=suite, command=command, total_seconds=seconds)
    if failures:
        text += "\n## Runs that failed\n\n" + "".join(f"- {f}\n" for f in failures)
    if candidates:
        columns = list(dict.fromkeys(k for c in candidates for k in c))  # a scorer some methods lack
        atomic_write_text(out / "selection.csv", _csv(candidates, columns))
        text += "\n" + summarize_selection(candidates)
    atomic_write_text(out / "summary.md", text)
