"""The ``transferkit`` command: a thin shell over :mod:`transferkit.experiment` and
:mod:`transferkit.benchmark`.

Any mistake the user can make (an unknown name, a bad setting, missing data) ends with one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

from transferkit import __version__, registry
from transferkit.errors import TransferkitError, repeated, unknown_name

DEFAULT_RUN = {"dataset": "office-caltech10", "source": ["caltech"], "target": ["amazon"]}
DEFAULT_METHODS = ["source-only", "coral"]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_datasets(args) -> int:
    from transferkit.datasets import dataset_info, is_present, list_datasets
    from transferkit.datasets.files import data_root

    rows = []
    for d in list_datasets():
        info = dataset_info(d)
        domains = ", ".join(f"{k} ({v})" for k, v in info.counts.items())
        present = (
            "embedded" if d == "office-caltech10" else ("yes" if is_present(d, args.data_root) else "no")
        )
        shape = "text" if info.modality == "text" else "x".join(map(str, info.shape))
        rows.append([d, domains, info.n_classes, shape, present])
    print(_table(["id", "domains (samples)", "classes", "sample", "present"], rows))
    print(f"\ndata root: {data_root(args.data_root)}   (get a missing data set: transferkit download ID)")
    print(
        "your own data: --dataset PATH, a folder root/<domain>/<class>/<image> or a .csv/.tsv/.parquet table"
    )
    return 0


def _describe(kind: str, name: str) -> str:
    e = registry.entry(kind, name)
    lines = [f"{name}  ({e.target.replace(':', '.')})", f"  {e.summary}"]
    params = e.parameters()
    if params:
        how = {"method": "--set key=value", "preprocessing": f"--preprocess {name}:key=value,...",
               "estimator": f"--estimator {name}:key=value,..."}[kind]  # fmt: skip
        lines.append(f"  settings ({how}):")
        for p, (hint, default) in params.items():
            lines.append(f"    {p} = {default!r}" + (f"   [{_shown(hint)}]" if hint else ""))
    return "\n".join(lines)


def _shown(hint) -> str:
    """A type hint as a user reads it: a Literal's choices, a Union's members, else the type's name."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if hint is type(None):
        return "none"
    if origin is typing.Literal:
        return "one of " + ", ".join(str(c) for c in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_shown(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def cmd_methods(args) -> int:
    if args.markdown:
        if args.name or args.pattern:
            raise TransferkitError("--markdown prints the whole reference; leave out NAME and --pattern.")
        from transferkit.docs import methods_reference

        sys.stdout.write(methods_reference())
        return 0
    if args.name:
        kind = next((k for k, t in registry._TABLES.items() if args.name in t), None)
        if kind is None:
            every = [n for t in registry._TABLES.values() for n in t]
            raise unknown_name("method, preprocessing step or estimator", args.name, every)
        print(_describe(kind, args.name))
        return 0
    names = registry.list_methods(args.pattern)
    rows = []
    for n in names:
        e = registry.entry("method", n)
        role = "oracle (reads target labels)" if e.requires_target_labels else e.role
        rows.append([n, e.family, role, e.summary])
    print(_table(["method", "family", "role", "summary"], rows))
    pre = registry.list_methods(kind="preprocessing")
    est = registry.list_methods(kind="estimator")
    print(f"\npreprocessing (--preprocess NAME[:key=value,...]): {', '.join(pre)}")
    print(
        f"estimators (--estimator NAME[:key=value,...], default {registry.DEFAULT_ESTIMATOR}): "
        f"{', '.join(est)}"
    )
    print("details of one: transferkit methods NAME")
    return 0


def _spec_kwargs(args) -> dict:
    est_name, est_settings = registry.parse_spec(args.estimator)
    preprocess = None
    if args.preprocess is not None:
        preprocess = () if args.preprocess in (["none"], []) else tuple(args.preprocess)
    return {
        "estimator": est_name,
        "estimator_params": est_settings,
        "preprocess": preprocess,
        "data_root": args.data_root,
        "columns": _columns(args),
    }


def _columns(args) -> dict:
    """How to read a table of your own, from --domain-column, --label-column, --feature-columns,
    --text-column and --categorical (only those given)."""
    from transferkit.datasets.table import TABLE_READING

    return {k: getattr(args, k) for k in TABLE_READING if getattr(args, k, None)}


def _select_for_run(spec, dataset, preprocess, scorer: str, val_fraction: float = 0.2):
    """Pick the method's setting from its search space with a label-free scorer.

    Returns the spec with the chosen settings and the scored candidates (each with its target
    accuracy, read only after the choice, shown beside as the oracle).
    """
    from dataclasses import replace

    from transferkit.experiment import grid, select_runs
    from transferkit.selection import choose, reads_target

    entry = registry.entry("method", spec.method)
    space = {k: v for k, v in entry.search_space.items() if k not in spec.params}
    reason = (
        "it uses target labels, and the label-free scorers are for unsupervised runs"
        if entry.requires_target_labels or spec.target_labels
        else f"it never sees the target (domain generalization), and {scorer} scores target rows; "
        "--select source-val chooses without them"
        if not getattr(entry.load(), "uses_target", True) and reads_target(scorer)
        else "it has no search space"
        if not entry.search_space
        else "--set fixed every setting of its search space"
        if not space
        else ""
    )
    if reason:
        print(f"transferkit: note: --select {scorer} leaves {spec.method} at its settings: {reason}.",
              file=sys.stderr)  # fmt: skip
        return spec, []
    scored = select_runs(spec, dataset, preprocess, grid(space), [scorer], val_fraction)
    best = choose(scored, scorer)  # a target-only scorer skips collapsed candidates
    return replace(spec, params={**spec.params, **best["params"]}), scored


def _launch_torchrun(args) -> int:
    """Run this very command again under torchrun on ``args.nproc`` processes, without ``--nproc``."""
    import subprocess

    argv, skip = [], False
    for a in args.argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if not a.startswith("--nproc="):
            argv.append(a)
    if not any(a == "--command" or a.startswith("--command=") for a in argv):
        argv += ["--command", args.invocation]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           "-m", "transferkit.cli", *argv]  # fmt: skip
    return subprocess.run(cmd).returncode


def _preprocess_line(preprocess, methods: list[str], deep: list[str], dataset) -> str:
    """The preprocessing the run applied, said truthfully when deep methods are in it (they take the
    steps on feature vectors only: texts become sentence embeddings, images stay as they are)."""
    from transferkit.deep.runner import input_preprocess

    shallow = " ".join(preprocess) or "none"
    if not deep:
        return shallow
    own = input_preprocess(dataset, preprocess) or "none"
    if len(deep) == len(methods) or own == shallow:
        return own
    return f"{shallow} for shallow methods, {own} for deep ones"


def cmd_run(args) -> int:
    from transferkit.experiment import RunSpec, default_preprocess, load, run, save_record

    main_process = True
    if getattr(args, "nproc", 1) > 1:
        if any(registry.entry("method", m).role != "deep" for m in (args.method or DEFAULT_METHODS)):
            raise TransferkitError("--nproc trains deep methods data-parallel; every --method must be deep.")
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return _launch_torchrun(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a process of a data-parallel run
        from transferkit.nn import distributed

        distributed.init_from_env()
        main_process = distributed.is_main()

    dataset_id = args.dataset or DEFAULT_RUN["dataset"]
    if args.dataset is None and (args.source or args.target):
        raise TransferkitError("--source and --target need --dataset.")
    sources = args.source or (DEFAULT_RUN["source"] if args.dataset is None else None)
    targets = args.target or (DEFAULT_RUN["target"] if args.dataset is None else None)
    if not sources or not targets:
        from transferkit.datasets import TABLE_SUFFIXES, list_datasets

        path = Path(dataset_id).expanduser()
        if (
            dataset_id not in list_datasets()
            and not path.is_dir()
            and path.suffix.lower() not in TABLE_SUFFIXES
        ):
            from transferkit.datasets import load_dataset

            load_dataset(dataset_id)  # an unknown name: its error, with the closest ids, comes first
        raise TransferkitError("name the domains: --source S --target T (see `transferkit datasets`).")
    for flag, names in (("--source", sources), ("--target", targets)):
        twice = sorted(repeated(list(names)))
        if twice:
            raise TransferkitError(f"{flag} names {', '.join(twice)} more than once; name each domain once.")
    both = sorted(set(sources) & set(targets))
    if both:
        raise TransferkitError(
            f"{', '.join(both)} cannot be both source and target: the target's rows are the unlabelled "
            "ones a method adapts to; name different domains."
        )
    methods = args.method or DEFAULT_METHODS
    settings = registry.parse_settings(args.set)
    if settings and len(methods) > 1:
        raise TransferkitError("--set applies to one method; pass a single --method.")
    kwargs = _spec_kwargs(args)
    specs = [
        RunSpec(
            dataset_id,
            tuple(sources),
            tuple(targets),
            m,
            dict(settings),
            seed=args.seed,
            target_labels=args.target_labels,
            **kwargs,
        )  # fmt: skip
        for m in methods
    ]
    if args.select and args.select not in _scorer_names():
        from transferkit.errors import unknown_name

        raise unknown_name("scorer", args.select, _scorer_names())
    deep = [m for m in methods if registry.entry("method", m).role == "deep"]
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise TransferkitError(f"--out {args.out} is a file; name a folder (it is created if missing).")
    for s in specs:  # every name and setting is checked before any data is read
        entry = registry.entry("method", s.method)
        registry.resolve_params(entry, s.params)
        quiet = getattr(args, "quiet", False) or not main_process
        if entry.role == "deep" and not quiet and "progress" not in s.params:
            s.params["progress"] = "true"  # an epoch bar with the loss and the source accuracy
    dataset = load(specs[0])
    dataset.check_domains(list(sources) + list(targets))
    from transferkit.deep.runner import takes_steps

    if deep and len(deep) == len(methods) and kwargs["preprocess"] and not takes_steps(dataset):
        raise TransferkitError(
            f"--preprocess is not applied by deep methods to {dataset.modality} data ({', '.join(deep)} "
            "train on images as they are, on texts as sentence embeddings); run them without "
            "--preprocess, or preprocess the data first. The steps do reach deep methods on feature tables."
        )
    preprocess = (
        specs[0].preprocess if specs[0].preprocess is not None else default_preprocess(dataset, dataset_id)
    )
    from transferkit.experiment import build_classifier

    for s in specs:  # a misspelt step or setting is said once, before any training
        build_classifier(s, preprocess)
    from transferkit.experiment import imputes_first

    # and so is a missing value without an impute step to fill it
    dataset.check_values(list(sources) + list(targets), allow_missing=imputes_first(preprocess))
    if imputes_first(preprocess):  # and a column the source never fills
        dataset.check_imputable(list(sources))
    if any(not registry.entry("method", m).requires_target_labels for m in methods):
        from transferkit.experiment import check_labelled_sources

        check_labelled_sources(dataset, sources)  # and a source row without a label, naming its domain
    command = args.command or args.invocation
    rows, records = [], []

    def _dir(spec):
        if not args.out:
            return None
        return Path(args.out) if len(specs) == 1 else Path(args.out) / spec.method

    from numpy.linalg import LinAlgError

    for spec in specs:  # fine-tuning must not write its network over the one it starts from
        init = spec.params.get("init")
        target = _dir(spec)
        if init and target is not None:
            start = Path(str(init)).expanduser().resolve()
            if start in (target.resolve(), (target / "model").resolve()):
                raise TransferkitError(
                    f"--out {target} holds the model this run starts from (init={init}); its network would "
                    "be overwritten by the fine-tuned one. Name another --out."
                )
    selected, failed, written = {}, [], []
    for i, spec in enumerate(specs):
        try:
            if args.select:
                spec, selected[spec.method] = _select_for_run(spec, dataset, preprocess, args.select)
                specs[i] = spec
            rec = run(spec, dataset=dataset, command=command, artifacts=_dir(spec) if main_process else None)
        except (TransferkitError, ValueError, ArithmeticError, LinAlgError) as exc:
            # a numerical failure inside a library (a solver that gives up, a singular matrix) is
            # reported in one line like a TransferkitError (TRANSFERKIT_TRACEBACK=1 also prints where)
            if os.environ.get("TRANSFERKIT_TRACEBACK"):
                import traceback

                traceback.print_exc()
            message = str(exc) if isinstance(exc, TransferkitError) else f"{type(exc).__name__}: {exc}"
            if len(specs) == 1:
                raise TransferkitError(f"{spec.method} failed: {message}") from exc
            # one method failing (a diverging loss, a solver that gives up) does not cost the others
            print(f"transferkit: {spec.method} failed: {message}", file=sys.stderr)
            failed.append(spec.method)
            rows.append([spec.method, "failed", "-", "-", "-"])
            continue
        if spec.method in selected and selected[spec.method]:
            rec["selection"] = f"select:{args.select}"
            rec["candidates"] = selected[spec.method]
        records.append(rec)
        if args.out and main_process:  # now, beside the predictions this method just wrote: a run
            written.append(save_record(rec, _dir(spec)))  # killed later leaves no folder half old
        # a target without labels has no score: '-' (result.json: null)
        scores = ["-" if math.isnan(rec[k]) else f"{rec[k]:.2f}" for k in ("accuracy", "balanced_accuracy")]
        rows.append([spec.method, rec["selection"], *scores, f"{rec['seconds']:.2f}"])
        if rec.get("candidates"):
            scored = [c for c in rec["candidates"] if not math.isnan(c["accuracy"])]
            chosen = {k: spec.params[k] for k in rec["candidates"][0]["params"]}
            rows.append([f"  chose {chosen}", "", "", "", ""])
            if scored:  # without target labels there is no oracle to show
                best = max(scored, key=lambda c: c["accuracy"])
                rows.append([f"  oracle {best['params']}", "oracle", f"{best['accuracy']:.2f}*", "", ""])
    if not main_process:  # the first process reports and writes for all
        return 0
    counts = dataset.counts()
    print(
        f"{dataset_id}: {'+'.join(sources)} -> {'+'.join(targets)}  "
        f"({sum(counts[s] for s in sources)} source, {sum(counts[t] for t in targets)} target samples; "
        f"preprocessing: {_preprocess_line(preprocess, methods, deep, dataset)}; seed {args.seed})"
    )
    print(_table(["method", "selection", "target accuracy %", "balanced %", "seconds"], rows))
    if any(r[1] == "oracle" and r[0].startswith("  oracle") for r in rows):
        print(
            "* the oracle's choice: the candidate with the best target accuracy (read from the target's "
            "labels: a ceiling, not a result), each candidate fitted on 80% of the source rows (the scorers "
            "hold out the rest); the chosen setting's row above is fitted again on all of them."
        )
    for path in written:
        print(f"wrote {path}")
    if failed:
        rest = "the others' results stand" if len(failed) < len(specs) else "no result was written"
        print(f"transferkit: {len(failed)} of {len(specs)} methods failed ({', '.join(failed)}); {rest}",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


def _scorer_names() -> list[str]:
    from transferkit.selection import list_scorers

    return list_scorers()


def cmd_sweep(args) -> int:
    from transferkit.sweep import load_spec, run_sweep

    spec = load_spec(args.spec)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    res = run_sweep(spec, args.out, workers=workers, address=args.address, mlflow_uri=args.mlflow,
                    quiet=args.quiet, command=args.invocation)  # fmt: skip
    print(f"{res['trials']} trials ({res['ran']} run now, {res['trials'] - res['ran']} already done) in "
          f"{res['seconds']:.1f} s; results in {args.out}")  # fmt: skip
    return 0


def cmd_bench(args) -> int:
    from transferkit.benchmark import run_suite

    kwargs = _spec_kwargs(args)
    params = {}
    if args.set:
        if not args.methods or len(args.methods) != 1:
            raise TransferkitError("--set applies to one method; pass a single --methods NAME.")
        params = {args.methods[0]: registry.parse_settings(args.set)}
        registry.resolve_params(registry.entry("method", args.methods[0]), params[args.methods[0]])
    select = _scorer_names() if args.select == ["all"] else list(args.select)
    tasks = None
    if args.tasks:
        tasks = []
        for t in args.tasks:
            source, sep, target = t.partition("->")
            if not sep or not source or not target:
                raise TransferkitError(
                    f"a task is written SOURCE->TARGET (quote it in the shell), got '{t}'."
                )
            tasks.append((source, target))
    rows = run_suite(
        args.suite, args.out, methods=args.methods, seeds=args.seeds, quiet=args.quiet, params=params,
        command=args.invocation, target_labels=args.target_labels, select=select, jobs=args.jobs, tasks=tasks,
        **kwargs,
    )  # fmt: skip
    print((Path(args.out) / "summary.md").read_text())
    print(f"wrote {Path(args.out) / 'results.csv'} ({len(rows)} rows) and summary.md")
    return 0


def _diagnose_steps(preprocess: tuple[str, ...]) -> tuple[str, ...]:
    """The data set's steps, but standardizing with the source's statistics for every row.

    Per-domain standardization already removes part of the shift (each domain's mean and scale);
    a diagnosis must see the shift as it is.
    """
    out = []
    for text in preprocess:
        name, settings = registry.parse_spec(text)
        if name == "standardize" and "per_domain" not in settings:
            text = "standardize:per_domain=false" if not settings else f"{text},per_domain=false"
        out.append(text)
    return tuple(out)


def cmd_diagnose(args) -> int:
    import numpy as np

    from transferkit.diagnostics import diagnose
    from transferkit.experiment import RunSpec, default_preprocess, load
    from transferkit.io import atomic_write_json

    if not args.source or not args.target:
        raise TransferkitError("name the domains: --source S --target T (see `transferkit datasets`).")
    spec = RunSpec(
        args.dataset, tuple(args.source), tuple(args.target), data_root=args.data_root, columns=_columns(args)
    )
    dataset = load(spec)
    dataset.check_domains(spec.sources + spec.targets)
    steps = (
        tuple(args.preprocess) if args.preprocess is not None else _diagnose_steps(
            default_preprocess(dataset, args.dataset)
        )
    )  # fmt: skip
    steps = () if steps == ("none",) else steps
    from transferkit.experiment import stack
    from transferkit.preprocessing import names_after

    arrays = stack(dataset, spec.sources, spec.targets, steps)  # labels hidden
    X = np.asarray(arrays.X)
    X = X.reshape(len(X), -1) if X.ndim > 2 else X
    names = dataset.extras.get("feature_names") if isinstance(dataset.extras, dict) else None
    for text in steps:
        name, settings = registry.parse_spec(text)
        step = registry.build("preprocessing", name, settings)
        X = step.fit_transform(X, arrays.y, arrays.sample_domain)
        names = names_after(step, names)  # impute's 0/1 columns too: 'income (missing)'
    src, tgt = arrays.sample_domain >= 0, arrays.sample_domain < 0
    names = list(names) if names is not None and len(names) == X.shape[1] else None
    report = diagnose(
        X[src], arrays.y[src], X[tgt], n_permutations=args.permutations, random_state=args.seed,
        feature_names=names, class_names=[str(c) for c in dataset.classes],
    )  # fmt: skip
    print(f"{args.dataset}: {'+'.join(spec.sources)} -> {'+'.join(spec.targets)}  "
          f"(preprocessing: {' '.join(steps) or 'none'}; no target label read)")  # fmt: skip
    print(report)
    if args.out:
        path = atomic_write_json(Path(args.out) / "diagnosis.json", {
            "dataset": args.dataset, "sources": list(spec.sources), "targets": list(spec.targets),
            **({"columns": spec.columns} if spec.columns else {}),
            "preprocess": list(steps), "seed": args.seed, **report.to_dict(),
        }, standard=True)  # fmt: skip
        print(f"wrote {path}")
    return 0


_PREDICT_HEADER = ["domain", "row", "prediction", "confidence", "label"]


def _written_by_predict(path: Path) -> bool:
    """Whether ``path`` is a predictions CSV this command wrote (its header), which it may replace."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return first.split(",")[: len(_PREDICT_HEADER)] == _PREDICT_HEADER


def cmd_predict(args) -> int:
    import csv
    import io

    import numpy as np

    from transferkit.datasets import TABLE_SUFFIXES, load_dataset
    from transferkit.datasets.table import TABLE_READING
    from transferkit.io import atomic_write_text
    from transferkit.nn.saved_model import SPEC
    from transferkit.predict import predict_saved

    model = Path(args.model)
    if not (model / SPEC).exists() and (model / "model" / SPEC).exists():
        model = model / "model"  # the --out folder of a run
    out = Path(args.out)
    if out.is_dir():
        raise TransferkitError(
            f"--out {out} is a folder; name the CSV file to write, e.g. {out}/predictions.csv."
        )
    data = Path(args.dataset).expanduser()
    if out.exists() and data.exists() and out.resolve() == data.resolve():
        raise TransferkitError(f"--out {out} is the data file itself; name another file for the predictions.")
    if out.exists() and not _written_by_predict(out):  # nothing a user wrote is lost
        raise TransferkitError(
            f"--out {out} exists and is not a predictions file written by `transferkit predict`; name a "
            "new file (an earlier predictions file is replaced, nothing else is)."
        )
    from transferkit.nn.saved_model import read_spec
    from transferkit.shallow.saved import is_saved_classifier, read_classifier_spec

    shallow = is_saved_classifier(args.model)
    if not shallow and not (model / SPEC).exists():  # before the data, whose columns it says how to read
        runs = sorted(p.parent.name for p in Path(args.model).glob("*/model") if is_saved_classifier(p.parent)
                      or (p / SPEC).exists())  # fmt: skip
        if runs:
            raise TransferkitError(
                f"no saved model in {args.model} itself; the run folder{'s' if len(runs) > 1 else ''} in it "
                f"({', '.join(runs)}) hold one each (a run of several methods): name one, e.g. transferkit "
                f"predict {Path(args.model) / runs[0]}."
            )
    model_spec = read_classifier_spec(args.model) if shallow else read_spec(model)
    # the new table is read as the model's own was (its domain, label and categorical columns), unless
    # told otherwise; a folder of images or a built-in data set has no columns to name
    reading = _columns(args)
    if Path(args.dataset).suffix.lower() in TABLE_SUFFIXES:
        saved = model_spec.get("reading") or {}
        reading = {**{k: v for k, v in saved.items() if k in TABLE_READING}, **reading}
        trained = model_spec.get("feature_names")
        if trained and "feature_columns" not in reading and "text_column" not in reading and data.is_file():
            # only the model's columns are read: an identifier or a notes column of the new table is no
            # feature of the model, and reading it could only fail (too many words, a stray word)
            from transferkit.datasets.table import columns_for

            used, others = columns_for(data, trained, reading.get("domain_column", "domain"),
                                       reading.get("label_column", "label"))  # fmt: skip
            if used is not None:
                reading["feature_columns"] = used
                if others:
                    print(f"not read (not the model's columns): {', '.join(others)}", file=sys.stderr)
    # new data: labels optional
    dataset = load_dataset(args.dataset, args.data_root, labels_optional=True, **reading)
    results = predict_saved(model, dataset, args.domains, as_domain=args.as_domain)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extras = dataset.extras if isinstance(dataset.extras, dict) else {}
    files, table_rows = extras.get("files"), extras.get("table_rows")
    w.writerow(_PREDICT_HEADER + (["file"] if files else []))
    for name, r in results.items():
        # the data's own label (a class the model does not know is still named), the image's file;
        # `row`: the row's number in the user's table (1 = first below the header), else its position
        given = np.asarray(dataset.labels(name))
        rows = table_rows[name] if table_rows else np.arange(len(given))
        for i, (k, p) in enumerate(zip(r.predictions, r.probabilities.max(1))):
            label = str(dataset.classes[given[i]]) if given[i] >= 0 else ""
            confidence = "" if np.isnan(p) else f"{p:.4f}"  # "": a classifier without probabilities
            w.writerow(
                [name, int(rows[i]), r.classes[k], confidence, label] + ([files[name][i]] if files else [])
            )
    # a folder or file name that is not UTF-8 (an old archive's) is written with its bytes as \xNN
    atomic_write_text(
        out, buf.getvalue().encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    )
    for name, r in results.items():
        acc = (
            ""
            if r.accuracy is None
            else f"  accuracy {100 * r.accuracy:.2f}% (balanced {100 * r.balanced_accuracy:.2f}%) on its "
            "labelled rows"
        )
        print(f"{name}: {len(r.predictions)} rows{acc}")
    print(f"wrote {out}")
    return 0


def cmd_report(args) -> int:
    from transferkit.report import write_report

    path = write_report(args.folder, args.out)
    print(f"wrote {path}")
    return 0


def cmd_download(args) -> int:
    from transferkit.datasets import download

    root = download(args.dataset, args.data_root, progress=not args.quiet)
    print(f"{args.dataset}: all files present and verified in {root}")
    return 0


class _Once(argparse._StoreAction):
    """A single-valued option given twice is an error: argparse kept the last one without a word
    (``run --select iwcv --select dev`` scored with DEV alone, ``--seed 0 --seed 1`` ran seed 1)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given_options", set())
        if self.dest in given:
            parser.error(f"{option_string} was given twice; it takes one value")
        given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class OptionParser(argparse.ArgumentParser):
    """transferkit's parsers (the subcommands' too): every option that stores one value refuses to be
    given twice (:class:`_Once`)."""

    def add_argument(self, *args, **kwargs):
        if args and str(args[0]).startswith("-") and kwargs.get("action") in (None, "store"):
            kwargs["action"] = _Once
        return super().add_argument(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.__dict__.pop("_given_options", None)  # the check's memory is not an argument
        return namespace, extras


class _AddUp(argparse.Action):
    """A list option with a default that, given several times, adds up: the first occurrence replaces
    the default and later ones extend it (argparse kept only the last: ``--seeds 0 --seeds 1`` ran seed 1)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        given = [] if current is self.default or current is None else list(current)
        setattr(namespace, self.dest, given + list(values))


def _seed(text: str) -> int:
    """A seed as numpy and torch take it: a whole number from 0 to 2**32 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"a seed must be from 0 to 2**32 - 1 (4294967295), got {value}")
    return value


def _count(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-root",
        help="folder holding the data sets (default: $TRANSFERKIT_DATA, then ~/.cache/transferkit)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _table_options(p: argparse.ArgumentParser) -> None:
    """How to read a table of your own (a .csv/.tsv/.parquet file), when its columns are not named
    domain and label or some of its number columns are codes."""
    g = p.add_argument_group("a table of your own")
    g.add_argument("--domain-column", metavar="COL", help="the column of each row's domain (default: domain)")
    g.add_argument("--label-column", metavar="COL", help="the column of each row's class (default: label)")
    g.add_argument(
        "--feature-columns", nargs="+", action="extend", metavar="COL",
        help="the feature columns (default: every other column)",
    )  # fmt: skip
    g.add_argument("--text-column", metavar="COL", help="read the table as texts from this column")
    g.add_argument(
        "--categorical", nargs="+", action="extend", metavar="COL",
        help="number columns that are codes (a postcode, 1/2/3 for three colours): one 0/1 column per "
        "value, as a column of words is read",
    )  # fmt: skip


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--estimator",
        default=registry.DEFAULT_ESTIMATOR,
        help="final classifier, NAME[:key=value,...] (default %(default)s)",
    )
    p.add_argument(
        "--preprocess",
        nargs="*",
        action="extend",
        metavar="STEP",
        help="preprocessing steps NAME[:key=value,...] in order, or 'none' "
        "(default: a built-in data set's standard steps; for your own table standardize:per_domain=false, "
        "for texts tfidf, for images none)",
    )
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        default=[],
        help="method settings, each parsed by its type: --set epochs=5 lr=0.1 (or --set once for each)",
    )
    p.add_argument(
        "--target-labels",
        type=_count,
        default=0,
        metavar="K",
        help="reveal K labelled target samples per class to the method (semi-supervised); they are "
        "left out of the accuracy",
    )


def parser() -> argparse.ArgumentParser:
    ap = OptionParser(
        prog="transferkit",
        description="Transfer learning and domain adaptation: data sets, methods, runs and benchmarks.",
    )
    ap.add_argument("--version", action="version", version=f"transferkit {__version__}")
    sub = ap.add_subparsers(dest="command_name")

    p = sub.add_parser("datasets", help="list the data sets, their domains and whether they are present")
    _common(p)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("methods", help="list methods, preprocessing steps and estimators")
    p.add_argument("name", nargs="?", help="show one entry with its settings")
    p.add_argument("--pattern", help="shell pattern, e.g. 'co*'")
    p.add_argument(
        "--markdown", action="store_true", help="print the whole reference as Markdown (docs/methods.md)"
    )
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser(
        "run", help="one adaptation run (no arguments: caltech->amazon on the embedded Office-Caltech10)"
    )
    p.add_argument("--dataset", help="data set id or a path to your own folder/table")
    p.add_argument("--source", nargs="+", action="extend", help="source domain(s)")
    p.add_argument("--target", nargs="+", action="extend", help="target domain(s)")
    p.add_argument(
        "--method", nargs="+", action="extend", help=f"method(s) (default: {' '.join(DEFAULT_METHODS)})"
    )
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", help="write DIR/result.json (DIR/<method>/result.json for several methods)")
    p.add_argument("--command", help=argparse.SUPPRESS)
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train a deep method data-parallel on N processes (torchrun; gloo on CPU, NCCL on GPU)",
    )
    p.add_argument(
        "--select",
        metavar="SCORER",
        help="choose the method's settings from its search space with a label-free scorer "
        "(" + ", ".join(_scorer_names()) + "); the oracle's choice is shown beside",
    )
    _run_options(p)
    _table_options(p)
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="methods x tasks x seeds x hyperparameters from a YAML file, on Ray")
    p.add_argument("spec", help="the sweep's YAML file (see `transferkit.sweep`)")
    p.add_argument("--out", required=True, help="folder for trials/, results.csv, trials.csv, summary.md")
    p.add_argument("--workers", type=int, default=None, help="trials at once (default: CPU cores; 1: serial)")
    p.add_argument("--address", help="attach to a running Ray cluster (ray://host:10001 or host:6379)")
    p.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                   help="log every trial to MLflow (default store: OUT/mlflow.db, SQLite)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("bench", help="a suite: every task x method x seed of a data set")
    p.add_argument(
        "suite",
        help="suite id (a data set id), or the path of your own table or image folder (its tasks: every "
        "ordered pair of a fully labelled source domain and a target with labels, unless --tasks names them)",
    )
    p.add_argument("--methods", nargs="+", action="extend", help="default: every registered method")
    p.add_argument("--seeds", nargs="+", action=_AddUp, type=_seed, default=[0])
    p.add_argument("--out", required=True, help="folder for results.csv and summary.md")
    p.add_argument(
        "--select",
        nargs="+",
        action=_AddUp,
        default=[],
        metavar="SCORER",
        help="also pick each method's setting from its search space with these label-free scorers "
        "('all' for every one: " + ", ".join(_scorer_names()) + "); the oracle choice is reported beside",
    )
    p.add_argument("--jobs", type=int, default=None, help="tasks run at once (default: one per CPU core)")
    p.add_argument(
        "--tasks", nargs="+", action="extend", metavar="S->T", help="only these tasks (default: every pair)"
    )
    _run_options(p)
    _table_options(p)
    _common(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("diagnose", help="how big is the shift from source to target, and of what kind")
    p.add_argument("--dataset", required=True, help="data set id, or a folder / table of your own data")
    p.add_argument("--source", nargs="+", action="extend", required=True)
    p.add_argument("--target", nargs="+", action="extend", required=True)
    p.add_argument(
        "--preprocess",
        nargs="*",
        action="extend",
        metavar="STEP",
        help="steps before the tests (default: the data set's, standardized with source statistics)",
    )
    p.add_argument("--permutations", type=int, default=200, help="permutations of the MMD test")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", help="folder for diagnosis.json")
    _table_options(p)
    _common(p)
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser(
        "predict", help="classify a data set with a model saved by `transferkit run --out DIR`"
    )
    p.add_argument(
        "model", help="the run's DIR (or DIR/model): a deep run's network or a shallow run's classifier"
    )
    p.add_argument("--dataset", required=True, help="data set id, or a folder / table of your own data")
    p.add_argument("--domains", nargs="+", action="extend", help="the domains to classify (default: all)")
    p.add_argument(
        "--as-domain", metavar="NAME",
        help="classify every row as the rows of this training domain were (default: each domain as itself; "
        "a new one as the target's, for a shallow model)",
    )  # fmt: skip
    p.add_argument(
        "--out", required=True, help="the CSV to write: domain, row, prediction, confidence, label"
    )
    _table_options(p)  # default: the columns the model's own table was read with
    _common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="one self-contained HTML file for a run or bench folder")
    p.add_argument("folder", help="the --out folder of `transferkit run` or `transferkit bench`")
    p.add_argument("--out", help="where to write the HTML (default: FOLDER/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("download", help="download a data set into the data root and verify checksums")
    p.add_argument("dataset")
    _common(p)
    p.set_defaults(func=cmd_download)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    if not argv:
        argv = ["run"]  # the main job
    args = ap.parse_args(argv)
    added_up = ("source", "target", "method", "methods", "tasks", "domains", "seeds", "select",
                "feature_columns", "categorical")  # fmt: skip
    for name in added_up:
        values = getattr(args, name, None) or []
        twice = repeated(values)
        if twice:  # it would run (or count) twice
            print(
                f"transferkit: error: --{name.replace('_', '-')} names {twice[0]} more than once; name each "
                "once.",
                file=sys.stderr,
            )
            return 2
    args.invocation = shlex.join(["transferkit", *argv])
    args.argv = argv
    if not getattr(args, "func", None):
        ap.print_help()
        return 0
    try:
        return args.func(args)
    except TransferkitError as exc:
        print(f"transferkit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `transferkit methods | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # an unwritable --out, a full disk: one line, not a traceback
        print(f"transferkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transferkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
