"""Predicting with a saved model: new rows prepared as the training rows were, then classified.

``transferkit run --out DIR`` saves every deep run's network under ``DIR/model``, and every shallow
run's fitted composer (:mod:`transferkit.shallow.saved`); :func:`predict_saved` (and ``transferkit
predict DIR --dataset D``) applies either to any data set of the same kind: images as they are, texts
through the same sentence embeddings (or the composer's own text steps), tables through the run's own
fitted preprocessing after their columns are matched to the training columns by name. Labels, where
the new data have them, are matched to the model's classes by name and scored.

>>> import tempfile, numpy as np
>>> from transferkit.domains import DomainDataset
>>> from transferkit.experiment import RunSpec, run
>>> rng = np.random.default_rng(0)
>>> X = {d: rng.normal(size=(80, 3)) + [2 * c, 0, 0] for d, c in (("a", 0), ("b", 1))}
>>> data = DomainDataset("toy", {d: np.vstack([X["a"], X["b"]]) for d in ("s", "t")},
...                      {d: np.r_[np.zeros(80, int), np.ones(80, int)] for d in ("s", "t")}, ["neg", "pos"])
>>> out = tempfile.mkdtemp()
>>> spec = RunSpec("toy", ("s",), ("t",), "deep-source-only", params={"epochs": 3, "progress": False},
...                preprocess=("standardize:per_domain=false",))
>>> record = run(spec, dataset=data, artifacts=out)  # writes out/model
>>> result = predict_saved(f"{out}/model", data, domains=["t"])  # the run's target predictions again
>>> result["t"].classes, 100 * result["t"].accuracy == record["accuracy"]
(['neg', 'pos'], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferkit.errors import TransferkitError

__all__ = ["DomainPredictions", "predict_saved"]


@dataclass
class DomainPredictions:
    """One domain's predictions: class indices into ``classes`` (the model's), their probabilities,
    and the rows' labels as indices into ``classes`` (-1: no label, or a class the model lacks)."""

    classes: list[str]
    predictions: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray

    @property
    def accuracy(self) -> float | None:
        """Accuracy over the rows with a label the model knows; ``None`` when there are none."""
        known = self.labels >= 0
        return float(np.mean(self.predictions[known] == self.labels[known])) if known.any() else None

    @property
    def balanced_accuracy(self) -> float | None:
        """The mean over the classes among those rows of each class's recall (the share of its rows
        predicted as it), as a run reports it; ``None`` when no row has a label the model knows."""
        known = self.labels >= 0
        if not known.any():
            return None
        y, p = self.labels[known], self.predictions[known]
        return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


def match_columns(spec: dict, dataset, X: np.ndarray) -> np.ndarray:
    """The table's columns in the order a saved network was trained on (``spec["feature_names"]``,
    matched by name): a missing column is an error, an extra one is left out with a warning.

    A category column's 0/1 columns (``city=paris``, see :func:`transferkit.datasets.load_table`)
    are matched by value: a value the model knows that these rows lack is a column of zeros, and a
    value the model never saw is 0 in all of the model's columns, with a warning."""
    import warnings

    trained = spec.get("feature_names")
    names = dataset.extras.get("feature_names") if isinstance(dataset.extras, dict) else None
    if trained is None or names is None:
        return X
    names = [str(n) for n in names]
    categories = list(dataset.extras.get("categories") or {})
    prefixes = [f"{c}=" for c in categories]

    def category_of(name: str) -> str | None:
        hits = [p for p in prefixes if name.startswith(p)]
        return max(hits, key=len)[:-1] if hits else None

    known = {category_of(n) for n in trained} - {None}  # the category columns the model knows
    missing = [n for n in trained if n not in names and category_of(n) is None]
    if missing:
        raise TransferkitError(
            f"the model was trained on the columns {trained}; these data lack {missing}. Give the new table "
            "the same feature columns (their order may differ)."
        )
    extra = [n for n in names if n not in trained]
    unseen = [n for n in extra if category_of(n) in known]
    if unseen:
        rows = int(X[:, [names.index(n) for n in unseen]].sum())
        warnings.warn(
            f"values the model never saw in its category columns are read as none of its values (0 in "
            f"every one of their 0/1 columns; {rows} cells): {unseen}",
            UserWarning,
            stacklevel=3,
        )
    extra = [n for n in extra if n not in unseen]
    if extra:
        warnings.warn(
            f"columns the model was not trained on are left out: {extra}", UserWarning, stacklevel=3
        )
    zeros = np.zeros(len(X), dtype=X.dtype)
    return np.column_stack([X[:, names.index(n)] if n in names else zeros for n in trained])


def _check_modality(spec: dict, dataset, model_dir) -> None:
    modality = spec.get("modality")
    if modality and modality != dataset.modality:
        raise TransferkitError(
            f"the model in {model_dir} was trained on {modality} data; these data are {dataset.modality}."
        )


def _to_model(dataset, classes: list[str]) -> np.ndarray:
    """The data's labels as the model's class indices (by name; a class the model lacks is -1), with a
    last entry -1 for an unknown label; a warning names the classes the model lacks that label a row (an
    empty class folder labels none)."""
    used = set()
    for d in dataset.domains:
        y = np.asarray(dataset.labels(d))
        used.update(int(i) for i in np.unique(y[y >= 0]))
    unknown = sorted({str(c) for i, c in enumerate(dataset.classes) if i in used} - set(classes))
    if unknown:
        import warnings

        warnings.warn(
            f"the labels {unknown} are not among the model's classes {classes}: their rows are predicted "
            "but not scored.",
            UserWarning,
            stacklevel=3,
        )
    return np.asarray([classes.index(str(c)) if str(c) in classes else -1 for c in dataset.classes] + [-1])


def _scored_labels(arrays, to_model: np.ndarray) -> np.ndarray:
    y = np.asarray(arrays.y)
    return np.where(y >= 0, to_model[np.where(y >= 0, y, -1)], -1)


def _rows_of(dataset, name: str, imputes: bool, model_dir):
    """A domain's rows for a saved model; a missing value is an error that says the model cannot fill it
    (no impute step was fitted with it), instead of the run's advice to add one."""
    try:
        return dataset.to_arrays([name], allow_missing=imputes)
    except TransferkitError as exc:
        text = str(exc)
        if imputes or "NaN (a missing value)" not in text:
            raise
        raise TransferkitError(
            text.split("; fill in", 1)[0]
            + f"; the model in {model_dir} was trained without an impute step, so "
            "it has no values to fill them with: fill in or drop those cells, or train it again with "
            "--preprocess impute standardize:per_domain=false (run's option) to predict rows with holes."
        ) from None


def _matched(spec: dict, dataset, X: np.ndarray, model_dir, name: str) -> np.ndarray:
    """A table's columns in the model's order (by name), checked against the saved width."""
    X = match_columns(spec, dataset, X)
    trained = spec.get("feature_names")
    if trained is not None and X.shape[1] != len(trained):  # data without column names
        shown = ", ".join(trained[:5]) + (", ..." if len(trained) > 5 else "")
        raise TransferkitError(
            f"the model in {model_dir} was trained on {len(trained)} columns ({shown}); domain "
            f"'{name}' has {X.shape[1]}."
        )
    return X


def predict_saved(
    model_dir, dataset, domains=None, batch_size: int = 512, as_domain: str | None = None
) -> dict[str, DomainPredictions]:
    """Classify the rows of ``domains`` (default: all) of ``dataset`` with the model saved in
    ``model_dir`` (a deep run's network, or a shallow run's fitted composer); returns a
    :class:`DomainPredictions` per domain. No row trains anything here.

    ``as_domain``: classify every row as the rows of that training domain were (its per-domain
    statistics; for a shallow method also its side of the adaptation), whatever the rows' own domain.
    Without it a domain the model was trained on is classified as such; a shallow model classifies a
    new domain as its one target (a warning says so; with several targets, name one), a network
    standardizes a new domain's rows per domain with their own statistics."""
    from transferkit.shallow.saved import is_saved_classifier

    if is_saved_classifier(model_dir):
        return _predict_classifier(model_dir, dataset, domains, as_domain)
    import torch

    from transferkit.deep.runner import inputs, takes_steps
    from transferkit.nn.saved_model import load_network, read_spec
    from transferkit.preprocessing import replay_steps

    spec = read_spec(model_dir)
    _check_modality(spec, dataset, model_dir)
    classes = [str(c) for c in spec.get("classes") or range(int(spec["num_classes"]))]
    names = dataset.check_domains(list(domains) if domains else list(dataset.domains))
    network = load_network(model_dir).eval()
    to_model = _to_model(dataset, classes)
    results = {}
    for name in names:
        # the domain's own labels, for scoring only; NaN allowed when the saved steps fill it first
        steps = spec.get("preprocess") or []
        imputes = bool(steps) and "impute" in (steps[0].get("state") or {})
        arrays = _rows_of(dataset, name, imputes and takes_steps(dataset), model_dir)
        if takes_steps(dataset):  # a table: its columns matched by name, then the run's fitted steps
            X = np.asarray(arrays.X, dtype=np.float32)
        else:
            X = inputs(dataset, arrays)  # images as float32, texts as their sentence embeddings
        if takes_steps(dataset) and X.ndim == 2:
            if "preprocess" not in spec:
                raise TransferkitError(
                    f"the model in {model_dir} was saved without its preprocessing (by an earlier version); "
                    "train it again to predict tables with it."
                )
            X = _matched(spec, dataset, X, model_dir, name)
            try:
                X = replay_steps(spec["preprocess"], X, np.full(len(X), as_domain or name, dtype=object))
            except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
                raise TransferkitError(
                    f"the preprocessing saved with the model in {model_dir} is damaged or does not fit "
                    f"domain '{name}' ({type(exc).__name__}: {exc}); save the model again."
                ) from None
            X = X.astype(np.float32)
        if tuple(X.shape[1:]) != tuple(spec["in_shape"]):
            raise TransferkitError(
                f"the model in {model_dir} takes inputs of shape {tuple(spec['in_shape'])}; domain '{name}' "
                f"gives {tuple(X.shape[1:])}."
            )
        probs = []
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                logits = network(torch.as_tensor(X[start : start + batch_size]))
                probs.append(torch.softmax(logits.float(), 1).numpy())
        P = np.concatenate(probs) if probs else np.zeros((0, len(classes)), np.float32)
        results[name] = DomainPredictions(classes, P.argmax(1), P, _scored_labels(arrays, to_model))
    return results


def _predict_classifier(model_dir, dataset, domains, as_domain=None) -> dict[str, DomainPredictions]:
    """:func:`predict_saved` for a shallow run's fitted composer (its preprocessing steps inside it).

    Each domain's rows carry the code the domain had in training (a source's, or a target's), so that
    per-domain steps and the method use its side of the adaptation; a domain the model never saw is
    classified as the one target was (a warning says so), or as ``as_domain``'s rows. Probabilities
    come from the final classifier's ``predict_proba``; one without it (a linear SVM) gives none (NaN)."""
    from transferkit.shallow.saved import SPEC, load_classifier, read_classifier_spec

    spec = read_classifier_spec(model_dir)
    _check_modality(spec, dataset, model_dir)
    classes = [str(c) for c in spec["classes"]]
    names = dataset.check_domains(list(domains) if domains else list(dataset.domains))
    clf = load_classifier(model_dir)
    known = np.asarray(getattr(clf, "classes_", []))
    if len(known) and not (known.dtype.kind in "iu" and 0 <= known.min() and known.max() < len(classes)):
        raise TransferkitError(
            f"the model in {model_dir} predicts {len(known)} classes but its {SPEC} names {len(classes)} "
            f"({', '.join(classes)}); it is damaged: save the model again."
        )
    to_model = _to_model(dataset, classes)
    codes = dict(spec["domains"])
    targets = [d for d, c in codes.items() if c < 0]
    if as_domain is not None and as_domain not in codes:
        raise TransferkitError(
            f"as_domain '{as_domain}' is not a domain the model was trained on ({', '.join(codes)})."
        )
    new = [n for n in names if n not in codes]
    if new and as_domain is None:  # the method adapted to its target: new rows are read as the target's
        if len(targets) != 1:
            raise TransferkitError(
                f"the model was not trained on domain(s) {new} and adapted to {len(targets)} targets "
                f"({', '.join(targets)}); say which one's rows they are like with --as-domain NAME "
                "(as_domain= in Python)."
            )
        import warnings

        warnings.warn(
            f"the model was not trained on domain(s) {new}: their rows are classified as the target "
            f"'{targets[0]}''s were (another training domain with --as-domain NAME).",
            UserWarning,
            stacklevel=3,
        )
    results = {}
    for name in names:
        code = codes[as_domain or (name if name in codes else targets[0])]
        arrays = _rows_of(dataset, name, clf._imputes(), model_dir)
        X = np.asarray(arrays.X)
        X = X.reshape(len(X), -1) if X.ndim > 2 else X
        if spec.get("feature_names") is not None and X.dtype != object:
            X = _matched(spec, dataset, X, model_dir, name)
        sd = np.full(len(X), code, dtype=np.int64)
        try:
            pred = np.asarray(clf.predict(X, sd), dtype=np.int64)
            P = np.full((len(X), len(classes)), np.nan)
            if hasattr(clf, "predict_proba"):
                P[:] = 0.0
                P[:, np.asarray(clf.classes_, dtype=np.int64)] = clf.predict_proba(X, sd)
        except (ValueError, KeyError, IndexError) as exc:
            raise TransferkitError(
                f"the model in {model_dir} ({spec.get('method', 'a shallow method')}) cannot classify domain "
                f"'{name}' ({type(exc).__name__}: {exc})."
            ) from None
        results[name] = DomainPredictions(classes, pred, P, _scored_labels(arrays, to_model))
    return results
