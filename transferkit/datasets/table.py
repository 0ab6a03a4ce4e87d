"""Your own tabular data: a CSV or parquet file with a domain column and a label column.

Every other numeric column is a feature (or name them with ``feature_columns``); a text column can
be used instead with ``text_column``, and a column named ``text`` is used so without being named
(which is how ``transferkit run --dataset reviews.csv`` reads a table of texts). A column of
``true``/``false`` (any case) is read as 1/0, in a CSV as in parquet.
Labels may be integers or class names, and are kept as written: ``01`` and ``1`` are two classes
and ``007`` stays ``007`` (classes are in numeric order when every label is a number, else in text
order; a parquet column of integer codes that holds nulls, hence floats, gives ``1``, not ``1.0``).
transferkit classifies: a label column of more than ``MAX_NUMERIC_CLASSES`` different numbers, some not
whole, is an error (a regression target), and as many whole numbers with few rows each a warning.
A missing label means
unknown (-1), as for an unlabelled target domain: an empty cell, a null in parquet, or one of the
usual missing-value markers ``NA``, ``N/A``, ``NaN``, ``nan``, ``null``, ``NULL``, ``None``, ``<NA>``
(spelled exactly so: a class called ``none`` stays a class). A label ``-1`` beside labels counted from
0 is kept as a class, with a warning, since ``-1`` means unknown in transferkit's arrays. A table
without a label column is an error, unless ``labels_optional=True`` (new data to predict): then
every row is unlabelled. CSV is read
with the standard library (a byte-order mark, as Excel writes, is fine); its delimiter is the one of
comma, semicolon, tab and ``|`` that the header row uses most (a ``.tsv`` file is tab-separated), so
the semicolon files of spreadsheets set to a decimal comma load too (their numbers must use a
decimal point: a clear error says so otherwise). Parquet needs pandas with pyarrow
(``pip install pandas pyarrow``).

Two columns of one name are an error (a CSV reader would keep only the last), and so is a column
without a name (an empty header cell, or pandas' ``Unnamed: 0``) that would become a feature: it
is nearly always the row index that ``DataFrame.to_csv`` writes unless ``index=False``. A parquet
cell holding a list or an array is an error naming its column.

A feature column without any number (written with digits: ``Infinity`` is a word) in it (``paris``,
``lyon``, ...) is a category: it becomes one
0/1 column per value, named ``city=lyon``, ``city=paris`` (values in text order, as written: ``Paris``
and ``paris`` are two values), with a missing cell 0 in all of them; a column empty in every row
gives no feature, with a warning. The values come from every row of the table, whichever its domain,
so source and target get the same columns; a model saved by a run reads a value it never saw as 0 in
all of them too (with a warning). A column of more than ``MAX_CATEGORIES`` different words is an
error (an identifier or a text, not a category), and so is a word among numbers (a typo, more likely
than a category) and a column of numbers written with a percent or currency sign (``12%``, ``$3.50``).
Number columns that are codes (a postcode, ``1``/``2``/``3`` for three colours) are named with
``categorical`` (``--categorical`` on the command line) to be read so too, each value as written
(except codes all written as floats, ``1.0``, ``2.0``, as pandas writes an integer column with a hole:
those are ``1``, ``2``, as in parquet).
Columns of other names than ``domain`` and ``label`` are named with ``domain_column`` and
``label_column`` (``--domain-column``, ``--label-column``).
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np

from transferkit.domains import UNLABELLED, DomainDataset
from transferkit.errors import TransferkitError, did_you_mean, unknown_name

_MISSING = {"", "na", "nan", "none", "null"}  # in feature columns, any case
_MISSING_LABELS = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "<NA>"}  # exactly so
_BOOLS = {"true": 1.0, "false": 0.0}  # in feature columns, any case: as parquet's booleans read
DELIMITERS = (",", ";", "\t", "|")
_UNNAMED = re.compile(r"\s*|Unnamed: \d+(_level_\d+)?")  # an empty header cell; pandas' name for one
# a number with a percent sign or a currency sign ("12%", "$3.50", "-4 %", "€ 10"), read as neither
_WITH_UNIT = re.compile(r"[$€£¥]?\s*[+-]?(\d[\d,]*\.?\d*|\.\d+)\s*%?|[+-]?[$€£¥]\s*(\d[\d,]*\.?\d*|\.\d+)")
MAX_CATEGORIES = 100  # distinct values of one category column, each a 0/1 feature column
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# the names a table's label or domain column often has instead, for a hint when it is missing
_OTHER_NAMES = {
    "label": {"labels", "class", "classes", "target", "y", "category", "outcome", "diagnosis"},
    "domain": {"domains", "site", "source", "dataset", "group", "env", "environment", "hospital"},
}


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


def _unnamed_error(path: Path, position: int, name: str, values: list | None) -> TransferkitError:
    """The error for a column without a real name: what it probably is and how to fix the table."""
    what = f"column {position} of {path.name} " + (f"is named '{name}'" if name.strip() else "has no name")
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    save = "df.to_parquet(path, index=False)" if parquet else "df.to_csv(path, index=False)"
    cells = [v for v in values or [] if not (v is None or (isinstance(v, str) and v.strip() == ""))]
    if values is not None and not cells:
        why = "it is empty (a delimiter at the end of every line makes such a column): delete it"
    else:
        looks = "it holds the row numbers 0, 1, 2, ...: " if _is_row_index(values) else ""
        why = (
            f"{looks}it is probably the row index that pandas writes unless told not to. Save the "
            f"table without it ({save}) or delete the column; if it is a feature, give it a name "
            "in the header row"
        )
    return TransferkitError(f"{what}, so it would be read as a feature; {why}.")


def _is_row_index(values: list | None) -> bool:
    try:
        return bool(values) and [int(float(v)) for v in values] == list(range(len(values)))
    except (TypeError, ValueError, OverflowError):
        return False


def _check_names(path: Path, names: list[str]) -> None:
    """Two columns of one name: an error naming it (a reader would keep only one of them)."""
    first: dict[str, int] = {}
    for i, n in enumerate(names, 1):
        if n not in first:
            first[n] = i
            continue
        if _UNNAMED.fullmatch(n):
            raise _unnamed_error(path, first[n], n, None)
        raise TransferkitError(
            f"{path.name} has two columns named '{n}' (columns {first[n]} and {i}); give each column a "
            "name of its own, or delete the copy (only one of them could be read)."
        )


def columns_for(path, feature_names, domain_column: str = "domain", label_column: str = "label"):
    """The columns of the table at ``path`` that give a model's features ``feature_names`` (a column by
    its name, a category column by its 0/1 columns ``city=lyon``), in the table's order, and the others
    (an identifier, notes, a column the model never had), which need not be read at all. ``None`` for
    the first when no column matches (the table's own errors then say what is wrong)."""
    cols = list(_read_columns(Path(path)))
    trained = [str(n) for n in feature_names]
    rest = [c for c in cols if c not in (domain_column, label_column)]
    used = [c for c in rest if c in trained or any(t.startswith(f"{c}=") for t in trained)]
    others = [c for c in rest if c not in used]
    return (used or None), others


def _read_columns(path: Path) -> dict[str, list]:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return _read_parquet(path)
    try:
        return _read_csv(path)
    except UnicodeDecodeError as exc:
        raise TransferkitError(
            f"{path} is not UTF-8 text (it holds the byte {exc.object[exc.start]:#04x}); save it as "
            "UTF-8 (in Excel: 'CSV UTF-8'), or re-encode it, e.g. iconv -f cp1252 -t utf-8."
        ) from None


def _read_parquet(path: Path) -> dict[str, list]:
    try:
        import pandas as pd
        import pyarrow.parquet as pq
    except ImportError:
        raise TransferkitError(
            f"reading {path} needs pandas and pyarrow: pip install pandas pyarrow"
        ) from None
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # not a parquet file, or a damaged one
        raise TransferkitError(f"cannot read {path} as parquet: {exc}") from None
    _check_names(path, [str(n) for n in schema.names])  # pyarrow refuses such a file with a traceback
    df = pd.read_parquet(path)
    _check_names(path, [str(c) for c in df.columns])
    cols = {}
    for c in df.columns:
        values = df[c].tolist()
        for i, v in enumerate(values if df[c].dtype == object else ()):  # lists come as objects
            if isinstance(v, (list, tuple, dict, set, np.ndarray)):
                kind = "a mapping" if isinstance(v, dict) else "a list of values"
                raise TransferkitError(
                    f"{path.name}: column '{c}' holds {kind} in each cell (row {i + 1}: {str(v)[:40]}), "
                    "not one number or text; spread its values over columns of their own (one number "
                    "per column), or drop the column."
                )
        # nulls of every kind (None, NaN, pd.NA, NaT) are None, not the text "<NA>" or "nan"
        cols[str(c)] = [None if pd.isna(v) else v for v in values]
    return cols


def _read_csv(path: Path) -> dict[str, list]:
    # a long text (a whole review, a report) may pass the csv module's default 128 KiB per cell
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with open(path, newline="", encoding="utf-8-sig") as f:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(f.readline())
        f.seek(0)
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise TransferkitError(f"{path} is empty; expected a header row.")
        _check_names(path, list(reader.fieldnames))
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


def _missing_column(path: Path, column: str, cols: dict, role: str) -> TransferkitError:
    """The error for a table without its domain or label column, with the rename that fixes it."""
    alike = [
        c for c in cols if c.strip().lower() == column.lower() or c.strip().lower() in _OTHER_NAMES[role]
    ]
    flag = f"--{role}-column"
    hint = (
        f" Name it: {flag} {alike[0]} ({role}_column={alike[0]!r} in Python), or rename "
        f"{' or '.join(repr(c) for c in alike)} to '{column}' in the header row."
        if alike
        else did_you_mean(column, cols) + f" A column of another name is named with {flag} COL."
    )
    need = (
        "each row's class (an empty cell where it is unknown)"
        if role == "label"
        else "each row's domain (the camera, site, period... it comes from)"
    )
    return TransferkitError(
        f"{path.name} has no '{column}' column (its columns: {', '.join(map(str, cols))}); the table needs "
        f"one holding {need}.{hint}"
    )


def _label_name(v) -> str:
    """A label as its class name: the text as written (stripped), a parquet value as it prints."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return str(int(v))  # integer codes in a float column (an integer column with nulls)
    return str(v)


def _classes(known: set[str]) -> tuple[str, ...]:
    """The class names in numeric order when each is a number (ties by their text), else sorted."""
    if known and all(_NUMBER.fullmatch(v) for v in known):
        return tuple(sorted(known, key=lambda v: (float(v), v)))
    return tuple(sorted(known))


MAX_NUMERIC_CLASSES = 50  # more different numbers than this in a label column look like a measurement


def _check_not_continuous(path: Path, column: str, raw_labels: list[str], known: set[str]) -> None:
    """A label column of measurements (a price, a temperature) is no set of classes: more than
    ``MAX_NUMERIC_CLASSES`` different numbers of which some are not whole is an error, and as many
    whole numbers with fewer than 5 labelled rows per class on average a warning."""
    if len(known) <= MAX_NUMERIC_CLASSES or not all(_NUMBER.fullmatch(v) for v in known):
        return
    shown = ", ".join(sorted(known, key=float)[:3])
    if not all(float(v).is_integer() for v in known):
        raise TransferkitError(
            f"{path.name}: the label column '{column}' holds {len(known)} different numbers ({shown}, ...), "
            "not classes: it looks like a regression target, and transferkit classifies (each different "
            "value would be a class of its own). Bin it into a few classes (e.g. low/medium/high) in the "
            "label column, or move it to a feature column and give the label column the classes."
        )
    labelled = sum(v in known for v in raw_labels)
    if labelled < 5 * len(known):
        warnings.warn(
            f"{path.name}: the label column '{column}' holds {len(known)} different numbers over {labelled} "
            f"labelled rows ({shown}, ...), each a class of its own; if it is a measurement (a regression "
            "target), bin it into a few classes first: transferkit classifies.",
            UserWarning,
            stacklevel=3,
        )


def _is_decimal_comma(v: str) -> bool:
    try:
        float(v.strip().replace(",", ".", 1))
    except ValueError:
        return False
    return v.count(",") == 1


_STRAY_WORD = (
    "the column's other cells are numbers (or true/false, read as 1/0). Correct the cell, or leave it "
    "empty if the value is unknown. (A column without any number is read as a category, one 0/1 column "
    "per value.)"
)


def _category_cell(v) -> str | None:
    """A category column's cell as its value's text (surrounding spaces removed); None when missing.

    A whole number stored as a float (a parquet integer column with a missing value holds floats) is
    written without its ``.0``: the code ``75001``, not ``75001.0``."""
    if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    text = str(v).strip()
    return None if text.lower() in _MISSING else text


def _category_cells(values: list) -> list[str | None]:
    """A category column's cells (:func:`_category_cell`); codes that are all whole numbers written as
    floats (``1.0``, ``2.0``: how pandas writes an integer column with a missing value to a CSV) are read
    as the integers, as a parquet float column of them is and as the labels are, so that the same codes
    saved without a hole (``1``, ``2``) are the same values for ``predict``."""
    cells = [_category_cell(v) for v in values]
    present = [v for v in cells if v is not None]
    if present and all(re.fullmatch(r"-?\d+\.0+", v) for v in present):
        return [None if v is None else str(int(float(v))) for v in cells]
    return cells


def _reads_as_number(raw, v: str) -> bool:
    """Whether a cell makes its column a number column: a number written with digits (a parquet number
    is one: 'Infinity' or '1_000', which Python's float() reads, are words), true/false, or a decimal
    comma (whose error says how to save it)."""
    if isinstance(raw, (int, float, np.number)) or _NUMBER.fullmatch(v):
        return True
    return v.lower() in _BOOLS or _is_decimal_comma(v)


def _category_levels(path: Path, column: str, values: list, named: bool = False) -> tuple[str, ...] | None:
    """The sorted values of a category column, or None for a column of numbers; a column empty in
    every row is a category without values (no column, a warning).

    A column is a category column when none of its cells is a number (or true/false) and at least one
    is not missing; a column of numbers with a few words among them stays a number column (its first
    word is then the usual error), and so does a column of decimal-comma numbers (whose error says
    how to save them). More than ``MAX_CATEGORIES`` values is an error: such a column is nearly always
    an identifier or a text, not a category. ``named``: the user named the column a category
    (``categorical``), so its numbers are codes (``75001``, ``1``/``2``/``3``), each value as written."""
    cells = _category_cells(values)
    present = [v for v in cells if v is not None]
    if not present:
        warnings.warn(
            f"{path.name}: column '{column}' is empty in every row; it gives no feature.",
            UserWarning,
            stacklevel=3,
        )
        return ()  # a category without any value here: no 0/1 column
    if not named and any(_reads_as_number(raw, v) for raw, v in zip(values, cells) if v is not None):
        return None
    if not named and all(_WITH_UNIT.fullmatch(v) for v in present):  # '12%', '$3.50': numbers
        raise TransferkitError(
            f"{path.name}: column '{column}' holds numbers written with a unit or a currency sign "
            f"({present[0]!r}); write the numbers alone (12.5, not 12.5% or $12.5) so that they are read as "
            "numbers, not as a category of that many words."
        )
    levels = tuple(sorted(set(present)))
    if len(levels) > MAX_CATEGORIES and named:
        shown = ", ".join(repr(v) for v in levels[:3])
        raise TransferkitError(
            f"{path.name}: column '{column}', named a category, holds {len(levels)} different values "
            f"({shown}, ...), too many for one 0/1 column each (at most {MAX_CATEGORIES}). Group them into "
            "fewer codes first (such as a postcode's first two digits), or leave the column out of "
            "the categories to read it as a number."
        )
    if len(levels) > MAX_CATEGORIES:
        shown = ", ".join(repr(v) for v in levels[:3])
        raise TransferkitError(
            f"{path.name}: column '{column}' holds {len(levels)} different words ({shown}, ...), too many "
            f"to read as a category (at most {MAX_CATEGORIES}, one 0/1 column each). An identifier is no "
            "feature: delete the column, or encode it as numbers; a column of texts is read as texts when "
            f"it is called 'text' or named with --text-column {column} (text_column in Python)."
        )
    return levels


def _as_float(values: list, column: str, hint: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            text = v.strip().lower() if isinstance(v, str) else None
            if v is None or text in _MISSING:
                out[i] = np.nan
            else:
                out[i] = _BOOLS[text] if text in _BOOLS else float(v)
        except (TypeError, ValueError):
            comma = isinstance(v, str) and _is_decimal_comma(v)
            raise TransferkitError(
                f"column '{column}' row {i + 1} holds '{v}', which is not a number; "
                + (
                    "it looks like a decimal comma: save the table with a decimal point (in a "
                    "spreadsheet, set the decimal separator to '.' before exporting)."
                    if comma
                    else hint
                )
            ) from None
    return out


# load_table's defaults for how a table is read (its `reading`: the others are kept)
TABLE_DEFAULTS = {"domain_column": "domain", "label_column": "label"}
TABLE_READING = ("domain_column", "label_column", "feature_columns", "text_column", "categorical")


def load_table(
    path,
    domain_column: str = "domain",
    label_column: str = "label",
    feature_columns: list[str] | None = None,
    text_column: str | None = None,
    name: str | None = None,
    labels_optional: bool = False,
    categorical: list[str] | None = None,
) -> DomainDataset:
    """Load a CSV or parquet table into a :class:`DomainDataset`.

    With ``labels_optional=True`` a table without ``label_column`` loads with every row unlabelled
    and no classes (new data to classify with a saved model); otherwise that is an error, since a
    run learns from the source's labels. ``categorical`` names feature columns to read as categories
    even though they hold numbers: codes such as a postcode or ``1``/``2``/``3`` for three colours,
    whose order and distances mean nothing (each value as written: ``01`` and ``1`` are two values).

    How the table was read (the arguments that differ from their defaults, ``name`` and
    ``labels_optional`` aside) is kept in ``extras["reading"]``: a network trained on it saves them, and
    ``transferkit predict`` reads new rows the same way.
    """
    path = Path(path)
    if not path.is_file():
        raise TransferkitError(f"table {path} does not exist.")
    # one column named alone (a sweep file's `categorical: zip`) is that column, not its letters
    feature_columns = [feature_columns] if isinstance(feature_columns, str) else feature_columns
    categorical = [categorical] if isinstance(categorical, str) else categorical
    reading = {
        k: v
        for k, v in (
            ("domain_column", domain_column), ("label_column", label_column),
            ("feature_columns", list(feature_columns) if feature_columns else None),
            ("text_column", text_column), ("categorical", list(categorical) if categorical else None),
        )
        if v is not None and v != TABLE_DEFAULTS.get(k)
    }  # fmt: skip
    if domain_column == label_column:
        raise TransferkitError(
            f"{path.name}: '{domain_column}' is named as both the domain and the label column; the domain "
            "says where a row comes from, the label what it is: name two columns."
        )
    cols = _read_columns(path)
    if domain_column not in cols:
        raise _missing_column(path, domain_column, cols, "domain")
    if label_column not in cols and not labels_optional:
        raise _missing_column(path, label_column, cols, "label")
    domains = ["" if d is None else str(d).strip() for d in cols[domain_column]]
    if "" in domains:
        raise TransferkitError(
            f"{path.name}: row {domains.index('') + 1} has no '{domain_column}'; every row needs its domain."
        )
    raw_labels = [_label_name(v) for v in cols.get(label_column, [None] * len(domains))]
    known = {v for v in raw_labels if v not in _MISSING_LABELS}
    if known and all(re.fullmatch(r"-?\d+\.0+", v) for v in known):
        # integer codes written as floats (pandas writes an integer column with a missing value so):
        # read as the integers, as a parquet float column of them is
        raw_labels = [str(int(float(v))) if v in known else v for v in raw_labels]
        known = {v for v in raw_labels if v not in _MISSING_LABELS}
    classes = _classes(known)  # the names as written: "01" and "1" are two classes
    _check_not_continuous(path, label_column, raw_labels, known)
    if all(_NUMBER.fullmatch(v) for v in known) and {-1.0, 0.0} <= {float(v) for v in known}:
        n = sum(v in known and float(v) == -1 for v in raw_labels)
        warnings.warn(
            f"{path.name}: label -1 ({n} rows) is read as a class of its own. In transferkit's arrays -1 "
            "means 'unknown'; in a table, leave an unknown label's cell empty.",
            UserWarning,
            stacklevel=2,
        )
    index = {v: i for i, v in enumerate(classes)}
    labels = np.asarray([index.get(v, UNLABELLED) for v in raw_labels], dtype=np.int64)
    if text_column is None and feature_columns is None and "text" in cols:
        text_column = "text"
    for role, given in (("feature", feature_columns or []), ("text", [text_column] if text_column else [])):
        for c in given:  # the label as a feature: every prediction right in training, and on the target
            if c in (domain_column, label_column):
                what = "domain" if c == domain_column else "label"
                raise TransferkitError(
                    f"{path.name}: column '{c}' is the {what} column; it cannot also be a {role} column (a "
                    f"model would read the answer from it). Leave it out of the {role} columns."
                )
    for what, given in (("feature_columns", feature_columns or []), ("categorical", categorical or [])):
        twice = sorted({c for c in given if list(given).count(c) > 1})
        if twice:
            raise TransferkitError(f"{path.name}: {what} names column '{twice[0]}' twice; name each once.")
    named = list(categorical or [])
    if named and text_column is not None:
        raise TransferkitError(
            f"{path.name} is read as texts (its '{text_column}' column); categorical columns apply to a "
            "table of features."
        )
    for c in named:
        if c not in cols:
            raise unknown_name(f"column in {path.name}", c, cols)
        if c in (domain_column, label_column):
            role = "domain" if c == domain_column else "label"
            raise TransferkitError(
                f"{path.name}: column '{c}' is the {role} column; a categorical column is a feature column."
            )
        if feature_columns and c not in feature_columns:
            raise TransferkitError(
                f"{path.name}: categorical column '{c}' is not among the feature columns "
                f"{list(feature_columns)}; add it to them."
            )
    if text_column is not None:
        if text_column not in cols:
            raise unknown_name(f"column in {path.name}", text_column, cols)
        features = np.asarray([str(t) for t in cols[text_column]], dtype=object)
        modality = "text"
        left = [c for c in cols if c not in (domain_column, label_column, text_column)]
        if left:
            warnings.warn(
                f"{path.name} is read as texts (its '{text_column}' column); the other columns {left} are "
                "not used (a text table's features come from its texts alone).",
                UserWarning,
                stacklevel=2,
            )
    else:
        chosen = bool(feature_columns)
        feature_columns = feature_columns or [c for c in cols if c not in (domain_column, label_column)]
        for c in feature_columns:
            if c not in cols:
                raise unknown_name(f"column in {path.name}", c, cols)
        if not feature_columns:
            raise TransferkitError(f"{path} has no feature columns besides domain and label.")
        if not chosen:  # a column without a name is never a feature unasked: it is pandas' row index
            names = list(cols)
            for c in feature_columns:
                if _UNNAMED.fullmatch(c):
                    raise _unnamed_error(path, names.index(c) + 1, c, cols[c])

        blocks, names, categories = [], [], {}
        for c in feature_columns:
            levels = _category_levels(path, c, cols[c], named=c in named)
            if levels is None:
                blocks.append(_as_float(cols[c], c, _STRAY_WORD)[:, None])
                names.append(c)
            else:  # one 0/1 column per value; a missing cell is none of them
                cells = _category_cells(cols[c])
                blocks.append(np.asarray([[float(v == level) for level in levels] for v in cells]))
                names += [f"{c}={level}" for level in levels]
                categories[c] = levels
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise TransferkitError(
                f"{path.name}: the 0/1 column {twice[0]!r} of a category column has the name of another "
                "column of the table; rename one of them."
            )
        if not names:
            raise TransferkitError(f"{path}: every feature column is empty.")
        features = np.column_stack(blocks)
        feature_columns = names
        modality = "tabular"
    order = list(dict.fromkeys(domains))
    dom = np.asarray(domains, dtype=object)
    X = {d: features[dom == d] for d in order}
    y = {d: labels[dom == d] for d in order}
    extras = {"feature_names": tuple(feature_columns)} if modality == "tabular" else {}
    if modality == "tabular" and categories:
        extras["categories"] = categories
    # each domain's rows as numbered in the file (1 = the first row below the header), so that
    # anything written per domain can point back to the user's own row
    extras["table_rows"] = {d: np.flatnonzero(dom == d) + 1 for d in order}
    if reading:
        extras["reading"] = reading
    return DomainDataset(name or path.stem, X, y, classes, modality=modality,
                         description=f"table {path}", extras=extras)  # fmt: skip
