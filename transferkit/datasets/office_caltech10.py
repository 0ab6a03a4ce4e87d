"""Office-Caltech10 with SURF features (Gong et al., CVPR 2012, the GFK release).

Four domains of the same 10 object classes: amazon (product photos), caltech (Caltech-256), dslr and
webcam (Office-31). Each image is an 800-bin bag of visual words of SURF descriptors. The field's
standard preprocessing, used by the published 1NN/PCA/TCA/GFK/JDA/CORAL tables, divides each row by
its sum and z-scores each domain; with it, 1-NN reproduces the published 1NN row exactly (a test).

The four files (0.3 MB) are embedded in the package, so this data set needs no data root.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from transferkit.datasets.base import DatasetInfo
from transferkit.datasets.files import DataFile, locate, verify
from transferkit.domains import DomainDataset
from transferkit.errors import DataMissingError

_BASE = (
    "https://raw.githubusercontent.com/viggin/domain-adaptation-toolbox/"
    "c04dd84d7dfabea06eb44e07cda039df56cd8cc4/ToRelease_GFK/data/"
)
_FILES = {
    "amazon": ("amazon", "df32548b994e18d364c99e1f317e1fae100597259f0423a41b90f4f68187bb1f"),
    "caltech": ("Caltech10", "4f9334c8ced489d5054de97a5fd51a61f017f3bcd1f38c9a85c6d78cb9d7bda5"),
    "dslr": ("dslr", "44d673c68e1d07b837893aa74dba3b986e4a6cc3fd66f0dd357683bdef059216"),
    "webcam": ("webcam", "a6a9c78b4b7181dfbb58bcfd351d4ebd737f171c31247b8884948aa156d3f700"),
}
FILES = {
    d: DataFile(f"office_caltech10_surf/{stem}_SURF_L10.mat", f"{_BASE}{stem}_SURF_L10_imgs.mat", sha)
    for d, (stem, sha) in _FILES.items()
}
CLASSES = (
    "back_pack", "bike", "calculator", "headphones", "keyboard",
    "laptop_computer", "monitor", "mouse", "mug", "projector",
)  # fmt: skip


def _embedded(spec: DataFile) -> Path:
    name = Path(spec.path).name
    return verify(Path(str(resources.files("transferkit.datasets") / "_embedded" / name)), spec)


def load(root: Path, origin: str = "") -> DomainDataset:
    from scipy.io import loadmat

    X, y = {}, {}
    for domain, spec in FILES.items():
        try:
            path = locate(spec, root, dataset=INFO.id, origin=origin)
        except DataMissingError:
            path = _embedded(spec)  # the zero-setup default: same file, same checksum
        mat = loadmat(path)
        X[domain] = mat["fts"].astype(np.float64)
        y[domain] = mat["labels"].ravel().astype(np.int64) - 1
    return DomainDataset(INFO.id, X, y, CLASSES, description=INFO.description, modality="tabular")


INFO = DatasetInfo(
    id="office-caltech10",
    description="Office-Caltech10, SURF bag of words (800-d), 10 object classes, 4 domains",
    counts={"amazon": 958, "caltech": 1123, "dslr": 157, "webcam": 295},
    n_classes=10,
    shape=(800,),
    modality="tabular",
    files=tuple(FILES.values()),
    preprocess=("normalize:norm=l1", "standardize"),
    reference="Gong et al., Geodesic flow kernel for unsupervised domain adaptation, CVPR 2012",
    loader=load,
)
