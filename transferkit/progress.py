"""Progress bars (tqdm) on stderr, silenced with ``--quiet``."""

from __future__ import annotations

import sys
from collections.abc import Iterable


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str = "",
    total: int | None = None,
    disable: bool = False,
    initial: int = 0,
):
    """A tqdm bar on stderr over ``iterable`` (or updated by hand with ``total``); ``disable`` hides it.

    A disabled bar still iterates and accepts ``update``/``set_postfix_str``/``close``, so callers
    never branch on it.
    """
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        desc=desc,
        total=total,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        disable=disable,
        initial=initial,
    )
