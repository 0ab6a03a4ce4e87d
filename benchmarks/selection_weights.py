"""What IWCV's importance weights look like on Office-Caltech10, fitted in-sample and cross-fitted.

IWCV (and DEV) weight the held-out source rows by p_t(x)/p_s(x) from a logistic domain classifier.
Until session 21 that classifier was fitted and scored on the same held-out rows; it is now
cross-fitted (:func:`transferkit.selection._density_ratio`). For each of the 12 tasks this script
takes the held-out rows exactly as ``transferkit bench office-caltech10 --select ...`` does (the
seeded 80/20 split of the source, every target row, the suite's steps fitted on the training part)
and reports, for the in-sample fit (C = 1, the old scorer) and the cross-fitted ratio (the scorer
now): the domain classifier's accuracy on the rows it scores, and the effective sample size of the
source weights, ``(sum w)^2 / sum w^2`` over the number of held-out source rows (1: equal weights).
No class label is read.

Run:  python benchmarks/selection_weights.py [--out DIR]   (about a minute on 2 cores)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from transferkit.cli import OptionParser
from transferkit.experiment import machine, versions
from transferkit.io import atomic_write_text

COLUMNS = ["task", "held_out_source", "target", "in_sample_accuracy", "in_sample_ess",
           "cross_fitted_accuracy", "cross_fitted_ess"]  # fmt: skip


def _ess(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / (w**2).sum() / len(w))


def main(argv=None) -> None:
    from _common import write_csv

    ap = OptionParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "selection-weights"))
    args = ap.parse_args(argv)

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from transferkit.datasets import dataset_info, load_dataset
    from transferkit.experiment import build_steps
    from transferkit.selection import DomainShuffleSplit, _density_ratio

    start = time.perf_counter()
    ds = load_dataset("office-caltech10")
    rows = []
    for s, t in dataset_info("office-caltech10").tasks:
        arrays = ds.to_arrays([s], [t])  # target labels are -1: none is read
        X, y, sd = arrays.X.reshape(len(arrays.X), -1), arrays.y, arrays.sample_domain
        train, val = next(DomainShuffleSplit(1, 0.2, 0).split(X, y, sd))  # select_runs' split, seed 0
        steps, _ = build_steps(tuple(dataset_info("office-caltech10").preprocess), 0)
        Z = X.astype(np.float64)
        for step in steps:  # fitted on the training part, as select_runs fits them
            step.fit(Z[train], y[train], sd[train])
            Z = step.transform(Z, sd)
        Z, is_target = Z[val], sd[val] < 0
        Zs = StandardScaler().fit_transform(Z)
        p = (
            LogisticRegression(C=1.0, max_iter=1000, random_state=0)
            .fit(Zs, is_target)
            .predict_proba(Zs)[:, 1]
        )
        p = np.clip(p, 1e-6, 1 - 1e-6)
        w_in = (p / (1 - p))[~is_target]
        w_cf = _density_ratio(Z, is_target, None, 0)
        p_cf = w_cf / (
            w_cf + (~is_target).sum() / is_target.sum()
        )  # back to p_t from the prior-corrected ratio
        rows.append({
            "task": f"{s}->{t}", "held_out_source": int((~is_target).sum()), "target": int(is_target.sum()),
            "in_sample_accuracy": round(float(np.mean((p > 0.5) == is_target)), 4),
            "in_sample_ess": round(_ess(w_in), 4),
            "cross_fitted_accuracy": round(float(np.mean((p_cf > 0.5) == is_target)), 4),
            "cross_fitted_ess": round(_ess(w_cf[~is_target]), 4),
        })  # fmt: skip
        print(rows[-1], flush=True)
    seconds = time.perf_counter() - start

    out = Path(args.out)
    write_csv(out / "results.csv", rows, COLUMNS)
    lines = [
        "# selection-weights: IWCV's importance weights on Office-Caltech10, in-sample and cross-fitted",
        "",
        "Command: `python benchmarks/selection_weights.py`  ",
        f"Time {seconds:.1f} s; machine: {machine()}; versions: {versions()}.",
        "",
        "Held-out rows as `transferkit bench office-caltech10 --select ...` scores them (seed 0). "
        "Accuracy: the domain classifier's on the rows it scores. ESS: effective sample size of the "
        "source weights over the number of held-out source rows (1 = equal weights). No class label "
        "is read.",
        "",
        "| task | held-out source | target | in-sample accuracy | in-sample ESS | cross-fitted accuracy "
        "| cross-fitted ESS |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['task']} | {r['held_out_source']} | {r['target']} | {r['in_sample_accuracy']:.3f} | "
            f"{r['in_sample_ess']:.3f} | {r['cross_fitted_accuracy']:.3f} | {r['cross_fitted_ess']:.3f} |"
            for r in rows
        ],
        "",
    ]
    atomic_write_text(out / "summary.md", "\n".join(lines))
    print(f"wrote {out / 'results.csv'} and summary.md")


if __name__ == "__main__":
    main()
