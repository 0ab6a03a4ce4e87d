"""Data sets: the built-in benchmarks and loaders for your own folders and tables.

>>> from transferkit.datasets import load_dataset
>>> ds = load_dataset("office-caltech10")      # embedded, needs no data root
>>> ds.counts()
{'amazon': 958, 'caltech': 1123, 'dslr': 157, 'webcam': 295}

``load_dataset`` also accepts a path: a folder of images per domain
(``root/<domain>/<class>/<image>``) or a CSV/parquet table with ``domain`` and ``label`` columns.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from transferkit.datasets.base import DatasetInfo
from transferkit.datasets.files import DataFile, data_root, download_file, root_origin
from transferkit.datasets.image_folder import load_image_folder
from transferkit.datasets.table import TABLE_READING, load_table
from transferkit.domains import DomainDataset
from transferkit.errors import TransferkitError, unknown_name
from transferkit.progress import progress_bar

__all__ = [
    "DatasetInfo",
    "dataset_info",
    "download",
    "is_present",
    "list_datasets",
    "load_dataset",
    "load_image_folder",
    "load_table",
]

# The one table of built-in data sets: id -> module defining INFO.
_DATASETS = {
    "amazon-reviews": "transferkit.datasets.amazon_reviews",
    "digits": "transferkit.datasets.digits",
    "mnist-usps-jda": "transferkit.datasets.mnist_usps_jda",
    "office-caltech10": "transferkit.datasets.office_caltech10",
}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq"}


def list_datasets() -> list[str]:
    """The ids of the built-in data sets."""
    return sorted(_DATASETS)


def dataset_info(dataset: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a built-in data set."""
    if dataset not in _DATASETS:
        raise unknown_name("data set", dataset, _DATASETS)
    return importlib.import_module(_DATASETS[dataset]).INFO


def is_present(dataset: str, root=None) -> bool:
    """Whether every file of a built-in data set is in the data root (or embedded)."""
    info = dataset_info(dataset)
    if info.id == "office-caltech10":
        return True
    base = data_root(root)
    if not all((base / f.path).is_file() for f in info.files):
        return False
    if info.id == "digits":  # and every MNIST-M image its label file lists
        from transferkit.datasets.digits import MNISTM_LABELS, mnistm_image_files

        try:
            images = mnistm_image_files(base / MNISTM_LABELS.path)
        except (OSError, ValueError, IndexError):
            return False
        return all((base / f.path).is_file() for f in images)
    return True


def load_dataset(
    dataset: str | os.PathLike, root=None, *, labels_optional: bool = False, **kwargs
) -> DomainDataset:
    """Load a built-in data set by id, or your own data from a folder or a table.

    Parameters
    ----------
    dataset : str or path
        A built-in id (see :func:`list_datasets`), an image folder, or a ``.csv``/``.tsv``/``.parquet`` file.
    root : path, optional
        The data root; default ``$TRANSFERKIT_DATA``, then ``~/.cache/transferkit``.
    labels_optional : bool
        For a table: one without a ``label`` column loads with every row unlabelled (new data to
        predict) instead of being an error. Image folders need no flag (images directly under a
        domain folder are unlabelled); built-in data sets have their labels.
    **kwargs
        Passed to :func:`load_image_folder` or :func:`load_table` for your own data.
    """
    name = str(dataset)
    reading = sorted(k for k in kwargs if k in TABLE_READING)
    if reading and Path(name).expanduser().suffix.lower() not in TABLE_SUFFIXES:
        what = (
            "a built-in data set" if name in _DATASETS else f"{name}, which is not a .csv/.tsv/.parquet table"
        )
        flags = ", ".join(f"{k} (--{k.replace('_', '-')})" for k in reading)
        raise TransferkitError(
            f"{flags}: how to read the columns of a table of your own; {what} has no columns to name. "
            "Leave them out."
        )
    if name in _DATASETS:
        info = dataset_info(name)
        return info.loader(data_root(root), root_origin(root))
    path = Path(name).expanduser()
    if path.is_dir():
        return load_image_folder(path, **kwargs)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return load_table(path, labels_optional=labels_optional, **kwargs)
    err = unknown_name("data set", name, _DATASETS)
    raise TransferkitError(
        f"{err} A path to your own data must be an existing folder of images or a .csv/.tsv/.parquet file."
    )


def download(dataset: str, root=None, *, progress: bool = True) -> Path:
    """Download every file of a built-in data set into the data root, verifying checksums."""
    info = dataset_info(dataset)
    base = data_root(root)
    files: list[DataFile] = list(info.files)
    for f in progress_bar(files, desc=f"{dataset} files", disable=not progress):
        if info.id == "office-caltech10":  # embedded: copied from the package, no network
            _copy_embedded(f, base)
            continue
        download_file(f, base)
    if info.id == "digits":  # MNIST-M images are listed in the verified label file
        from transferkit.datasets.digits import MNISTM_LABELS, mnistm_image_files, verify_mnistm_images
        from transferkit.datasets.files import sha256sum

        images = mnistm_image_files(base / MNISTM_LABELS.path)
        for f in progress_bar(images, desc="MNIST-M images", disable=not progress):
            download_file(f, base)
        # verified together, through their manifest's checksum
        digests = [(Path(f.path).name, sha256sum(base / f.path)) for f in images]
        verify_mnistm_images(digests, base / Path(images[0].path).parent if images else base)
    return base


def _copy_embedded(spec: DataFile, base: Path) -> Path:
    """Place an embedded file of office-caltech10 in the data root (a damaged copy there is replaced)."""
    from transferkit.datasets.files import verify
    from transferkit.datasets.office_caltech10 import _embedded
    from transferkit.io import atomic_write_bytes

    dest = base / spec.path
    try:
        return verify(dest, spec)
    except TransferkitError:
        pass  # missing or damaged
    try:
        return atomic_write_bytes(dest, _embedded(spec).read_bytes())
    except OSError as exc:
        raise TransferkitError(
            f"cannot write {spec.path} into the data root {base}: {exc.strerror or exc}. Pass "
            "--data-root (or set TRANSFERKIT_DATA) to a folder you can write."
        ) from None
