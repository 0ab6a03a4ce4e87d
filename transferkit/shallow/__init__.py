"""Shallow transfer methods: scikit-learn estimators, one file each (see :mod:`transferkit.registry`)."""

from transferkit.shallow.base import BaseAdapter, BaseReweighter, DAClassifier

__all__ = ["BaseAdapter", "BaseReweighter", "DAClassifier"]
