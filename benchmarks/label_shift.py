"""When does the label-shift method (BBSE) pay off? Pure label shift, label shift on top of a domain
shift, and the natural shifts of Office-Caltech10.

Every row compares the same classifier (logistic regression on the data set's standard
preprocessing, its C in {1, 10, 100} chosen by the source's 3-fold log-loss) trained on the source
alone (``source-only``), corrected by the ``label-shift`` method with each correction (``reweight``,
``posterior``), and corrected with the target's *true* class prior (``oracle-prior``: a ceiling that
reads target labels, not a result). ``prior TV`` is the total variation between the estimated and
the true target prior.

Settings (target priors drawn per seed; no target label is read by the methods):
* ``mnist->mnist``: the 2000 MNIST rows of mnist-usps-jda split in two halves, the second
  subsampled to a skewed prior: the pure label shift BBSE assumes (p(x|y) unchanged);
* ``mnist->usps`` / ``usps->mnist``: the same skew on the target of a real domain shift, where
  p(x|y) changes too and BBSE's assumption fails;
* ``office-caltech10``: the 12 tasks as they are (their class proportions differ a little), one run
  each (nothing is random).
Skews: ``tweak-one`` gives one class (chosen per seed) probability 0.5 and the others 0.5/9 each
(Lipton et al. 2018); ``dirichlet`` draws the prior from Dirichlet(0.5, ..., 0.5). The target keeps
as many rows as the prior allows from the available ones (sampled without replacement).

Run:  python benchmarks/label_shift.py [--seeds 0 1 2 3 4] [--out DIR]   (about six minutes on 2 cores)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from transferkit.cli import OptionParser
from transferkit.experiment import machine, versions
from transferkit.io import atomic_write_text

COLUMNS = ["setting", "skew", "seed", "method", "accuracy", "prior_tv", "C", "n_source", "n_target"]
METHODS = ("source-only", "label-shift:reweight", "label-shift:posterior", "oracle-prior")


def skewed_prior(kind: str, k: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "tweak-one":
        p = np.full(k, 0.5 / (k - 1))
        p[rng.integers(k)] = 0.5
        return p
    return rng.dirichlet(np.full(k, 0.5))


def subsample(y: np.ndarray, prior: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of the largest sample of ``y`` with class proportions ``prior`` (rounded)."""
    counts = np.bincount(y, minlength=len(prior))
    m = min(counts[c] / prior[c] for c in range(len(prior)) if prior[c] > 0)
    take = np.floor(prior * m).astype(int)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), take[c], replace=False)
                                   for c in range(len(prior)) if take[c] > 0]))  # fmt: skip


CS = (1.0, 10.0, 100.0)


def source_C(Xs, ys, seed: int) -> float:
    """The C of ``CS`` whose logistic regression has the best 3-fold log-loss on the source rows: a
    correction moves class probabilities, which must mean what they say (with C = 1 on these rows
    they were so flat that even the true prior lowered the accuracy)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    loss = [
        cross_val_score(
            LogisticRegression(C=c, max_iter=2000), Xs, ys, cv=folds, scoring="neg_log_loss"
        ).mean()
        for c in CS
    ]
    return CS[int(np.argmax(loss))]


def compare(Xs, ys, Xt, yt, seed: int) -> list[dict]:
    """The four methods on one task: accuracy on the target and the prior's total variation."""
    from transferkit.shallow.label_shift import LabelShift

    C = source_C(Xs, ys, seed)

    def LogisticRegression(**kw):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, **kw)

    k = int(max(ys.max(), yt.max())) + 1
    true_prior = np.bincount(yt, minlength=k) / len(yt)
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, np.full(len(Xt), -1)]  # the target's labels hidden
    sd = np.r_[np.zeros(len(Xs), np.int64), -np.ones(len(Xt), np.int64)]
    out = []
    base = LogisticRegression(max_iter=2000).fit(Xs, ys)
    out.append(("source-only", np.mean(base.predict(Xt) == yt), np.nan))
    for correction in ("reweight", "posterior"):
        clf = LabelShift(LogisticRegression(max_iter=2000), correction, random_state=seed).fit(X, y, sd)
        tv = 0.5 * np.abs(clf.target_prior_ - true_prior[clf.classes_]).sum()
        out.append((f"label-shift:{correction}", np.mean(clf.predict(Xt) == yt), tv))
    source_prior = np.bincount(ys, minlength=k) / len(ys)
    w = true_prior[base.classes_] / source_prior[base.classes_]
    p = base.predict_proba(Xt) * w
    out.append(("oracle-prior", np.mean(base.classes_[p.argmax(1)] == yt), 0.0))
    return [{"method": m, "accuracy": round(100 * float(a), 2), "C": C,
             "prior_tv": "" if np.isnan(tv) else round(float(tv), 4),
             "n_source": len(Xs), "n_target": len(Xt)} for m, a, tv in out]  # fmt: skip


def main(argv=None) -> None:
    ap = OptionParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "label-shift"))
    args = ap.parse_args(argv)
    from _common import check_list, refuse_changed_defaults, write_csv

    check_list(ap, "--seeds", args.seeds, minimum=0)
    refuse_changed_defaults(ap, args)

    from transferkit.datasets import dataset_info, load_dataset
    from transferkit.experiment import build_steps

    start = time.perf_counter()
    rows = []

    def prepared(name, Xs, ys, Xt):
        """The data set's standard steps, fitted on the source and the (unlabelled) target rows."""
        X = np.vstack([Xs, Xt]).astype(np.float64)
        y = np.r_[ys, np.full(len(Xt), -1)]
        sd = np.r_[np.zeros(len(Xs), np.int64), -np.ones(len(Xt), np.int64)]
        for step in build_steps(tuple(dataset_info(name).preprocess), 0)[0]:
            X = step.fit_transform(X, y, sd)
        return X[: len(Xs)], X[len(Xs) :]

    oc = load_dataset("office-caltech10")
    for s, t in dataset_info("office-caltech10").tasks:
        ys, yt = np.asarray(oc.y[s]), np.asarray(oc.y[t])
        Xs, Xt = prepared("office-caltech10", oc.X[s], ys, oc.X[t])
        rows += [{"setting": "office-caltech10", "skew": "natural", "seed": 0, **r}
                 for r in compare(Xs, ys, Xt, yt, 0)]  # fmt: skip
        print(f"office-caltech10 {s}->{t}", flush=True)

    jda = load_dataset("mnist-usps-jda")
    mnist = (np.asarray(jda.X["mnist"], np.float64), np.asarray(jda.y["mnist"]))
    usps = (np.asarray(jda.X["usps"], np.float64), np.asarray(jda.y["usps"]))
    for seed in args.seeds:
        for skew in ("tweak-one", "dirichlet"):
            rng = np.random.default_rng(seed)
            prior = skewed_prior(skew, 10, rng)
            half = rng.permutation(len(mnist[1]))
            a, b = half[: len(half) // 2], half[len(half) // 2 :]
            tasks = {
                "mnist->mnist": (mnist[0][a], mnist[1][a], mnist[0][b], mnist[1][b]),
                "mnist->usps": (*mnist, *usps),
                "usps->mnist": (*usps, *mnist),
            }
            for name, (Xs, ys, Xt, yt) in tasks.items():
                keep = subsample(yt, prior, np.random.default_rng(seed))
                Zs, Zt = prepared("mnist-usps-jda", Xs, ys, Xt[keep])
                rows += [{"setting": name, "skew": skew, "seed": seed, **r}
                         for r in compare(Zs, ys, Zt, yt[keep], seed)]  # fmt: skip
            print(f"seed {seed} {skew}", flush=True)
    seconds = time.perf_counter() - start

    out = Path(args.out)
    write_csv(out / "results.csv", rows, COLUMNS)
    command = "python benchmarks/label_shift.py" + (
        "" if args.seeds == ap.get_default("seeds") else " --seeds " + " ".join(map(str, args.seeds))
    )
    groups = list(dict.fromkeys((r["setting"], r["skew"]) for r in rows))
    lines = [
        "# label-shift: when does correcting the class proportions pay off?", "",
        f"Command: `{command}`  ",
        f"Seeds: {', '.join(map(str, args.seeds))} (office-caltech10: its 12 tasks, no randomness); time "
        f"{seconds:.1f} s; machine: {machine()['processor']}, {machine()['cpus']} CPUs; versions: "
        f"{', '.join(f'{k} {v}' for k, v in versions().items())}.", "",
        "Target accuracy (%), mean ± std over seeds (office-caltech10: over its 12 tasks), of one "
        "classifier (logistic regression on the data set's standard steps, C by the source's 3-fold "
        "log-loss) trained on the source alone, "
        "corrected by `label-shift` (no target label read), and corrected with the true target prior "
        "(`oracle-prior`, a ceiling that reads the target's labels). `prior TV`: total variation "
        "between the estimated and the true target class prior (0 = exact). See the script's docstring "
        "for the settings.", "",
        "| setting | skew | " + " | ".join(METHODS) + " | prior TV (reweight) |",
        "|---|---|" + "---|" * (len(METHODS) + 1),
    ]  # fmt: skip
    for setting, skew in groups:
        these = [r for r in rows if (r["setting"], r["skew"]) == (setting, skew)]
        cells = []
        for m in METHODS:
            v = [r["accuracy"] for r in these if r["method"] == m]
            cells.append(
                f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"
            )
        tv = [r["prior_tv"] for r in these if r["method"] == "label-shift:reweight"]
        lines.append(f"| {setting} | {skew} | " + " | ".join(cells) + f" | {statistics.mean(tv):.3f} |")
    lines.append("")
    atomic_write_text(out / "summary.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
