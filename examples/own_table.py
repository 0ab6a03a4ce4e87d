"""Your own data as a table: a CSV with a ``domain`` column and a ``label`` column, loaded and adapted.

The scenario: two factories (``site_a`` and ``site_b``) monitor the same kind of machine with four
sensors and label each reading ``ok`` or ``worn``. Site A's readings are labelled (the *source*);
site B mounts its sensors differently, so vibration and current leak into each other and their
swings are larger (the *target*). A model trained on site A alone loses accuracy at site B. Each reading also
names the ``shift`` it was taken in (``day`` or ``night``: a column of words, so a category), and the
temperature sensor drops out now and then (an empty cell).

What transferkit expects from a table (see the README's "Your own data"):

* one row per sample; a ``domain`` column naming its domain, a ``label`` column with class names
  as written (an empty cell, ``NA`` or ``null`` means unknown), and feature columns: numbers, or
  words (a category: one 0/1 column per value, ``shift=day`` and ``shift=night``);
* a missing value is an empty cell: an ``impute`` step fills it (the source's median, plus a 0/1
  column marking the filled cells), and must come first;
* the delimiter (comma, semicolon, tab or ``|``) is read from the header row.

This script writes such a table into a temporary folder, loads it with
:func:`~transferkit.datasets.load_dataset` (which calls :func:`~transferkit.datasets.load_table`),
and runs source-only and CORAL on it after imputation and the standardization a user table gets by
default: every column with the *source's* mean and spread. Site B's labels are in the table so that
we can score at the end; ``to_arrays`` hides them from every fit (in real use, leave a target's
label cells empty). The same two rows come out of the command line:

    transferkit run --dataset sensors.csv --source site_a --target site_b --method source-only coral \
        --preprocess impute standardize:per_domain=false

Last, the fitted CORAL model is saved and loaded again (:mod:`transferkit.shallow.saved`: skops, no
pickle), as ``run --out DIR`` saves it under ``DIR/coral/model`` for ``transferkit predict DIR/coral
--dataset new_readings.csv --out p.csv`` to classify new readings.

Run from the repository root: ``python examples/own_table.py`` (about 2 s).
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np

from transferkit.datasets import load_dataset
from transferkit.estimators import LinearSVMCV
from transferkit.preprocessing import Impute, Standardize
from transferkit.shallow import DAClassifier
from transferkit.shallow.coral import CORAL
from transferkit.shallow.saved import load_classifier, save_classifier

COLUMNS = ("vibration", "temperature", "current", "pressure")
# typical level and spread of each sensor (mm/s, degrees C, A, bar)
LEVEL = np.array([4.0, 60.0, 12.0, 2.5])
SPREAD = np.array([1.0, 5.0, 2.0, 0.3])
# site B: vibration and current leak into each other, and their swings grow
SITE_B_MIXING = np.array([
    [0.5, 0.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [1.0, 0.0, 2.5, 0.0],
    [0.0, 0.0, 0.0, 1.0],
])  # fmt: skip


def readings(n: int, mixing: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sensor readings and their labels; wear raises vibration (in units of its spread)."""
    worn = rng.integers(0, 2, n)
    z = rng.normal(size=(n, len(COLUMNS)))
    z[:, 0] += np.where(worn == 1, 1.5, -1.5)
    return LEVEL + (z @ mixing) * SPREAD, np.where(worn == 1, "worn", "ok")


def write_table(folder: Path, n_per_site: int = 300, seed: int = 0) -> Path:
    """Write ``sensors.csv``: one row per reading, with its site, its shift and its label; one
    temperature in ten is missing (an empty cell)."""
    rng = np.random.default_rng(seed)
    path = Path(folder) / "sensors.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["domain", *COLUMNS, "shift", "label"])
        for site, mixing in (("site_a", np.eye(len(COLUMNS))), ("site_b", SITE_B_MIXING)):
            X, labels = readings(n_per_site, mixing, rng)
            shifts = rng.choice(["day", "night"], n_per_site)
            dropped = rng.random(n_per_site) < 0.1
            for row, shift, gap, label in zip(X, shifts, dropped, labels):
                cells = [f"{v:.3f}" for v in row]
                cells[1] = "" if gap else cells[1]  # the temperature sensor dropped out
                writer.writerow([site, *cells, shift, label])
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_table(Path(tmp))
        lines = path.read_text().splitlines()
        print(f"wrote {path.name}, {len(lines) - 1} rows; its first lines:")
        for line in lines[:3]:
            print(f"  {line}")
        ds = load_dataset(path)  # a .csv/.tsv/.parquet path loads as a table
    print(f"domains {ds.counts()}, classes {list(ds.classes)}, features {list(ds.extras['feature_names'])}")

    # site_b's labels become -1; its missing values stay NaN for the impute step below
    arr = ds.to_arrays(sources=["site_a"], targets=["site_b"], allow_missing=True)
    y_target = ds.labels("site_b")  # read below only to score
    print(f"{'method':<12} target accuracy %")
    for name, adapter in (("source-only", None), ("coral", CORAL())):
        clf = DAClassifier(
            adapter,
            estimator=LinearSVMCV(),  # the CLI's default final classifier
            # --preprocess impute standardize:per_domain=false
            preprocessing=(Impute(), Standardize(per_domain=False)),
        )
        clf.fit(arr.X, arr.y, arr.sample_domain)
        pred = clf.predict(arr.X[arr.target])
        print(f"{name:<12} {100 * np.mean(pred == y_target):.2f}")

    with tempfile.TemporaryDirectory() as tmp:  # the last model (CORAL), saved and loaded again
        save_classifier(clf, tmp, {"classes": list(ds.classes), "domains": {"site_a": 0, "site_b": -1}})
        again = load_classifier(tmp).predict(arr.X[arr.target])
    print(f"CORAL saved and loaded again: the same predictions: {bool((again == pred).all())}")


if __name__ == "__main__":
    main()
