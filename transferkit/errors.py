"""User-facing errors.

Every mistake a user can make (an unknown name, a wrong shape, NaN values, a missing file) raises
:class:`TransferkitError` with a message that says what was wrong and how to fix it. The CLI turns it
into a one-line message and exit code 2; library users can catch it as a ``ValueError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["TransferkitError", "DataMissingError", "check_flag", "did_you_mean", "repeated", "unknown_name"]


class TransferkitError(ValueError):
    """Something the user asked for cannot be done; the message says why and what to do."""


class DataMissingError(TransferkitError, FileNotFoundError):
    """A data file is not where transferkit looked for it."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest valid names, or ``""`` when none is close."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if not close:
        lowered = [c for c in choices if name.lower() in c.lower() or c.lower() in name.lower()]
        close = lowered[:3]
    if not close:
        return ""
    return " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> TransferkitError:
    """Build the error for an unknown data set, domain, method or parameter name."""
    choices = sorted(set(choices))
    return TransferkitError(
        f"unknown {kind} '{name}'.{did_you_mean(name, choices)} Valid: {', '.join(choices)}."
    )


def is_whole(value) -> bool:
    """An integer (Python's or numpy's), not a bool and not a float such as 2.0."""
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_whole(name: str, value, minimum: int = 0) -> int:
    """``value`` as an int, or a :class:`TransferkitError` unless it is a whole number >= ``minimum``
    (a count: ``1.7`` epochs must not quietly become one)."""
    if not (is_whole(value) and value >= minimum):
        raise TransferkitError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)


def repeated(values) -> list:
    """The values named more than once, each once, in the order their second mention comes (a list
    option naming a method, seed or domain twice would run or count it twice)."""
    seen, twice = [], []
    for v in values:
        if v in seen and v not in twice:
            twice.append(v)
        seen.append(v)
    return twice


def check_flag(name: str, value) -> bool:
    """``value`` as a bool, or a :class:`TransferkitError` when it is not ``True``/``False``.

    A setting such as ``warmup="false"`` passed from Python would otherwise count as on (a non-empty
    string is true); the command line turns ``warmup=false`` into ``False`` before it gets here.
    """
    import numpy as np

    if isinstance(value, (bool, np.bool_)):  # numpy's True from a comparison is a flag too
        return bool(value)
    raise TransferkitError(f"{name} must be true or false, got {value!r}.")
