"""Your own tabular data: a CSV or parquet file with a domain column and a label column.

Every other numeric column is a feature (or name them with ``feature_columns``); a text column can
be used instead with ``text_column``, and a column named ``text`` is used so without being named
(which is how ``transferkit run --dataset reviews.csv`` reads a table of texts).
Labels may be integers or class names; a missing label means
unknown (-1), as for an unlabelled target domain: an empty cell, a null in parquet, or one of the
usual missing-value markers ``NA``, ``N/A``, ``NaN``, ``nan``, ``null``, ``NULL``, ``None``, ``<NA>``
(spelled exactly so: a class called ``none`` stays a class). A label ``-1`` beside labels counted from
0 is kept as a class, with a warning, since ``-1`` means unknown in transferkit's arrays. CSV is read
with the standard library (a byte-order mark, as Excel writes, is fine); its delimiter is the one of
comma, semicolon, tab and ``|`` that the header row uses most (a ``.tsv`` file is tab-separated), so
the semicolon files of spreadsheets set to a decimal comma load too (their numbers must use a
decimal point: a clear error says so otherwise). Parquet needs pandas with pyarrow
(``pip install pandas pyarrow``).
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from transferkit.domains import UNLABELLED, DomainDataset
from transferkit.errors import TransferkitError, unknown_name

_MISSING = {"", "na", "nan", "none", "null"}  # in feature columns, any case
_MISSING_LABELS = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "<NA>"}  # exactly so
DELIMITERS = (",", ";", "\t", "|")


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV file's header line: the one of ``DELIMITERS`` it holds most often
    outside quotes (a comma when it holds none: a table with one column)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])  # the first of the most frequent: comma on a tie
    return best if counts[best] > 0 else ","


def _read_columns(path: Path) -> dict[str, list]:
    if path.suffix.lower() in {".parquet", ".pq"}:
        try:
            import pandas as pd
        except ImportError:
            raise TransferkitError(
                f"reading {path} needs pandas and pyarrow: pip install pandas pyarrow"
            ) from None
        df = pd.read_parquet(path)
        # nulls of every kind (None, NaN, pd.NA, NaT) are None, not the text "<NA>" or "nan"
        return {str(c): [None if pd.isna(v) else v for v in df[c].tolist()] for c in df.columns}
    try:
        return _read_csv(path)
    except UnicodeDecodeError as exc:
        raise TransferkitError(
            f"{path} is not UTF-8 text (it holds the byte {exc.object[exc.start]:#04x}); save it as "
            "UTF-8 (in Excel: 'CSV UTF-8'), or re-encode it, e.g. iconv -f cp1252 -t utf-8."
        ) from None


def _read_csv(path: Path) -> dict[str, list]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(f.readline())
        f.seek(0)
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise TransferkitError(f"{path} is empty; expected a header row.")
        cols: dict[str, list] = {c: [] for c in reader.fieldnames}
        for row in reader:
            if None in row or None in row.values():
                raise TransferkitError(
                    f"{path} line {reader.line_num} has {'more' if None in row else 'fewer'} cells than "
                    f"the header ({len(cols)}); fix that line (a text with a comma needs quotes)."
                )
            for c in cols:
                cols[c].append(row[c])
    return cols


def _is_decimal_comma(v: str) -> bool:
    try:
        float(v.strip().replace(",", ".", 1))
    except ValueError:
        return False
    return v.count(",") == 1


def _as_float(values: list, column: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            missing = v is None or (isinstance(v, str) and v.strip().lower() in _MISSING)
            out[i] = np.nan if missing else float(v)
        except (TypeError, ValueError):
            comma = isinstance(v, str) and _is_decimal_comma(v)
            raise TransferkitError(
                f"column '{column}' row {i + 1} holds '{v}', which is not a number; "
                + (
                    "it looks like a decimal comma: save the table with a decimal point (in a "
                    "spreadsheet, set the decimal separator to '.' before exporting)."
                    if comma
                    else "name the numeric features with feature_columns, or, for texts, call the column "
                    "'text' (or pass text_column)."
                )
            ) from None
    return out


def load_table(
    path,
    domain_column: str = "domain",
    label_column: str = "label",
    feature_columns: list[str] | None = None,
    text_column: str | None = None,
    name: str | None = None,
) -> DomainDataset:
    """Load a CSV or parquet table into a :class:`DomainDataset`."""
    path = Path(path)
    if not path.is_file():
        raise TransferkitError(f"table {path} does not exist.")
    cols = _read_columns(path)
    for c in (domain_column, label_column):
        if c not in cols:
            raise unknown_name(f"column in {path.name}", c, cols)
    domains = ["" if d is None else str(d).strip() for d in cols[domain_column]]
    if "" in domains:
        raise TransferkitError(
            f"{path.name}: row {domains.index('') + 1} has no '{domain_column}'; every row needs its domain."
        )
    raw_labels = ["" if v is None else str(v).strip() for v in cols[label_column]]
    known = {v for v in raw_labels if v not in _MISSING_LABELS}
    try:  # integer labels keep their numeric order
        as_int = {v: int(float(v)) for v in known}
        if any(as_int[v] != float(v) for v in known):
            raise ValueError
        classes = tuple(str(c) for c in sorted(set(as_int.values())))
        if -1 in as_int.values() and 0 in as_int.values():
            n = sum(as_int.get(v) == -1 for v in raw_labels)
            warnings.warn(
                f"{path.name}: label -1 ({n} rows) is read as a class of its own. In transferkit's arrays -1 "
                "means 'unknown'; in a table, leave an unknown label's cell empty.",
                UserWarning,
                stacklevel=2,
            )
        index = {v: classes.index(str(as_int[v])) for v in known}
    except ValueError:
        classes = tuple(sorted(known))
        index = {v: classes.index(v) for v in known}
    labels = np.asarray([index.get(v, UNLABELLED) for v in raw_labels], dtype=np.int64)
    if text_column is None and feature_columns is None and "text" in cols:
        text_column = "text"
    if text_column is not None:
        if text_column not in cols:
            raise unknown_name(f"column in {path.name}", text_column, cols)
        features = np.asarray([str(t) for t in cols[text_column]], dtype=object)
        modality = "text"
    else:
        feature_columns = feature_columns or [c for c in cols if c not in (domain_column, label_column)]
        for c in feature_columns:
            if c not in cols:
                raise unknown_name(f"column in {path.name}", c, cols)
        if not feature_columns:
            raise TransferkitError(f"{path} has no feature columns besides domain and label.")
        features = np.column_stack([_as_float(cols[c], c) for c in feature_columns])
        modality = "tabular"
    order = list(dict.fromkeys(domains))
    dom = np.asarray(domains, dtype=object)
    X = {d: features[dom == d] for d in order}
    y = {d: labels[dom == d] for d in order}
    extras = {"feature_names": tuple(feature_columns)} if modality == "tabular" else {}
    return DomainDataset(name or path.stem, X, y, classes, modality=modality,
                         description=f"table {path}", extras=extras)  # fmt: skip
