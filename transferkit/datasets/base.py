"""What every built-in data set declares about itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from transferkit.datasets.files import DataFile


@dataclass(frozen=True)
class DatasetInfo:
    """The facts about a built-in data set, known without reading any file.

    ``counts`` maps each domain to its number of samples; ``shape`` is the shape of one sample;
    ``preprocess`` names the standard preprocessing of the field for this data (used when a run
    does not choose its own).
    """

    id: str
    description: str
    counts: dict[str, int]
    n_classes: int
    shape: tuple
    modality: str
    files: tuple[DataFile, ...]
    preprocess: tuple[str, ...] = ()
    reference: str = ""
    loader: Callable | None = field(default=None, compare=False, repr=False)

    @property
    def domains(self) -> list[str]:
        return list(self.counts)

    @property
    def tasks(self) -> list[tuple[str, str]]:
        """Every ordered (source, target) pair of distinct domains."""
        return [(s, t) for s in self.counts for t in self.counts if s != t]
