"""Few-shot suites: N-way K-shot episodes on a target domain, on top of a pretrained or source model.

``digits-fewshot``: 5-way K-shot on MNIST-M and on USPS with two frozen backbones: a LeNet trained
on MNIST (the source model; cached under ``$TRANSFERKIT_CACHE/models``) and EfficientNet-Lite0 with
its ImageNet weights (digits resized to 64x64 inside the trunk). SimpleShot centres on the mean
MNIST feature.

``amazon-reviews-fewshot``: 2-way (positive / negative) K-shot sentiment on each Amazon domain with
all-MiniLM-L6-v2 sentence embeddings (frozen). SimpleShot and the transductive variant centre the
features on the mean embedding of the *other three* domains (the labelled "base" data).

Every row is one (target, classifier, K) with the mean accuracy over the episodes, its 95% confidence
interval (``ci95``) and the time per 1000 episodes. Results use the foundation's columns plus ``ci95``.

Run:  python benchmarks/fewshot.py amazon-reviews-fewshot [--episodes 600] [--out DIR]
      python benchmarks/fewshot.py digits-fewshot [--episodes 600] [--out DIR]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import check_at_least, refuse_changed_defaults, write_csv

from transferkit.cli import OptionParser
from transferkit.experiment import machine, versions
from transferkit.fewshot import CLASSIFIERS, evaluate_episodes
from transferkit.io import atomic_write_text

COLUMNS = [
    "suite", "task", "source", "target", "method", "params", "estimator", "preprocess", "seed",
    "selection", "target_labels", "accuracy", "ci95", "seconds",
]  # fmt: skip


def amazon(episodes: int, shots=(1, 5), seed: int = 0) -> list[dict]:
    from transferkit.datasets import load_dataset
    from transferkit.features import FEATURES_NAME, MINILM, cache_dir, embed_texts

    ds = load_dataset("amazon-reviews")
    Z = {d: embed_texts(ds.X[d], cache_dir=cache_dir() / "embeddings", progress=True) for d in ds.domains}
    rows = []
    for target in ds.domains:
        base = np.vstack([Z[d] for d in ds.domains if d != target])
        for k in shots:
            for name in sorted(CLASSIFIERS):
                res = evaluate_episodes(
                    Z[target], ds.labels(target), name, n_way=2, k_shot=k, n_query=15,
                    n_episodes=episodes, center=base.mean(0), random_state=seed,
                )  # fmt: skip
                rows.append({
                    "suite": "amazon-reviews-fewshot", "task": f"{target} 2-way {k}-shot",
                    "source": f"pretrained:{MINILM}", "target": target, "method": name,
                    "params": json.dumps({"n_way": 2, "k_shot": k, "n_query": 15, "episodes": episodes}),
                    "estimator": "", "preprocess": FEATURES_NAME, "seed": seed,
                    "selection": "fixed-defaults", "target_labels": k,
                    "accuracy": round(res["accuracy"], 2), "ci95": round(res["ci95"], 2),
                    "seconds": round(res["seconds_per_1000_episodes"], 3),
                })  # fmt: skip
                print(
                    f"{target:12s} {k}-shot {name:13s} {res['accuracy']:6.2f} ± {res['ci95']:.2f}", flush=True
                )
    return rows


def _mnist_lenet_features(ds, domains, seed: int):
    """Features (500-d) of an MNIST-trained LeNet (``deep-source-only``, the run's defaults), cached."""
    from transferkit.experiment import RunSpec, run
    from transferkit.features import cache_dir
    from transferkit.nn.saved_model import load_network
    from transferkit.nn.trainer import Trainer, TrainerConfig

    folder = cache_dir() / "models" / f"lenet-mnist-seed{seed}"
    if not (folder / "model" / "network.json").exists():
        spec = RunSpec(dataset="digits", sources=("mnist",), targets=("usps",), method="deep-source-only",
                       seed=seed)  # fmt: skip
        run(spec, dataset=ds, command="python benchmarks/fewshot.py digits-fewshot", artifacts=folder)
    trainer = Trainer(load_network(folder / "model"), None, TrainerConfig(device="cpu"))
    return {d: trainer.features(np.asarray(ds.X[d], np.float32)) for d in domains}


def _efficientnet_features(ds, domains, input_size: int = 64):
    """Global-pooled features (1280-d) of EfficientNet-Lite0 with its ImageNet weights, frozen; the
    32x32 digits are resized to ``input_size`` inside the trunk."""
    from transferkit.nn.backbones import build_backbone, extract_features

    trunk, _ = build_backbone("efficientnet-lite0", (3, 32, 32), pretrained=True, input_size=input_size)
    return {d: extract_features(trunk, np.asarray(ds.X[d], np.float32), batch_size=128) for d in domains}


def digits(episodes: int, shots=(1, 5), seed: int = 0) -> list[dict]:
    """5-way K-shot on MNIST-M and USPS, with an MNIST-trained LeNet and with EfficientNet-Lite0."""
    from transferkit.datasets import load_dataset

    ds = load_dataset("digits")
    targets = ["mnist_m", "usps"]
    backbones = {"lenet-mnist": lambda: _mnist_lenet_features(ds, ["mnist", *targets], seed)}
    try:
        import transferkit.nn.backbones  # noqa: F401

        backbones["efficientnet-lite0-imagenet"] = lambda: _efficientnet_features(ds, ["mnist", *targets])
    except ImportError:
        print("EfficientNet-Lite0 backbone not available: its rows are skipped", flush=True)
    rows = []
    for backbone, make in backbones.items():
        started = time.perf_counter()
        Z = make()
        print(f"{backbone}: features in {time.perf_counter() - started:.0f} s", flush=True)
        center = Z["mnist"].mean(0)  # the base (source) data's mean feature, for SimpleShot
        for target in targets:
            for k in shots:
                for name in sorted(CLASSIFIERS):
                    res = evaluate_episodes(
                        Z[target], ds.labels(target), name, n_way=5, k_shot=k, n_query=15,
                        n_episodes=episodes, center=center, random_state=seed,
                    )  # fmt: skip
                    rows.append({
                        "suite": "digits-fewshot", "task": f"{target} 5-way {k}-shot ({backbone})",
                        "source": "mnist" if backbone == "lenet-mnist" else "pretrained:imagenet",
                        "target": target, "method": name,
                        "params": json.dumps({"n_way": 5, "k_shot": k, "n_query": 15, "episodes": episodes,
                                              "backbone": backbone}),
                        "estimator": "", "preprocess": backbone, "seed": seed, "selection": "fixed-defaults",
                        "target_labels": k, "accuracy": round(res["accuracy"], 2),
                        "ci95": round(res["ci95"], 2), "seconds": round(res["seconds_per_1000_episodes"], 3),
                    })  # fmt: skip
                    print(f"{backbone:28s} {target:8s} {k}-shot {name:13s} {res['accuracy']:6.2f} ± "
                          f"{res['ci95']:.2f}", flush=True)  # fmt: skip
    return rows


SUITES = {"amazon-reviews-fewshot": amazon, "digits-fewshot": digits}


def main(argv=None) -> int:
    ap = OptionParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", choices=sorted(SUITES))
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="default: benchmarks/results/<suite>")
    args = ap.parse_args(argv)
    check_at_least(ap, "--episodes", args.episodes)
    check_at_least(ap, "--seed", args.seed, 0)
    args.out = args.out or f"benchmarks/results/{args.suite}"
    refuse_changed_defaults(ap, args, ignore=("suite",))
    start = time.perf_counter()
    rows = SUITES[args.suite](args.episodes, seed=args.seed)
    total = time.perf_counter() - start
    out = Path(args.out)
    write_csv(out / "results.csv", rows, COLUMNS)
    lines = [
        f"# {args.suite}",
        "",
        f"Command: `python benchmarks/fewshot.py {args.suite} --episodes {args.episodes} "
        f"--seed {args.seed}`  ",
        f"{', '.join(f'{k} {v}' for k, v in versions().items())}; {machine()['cpus']} CPUs; "
        f"total {total:.0f} s.",
        "",
        "Mean accuracy over episodes (%) ± 95% confidence interval; `seconds` in results.csv is the time "
        "per 1000 episodes (classification only, features precomputed).",
        "",
        "| task | " + " | ".join(sorted(CLASSIFIERS)) + " |",
        "|---|" + "---|" * len(CLASSIFIERS),
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        cells = {r["method"]: f"{r['accuracy']:.2f} ± {r['ci95']:.2f}" for r in rows if r["task"] == task}
        lines.append(f"| {task} | " + " | ".join(cells.get(m, "") for m in sorted(CLASSIFIERS)) + " |")
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
