"""Digits: MNIST, USPS and MNIST-M test splits as images of one common shape.

Every image is ``(3, 32, 32)`` float32 in [0, 1], so that any pair of domains can be used with the
same network. Why this shape:

* MNIST-M is 32x32 RGB, and its digits fill about a 20x20 box, as MNIST's do.
* MNIST digits are size-normalised into a 20x20 box centred in a 28x28 frame: padding 2 pixels on
  each side gives 32x32 with the digit scale unchanged.
* USPS digits fill their whole 16x16 frame. A plain resize to 32x32 would make them 60% larger than
  MNIST digits (a small LeNet drops from about 91% to 77% MNIST->USPS that way), so each USPS image
  is resized to 20x20 and padded by 6 pixels: the same 20x20 box as MNIST.
* Grey images are repeated over three channels.

Sources: MNIST test split (IDX, gzip), USPS test split (libsvm text, bz2, values in [-1, 1], label c
is digit c-1), MNIST-M test split (PNG folder plus a ``file label`` list).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
from pathlib import Path

import numpy as np

from transferkit.datasets.base import DatasetInfo
from transferkit.datasets.files import DataFile, locate
from transferkit.domains import DomainDataset
from transferkit.errors import DataMissingError, TransferkitError

SHAPE = (3, 32, 32)
CLASSES = tuple(str(d) for d in range(10))
_GH = "https://raw.githubusercontent.com/"
MNIST_IMAGES = DataFile(
    "mnist/t10k-images-idx3-ubyte.gz",
    _GH + "anax32/data/c7634e4b6122b2227c50a71ba962d63fe2856c16/mnist/t10k-images-idx3-ubyte.gz",
    "893c89736f094c134ee8b22757c4417297db16fba5654d64dfd11a2d2b498023",
)
MNIST_LABELS = DataFile(
    "mnist/t10k-labels-idx1-ubyte.gz",
    _GH + "anax32/data/c7634e4b6122b2227c50a71ba962d63fe2856c16/mnist/t10k-labels-idx1-ubyte.gz",
    "7e7ba33ca5a726f6f9ad100a3efbd8dddfdb698420cb6bdc9fa0f95020ce1514",
)
USPS = DataFile(
    "usps/usps.t.bz2",
    _GH + "team-approx-bayes/kpriors/7113fe83a025bc6eba02b4d9fa8c9f10e04c6366/data/usps.t.bz2",
    "a9c0164e797d60142a50604917f0baa604f326e9a689698763793fa5d12ffc4e",
)
_MNISTM_BASE = _GH + "joffery/M-ADA/4763eeb865cf4f4852163e350f9474c99319705f/data/mnist_m/"
MNISTM_LABELS = DataFile(
    "mnist_m/mnist_m_test_labels.txt",
    _MNISTM_BASE + "mnist_m_test_labels.txt",
    "2e8124bc2a92b483930141f677e09cb1c5a3fe99504e05fe59877d92766d7d61",
)


# The 9,001 MNIST-M images are separate files, too many for one checksum each here. Their manifest
# is checksummed instead: one line "<file name> <sha256 of the file>" per image, in the order of the
# (checksummed) label file; its sha256 below covers every image's bytes.
MNISTM_IMAGES_SHA256 = "cbc831083fabb2242a5ebf95ebfb5c9ad50ced7197065bf87d008d15e9fe36f0"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # each image is checked for it on download (an error page is not)


def mnistm_image_files(labels_path: Path) -> list[DataFile]:
    """The PNG files listed in the MNIST-M label file (verified together by :func:`verify_mnistm_images`)."""
    names = [line.split()[0] for line in labels_path.read_text().splitlines() if line.strip()]
    return [
        DataFile(f"mnist_m/mnist_m_test/{n}", _MNISTM_BASE + f"mnist_m_test/{n}", None, magic=PNG_SIGNATURE)
        for n in names
    ]


def mnistm_manifest_sha256(digests: list[tuple[str, str]]) -> str:
    """The sha256 of the image manifest: ``(file name, sha256 of its bytes)`` pairs in label-file order."""
    h = hashlib.sha256()
    for name, digest in digests:
        h.update(f"{name} {digest}\n".encode())
    return h.hexdigest()


def verify_mnistm_images(digests: list[tuple[str, str]], folder: Path) -> None:
    """Raise a clear error unless the images are byte for byte the published MNIST-M test split."""
    got = mnistm_manifest_sha256(digests)
    if got != MNISTM_IMAGES_SHA256:
        raise TransferkitError(
            f"the MNIST-M images in {folder} are not the published test split (the sha256 of their "
            f"manifest is {got}, expected {MNISTM_IMAGES_SHA256}): at least one image was changed or "
            f"replaced. Delete the folder and download it again with `transferkit download digits` or "
            f"from {_MNISTM_BASE}mnist_m_test/."
        )


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise TransferkitError(f"{path} is not an IDX file of the expected kind (magic {magic}).")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _to_common(grey: np.ndarray, pad: int) -> np.ndarray:
    """(n, h, w) grey in [0, 1] -> (n, 3, h + 2 pad, w + 2 pad) float32."""
    grey = np.pad(grey.astype(np.float32), ((0, 0), (pad, pad), (pad, pad)))
    return np.repeat(grey[:, None], 3, axis=1)


def load_mnist(root: Path, origin: str = "") -> tuple[np.ndarray, np.ndarray]:
    images = _read_idx(locate(MNIST_IMAGES, root, dataset=INFO.id, origin=origin), 0x0803)
    labels = _read_idx(locate(MNIST_LABELS, root, dataset=INFO.id, origin=origin), 0x0801)
    return _to_common(images / 255.0, pad=2), labels.astype(np.int64)


def load_usps(root: Path, origin: str = "") -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    path = locate(USPS, root, dataset=INFO.id, origin=origin)
    rows, labels = [], []
    with bz2.open(path, "rt") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            labels.append(int(float(parts[0])) - 1)
            x = np.zeros(256, dtype=np.float32)  # libsvm omits zeros, i.e. mid-grey
            for item in parts[1:]:
                i, v = item.split(":")
                x[int(i) - 1] = float(v)
            rows.append(x)
    grey16 = (np.stack(rows).reshape(-1, 16, 16) + 1.0) / 2.0
    grey20 = np.stack(
        [np.asarray(Image.fromarray(g, mode="F").resize((20, 20), Image.BILINEAR)) for g in grey16]
    )
    return _to_common(np.clip(grey20, 0.0, 1.0), pad=6), np.asarray(labels, dtype=np.int64)


def load_mnist_m(root: Path, origin: str = "") -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    labels_path = locate(MNISTM_LABELS, root, dataset=INFO.id, origin=origin)
    entries = [line.split() for line in labels_path.read_text().splitlines() if line.strip()]
    images = np.empty((len(entries),) + SHAPE, dtype=np.float32)
    folder = labels_path.parent / "mnist_m_test"
    digests = []
    for k, (name, _) in enumerate(entries):
        p = folder / name
        if not p.exists():
            raise DataMissingError(
                f"data set 'digits': image {p} listed in {labels_path.name} is missing; get the "
                f"folder with `transferkit download digits` or from {_MNISTM_BASE}mnist_m_test/."
            )
        data = p.read_bytes()  # hashed and decoded from the same bytes
        digests.append((name, hashlib.sha256(data).hexdigest()))
        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        except (OSError, SyntaxError, ValueError) as exc:  # not an image, a truncated PNG
            raise TransferkitError(
                f"{p} is not a readable image ({type(exc).__name__}): it is damaged. Delete it and run "
                f"`transferkit download digits` again, or get it from {_MNISTM_BASE}mnist_m_test/{name}."
            ) from None
        if arr.shape != (32, 32, 3):
            raise TransferkitError(f"{p} is {arr.shape[:2]}, expected 32x32.")
        images[k] = arr.transpose(2, 0, 1)
    verify_mnistm_images(digests, folder)
    return images, np.asarray([int(lbl) for _, lbl in entries], dtype=np.int64)


def load(root: Path, origin: str = "", domains=None) -> DomainDataset:
    loaders = {"mnist": load_mnist, "usps": load_usps, "mnist_m": load_mnist_m}
    X, y = {}, {}
    for d in domains or loaders:
        X[d], y[d] = loaders[d](root, origin)
    return DomainDataset(INFO.id, X, y, CLASSES, description=INFO.description, modality="image")


INFO = DatasetInfo(
    id="digits",
    description="MNIST, USPS and MNIST-M test splits as (3, 32, 32) images in [0, 1]",
    counts={"mnist": 10000, "usps": 2007, "mnist_m": 9001},
    n_classes=10,
    shape=SHAPE,
    modality="image",
    files=(MNIST_IMAGES, MNIST_LABELS, USPS, MNISTM_LABELS),
    preprocess=(),
    reference="LeCun et al. 1998; Hull 1994; Ganin et al., JMLR 2016 (MNIST-M)",
    loader=load,
)
