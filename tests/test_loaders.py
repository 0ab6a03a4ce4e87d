"""The user's own data (image folders, CSV and parquet tables), the data root, checksums, downloads."""

from __future__ import annotations

import hashlib

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
    with pytest.raises(TransferkitError, match="unknown column.*'domain'"):
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
