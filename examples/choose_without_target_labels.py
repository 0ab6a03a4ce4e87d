"""Choosing a method's setting without target labels, beside the choice the target labels would make.

In real domain adaptation the target has no labels, so "try every setting and keep the one with the
best target accuracy" is not available: that is the *oracle*, a ceiling to compare with, never a
way to work. transferkit's label-free scorers (:mod:`transferkit.selection`) estimate which setting
suits the target from what we do have: held-out labelled *source* rows and the unlabelled target.

The recipe, on Office-Caltech10 dslr -> webcam with CORAL's ridge ``reg`` (its ``search_space``):

1. hold out 20% of the labelled source rows (:class:`~transferkit.selection.DomainShuffleSplit`
   keeps every target row, unlabelled, on both sides);
2. fit each candidate on the rest, and score it with every scorer on the held-out source rows and
   the target rows (no target label exists in these arrays);
3. let each scorer choose (:func:`~transferkit.selection.choose`, which never lets a target-only
   scorer pick a model whose target predictions collapse onto one class);
4. only then read the target labels, to show what each choice is worth and what the oracle picks.

``transferkit run --dataset office-caltech10 --source dslr --target webcam --method coral --select
iwcv`` makes the same choice and shows the same oracle line (it then refits the chosen setting on
the whole source; here every number comes from the same 80% fits, so they compare like with like).

Run from the repository root: ``python examples/choose_without_target_labels.py`` (about 4 s).
"""

from __future__ import annotations

import numpy as np

from transferkit.datasets import load_dataset
from transferkit.estimators import LinearSVMCV
from transferkit.preprocessing import RowNormalize, Standardize
from transferkit.selection import DomainShuffleSplit, choose, get_scorer, list_scorers, target_collapse
from transferkit.shallow import DAClassifier
from transferkit.shallow.coral import CORAL

SOURCE, TARGET, SEED = "dslr", "webcam", 0


def coral_classifier(reg: float) -> DAClassifier:
    """The composed model of `transferkit run --method coral --set reg=...` on this data set."""
    return DAClassifier(
        CORAL(reg=reg),
        estimator=LinearSVMCV(random_state=SEED),
        preprocessing=(RowNormalize("l1"), Standardize()),
    )


def main() -> None:
    ds = load_dataset("office-caltech10")
    arr = ds.to_arrays(sources=[SOURCE], targets=[TARGET])  # target labels are -1 here
    X, y, sd = arr.X, arr.y, arr.sample_domain

    # 1. 80% of the source to fit, 20% held out (stratified); all target rows on both sides
    train, val = next(DomainShuffleSplit(n_splits=1, test_size=0.2, random_state=SEED).split(X, y, sd))
    scorers = {name: get_scorer(name, random_state=SEED) for name in list_scorers()}
    grid = CORAL.search_space["reg"]  # (0.1, 1.0, 10.0)
    n_fit, n_held_out = int((sd[train] >= 0).sum()), int((sd[val] >= 0).sum())
    print(f"office-caltech10: {SOURCE} -> {TARGET}, CORAL reg in {list(grid)}; {n_fit} source rows to fit, "
          f"{n_held_out} held out, {int((sd < 0).sum())} unlabelled target rows")  # fmt: skip

    # 2. fit every candidate once, score it with every scorer
    candidates = []
    for reg in grid:
        clf = coral_classifier(reg).fit(X[train], y[train], sd[train])
        scores = {name: scorer(clf, X[val], y[val], sd[val]) for name, scorer in scorers.items()}
        # read off predictions and source labels only: did the target collapse onto one class?
        pred_target = clf.predict(X[sd < 0])
        collapsed = target_collapse(pred_target, y[train][sd[train] >= 0]) is not None
        candidates.append({"reg": reg, "pred": pred_target, "scores": scores, "collapsed": collapsed})

    print()
    print("label-free scores (higher is better):")
    print(f"{'reg':>6} " + " ".join(f"{name:>10}" for name in scorers))
    for c in candidates:
        print(f"{c['reg']:6g} " + " ".join(f"{c['scores'][name]:10.4f}" for name in scorers))

    # 3. each scorer's choice, made before any target label is read
    chosen = {name: choose(candidates, name)["reg"] for name in scorers}

    # 4. the target labels, read for the first time: what each choice is worth
    y_target = ds.labels(TARGET)
    accuracy = {c["reg"]: 100 * np.mean(c["pred"] == y_target) for c in candidates}
    print()
    print(f"{'chosen by':<32} {'reg':>5}  target accuracy %")
    for name, reg in chosen.items():
        reads = "held-out source" if scorers[name].needs_source else "target only"
        print(f"{f'{name} ({reads})':<32} {reg:5g}  {accuracy[reg]:.2f}")
    # The oracle reads the target labels to choose: a ceiling to compare with, never available in
    # practice (and never a number to report as a method's result).
    best = max(accuracy, key=accuracy.get)  # the first of the best among ties
    print(f"{'ORACLE (reads target labels)':<32} {best:5g}  {accuracy[best]:.2f}")


if __name__ == "__main__":
    main()
