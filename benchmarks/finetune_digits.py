"""When does each way of fine-tuning pay off? MNIST -> USPS and MNIST -> MNIST-M with k labels per class.

For each seed a LeNet is trained on MNIST (``deep-source-only``, the run's defaults) and saved. On
each target it is then fine-tuned with k = 1, 5, 10, 50 labelled target images per class (the rest
of the target is the test set) in three ways, all with one fixed recipe (SGD, lr 0.01, momentum 0.9,
300 steps of batch <= 64; nothing chosen by target accuracy):

* ``full``: every parameter updates;
* ``frozen-trunk``: linear probing, a new head on the fixed source features;
* ``l2-sp``: every parameter updates, pulled towards the source weights (alpha 0.1, beta 0.01,
  the L2-SP paper's values);

beside ``source-only`` (k = 0: the source model as it is) and ``scratch`` (the same recipe from a
random initialization: what the k labels give without the source). Three seeds by default.

    python benchmarks/finetune_digits.py [--seeds 0 1 2] [--shots 1 5 10 50] [--out DIR]

Results: ``results.csv`` (the foundation's columns, ``method`` = the strategy) and ``summary.md``
(mean ± std over seeds), written atomically after every row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import check_list, refuse_changed_defaults

from transferkit.cli import OptionParser
from transferkit.experiment import RunSpec, machine, run, versions
from transferkit.io import atomic_write_text

COLUMNS = [
    "suite", "task", "source", "target", "method", "params", "estimator", "preprocess", "seed",
    "selection", "target_labels", "accuracy", "seconds",
]  # fmt: skip
SUITE = "digits-finetune"
RECIPE = {"steps": 300, "lr": 0.01, "batch_size": 64}
STRATEGIES = {
    "full": {},
    "frozen-trunk": {"freeze": "trunk"},
    "l2-sp": {"reg": "l2-sp", "reg_alpha": "0.1", "reg_beta": "0.01"},
    "scratch": None,  # no init: the same recipe from random weights
}


def write(rows: list[dict], out: Path, command: str, seconds: float) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())
    table = defaultdict(list)
    for r in rows:
        table[(r["task"], r["method"], int(r["target_labels"]))].append(float(r["accuracy"]))
    tasks = sorted({t for t, _, _ in table})
    shots = sorted({k for _, _, k in table if k > 0})
    lines = [f"# {SUITE}: fine-tuning a MNIST LeNet with k labelled target images per class", "",
             f"Command: `{command}`", "",
             f"Recipe (fixed, not tuned on any target): {json.dumps(RECIPE)}; seeds: "
             f"{sorted({int(r['seed']) for r in rows})}; total time {seconds / 60:.1f} min.", "",
             "Accuracy (%) on the unrevealed target images, mean ± std over seeds.", ""]  # fmt: skip
    for task in tasks:
        src = table.get((task, "source-only", 0), [])
        lines += [f"## {task}", "", f"source-only (k = 0): {_fmt(src)}", "",
                  "| strategy | " + " | ".join(f"k = {k}" for k in shots) + " |",
                  "|---|" + "---|" * len(shots)]  # fmt: skip
        for m in ("full", "frozen-trunk", "l2-sp", "scratch"):
            lines.append(f"| {m} | " + " | ".join(_fmt(table.get((task, m, k), [])) for k in shots) + " |")
        lines.append("")
    lines += ["Machine: " + json.dumps(machine()), "", "Versions: " + json.dumps(versions()), ""]
    atomic_write_text(out / "summary.md", "\n".join(lines))


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def main(argv=None) -> int:
    p = OptionParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10, 50])
    p.add_argument("--targets", nargs="+", default=["usps", "mnist_m"])
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / SUITE))
    args = p.parse_args(argv)
    check_list(p, "--seeds", args.seeds, minimum=0)
    check_list(p, "--shots", args.shots, minimum=1)
    check_list(p, "--targets", args.targets)
    bad = [t for t in args.targets if t not in ("usps", "mnist_m")]
    if bad:
        p.error(f"--targets: the source is mnist; a target is usps or mnist_m, got {bad[0]}")
    refuse_changed_defaults(p, args)
    from transferkit.datasets import load_dataset

    threads = os.environ.get("OMP_NUM_THREADS")  # part of the command: torch's thread count moves digits
    prefix = [f"OMP_NUM_THREADS={threads}"] if threads else []
    command = " ".join([*prefix, "python benchmarks/finetune_digits.py", *sys.argv[1:]])
    out = Path(args.out)
    ds = load_dataset("digits")
    rows: list[dict] = []
    started = time.perf_counter()

    def record(spec: RunSpec, strategy: str, params: dict, rec: dict) -> None:
        rows.append({
            "suite": SUITE, "task": f"mnist->{spec.targets[0]}", "source": "mnist", "target": spec.targets[0],
            "method": strategy, "params": json.dumps(params, sort_keys=True), "estimator": "",
            "preprocess": "", "seed": spec.seed, "selection": "fixed-defaults",
            "target_labels": spec.target_labels, "accuracy": round(rec["accuracy"], 2),
            "seconds": round(rec["seconds"], 2),
        })  # fmt: skip
        print(f"seed {spec.seed} mnist->{spec.targets[0]:8s} k={spec.target_labels:<3d} {strategy:13s} "
              f"{rec['accuracy']:6.2f}  ({rec['seconds']:.1f} s)", flush=True)  # fmt: skip
        write(rows, out, command, time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            model_dir = Path(tmp) / f"seed{seed}"
            for i, target in enumerate(args.targets):
                spec = RunSpec(dataset="digits", sources=("mnist",), targets=(target,),
                               method="deep-source-only", seed=seed)  # fmt: skip
                if i == 0:  # the source model does not depend on the target: train it once per seed
                    rec = run(spec, dataset=ds, command=command, artifacts=model_dir)
                else:  # evaluate the saved source model on the next target (zero fine-tuning steps)
                    rec = _evaluate_saved(spec, ds, model_dir / "model", command)
                record(spec, "source-only", {}, rec)
                for k in args.shots:
                    for strategy, extra in STRATEGIES.items():
                        params = {**{k2: str(v) for k2, v in RECIPE.items()}, **(extra or {})}
                        if extra is not None:
                            params["init"] = str(model_dir / "model")
                        spec_k = RunSpec(dataset="digits", sources=("mnist",), targets=(target,),
                                         method="fine-tune", params=params, seed=seed,
                                         target_labels=k)  # fmt: skip
                        rec = run(spec_k, dataset=ds, command=command)
                        shown = {k2: v for k2, v in params.items() if k2 != "init"}
                        record(spec_k, strategy, shown, rec)
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min; results in {out}")
    return 0


def _evaluate_saved(spec: RunSpec, ds, model_dir: Path, command: str) -> dict:
    import numpy as np

    from transferkit.nn.saved_model import load_network
    from transferkit.nn.trainer import Trainer, TrainerConfig

    start = time.perf_counter()
    net = load_network(model_dir)
    trainer = Trainer(net, None, TrainerConfig(device="cpu"))
    X = np.asarray(ds.X[spec.targets[0]], dtype=np.float32)
    acc = 100.0 * float(np.mean(trainer.predict(X) == np.asarray(ds.labels(spec.targets[0]))))
    return {"accuracy": acc, "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    raise SystemExit(main())
