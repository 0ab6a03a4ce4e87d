"""Multi-domain sentiment data (Blitzer et al., ACL 2007), the balanced labelled set.

Four product domains (books, dvd, electronics, kitchen), 1000 positive and 1000 negative reviews
each, in pseudo-XML ``.review`` files (latin-1). ``X[d]`` is a 1-d array of review texts (the
``<review_text>`` element); labels are 0 (negative) and 1 (positive). Turn texts into features with
the ``tfidf`` preprocessing step, or with sentence embeddings.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from transferkit.datasets.base import DatasetInfo
from transferkit.datasets.files import DataFile, locate
from transferkit.domains import DomainDataset

_BASE = "https://raw.githubusercontent.com/bzantium/bert-AAD/3bf19a1d3da519bc3b9b8d7f8cf6f7bcb6ac5d52/data/"
_SHA = {
    ("books", "negative"): "4cd64715074b9a15587d69fe31d1f77b3baddec17dfbb0f35c558e3fddd63029",
    ("books", "positive"): "a7322ce98f6d37c8ae6531c4efcc0503b691717b39c0e64cfbb321ac9cabaa55",
    ("dvd", "negative"): "740259c8bbe6694ee350305c46f2777454803d00000f5d3402db7f282b4b5910",
    ("dvd", "positive"): "a25877855d2a1cfcb5b1dc6ac1a9fd29517c089743e59a51ce8c8f17403c0ac9",
    ("electronics", "negative"): "e8ab164d5cdea3be914afed4cffc41706d56de29f832c78acb3cccd541de8021",
    ("electronics", "positive"): "e5b048ded874b6c97354e3ce683f8f106199a6b586e4d9e7632d2fe021f4263d",
    ("kitchen", "negative"): "fc647f24f10e65e14d26f788185125c016451a45940252fa40aedfde51ed6902",
    ("kitchen", "positive"): "53044cb91876146aee00c7af3a35a99e310e06fa9d70700c31bd49cf4b5bbc93",
}
FILES = {
    key: DataFile(f"amazon_reviews/{key[0]}/{key[1]}.review", f"{_BASE}{key[0]}/{key[1]}.review", sha)
    for key, sha in _SHA.items()
}
CLASSES = ("negative", "positive")
_TEXT = re.compile(r"<review_text>\s*(.*?)\s*</review_text>", re.DOTALL)


def parse_reviews(path: Path) -> list[str]:
    """The review texts of one ``.review`` file, whitespace-normalised."""
    raw = path.read_text(encoding="latin-1")
    return [" ".join(html.unescape(t).split()) for t in _TEXT.findall(raw)]


def load(root: Path, origin: str = "") -> DomainDataset:
    X, y = {}, {}
    for domain in INFO.counts:
        texts, labels = [], []
        for label, polarity in enumerate(CLASSES):
            reviews = parse_reviews(locate(FILES[domain, polarity], root, dataset=INFO.id, origin=origin))
            texts += reviews
            labels += [label] * len(reviews)
        X[domain] = np.asarray(texts, dtype=object)
        y[domain] = np.asarray(labels, dtype=np.int64)
    return DomainDataset(INFO.id, X, y, CLASSES, description=INFO.description, modality="text")


INFO = DatasetInfo(
    id="amazon-reviews",
    description="Amazon product reviews, binary sentiment, 4 domains of 2000 texts",
    counts={"books": 2000, "dvd": 2000, "electronics": 2000, "kitchen": 2000},
    n_classes=2,
    shape=(),
    modality="text",
    files=tuple(FILES.values()),
    preprocess=("tfidf",),
    reference="Blitzer et al., Biographies, Bollywood, Boom-boxes and Blenders, ACL 2007",
    loader=load,
)
