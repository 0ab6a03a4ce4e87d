"""Train a source model, save it, load it back, and fine-tune it on a few labelled target rows.

Parameter transfer in four steps, on Office-Caltech10 caltech -> amazon (SURF vectors, embedded):

1. train a network on the labelled source (deep source-only, the one Trainer);
2. reveal 3 labelled target rows per class (:func:`~transferkit.domains.few_shot_indices`: the
   labels a user would pay for); every other target row keeps its label hidden and is scored;
3. save the network with :func:`~transferkit.nn.saved_model.save_network`: ``model.safetensors``
   (weights) and ``network.json`` (how to rebuild it), read back by
   :func:`~transferkit.nn.saved_model.load_network` without unpickling anything;
4. fine-tune a freshly loaded copy with :class:`~transferkit.deep.fine_tune.FineTune`
   (cross-entropy on the revealed target rows) in two ways, both trainer settings
   (:class:`~transferkit.nn.trainer.TrainerConfig`):

   * ``freeze=("trunk",)``: linear probing, only the head learns, on the source model's features;
   * ``reg="l2-sp"``: every weight learns, pulled towards its source value (L2-SP, Li et al. 2018).

Accuracy is measured on the target rows whose labels were *not* revealed. The same numbers come
from the command line (``DIR`` a folder of your choice)::

    transferkit run --method deep-source-only --set steps=200 --out DIR
    transferkit run --method fine-tune --target-labels 3 --set init=DIR/model --set steps=100 \\
        --set freeze=trunk          # or: --set reg=l2-sp

Run from the repository root: ``python examples/finetune_saved_model.py`` (about 10 s).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from transferkit.datasets import load_dataset
from transferkit.deep.fine_tune import FineTune
from transferkit.deep.source_only import SourceOnly
from transferkit.domains import few_shot_indices
from transferkit.nn.model import build_network
from transferkit.nn.saved_model import load_network, save_network
from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything
from transferkit.preprocessing import RowNormalize, Standardize

SEED, LABELS_PER_CLASS = 0, 3


def main() -> None:
    ds = load_dataset("office-caltech10")
    arr = ds.to_arrays(sources=["caltech"], targets=["amazon"])  # target labels are -1
    X = arr.X
    for step in (RowNormalize("l1"), Standardize()):  # the data set's standard steps
        X = step.fit_transform(X, arr.y, arr.sample_domain)
    X = X.astype(np.float32)
    target_rows = np.flatnonzero(arr.target)
    y_target = ds.labels("amazon")  # read to reveal a few labels (step 2) and to score the rest

    # 1. the source model: an MLP trained on the labelled source rows
    seed_everything(SEED)
    network = build_network("mlp", len(ds.classes), in_shape=X.shape[1:], hidden=(256,))
    Trainer(network, SourceOnly(), TrainerConfig(steps=200, seed=SEED)).fit(X, arr.y, arr.sample_domain)

    # 2. a few labelled target rows: the only target labels any training below sees
    revealed = few_shot_indices(y_target, LABELS_PER_CLASS, random_state=SEED)
    y = arr.y.copy()
    y[target_rows[revealed]] = y_target[revealed]
    held_out = np.setdiff1d(np.arange(len(target_rows)), revealed)

    @torch.no_grad()
    def accuracy(net) -> float:
        """Accuracy % on the target rows whose labels were not revealed (the network's argmax)."""
        net.eval()  # dropout off
        pred = net(torch.as_tensor(X[target_rows[held_out]])).argmax(1).numpy()
        return 100 * float(np.mean(pred == y_target[held_out]))

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # 3. save: safetensors weights + a JSON description of the architecture
        spec = {"backbone": "mlp", "num_classes": len(ds.classes), "in_shape": list(X.shape[1:]),
                "options": {"hidden": [256]}, "classes": list(ds.classes)}  # fmt: skip
        folder = save_network(network, Path(tmp) / "source_model", spec)
        loaded = load_network(folder)
        same = all(
            torch.equal(a, b) for a, b in zip(network.state_dict().values(), loaded.state_dict().values())
        )
        print(f"saved the source model as {', '.join(sorted(p.name for p in folder.iterdir()))}; "
              f"loaded back with identical weights: {same}")  # fmt: skip
        results["source model, no fine-tuning"] = accuracy(loaded)

        # 4. fine-tune a fresh copy of the saved model in each way
        for name, settings in {
            "fine-tune, frozen trunk": {"freeze": ("trunk",)},  # linear probing: only the head learns
            "fine-tune, L2-SP": {"reg": "l2-sp"},  # all weights, pulled towards the source's
        }.items():
            seed_everything(SEED)
            model = load_network(folder)  # the saved weights, with their head (same classes)
            trainer = Trainer(model, FineTune(), TrainerConfig(steps=100, seed=SEED, **settings))
            trainer.fit(X, y, arr.sample_domain)  # an epoch is one pass over the revealed rows
            results[name] = accuracy(trainer.model)

    print(f"{len(revealed)} target labels revealed ({LABELS_PER_CLASS} per class); "
          f"accuracy on the other {len(held_out)} target rows:")  # fmt: skip
    for name, acc in results.items():
        print(f"{name:<30} {acc:.2f}")


if __name__ == "__main__":
    main()
