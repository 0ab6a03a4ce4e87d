"""Progress bars (tqdm), silenced with ``--quiet`` or when output is not a terminal-like stream."""

from __future__ import annotations

import sys
from collections.abc import Iterable


def progress_bar(iterable: Iterable, *, desc: str = "", total: int | None = None, disable: bool = False):
    """Wrap ``iterable`` in a tqdm bar written to stderr; ``disable=True`` returns it unchanged."""
    if disable:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)
