"""Deep domain adaptation: every method with one fixed setting for all tasks, label-free beside oracle.

Suites:

* ``digits``: MNIST -> USPS, USPS -> MNIST, MNIST -> MNIST-M (test splits, (3, 32, 32) images, a LeNet).
* ``digits-input-norm``: ``digits`` with each image standardized per channel before the LeNet
  (``input_norm=true``, the input normalization of Shu et al., ICLR 2018), the same for every method
  and task: brightness, contrast and colour are taken out of the images of both domains.
  ``mnist-usps-jda-input-norm`` is ``mnist-usps-jda`` with the same setting.
* ``digits-randconv``: ``digits`` with every source batch seen through a random convolution half of
  the time (``augment_source=randconv``, RandConv's augmentation, Xu et al., ICLR 2021), the same for
  every method and task; the target as it is.
* ``mnist-usps-jda``: the JDA split (2000 MNIST, 1800 USPS): its 256-d rows are 16x16 grey images,
  given back their shape and resized to (3, 32, 32) (bilinear, the same for both domains) for the LeNet.
* ``amazon-reviews``: the 12 ordered pairs of books, dvd, electronics and kitchen; all-MiniLM-L6-v2
  sentence embeddings (cached on disk) and an MLP; with ``target-only`` (5-fold inside the target,
  the same MLP and training, plain cross-entropy) as the ceiling the bar measures against.

Every method runs with the registry's defaults plus the suite's fixed training settings (below),
the same for every task; nothing is chosen on target labels. Rows per run:

* ``fixed-defaults``: the network after the last epoch, what a user gets without target labels;
* ``select:entropy``, ``select:snd``, ``select:mixval``: the epoch that a label-free scorer of
  :mod:`transferkit.selection` likes best (each scored on the unlabelled target rows after every
  epoch; ties go to the earlier epoch), passing over epochs whose target predictions collapse
  onto one class (``target_collapsed`` in ``history.csv``), as ``early_stopping=SCORER`` does;
* ``oracle``: the best epoch by target accuracy (scored after every epoch; the scores never reach
  the loss): a ceiling, never a headline.

``history.csv`` keeps every epoch's target accuracy, scores and losses. Results are rewritten atomically
after every run; ``--resume`` skips the runs already in ``results.csv``; ``--replace`` runs the chosen
methods, tasks and seeds again in place of their rows (after a method's defaults changed).
A folder that holds results is only written by ``--resume`` or ``--replace``, and only with the
same training settings (``--epochs``) as its rows.

    python benchmarks/deep_da.py digits [--methods dann mcc] [--seeds 0 1 2] [--jobs 2] [--resume]
    python benchmarks/deep_da.py amazon-reviews --jobs 2
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _common import check_at_least, check_list, refuse_overwrite
from dg import COLUMNS, _read  # the same results columns and resume reader

from transferkit.cli import OptionParser
from transferkit.features import FEATURES_NAME
from transferkit.io import atomic_write_text

METHODS = [
    "deep-source-only",
    "dann",
    "dan",
    "deep-coral",
    "cdan",
    "cdan-e",
    "mcc",
    "pseudo-label",
    "fixmatch",
    "adamatch",
]
SUITES = {
    "digits": {
        "dataset": "digits",
        "tasks": [("mnist", "usps"), ("usps", "mnist"), ("mnist", "mnist_m")],
        "settings": {"epochs": 10, "batch_size": 64, "lr": 0.01},
        "preprocess": "",
    },
    "mnist-usps-jda": {
        "dataset": "mnist-usps-jda",
        "tasks": [("mnist", "usps"), ("usps", "mnist")],
        "settings": {"epochs": 30, "batch_size": 64, "lr": 0.01},
        "preprocess": "16x16 rows as images, resized to 32x32",
        "images": 16,
    },
    "amazon-reviews": {
        "dataset": "amazon-reviews",
        "tasks": None,  # every ordered pair
        "settings": {"epochs": 20, "batch_size": 64, "optimizer": "adam", "lr": 0.001, "weight_decay": 0.0},
        "preprocess": FEATURES_NAME,
        "target_only": True,
    },
}  # fmt: skip


def _with_input_norm(base: str, preprocess: str) -> dict:
    """The suite ``base`` with every image standardized per channel (``input_norm``), all else equal."""
    cfg = SUITES[base]
    return {**cfg, "settings": {**cfg["settings"], "input_norm": True}, "preprocess": preprocess}


SUITES["digits-input-norm"] = _with_input_norm("digits", "each image standardized per channel (input_norm)")
SUITES["mnist-usps-jda-input-norm"] = _with_input_norm(
    "mnist-usps-jda", "16x16 rows as 32x32 images, each standardized per channel (input_norm)"
)
SUITES["digits-randconv"] = {
    **SUITES["digits"],
    "settings": {**SUITES["digits"]["settings"], "augment_source": "randconv"},
    "preprocess": "source batches through a random convolution half of the time (augment_source=randconv)",
}
EPOCH_SCORERS = ("entropy", "snd", "mixval")  # label-free: they read target predictions only
SELECTIONS = ("fixed-defaults", *(f"select:{s}" for s in EPOCH_SCORERS), "oracle")


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def load(suite: str):
    """The suite's data set; for ``images``, its flat rows as (3, 32, 32) images."""
    from transferkit.datasets import load_dataset
    from transferkit.domains import DomainDataset

    cfg = SUITES[suite]
    dataset = load_dataset(cfg["dataset"])
    side = cfg.get("images")
    if not side:
        return dataset
    import torch
    import torch.nn.functional as F

    def image(X):
        x = torch.as_tensor(np.asarray(X, np.float32)).reshape(-1, 1, side, side)
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)
        return x.repeat(1, 3, 1, 1).numpy()

    return DomainDataset(dataset.name, {d: image(X) for d, X in dataset.X.items()}, dict(dataset.y),
                         dataset.classes, modality="image")  # fmt: skip


def _inputs(dataset, source: str, target: str):
    from transferkit.deep.runner import inputs

    arrays = dataset.to_arrays([source], [target])  # target labels hidden (-1)
    return arrays, inputs(dataset, arrays)


def one_run(suite: str, source: str, target: str, method: str, seed: int, threads: int, epochs=None) -> dict:
    """Train one method on one task; the label-free and the oracle accuracy, and the history."""
    import torch

    from transferkit import registry
    from transferkit.deep.runner import fit_deep, split_settings
    from transferkit.experiment import RunSpec
    from transferkit.selection import chosen_epoch, score_every_epoch

    torch.set_num_threads(threads)
    cfg = SUITES[suite]
    settings = {**cfg["settings"], **({"epochs": epochs} if epochs else {})}
    dataset = load(suite)
    spec = RunSpec(dataset=cfg["dataset"], sources=(source,), targets=(target,), method=method, seed=seed)
    started = time.perf_counter()
    labels = dataset.labels(target)  # for scoring only
    if method == "target-only":  # 5 folds inside the target, the same network and training
        from sklearn.model_selection import StratifiedKFold

        from transferkit.deep.runner import inputs

        X = inputs(dataset, dataset.to_arrays([target]))
        pred = np.empty_like(labels)
        entry = registry.entry("method", "erm")  # plain supervised training on one labelled domain
        spec = dataclasses.replace(spec, method="erm")
        parts = split_settings(registry.resolve_params(entry, dict(settings)))
        folds = StratifiedKFold(5, shuffle=True, random_state=seed).split(X, labels)
        for train, test in folds:
            trainer, _, _ = fit_deep(spec, dataset, X[train], labels[train], np.zeros(len(train), np.int64),
                                     *parts)  # fmt: skip
            pred[test] = trainer.predict(X[test])
        acc = 100 * float(np.mean(pred == labels))
        return {"accuracy": {"oracle": acc}, "history": [], "seconds": time.perf_counter() - started}
    arrays, X = _inputs(dataset, source, target)
    entry = registry.entry("method", method)
    parts = split_settings(registry.resolve_params(entry, dict(settings)))
    tgt = arrays.sample_domain < 0
    source_labels = arrays.y[~tgt]  # the epochs whose target predictions collapse are passed over
    trainer, history, _ = fit_deep(spec, dataset, X, arrays.y, arrays.sample_domain, *parts,
                                   # the target accuracy and the label-free scores from one pass
                                   callbacks=[score_every_epoch(X[tgt], EPOCH_SCORERS, source_labels,
                                                                eval_labels=labels)],
                                   )  # fmt: skip
    last = 100 * float(np.mean(trainer.predict(X[tgt]) == labels))
    best = max([last, *(100 * h["target_acc"] for h in history)])
    chosen = {f"select:{s}": 100 * chosen_epoch(history, s)["target_acc"] for s in EPOCH_SCORERS}
    return {
        "accuracy": {"fixed-defaults": last, **chosen, "oracle": best},
        "history": history,
        "seconds": time.perf_counter() - started,
    }


def summary(rows: list[dict], *, suite: str, commands: list[str], notes: list[str]) -> str:
    """Per selection: each method's mean +- std over seeds per task, the average, and the bar's gap."""
    from transferkit.experiment import machine, versions

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    acc = defaultdict(list)
    seconds = defaultdict(list)
    for r in rows:
        acc[(r["selection"], r["method"], r["task"])].append(float(r["accuracy"]))
        # one timing per run: its fixed-defaults row (target-only has only an oracle row)
        if r["selection"] == ("oracle" if r["method"] == "target-only" else "fixed-defaults"):
            seconds[r["method"]].append(float(r["seconds"]))
    total = sum(sum(v) for v in seconds.values())
    seeds = sorted({int(r["seed"]) for r in rows})
    shown = "Command" if len(commands) == 1 else "Commands (each adding to the previous)"
    lines = [
        f"# deep domain adaptation: {suite}", "",
        shown + ": " + ", ".join(f"`{c}`" for c in commands) + "  ",
        f"Seeds: {', '.join(map(str, seeds))}; total time {total / 60:.1f} min (sum over runs: training and "
        "the per-epoch scoring); "
        f"machine: {machine()['processor']}, {machine()['cpus']} CPUs; versions: "
        f"{', '.join(f'{k} {v}' for k, v in versions().items())}.", "",
        "Accuracy (%) on the target, mean ± std over seeds. `fixed-defaults`: the last epoch of one "
        "fixed setting for every task (no target label used); `select:SCORER`: the epoch a label-free "
        "scorer prefers (target predictions only; no target label used), passing over epochs whose target "
        "predictions collapse onto one class; `oracle`: the best epoch by target "
        "accuracy (a ceiling, not a result). `target-only` trains on the target's own labels "
        "(5-fold inside the target).", *notes, "",
    ]  # fmt: skip
    averages: dict[tuple[str, str], float] = {}
    for selection in SELECTIONS:
        if not any(r["selection"] == selection for r in rows):
            continue  # every run was recorded before these rows existed
        lines += [f"## {selection}", ""]
        these = sorted({int(r["seed"]) for r in rows if r["selection"] == selection})
        if these != seeds:  # e.g. the select: rows of runs re-made after the per-epoch scorers came
            lines += [
                f"Seeds of these rows: {', '.join(map(str, these))} (the other seeds' runs have none).",
                "",
            ]
        lines += ["| method | average | " + " | ".join(tasks) + " | seconds per run |",
                  "|---|---|" + "---|" * (len(tasks) + 1)]  # fmt: skip
        for m in methods:
            cells, means = [], []
            for t in tasks:
                v = acc.get((selection, m, t)) or (acc.get(("oracle", m, t)) if m == "target-only" else None)
                if not v:
                    cells.append("")
                    continue
                means.append(statistics.mean(v))
                sd = f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else ""
                # a task with fewer runs than the table's seeds (a failed or missing run) says so: its
                # mean, and the average over tasks, are over fewer seeds than the other cells
                short = (
                    f" ({len(v)} of {len(these)} seeds)" if len(v) < len(these) and m != "target-only" else ""
                )
                cells.append(f"{means[-1]:.2f}{sd}{short}")
            avg = statistics.mean(means) if len(means) == len(tasks) else None
            if avg is not None:
                averages[(selection, m)] = avg
            sec = f"{statistics.mean(seconds[m]):.0f}" if seconds.get(m) else ""
            shown_avg = "(incomplete)" if avg is None else f"{avg:.2f}"
            lines.append(f"| {m} | {shown_avg} | " + " | ".join(cells) + f" | {sec} |")
        src = averages.get((selection, "deep-source-only"))
        tgt = averages.get((selection, "target-only"))
        adapted = {m: a for (s, m), a in averages.items() if s == selection and m not in
                   ("deep-source-only", "target-only")}  # fmt: skip
        if src is not None and adapted:
            best_m = max(adapted, key=adapted.get)
            line = f"Best method on average: {best_m} {adapted[best_m]:.2f} (source-only {src:.2f}"
            if tgt is not None and tgt > src:
                line += (
                    f", target-only {tgt:.2f}; it closes {100 * (adapted[best_m] - src) / (tgt - src):.0f}% "
                )
                line += "of the gap"
            lines += ["", line + ")."]
        lines.append("")
    lines += _epoch_rules(rows)
    return "\n".join(lines) + "\n"


def _epoch_rules(rows: list[dict]) -> list[str]:
    """How each label-free epoch rule fares against the last epoch and the oracle, over every run."""
    by_run = defaultdict(dict)
    for r in rows:
        by_run[(r["task"], r["method"], int(r["seed"]))][r["selection"]] = float(r["accuracy"])
    lines = []
    for s in EPOCH_SCORERS:
        runs = [v for v in by_run.values() if f"select:{s}" in v and "fixed-defaults" in v and "oracle" in v]
        if not runs:
            continue
        gain = [v[f"select:{s}"] - v["fixed-defaults"] for v in runs]
        regret = [v["oracle"] - v[f"select:{s}"] for v in runs]
        better, worse = sum(g > 0 for g in gain), sum(g < 0 for g in gain)
        lines.append(f"| {s} | {statistics.mean(gain):+.2f} | {better} / {worse} / {len(runs)} | "
                     f"{statistics.mean(regret):.2f} |")  # fmt: skip
    if not lines:
        return []
    last = [
        v["oracle"] - v["fixed-defaults"] for v in by_run.values() if "fixed-defaults" in v and "oracle" in v
    ]
    return [
        "## Choosing the epoch without target labels", "",
        "Over every run (method x task x seed): the accuracy of the epoch each label-free scorer "
        "prefers, minus the last epoch's (points); in how many runs it is better / worse / of all; and "
        f"its mean regret to the oracle epoch (the last epoch's: {statistics.mean(last):.2f}).", "",
        "| rule | mean gain over the last epoch | better / worse / runs | mean regret to the oracle |",
        "|---|---|---|---|", *lines, "",
    ]  # fmt: skip


def main(argv=None) -> int:
    p = OptionParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", choices=sorted(SUITES))
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--tasks", nargs="+", default=None, help="SOURCE:TARGET pairs (default: the suite's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1, help="runs at once, in separate processes")
    p.add_argument("--resume", action="store_true", help="keep the rows already in --out and skip them")
    p.add_argument("--replace", action="store_true",
                   help="run the chosen methods x tasks x seeds again and replace their rows (after a "
                        "method's defaults changed); every other row is kept, as with --resume")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="replace the suite's epochs (a smoke test)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.resume and args.replace:
        p.error("--resume skips the runs already there, --replace runs them again: pass one")
    check_list(p, "--seeds", args.seeds, minimum=0)
    check_list(p, "--methods", args.methods)
    check_list(p, "--tasks", args.tasks)
    check_at_least(p, "--jobs", args.jobs)
    check_at_least(p, "--epochs", args.epochs)

    from joblib import Parallel, delayed

    from transferkit import registry
    from transferkit.datasets import dataset_info
    from transferkit.errors import TransferkitError

    cfg = SUITES[args.suite]
    methods = args.methods or (METHODS + (["target-only"] if cfg.get("target_only") else []))
    for m in methods:
        if m == "target-only":
            continue
        try:
            entry = registry.entry("method", m)
        except TransferkitError as exc:
            p.error(str(exc))
        if entry.role != "deep" or getattr(entry.load(), "needs_target_labels", False):
            p.error(f"--methods: {m} is not a deep method that trains without target labels")
    domains = list(dataset_info(cfg["dataset"]).counts)
    if args.tasks:
        tasks = [tuple(t.split(":")) for t in args.tasks]
        bad = [t for t, pair in zip(args.tasks, tasks) if len(pair) != 2 or pair[0] == pair[1]]
        if bad:
            p.error(
                f"--tasks takes SOURCE:TARGET pairs of two domains such as mnist:usps; got {', '.join(bad)}"
            )
    else:
        tasks = cfg["tasks"] or [(s, t) for s in domains for t in domains if s != t]
    unknown = [d for t in tasks for d in t if d not in domains]
    if unknown:
        p.error(f"--tasks: {args.suite} has no domain '{unknown[0]}' (its domains: {', '.join(domains)})")
    command = "python benchmarks/deep_da.py " + " ".join(
        a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"
    )
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"deep-{args.suite}"
    keep = args.resume or args.replace
    refuse_overwrite(p, out, keep)
    rows = _read(out / "results.csv") if keep else []
    history = _read(out / "history.csv") if keep else []
    if args.replace:
        again = {(f"{s}->{t}", m, seed) for seed in args.seeds for s, t in tasks for m in methods}
        rows = [r for r in rows if (r["task"], r["method"], int(r["seed"])) not in again]
        history = [h for h in history if (h["task"], h["method"], int(h["seed"])) not in again]
    settings = {**cfg["settings"], **({"epochs": args.epochs} if args.epochs else {})}
    fixed = json.dumps(settings, sort_keys=True)
    other = sorted({r["params"] for r in rows if r["params"] != fixed})
    if other:  # one table, one setting: a resumed --epochs 1 smoke test sat beside 10-epoch rows
        p.error(f"{out} holds rows trained with {other[0]}, this run trains with {fixed}: name another --out")
    dataset = load(args.suite)
    if dataset.modality == "text":  # embed every domain once, before the workers look for the cache
        from transferkit.deep.runner import inputs

        inputs(dataset, dataset.to_arrays(dataset.domains))
    done = {(r["task"], r["method"], int(r["seed"])) for r in rows}
    commands_file = out / "commands.txt"
    commands = commands_file.read_text().splitlines() if keep and commands_file.exists() else []
    if command not in commands:  # the same command resumed is one command
        commands.append(command)
    notes = [f"Fixed training settings for every method and task: {fixed}; each method's own settings at "
             "their registry defaults."]  # fmt: skip
    jobs = []
    for seed in args.seeds:
        for s, t in tasks:
            for m in methods:
                if m == "target-only" and any(j[1] == t and j[2] == m and j[3] == seed for j in jobs):
                    continue  # one target-only run per target
                if (f"{s}->{t}", m, seed) not in done:
                    jobs.append((s, t, m, seed))
    threads = 1 if args.jobs > 1 else 2
    work = (delayed(one_run)(args.suite, s, t, m, seed, threads, args.epochs) for s, t, m, seed in jobs)
    results = Parallel(n_jobs=args.jobs, return_as="generator")(work) if args.jobs > 1 else (
        one_run(args.suite, s, t, m, seed, threads, args.epochs) for s, t, m, seed in jobs
    )  # fmt: skip
    started = time.perf_counter()
    for (s, t, m, seed), res in zip(jobs, results):
        targets = [(s2, t) for s2, t2 in tasks if t2 == t] if m == "target-only" else [(s, t)]
        for s2, _ in targets:  # target-only: the same number under every task with this target
            for selection, a in res["accuracy"].items():
                rows.append({
                    "suite": args.suite, "task": f"{s2}->{t}", "source": s2, "target": t, "method": m,
                    "params": fixed, "estimator": "",
                    "preprocess": cfg["preprocess"], "seed": seed, "selection": selection, "target_labels": 0,
                    "accuracy": round(a, 4), "seconds": round(res["seconds"], 2),
                })  # fmt: skip
        for h in res["history"]:
            history.append({"task": f"{s}->{t}", "method": m, "seed": seed, **h})
        shown = "  ".join(f"{k} {v:.2f}" for k, v in res["accuracy"].items())
        print(f"seed {seed} {s}->{t} {m:16s} {shown}  ({res['seconds']:.0f} s)", flush=True)
        atomic_write_text(out / "results.csv", _csv(rows, COLUMNS))
        if history:
            keys = list(dict.fromkeys(k for h in history for k in h))
            atomic_write_text(out / "history.csv", _csv(history, keys))
        atomic_write_text(commands_file, "\n".join(commands) + "\n")
        atomic_write_text(out / "summary.md", summary(rows, suite=args.suite, commands=commands, notes=notes))
    if rows:  # also when every run was already there
        atomic_write_text(commands_file, "\n".join(commands) + "\n")
        atomic_write_text(out / "summary.md", summary(rows, suite=args.suite, commands=commands, notes=notes))
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
