"""Preprocessing steps usable in any run, each aware of the domains.

Each step is fitted on the rows a run gives it (source and target together, target labels hidden)
and listed in the registry, so ``--preprocess normalize:norm=l1 standardize`` works on the command
line. Unsupervised steps (standardize, PCA, TF-IDF) may use the target's features, as transductive
domain adaptation allows; the supervised one (select-k-best) scores features on the labelled source
rows only.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from transferkit.domains import source_mask
from transferkit.errors import check_flag
from transferkit.shallow.base import BaseAdapter

__all__ = [
    "Impute",
    "RowNormalize",
    "SelectKBest",
    "SharedPCA",
    "Standardize",
    "Tfidf",
    "export_steps",
    "replay_steps",
]


class _Preprocessing(BaseAdapter):
    role = "preprocessing"
    family = "preprocessing"
    needs_target = False

    def _validate_fit(self, X, y, sample_domain):
        if not self.accepts_text and _are_texts(X):
            from transferkit.errors import TransferkitError

            name = _STEP_NAMES.get(type(self).__name__, type(self).__name__)
            raise TransferkitError(
                f"the {name} step takes numeric features, but these rows are texts; turn the texts into "
                f"features first, with a step before it (--preprocess tfidf {name}, or sentence-embedding)."
            )
        return super()._validate_fit(X, y, sample_domain)


_STEP_NAMES = {"Standardize": "standardize", "RowNormalize": "normalize", "SharedPCA": "pca",
               "SelectKBest": "select-k-best", "Impute": "impute"}  # fmt: skip


def _are_texts(X) -> bool:
    """Whether ``X`` is a 1-d sequence of strings (the rows of a text data set)."""
    if not isinstance(X, (list, tuple, np.ndarray)) or np.ndim(X) != 1 or len(X) == 0:
        return False
    return all(isinstance(t, str) for t in X)


def _spread(X, mean, with_std: bool):
    """The population standard deviation of each column, 1 where the column does not vary.

    A column is constant when its variance is within float rounding of zero (scikit-learn's test): a
    constant 0.1 has a computed spread of about 1e-17, not 0, and dividing by that would turn the
    rounding error into values of about 1.
    """
    if not with_std:
        return np.ones(X.shape[1])
    var = X.var(axis=0)
    eps, n = np.finfo(np.float64).eps, X.shape[0]
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return np.where(constant, 1.0, np.sqrt(var))


class Standardize(_Preprocessing):
    """Z-score every feature: subtract the mean, divide by the standard deviation.

    With ``per_domain=True`` (default) each domain is standardized with its own statistics, which
    already removes a shift of location and scale per feature. This is the standard preprocessing of
    the Office-Caltech10 tables (MATLAB's ``zscore(X, 1)``: population standard deviation, and features
    with zero spread divided by 1). With ``per_domain=False`` the source statistics are used for all
    rows, as a model trained on the source alone would.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [2.0], [10.0], [14.0]]); sd = np.array([0, 0, -1, -1])
    >>> Standardize().fit_transform(X, None, sd).ravel().tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """

    def __init__(self, per_domain: bool = True, with_mean: bool = True, with_std: bool = True):
        self.per_domain = per_domain
        self.with_mean = with_mean
        self.with_std = with_std

    def _stats(self, X):
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        std = _spread(X, mean, self.with_std)
        return (mean if self.with_mean else np.zeros(X.shape[1])), std

    def check_settings(self) -> None:
        """The settings' own checks (no data needed): run when the step is built and at fit."""
        for flag in ("per_domain", "with_mean", "with_std"):
            check_flag(f"standardize's {flag}", getattr(self, flag))

    def _fit(self, X, y, sample_domain):
        self.check_settings()
        if self.per_domain:
            self.stats_ = {int(d): self._stats(X[sample_domain == d]) for d in np.unique(sample_domain)}
        else:
            self.stats_ = {"source": self._stats(X[source_mask(sample_domain)])}

    def _transform(self, X, sample_domain):
        X = np.asarray(X, dtype=np.float64)
        out = np.empty_like(X)
        if not self.per_domain:
            mean, std = self.stats_["source"]
            return (X - mean) / std
        for d in np.unique(sample_domain):
            rows = sample_domain == d
            # a domain unseen in fit (new rows of another domain) uses its own statistics
            saved = self.stats_.get(int(d))
            if saved is None and rows.sum() < 10:
                warnings.warn(
                    f"domain {int(d)} was not seen in fit: its {int(rows.sum())} rows are standardized with "
                    "their own statistics (per-domain standardization), which so few rows estimate poorly "
                    "(one row becomes zeros); predict a new domain's rows together, or give them the "
                    "sample_domain of a fitted domain.",
                    UserWarning,
                    stacklevel=4,
                )
            mean, std = saved or self._stats(X[rows])
            out[rows] = (X[rows] - mean) / std
        return out


class Impute(_Preprocessing):
    """Fill each missing value (NaN) with its column's median over the source rows, and mark it.

    ``strategy``: ``"median"`` (default; a few extreme values do not move it) or ``"mean"`` of the
    source rows' known values, the statistics a model of the source alone would use (as
    ``standardize:per_domain=false``), so that no adaptation hides in the filling; a target row's
    missing value gets the source's value too. With ``indicator`` (default) a 0/1 column is added,
    after the features, for each column with a missing value in any row the step is fitted on (source
    or target), 1 where the value was filled: whether a value is missing often says something itself
    (a test not ordered), and a model can then tell a filled median from a measured one. The same as
    scikit-learn's ``SimpleImputer`` fitted on the source rows with ``MissingIndicator`` on all rows.
    A column without any known value in the source rows is an error (there is nothing to fill it
    with). It must be the first step: the other steps, the methods and the networks refuse NaN.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 5.0], [3.0, np.nan], [np.nan, 7.0], [100.0, 1.0]]); sd = np.array([0, 0, 0, -1])
    >>> Impute().fit_transform(X, None, sd).tolist()
    [[1.0, 5.0, 0.0, 0.0], [3.0, 6.0, 0.0, 1.0], [2.0, 7.0, 1.0, 0.0], [100.0, 1.0, 0.0, 0.0]]
    """

    accepts_missing = True

    def __init__(self, strategy: Literal["median", "mean"] = "median", indicator: bool = True):
        self.strategy = strategy
        self.indicator = indicator

    def check_settings(self) -> None:
        """The settings' own checks (no data needed): run when the step is built and at fit."""
        from transferkit.errors import TransferkitError

        if self.strategy not in ("median", "mean"):
            raise TransferkitError(f"impute's strategy must be 'median' or 'mean', got {self.strategy!r}.")
        check_flag("impute's indicator", self.indicator)

    def _fit(self, X, y, sample_domain):
        from transferkit.errors import TransferkitError

        self.check_settings()
        X = np.asarray(X, dtype=np.float64)
        source = X[source_mask(sample_domain)]
        empty = np.flatnonzero(np.isnan(source).all(axis=0))
        if len(empty):
            names = getattr(self, "feature_names_in_", None)
            shown = ", ".join(f"'{names[i]}'" if names is not None else f"{i}" for i in empty[:5])
            raise TransferkitError(
                f"impute: feature(s) {shown} (counting from 0 without names) have no known value in any "
                "source row, so there is nothing to fill them with; drop those columns."
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.fill_ = (
                np.nanmedian(source, axis=0) if self.strategy == "median" else np.nanmean(source, axis=0)
            )
        self.indicator_columns_ = (
            np.flatnonzero(np.isnan(X).any(axis=0)) if self.indicator else np.zeros(0, dtype=np.int64)
        )

    def _transform(self, X, sample_domain):
        return fill_missing(X, self.fill_, self.indicator_columns_)


def fill_missing(X, fill, indicator_columns) -> np.ndarray:
    """``X`` with each NaN replaced by its column's ``fill`` value, then one 0/1 column per index in
    ``indicator_columns``, 1 where that column was NaN (the transform of :class:`Impute`)."""
    X = np.array(X, dtype=np.float64)
    missing = np.isnan(X)
    X[missing] = np.take(np.asarray(fill, dtype=np.float64), np.nonzero(missing)[1])
    return np.hstack([X, missing[:, np.asarray(indicator_columns, dtype=np.int64)].astype(np.float64)])


def names_after(step, names):
    """The names of the columns a fitted ``step`` gives from columns named ``names``: the same for a
    step that keeps its columns, ``income (missing)`` for the 0/1 column :class:`Impute` adds for
    ``income``, the kept ones of a selection, the words of :class:`Tfidf` (quoted: ``'great'``);
    ``None`` when the columns are new (PCA, sentence embeddings) or ``names`` is ``None``."""
    if isinstance(step, Tfidf) and hasattr(step, "vectorizer_"):  # a text has no column names: its words
        return [f"'{w}'" for w in step.vectorizer_.get_feature_names_out()]
    if names is None:
        return None
    names = [str(n) for n in names]
    if isinstance(step, Impute):
        return names + [f"{names[i]} (missing)" for i in step.indicator_columns_]
    if isinstance(step, (Standardize, RowNormalize)):
        return names
    if isinstance(step, SelectKBest):
        return [names[i] for i in step.selector_.get_support(indices=True)]
    return None


class RowNormalize(_Preprocessing):
    """Scale every row to unit norm: ``l1`` (divide by the sum of absolute values), ``l2`` or ``max``.

    Stateless. ``l1`` on counts turns a bag of words into frequencies (the Office-Caltech10
    convention); ``l2`` is the convention of the JDA digits. All-zero rows stay zero.
    """

    def __init__(self, norm: Literal["l1", "l2", "max"] = "l2"):
        self.norm = norm

    def check_settings(self) -> None:
        """The settings' own checks (no data needed): run when the step is built and at fit."""
        from transferkit.errors import TransferkitError

        if self.norm not in ("l1", "l2", "max"):
            raise TransferkitError(f"normalize's norm must be 'l1', 'l2' or 'max', got {self.norm!r}.")

    def _fit(self, X, y, sample_domain):
        self.check_settings()

    def _transform(self, X, sample_domain):
        from sklearn.preprocessing import normalize

        return normalize(np.asarray(X, dtype=np.float64), norm=self.norm)


class SharedPCA(_Preprocessing):
    """Principal components fitted on source and target rows together (the "PCA" baseline).

    A shared low-dimensional space keeps the directions of variance common to both domains and
    drops noise; ``n_components`` may be an int or a fraction of explained variance.
    """

    def __init__(self, n_components: float = 100, whiten: bool = False, random_state: int | None = 0):
        self.n_components = n_components
        self.whiten = whiten
        self.random_state = random_state

    def check_settings(self) -> None:
        """The settings' own checks (no data needed): run when the step is built and at fit."""
        from transferkit.errors import TransferkitError

        check_flag("whiten", self.whiten)
        n = self.n_components
        ok = isinstance(n, (int, float, np.integer, np.floating)) and not isinstance(n, bool) and n > 0
        if not ok or (n >= 1 and n != int(n)):
            raise TransferkitError(
                f"pca's n_components must be a whole number >= 1 (components kept) or a fraction in (0, 1) "
                f"(of the variance kept), got {n!r}."
            )

    def _fit(self, X, y, sample_domain):
        from sklearn.decomposition import PCA

        self.check_settings()
        n = self.n_components
        if n >= 1:  # a count (numpy's integers too): at most the rows and columns there are
            n = min(int(n), X.shape[0], X.shape[1])
        else:
            n = float(n)
        self.pca_ = PCA(n_components=n, whiten=self.whiten, random_state=self.random_state).fit(X)

    def _transform(self, X, sample_domain):
        return self.pca_.transform(X)


class SelectKBest(_Preprocessing):
    """Keep the ``k`` features with the highest ANOVA F-score on the labelled source rows.

    Supervised, so it reads source labels only: target rows carry -1 and are never scored.
    """

    family = "feature selection"

    def __init__(self, k: int = 100):
        self.k = k

    def check_settings(self) -> None:
        """The settings' own checks (no data needed): run when the step is built and at fit."""
        from transferkit.errors import TransferkitError

        k = self.k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise TransferkitError(
                f"select-k-best's k (features kept) must be a whole number >= 1, got {k!r}."
            )

    def _fit(self, X, y, sample_domain):
        from sklearn.feature_selection import SelectKBest as _SelectKBest
        from sklearn.feature_selection import f_classif

        from transferkit.errors import TransferkitError

        self.check_settings()

        if y is None:
            raise TransferkitError("select-k-best needs the source labels.")
        src = source_mask(sample_domain)
        k = min(int(self.k), X.shape[1])
        self.selector_ = _SelectKBest(f_classif, k=k).fit(X[src], y[src])

    def _transform(self, X, sample_domain):
        return self.selector_.transform(X)


def _texts(X, step: str) -> list[str]:
    """``X`` as a list of texts for a text step, or a clear error for numeric rows."""
    X = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if X.ndim != 1 or not all(isinstance(t, str) for t in X):
        from transferkit.errors import TransferkitError

        raise TransferkitError(
            f"the {step} step turns texts into features, but these rows are not texts (rows of shape "
            f"{tuple(X.shape[1:])}); a table is text when it has a 'text' column. Leave {step} out for "
            "numeric data."
        )
    return list(X)


class Tfidf(_Preprocessing):
    """Turn texts into TF-IDF features (vocabulary and document frequencies from all rows)."""

    accepts_text = True

    def __init__(
        self,
        max_features: int = 5000,
        ngram_max: int = 1,
        min_df: int = 2,
        sublinear_tf: bool = True,
    ):
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf

    def check_settings(self) -> None:
        """The settings' own checks (no data needed): run when the step is built and at fit."""
        from transferkit.errors import TransferkitError

        check_flag("tfidf's sublinear_tf", self.sublinear_tf)
        for key, meaning in (("max_features", "words kept"), ("ngram_max", "longest word sequence"),
                             ("min_df", "texts a word must appear in")):  # fmt: skip
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise TransferkitError(
                    f"tfidf's {key} ({meaning}) must be a whole number >= 1, got {value!r}; for example "
                    f"--preprocess tfidf:{key}={getattr(type(self)(), key)}."
                )

    def _fit(self, X, y, sample_domain):
        from sklearn.feature_extraction.text import TfidfVectorizer

        from transferkit.errors import TransferkitError

        self.check_settings()
        texts = _texts(X, "tfidf")
        try:
            self.vectorizer_ = TfidfVectorizer(
                max_features=self.max_features,
                ngram_range=(1, self.ngram_max),
                min_df=self.min_df,
                sublinear_tf=self.sublinear_tf,
            ).fit(texts)
        except ValueError as exc:  # no word left: empty texts, or every word in fewer than min_df texts
            raise TransferkitError(
                f"tfidf found no vocabulary in these {len(texts)} texts ({exc}); the texts are empty, or no "
                f"word appears in at least min_df={self.min_df} of them (try --preprocess tfidf:min_df=1)."
            ) from None

    def _transform(self, X, sample_domain):
        from transferkit.shallow._kernels import _bytes, _physical_memory

        texts = _texts(X, "tfidf")
        # the methods take dense rows: a clear error before allocating more than half the memory
        need, total = 8 * len(texts) * len(self.vectorizer_.vocabulary_), _physical_memory()
        if total is not None and need > 0.5 * total:
            from transferkit.errors import TransferkitError

            raise TransferkitError(
                f"tfidf would make a dense {len(texts)} x {len(self.vectorizer_.vocabulary_)} matrix "
                f"({_bytes(need)}), more than half of this machine's {_bytes(total)}; lower max_features "
                f"(now {self.max_features}) or use sentence-embedding."
            )
        return self.vectorizer_.transform(texts).astype(np.float64).toarray()


class SentenceEmbedding(_Preprocessing):
    """Turn texts into all-MiniLM-L6-v2 sentence embeddings (384 features), cached on disk.

    The same features the deep methods train on for text, so shallow and deep methods can be compared
    on one representation (``--preprocess sentence-embedding``). Needs the ``text`` extra. ``pooling``:
    ``"chunks"`` (long texts embedded window by window and averaged) or ``"truncate"`` (the model's own
    cut at 256 word pieces); see :mod:`transferkit.features`.
    """

    accepts_text = True

    def __init__(self, pooling: str = "chunks"):
        self.pooling = pooling

    def check_settings(self) -> None:
        """The settings' own checks (no data needed): run when the step is built and at fit."""
        from transferkit.features import check_pooling

        check_pooling(self.pooling)

    def _fit(self, X, y, sample_domain):
        self.check_settings()
        _texts(X, "sentence-embedding")

    def _transform(self, X, sample_domain):
        from transferkit.features import cache_dir, embed_by_domain

        sd = np.full(len(X), -1) if sample_domain is None else sample_domain
        Z = embed_by_domain(X, sd, pooling=self.pooling, cache_dir=cache_dir() / "embeddings")
        return np.asarray(Z, dtype=np.float64)


# --- replaying fitted steps on new rows (transferkit predict) ------------------------------------


def export_steps(steps: list, specs: list[str], domain_names: dict[int, str]) -> list[dict]:
    """The fitted ``steps`` (built from ``specs``) as JSON-ready records, saved with a network so
    that :func:`replay_steps` applies the same transformation to new rows: a norm, standardization
    statistics, a shared PCA's mean, axes and variances, the columns a selection kept. A step that
    cannot be replayed (a text step) is recorded with ``state: None``; a prediction through it is
    refused, never approximated."""
    records = []
    for step, spec in zip(steps, specs):
        state = None
        if isinstance(step, Impute):
            state = {"impute": {"fill": [float(v) for v in step.fill_],
                                "indicator_columns": [int(i) for i in step.indicator_columns_]}}  # fmt: skip
        elif isinstance(step, RowNormalize):
            state = {"norm": step.norm}
        elif isinstance(step, SharedPCA):
            pca = step.pca_
            fitted = {"mean": pca.mean_, "components": pca.components_, "variance": pca.explained_variance_}
            state = {"pca": {**{k: v.tolist() for k, v in fitted.items()}, "whiten": bool(pca.whiten)}}
        elif isinstance(step, SelectKBest):
            state = {"columns": [int(i) for i in step.selector_.get_support(indices=True)]}
        elif isinstance(step, Standardize):
            stats = {
                ("source" if key == "source" else domain_names[int(key)]): {
                    "mean": [float(v) for v in mean],
                    "std": [float(v) for v in std],
                }
                for key, (mean, std) in step.stats_.items()
            }
            state = {"per_domain": bool(step.per_domain), "with_mean": bool(step.with_mean),
                     "with_std": bool(step.with_std), "stats": stats}  # fmt: skip
        records.append({"step": spec, "state": state})
    return records


def replay_steps(records: list[dict], X: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """Apply recorded steps (:func:`export_steps`) to the rows ``X``, whose domain names are
    ``domains``. Per-domain standardization uses the saved statistics of a domain it was fitted on and
    a new domain's own statistics (as in training, where every domain had its own)."""
    from transferkit.errors import TransferkitError

    Z = np.asarray(X, dtype=np.float64)
    for record in records:
        state = record.get("state")
        if state is None:
            raise TransferkitError(
                f"the model was trained after the preprocessing step '{record['step']}', whose fitted state "
                "is not saved with it, so its inputs cannot be prepared the same way; train it with "
                "impute, normalize, standardize, pca or select-k-best steps (or none) to predict with "
                "`transferkit predict`."
            )
        if "impute" in state:
            Z = fill_missing(Z, state["impute"]["fill"], state["impute"]["indicator_columns"])
            continue
        if "norm" in state:  # the steps' own transforms, with their saved state
            Z = RowNormalize(state["norm"])._transform(Z, None)
            continue
        if "pca" in state:  # sklearn's PCA.transform: centred rows onto the axes, whitened if fitted so
            pca = {k: np.asarray(v, dtype=np.float64) for k, v in state["pca"].items() if k != "whiten"}
            Z = (Z - pca["mean"]) @ pca["components"].T
            if state["pca"]["whiten"]:  # a component without variance is divided by eps, as sklearn does
                Z = Z / np.maximum(np.sqrt(pca["variance"]), np.finfo(np.float64).eps)
            continue
        if "columns" in state:
            Z = Z[:, np.asarray(state["columns"], dtype=np.int64)]
            continue
        step = Standardize(state["per_domain"], state["with_mean"], state["with_std"])
        arrays = {key: tuple(np.asarray(v[k], dtype=np.float64) for k in ("mean", "std"))
                  for key, v in state["stats"].items()}  # fmt: skip
        if not state["per_domain"]:
            step.stats_ = {"source": arrays["source"]}
            Z = step._transform(Z, None)
            continue
        names = list(np.unique(domains))
        step.stats_ = {i: arrays[name] for i, name in enumerate(names) if name in arrays}
        for name in names:
            n = int(np.sum(domains == name))
            if name not in arrays and n < 10:
                warnings.warn(
                    f"domain '{name}' was not among the training domains: its {n} rows are "
                    "standardized with their own statistics (per-domain standardization), which few "
                    "rows estimate poorly; predict a new domain with more of its rows at once.",
                    UserWarning,
                    stacklevel=2,
                )
        # a domain without saved statistics gets its own, as Standardize does for any unseen domain
        # (its warning names the domain by index: the one above names it)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="domain .* was not seen in fit", category=UserWarning)
            Z = step._transform(Z, np.searchsorted(names, domains))
    return Z
