"""One run: a config in, a result record out.

A :class:`RunSpec` names the data set, the source and target domains, the method with its settings,
the final estimator, the preprocessing and the seed. :func:`run` resolves it (registry defaults,
then the given settings), fits, predicts the target and only *then* reads the target labels to
score the predictions. The record it returns (and :func:`save_record` writes atomically as
``result.json``) holds the resolved config, the seed, package versions, the machine, the accuracy
and the wall time.

Prediction and scoring are separate on purpose: :func:`fit_predict` never touches a target label
(the dataset's target labels are not even read to build the arrays), except for methods marked
``requires_target_labels`` (the target-only oracle), whose record says ``selection: oracle``.

>>> from transferkit.experiment import RunSpec, run
>>> rec = run(RunSpec(method="coral"))
>>> rec["config"]["task"], rec["selection"], rec["accuracy"] > 40
('caltech->amazon', 'fixed-defaults', True)
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from transferkit import registry
from transferkit.domains import DomainDataset, few_shot_indices
from transferkit.errors import TransferkitError, check_whole

__all__ = [
    "RunSpec",
    "build_classifier",
    "evaluate",
    "fit_predict",
    "grid",
    "run",
    "save_record",
    "select_runs",
]

FIXED = "fixed-defaults"
"""Selection rule of a run whose settings were fixed in advance, without any target label."""
ORACLE = "oracle"
"""Selection rule of a run that read target labels (reported as a ceiling, never a headline)."""


@dataclass
class RunSpec:
    """Everything that defines a run. ``preprocess=None`` uses the data set's standard steps."""

    dataset: str = "office-caltech10"
    sources: tuple[str, ...] = ("caltech",)
    targets: tuple[str, ...] = ("amazon",)
    method: str = "source-only"
    params: dict[str, Any] = field(default_factory=dict)
    estimator: str = registry.DEFAULT_ESTIMATOR
    estimator_params: dict[str, Any] = field(default_factory=dict)
    preprocess: tuple[str, ...] | None = None
    seed: int = 0
    data_root: str | None = None
    target_labels: int = 0
    """Labelled target samples per class revealed to the method (0: unsupervised adaptation)."""
    columns: dict[str, Any] = field(default_factory=dict)
    """How to read a table of your own: :func:`transferkit.datasets.load_table`'s ``domain_column``,
    ``label_column``, ``feature_columns``, ``text_column`` and ``categorical`` (empty: its defaults)."""

    def __post_init__(self) -> None:
        from transferkit.datasets.table import TABLE_READING

        self.columns = {} if self.columns is None else self.columns
        if not isinstance(self.columns, dict):  # a string was read as its letters, None failed in set()
            raise TransferkitError(
                f"columns must be a dict such as {{'label_column': 'outcome'}} (keys: "
                f"{', '.join(TABLE_READING)}), got {self.columns!r}."
            )
        unknown = sorted(set(self.columns) - set(TABLE_READING))
        if unknown:
            raise TransferkitError(
                f"columns: unknown key {unknown[0]!r}; the keys are {', '.join(TABLE_READING)}."
            )
        self.columns = {k: v for k, v in self.columns.items() if v not in (None, [], ())}
        if isinstance(self.sources, str):
            self.sources = (self.sources,)
        if isinstance(self.targets, str):
            self.targets = (self.targets,)
        self.sources, self.targets = tuple(self.sources), tuple(self.targets)
        if not self.sources:
            raise TransferkitError("a run needs at least one source domain.")
        if not self.targets:
            raise TransferkitError("a run needs at least one target domain.")

    @property
    def task(self) -> str:
        return f"{'+'.join(self.sources)}->{'+'.join(self.targets)}"


# a user's table: every column scaled by the source's mean and spread (the scaling a model trained on
# the source alone would use, so no adaptation hides in it). Raw columns of very different scales stall
# libsvm for minutes at large C and make a network's loss diverge.
USER_TABLE_STEPS = ("standardize:per_domain=false",)


def default_preprocess(dataset: DomainDataset, dataset_id: str) -> tuple[str, ...]:
    """The standard steps of a built-in data set; for a user's data TF-IDF for texts, the source's
    standardization (:data:`USER_TABLE_STEPS`) for feature tables and none for images."""
    from transferkit.datasets import dataset_info, list_datasets

    if dataset_id in list_datasets():
        return dataset_info(dataset_id).preprocess
    if dataset.modality == "text":
        return ("tfidf",)
    return () if dataset.modality == "image" else USER_TABLE_STEPS


def _with_seed(obj, seed: int, explicit: dict) -> None:
    if "random_state" in obj.get_params(deep=False) and "random_state" not in explicit:
        obj.set_params(random_state=seed)


def build_steps(preprocess: tuple[str, ...], seed: int) -> tuple[list, list[dict]]:
    """The preprocessing steps named by ``"name:key=value"`` strings (seeded by ``seed`` unless they
    set ``random_state``), and their resolved settings for the record. Shallow and deep runs share it."""
    steps, resolved = [], []
    for text in preprocess:
        name, settings = registry.parse_spec(text)
        step = registry.build("preprocessing", name, settings)
        _with_seed(step, seed, settings)
        steps.append(step)
        resolved.append({"name": name, "params": step.get_params(deep=False)})
    return steps, resolved


def imputes_first(preprocess) -> bool:
    """Whether the first of the steps ``preprocess`` (``"name:key=value"`` strings) is ``impute``,
    which fills missing values: only then may the rows hold NaN."""
    steps = tuple(preprocess or ())
    return bool(steps) and registry.parse_spec(steps[0])[0] == "impute"


def check_labelled_sources(dataset: DomainDataset, sources) -> None:
    """Every row of every source domain has a label, or an error naming the domain (the arrays' own
    check counts the unlabelled rows of all the sources together, without saying whose they are)."""
    for name in sources:
        unlabelled = int((np.asarray(dataset.labels(name)) < 0).sum())
        if unlabelled:
            raise TransferkitError(
                f"source '{name}' has {unlabelled} of its {dataset.counts()[name]} rows without a label, and "
                "every source row needs one: make it a target (its labelled rows are then scored), or label "
                "or drop those rows."
            )


def stack(dataset: DomainDataset, sources, targets, preprocess):
    """``dataset.to_arrays(sources, targets)`` for a run whose steps are ``preprocess``: NaN allowed
    when the first step imputes it, and then a column without any known source value an error naming
    it (there is nothing to fill it with). A source row without a label is an error naming its domain."""
    check_labelled_sources(dataset, sources)
    arrays = dataset.to_arrays(sources, targets, allow_missing=imputes_first(preprocess))
    if imputes_first(preprocess):
        dataset.check_imputable(sources)
    return arrays


def build_classifier(spec: RunSpec, preprocess: tuple[str, ...]):
    """The composed classifier of a run, and the resolved settings of each part."""
    from transferkit.shallow.base import DAClassifier

    method_entry = registry.entry("method", spec.method)
    steps, resolved_steps = build_steps(preprocess, spec.seed)
    if method_entry.role == "deep":  # the steps reach a deep method's feature vectors (see run())
        return None, {**_deep_config(spec), "preprocess": resolved_steps}
    method = registry.build("method", spec.method, spec.params)
    _with_seed(method, spec.seed, spec.params)
    estimator = registry.build("estimator", spec.estimator, spec.estimator_params)
    _with_seed(estimator, spec.seed, spec.estimator_params)
    if method_entry.role == "classifier":
        clf = DAClassifier(adapter=None, estimator=method, preprocessing=tuple(steps))
        estimator_config = None
    else:
        clf = DAClassifier(adapter=method, estimator=estimator, preprocessing=tuple(steps))
        estimator_config = {"name": spec.estimator, "params": estimator.get_params(deep=False)}
    config = {
        "method": {"name": spec.method, "params": method.get_params(deep=False)},
        "estimator": estimator_config,
        "preprocess": resolved_steps,
    }
    return clf, config


def _deep_config(spec: RunSpec) -> dict:
    from transferkit.deep.runner import split_settings

    settings = registry.resolve_params(registry.entry("method", spec.method), spec.params)
    method_settings, trainer, network = split_settings(settings)
    method = registry.build("method", spec.method, method_settings)
    own = {k: v for k, v in method.__dict__.items() if not k.startswith("_") and k != "training"}
    return {
        "method": {"name": spec.method, "params": own},
        "estimator": None,
        "trainer": {**trainer, "seed": spec.seed},
        "network": network,
        "preprocess": [],
    }


def _flat(X):
    X = np.asarray(X)
    return X.reshape(X.shape[0], -1) if X.ndim > 2 else X


def _method_flag(spec: RunSpec, flag: str) -> bool:
    return bool(getattr(registry.entry("method", spec.method).load(), flag, False))


def fit_predict(
    spec: RunSpec, dataset: DomainDataset, preprocess: tuple[str, ...], keep: dict | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fit on the sources and the unlabelled targets, and predict every target domain.

    Returns the predictions of every target row and, per target, the indices of the rows whose
    labels were revealed to the method (empty unless ``spec.target_labels > 0``); those rows are
    left out of the evaluation. Target labels are never read here, except the revealed ones (chosen
    by :func:`~transferkit.domains.few_shot_indices`) and by the target-only oracle.
    """
    entry = registry.entry("method", spec.method)
    dataset.check_domains(spec.sources + spec.targets)
    if entry.requires_target_labels:
        return _oracle_predict(spec, dataset, preprocess), {t: np.zeros(0, np.int64) for t in spec.targets}
    if _method_flag(spec, "needs_target_labels") and spec.target_labels < 1:
        raise TransferkitError(
            f"method '{spec.method}' learns from a few labelled target samples; say how many per "
            "class with --target-labels K (target_labels=K)."
        )
    # target labels filled with -1, unread; NaN allowed when the first step fills it
    arrays = stack(dataset, spec.sources, spec.targets, preprocess)
    y = arrays.y.copy()
    revealed = {}
    for sd, name in arrays.domain_names.items():
        if sd < 0:
            if spec.target_labels > 0:
                rows = np.flatnonzero(arrays.sample_domain == sd)
                picked = few_shot_indices(dataset.labels(name), spec.target_labels, spec.seed,
                                          class_names=[str(c) for c in dataset.classes])  # fmt: skip
                if len(picked) == 0:
                    import warnings

                    warnings.warn(
                        f"target '{name}' has no labels, so --target-labels {spec.target_labels} reveals "
                        "none: the method runs unsupervised there, and no accuracy can be measured.",
                        UserWarning,
                        stacklevel=2,
                    )
                y[rows[picked]] = np.asarray(dataset.labels(name))[picked]  # only these are read
                revealed[name] = picked
            else:
                revealed[name] = np.zeros(0, np.int64)
    if entry.role == "deep":
        from transferkit.deep.runner import fit_predict_deep, split_settings

        settings = registry.resolve_params(entry, spec.params)
        preds, history, kept = fit_predict_deep(
            spec, dataset, y, arrays, *split_settings(settings), preprocess=preprocess
        )
        if keep is not None:
            keep.update(history=history, sample_domain=arrays.sample_domain,
                        domain_names=arrays.domain_names, **kept)  # fmt: skip
        return preds, revealed
    clf, _ = build_classifier(spec, preprocess)
    if spec.target_labels > 0 and not clf._uses_target_labels():
        import warnings

        warnings.warn(
            f"method '{spec.method}' learns from no target label: with --target-labels "
            f"{spec.target_labels} its revealed rows are only left out of its accuracy (the rows a "
            "semi-supervised run is scored on); the labels never reach it (the composer hides them).",
            UserWarning,
            stacklevel=2,
        )
    own_classifier = clf.adapter is None  # a method that classifies (JDA, MEDA, ...): no final classifier
    if own_classifier and (spec.estimator != registry.DEFAULT_ESTIMATOR or spec.estimator_params):
        import warnings

        warnings.warn(
            f"method '{spec.method}' classifies with its own estimator: --estimator {spec.estimator} is not "
            "used (set the method's own with --set estimator=NAME where `transferkit methods "
            f"{spec.method}` lists one).",
            UserWarning,
            stacklevel=2,
        )
    X = _flat(arrays.X)
    clf.fit(X, y, arrays.sample_domain)
    preds = {}
    for sd, name in arrays.domain_names.items():
        if sd < 0:
            rows = arrays.sample_domain == sd
            preds[name] = clf.predict(X[rows], arrays.sample_domain[rows])
    if keep is not None:  # for the run's pictures: the fitted model and the rows it saw; and to save it
        estimator = None if own_classifier else spec.estimator
        keep.update(model=clf, X=X, sample_domain=arrays.sample_domain, domain_names=arrays.domain_names,
                    classifier={"method": spec.method, "estimator": estimator,
                                "preprocess": list(preprocess)})  # fmt: skip
    return preds, revealed


def save_artifacts(
    keep: dict, predictions: dict, dataset: DomainDataset, out_dir, max_rows: int = 2000, revealed=None
):
    """Write what a report needs: per-row predictions and a 2-D view of the features.

    ``predictions.csv``: target, row (as ``transferkit predict`` writes it: a table's row number in
    its file, 1 = the first below the header; else the position in the domain), prediction, label
    (class indices; -1: no label) and the class names, predicted_class and label_class (empty without
    a label), ``revealed`` (1 for a row whose label the method was given: left out of the accuracy,
    ``revealed`` by target name) and, for images, the ``file``.
    ``embedding.npz``: a PCA to 2 dimensions of the preprocessed features before adaptation and of
    the adapted ones (what the classifier sees), for at most ``max_rows`` rows, with their domain
    and class (source label; the target's true label, read here for evaluation only, as for the
    accuracy); a run without one removes an earlier run's from the folder, and a ``model/`` left by
    an earlier deep run is kept, with a warning (a deep run replaces it, with a warning).
    """
    import csv
    import io as _io

    from sklearn.decomposition import PCA

    from transferkit.io import atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    extras = dataset.extras if isinstance(dataset.extras, dict) else {}
    files, table_rows = extras.get("files"), extras.get("table_rows")
    writer.writerow(["target", "row", "prediction", "label", "predicted_class", "label_class", "revealed"]
                    + (["file"] if files else []))  # fmt: skip
    names = [str(c) for c in dataset.classes]
    for target, pred in predictions.items():
        labels = np.asarray(dataset.labels(target))
        given = np.zeros(len(labels), bool)
        given[np.asarray((revealed or {}).get(target, []), dtype=np.int64)] = True
        # `row` as `transferkit predict` writes it: a table's row number in the file (1 = the first
        # below the header), else the position in the domain (an image's file beside it)
        rows = table_rows[target] if table_rows else np.arange(len(labels))
        writer.writerows(
            [target, int(rows[i]), int(p), int(t), names[int(p)], names[int(t)] if t >= 0 else "", int(g)]
            + ([files[target][i]] if files else [])
            for i, (p, t, g) in enumerate(zip(pred, labels, given))
        )
    atomic_write_text(
        out / "predictions.csv",
        buf.getvalue().encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
    )
    from transferkit.nn.saved_model import SPEC as NETWORK_SPEC
    from transferkit.nn.saved_model import WEIGHTS
    from transferkit.shallow import saved

    saves = keep.get("network") is not None or keep.get("classifier") is not None
    if saves:  # a deep run's trained network (for init=DIR/model), a shallow run's fitted composer
        if (out / "model").exists():
            import warnings

            warnings.warn(
                f"{out / 'model'} held a model from an earlier run in this folder; it is replaced by this "
                "run's (use a new --out to keep both).",
                UserWarning,
                stacklevel=2,
            )
        # the other kind's files go, so that predict never finds two models in one folder
        other = (saved.MODEL, saved.SPEC) if keep.get("network") is not None else (NETWORK_SPEC, WEIGHTS)
        for name in other:
            (out / "model" / name).unlink(missing_ok=True)
    if keep.get("network") is not None:
        from transferkit.nn.saved_model import save_network

        save_network(keep["network"][0], out / "model", keep["network"][1])
    elif keep.get("classifier") is not None:
        extras = dataset.extras if isinstance(dataset.extras, dict) else {}
        names = extras.get("feature_names")
        try:
            saved.save_classifier(keep["model"], out / "model", {
                **keep["classifier"], "classes": [str(c) for c in dataset.classes],
                "modality": dataset.modality,
                "domains": {str(name): int(code) for code, name in keep["domain_names"].items()},
                **({"feature_names": list(map(str, names))} if names is not None else {}),
                **({"reading": extras["reading"]} if extras.get("reading") else {}),
                "versions": versions(),
            })  # fmt: skip
        except Exception as exc:  # an object skops cannot store (a classifier of one's own): the run stands
            import warnings

            warnings.warn(
                f"the fitted model could not be saved under {out / 'model'} ({type(exc).__name__}: {exc}); "
                "the run's predictions and result are written, but `transferkit predict` cannot use it.",
                UserWarning,
                stacklevel=2,
            )
    elif (out / "model").exists():  # a network is a user's work: said, never deleted
        import warnings

        shallow = (out / "model" / saved.SPEC).exists()  # an earlier shallow run's, which predict reads
        warnings.warn(
            f"{out / 'model'} is a {'fitted classifier' if shallow else 'network'} from an earlier run in "
            "this folder, not this run's; move or delete it (or use a new --out) so that "
            f"{'transferkit predict DIR' if shallow else 'init=DIR/model'} does not pick up the wrong one.",
            stacklevel=2,
        )
    model = keep.get("model")
    if not hasattr(model, "features"):
        # an earlier run's 2-D view would be drawn in this run's report: it is derived data, removed
        (out / "embedding.npz").unlink(missing_ok=True)
        return
    X, sd = keep["X"], keep["sample_domain"]
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(X), min(max_rows, len(X)), replace=False))
    labels = np.empty(len(X), np.int64)
    for d, name in keep["domain_names"].items():
        labels[sd == d] = np.asarray(dataset.labels(name))
    before = X[rows]
    for step in getattr(model, "steps_", []):
        before = step.transform(before, sd[rows])
    after = model.features(X[rows], sd[rows])
    views = {}
    for key, Z in (("before", before), ("after", after)):
        Z = np.asarray(Z, dtype=np.float64).reshape(len(rows), -1)
        views[key] = PCA(2, random_state=0).fit_transform(Z) if Z.shape[1] > 2 else Z
    buf = _io.BytesIO()
    np.savez(buf, before=views["before"], after=views["after"], domain=sd[rows], label=labels[rows])
    atomic_write_bytes(out / "embedding.npz", buf.getvalue())


def grid(search_space: dict[str, tuple | list]) -> list[dict[str, Any]]:
    """Every combination of a method's ``search_space``, in a stable order."""
    import itertools

    keys = sorted(search_space)
    return [dict(zip(keys, values)) for values in itertools.product(*(search_space[k] for k in keys))]


def select_runs(
    spec: RunSpec,
    dataset: DomainDataset,
    preprocess: tuple[str, ...],
    candidates: list[dict[str, Any]],
    scorers: list[str],
    val_fraction: float = 0.2,
) -> list[dict[str, Any]]:
    """Fit each candidate setting once and score it with label-free scorers, then with the oracle.

    The labelled source rows are split (stratified, seeded by ``spec.seed``) into a training part and
    a held-out part; every candidate is fitted on the training part plus the unlabelled target, and
    scored by each scorer on the held-out source rows and the target rows (target labels masked).
    Only after every scorer has spoken are the target labels read, to give each candidate's
    accuracy: so a row of the result holds ``params``, ``scores`` (one per scorer), ``collapsed``
    (whether its target predictions collapsed onto one class, :func:`~transferkit.selection.target_collapse`:
    read off predictions and source labels, for :func:`~transferkit.selection.choose`) and
    ``accuracy`` and ``balanced_accuracy`` (as in a run's record: means over the labelled targets).
    Unsupervised methods only (no revealed target labels).
    """
    from transferkit.selection import DomainShuffleSplit, get_scorer, reads_target, target_collapse

    if spec.target_labels:  # it would fit and score every candidate unsupervised, without a word
        raise TransferkitError(
            f"select_runs chooses among unsupervised runs, but the spec reveals {spec.target_labels} target "
            "labels per class; pass a spec with target_labels=0 (or choose with the few labels yourself)."
        )
    dataset.check_domains(spec.sources + spec.targets)
    # target labels are -1 here
    arrays = stack(dataset, spec.sources, spec.targets, preprocess)
    entry = registry.entry("method", spec.method)
    deep = entry.role == "deep"
    if deep:  # the network's own inputs (images stay images); the trainer is scored as a classifier
        from transferkit.deep.runner import fit_deep, init_columns, inputs, split_settings
        from transferkit.nn.trainer import TrainerClassifier

        init = registry.resolve_params(entry, spec.params).get("init")
        if any(c.get("init", init) != init for c in candidates):
            raise TransferkitError("the candidates of one selection start from one init; search init apart.")
        # fine-tuning a saved network: a table's columns in its order, its impute columns
        arrays, _, impute_columns = init_columns(dataset, arrays, init)

    y, sd = arrays.y, arrays.sample_domain
    sees_target = getattr(entry.load(), "uses_target", True)
    if not sees_target and (reading := [s for s in scorers if reads_target(s)]):
        raise TransferkitError(
            f"{spec.method} never sees the target (domain generalization), and the scorers "
            f"{', '.join(reading)} score target rows; choose its setting with source-val."
        )
    train, val = next(DomainShuffleSplit(1, val_fraction, spec.seed).split(_flat(arrays.X), y, sd))
    if not sees_target:  # neither its preprocessing nor its scorer sees a target row
        train, val = train[sd[train] >= 0], val[sd[val] >= 0]
    # feature vectors go through the steps fitted on the training part only, as the shallow ones do
    X = (
        inputs(dataset, arrays, preprocess, fit_rows=train, seed=spec.seed, impute_columns=impute_columns)
        if deep
        else _flat(arrays.X)
    )
    scorer_objs = {name: get_scorer(name, random_state=spec.seed) for name in scorers}
    fitted = []
    for params in candidates:
        start = time.perf_counter()
        if deep:
            settings = registry.resolve_params(entry, {**spec.params, **params})
            trainer, _, _ = fit_deep(spec, dataset, X[train], y[train], sd[train], *split_settings(settings))
            clf = TrainerClassifier(trainer)
        else:
            clf, _ = build_classifier(replace(spec, params={**spec.params, **params}), preprocess)
            clf.fit(X[train], y[train], sd[train])
        scores = {name: s(clf, X[val], y[val], sd[val]) for name, s in scorer_objs.items()}
        preds = {}
        for d, name in arrays.domain_names.items():
            if d < 0:
                rows = sd == d
                preds[name] = clf.predict(X[rows], sd[rows])
        source_labels = y[train][(sd[train] >= 0) & (y[train] >= 0)]
        collapsed = target_collapse(np.concatenate(list(preds.values())), source_labels) is not None
        fitted.append({"params": params, "scores": scores, "preds": preds, "collapsed": collapsed,
                       "seconds": time.perf_counter() - start})  # fmt: skip
    out = []
    for item in fitted:  # the target labels are read only now, after every score is known
        preds = item.pop("preds")
        # a target without labels has no accuracy: the labelled targets are averaged, as in run()
        out.append({**item, "accuracy": _mean_of_scored(evaluate(preds, dataset)),
                    "balanced_accuracy": _balanced(target_metrics(preds, dataset))})  # fmt: skip
    return out


def _oracle_predict(spec: RunSpec, dataset: DomainDataset, preprocess) -> dict[str, np.ndarray]:
    """Target-only: stratified k-fold inside each target; the training fold plays the source."""
    from sklearn.model_selection import StratifiedKFold

    method = registry.build("method", spec.method, spec.params)
    n_folds = check_whole("target-only's n_folds", getattr(method, "n_folds", 5), 2)
    preds = {}
    for target in spec.targets:
        X = _flat(np.asarray(dataset.X[target]))
        y = np.asarray(dataset.labels(target), dtype=np.int64)
        if (y < 0).any():
            raise TransferkitError(f"target-only needs the labels of '{target}', but some are unknown (-1).")
        counts = np.bincount(y)
        smallest = int(counts[counts > 0].min())
        folds = min(n_folds, smallest)
        if folds < 2:
            raise TransferkitError(
                f"target-only needs at least 2 samples of every class in '{target}' "
                f"(smallest class has {smallest})."
            )
        out = np.empty_like(y)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=spec.seed)
        for train, test in splitter.split(np.zeros(len(y)), y):
            clf, _ = build_classifier(spec, preprocess)
            Xf = X[np.r_[train, test]]
            yf = np.r_[y[train], np.full(len(test), -1)]
            sd = np.r_[np.zeros(len(train), np.int64), -np.ones(len(test), np.int64)]
            clf.fit(Xf, yf, sd)
            out[test] = clf.predict(X[test], -np.ones(len(test), np.int64))
        preds[target] = out
    return preds


def _warn_unseen_classes(dataset: DomainDataset, spec: RunSpec, revealed=None) -> None:
    """Warn when a target holds classes that no source has: a classifier trained on the sources
    cannot predict them, so every such row counts as an error in the accuracy. A class among the
    target labels revealed to a method that learns from them (``revealed``) is not unseen."""
    seen = {int(c) for s in spec.sources for c in np.asarray(dataset.labels(s)) if c >= 0}
    for t, rows in (revealed or {}).items():
        seen |= {int(c) for c in np.asarray(dataset.labels(t))[np.asarray(rows, dtype=np.int64)]}
    for t in spec.targets:
        new = sorted({int(c) for c in np.asarray(dataset.labels(t)) if c >= 0} - seen)
        if new:
            import warnings

            names = [str(dataset.classes[c]) for c in new]
            warnings.warn(
                f"target '{t}' has classes no source has: {names}; a classifier trained on the source cannot "
                "predict them, so their rows count as errors in the accuracy.",
                UserWarning,
                stacklevel=3,
            )


def _learns_revealed(spec: RunSpec, preprocess) -> bool:
    """Whether the run's method learns from the target labels it is given (``--target-labels K``)."""
    entry = registry.entry("method", spec.method)
    if spec.target_labels < 1 or entry.requires_target_labels:
        return False
    if entry.role == "deep":
        return bool(getattr(entry.load(), "uses_target_labels", True))
    return build_classifier(spec, preprocess)[0]._uses_target_labels()


def evaluate(
    predictions: dict[str, np.ndarray], dataset: DomainDataset, revealed: dict[str, np.ndarray] | None = None
) -> dict[str, float]:
    """Accuracy in percent of each target's predictions (this is where target labels are read).

    Rows whose label was revealed to the method (``revealed``) are left out.
    """
    scores = {}
    for target, pred in predictions.items():
        y, known = _scored_rows(dataset, target, revealed)
        scores[target] = float(100.0 * np.mean(pred[known] == y[known])) if known.any() else float("nan")
    return scores


def _scored_rows(dataset: DomainDataset, target: str, revealed) -> tuple[np.ndarray, np.ndarray]:
    """A target's labels and which of its rows are scored: labelled, and not revealed to the method."""
    y = np.asarray(dataset.labels(target))
    known = y >= 0
    if revealed is not None and len(revealed.get(target, ())):
        known[revealed[target]] = False
    return y, known


def target_metrics(
    predictions: dict[str, np.ndarray], dataset: DomainDataset, revealed: dict[str, np.ndarray] | None = None
) -> dict[str, dict | None]:
    """Beyond accuracy, per target, on the same rows as :func:`evaluate` (``None`` for a target
    without labels): the balanced accuracy (the mean of the recalls of the classes the target has,
    in percent: accuracy can look good on a skewed target by predicting its largest class), the
    macro F1 over those classes (percent), each class's precision, recall and count by name, and the
    confusion matrix (rows the true class, columns the predicted, every class of the data set)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    out: dict[str, dict | None] = {}
    names = [str(c) for c in dataset.classes]
    for target, pred in predictions.items():
        y, known = _scored_rows(dataset, target, revealed)
        if not known.any():
            out[target] = None
            continue
        yt, yp = y[known], np.asarray(pred)[known]
        present = np.unique(yt)
        precision, recall, f1, support = precision_recall_fscore_support(
            yt, yp, labels=present, zero_division=0
        )
        out[target] = {
            "balanced_accuracy": float(100.0 * recall.mean()),
            "macro_f1": float(100.0 * f1.mean()),
            "per_class": {
                names[c]: {"precision": float(p), "recall": float(r), "support": int(n)}
                for c, p, r, n in zip(present, precision, recall, support)
            },
            "confusion": confusion_matrix(yt, yp, labels=np.arange(len(names))).tolist(),
        }
    return out


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers (read without importing them)."""
    from importlib import metadata

    from transferkit import __version__

    out = {"transferkit": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "scikit-learn", "torch", "pot"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def load(spec: RunSpec) -> DomainDataset:
    from transferkit.datasets import load_dataset

    return load_dataset(spec.dataset, spec.data_root, **spec.columns)


def run(
    spec: RunSpec, dataset: DomainDataset | None = None, command: str | None = None, artifacts=None
) -> dict:
    """Run one spec and return its result record (see the module docstring).

    With ``artifacts`` (a folder), also write the predictions and a 2-D view of the features there
    (:func:`save_artifacts`), for ``transferkit report``.
    """
    dataset = dataset if dataset is not None else load(spec)
    preprocess = (
        tuple(spec.preprocess) if spec.preprocess is not None else default_preprocess(dataset, spec.dataset)
    )
    entry = registry.entry("method", spec.method)
    _, config = build_classifier(spec, preprocess)  # validates every name and setting up front
    if entry.role == "deep":
        from transferkit.deep.runner import takes_steps

        if not takes_steps(dataset):  # images and texts go to the network without the steps
            config = {**config, "preprocess": []}
    dataset.check_domains(spec.sources + spec.targets)
    start = time.perf_counter()
    keep: dict | None = {} if (artifacts is not None or entry.role == "deep") else None
    if entry.requires_target_labels:
        keep = None
    predictions, revealed = fit_predict(spec, dataset, preprocess, keep=keep)
    seconds = time.perf_counter() - start
    if keep and keep.get("batch_size") and "trainer" in config:  # the resolved config: what was used
        config = {**config, "trainer": {**config["trainer"], "batch_size": keep["batch_size"]}}
    if artifacts is not None:
        kept = keep if keep and (keep.get("model") is not None or keep.get("network")) else {"model": None}
        save_artifacts(kept, predictions, dataset, artifacts, revealed=revealed)
    scores = evaluate(predictions, dataset, revealed)
    metrics = target_metrics(predictions, dataset, revealed)
    # after the fit: labels read here only to explain the scores (revealed ones count where learnt from)
    _warn_unseen_classes(dataset, spec, revealed if _learns_revealed(spec, preprocess) else None)
    counts = dataset.counts()
    return {
        "config": {
            "dataset": spec.dataset,
            "sources": list(spec.sources),
            "targets": list(spec.targets),
            "task": spec.task,
            **({"columns": spec.columns} if spec.columns else {}),
            **config,
            "target_labels_per_class": spec.target_labels,
            "seed": spec.seed,
        },
        "selection": ORACLE if entry.requires_target_labels else FIXED,
        # a target without labels has no accuracy (NaN): the others are averaged; NaN if none has labels
        "accuracy": _mean_of_scored(scores),
        "accuracy_per_target": scores,
        # the mean over the labelled targets of each one's balanced accuracy (see target_metrics)
        "balanced_accuracy": _balanced(metrics),
        "metrics_per_target": metrics,
        "n_source": int(sum(counts[s] for s in spec.sources)),
        "n_target": int(sum(counts[t] for t in spec.targets)),
        "n_target_labels_revealed": int(sum(len(r) for r in revealed.values())),
        **({"history": keep["history"]} if keep and keep.get("history") else {}),
        # early_stopping: the epoch whose weights the run kept (the history goes on past it)
        **({"best_epoch": keep["best_epoch"]} if keep and keep.get("best_epoch") else {}),
        "seconds": round(seconds, 4),
        "versions": versions(),
        "machine": machine(),
        "command": command if command is not None else " ".join(sys.argv),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _balanced(metrics: dict[str, dict | None]) -> float:
    """The mean over the labelled targets of each one's balanced accuracy (see target_metrics)."""
    return _mean_of_scored({t: m["balanced_accuracy"] if m else float("nan") for t, m in metrics.items()})


def _mean_of_scored(scores: dict[str, float]) -> float:
    scored = [v for v in scores.values() if not np.isnan(v)]
    return float(np.mean(scored)) if scored else float("nan")


def save_record(record: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/result.json`` atomically and return its path."""
    from transferkit.io import atomic_write_json

    return atomic_write_json(Path(out_dir) / "result.json", record, standard=True)
