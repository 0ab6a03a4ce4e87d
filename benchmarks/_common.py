"""Argument checks shared by the benchmark scripts: each mistake is one ``usage`` line (exit code 2)
before any data is loaded or any file written, never a traceback or a silently wrong table."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from transferkit.errors import repeated

RESULTS = Path(__file__).resolve().parent / "results"
"""The committed results: written only by the commands recorded in them."""


def check_list(p: argparse.ArgumentParser, option: str, values, *, minimum: int | None = None) -> None:
    """Each value named once (a repeated one ran twice: duplicate rows, counted twice in the means) and,
    with ``minimum``, every one at least that."""
    if values is None:
        return
    twice = repeated(values)
    if twice:
        p.error(f"{option}: {twice[0]} is named twice; name each once")
    if minimum is not None:
        low = [v for v in values if v < minimum]
        if low:
            p.error(f"{option} takes whole numbers >= {minimum}, got {low[0]}")


def check_at_least(p: argparse.ArgumentParser, option: str, value, minimum: int = 1) -> None:
    """A number option that is left out (None) or at least ``minimum`` (0 and negative values were
    taken silently: ``--epochs 0`` ran the suite's epochs)."""
    if value is not None and value < minimum:
        p.error(f"{option} must be >= {minimum}, got {value}")


def is_committed(out: str | Path) -> bool:
    """Whether ``out`` is (under) benchmarks/results, where the committed results are."""
    out = Path(out).resolve()
    return out == RESULTS or RESULTS in out.parents


def refuse_changed_defaults(
    p: argparse.ArgumentParser, args: argparse.Namespace, ignore: tuple[str, ...] = ()
) -> None:
    """A script without ``--resume`` rewrites its whole folder: a run with any setting other than the
    defaults (a smoke test, a subset) must not write over the committed results, which the defaults
    made; it names a scratch ``--out``."""
    if not is_committed(args.out):
        return
    changed = [
        "--" + k.replace("_", "-")
        for k, v in vars(args).items()
        if k != "out" and k not in ignore and v != p.get_default(k)
    ]
    if changed:
        p.error(
            f"{', '.join(changed)} changed from the defaults that made the committed results in "
            f"{args.out}: name a scratch folder with --out (e.g. /tmp/bench)"
        )


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """``rows`` as a CSV file with the header ``columns``, written atomically."""
    import io

    from transferkit.io import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def refuse_overwrite(p: argparse.ArgumentParser, out: Path, keep: bool) -> None:
    """A run without ``--resume`` (or ``--replace``) into a folder that holds results rewrote
    ``results.csv`` with its own rows alone: every earlier row was lost at its first run."""
    if not keep and read_rows(out / "results.csv"):
        p.error(
            f"{out} already holds results: pass --resume to add to them (--replace where offered, to run "
            "these again in place of theirs), or name another --out (remove the folder to start over)"
        )
