"""What a run reports beyond accuracy: balanced accuracy, macro F1, per-class counts and the
confusion matrix, against scikit-learn, on a target whose classes are of unequal size."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from transferkit.cli import main
from transferkit.domains import DomainDataset
from transferkit.experiment import evaluate, target_metrics


def _skewed():
    """Target 'b': 90 rows of class 0, 10 of class 1 (class 2 only in the source)."""
    rng = np.random.default_rng(0)
    ys = np.arange(60) % 3
    yt = np.r_[np.zeros(90, np.int64), np.ones(10, np.int64)]
    X = {"a": rng.normal(size=(60, 2)) + ys[:, None], "b": rng.normal(size=(100, 2)) + yt[:, None]}
    return DomainDataset("skew", X, {"a": ys, "b": yt}, classes=("no", "yes", "maybe"))


def test_target_metrics_are_scikit_learns_on_the_scored_rows():
    ds = _skewed()
    pred = np.zeros(100, np.int64)  # the largest class everywhere: 90% accurate, balanced 50%
    pred[95:] = 1
    pred[3] = 2  # a class the target does not have
    m = target_metrics({"b": pred}, ds)["b"]
    y = ds.labels("b")
    assert evaluate({"b": pred}, ds)["b"] == 94.0
    assert m["balanced_accuracy"] == 100 * balanced_accuracy_score(y, pred) == 74.44444444444444
    assert m["macro_f1"] == 100 * f1_score(y, pred, labels=[0, 1], average="macro")
    assert m["per_class"]["yes"] == {"precision": 1.0, "recall": 0.5, "support": 10}
    assert "maybe" not in m["per_class"]  # no target row of it: no recall to average
    assert m["confusion"] == confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()
    # revealed rows are left out, as from the accuracy; an unlabelled target has none
    revealed = {"b": np.arange(90, 95)}
    assert target_metrics({"b": pred}, ds, revealed)["b"]["per_class"]["yes"]["support"] == 5
    ds.y["b"] = np.full(100, -1)
    assert target_metrics({"b": pred}, ds) == {"b": None}


def test_a_run_prints_and_records_the_balanced_accuracy(tmp_path, capsys):
    lines = ["domain,label,x"]
    rng = np.random.default_rng(1)
    for dom, n1 in (("a", 40), ("b", 8)):
        for i in range(40 + n1):
            c = int(i >= 40)
            lines.append(f"{dom},{('ok', 'sick')[c]},{rng.normal() + 0.8 * c:.4f}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    argv = ["run", "--dataset", str(tmp_path / "t.csv"), "--source", "a", "--target", "b", "--method",
            "source-only", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    rec = json.loads((tmp_path / "r" / "result.json").read_text())
    m = rec["metrics_per_target"]["b"]
    assert rec["balanced_accuracy"] == m["balanced_accuracy"]
    assert sum(map(sum, m["confusion"])) == 48 and m["per_class"]["sick"]["support"] == 8
    out = capsys.readouterr().out
    assert "target accuracy %  balanced %" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("source-only"))
    assert row[2:4] == [f"{rec['accuracy']:.2f}", f"{rec['balanced_accuracy']:.2f}"]


def test_an_unlabelled_target_has_no_score_in_the_table_nor_in_the_record(tmp_path, capsys):
    lines = ["x,domain,label", "1,a,yes", "2,a,no", "3,a,yes", "4,a,no", "1.5,b,", "2.5,b,"]
    (tmp_path / "u.csv").write_text("\n".join(lines) + "\n")
    argv = ["run", "--dataset", str(tmp_path / "u.csv"), "--source", "a", "--target", "b", "--method",
            "source-only", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    row = next(
        line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("source-only")
    )
    assert row[2:4] == ["-", "-"]  # was 'nan'
    rec = json.loads((tmp_path / "r" / "result.json").read_text())
    assert (
        rec["accuracy"] is None
        and rec["balanced_accuracy"] is None
        and rec["metrics_per_target"] == {"b": None}
    )
