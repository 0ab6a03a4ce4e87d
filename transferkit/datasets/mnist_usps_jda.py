"""MNIST (2000) and USPS (1800) at 16x16 grey: the sampling of the JDA and TCA papers.

Long et al. (JDA, ICCV 2013) resized both data sets to 16x16 and drew 2000 MNIST and 1800 USPS
images. The file is MATLAB v7.3 (HDF5), read with h5py: ``Xs``/``Xt`` hold one image per row with
values in [0, 1] (``row.reshape(16, 16)``), ``Ys``/``Yt`` labels 1..10 where label c is digit c-1.
``MNIST_vs_USPS.mat`` holds both domains (``USPS_vs_MNIST.mat`` is the same data swapped), so only it
is read. 1-NN on L2-normalised rows gives 65.94 (M->U) and 44.70 (U->M), the paper's NN column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transferkit.datasets.base import DatasetInfo
from transferkit.datasets.files import DataFile, locate
from transferkit.domains import DomainDataset

FILE = DataFile(
    "jda_mnist_usps/MNIST_vs_USPS.mat",
    "https://raw.githubusercontent.com/chamwen/JPDA/dba993a3212708c5df60229494560ebaae6081e7/"
    "data/MNIST_vs_USPS.mat",
    "7fbb67f14af7236e18a38dc8a0a836142361e9e720e4b763a5e2db511d306d6c",
)
CLASSES = tuple(str(d) for d in range(10))


def load(root: Path, origin: str = "") -> DomainDataset:
    import h5py

    path = locate(FILE, root, dataset=INFO.id, origin=origin)
    with h5py.File(path, "r") as f:
        Xm, Xu = np.asarray(f["Xs"], dtype=np.float64), np.asarray(f["Xt"], dtype=np.float64)
        ym = np.asarray(f["Ys"]).ravel().astype(np.int64) - 1
        yu = np.asarray(f["Yt"]).ravel().astype(np.int64) - 1
    return DomainDataset(
        INFO.id, {"mnist": Xm, "usps": Xu}, {"mnist": ym, "usps": yu}, CLASSES,
        description=INFO.description, modality="tabular",
        extras={"image_shape": (16, 16)},
    )  # fmt: skip


INFO = DatasetInfo(
    id="mnist-usps-jda",
    description="MNIST (2000) and USPS (1800) digits, 16x16 grey as 256 features (JDA split)",
    counts={"mnist": 2000, "usps": 1800},
    n_classes=10,
    shape=(256,),
    modality="tabular",
    files=(FILE,),
    preprocess=("normalize:norm=l2",),
    reference="Long et al., Transfer feature learning with joint distribution adaptation, ICCV 2013",
    loader=load,
)
