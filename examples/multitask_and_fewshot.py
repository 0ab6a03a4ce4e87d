"""Multi-task learning (one trunk, two heads) and few-shot classification on top of its trunk.

Part 1, :mod:`transferkit.multitask`: one shared MLP trunk with one head per task, trained on the
SURF vectors of three Office-Caltech10 domains (caltech, amazon, webcam) for two tasks at once:
*which object* is it (10 classes) and *which camera* took it (3 domains). The task losses are
mixed by a *weighting*: ``static`` (the plain sum), ``uncertainty`` (learned weights, Kendall et
al. 2018) or ``pcgrad`` (conflicting task gradients projected off each other, Yu et al. 2020).
One model per task is the same call with one task; every accuracy is on held-out rows.

Part 2, :mod:`transferkit.fewshot`: the trunk of the multi-task model, trained without ever seeing
the fourth domain (dslr, a DSLR camera), turns dslr's rows into features; N-way K-shot *episodes*
(K labelled support rows per class, the rest of the rows as queries) measure how well a few
labels per class suffice there, with two few-shot classifiers (nearest class mean, and SimpleShot's
centred and normalized nearest mean), against the same classifiers on the input features.

Run from the repository root: ``python examples/multitask_and_fewshot.py`` (about 10 s).
"""

from __future__ import annotations

import numpy as np
import torch

from transferkit.datasets import load_dataset
from transferkit.fewshot import evaluate_episodes
from transferkit.multitask import evaluate, fit_multitask
from transferkit.preprocessing import RowNormalize, Standardize

SEED = 0
TRAINING = {"epochs": 10, "batch_size": 64, "lr": 0.01, "seed": SEED, "trunk_kwargs": {"hidden": (256,)}}


def main() -> None:
    ds = load_dataset("office-caltech10")
    # caltech, amazon and webcam are "sources" (labelled); dslr is kept apart for part 2
    arr = ds.to_arrays(sources=["caltech", "amazon", "webcam"], targets=["dslr"])
    X = arr.X
    # frequencies, then one z-score for every row with the three training domains' statistics (a
    # per-domain z-score would erase part of what tells the cameras apart)
    for step in (RowNormalize("l1"), Standardize(per_domain=False)):
        X = step.fit_transform(X, arr.y, arr.sample_domain)
    X = X.astype(np.float32)

    # ---- part 1: multi-task learning -------------------------------------------------------
    rows = np.flatnonzero(arr.source)
    rng = np.random.default_rng(SEED)
    test = np.sort(rng.choice(rows, size=len(rows) // 4, replace=False))  # a quarter held out
    train = np.setdiff1d(rows, test)
    tasks = {"object": arr.y, "camera": arr.sample_domain}  # camera: 0 caltech, 1 amazon, 2 webcam
    print(f"multi-task: {len(train)} training rows, {len(test)} held out; tasks object (10 classes), "
          "camera (3)")  # fmt: skip
    print(f"{'model':<28} {'object %':>8} {'camera %':>8}")
    models, histories = {}, {}
    for name, task_names, weighting in (
        ("object only (single task)", ["object"], "static"),
        ("camera only (single task)", ["camera"], "static"),
        ("both, static (sum)", ["object", "camera"], "static"),
        ("both, uncertainty", ["object", "camera"], "uncertainty"),
        ("both, pcgrad", ["object", "camera"], "pcgrad"),
    ):
        targets = {t: tasks[t][train] for t in task_names}
        # one shared trunk and one head per task, trained on the mix of the task losses
        model, history = fit_multitask(X[train], targets, weighting=weighting, **TRAINING)
        acc = evaluate(model, X[test], {t: tasks[t][test] for t in task_names})  # fractions in [0, 1]
        cells = [f"{100 * acc[t]:8.2f}" if t in acc else f"{'-':>8}" for t in ("object", "camera")]
        print(f"{name:<28} {' '.join(cells)}")
        models[name], histories[name] = model, history
    last = histories["both, uncertainty"][-1]  # one record per epoch; weight_<task> where learned
    print(f"uncertainty weighting, learned task weights after the last epoch: object "
          f"{last['weight_object']:.2f}, camera {last['weight_camera']:.2f}")  # fmt: skip

    # ---- part 2: few-shot episodes on a domain the trunk never saw -------------------------
    shared = models["both, static (sum)"].eval()  # eval: no dropout
    with torch.no_grad():
        features = shared.features(torch.as_tensor(X)).numpy()  # the trunk's output, before the heads
    dslr = arr.target  # dslr's rows: their labels come from the data set, as support/query labels
    labels = ds.labels("dslr")
    spaces = {
        # SimpleShot centres on the mean feature of the training ("base") rows, then normalizes
        "input features": (X[dslr], X[train].mean(0)),
        "multi-task trunk": (features[dslr], features[train].mean(0)),
    }
    print()
    print(f"few-shot on dslr ({int(dslr.sum())} rows, 10 classes): 5-way episodes, accuracy % on the "
          "queries (95% interval)")  # fmt: skip
    print(f"{'features':<18} {'classifier':<11} {'1-shot':>14} {'5-shot':>14}")
    for space, (Z, center) in spaces.items():
        for classifier in ("prototype", "simpleshot"):
            cells = []
            for k in (1, 5):
                res = evaluate_episodes(Z, labels, classifier, n_way=5, k_shot=k, n_query=15, n_episodes=300,
                                        center=center, random_state=SEED)  # fmt: skip
                cells.append(f"{res['accuracy']:6.2f} +- {res['ci95']:4.2f}")
            print(f"{space:<18} {classifier:<11} {' '.join(cells)}")


if __name__ == "__main__":
    main()
