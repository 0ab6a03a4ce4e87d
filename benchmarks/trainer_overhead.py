"""How much throughput the one trainer costs against a bare PyTorch loop, in the same run.

Both train the same LeNet on the same MNIST batches (source-only cross-entropy, SGD with momentum,
batch 64), from the same initial weights; the bare loop is the textbook ``for x, y in batches:
zero_grad, forward, backward, step``. They run alternately ``--rounds`` times and the median
throughput (images per second) of each is compared. The trainer does more per step: a loader with a
target stream, a finiteness check of the loss, a scheduler step, per-epoch bookkeeping.

    python benchmarks/trainer_overhead.py            # ends with: throughput ratio trainer/bare: R

Needs the digits data (``$TRANSFERKIT_DATA``); with ``--synthetic`` it uses random images instead.
The second part times a full MNIST -> USPS source-only run (10 epochs, the run's defaults).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import check_at_least, refuse_changed_defaults

from transferkit.cli import OptionParser
from transferkit.deep.source_only import SourceOnly
from transferkit.nn.model import build_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything

RESULTS = Path(__file__).parent / "results" / "trainer-overhead"


def load(synthetic: bool, n: int):
    if synthetic:
        rng = np.random.default_rng(0)
        X = rng.random((2 * n, 3, 32, 32), dtype=np.float32)
        return X[:n], rng.integers(0, 10, n), X[n:]
    from transferkit.datasets import load_dataset

    ds = load_dataset("digits")
    arrays = ds.to_arrays(["mnist"], ["usps"])
    src = arrays.sample_domain >= 0
    Xs, ys = np.asarray(arrays.X[src], np.float32)[:n], np.asarray(arrays.y[src])[:n]
    return Xs, ys, np.asarray(arrays.X[~src], np.float32)


def bare(Xs, ys, epochs, batch, lr, seed):
    seed_everything(seed)
    model = build_network("lenet", 10, in_shape=(3, 32, 32))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    X, y = torch.as_tensor(Xs), torch.as_tensor(ys, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=g)
        for i in range(len(X) // batch):
            idx = order[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (len(X) // batch) * batch * epochs / (time.perf_counter() - start)


def trainer(Xs, ys, Xt, epochs, batch, lr, seed):
    seed_everything(seed)
    model = build_network("lenet", 10, in_shape=(3, 32, 32))
    cfg = TrainerConfig(epochs=epochs, batch_size=batch, lr=lr, seed=seed, device="cpu")
    X = np.concatenate([Xs, Xt])
    y = np.r_[ys, -np.ones(len(Xt), np.int64)]
    sd = np.r_[np.zeros(len(Xs), np.int64), -np.ones(len(Xt), np.int64)]
    start = time.perf_counter()
    Trainer(model, SourceOnly(), cfg).fit(X, y, sd)
    return (len(Xs) // batch) * batch * epochs / (time.perf_counter() - start)


def full_run() -> dict:
    from transferkit.experiment import RunSpec, run

    spec = RunSpec(dataset="digits", sources=("mnist",), targets=("usps",), method="deep-source-only")
    start = time.perf_counter()
    rec = run(spec, command="python benchmarks/trainer_overhead.py")
    return {"accuracy": round(rec["accuracy"], 2), "seconds": round(time.perf_counter() - start, 1),
            "epochs": rec["config"]["trainer"]["epochs"]}  # fmt: skip


def main(argv=None) -> int:
    p = OptionParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--no-full-run", action="store_true")
    p.add_argument("--out", default=str(RESULTS), help="folder for result.json")
    args = p.parse_args(argv)
    for option in ("rounds", "epochs", "rows"):
        check_at_least(p, "--" + option, getattr(args, option))
    refuse_changed_defaults(p, args)  # --synthetic or fewer rounds: never over the committed result
    Xs, ys, Xt = load(args.synthetic, args.rows)
    bare(Xs[:256], ys[:256], 1, 64, 0.01, 0)  # warm-up: first-call allocations
    rates = {"bare": [], "trainer": []}
    for r in range(args.rounds):
        rates["bare"].append(bare(Xs, ys, args.epochs, 64, 0.01, r))
        rates["trainer"].append(trainer(Xs, ys, Xt, args.epochs, 64, 0.01, r))
        print(f"round {r + 1}: bare {rates['bare'][-1]:.0f} img/s, trainer {rates['trainer'][-1]:.0f} img/s",
              flush=True)  # fmt: skip
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["trainer"] / med["bare"]
    result = {"images_per_second": med, "rounds": rates, "ratio": round(ratio, 4),
              "rows": len(Xs), "epochs_per_round": args.epochs, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "command": "python " + " ".join(sys.argv)}  # fmt: skip
    if not args.no_full_run and not args.synthetic:
        result["mnist_to_usps_source_only"] = full_run()
        print(f"full MNIST -> USPS source-only run: {result['mnist_to_usps_source_only']}")
    from transferkit.io import atomic_write_text

    atomic_write_text(Path(args.out) / "result.json", json.dumps(result, indent=2) + "\n")
    print(f"throughput ratio trainer/bare: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
