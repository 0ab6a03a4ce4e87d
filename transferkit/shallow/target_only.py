"""Target-only: the oracle that trains on target labels (a ceiling, never a headline number)."""

from __future__ import annotations

from transferkit.shallow.source_only import SourceOnly


class TargetOnly(SourceOnly):
    """Target-only oracle: a classifier trained and tested on the target domain with its labels.

    It reads target labels, so it is reported with ``selection = oracle``. The experiment runner
    evaluates it by stratified k-fold cross-validation within the target (``n_folds``): in each fold
    the training part plays the source and the held-out part the target, so preprocessing behaves
    exactly as in an adaptation run, and no row is ever predicted by a model that saw its label.
    """

    family = "baseline"
    role = "oracle"
    requires_target_labels = True

    def __init__(self, n_folds: int = 5):
        self.n_folds = n_folds
