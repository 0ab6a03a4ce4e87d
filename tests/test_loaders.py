"""The user's own data (image folders, CSV and parquet tables), the data root, checksums, downloads."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from PIL import Image

from transferkit.datasets import load_dataset
from transferkit.datasets.files import DataFile, data_root, download_file, locate
from transferkit.errors import DataMissingError, TransferkitError
from transferkit.experiment import RunSpec, run


def _image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, np.uint8)).save(path)


def test_image_folder(tmp_path):
    for dom, base in (("photos", 0), ("sketches", 100)):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(3):
                _image(tmp_path / dom / cls / f"{i}.png", base + 50 * c + i)
    _image(tmp_path / "sketches" / "loose.png", 7)  # unlabelled image of the target
    ds = load_dataset(tmp_path, image_size=8)
    assert ds.modality == "image" and ds.classes == ("cat", "dog")
    assert ds.counts() == {"photos": 6, "sketches": 7}
    assert ds.X["photos"].shape == (6, 3, 8, 8)
    assert ds.labels("sketches").tolist() == [0, 0, 0, 1, 1, 1, -1]
    assert ds.X["photos"][0].max() == pytest.approx(0.0) and ds.X["photos"][3].max() == pytest.approx(
        50 / 255
    )


def test_image_folder_errors(tmp_path):
    with pytest.raises(TransferkitError, match="no domain folders"):
        load_dataset(tmp_path)
    (tmp_path / "d" / "c").mkdir(parents=True)
    (tmp_path / "d" / "c" / "x.png").write_text("not an image")
    with pytest.raises(TransferkitError, match="cannot read image"):
        load_dataset(tmp_path)


def test_an_image_over_pillows_size_guard_is_a_one_line_error(tmp_path, monkeypatch):
    _image(tmp_path / "d" / "c" / "big.png", 5)  # 120 pixels; Pillow refuses over twice the limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(TransferkitError, match="cannot read image .*big.png.*MAX_IMAGE_PIXELS"):
        load_dataset(tmp_path)


def _csv(path, rows):
    path.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")


def test_csv_table_with_class_names_and_unknown_labels(tmp_path):
    rows = [("domain", "label", "f1", "f2")]
    rows += [("clinic", "sick" if i % 2 else "healthy", i, i * 2) for i in range(6)]
    rows += [("hospital", "", i, -i) for i in range(4)]
    _csv(tmp_path / "t.csv", rows)
    ds = load_dataset(tmp_path / "t.csv")
    assert ds.classes == ("healthy", "sick")
    assert ds.counts() == {"clinic": 6, "hospital": 4}
    assert ds.labels("clinic").tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.labels("hospital").tolist() == [-1] * 4
    assert ds.X["hospital"][:, 1].tolist() == [0, -1, -2, -3]
    rec = run(RunSpec(str(tmp_path / "t.csv"), ("clinic",), ("hospital",), "coral"), command="")
    assert np.isnan(rec["accuracy"])  # unlabelled target: predictions, but nothing to score


def test_csv_errors_name_the_problem(tmp_path):
    _csv(tmp_path / "t.csv", [("domain", "label", "f1"), ("a", 0, "x"), ("b", 1, 2)])
    with pytest.raises(TransferkitError, match="column 'f1' row 1 holds 'x'"):
        load_dataset(tmp_path / "t.csv")
    _csv(tmp_path / "u.csv", [("site", "label", "f1"), ("a", 0, 1)])
    with pytest.raises(
        TransferkitError,
        match="u.csv has no 'domain' column.*--domain-column site.*rename 'site' to 'domain'",
    ):
        load_dataset(tmp_path / "u.csv")


def test_parquet_table(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"domain": ["a"] * 4 + ["b"] * 2, "label": [0, 1, 0, 1, 1, 0],
                       "x": np.arange(6.0), "y": np.ones(6)})  # fmt: skip
    df.to_parquet(tmp_path / "t.parquet")
    ds = load_dataset(tmp_path / "t.parquet")
    assert ds.counts() == {"a": 4, "b": 2} and ds.classes == ("0", "1")
    assert ds.X["b"].tolist() == [[4.0, 1.0], [5.0, 1.0]]


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("TRANSFERKIT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "transferkit"


def test_missing_file_says_which_where_and_how(tmp_path):
    with pytest.raises(DataMissingError) as info:
        load_dataset("mnist-usps-jda", root=tmp_path)
    msg = str(info.value)
    assert "MNIST_vs_USPS.mat" in msg and str(tmp_path) in msg
    assert "transferkit download mnist-usps-jda" in msg and "https://" in msg


def test_download_verifies_checksum_and_writes_atomically(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"transferkit" * 100)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    spec = DataFile("sets/remote.bin", src.as_uri(), good)
    root = tmp_path / "root"
    path = download_file(spec, root)
    assert path.read_bytes() == src.read_bytes()
    assert locate(spec, root, dataset="x") == path
    bad = DataFile("sets/other.bin", src.as_uri(), "0" * 64)
    with pytest.raises(TransferkitError, match="checksum mismatch"):
        download_file(bad, root)
    assert sorted(p.name for p in (root / "sets").iterdir()) == ["remote.bin"]  # no partial file left
    with pytest.raises(TransferkitError, match="could not download"):
        download_file(DataFile("sets/none.bin", (tmp_path / "absent").as_uri(), good), root)


def test_corrupt_local_file_is_reported(tmp_path):
    (tmp_path / "jda_mnist_usps").mkdir()
    (tmp_path / "jda_mnist_usps" / "MNIST_vs_USPS.mat").write_bytes(b"garbage")
    with pytest.raises(TransferkitError, match="checksum mismatch"):
        load_dataset("mnist-usps-jda", root=tmp_path)


def test_table_labels_missing_markers_and_minus_one(tmp_path):
    rows = [("domain", "label", "f1")]
    rows += [("a", lab, i) for i, lab in enumerate(["none", "mild", "severe", "none", "NA", ""])]
    _csv(tmp_path / "t.csv", rows)
    ds = load_dataset(tmp_path / "t.csv")
    assert ds.classes == ("mild", "none", "severe")  # "none" is a class; NA and empty are unknown
    assert ds.labels("a").tolist() == [1, 0, 2, 1, -1, -1]
    _csv(tmp_path / "m.csv", [("domain", "label", "f1"), ("a", 0, 1), ("a", 1, 2), ("b", -1, 3)])
    with pytest.warns(UserWarning, match=r"label -1 \(1 rows\) is read as a class.*leave an unknown"):
        ds = load_dataset(tmp_path / "m.csv")
    assert ds.classes == ("-1", "0", "1")
    _csv(tmp_path / "pm.csv", [("domain", "label", "f1"), ("a", -1, 1), ("a", 1, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # -1 / +1 labels: a common binary coding, no warning
        assert load_dataset(tmp_path / "pm.csv").classes == ("-1", "1")


def test_table_from_excel_with_bom_and_ragged_lines(tmp_path):
    (tmp_path / "x.csv").write_bytes("\ufeffdomain,label,f1\na,0,1\nb,1,2\n".encode())
    assert load_dataset(tmp_path / "x.csv").counts() == {"a": 1, "b": 1}
    (tmp_path / "r.csv").write_text("domain,label,f1\na,0,1\nb,1,2,7\n")
    with pytest.raises(TransferkitError, match="line 3 has more cells than the header"):
        load_dataset(tmp_path / "r.csv")
    (tmp_path / "s.csv").write_text("domain,label,f1\na,0\n")
    with pytest.raises(TransferkitError, match="line 2 has fewer cells"):
        load_dataset(tmp_path / "s.csv")
    (tmp_path / "d.csv").write_text("domain,label,f1\na,0,1\n,1,2\n")
    with pytest.raises(TransferkitError, match="row 2 has no 'domain'"):
        load_dataset(tmp_path / "d.csv")


def test_parquet_nulls_are_unknown_labels_and_nan_features(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"domain": pd.array(["a", "a", "b", "b"], dtype="string"),
                       "label": pd.array([1, 2, None, 3], dtype="Int64"),
                       "x": [0.0, 1.0, 2.0, 3.0], "z": pd.array([1, None, 2, 3], dtype="Int64")})  # fmt: skip
    df.to_parquet(tmp_path / "t.parquet")
    ds = load_dataset(tmp_path / "t.parquet")
    assert ds.classes == ("1", "2", "3") and ds.labels("b").tolist() == [-1, 2]
    assert np.isnan(ds.X["a"][1, 1]) and ds.X["b"][:, 0].tolist() == [2.0, 3.0]


def test_sixteen_bit_images_keep_their_values_and_hidden_files_are_skipped(tmp_path):
    for cls, value in (("dark", 6553), ("light", 58981)):  # 0.1 and 0.9 of 65535
        (tmp_path / "scans" / cls).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), value, np.uint16)).save(tmp_path / "scans" / cls / "0.png")
    (tmp_path / "scans" / "dark" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    ds = load_dataset(tmp_path, image_size=4)
    assert ds.counts() == {"scans": 2}
    assert np.allclose(ds.X["scans"][:, 0].mean(axis=(1, 2)), [0.1, 0.9], atol=1e-4)


def test_a_text_column_is_found_by_its_name_and_runs_from_the_cli(tmp_path, capsys):
    from transferkit.cli import main

    words = {0: ["awful", "broken", "bad", "poor"], 1: ["great", "lovely", "good", "superb"]}
    lines = ["domain,label,text"]
    for dom, extra in (("books", "plot"), ("kitchen", "blender")):
        for i in range(24):
            c = i % 2
            lines.append(f'{dom},{("neg", "pos")[c]},"{words[c][i % 4]} {extra}, {words[c][(i + 1) % 4]}"')
    (tmp_path / "reviews.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path / "reviews.csv")
    assert ds.modality == "text" and ds.classes == ("neg", "pos")
    assert main(["run", "--dataset", str(tmp_path / "reviews.csv"), "--source", "books", "--target",
                 "kitchen", "--method", "source-only", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "preprocessing: tfidf" in out and "100.00" in out


def test_nan_in_a_table_is_reported_by_domain_row_and_column(tmp_path):
    _csv(tmp_path / "t.csv", [("domain", "label", "age", "dose"), ("a", 0, 1, 2), ("a", 1, 3, 4),
                              ("b", "", 5, 6), ("b", "", 7, "nan"), ("b", "", "", 1)])  # fmt: skip
    ds = load_dataset(tmp_path / "t.csv")
    with pytest.raises(
        TransferkitError,
        # the row as the file numbers it (1 = the first below the header), as predictions.csv and predict
        match=r"domain 'b' of 't' has NaN \(a missing value\) in 2 row\(s\), first in row 4 of the file, "
        r"column 'dose'",
    ):
        ds.to_arrays(["a"], ["b"])
    ds.to_arrays(["a"])  # a clean domain alone is fine
    assert np.isnan(ds.to_arrays(["a"], ["b"], allow_missing=True).X).sum() == 2  # for an impute step


def test_semicolon_tab_and_pipe_tables_are_read_by_their_delimiter(tmp_path):
    rows = ["domain;label;f1;note", 'a;0;1.5;"x; y"', "a;1;2;z", "b;;3;w"]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "s.csv", feature_columns=["f1"])
    assert ds.counts() == {"a": 2, "b": 1}
    assert ds.X["a"][:, 0].tolist() == [1.5, 2.0]
    (tmp_path / "t.tsv").write_text("domain\tlabel\tf1\na\t0\t1\nb\t1\t2,5\n")
    with pytest.raises(TransferkitError, match="'2,5'.*decimal comma: save the table with a decimal point"):
        load_dataset(tmp_path / "t.tsv")
    (tmp_path / "p.csv").write_text("domain|label|f1\na|0|1\nb|1|2\n")
    assert load_dataset(tmp_path / "p.csv").X["b"].tolist() == [[2.0]]
    # a comma table whose texts hold semicolons keeps the comma
    (tmp_path / "c.csv").write_text('domain,label,text\na,0,"good; really"\nb,1,"bad; sadly"\n')
    assert load_dataset(tmp_path / "c.csv").X["a"] == ["good; really"]


def test_sniff_delimiter_ignores_quoted_names():
    from transferkit.datasets.table import sniff_delimiter

    assert sniff_delimiter('"a;b",label,f1\n') == ","
    assert sniff_delimiter("domain\n") == ","
    assert sniff_delimiter("domain;label,x;f\n") == ";"


def test_image_folder_warns_about_images_it_does_not_read(tmp_path):
    for dom in ("photos", "sketches"):
        _image(tmp_path / dom / "cat" / "0.png", 10)
    _image(tmp_path / "photos" / "cat" / "session2" / "1.png", 20)  # one level too deep
    with pytest.warns(UserWarning, match=r"1 folder\(s\) under a class folder .*photos/cat/session2"):
        ds = load_dataset(tmp_path, image_size=8)
    assert ds.counts() == {"photos": 1, "sketches": 1}
    # the folder of one domain passed as root: its classes read as domains, every image unlabelled
    one = tmp_path / "one"
    for cls in ("cat", "dog"):
        _image(one / cls / "0.png", 30)
    with pytest.warns(
        UserWarning, match="no domain folder .* has class folders, so every image is unlabelled"
    ):
        ds = load_dataset(one, image_size=8)
    assert ds.labels("cat").tolist() == [-1]


def test_a_table_that_is_not_utf8_is_a_clear_error(tmp_path):
    (tmp_path / "w.csv").write_bytes("domain;label;f1\ncafé;0;1\nb;1;2\n".encode("cp1252"))
    with pytest.raises(
        TransferkitError, match=r"w.csv is not UTF-8 text \(it holds the byte 0xe9\).*CSV UTF-8"
    ):
        load_dataset(tmp_path / "w.csv")


def test_a_duplicated_column_name_is_an_error_naming_it(tmp_path):
    _csv(
        tmp_path / "f.csv", [("domain", "label", "f1", "f2", "f1"), ("a", 0, 1, 2, 999), ("b", 1, 3, 4, 999)]
    )
    with pytest.raises(TransferkitError, match=r"f.csv has two columns named 'f1' \(columns 3 and 5\)"):
        load_dataset(tmp_path / "f.csv")
    _csv(tmp_path / "l.csv", [("domain", "label", "f1", "label"), ("a", 0, 1, 1), ("b", 1, 3, 0)])
    with pytest.raises(TransferkitError, match="two columns named 'label'"):
        load_dataset(tmp_path / "l.csv")
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("pandas")
    import pyarrow.parquet as pq

    table = pa.table([["a", "b"], [0, 1], [1.0, 2.0], [3.0, 4.0]], names=["domain", "label", "x", "x"])
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(TransferkitError, match="two columns named 'x'"):
        load_dataset(tmp_path / "d.parquet")


def test_a_pandas_index_column_is_never_read_as_a_feature(tmp_path):
    rows = [("domain", "label", "f1"), ("a", 0, 1.5), ("a", 1, 2.5), ("b", "", 3.5)]
    _csv(tmp_path / "i.csv", [("", *rows[0])] + [(i, *r) for i, r in enumerate(rows[1:])])  # df.to_csv(path)
    with pytest.raises(TransferkitError, match=r"column 1 of i.csv has no name.*row numbers.*index=False"):
        load_dataset(tmp_path / "i.csv")
    _csv(tmp_path / "u.csv", [("Unnamed: 0", *rows[0])] + [(i, *r) for i, r in enumerate(rows[1:])])
    with pytest.raises(TransferkitError, match="column 1 of u.csv is named 'Unnamed: 0'.*index=False"):
        load_dataset(tmp_path / "u.csv")
    assert load_dataset(tmp_path / "u.csv", feature_columns=["f1"]).X["a"].tolist() == [[1.5], [2.5]]
    (tmp_path / "t.csv").write_text("domain,label,f1,\na,0,1,\nb,1,2,\n")  # a comma ending every line
    with pytest.raises(TransferkitError, match="column 4 of t.csv has no name.*it is empty"):
        load_dataset(tmp_path / "t.csv")


def test_labels_are_class_names_as_written(tmp_path):
    labels = ["1", "01", "2", "007", "1", "10"]
    _csv(tmp_path / "z.csv", [("domain", "label", "f1")] + [("a", v, i) for i, v in enumerate(labels)])
    ds = load_dataset(tmp_path / "z.csv")
    assert ds.classes == ("01", "1", "2", "007", "10")  # numeric order; "01" and "1" stay two classes
    assert [ds.classes[k] for k in ds.labels("a")] == labels
    _csv(
        tmp_path / "f.csv",
        [("domain", "label", "f1"), ("a", 0, 1), ("a", 1, 2), ("a", "inf", 3), ("a", "1e300", 4)],
    )
    ds = load_dataset(tmp_path / "f.csv")  # no OverflowError, no 301-digit class
    assert ds.classes == ("0", "1", "1e300", "inf") and ds.labels("a").tolist() == [0, 1, 3, 2]
    _csv(
        tmp_path / "n.csv", [("domain", "label", "f1"), ("a", 10, 1), ("a", 2, 2), ("a", -1, 3), ("b", "", 4)]
    )
    assert load_dataset(tmp_path / "n.csv").classes == ("-1", "2", "10")  # integers in numeric order
    # integer codes written as floats (pandas' export of an integer column with a gap): the integers
    _csv(tmp_path / "g.csv", [("domain", "label", "f1"), ("a", "0.0", 1), ("a", "1.0", 2), ("b", "", 3)])
    assert load_dataset(tmp_path / "g.csv").classes == ("0", "1")
    _csv(tmp_path / "h.csv", [("domain", "label", "f1"), ("a", "0.5", 1), ("a", "1.0", 2)])
    assert load_dataset(tmp_path / "h.csv").classes == ("0.5", "1.0")  # real numbers: kept as written


def test_a_parquet_list_column_is_a_clear_error(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame(
        {"domain": ["a", "b"], "label": [0, 1], "x": [1.0, 2.0], "vec": [[1.0, 2.0], [3.0, 4.0]]}
    )
    df.to_parquet(tmp_path / "v.parquet")
    with pytest.raises(TransferkitError, match="column 'vec' holds a list of values.*columns of their own"):
        load_dataset(tmp_path / "v.parquet")


def test_boolean_columns_are_numbers_in_csv_as_in_parquet(tmp_path):
    _csv(tmp_path / "b.csv", [("domain", "label", "x", "flag"), ("a", 0, 1, "True"), ("a", 1, 2, "false"),
                              ("b", "", 3, "TRUE")])  # fmt: skip
    ds = load_dataset(tmp_path / "b.csv")
    assert ds.X["a"].tolist() == [[1.0, 1.0], [2.0, 0.0]] and ds.X["b"].tolist() == [[3.0, 1.0]]
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"domain": ["a", "a", "b"], "label": [0, 1, None], "x": [1.0, 2.0, 3.0],
                  "flag": [True, False, True]}).to_parquet(tmp_path / "b.parquet")  # fmt: skip
    assert load_dataset(tmp_path / "b.parquet").X["a"].tolist() == ds.X["a"].tolist()


def test_a_column_of_words_is_a_category_with_one_0_1_column_per_value(tmp_path):
    rows = [("domain", "label", "city", "x", "size")]
    rows += [
        ("a", 0, "paris", 1, "S"),
        ("a", 1, " lyon ", 2, "M"),
        ("a", 0, "", 3, "S"),
        ("b", "", "Nice", 4, "NA"),
    ]
    _csv(tmp_path / "t.csv", rows)
    ds = load_dataset(tmp_path / "t.csv")
    # every domain's values make the columns (b's Nice too); spaces stripped, case kept; missing: all 0
    assert ds.extras["feature_names"] == ("city=Nice", "city=lyon", "city=paris", "x", "size=M", "size=S")
    assert ds.extras["categories"] == {"city": ("Nice", "lyon", "paris"), "size": ("M", "S")}
    assert ds.X["a"].tolist() == [[0, 0, 1, 1, 0, 1], [0, 1, 0, 2, 1, 0], [0, 0, 0, 3, 0, 1]]
    assert ds.X["b"].tolist() == [[1, 0, 0, 4, 0, 0]]
    # a column empty in every row gives no feature, and says so
    _csv(tmp_path / "e.csv", [("domain", "label", "x", "note"), ("a", 0, 1, ""), ("b", 1, 2, "NA")])
    with pytest.warns(UserWarning, match="column 'note' is empty in every row; it gives no feature"):
        assert load_dataset(tmp_path / "e.csv").extras["feature_names"] == ("x",)
    # true/false and decimal commas stay what they were: numbers, and the decimal comma's error
    _csv(tmp_path / "d.csv", [("domain", "label", "x"), ("a", 0, '"1,5"'), ("b", 1, '"2,5"')])
    with pytest.raises(TransferkitError, match="decimal comma"):
        load_dataset(tmp_path / "d.csv")
    # an identifier is no category: an error that says so before a thousand columns are made
    _csv(
        tmp_path / "id.csv", [("domain", "label", "id", "x")] + [("a", i % 2, f"u{i}", i) for i in range(101)]
    )
    with pytest.raises(TransferkitError, match="column 'id' holds 101 different words.*too many"):
        load_dataset(tmp_path / "id.csv")
    # percentages and prices are numbers written with a sign, not a category of that many words
    _csv(tmp_path / "u.csv", [("domain", "label", "off", "x"), ("a", 0, "12%", 1), ("b", 1, "$3.50", 2)])
    with pytest.raises(TransferkitError, match=r"column 'off' holds numbers written with a unit.*'12%'"):
        load_dataset(tmp_path / "u.csv")
    # a 0/1 column's name taken by another column of the table
    _csv(tmp_path / "n.csv", [("domain", "label", "c", "c=x"), ("a", 0, "x", 1), ("b", 1, "y", 2)])
    with pytest.raises(TransferkitError, match="'c=x' of a category column has the name of another column"):
        load_dataset(tmp_path / "n.csv")


def test_table_errors_say_how_to_fix_the_file_and_unlabelled_tables_load_for_prediction(tmp_path):
    # a word among numbers is a typo, not a category
    _csv(tmp_path / "c.csv", [("domain", "label", "x", "size"), ("a", 0, 1, "3"), ("b", 1, 2, "big")])
    with pytest.raises(
        TransferkitError, match="column 'size' row 2 holds 'big', which is not a number; the column's other"
    ):
        load_dataset(tmp_path / "c.csv")
    _csv(tmp_path / "k.csv", [("domain", "class", "x"), ("a", "cat", 1), ("b", "dog", 2)])
    with pytest.raises(
        TransferkitError, match="k.csv has no 'label' column.*--label-column class.*rename 'class' to 'label'"
    ):
        load_dataset(tmp_path / "k.csv")
    _csv(tmp_path / "new.csv", [("domain", "x"), ("a", 1), ("b", 2)])
    with pytest.raises(TransferkitError, match="no 'label' column.*an empty cell where it is unknown"):
        load_dataset(tmp_path / "new.csv")
    ds = load_dataset(tmp_path / "new.csv", labels_optional=True)  # new rows to classify: all unlabelled
    assert ds.classes == () and ds.labels("a").tolist() == [-1] and ds.X["b"].tolist() == [[2.0]]
    assert load_dataset(tmp_path / "k.csv", label_column="class", labels_optional=True).classes == (
        "cat",
        "dog",
    )


def test_mnist_m_images_are_verified_through_the_checksum_of_their_manifest(tmp_path, monkeypatch):
    from transferkit.datasets import digits

    folder = tmp_path / "mnist_m" / "mnist_m_test"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / name)
    (tmp_path / "mnist_m" / "mnist_m_test_labels.txt").write_text("a.png 3\nb.png 7\n")
    # a two-image copy stands in for the real split: its label file and manifest checksums are patched
    monkeypatch.setattr(digits, "MNISTM_LABELS", DataFile(digits.MNISTM_LABELS.path, "", None))
    manifest = "".join(
        f"{n} {hashlib.sha256((folder / n).read_bytes()).hexdigest()}\n" for n in ("a.png", "b.png")
    )
    monkeypatch.setattr(digits, "MNISTM_IMAGES_SHA256", hashlib.sha256(manifest.encode()).hexdigest())
    images, labels = digits.load_mnist_m(tmp_path)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [3, 7]
    # an image replaced by another valid PNG of the same size is found (the label file cannot see it)
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(folder / "b.png")
    with pytest.raises(TransferkitError, match="not the published test split.*download digits"):
        digits.load_mnist_m(tmp_path)
