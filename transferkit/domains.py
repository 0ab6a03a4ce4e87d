"""The one data convention of transferkit.

Every method takes three aligned arrays:

``X``
    the features of all rows, source and target together (``n_samples x ...``);
``y``
    integer class labels; **-1 marks a row whose label is unknown**;
``sample_domain``
    one signed integer per row: ``>= 0`` for a source domain (0, 1, 2, ... for several sources),
    ``< 0`` for a target domain (-1, -2, ... for several targets).

Target labels are hidden (set to -1) in exactly one place, :func:`mask_target_labels`, which the
composer (:class:`transferkit.shallow.base.DAClassifier`) and the experiment runner call before any
unsupervised method sees the data. :class:`DomainDataset` holds named domains and converts to this
convention without ever reading a target label.

Rows without domain information at prediction time are treated as target rows; that rule is written
once, in :func:`predict_domains`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from transferkit.errors import TransferkitError, unknown_name

__all__ = [
    "UNLABELLED",
    "DomainArrays",
    "DomainDataset",
    "check_domain_data",
    "check_features",
    "few_shot_indices",
    "mask_target_labels",
    "predict_domains",
    "source_mask",
    "target_mask",
]


class NonNumericError(TransferkitError, TypeError):
    """Features that are not numbers (a TypeError too, as numpy raises for them)."""


UNLABELLED = -1
"""The label value of a row whose label is hidden or unknown."""


def source_mask(sample_domain: np.ndarray) -> np.ndarray:
    """Boolean mask of the source rows (``sample_domain >= 0``)."""
    return np.asarray(sample_domain) >= 0


def target_mask(sample_domain: np.ndarray) -> np.ndarray:
    """Boolean mask of the target rows (``sample_domain < 0``)."""
    return np.asarray(sample_domain) < 0


def mask_target_labels(y: np.ndarray, sample_domain: np.ndarray, *, keep_given: bool = False) -> np.ndarray:
    """Return a copy of ``y`` with every target row's label replaced by -1.

    This is the one place where target labels are hidden. It writes the target entries without
    reading them, so it is safe even when the caller passes real target labels.

    With ``keep_given=True`` (only for semi-supervised methods, which declare
    ``uses_target_labels = True``) the labels the caller gave for target rows are kept: the caller
    is then responsible for revealing only the few labels a user would really have (see
    :func:`few_shot_indices`), and -1 everywhere else.
    """
    y = np.asarray(y)
    if keep_given:
        return y.astype(np.int64, copy=True)
    masked = np.empty(y.shape, dtype=np.int64)
    src = source_mask(sample_domain)
    masked[src] = y[src]
    masked[~src] = UNLABELLED
    return masked


def few_shot_indices(
    labels: np.ndarray, k: int, random_state: int | None = 0, class_names=None
) -> np.ndarray:
    """Indices of ``k`` randomly chosen rows per class: the target labels a user would have.

    Used by the experiment harness to simulate semi-supervised adaptation (a few labelled target
    samples); the method only ever sees the labels of these rows. A class with fewer than ``k + 1``
    rows is an error (naming it by ``class_names`` when given), since no row of it would be left to
    evaluate.
    """
    labels = np.asarray(labels)
    if k < 1:
        raise TransferkitError(f"the number of labelled target samples per class must be >= 1, got {k}.")
    rng = np.random.default_rng(random_state)
    picked = []
    for c in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == c)
        if rows.size < k + 1:
            raise TransferkitError(
                f"class {class_names[c] if class_names is not None else int(c)!r} has {rows.size} target "
                f"samples; "
                f"{k} labelled per class would leave none to evaluate. Use a smaller k."
            )
        picked.append(rng.choice(rows, size=k, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def remember_columns(estimator, X) -> None:
    """Record a table's column names as ``feature_names_in_`` at fit, as scikit-learn estimators do
    (a DataFrame whose column names are all strings; anything else, mixed names included, leaves none,
    as the composer's rule does)."""
    from sklearn.utils.validation import validate_data

    if string_columns(X):
        validate_data(estimator, X, reset=True, skip_check_array=True)
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_


def string_columns(X) -> bool:
    """Whether ``X`` is a table whose column names are all text (the only names that count)."""
    columns = getattr(X, "columns", None)
    return columns is not None and len(columns) > 0 and all(isinstance(c, str) for c in columns)


def check_columns(estimator, X) -> None:
    """At predict time, refuse a table whose columns are not the fitted ones, or not in their order
    (scikit-learn's check and messages): rows of reordered columns would be read as other features."""
    from sklearn.utils.validation import validate_data

    if hasattr(estimator, "feature_names_in_") or string_columns(X):
        validate_data(estimator, X, reset=False, skip_check_array=True)


def check_features(
    X, *, name: str = "X", allow_nd: bool = True, allow_text: bool = False, allow_nan: bool = False
):
    """Validate a numeric feature array: no NaN (unless ``allow_nan``: missing values for an
    imputation step) or infinity, at least one row.

    Sparse matrices are refused with a clear error (convert them with ``X.toarray()``: the methods
    work on dense arrays). With ``allow_text``, a 1-d array of
    strings (texts for a vectorizing preprocessing step) is accepted too.
    """
    import scipy.sparse as sp

    if sp.issparse(X):
        raise TransferkitError(
            f"Sparse data was passed for {name}, but dense data is required; convert it with "
            f"{name}.toarray()."
        )
    if allow_text and isinstance(X, (list, tuple, np.ndarray)) and np.ndim(X) == 1:
        X = np.asarray(X, dtype=object)
        if X.shape[0] and all(isinstance(t, str) for t in X):
            return X
    try:
        X = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise TransferkitError(f"{name} could not be read as an array: {exc}") from None
    if X.dtype == object:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise NonNumericError(
                f"{name} holds values that are not numbers ({exc}); encode text or categories first, "
                "for example with the 'tfidf' preprocessing step."
            ) from None
    if X.dtype.kind in "USO":
        raise NonNumericError(
            f"{name} holds non-numeric values (dtype {X.dtype}); encode text or categories first, "
            "for example with the 'tfidf' preprocessing step."
        )
    if X.dtype.kind == "c":
        raise TransferkitError(f"Complex data not supported: {name} has dtype {X.dtype}.")
    if X.ndim == 1:
        raise TransferkitError(
            f"{name} is 1-d with {X.shape[0]} values; pass one row per sample. Reshape your data "
            "with X.reshape(-1, 1) for a single feature."
        )
    if X.ndim > 2 and not allow_nd:
        raise TransferkitError(f"{name} must be 2-d (samples x features), got shape {X.shape}.")
    if X.shape[0] == 0:
        raise TransferkitError(f"{name} has no rows.")
    if X.ndim == 2 and X.shape[1] == 0:
        raise TransferkitError(
            f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required: {name} has no features."
        )
    if X.dtype.kind not in "fiub":
        raise TransferkitError(f"{name} must be numeric, got dtype {X.dtype}.")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        flat = X.reshape(X.shape[0], -1)
        bad = np.argwhere(np.isinf(flat) if allow_nan else ~np.isfinite(flat))
        if len(bad):
            row, col = bad[0]
            what = "infinite" if allow_nan else "NaN or infinite"
            raise TransferkitError(
                f"{name} contains {len(bad)} {what} values (first at row {row}, feature {col}); "
                "impute or drop them before adapting (the 'impute' preprocessing step, first, fills NaN)."
            )
    return X


def _check_labels(y, n: int) -> np.ndarray:
    if y is None:
        raise TransferkitError(
            "this method requires y to be passed, but the target y is None; pass labels with -1 for "
            "unknown ones."
        )
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        import warnings

        from sklearn.exceptions import DataConversionWarning

        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it was ravelled.",
            DataConversionWarning,
            stacklevel=3,
        )
        y = y.reshape(-1)
    if y.ndim != 1:
        raise TransferkitError(f"y must be 1-d with one label per row, got shape {y.shape}.")
    if y.shape[0] != n:
        raise TransferkitError(f"X has {n} rows but y has {y.shape[0]} labels.")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise TransferkitError(
                "Unknown label type: continuous. labels must be integers (class indices, -1 for "
                "unknown); got non-integer values. "
                "Encode class names with sklearn.preprocessing.LabelEncoder."
            )
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iub":
        raise TransferkitError(
            f"Unknown label type: labels must be integers (class indices, -1 for unknown), got dtype "
            f"{y.dtype}. "
            "Encode class names with sklearn.preprocessing.LabelEncoder."
        )
    y = y.astype(np.int64, copy=False)
    if (y < UNLABELLED).any():
        raise TransferkitError("labels must be >= 0, or -1 for an unknown label.")
    return y


def check_domain_data(
    X,
    y,
    sample_domain=None,
    *,
    require_target: bool = True,
    min_source_classes: int = 2,
    allow_nd: bool = True,
    allow_text: bool = False,
    allow_nan: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``X, y, sample_domain`` for fitting and return them as arrays.

    When ``sample_domain`` is None it is inferred from ``y``: rows labelled -1 are the target
    (domain -1) and labelled rows the source (domain 0).
    """
    X = check_features(X, allow_nd=allow_nd, allow_text=allow_text, allow_nan=allow_nan)
    y = _check_labels(y, X.shape[0])
    if sample_domain is None:
        sample_domain = np.where(y == UNLABELLED, -1, 0)
    sample_domain = np.asarray(sample_domain)
    if sample_domain.shape != (X.shape[0],):
        raise TransferkitError(
            f"sample_domain must have one integer per row ({X.shape[0]}), got shape {sample_domain.shape}."
        )
    if sample_domain.dtype.kind not in "iu":
        raise TransferkitError(
            f"sample_domain must hold integers (>= 0 source, < 0 target), got dtype {sample_domain.dtype}."
        )
    sample_domain = sample_domain.astype(np.int64, copy=False)
    src = source_mask(sample_domain)
    if not src.any():
        raise TransferkitError("there are no source rows (sample_domain >= 0); nothing to learn from.")
    if require_target and src.all():
        raise TransferkitError(
            "there are no target rows (sample_domain < 0); domain adaptation needs the target's "
            "features. Mark target rows with a negative sample_domain (or label them -1)."
        )
    y_src = y[src]
    if (y_src == UNLABELLED).any():
        raise TransferkitError(
            f"{int((y_src == UNLABELLED).sum())} source rows have no label (-1); every source row "
            "needs a label."
        )
    n_classes = np.unique(y_src).size
    if n_classes < min_source_classes:
        raise TransferkitError(
            f"the source rows hold {n_classes} class; a classifier needs at least {min_source_classes}."
        )
    return X, y, sample_domain


def predict_domains(sample_domain, n_rows: int, target_domains: Sequence[int]) -> np.ndarray:
    """Domain ids for rows to predict: the given ones, or the target's when none are given.

    This is the one rule for rows without domain information: they are target rows. When the model
    was fitted with several target domains the rule is ambiguous and the caller must say which.
    """
    if sample_domain is not None:
        sample_domain = np.asarray(sample_domain)
        if sample_domain.dtype.kind not in "iu":
            raise TransferkitError(
                "sample_domain must hold integers (>= 0 source, < 0 target), got dtype "
                f"{sample_domain.dtype}."
            )
        sample_domain = sample_domain.astype(np.int64, copy=False)
        if sample_domain.shape != (n_rows,):
            raise TransferkitError(
                f"sample_domain must have one integer per row ({n_rows}), got shape {sample_domain.shape}."
            )
        return sample_domain
    targets = sorted(set(int(t) for t in target_domains))
    if len(targets) > 1:
        raise TransferkitError(
            f"the model was fitted with several target domains {targets}; pass sample_domain to "
            "say which domain the rows come from."
        )
    return np.full(n_rows, targets[0] if targets else -1, dtype=np.int64)


@dataclass(frozen=True)
class DomainArrays:
    """A selection of domains in the one convention, with target labels already hidden.

    ``domain_names`` maps each ``sample_domain`` id to the domain's name.
    """

    X: np.ndarray
    y: np.ndarray
    sample_domain: np.ndarray
    domain_names: dict[int, str]

    @property
    def source(self) -> np.ndarray:
        return source_mask(self.sample_domain)

    @property
    def target(self) -> np.ndarray:
        return target_mask(self.sample_domain)


@dataclass
class DomainDataset:
    """Named domains, each with its features and labels.

    ``X[d]`` holds the rows of domain ``d``: a 2-d feature matrix, images ``(n, C, H, W)`` or a 1-d
    array of texts. ``y[d]`` holds integer labels in ``range(len(classes))``, or -1 where a label is
    unknown (an unlabelled target domain).

    Examples
    --------
    >>> import numpy as np
    >>> ds = DomainDataset("toy", {"a": np.zeros((3, 2)), "b": np.ones((2, 2))},
    ...                    {"a": np.array([0, 1, 0]), "b": np.array([1, 1])}, classes=("no", "yes"))
    >>> arr = ds.to_arrays(sources=["a"], targets=["b"])
    >>> arr.sample_domain.tolist(), arr.y.tolist()
    ([0, 0, 0, -1, -1], [0, 1, 0, -1, -1])
    """

    name: str
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    classes: tuple[str, ...]
    description: str = ""
    modality: str = "tabular"  # "tabular", "image" or "text"
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.X) != set(self.y):
            raise TransferkitError(
                f"data set '{self.name}': features and labels name different domains "
                f"({sorted(self.X)} vs {sorted(self.y)})."
            )
        if not self.X:
            raise TransferkitError(f"data set '{self.name}' has no domains.")
        shapes = set()
        for d in self.X:
            X = np.asarray(self.X[d])
            y = np.asarray(self.y[d])
            if X.shape[0] == 0:
                raise TransferkitError(f"data set '{self.name}': domain '{d}' is empty.")
            if y.shape[0] != X.shape[0]:
                raise TransferkitError(
                    f"data set '{self.name}': domain '{d}' has {X.shape[0]} rows but {y.shape[0]} labels."
                )
            if y.dtype.kind not in "iu":
                raise TransferkitError(
                    f"data set '{self.name}': labels of domain '{d}' must be integers, got dtype {y.dtype}."
                )
            if y.size and (y.min() < UNLABELLED or y.max() >= len(self.classes)):
                raise TransferkitError(
                    f"data set '{self.name}': labels of domain '{d}' must lie in "
                    f"0..{len(self.classes) - 1} (one per class name), or be -1 when unknown."
                )
            shapes.add(X.shape[1:])
        if len(shapes) > 1:
            detail = ", ".join(f"{d}: {np.asarray(self.X[d]).shape[1:]}" for d in self.X)
            raise TransferkitError(
                f"data set '{self.name}': domains have different feature shapes ({detail}); "
                "every domain must have the same features."
            )

    @property
    def domains(self) -> list[str]:
        return list(self.X)

    def counts(self) -> dict[str, int]:
        return {d: int(np.asarray(self.X[d]).shape[0]) for d in self.X}

    def check_domains(self, names: Sequence[str]) -> list[str]:
        names = [names] if isinstance(names, str) else list(names)
        for n in names:
            if n not in self.X:
                raise unknown_name(f"domain of '{self.name}'", n, self.X)
        return names

    def check_values(self, domains: Sequence[str], allow_missing: bool = False) -> None:
        """The error :meth:`to_arrays` gives for NaN or an infinity in these domains' rows, without
        stacking them (a run says it once, before any method)."""
        for d in self.check_domains(domains):
            self._check_finite(d, allow_missing)

    def check_imputable(self, sources: Sequence[str]) -> None:
        """The error for a column without any known value in the source rows, named as the table names
        it: an impute step fills a missing value with the source's median, and has none there."""
        sources = self.check_domains(sources)
        Xs = [self.X[d] for d in sources]
        if not all(isinstance(X, np.ndarray) and X.dtype.kind == "f" and X.ndim == 2 for X in Xs):
            return
        empty = np.flatnonzero(np.isnan(np.concatenate(Xs)).all(axis=0))
        if not len(empty):
            return
        names = self.extras.get("feature_names") if isinstance(self.extras, dict) else None
        named = names is not None and len(names) == Xs[0].shape[1]
        shown = ", ".join(f"'{names[i]}'" if named else f"{i} (counting from 0)" for i in empty[:5])
        what, verb = ("column", "has") if len(empty) == 1 else (f"{len(empty)} columns", "have")
        more = ", ..." if len(empty) > 5 else ""
        raise TransferkitError(
            f"{what} {shown}{more} of '{self.name}' {verb} no value in any row of the source "
            f"({', '.join(sources)}), so the impute step has nothing to fill it with (it fills a cell with "
            "the source's median); drop the column, or fill in some of its source cells."
        )

    def _check_finite(self, domain: str, allow_missing: bool = False) -> None:
        """NaN or infinity in a domain's rows: an error naming the domain, its row and the column
        (NaN is fine with ``allow_missing``: a run whose first step imputes it)."""
        X = self.X[domain]
        if not (isinstance(X, np.ndarray) and X.dtype.kind == "f") or np.isfinite(X).all():
            return
        flat = X.reshape(len(X), -1)
        bad = np.isinf(flat) if allow_missing else ~np.isfinite(flat)
        if not bad.any():
            return
        row, col = np.argwhere(bad)[0]
        names = self.extras.get("feature_names") if isinstance(self.extras, dict) else None
        column = f"column '{names[col]}'" if names and len(names) == flat.shape[1] else f"feature {col}"
        count = int(bad.any(axis=1).sum())
        # a table's row as its file numbers it (1 = the first below the header), as predictions.csv and
        # `transferkit predict` write it; else the position among the domain's rows
        table_rows = self.extras.get("table_rows") if isinstance(self.extras, dict) else None
        if isinstance(table_rows, dict) and domain in table_rows and len(table_rows[domain]) == len(X):
            where = f"row {int(table_rows[domain][row])} of the file"
        else:
            where = f"its row {row + 1}"
        if np.isnan(flat[row, col]):
            raise TransferkitError(
                f"domain '{domain}' of '{self.name}' has NaN (a missing value) in {count} row(s), first in "
                f"{where}, {column}; fill in or drop those values, or let the run fill them with "
                "an impute step before the others: --preprocess impute standardize:per_domain=false (in a "
                "sweep file preprocess: [impute, standardize:per_domain=false]: the default steps of a "
                "table of your own after it; impute fills a cell with the source's "
                "column median and adds a 0/1 column marking the filled cells)."
            )
        raise TransferkitError(
            f"domain '{domain}' of '{self.name}' has an infinity in {count} row(s), first in "
            f"{where}, {column}; replace or drop those values."
        )

    def to_arrays(
        self, sources: Sequence[str] | str, targets: Sequence[str] | str = (), allow_missing: bool = False
    ) -> DomainArrays:
        """Stack the chosen domains into ``X, y, sample_domain`` with target labels hidden.

        NaN in the features is an error naming its row and column, unless ``allow_missing`` (for a
        run whose first preprocessing step is ``impute``); an infinity always is.

        Sources get ids 0, 1, ...; targets -1, -2, ... in the order given. Target labels are never
        read here: their entries are filled with -1 from the row count alone.
        """
        sources = self.check_domains(sources)
        targets = self.check_domains(targets)
        overlap = set(sources) & set(targets)
        if overlap:
            raise TransferkitError(f"domain(s) {sorted(overlap)} cannot be both source and target.")
        for d in [*sources, *targets]:
            self._check_finite(d, allow_missing)
        Xs, ys, ds, names = [], [], [], {}
        for i, d in enumerate(sources):
            X = np.asarray(self.X[d])
            Xs.append(X)
            ys.append(np.asarray(self.y[d], dtype=np.int64))
            ds.append(np.full(X.shape[0], i, dtype=np.int64))
            names[i] = d
        for i, d in enumerate(targets):
            X = np.asarray(self.X[d])
            Xs.append(X)
            ys.append(np.full(X.shape[0], UNLABELLED, dtype=np.int64))
            ds.append(np.full(X.shape[0], -(i + 1), dtype=np.int64))
            names[-(i + 1)] = d
        return DomainArrays(np.concatenate(Xs), np.concatenate(ys), np.concatenate(ds), names)

    def labels(self, domain: str) -> np.ndarray:
        """The labels of one domain (for evaluation, or as a labelled source)."""
        (domain,) = self.check_domains([domain])
        return np.asarray(self.y[domain])

    @classmethod
    def from_arrays(
        cls,
        X,
        y,
        sample_domain,
        *,
        domain_names: Mapping[int, str] | None = None,
        classes: Sequence[str] | None = None,
        name: str = "arrays",
    ) -> DomainDataset:
        """Build a dataset from the convention's arrays; labels of -1 mean unknown and stay -1."""
        sample_domain = np.asarray(sample_domain, dtype=np.int64)
        X = np.asarray(X)
        y = np.asarray(y, dtype=np.int64)
        ids = sorted(set(sample_domain.tolist()), key=lambda i: (i < 0, abs(i)))
        names = dict(domain_names or {})
        for i in ids:
            names.setdefault(i, f"source{i}" if i >= 0 else f"target{-i}")
        if classes is None:
            classes = tuple(str(c) for c in range(int(y.max()) + 1 if y.size else 0))
        Xd = {names[i]: X[sample_domain == i] for i in ids}
        yd = {names[i]: y[sample_domain == i] for i in ids}
        return cls(name, Xd, yd, tuple(classes))
