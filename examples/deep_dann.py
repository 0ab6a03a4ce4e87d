"""A deep domain adaptation method, DANN, trained by the one Trainer, against deep source-only.

Every deep method in transferkit is a *loss* (a :class:`~transferkit.deep.base.DeepMethod`) trained
by one trainer (:class:`~transferkit.nn.trainer.Trainer`), which owns the loop: batches of source
and target rows, the optimizer, the schedule, seeding, the history. Changing the method changes
the loss and nothing else, so two methods trained from the same seed differ only in what they
optimize:

* deep source-only: cross-entropy on the labelled source rows;
* DANN (Ganin et al. 2016): the same cross-entropy, plus a domain discriminator on the network's
  features whose gradient is reversed, so the features learn to hide which domain a row came from.

The data are Office-Caltech10's caltech -> amazon SURF vectors (embedded, 800-d), with the data
set's standard preprocessing; the network is a one-hidden-layer MLP (800 -> 256 -> 10). To stay
short, both train for 200 steps (batches of 64 source and 64 target rows, SGD at lr 0.01) and
DANN's discriminator has 256 hidden units (the paper's, and the default, 1024). The two accuracies
printed are the ones of

    transferkit run --method deep-source-only --set steps=200
    transferkit run --method dann --set steps=200 --set disc_hidden=256

One seed on one pair says little about a method: on this pair DANN gains about a point here, and
over the 12 Office-Caltech10 tasks (with at least 500 steps) it averages 49.02 against source-only's
48.30 (see the README's benchmark tables).

Run from the repository root: ``python examples/deep_dann.py`` (about 9 s on a CPU).
"""

from __future__ import annotations

import time

import numpy as np

from transferkit.datasets import load_dataset
from transferkit.deep.dann import DANN
from transferkit.deep.source_only import SourceOnly
from transferkit.nn.model import build_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
from transferkit.preprocessing import RowNormalize, Standardize

SEED = 0
STEPS = 200


def train(method, X, y, sample_domain, n_classes: int) -> Trainer:
    """Build the network from a fixed seed and train it with ``method``'s loss."""
    seed_everything(SEED)  # before building the network: both methods start from the same weights
    network = build_network("mlp", n_classes, in_shape=X.shape[1:], hidden=(256,))
    config = TrainerConfig(steps=STEPS, batch_size=64, lr=0.01, seed=SEED)
    trainer = Trainer(network, method, config)
    trainer.fit(X, y, sample_domain)  # y is -1 on every target row: the loss cannot read them
    return trainer


def main() -> None:
    ds = load_dataset("office-caltech10")
    arr = ds.to_arrays(sources=["caltech"], targets=["amazon"])  # target labels are -1
    X = arr.X
    for step in (RowNormalize("l1"), Standardize()):  # the data set's standard steps, on all rows
        X = step.fit_transform(X, arr.y, arr.sample_domain)
    X = X.astype(np.float32)  # what the network takes

    trained = {}
    for name, method in {"deep-source-only": SourceOnly(), "dann": DANN(weight=1.0, disc_hidden=256)}.items():
        start = time.perf_counter()
        trainer = train(method, X, arr.y, arr.sample_domain, len(ds.classes))
        last = trainer.history[-1]  # one record per epoch: losses averaged over its steps
        losses = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.endswith(("_ce", "_bce")))
        print(
            f"{name:<17} {last['step']} steps in {time.perf_counter() - start:5.1f} s; last epoch: {losses}"
        )
        trained[name] = trainer

    # the target labels, read only now, to score both networks on the target rows
    y_target = ds.labels("amazon")
    print()
    print(f"{'method':<17} target accuracy %  (caltech -> amazon, seed {SEED})")
    for name, trainer in trained.items():
        pred = trainer.predict(X[arr.target])
        print(f"{name:<17} {100 * np.mean(pred == y_target):.2f}")


if __name__ == "__main__":
    main()
