"""Domain generalization: each domain held out in turn, three model-selection rules side by side.

Suites (the leave-one-domain-out protocol of :mod:`transferkit.dg.protocol`):

* ``digits-dg``: MNIST, USPS and MNIST-M ((3, 32, 32) images, a LeNet); each held out in turn, the
  other two are the training domains. Defaults: 5 epochs (leave-one-domain-out folds: 2), batch 64,
  domains balanced (``balance_domains``), seeds 0 1 2.
* ``amazon-reviews-dg``: books, dvd, electronics, kitchen (all-MiniLM-L6-v2 sentence embeddings,
  cached, and an MLP with 256 hidden units); each held out in turn, three training domains.
  Defaults: 20 epochs for every run, batch 64, domains balanced, seeds 0 1 2.

Every run uses Adam without weight decay, as DomainBed does. Methods: ``erm``, ``dg-coral``,
``dg-mmd``, ``groupdro``, ``mixup``, ``vrex``, ``irm``, ``swa`` (ERM with the weights averaged over
the second half of the run) and ``randconv`` (random convolutions of the images: ``digits-dg`` only,
the text suite's rows are sentence embeddings). Every method is tuned over the same learning rates
(0.001, 0.0003) times its own ``search_space`` (3 settings of its weight; ERM and SWA have none), as DomainBed
tunes every method's learning rate: 2 candidates for ERM and SWA, 6 for the others. Each
candidate trains on 80% of every training domain; ``training-domain`` picks by the pooled accuracy on
the other 20%, ``leave-one-domain-out`` by the mean accuracy on each training domain left out of an
extra run, and ``oracle`` by the held-out domain's accuracy (a ceiling). The held-out domain is never
trained on.

    python benchmarks/dg.py digits-dg [--seeds 0 1 2] [--methods erm vrex] [--held-out usps] [--resume]
    python benchmarks/dg.py amazon-reviews-dg
    python benchmarks/dg.py digits-dg --quick --out /tmp/dg-quick     # a smoke test, not results
    python benchmarks/dg.py digits-dg --max-per-domain 2000 --epochs 20 --out /tmp/dg-20  # fewer rows

With 2000 rows per domain keep about as many steps as the defaults take (5 epochs over every image of
the two training domains are 700-1200 steps of 64 rows; 20 epochs over 2 x 1600 rows, 1000): after 5
epochs of the subset ERM's training-domain validation accuracy is still about 5 points short of where
it ends (the README's DG section).

``--quick``: 1000 rows per domain (``--max-per-domain``), 5 epochs (folds: 2), the two learning
rates with each method's own settings at their defaults (2 candidates each), seed 0.

Results: ``results.csv`` (the foundation's columns; ``task`` = the held-out domain, ``selection`` =
the rule), ``candidates.csv`` (every candidate's three scores) and ``summary.md``, rewritten
atomically after every method x held-out domain x seed; ``--resume`` skips those already in
``results.csv`` (``commands.txt`` lists every command that added rows). A folder that holds results
is only added to with ``--resume``, and only by a run of the same settings (epochs, rows per domain,
``--quick``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also when this file is imported by path
from _common import check_at_least, check_list, refuse_overwrite  # noqa: E402

from transferkit.cli import OptionParser
from transferkit.features import FEATURES_NAME  # noqa: E402
from transferkit.io import atomic_write_text  # noqa: E402

COLUMNS = [
    "suite", "task", "source", "target", "method", "params", "estimator", "preprocess", "seed",
    "selection", "target_labels", "accuracy", "seconds",
]  # fmt: skip
CANDIDATE_COLUMNS = ["task", "method", "seed", "params", "val_accuracy", "lodo_accuracy", "lodo_folds",
                     "heldout_accuracy", "seconds", "lodo_seconds", "failed"]  # fmt: skip
METHODS = ["erm", "dg-coral", "dg-mmd", "groupdro", "mixup", "vrex", "irm", "swa", "randconv"]
SELECTIONS = ("training-domain", "leave-one-domain-out", "oracle")
ADAM = {"optimizer": "adam", "weight_decay": 0.0}
SUITES = {
    "digits-dg": {
        "dataset": "digits", "preprocess": "", "lodo_epochs": 2,
        "settings": {"epochs": 5, "batch_size": 64, "balance_domains": True, **ADAM},
    },
    "amazon-reviews-dg": {
        "dataset": "amazon-reviews", "preprocess": FEATURES_NAME, "lodo_epochs": None,
        "settings": {"epochs": 20, "batch_size": 64, "hidden": 256, "balance_domains": True, **ADAM},
    },
}  # fmt: skip
BASE_SPACE = {"lr": (0.001, 0.0003)}
"""The learning rates every method is tuned over (times its own search space)."""
QUICK = {"max_per_domain": 1000, "epochs": 5, "lodo_epochs": 2, "seeds": [0]}


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    w.writerows({k: r[k] for k in columns} for r in rows)
    return buf.getvalue()


def _r(v):
    return "" if v is None else round(v, 4)


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _setting(settings: dict, lodo_epochs, max_rows) -> str:
    """The settings every row of a results folder shares, as the summary's notes state them."""
    return (
        f"Fixed settings: {json.dumps(settings, sort_keys=True)}; leave-one-domain-out folds: "
        f"{lodo_epochs or settings['epochs']} epochs" + (f"; {max_rows} rows per domain" if max_rows else "")
    )


def _recorded(out: Path) -> tuple[str | None, bool]:
    """The settings of the rows in ``out`` (from its summary.md's notes, None when it has none) and
    whether they were a ``--quick`` smoke test."""
    path = out / "summary.md"
    if not path.exists():
        return None, False
    text = path.read_text()
    found = re.search(r"^Fixed settings: .*?(?=; the latest command ran with)", text, re.M)
    return (found.group(0) if found else None), "(QUICK SMOKE TEST" in text.split("\n", 1)[0]


def summary(rows: list[dict], *, suite: str, commands: list[str], notes: list[str], quick: bool) -> str:
    """Per selection rule: each method's accuracy on every held-out domain (mean over seeds), the
    average, and whether it beats ERM under that rule."""
    from transferkit.experiment import machine, versions

    runs: dict[tuple, float] = {}  # the training time of each method x held-out x seed, folds included
    for r in rows:
        key = (r["task"], r["method"], r["seed"])
        runs[key] = max(runs.get(key, 0.0), float(r["seconds"]))
    seconds = sum(runs.values())

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    acc, by_seed = defaultdict(list), {}
    for r in rows:
        acc[(r["selection"], r["method"], r["task"])].append(float(r["accuracy"]))
        by_seed[(r["selection"], r["method"], r["task"], int(r["seed"]))] = float(r["accuracy"])

    def average(selection: str, method: str, over: list[int]) -> float | None:
        """The mean over held-out domains of the mean over the seeds ``over`` (None when one is missing)."""
        per_task = [[by_seed.get((selection, method, t, s)) for s in over] for t in tasks]
        if not over or any(v is None for vs in per_task for v in vs):
            return None
        return statistics.mean(statistics.mean(vs) for vs in per_task)

    seeds = sorted({int(r["seed"]) for r in rows})
    # the seeds behind each method's cells: a column of its own when methods were run with different seeds
    by_method = {m: sorted({int(r["seed"]) for r in rows if r["method"] == m}) for m in methods}
    uneven = len({tuple(v) for v in by_method.values()}) > 1
    title = f"# {suite}" + (" (QUICK SMOKE TEST: not results)" if quick else "")
    shown = "Command" if len(commands) == 1 else "Commands (each resuming the previous)"
    shown += ": " + ", ".join(f"`{c}`" for c in commands) + "  "
    lines = [title, "", shown, f"Seeds: {', '.join(map(str, seeds))}; total time "
             f"{seconds / 60:.1f} min (training and scoring); machine: {machine()['processor']}, "
             f"{machine()['cpus']} CPUs; versions: "
             f"{', '.join(f'{k} {v}' for k, v in versions().items())}.", "",
             "Accuracy (%) on the held-out domain (the column), trained on the others, mean over seeds; "
             "`training-domain`: picked on 20% of each training domain; `leave-one-domain-out`: picked "
             "by the mean accuracy on each training domain left out in turn; `oracle`: picked on the "
             "held-out domain's labels (a ceiling, not a result).", *notes, ""]  # fmt: skip
    for selection in SELECTIONS:
        if not any(r["selection"] == selection for r in rows):
            continue
        lines += [f"## {selection}", "", "| method | average | " + " | ".join(tasks) + " |"
                  + (" seeds |" if uneven else ""), "|---|---|" + "---|" * (len(tasks) + uneven)]  # fmt: skip
        averages = {}
        for m in methods:
            means = [
                statistics.mean(acc[(selection, m, t)]) if acc.get((selection, m, t)) else None for t in tasks
            ]
            done = [v for v in means if v is not None]
            avg = statistics.mean(done) if len(done) == len(tasks) else None
            averages[m] = avg
            cells = ["" if v is None else f"{v:.2f}" for v in means]
            lines.append(
                f"| {m} | {'(incomplete)' if avg is None else f'{avg:.2f}'} | "
                + " | ".join(cells)
                + " |"
                + (f" {' '.join(map(str, by_method[m]))} |" if uneven else "")
            )
        if "erm" in methods:
            better = []  # each method against ERM on the seeds both ran
            for m in methods:
                common = sorted(set(by_method[m]) & set(by_method["erm"]))
                a, erm = average(selection, m, common), average(selection, "erm", common)
                if m != "erm" and a is not None and erm is not None and a > erm:
                    better.append(f"{m} (+{a - erm:.2f}" + (f", seeds {' '.join(map(str, common))})" if uneven
                                                             else ")"))  # fmt: skip
            lines += ["", f"Beat ERM on average: {', '.join(better) if better else 'none'}."]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = OptionParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", choices=sorted(SUITES))
    p.add_argument("--methods", nargs="+", default=None, help="default: every method the data allows")
    p.add_argument("--held-out", nargs="+", default=None, help="domains to hold out (default: each)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--quick", action="store_true", help="a smoke test: few rows, epochs and candidates")
    p.add_argument("--max-per-domain", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the suite's)")
    p.add_argument("--resume", action="store_true", help="keep the rows already in --out and skip them")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--threads", type=int, default=2,
                   help="torch CPU threads (pinned: a convolution's last digits depend on it)")  # fmt: skip
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    check_list(p, "--seeds", args.seeds, minimum=0)
    check_list(p, "--methods", args.methods)
    check_list(p, "--held-out", args.held_out)
    check_at_least(p, "--epochs", args.epochs)
    check_at_least(p, "--max-per-domain", args.max_per_domain)
    import torch

    torch.set_num_threads(args.threads)

    from transferkit import registry
    from transferkit.datasets import load_dataset
    from transferkit.dg.protocol import dg_inputs, leave_one_domain_out
    from transferkit.experiment import grid

    cfg = SUITES[args.suite]
    command = "python benchmarks/dg.py " + " ".join(
        a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"
    )
    if args.quick and not args.out:  # a smoke test never replaces the committed results
        p.error("--quick is a smoke test, not results: name a scratch folder with --out (e.g. /tmp/dg-quick)")
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / args.suite
    from transferkit.errors import TransferkitError

    for m in args.methods or METHODS:
        try:
            entry = registry.entry("method", m)
        except TransferkitError as exc:
            p.error(str(exc))
        if entry.family != "domain-generalization":
            p.error(
                f"--methods: {m} is not a domain generalization method (DG methods: {', '.join(METHODS)})"
            )
    settings = dict(cfg["settings"])
    lodo_epochs = cfg["lodo_epochs"]
    seeds = args.seeds or ([0, 1, 2] if not args.quick else QUICK["seeds"])
    max_rows = args.max_per_domain or (QUICK["max_per_domain"] if args.quick else None)
    if args.quick:
        settings["epochs"], lodo_epochs = QUICK["epochs"], QUICK["lodo_epochs"]
    if args.epochs:
        settings["epochs"] = args.epochs
        lodo_epochs = min(lodo_epochs or args.epochs, args.epochs)
    setting = _setting(settings, lodo_epochs, max_rows)
    refuse_overwrite(p, out, args.resume)
    if args.resume and _read(out / "results.csv"):
        recorded, was_quick = _recorded(out)
        if (recorded is not None and recorded != setting) or was_quick != args.quick:
            p.error(
                f"{out} holds rows made with {recorded or 'other settings'}"
                + (" (--quick)" if was_quick else "")
                + f", this run makes them with {setting}"
                + (" (--quick)" if args.quick else "")
                + ": the same settings to resume, or another --out"
            )
    dataset = load_dataset(cfg["dataset"])
    image_only = [
        m
        for m in args.methods or METHODS
        if getattr(registry.entry("method", m).load(), "needs_images", False)
    ]
    if dataset.modality != "image" and image_only:
        if args.methods:
            p.error(f"{', '.join(image_only)} filter(s) images; {args.suite}'s rows are not images")
        print(f"{', '.join(image_only)}: images only, not run on {args.suite}", flush=True)
    methods = [m for m in args.methods or METHODS if dataset.modality == "image" or m not in image_only]
    held_out = args.held_out or dataset.domains
    unknown = [d for d in held_out if d not in dataset.domains]
    if unknown:
        p.error(f"--held-out: {args.suite} has no domain '{unknown[0]}' (its domains: "
                f"{', '.join(dataset.domains)})")  # fmt: skip
    domains = dg_inputs(dataset, max_per_domain=max_rows)
    rows = _read(out / "results.csv") if args.resume else []
    candidates = _read(out / "candidates.csv") if args.resume else []
    done = {(r["task"], r["method"], int(r["seed"])) for r in rows}
    commands_file = out / "commands.txt"
    commands = commands_file.read_text().splitlines() if args.resume and commands_file.exists() else []
    if command not in commands:  # the same command resumed is one command
        commands.append(command)
    notes = [f"{setting}; the latest command ran with {args.threads} torch threads."]
    if len(dataset.domains) == 3:
        notes.append(
            "With three domains each leave-one-domain-out fold trains on one domain, where the "
            "cross-domain penalties vanish: that rule cannot tell their weights apart (ties go to the "
            "first candidate of the grid)."
        )
    started = time.perf_counter()
    for seed in seeds:
        for h in held_out:
            for m in methods:
                if (h, m, seed) in done:
                    continue
                own = {} if args.quick else registry.entry("method", m).search_space
                cands = grid({**own, **BASE_SPACE})
                res = leave_one_domain_out(
                    domains, h, m, n_classes=len(dataset.classes), candidates=cands, settings=settings,
                    seed=seed, lodo_epochs=lodo_epochs, suite=args.suite, preprocess=cfg["preprocess"],
                    progress=print if args.progress else None,
                )  # fmt: skip
                rows += res.rows
                for c in res.candidates:
                    candidates.append({
                        "task": h, "method": m, "seed": seed, "params": json.dumps(c.params, sort_keys=True),
                        "val_accuracy": _r(c.val_accuracy), "lodo_accuracy": _r(c.lodo_accuracy),
                        "lodo_folds": json.dumps({k: _r(v) for k, v in c.lodo_folds.items()}),
                        "heldout_accuracy": _r(c.heldout_accuracy), "seconds": round(c.seconds, 2),
                        "lodo_seconds": round(c.lodo_seconds, 2), "failed": c.failed,
                    })  # fmt: skip
                accs = "  ".join(f"{r['selection']} {r['accuracy']:.2f}" for r in res.rows)
                print(f"seed {seed} held-out {h:12s} {m:9s} {accs}", flush=True)
                atomic_write_text(out / "results.csv", _csv(rows, COLUMNS))
                atomic_write_text(out / "candidates.csv", _csv(candidates, CANDIDATE_COLUMNS))
                atomic_write_text(commands_file, "\n".join(commands) + "\n")
                text = summary(rows, suite=args.suite, commands=commands, notes=notes, quick=args.quick)
                atomic_write_text(out / "summary.md", text)
    if rows:  # also when every run was already there (results merged from several --out folders)
        atomic_write_text(commands_file, "\n".join(commands) + "\n")
        text = summary(rows, suite=args.suite, commands=commands, notes=notes, quick=args.quick)
        atomic_write_text(out / "summary.md", text)
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
