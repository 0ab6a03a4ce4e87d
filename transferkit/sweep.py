"""Sweeps: methods x tasks x seeds x hyperparameters, each trial its own process on Ray.

A sweep is a YAML file::

    dataset: office-caltech10
    methods:                      # method -> hyperparameter grid ({} : the method's defaults)
      coral: {reg: [0.1, 1.0, 10.0]}
      tca: {mu: [0.1, 1.0], n_components: [10, 30]}
      source-only: {}
    tasks: all                    # or a list such as ["caltech->amazon", "amazon->webcam"]
    seeds: [0, 1]                 # at least one
    samples: 0                    # > 0: that many random settings per method instead of the full grid
    select: [entropy, snd, mixval]  # label-free scorers that pick each method's setting (or one: entropy)
    estimator: linear-svm-cv      # optional, as for `transferkit run`
    preprocess: [impute, standardize]  # optional, as --preprocess (default: the data set's; [] for none)
    target_labels: 0              # optional
    columns: {label_column: outcome, categorical: [zip]}  # optional, for a table of your own

``dataset`` may also be your own data, as for ``transferkit run --dataset PATH``: a folder of images or a
``.csv``/``.tsv``/``.parquet`` table (a relative path is read from the sweep file's folder, else from the
working folder), with its ``tasks`` listed; ``columns`` then says how to read a table's columns, with
the keys of ``transferkit run``'s options (``domain_column``, ``label_column``, ``feature_columns``,
``text_column``, ``categorical``). Every key is checked, and every method setting and the
estimator built, before any trial runs.

``transferkit sweep SPEC.yaml --out DIR`` expands it into trials (one per task x method x seed x
setting), runs each as a Ray task in its own worker process (a local Ray instance with
``--workers N`` CPUs by default; ``--address`` attaches to a running Ray cluster, ``--workers 1``
runs serially without Ray) and writes, atomically, after every finished trial:

* ``trials/<id>.json``: one file per finished trial (a re-run skips these: sweeps resume);
* ``trials.csv``: every trial's setting, its label-free scores (with ``select``) and its target accuracy;
* ``results.csv``: the foundation's columns; for a method with a grid, one row per scorer with the
  accuracy of the setting that scorer picked (``selection = select:<scorer>``) and the best setting's
  (``oracle``, which reads target labels: a ceiling, never a headline); without a grid, the
  ``fixed-defaults`` row;
* ``summary.md``: per-method averages and which scorer comes closest to the oracle.

A grid without ``select`` (or with ``target_labels`` above 0, where the label-free scorers do not
apply) chooses nothing: every setting is reported on its own row, ``selection = grid:key=value,...``
(the same setting for every task and seed, no target label used to pick it), so no average in
``summary.md`` mixes settings. Name scorers in ``select`` to have a setting chosen per task.

A finished trial is reused only if it was run under the very settings that make its result: its
method, task, seed and setting, the data (a built-in id; for your own data its path and its content:
a table's sha256, an image folder's file names, sizes and modification times), the estimator and its
settings, the preprocessing, ``target_labels`` and how it was scored (with ``select`` on 80% of the
source, or without on all of it). Each trial file records them; one written under other settings
(another ``dataset``, ``estimator`` or ``target_labels``, an edited table, or a file from an older
transferkit that did not record them) is run again and overwritten, and the sweep says how many. A
trial scored before a scorer was added to ``select`` is run again too (a score needs the fitted model);
a scorer removed from ``select`` costs no re-run, its scores are left out of the tables. The data
root of a built-in data set is not part of it (its files are checked against their sha256).

A trial with a grid is scored as ``run --select`` scores a candidate: fitted on 80% of the source
and the unlabelled target, scored on the held-out source and the target; only then are the target
labels read for its accuracy. ``--mlflow [URI]`` logs every trial (parameters, scores, accuracy,
the trial file) to MLflow: by default a local store in ``DIR/mlflow.db`` (SQLite) with the
artifacts in ``DIR/mlartifacts``; ``mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db`` shows it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from transferkit import registry
from transferkit.errors import TransferkitError
from transferkit.selection import choose

__all__ = ["SweepSpec", "expand", "load_spec", "run_sweep"]


@dataclass
class SweepSpec:
    dataset: str
    methods: dict[str, dict[str, list]]
    tasks: list[tuple[str, str]] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    samples: int = 0
    select: list[str] = field(default_factory=list)
    estimator: str = registry.DEFAULT_ESTIMATOR
    target_labels: int = 0
    data_root: str | None = None
    preprocess: list[str] | None = None  # None: the data set's standard steps
    columns: dict[str, Any] = field(default_factory=dict)  # how to read a table of your own


def _fail(path, key: str, expected: str, got) -> TransferkitError:
    return TransferkitError(f"{path}: '{key}' must be {expected}, got {got!r}.")


def _int(path, key: str, value, high: int | None = None, what: str = "a whole number") -> int:
    """A whole number in ``[0, high)`` (YAML's true/false are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (high and value >= high):
        raise _fail(path, key, f"{what} {f'from 0 to {high - 1}' if high else '0 or more'}", value)
    return value


def _resolve_dataset(value: str, folder: Path) -> str:
    """A built-in id as it is; a relative path to your own data is read from the sweep file's folder
    (then from the working folder), and kept absolute so every worker finds it."""
    from transferkit.datasets import list_datasets

    if value in list_datasets():
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and (folder / path).exists():
        path = folder / path
    return str(path.resolve()) if path.exists() else value


def load_spec(path) -> SweepSpec:
    """Read and check a sweep file; every name and setting is validated before anything runs."""
    import yaml

    from transferkit.selection import list_scorers

    path = Path(path)
    if not path.is_file():
        raise TransferkitError(f"no sweep file at {path}.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise TransferkitError(f"{path} is not UTF-8 text; save the sweep file as UTF-8 YAML.") from None
    except yaml.YAMLError as exc:
        raise TransferkitError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise TransferkitError(f"{path} must hold a mapping with at least 'dataset' and 'methods'.")
    known = {"dataset", "methods", "tasks", "seeds", "samples", "select", "estimator", "target_labels",
             "data_root", "preprocess", "columns"}  # fmt: skip
    unknown = set(raw) - known
    if unknown:
        raise TransferkitError(f"unknown keys in {path}: {sorted(unknown, key=str)}; valid: {sorted(known)}.")
    if "dataset" not in raw or "methods" not in raw:
        raise TransferkitError(f"{path} needs 'dataset' and 'methods'.")
    if not isinstance(raw["dataset"], str) or not raw["dataset"].strip():
        raise _fail(path, "dataset", "a data set id or a path to your own data", raw["dataset"])
    data_root = raw.get("data_root")
    if data_root is not None and not isinstance(data_root, str):
        raise _fail(path, "data_root", "a folder", data_root)
    methods = raw["methods"]
    if isinstance(methods, list):
        methods = {m: {} for m in methods}
    if not isinstance(methods, dict) or not methods:
        raise TransferkitError("'methods' must map method names to grids (or list method names).")
    for name, grid in methods.items():
        if not isinstance(name, str):
            raise _fail(path, "methods", "keyed by method names", name)
        entry = registry.entry("method", name)
        grid = grid or {}
        if not isinstance(grid, dict):
            raise TransferkitError(f"the grid of '{name}' must map parameters to lists of values.")
        for key, values in grid.items():
            values = values if isinstance(values, list) else [values]
            if not values:
                raise TransferkitError(f"the grid of '{name}' gives no value for '{key}'.")
            for v in values:  # parsed as a --set value would be
                registry.resolve_params(entry, {key: str(v)})
                if entry.role != "deep":  # and built, so an out-of-range value fails now
                    registry.build("method", name, {key: str(v)})  # scikit-learn's range checks too
        methods[name] = {k: (v if isinstance(v, list) else [v]) for k, v in grid.items()}
    tasks = raw.get("tasks", "all")
    parsed = None
    if tasks != "all":
        if tasks is None or tasks == []:
            raise _fail(path, "tasks", 'a list of SOURCE->TARGET tasks, or "all" (the default)', tasks)
        parsed = []
        for t in tasks if isinstance(tasks, list) else [tasks]:
            source, sep, target = t.partition("->") if isinstance(t, str) else ("", "", "")
            if not sep or not source.strip() or not target.strip():
                raise TransferkitError(f"a task is written SOURCE->TARGET, got '{t}'.")
            if (source.strip(), target.strip()) in parsed:
                raise TransferkitError(f"{path}: the task '{t}' is listed twice.")
            parsed.append((source.strip(), target.strip()))
    select = raw.get("select") or []
    select = [select] if isinstance(select, str) else select  # one scorer may be named on its own
    if not isinstance(select, list) or not all(isinstance(s, str) for s in select):
        raise _fail(path, "select", "a scorer name or a list of them", raw.get("select"))
    for s in select:
        if s not in list_scorers():
            from transferkit.errors import unknown_name

            raise unknown_name("scorer", s, list_scorers())
    seeds = raw.get("seeds", [0])
    seeds = seeds if isinstance(seeds, list) else [seeds]
    if not seeds:
        raise _fail(path, "seeds", "a list of at least one seed (a whole number), such as [0, 1]", [])
    seeds = [_int(path, "seeds", s, 2**32, "a list of whole numbers") for s in seeds]
    if len(set(seeds)) < len(seeds):
        raise TransferkitError(f"{path}: 'seeds' lists a seed twice: {seeds}.")
    estimator = raw.get("estimator", registry.DEFAULT_ESTIMATOR)
    if not isinstance(estimator, str):
        raise _fail(path, "estimator", "an estimator such as 'logreg' or 'logreg:C=0.5'", estimator)
    registry.build("estimator", *registry.parse_spec(estimator))
    preprocess = raw.get("preprocess")
    if preprocess is not None:
        preprocess = [preprocess] if isinstance(preprocess, str) else preprocess
        if not isinstance(preprocess, list) or not all(isinstance(p, str) for p in preprocess):
            raise _fail(path, "preprocess", "a list of steps such as [impute, standardize] ([] for none)",
                        raw.get("preprocess"))  # fmt: skip
        preprocess = [] if preprocess == ["none"] else preprocess
        for step in preprocess:  # each built, so a misspelt step or setting fails now
            registry.build("preprocessing", *registry.parse_spec(step))
    columns = raw.get("columns") or {}
    from transferkit.datasets.table import TABLE_READING

    if not isinstance(columns, dict) or not all(
        k in TABLE_READING
        and (isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(c, str) for c in v)))
        for k, v in columns.items()
    ):
        raise _fail(path, "columns", f"a mapping of {', '.join(TABLE_READING)} to column names", columns)
    return SweepSpec(
        dataset=_resolve_dataset(raw["dataset"].strip(), path.parent), methods=methods, tasks=parsed,
        seeds=seeds, samples=_int(path, "samples", raw.get("samples", 0)), select=select,
        estimator=estimator, target_labels=_int(path, "target_labels", raw.get("target_labels", 0)),
        data_root=data_root, preprocess=preprocess, columns=columns,
    )  # fmt: skip


def _settings(grid: dict[str, list], samples: int, seed: int) -> list[dict[str, Any]]:
    if not grid:
        return [{}]
    keys = sorted(grid)
    full = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    if samples and samples < len(full):
        import random

        rng = random.Random(seed)
        return rng.sample(full, samples)
    return full


def trial_id(trial: dict) -> str:
    """The trial's slot (its file name): method, task, seed and setting. What else its result depends on
    is checked through :func:`settings_id` before a finished trial is reused."""
    key = json.dumps({k: trial[k] for k in ("method", "task", "seed", "params")}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def settings_id(trial: dict) -> str:
    """A hash of everything that makes the trial's result: its slot and its run settings."""
    key = {**{k: trial[k] for k in ("method", "task", "seed", "params")}, "settings": trial["settings"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


VAL_FRACTION = 0.2
"""The share of the source held out to score a trial of a grid with ``select``."""


def data_fingerprint(dataset: str) -> str | None:
    """None for a built-in data set (its files are verified by sha256 when loaded); for your own
    table the sha256 of its bytes; for an image folder a sha256 of every file's relative path, size
    and modification time (reading every image at each start would be slow)."""
    from transferkit.datasets import list_datasets

    if dataset in list_datasets():
        return None
    path = Path(dataset).expanduser()
    digest = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            st = f.stat()
            digest.update(f"{f.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return f"files:{digest.hexdigest()}"
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def run_settings(spec: SweepSpec, dataset=None) -> dict:
    """Every setting shared by the sweep's trials that changes a result (see the module docstring);
    ``dataset``: the loaded data set (loaded here if not given), for its standard preprocessing."""
    from transferkit.datasets import load_dataset
    from transferkit.experiment import default_preprocess

    if dataset is None:
        dataset = load_dataset(spec.dataset, spec.data_root, **spec.columns)
    est_name, est_settings = registry.parse_spec(spec.estimator)
    est_params = registry.resolve_params(registry.entry("estimator", est_name), est_settings)
    settings = {"dataset": spec.dataset, "data": data_fingerprint(spec.dataset),
                "estimator": {"name": est_name, "params": est_params},
                "preprocess": list(default_preprocess(dataset, spec.dataset) if spec.preprocess is None
                                   else spec.preprocess),
                "target_labels": spec.target_labels,
                **({"columns": spec.columns} if spec.columns else {})}  # fmt: skip
    return json.loads(json.dumps(settings, sort_keys=True, default=str))  # as a trial file holds them


def _label(params: dict) -> str:
    """``grid:key=value,...``: one setting of a grid reported on its own (no choice made)."""
    return "grid:" + ",".join(f"{k}={params[k]}" for k in sorted(params))


def expand(spec: SweepSpec, tasks: list[tuple[str, str]], settings: dict | None = None) -> list[dict]:
    """Every trial of the sweep (a stable order: task, method, seed, setting); ``settings``: the
    sweep's :func:`run_settings` (computed here if not given)."""
    settings = run_settings(spec) if settings is None else settings
    trials = []
    for (source, target), method, seed in itertools.product(tasks, spec.methods, spec.seeds):
        grid = spec.methods[method]
        scored = bool(grid) and bool(spec.select) and not spec.target_labels
        protocol = f"select:val_fraction={VAL_FRACTION}" if scored else "run"
        for params in _settings(grid, spec.samples, seed):
            t = {"dataset": spec.dataset, "task": f"{source}->{target}", "source": source, "target": target,
                 "method": method, "seed": seed, "params": params, "grid": bool(grid),
                 "select": spec.select, "estimator": spec.estimator, "target_labels": spec.target_labels,
                 "data_root": spec.data_root, "columns": spec.columns,
                 "settings": {**settings, "protocol": protocol}}  # fmt: skip
            t["id"] = trial_id(t)
            t["settings_id"] = settings_id(t)
            trials.append(t)
    return trials


_DATASETS: dict = {}


def run_trial(trial: dict) -> dict:
    """Run one trial in this process and return its record (the dataset is loaded once per process)."""
    import numpy as np

    from transferkit.datasets import load_dataset
    from transferkit.experiment import RunSpec, default_preprocess, run, select_runs

    settings = trial.get("settings") or {}
    # the data's fingerprint too: a table edited between two sweeps in one process is read again
    columns = trial.get("columns") or {}
    key = (trial["dataset"], trial["data_root"], settings.get("data"), json.dumps(columns, sort_keys=True))
    if key not in _DATASETS:
        _DATASETS.clear()  # one data set at a time per process
        _DATASETS[key] = load_dataset(trial["dataset"], trial["data_root"], **columns)
    dataset = _DATASETS[key]
    preprocess = tuple(settings.get("preprocess", default_preprocess(dataset, trial["dataset"])))
    est_name, est_settings = registry.parse_spec(trial["estimator"])
    spec = RunSpec(
        dataset=trial["dataset"], sources=(trial["source"],), targets=(trial["target"],),
        method=trial["method"], params={k: str(v) for k, v in trial["params"].items()},
        estimator=est_name, estimator_params=est_settings, preprocess=preprocess, seed=trial["seed"],
        data_root=trial["data_root"], target_labels=trial["target_labels"], columns=dict(columns),
    )  # fmt: skip
    start = time.perf_counter()
    if settings.get("protocol", "run") != "run":
        (scored,) = select_runs(spec, dataset, preprocess, [{}], list(trial["select"]), VAL_FRACTION)
        out = {"scores": scored["scores"], "collapsed": scored["collapsed"], "accuracy": scored["accuracy"],
               "balanced_accuracy": scored["balanced_accuracy"], "selection": "sweep"}  # fmt: skip
    else:
        rec = run(spec, dataset=dataset, command="transferkit sweep")
        out = {"scores": {}, "collapsed": False, "accuracy": rec["accuracy"],
               "balanced_accuracy": rec["balanced_accuracy"], "selection": rec["selection"]}  # fmt: skip
    out["accuracy"] = float(np.round(out["accuracy"], 4))
    out["balanced_accuracy"] = float(np.round(out["balanced_accuracy"], 4))
    seconds = round(time.perf_counter() - start, 4)
    return {**trial, **out, "preprocess": " ".join(preprocess), "seconds": seconds, "pid": os.getpid()}


_RECORD_KEYS = {"id", "task", "source", "target", "method", "seed", "params", "scores", "accuracy", "seconds",
                "estimator", "preprocess", "target_labels", "selection"}  # fmt: skip


def _read_trial(path: Path, trial: dict) -> dict:
    """A finished trial's record, or a clear error if the file is not one (a resumed sweep reads it)."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        rec, why = None, str(exc)
    else:
        missing = sorted(_RECORD_KEYS - set(rec)) if isinstance(rec, dict) else None
        why = f"it lacks {missing}" if missing else "it holds no trial record"
        if isinstance(rec, dict) and not missing and rec["id"] == trial["id"]:
            if isinstance(rec["accuracy"], (int, float)) and isinstance(rec["scores"], dict):
                return rec
            why = "its accuracy or scores are not numbers"
        elif isinstance(rec, dict) and not missing:
            why = f"it records trial {rec['id']!r}, not {trial['id']!r}"
    raise TransferkitError(
        f"{path} is not a finished trial's record ({why}); delete it and run the sweep again to re-run "
        f"that trial ({trial['method']} {trial['task']} seed {trial['seed']} {trial['params']})."
    )


def _ray_runner(workers: int, address: str | None):
    try:
        import ray
    except ImportError:
        raise TransferkitError(
            "parallel sweeps run on Ray, which is not installed: pip install 'transferkit[sweep]' (or run "
            "serially with --workers 1)."
        ) from None
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                        "TOKENIZERS_PARALLELISM": "false"}}  # fmt: skip
    if not ray.is_initialized():
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, runtime_env=env, log_to_driver=False,
                     configure_logging=False)  # fmt: skip
    remote = ray.remote(num_cpus=1)(run_trial)

    def submit(trials):
        pending = {remote.remote(t): t for t in trials}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                yield ray.get(ref)

    return submit


def run_sweep(
    spec: SweepSpec, out, *, workers: int = 2, address: str | None = None, mlflow_uri: str | None = None,
    quiet: bool = False, command: str = "transferkit sweep",
) -> dict:  # fmt: skip
    """Run (or resume) the sweep; return ``{"trials": n, "ran": n_run_now, "changed": n, "rescored": n,
    "seconds": wall time}`` (``changed``: finished trials run again as their settings changed;
    ``rescored``: as they lacked a scorer now in ``select``; both counted in ``ran``)."""
    from transferkit.datasets import dataset_info, list_datasets, load_dataset
    from transferkit.io import atomic_write_json
    from transferkit.progress import progress_bar

    out = Path(out)
    if spec.tasks is not None and not spec.tasks:
        raise TransferkitError(
            "the sweep names no task; list SOURCE->TARGET tasks, or leave 'tasks' out for all."
        )
    if not spec.seeds:
        raise TransferkitError("the sweep names no seed; give 'seeds' at least one, such as [0].")
    if spec.dataset not in list_datasets():  # your own data, loaded as `transferkit run --dataset PATH` does
        if not Path(spec.dataset).expanduser().exists():
            load_dataset(spec.dataset)  # an unknown name or a missing path: its error, with the closest ids
        # an absolute path, the same for every worker
        spec = replace(spec, dataset=str(Path(spec.dataset).expanduser().resolve()))
    dataset = load_dataset(spec.dataset, spec.data_root, **spec.columns)  # fails early if the data is missing
    if spec.tasks:
        tasks = spec.tasks
    elif spec.dataset in list_datasets():
        tasks = dataset_info(spec.dataset).tasks
    else:
        raise TransferkitError(
            f'name the tasks of a sweep over your own data, such as tasks: ["{dataset.domains[0]}->'
            f'{dataset.domains[-1]}"] (its domains: {", ".join(dataset.domains)}).'
        )
    for s, t in tasks:
        dataset.check_domains([s, t])
    trials = expand(spec, tasks, run_settings(spec, dataset))
    if spec.select and spec.target_labels and any(spec.methods.values()):
        print(f"transferkit: note: 'select' leaves the grids at every setting: the label-free scorers are "
              f"for unsupervised runs, and target_labels is {spec.target_labels}; each setting is "
              f"reported on its own (selection grid:...).", file=sys.stderr)  # fmt: skip
    done, changed, lacking = {}, [], []
    for t in trials:
        path = out / "trials" / f"{t['id']}.json"
        if not path.exists():
            continue
        rec = _read_trial(path, t)
        if rec.get("settings_id") != t["settings_id"]:
            changed.append(_what_changed(rec, t))
        elif t["settings"]["protocol"] != "run" and (
            missing := [s for s in t["select"] if s not in rec["scores"]]
        ):
            lacking.append(missing)
        else:
            done[t["id"]] = rec
    _say_reruns(out / "trials", changed, lacking)
    todo = [t for t in trials if t["id"] not in done]
    logger = _mlflow_logger(mlflow_uri, out) if mlflow_uri is not None else None
    start = time.perf_counter()
    if workers <= 1 and not address:
        results = (run_trial(t) for t in todo)
    else:
        results = _ray_runner(workers, address)(todo)
    bar = progress_bar(total=len(trials), initial=len(done), desc=f"sweep {spec.dataset}", disable=quiet)
    for rec in results:
        atomic_write_json(out / "trials" / f"{rec['id']}.json", rec)
        done[rec["id"]] = rec
        if logger:
            logger(rec, out / "trials" / f"{rec['id']}.json")
        bar.update(1)
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{rec['method']} {rec['task']} {rec['accuracy']:.1f}%")
        write_tables(spec, [done[t["id"]] for t in trials if t["id"] in done], out, command,
                     time.perf_counter() - start)  # fmt: skip
    bar.close()
    write_tables(spec, [done[t["id"]] for t in trials], out, command, time.perf_counter() - start)
    return {"trials": len(trials), "ran": len(todo), "changed": len(changed), "rescored": len(lacking),
            "seconds": time.perf_counter() - start}  # fmt: skip


_WHAT = {"dataset": "dataset", "data": "the data's content", "estimator": "estimator",
         "preprocess": "preprocessing", "target_labels": "target_labels",
         "protocol": "scoring (select or none)"}  # fmt: skip


def _what_changed(rec: dict, trial: dict) -> list[str]:
    """What differs between a trial file's settings and the trial's now."""
    old = rec.get("settings")
    if not isinstance(old, dict) or "settings_id" not in rec:
        return ["not recorded: a trial file from an older transferkit"]
    return [_WHAT.get(k, k) for k in trial["settings"] if old.get(k) != trial["settings"][k]] or ["settings"]


def _say_reruns(folder: Path, changed: list[list[str]], lacking: list[list[str]]) -> None:
    """Tell how many finished trials are run again, and why (never silently)."""
    for n, why, text in (
        (len(changed), [w for ws in changed for w in ws], "run under other settings ({})"),
        (len(lacking), [s for ss in lacking for s in ss], "scored without {}, now in 'select'"),
    ):
        if n:
            what = text.format(", ".join(dict.fromkeys(why)))
            print(f"transferkit: note: {n} finished trial{'s' if n > 1 else ''} in {folder} "
                  f"{'were' if n > 1 else 'was'} {what}; run again.", file=sys.stderr)  # fmt: skip


def write_tables(spec: SweepSpec, records: list[dict], out: Path, command: str, seconds: float) -> None:
    from transferkit.benchmark import _csv, summarize, summarize_selection
    from transferkit.experiment import FIXED, ORACLE
    from transferkit.io import atomic_write_text

    trial_rows, rows = [], []
    groups = defaultdict(list)
    for r in records:
        groups[(r["task"], r["method"], r["seed"])].append(r)
        trial_rows.append({"task": r["task"], "method": r["method"], "seed": r["seed"],
                           "params": json.dumps(r["params"], sort_keys=True),
                           **{f"score:{k}": round(v, 6) for k, v in r["scores"].items() if k in spec.select},
                           "collapsed": int(r.get("collapsed", False)), "accuracy": r["accuracy"],
                           "balanced_accuracy": r.get("balanced_accuracy", ""),
                           "seconds": r["seconds"]})  # fmt: skip
    for (task, method, seed), group in groups.items():
        first = group[0]
        common = {"suite": spec.dataset, "task": task, "source": first["source"], "target": first["target"],
                  "method": method, "estimator": first["estimator"], "preprocess": first["preprocess"],
                  "seed": seed, "target_labels": first["target_labels"]}  # fmt: skip
        if not first["scores"]:  # nothing chosen: a grid's settings each on their own row (never averaged)
            grid = bool(spec.methods.get(method))
            for r in group:
                label = r["selection"]
                if grid:
                    label = _label(r["params"]) if label == FIXED else f"{label} {_label(r['params'])}"
                rows.append({**common, "params": json.dumps(r["params"], sort_keys=True),
                             "selection": label, "accuracy": r["accuracy"],
                             "balanced_accuracy": r.get("balanced_accuracy", ""),
                             "seconds": r["seconds"]})  # fmt: skip
            continue
        seconds_group = round(sum(r["seconds"] for r in group), 4)
        for scorer in [*spec.select, ORACLE]:
            if scorer == ORACLE:
                best = max(group, key=lambda r: r["accuracy"])
            else:  # target-only scorers skip collapsed trials (selection.choose)
                best = choose(group, scorer)
            rows.append({**common, "params": json.dumps(best["params"], sort_keys=True),
                         "selection": scorer if scorer == ORACLE else f"select:{scorer}",
                         "accuracy": best["accuracy"], "balanced_accuracy": best.get("balanced_accuracy", ""),
                         "seconds": seconds_group})  # fmt: skip
    if not rows:
        return
    atomic_write_text(out / "results.csv", _csv(rows))
    text = summarize(rows, suite=spec.dataset, command=command, total_seconds=seconds)
    if any(r["selection"].startswith("grid:") or " grid:" in r["selection"] for r in rows):
        text += ("\n`grid:key=value,...`: one setting of the method's grid, the same for every task and "
                 "seed, reported on its own: no scorer chose among them (`select` names none, or target "
                 "labels were revealed).\n")  # fmt: skip
    # every trial of this sweep, scored or not (a trials.csv left by an earlier sweep into this folder
    # must not stand beside these results)
    columns = list(dict.fromkeys(k for t in trial_rows for k in t))
    atomic_write_text(out / "trials.csv", _csv([{c: t.get(c, "") for c in columns} for t in trial_rows],
                                               columns))  # fmt: skip
    scored = [t for t in trial_rows if any(k.startswith("score:") for k in t)]
    if scored:
        text += "\n" + summarize_selection(scored)
    atomic_write_text(out / "summary.md", text)


def _mlflow_logger(uri: str, out: Path):
    try:
        import mlflow
    except ImportError:
        raise TransferkitError(
            "--mlflow needs MLflow: pip install 'transferkit[sweep]' (or pip install mlflow)."
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    # a local store by default: one SQLite file and an artifact folder beside the results (MLflow 3 no
    # longer accepts its old plain-folder store)
    mlflow.set_tracking_uri(uri or f"sqlite:///{(out / 'mlflow.db').resolve()}")
    name = "transferkit-sweep"
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=(out / "mlartifacts").resolve().as_uri())
    mlflow.set_experiment(name)

    def log(rec: dict, path: Path) -> None:
        with mlflow.start_run(run_name=f"{rec['method']} {rec['task']} seed {rec['seed']}"):
            mlflow.log_params({"method": rec["method"], "task": rec["task"], "seed": rec["seed"],
                               **{f"param.{k}": v for k, v in rec["params"].items()}})  # fmt: skip
            mlflow.log_metrics({"accuracy": rec["accuracy"], "seconds": rec["seconds"],
                                **{f"score.{k}": v for k, v in rec["scores"].items()}})  # fmt: skip
            mlflow.log_artifact(str(path))

    return log
