"""Multi-task learning on real data: one shared model for two tasks against one model per task.

``amazon``: all 8000 Amazon reviews as all-MiniLM-L6-v2 sentence embeddings (frozen, cached); task
``sentiment`` (negative / positive) and task ``category`` (books / dvd / electronics / kitchen, the
review's domain). MLP trunk (384 -> 256, dropout 0.1), Adam.

``digits``: ``--per-domain`` images drawn from each of MNIST, USPS and MNIST-M (USPS has only 2007,
hence 2000 by default); task ``digit`` (10 classes) and task ``source`` (which data set). LeNet
trunk, SGD with momentum.

Both: one fixed 80/20 split, stratified on the pair of labels (split seed 0); the training seeds vary.
Methods: ``single`` (one network per task: same trunk, same epochs, one head each), and one shared
network with ``static`` equal weights, ``uncertainty`` weighting (Kendall et al. 2018) or
``pcgrad`` (Yu et al. 2020), from :mod:`transferkit.multitask`. Few epochs, to keep the whole run
to a few CPU minutes; the numbers are for comparing the schemes, not the best each task can reach.

Run:  OMP_NUM_THREADS=1 python benchmarks/multitask.py [--suites amazon digits] [--seeds 0 1 2]
      [--digits-seeds 0 1] [--epochs-amazon 20] [--epochs-digits 6] [--out DIR]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import check_at_least, check_list, refuse_changed_defaults, write_csv

from transferkit.cli import OptionParser
from transferkit.experiment import machine, versions
from transferkit.io import atomic_write_text
from transferkit.multitask import evaluate, fit_multitask

COLUMNS = ["suite", "task", "method", "seed", "accuracy", "seconds", "epochs", "train", "test", "params"]
METHODS = ("single", "static", "uncertainty", "pcgrad")


def _split(targets: dict[str, np.ndarray], seed: int = 0, test_size: float = 0.2):
    from sklearn.model_selection import train_test_split

    a, b = targets.values()
    strata = a * (int(b.max()) + 1) + b
    return train_test_split(np.arange(len(a)), test_size=test_size, stratify=strata, random_state=seed)


def amazon_data(args):
    from transferkit.datasets import load_dataset
    from transferkit.features import cache_dir, embed_texts

    ds = load_dataset("amazon-reviews")
    # one call per domain, as benchmarks/fewshot.py does, so both share the embedding cache
    Z = [
        embed_texts(ds.X[d], cache_dir=cache_dir() / "embeddings", progress=args.progress) for d in ds.domains
    ]
    X = np.vstack(Z).astype(np.float32)
    targets = {
        "sentiment": np.concatenate([np.asarray(ds.labels(d)) for d in ds.domains]),
        "category": np.concatenate([np.full(len(z), i) for i, z in enumerate(Z)]),
    }
    fit = dict(trunk="mlp", trunk_kwargs={"hidden": (256,), "dropout": 0.1}, optimizer="adam", lr=1e-3,
               weight_decay=0.0, batch_size=64, epochs=args.epochs_amazon)  # fmt: skip
    return X, targets, fit


def digits_data(args):
    from transferkit.datasets import load_dataset

    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    X, digit, source = [], [], []
    for i, d in enumerate(ds.domains):
        Xd, yd = np.asarray(ds.X[d]), np.asarray(ds.labels(d))
        rows = np.sort(rng.choice(len(Xd), min(args.per_domain, len(Xd)), replace=False))
        X.append(Xd[rows].astype(np.float32))
        digit.append(yd[rows])
        source.append(np.full(len(rows), i))
    fit = dict(trunk="lenet", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64,
               epochs=args.epochs_digits)  # fmt: skip
    return np.concatenate(X), {"digit": np.concatenate(digit), "source": np.concatenate(source)}, fit


SUITES = {"amazon": amazon_data, "digits": digits_data}


def run_suite(suite: str, args) -> list[dict]:
    X, targets, fit = SUITES[suite](args)
    train, test = _split(targets)
    tr = {t: y[train] for t, y in targets.items()}
    te = {t: y[test] for t, y in targets.items()}
    base = {"suite": suite, "epochs": fit["epochs"], "train": len(train), "test": len(test)}
    rows = []
    for seed in args.digits_seeds if suite == "digits" else args.seeds:
        for method in METHODS:
            jobs = [{t: tr[t]} for t in tr] if method == "single" else [tr]
            weighting = "static" if method == "single" else method
            acc, secs, params = {}, 0.0, {k: v for k, v in fit.items() if k != "epochs"}
            for job in jobs:
                started = time.perf_counter()
                model, hist = fit_multitask(X[train], job, weighting=weighting, seed=seed, **fit)
                secs += time.perf_counter() - started
                acc.update(evaluate(model, X[test], {t: te[t] for t in job}))
                learned = {
                    k[len("weight_") :]: round(v, 3) for k, v in hist[-1].items() if k.startswith("weight_")
                }
                if method == "uncertainty":
                    params["final_weights"] = learned
            p = json.dumps(params)
            for t in tr:
                rows.append({**base, "task": t, "method": method, "seed": seed,
                             "accuracy": round(100 * acc[t], 2), "seconds": "", "params": p})  # fmt: skip
            rows.append({**base, "task": "mean", "method": method, "seed": seed,
                         "accuracy": round(100 * float(np.mean(list(acc.values()))), 2),
                         "seconds": round(secs, 1), "params": p})  # fmt: skip
            cells = "  ".join(f"{t} {100 * a:6.2f}" for t, a in acc.items())
            print(f"{suite:7s} seed {seed} {method:12s} {cells}  ({secs:.1f} s)", flush=True)
    return rows


def _table(rows: list[dict], suite: str) -> list[str]:
    tasks = list(dict.fromkeys(r["task"] for r in rows if r["suite"] == suite))
    lines = ["| method | " + " | ".join(tasks) + " | seconds |", "|---|" + "---|" * (len(tasks) + 1)]
    for m in METHODS:
        sel = [r for r in rows if r["suite"] == suite and r["method"] == m]
        cells = []
        for t in tasks:
            a = np.array([r["accuracy"] for r in sel if r["task"] == t], float)
            cells.append(f"{a.mean():.2f} ± {a.std():.2f}" if len(a) > 1 else f"{a.mean():.2f}")
        s = np.mean([r["seconds"] for r in sel if r["task"] == "mean"])
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {s:.1f} |")
    weights = [json.loads(r["params"]).get("final_weights") for r in rows
               if r["suite"] == suite and r["method"] == "uncertainty" and r["task"] == "mean"]  # fmt: skip
    if weights:
        lines += ["", "Learned uncertainty weights exp(-s_i) at the end, per seed: "
                  + "; ".join(json.dumps(w) for w in weights) + "."]  # fmt: skip
    return lines


def main(argv=None) -> int:
    ap = OptionParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", nargs="+", choices=sorted(SUITES), default=["amazon", "digits"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (amazon)")
    ap.add_argument("--digits-seeds", nargs="+", type=int, default=[0, 1], help="training seeds (digits)")
    ap.add_argument("--epochs-amazon", type=int, default=20)
    ap.add_argument("--epochs-digits", type=int, default=6)
    ap.add_argument("--per-domain", type=int, default=2000)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/multitask")
    args = ap.parse_args(argv)
    check_list(ap, "--suites", args.suites)
    check_list(ap, "--seeds", args.seeds, minimum=0)
    check_list(ap, "--digits-seeds", args.digits_seeds, minimum=0)
    for option in ("epochs_amazon", "epochs_digits", "per_domain"):
        check_at_least(ap, "--" + option.replace("_", "-"), getattr(args, option))
    refuse_changed_defaults(ap, args, ignore=("progress",))
    start = time.perf_counter()
    rows = [r for suite in args.suites for r in run_suite(suite, args)]
    total = time.perf_counter() - start
    out = Path(args.out)
    write_csv(out / "results.csv", rows, COLUMNS)
    command = (
        f"OMP_NUM_THREADS=1 python benchmarks/multitask.py --suites {' '.join(args.suites)} "
        f"--seeds {' '.join(map(str, args.seeds))} --digits-seeds {' '.join(map(str, args.digits_seeds))} "
        f"--epochs-amazon {args.epochs_amazon} "
        f"--epochs-digits {args.epochs_digits} --per-domain {args.per_domain}"
    )
    lines = [
        "# Multi-task learning: shared trunk vs one model per task",
        "",
        f"Command: `{command}`  ",
        f"Training seeds: amazon {', '.join(map(str, args.seeds))}; digits "
        f"{', '.join(map(str, args.digits_seeds))} (the 80/20 split is fixed: split seed 0; the digits "
        "subsample: seed 0).  ",
        f"{', '.join(f'{k} {v}' for k, v in versions().items())}; {machine()['cpus']} CPUs; "
        f"total {total:.0f} s (sentence embeddings cached beforehand).",
        "",
        "Test accuracy (%), mean ± std (ddof 0) over the seeds; `seconds`: training time of the method (for "
        "`single` both networks). `single` trains one network per task with the same trunk and epochs. "
        "Few epochs on purpose (CPU budget): the numbers compare the schemes, they are not each task's best.",
    ]
    titles = {
        "amazon": "Amazon reviews (MiniLM embeddings, MLP trunk): sentiment + product category",
        "digits": f"Digits ({args.per_domain} per data set, LeNet trunk): digit class + source data set",
    }
    for suite in args.suites:
        r0 = next(r for r in rows if r["suite"] == suite)
        lines += ["", f"## {titles[suite]}", "", f"{r0['train']} train / {r0['test']} test rows, "
                  f"{r0['epochs']} epochs; settings: `{r0['params']}`", ""]  # fmt: skip
        lines += _table(rows, suite)
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
