"""A table whose columns are not called domain and label, and number columns that are codes: named on
the command line (--domain-column, --label-column, --feature-columns, --text-column, --categorical),
in a sweep file (columns:) or to load_table, remembered by a saved network for predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferkit.cli import main
from transferkit.datasets import load_dataset
from transferkit.datasets.table import load_table
from transferkit.errors import TransferkitError
from transferkit.experiment import RunSpec
from transferkit.sweep import load_spec, run_sweep

NAMED = ["--domain-column", "site", "--label-column", "outcome"]


def _rows(seed: int = 0, n: int = 60):
    """(site, x, colour code, outcome) rows: sites 'a' (source) and 'b' (target); colour 2 moves the
    outcome, so reading the code as a number (1 < 2 < 3) hides what the 0/1 columns show."""
    rng = np.random.default_rng(seed)
    rows = []
    for site, shift in (("a", 0.0), ("b", 0.8)):
        for _ in range(n):
            colour = int(rng.integers(1, 4))
            x = rng.normal(shift, 1.0)
            y = int(x - shift + 2.0 * (colour == 2) + rng.normal(0, 0.3) > 0.8)
            rows.append((site, f"{x:.4f}", str(colour), ("no", "yes")[y]))
    return rows


def _write(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


@pytest.fixture
def tables(tmp_path):
    rows = _rows()
    named = _write(tmp_path / "clinic.csv", ["site", "x", "colour", "outcome"], rows)
    plain = _write(tmp_path / "plain.csv", ["domain", "x", "colour", "label"], rows)
    return named, plain


def _accuracy(out):
    return json.loads((out / "result.json").read_text())["accuracy"]


def test_named_domain_and_label_columns_give_the_run_of_the_renamed_table(tables, tmp_path):
    named, plain = tables
    base = ["run", "--source", "a", "--target", "b", "--method", "coral", "--quiet"]
    assert main([*base, "--dataset", str(plain), "--out", str(tmp_path / "p")]) == 0
    assert main([*base, "--dataset", str(named), *NAMED, "--out", str(tmp_path / "n")]) == 0
    assert _accuracy(tmp_path / "n") == _accuracy(tmp_path / "p")
    config = json.loads((tmp_path / "n" / "result.json").read_text())["config"]
    assert config["columns"] == {"domain_column": "site", "label_column": "outcome"}
    assert "columns" not in json.loads((tmp_path / "p" / "result.json").read_text())["config"]


def test_without_the_names_the_error_says_which_option_names_the_column(tables, tmp_path):
    named, _ = tables
    with pytest.raises(TransferkitError, match=r"no 'domain' column.*--domain-column site"):
        load_table(named)
    with pytest.raises(TransferkitError, match=r"no 'label' column.*--label-column outcome"):
        load_table(named, domain_column="site")
    # no column like it: the option is still named
    with pytest.raises(TransferkitError, match=r"no 'label' column.*--label-column COL"):
        load_table(_write(tmp_path / "v.csv", ["domain", "x", "verdict"], [("a", "1", "no")]))


def test_categorical_codes_are_one_column_per_value_as_written(tmp_path):
    rows = [
        ("s", "1.0", "01", "no"),
        ("s", "2.0", "1", "yes"),
        ("t", "3.0", "2", "no"),
        ("t", "4.0", "", "yes"),
    ]
    path = _write(tmp_path / "codes.csv", ["domain", "x", "code", "label"], rows)
    as_numbers = load_table(path)
    assert as_numbers.extras["feature_names"] == ("x", "code")
    ds = load_table(path, categorical=["code"])
    assert ds.extras["feature_names"] == ("x", "code=01", "code=1", "code=2")
    assert ds.extras["categories"] == {"code": ("01", "1", "2")}
    X = np.vstack([ds.X["s"], ds.X["t"]])
    np.testing.assert_array_equal(X[:, 1:], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])  # empty: none
    assert ds.extras["reading"] == {"categorical": ["code"]}
    assert "reading" not in as_numbers.extras  # the defaults are not recorded


def test_categorical_parquet_codes_stored_as_floats_keep_their_whole_number_names(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"domain": ["s", "s", "t"], "zip": [75001, None, 69002], "label": [0, 1, 0]})
    df.to_parquet(tmp_path / "t.parquet")  # an integer column with a null is stored as floats
    ds = load_table(tmp_path / "t.parquet", categorical=["zip"])
    assert ds.extras["feature_names"] == ("zip=69002", "zip=75001")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"categorical": ["colour "]}, r"unknown column .*'colour '.*colour"),
        ({"categorical": ["site"]}, r"'site' is the domain column"),
        ({"categorical": ["outcome"]}, r"'outcome' is the label column"),
        ({"categorical": ["colour"], "feature_columns": ["x"]}, r"'colour' is not among the feature columns"),
        ({"categorical": ["colour"], "text_column": "x"}, r"read as texts .*categorical columns apply"),
    ],
)
def test_bad_categorical_columns_are_clear_errors(tables, kwargs, match):
    named, _ = tables
    with pytest.raises(TransferkitError, match=match):
        load_table(named, domain_column="site", label_column="outcome", **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"feature_columns": ["x", "outcome"]},
            r"'outcome' is the label column; it cannot also be a feature",
        ),
        ({"feature_columns": ["site", "x"]}, r"'site' is the domain column; it cannot also be a feature"),
        ({"text_column": "outcome"}, r"'outcome' is the label column; it cannot also be a text column"),
        ({"feature_columns": ["x", "x"]}, r"feature_columns names column 'x' twice"),
        ({"categorical": ["colour", "colour"]}, r"categorical names column 'colour' twice"),
    ],
)
def test_the_label_or_domain_as_a_feature_and_a_column_named_twice_are_errors(tables, kwargs, match):
    """--feature-columns stars sentiment (the label among the features) read the answer: 100% accuracy."""
    named, _ = tables
    with pytest.raises(TransferkitError, match=match):
        load_table(named, domain_column="site", label_column="outcome", **kwargs)


def test_a_column_of_texts_among_features_says_how_to_name_it_as_texts(tmp_path):
    rows = [("st"[i % 2], f"review number {i} of many words", ("no", "yes")[i % 2]) for i in range(150)]
    path = _write(tmp_path / "reviews.csv", ["domain", "review", "label"], rows)
    with pytest.raises(TransferkitError, match=r"named with --text-column review"):
        load_table(path)
    assert load_table(path, text_column="review").modality == "text"


def test_a_categorical_column_of_too_many_codes_is_an_error_saying_how_to_group_them(tmp_path):
    rows = [("st"[i % 2], f"{i:05d}", ("no", "yes")[i % 2]) for i in range(150)]
    path = _write(tmp_path / "zips.csv", ["domain", "zip", "label"], rows)
    assert load_table(path).extras["feature_names"] == ("zip",)  # numbers unless named
    with pytest.raises(TransferkitError, match=r"'zip', named a category, holds 150 .*first two digits"):
        load_table(path, categorical=["zip"])


def test_table_options_on_data_without_columns_are_an_error(tmp_path):
    with pytest.raises(TransferkitError, match=r"categorical \(--categorical\).*built-in data set"):
        load_dataset("office-caltech10", categorical=["x"])
    with pytest.raises(TransferkitError, match=r"label_column \(--label-column\).*not a .csv"):
        load_dataset(tmp_path, label_column="y")
    with pytest.raises(TransferkitError, match=r"unknown key 'label'.*domain_column"):
        RunSpec(columns={"label": "y"})


def test_categorical_codes_change_what_the_method_sees(tables, capsys):
    named, _ = tables
    base = ["diagnose", "--dataset", str(named), "--source", "a", "--target", "b", *NAMED,
            "--permutations", "10"]  # fmt: skip
    assert main(base) == 0
    assert "colour=" not in capsys.readouterr().out
    assert main([*base, "--categorical", "colour"]) == 0
    assert "colour=2" in capsys.readouterr().out
    assert main([*base, "--feature-columns", "x"]) == 0  # only these
    assert "features 1\n" in capsys.readouterr().out


def test_a_saved_network_remembers_how_its_table_was_read_and_predict_reads_new_rows_so(
    tables, tmp_path, capsys
):
    named, _ = tables
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(named), "--source", "a", "--target", "b", *NAMED,
                 "--categorical", "colour", "--method", "deep-source-only", "--set", "epochs=1",
                 "--quiet", "--out", str(out)]) == 0  # fmt: skip
    spec = json.loads((out / "model" / "network.json").read_text())
    assert spec["reading"] == {"domain_column": "site", "label_column": "outcome", "categorical": ["colour"]}
    assert spec["feature_names"] == ["x", "colour=1", "colour=2", "colour=3"]
    # new rows: the same header, no option repeated
    new = _write(tmp_path / "new.csv", ["site", "x", "colour", "outcome"], _rows(seed=1, n=10))
    assert main(["predict", str(out), "--dataset", str(new), "--out", str(tmp_path / "p1.csv")]) == 0
    assert main(["predict", str(out), "--dataset", str(new), *NAMED, "--categorical", "colour",
                 "--out", str(tmp_path / "p2.csv")]) == 0  # fmt: skip
    assert (tmp_path / "p1.csv").read_text() == (tmp_path / "p2.csv").read_text()
    assert (tmp_path / "p1.csv").read_text().count("\n") == 21
    # an option given to predict overrides the saved one: here a wrong domain column
    assert main(["predict", str(out), "--dataset", str(new), "--domain-column", "region",
                 "--out", str(tmp_path / "p3.csv")]) == 2  # fmt: skip
    assert "no 'region' column" in capsys.readouterr().err
    assert main(["predict", str(out), "--dataset", str(new), "--categorical", "colour", "colour",
                 "--out", str(tmp_path / "p3.csv")]) == 2  # fmt: skip
    assert "--categorical names colour more than once" in capsys.readouterr().err


def test_a_damaged_saved_reading_is_the_damaged_model_error(tables, tmp_path, capsys):
    named, _ = tables
    out = tmp_path / "run"
    args = ["run", "--dataset", str(named), "--source", "a", "--target", "b", *NAMED,
            "--method", "deep-source-only", "--set", "epochs=1", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    path = out / "model" / "network.json"
    spec = json.loads(path.read_text())
    path.write_text(json.dumps({**spec, "reading": ["site"]}))
    assert main(["predict", str(out), "--dataset", str(named), "--out", str(tmp_path / "p.csv")]) == 2
    assert "damaged: reading does not say how a table was read" in capsys.readouterr().err


def test_bench_on_a_table_with_named_columns(tables, tmp_path):
    named, plain = tables
    base = ["bench", "--methods", "source-only", "--quiet", "--jobs", "1"]
    assert main([*base, str(plain), "--out", str(tmp_path / "p")]) == 0
    assert main([*base, str(named), *NAMED, "--out", str(tmp_path / "n")]) == 0

    def accuracies(folder):
        lines = (folder / "results.csv").read_text().splitlines()
        head = lines[0].split(",")
        return [row.split(",")[head.index("accuracy")] for row in lines[1:]]

    assert accuracies(tmp_path / "n") == accuracies(tmp_path / "p")


def test_a_sweep_file_names_the_columns(tables, tmp_path):
    named, plain = tables
    text = (
        f"dataset: {named.name}\nmethods: {{source-only: {{}}}}\ntasks: [a->b]\n"
        "columns: {domain_column: site, label_column: outcome, categorical: [colour]}\n"
    )
    (tmp_path / "s.yaml").write_text(text)
    res = run_sweep(load_spec(tmp_path / "s.yaml"), tmp_path / "out", workers=1, quiet=True)
    assert res["ran"] == 1
    trial = json.loads(next((tmp_path / "out" / "trials").glob("*.json")).read_text())
    assert trial["settings"]["columns"]["categorical"] == ["colour"]
    run = ["run", "--dataset", str(named), "--source", "a", "--target", "b", "--method", "source-only",
           *NAMED, "--categorical", "colour", "--quiet", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(run) == 0
    assert trial["accuracy"] == pytest.approx(_accuracy(tmp_path / "r"), abs=1e-4)
    (tmp_path / "bad.yaml").write_text(text.replace("categorical: [colour]", "categorical: 3"))
    with pytest.raises(TransferkitError, match=r"'columns' must be a mapping of domain_column"):
        load_spec(tmp_path / "bad.yaml")


def test_choosing_a_fine_tuned_networks_setting_reads_the_table_in_the_saved_column_order(tmp_path):
    """select_runs with ``init=``: a table whose columns come in another order is matched by name, as
    a plain run matches it (it was fed by position: the scores and accuracies of another network)."""
    from transferkit.experiment import select_runs

    rows = _rows()
    first = _write(tmp_path / "first.csv", ["domain", "x", "colour", "label"], rows)
    moved = _write(tmp_path / "moved.csv", ["colour", "label", "domain", "x"],
                   [(c, y, d, x) for d, x, c, y in rows])  # fmt: skip
    model = tmp_path / "model"
    assert main(["run", "--dataset", str(first), "--source", "a", "--target", "b", "--method",
                 "deep-source-only", "--set", "steps=20", "--quiet", "--out", str(model)]) == 0  # fmt: skip
    steps = ("standardize:per_domain=false",)
    scored = []
    for path in (first, moved):
        spec = RunSpec(str(path), ("a",), ("b",), "dann", {"init": str(model), "steps": 10}, seed=0)
        scored.append(select_runs(spec, load_table(path), steps, [{}, {"weight": 0.3}], ["entropy"]))
    for a, b in zip(*scored):
        assert a["accuracy"] == b["accuracy"] and a["scores"] == pytest.approx(b["scores"])


def test_set_takes_several_settings_at_once_and_a_setting_given_twice_is_an_error(tables, tmp_path, capsys):
    """`--set epochs=1 lr=0.1` was argparse's 'unrecognized arguments: lr=0.1'; `--set reg=1 --set reg=2`
    ran with reg=2 without a word."""
    named, _ = tables
    base = ["run", "--dataset", str(named), "--source", "a", "--target", "b", *NAMED, "--quiet"]
    out = tmp_path / "r"
    assert (
        main([*base, "--method", "deep-source-only", "--set", "epochs=1", "lr=0.05", "--out", str(out)]) == 0
    )
    params = json.loads((out / "result.json").read_text())["config"]
    assert params["trainer"]["epochs"] == 1 and params["trainer"]["lr"] == 0.05
    assert main([*base, "--method", "coral", "--set", "reg=1", "--set", "reg=2"]) == 2
    assert "setting 'reg' is given twice (reg=1 and reg=2)" in capsys.readouterr().err


def test_one_column_as_both_domain_and_label_is_an_error(tables):
    named, _ = tables
    with pytest.raises(TransferkitError, match=r"'site' is named as both the domain and the label column"):
        load_table(named, domain_column="site", label_column="site")
