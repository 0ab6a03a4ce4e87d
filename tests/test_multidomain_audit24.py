"""Audit with several domains at once (session 24): a table of five sites, partly labelled ones among
them; several sources, several targets, label-free selection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferkit.cli import main
from transferkit.errors import TransferkitError
from transferkit.experiment import RunSpec, fit_predict, select_runs


def _table(path):
    """Four sites of two shifted Gaussian classes: 'site A' and '2019' labelled, 'north' with a third
    of its labels missing, 'new site' with none; rows interleaved."""
    rng = np.random.default_rng(0)
    rows = []
    for k, domain in enumerate(["site A", "2019", "north", "new site"]):
        for i in range(30):
            label = i % 2
            x = rng.normal(size=3) + 2.5 * label + 0.4 * k
            shown = "" if domain == "new site" or (domain == "north" and i % 3 == 0) else f"c{label}"
            rows.append((domain, shown, *x))
    order = rng.permutation(len(rows))
    lines = ["domain,label,a,b,c"] + [",".join(map(str, rows[i])) for i in order]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_select_oracle_ignores_a_target_without_labels(tmp_path, capsys):
    # one of two targets has no label: each candidate's accuracy is the labelled target's, not NaN
    # (before, every candidate was NaN and the printed oracle was the first candidate with "nan*")
    from transferkit.datasets import load_dataset

    data = _table(tmp_path / "sites.csv")
    spec = RunSpec(dataset=data, sources=("site A", "2019"), targets=("new site", "north"), method="coral")
    dataset = load_dataset(data)
    scored = select_runs(spec, dataset, ("standardize:per_domain=false",), [{"reg": 0.1}, {"reg": 10.0}],
                         ["source-val"])  # fmt: skip
    assert all(np.isfinite(c["accuracy"]) for c in scored)
    args = ["run", "--dataset", data, "--source", "site A", "2019", "--target", "new site", "north",
            "--method", "coral", "--select", "source-val", "--quiet", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "nan*" not in out and "  oracle {" in out
    rec = json.loads((tmp_path / "result.json").read_text())
    assert all(c["accuracy"] is not None for c in rec["candidates"])
    # with no labelled target at all there is no oracle to show, rather than "nan*"
    assert main(["run", "--dataset", data, "--source", "site A", "2019", "--target", "new site",
                 "--method", "coral", "--select", "source-val", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "nan*" not in out and "  oracle {" not in out


def test_partly_labelled_source_is_named(tmp_path, capsys):
    # a source with unlabelled rows among several: the error says which one, before any training
    data = _table(tmp_path / "sites.csv")
    from transferkit.datasets import load_dataset

    spec = RunSpec(dataset=data, sources=("site A", "north"), targets=("2019",), method="coral")
    with pytest.raises(TransferkitError, match="source 'north' has 10 of its 30 rows without a label"):
        fit_predict(spec, load_dataset(data), ("standardize:per_domain=false",))
    assert main(["run", "--dataset", data, "--source", "site A", "north", "--target", "2019",
                 "--method", "source-only", "coral", "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("source 'north' has 10 of its 30 rows") == 1 and "make it a target" in err


def test_unseen_class_warning_counts_revealed_labels(tmp_path):
    # 'site A' lacks class c1; the targets have it. A semi-supervised method learns it from the
    # revealed target labels (it predicts it), so "a classifier trained on the source cannot predict
    # them" was wrong for it; for an unsupervised method the warning stays.
    import warnings

    from transferkit.experiment import run

    rng = np.random.default_rng(1)
    lines = ["domain,label,a,b"]
    for domain, classes in (("site A", (0, 2)), ("2019", (0, 1, 2)), ("north", (0, 1, 2))):
        for i in range(36):
            c = classes[i % len(classes)]
            x = rng.normal(size=2) * 0.5 + [3.0 * c, 0.0]
            lines.append(f"{domain},c{c},{x[0]},{x[1]}")
    data = tmp_path / "t.csv"
    data.write_text("\n".join(lines) + "\n")
    for method, warned in (("tradaboost", False), ("coral", True)):
        spec = RunSpec(dataset=str(data), sources=("site A",), targets=("2019", "north"), method=method,
                       target_labels=2)  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec = run(spec)
        said = [str(w.message) for w in caught if "classes no source has" in str(w.message)]
        assert bool(said) == warned, (method, said)
        if not warned:  # it did learn the class: c1's rows are predicted right
            assert rec["metrics_per_target"]["north"]["per_class"]["c1"]["recall"] > 0.5
