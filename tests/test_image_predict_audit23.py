"""`transferkit predict` on a folder of images of one's own, with a shallow run's saved model."""

from __future__ import annotations

import csv
import os
import shutil

import pytest
from conftest import image_folder

from transferkit.cli import main


@pytest.mark.skipif(os.name == "nt", reason="file names there are always Unicode")
def test_predict_writes_a_file_name_that_is_not_utf8(tmp_path, capsys):
    # a name from an old archive (Latin-1 bytes): the CSV was not written, a UnicodeEncodeError traceback
    folder = image_folder(tmp_path / "imgs", per_class=3)
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(folder), "--source", "a", "--target", "b",
                 "--method", "source-only", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    new = tmp_path / "new"
    (new / "c" / "dog").mkdir(parents=True)
    try:
        shutil.copy(folder / "b" / "dog" / "2.png", os.fsencode(new / "c" / "dog") + b"/chien\xe9.png")
    except OSError:
        pytest.skip("this file system takes only UTF-8 file names")
    shutil.copy(folder / "b" / "dog" / "1.png", new / "c" / "dog" / "chien.png")
    capsys.readouterr()
    assert main(["predict", str(out), "--dataset", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    assert [r["file"] for r in rows] == ["c/dog/chien.png", "c/dog/chien\\xe9.png"]
    assert [r["label"] for r in rows] == ["dog", "dog"]


def test_an_empty_class_folder_is_not_named_among_the_labels_the_model_lacks(tmp_path):
    import warnings

    from conftest import image_folder

    from transferkit.datasets import load_dataset
    from transferkit.predict import predict_saved

    folder = image_folder(tmp_path / "imgs", per_class=4)
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(folder), "--source", "a", "--target", "b", "--method", "source-only",
                 "--quiet", "--out", str(out)]) == 0  # fmt: skip
    (folder / "b" / "empty").mkdir()  # a class folder without images: it labels no row
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_saved(out, load_dataset(folder), domains=["b"])
    assert not [w for w in caught if "not among the model's classes" in str(w.message)]
