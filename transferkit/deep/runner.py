"""Running a deep method from a :class:`~transferkit.experiment.RunSpec`: data in, predictions out.

The network follows the data: ``lenet`` for (C, 32, 32) images, an ``mlp`` for feature vectors, and
all-MiniLM-L6-v2 sentence embeddings (cached) followed by an ``mlp`` for text. Feature vectors (a
tabular data set) go through the run's preprocessing steps first, the same steps the shallow
methods of the run get, fitted on the training rows (labelled sources and unlabelled targets):
an MLP trains badly on columns of very different scales. Images and texts take no steps. Settings given with
``--set`` go to the trainer when they name a :class:`~transferkit.nn.trainer.TrainerConfig` field,
to the network for ``backbone``/``bottleneck_dim``/``hidden``/``pretrained``/``input_norm`` (each
image standardized per channel before the backbone), and to the method
otherwise. ``init=DIR`` starts from a saved network (what ``run --out DIR`` writes under
``DIR/model``; either folder may be named) instead of building one: the source model a fine-tuning
run transfers. Its head is kept when the data have the saved model's classes (in the same order);
``new_head=true`` trains a new head on the saved trunk, and other classes without it are an error.
``lora_rank=R`` adds LoRA adapters to the trunk through PEFT and trains only them and the head.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from transferkit.errors import TransferkitError

__all__ = [
    "NETWORK_SETTINGS",
    "deep_parameters",
    "fit_deep",
    "fit_predict_deep",
    "input_preprocess",
    "inputs",
    "split_settings",
    "takes_steps",
]

NETWORK_SETTINGS: dict[str, tuple[Any, Any]] = {
    "backbone": (str, "auto"),
    "bottleneck_dim": (int | None, None),
    "hidden": (int, 256),
    "pretrained": (bool, False),
    "init": (str | None, None),
    "new_head": (bool, False),
    "lora_rank": (int, 0),
    "head_hidden": (int | None, None),
    "input_norm": (bool, False),
}
# a run's training length: 10 passes, but at least 500 optimizer steps unless the length is given
# (``epochs`` or ``steps``): with 157 rows and batches of 64 (the last, partial one dropped), ten
# passes are 20 steps
RUN_DEFAULTS = {"epochs": 10, "min_steps": 500, "batch_size": 64, "lr": 0.01, "progress": False}


def deep_parameters() -> dict[str, tuple[Any, Any]]:
    """Trainer and network settings every deep method accepts (name -> (type hint, default))."""
    import typing

    from transferkit.nn.trainer import TrainerConfig

    hints = typing.get_type_hints(TrainerConfig)
    out = {
        f.name: (hints[f.name], RUN_DEFAULTS.get(f.name, f.default))
        for f in dataclasses.fields(TrainerConfig)
    }
    out.pop("seed")  # the run's --seed
    return {**out, **NETWORK_SETTINGS}


def split_settings(settings: dict[str, Any]) -> tuple[dict, dict, dict]:
    """(method settings, trainer settings, network settings)."""
    trainer_keys = set(deep_parameters()) - set(NETWORK_SETTINGS)
    method = {k: v for k, v in settings.items() if k not in trainer_keys and k not in NETWORK_SETTINGS}
    trainer = {
        **{k: v for k, v in RUN_DEFAULTS.items()},
        **({"min_steps": 0} if {"epochs", "steps"} & set(settings) else {}),  # a given length is kept
        **{k: v for k, v in settings.items() if k in trainer_keys},
    }
    network = {k: v for k, v in settings.items() if k in NETWORK_SETTINGS}
    return method, trainer, network


def takes_steps(dataset) -> bool:
    """Whether deep methods apply the run's preprocessing steps: to feature vectors only (a tabular
    data set); images go to the network as they are and texts as sentence embeddings."""
    return dataset.modality not in ("image", "text")


def input_preprocess(dataset, preprocess: tuple[str, ...] = ()) -> str:
    """What deep methods do to the rows before the network: the steps for feature vectors, the
    sentence embedding for texts, nothing for images."""
    from transferkit.features import FEATURES_NAME

    if dataset.modality == "text":
        return FEATURES_NAME
    return " ".join(preprocess) if takes_steps(dataset) else ""


# an MLP trains badly on raw columns of large or very unequal spread: the run says so
LARGE_SPREAD, SPREAD_RATIO = 100.0, 1e3


def _warn_unscaled(X: np.ndarray, columns) -> None:
    """Warn when a column spreads over more than LARGE_SPREAD, or over SPREAD_RATIO times the median
    column's spread (a median, so that a few nearly constant columns, such as the border pixels of
    flattened images, do not count)."""
    import warnings

    sd = X.std(0, dtype=np.float64)
    live = np.flatnonzero(sd > 0)
    if len(live) < 2:
        return
    hi = live[np.argmax(sd[live])]
    typical = float(np.median(sd[live]))
    if sd[hi] <= LARGE_SPREAD and sd[hi] <= SPREAD_RATIO * typical:
        return
    name = f"'{columns[hi]}'" if columns is not None and len(columns) == X.shape[1] else f"{hi}"
    warnings.warn(
        f"the feature columns go to the network unscaled: column {name} spreads {sd[hi]:.3g} (standard "
        f"deviation), the median column {typical:.3g}, and a network trains badly on such inputs. Pass "
        "--preprocess standardize (or preprocess=('standardize',) in Python) to scale them.",
        UserWarning,
        stacklevel=3,
    )


def inputs(
    dataset, arrays, preprocess: tuple[str, ...] = (), fit_rows=None, seed: int = 0, labels=None,
    fitted: list | None = None, impute_columns=None,
):  # fmt: skip
    """The network's input rows: images as float32, texts as cached MiniLM embeddings, and feature
    vectors through the preprocessing steps ``preprocess`` (``"name:key=value"`` strings, as for the
    shallow methods), fitted on the rows ``fit_rows`` (a boolean mask or indices; default all rows)
    and applied to every row, each with its own domain. Steps that read labels see ``labels``
    (default ``arrays.y``, whose target labels are hidden; a semi-supervised run passes the few it
    revealed, as the shallow composer does). A list passed as ``fitted`` receives the fitted steps.
    ``impute_columns``: the columns an impute step marks with a 0/1 column (a fine-tuned network's, as
    saved with it), instead of those with a hole in the rows it is fitted on."""
    if dataset.modality == "text":
        from transferkit.features import cache_dir, embed_by_domain

        return embed_by_domain(arrays.X, arrays.sample_domain, cache_dir=cache_dir() / "embeddings")
    X = np.asarray(arrays.X, dtype=np.float32)  # NaN only before an impute step; to_arrays names it otherwise
    if not takes_steps(dataset) or X.ndim != 2:
        return X
    if not preprocess:
        extras = dataset.extras if isinstance(getattr(dataset, "extras", None), dict) else {}
        _warn_unscaled(X, extras.get("feature_names"))
        return X
    from transferkit.experiment import build_steps

    rows = np.arange(len(X)) if fit_rows is None else np.asarray(fit_rows)
    sd = np.asarray(arrays.sample_domain)
    y = np.asarray(arrays.y if labels is None else labels)
    Z = X.astype(np.float64)
    for step in build_steps(preprocess, seed)[0]:
        step.fit(Z[rows], y[rows], sd[rows])
        if impute_columns is not None and getattr(step, "indicator", False) and hasattr(step, "fill_"):
            step.indicator_columns_ = np.asarray(impute_columns, dtype=np.int64)
        Z = np.asarray(step.transform(Z, sd), dtype=np.float64)
        if fitted is not None:
            fitted.append(step)
    return Z.astype(np.float32)


def fit_deep(
    spec,
    dataset,
    X,
    y,
    sample_domain,
    method_settings,
    trainer_settings,
    network_settings,
    eval_sets=None,
    callbacks=(),
):
    """Build the network (or load ``init``) and train it with the method's loss on these rows.

    Returns ``(trainer, history, network_spec)``; ``X`` is what :func:`inputs` gives. ``eval_sets``
    (name -> (X, y)) are scored after every epoch into the history and never reach the loss: a
    benchmark's per-epoch target accuracy, for its oracle row. ``callbacks`` go to
    :meth:`~transferkit.nn.trainer.Trainer.fit` (called as ``cb(trainer, epoch_record)``).
    """
    from transferkit import registry
    from transferkit.nn.model import build_network
    from transferkit.nn.saved_model import load_network, read_spec
    from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything

    seed_everything(spec.seed)
    n_classes = len(dataset.classes)
    init = network_settings.get("init")
    if init:
        saved = read_spec(init)
        if tuple(saved["in_shape"]) != tuple(X.shape[1:]):
            raise TransferkitError(
                f"the saved model in {init} takes inputs of shape {tuple(saved['in_shape'])}, but these rows "
                f"are {tuple(X.shape[1:])}; fine-tune it on data of the same shape"
                + (
                    f" and with the preprocessing it was trained after (--preprocess {' '.join(steps)})."
                    if (steps := [r.get("step", "?") for r in saved.get("preprocess") or []])
                    else "."
                )
            )
        head_hidden = network_settings.get("head_hidden", saved.get("head_hidden"))
        # another kind of head than the saved one is a new head
        new_head = bool(network_settings.get("new_head")) or head_hidden != saved.get("head_hidden")
        saved_classes = [str(c) for c in saved.get("classes") or []]
        if not new_head and saved_classes and saved_classes != [str(c) for c in dataset.classes]:
            raise TransferkitError(
                f"the saved model in {init} predicts the classes {saved_classes} (in that order), but these "
                f"data have {[str(c) for c in dataset.classes]}: its head would name the wrong classes. Pass "
                "new_head=true to train a new head on the saved trunk."
            )
        given = {k: network_settings[k] for k in ("backbone", "bottleneck_dim", "pretrained", "hidden")
                 if network_settings.get(k) not in (None, False, "auto")}  # fmt: skip
        if given:
            raise TransferkitError(
                f"the network comes from init={init} (its backbone, bottleneck and widths as saved); "
                f"{', '.join(f'{k}={v}' for k, v in given.items())} would not change it. Leave "
                f"{', '.join(given)} out, or train a new network without init."
            )
        saved_norm = bool(saved.get("input_norm", False))
        if "input_norm" in network_settings and bool(network_settings["input_norm"]) != saved_norm:
            raise TransferkitError(
                f"the saved model in {init} was trained with input_norm={str(saved_norm).lower()}; its trunk "
                "expects inputs normalized that way. Leave input_norm out to keep it."
            )
        model = load_network(init, n_classes, new_head, head_hidden=head_hidden)
        net_spec = {**saved, "head_hidden": head_hidden, "num_classes": n_classes,
                    "classes": list(map(str, dataset.classes))}  # fmt: skip
    else:
        backbone = network_settings.get("backbone", "auto")
        if backbone == "auto":
            backbone = "lenet" if X.ndim == 4 and X.shape[-1] == 32 else "mlp"
        if backbone == "lenet" and (X.ndim != 4 or X.shape[-2:] != (32, 32)):
            raise TransferkitError(
                f"the lenet backbone takes (C, 32, 32) images; these rows are {X.shape[1:]}."
            )
        if backbone != "mlp" and network_settings.get("hidden") is not None:
            raise TransferkitError(
                f"hidden sets the width of the mlp backbone; the {backbone} backbone has its own layers. "
                "Leave hidden out (head_hidden gives any backbone an MLP head)."
            )
        options = {"hidden": (int(network_settings.get("hidden", 256)),)} if backbone == "mlp" else {}
        if network_settings.get("pretrained"):
            options["pretrained"] = True
        model = build_network(backbone, n_classes, in_shape=X.shape[1:],
                              bottleneck_dim=network_settings.get("bottleneck_dim"),
                              head_hidden=network_settings.get("head_hidden"),
                              input_norm=bool(network_settings.get("input_norm")), **options)  # fmt: skip
        net_spec = {"backbone": backbone, "num_classes": n_classes, "in_shape": list(X.shape[1:]),
                    "bottleneck_dim": network_settings.get("bottleneck_dim"),
                    "input_norm": bool(network_settings.get("input_norm")),
                    "head_hidden": network_settings.get("head_hidden"),
                    "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
                                if k != "pretrained"},
                    "classes": list(map(str, dataset.classes))}  # fmt: skip
    rank = int(network_settings.get("lora_rank", 0) or 0)
    if rank:
        from transferkit.nn.lora import apply_lora

        if net_spec.get("lora"):
            raise TransferkitError(
                f"the saved model in {init} already has LoRA adapters; leave lora_rank out."
            )
        apply_lora(model, rank)
        net_spec["lora"] = {"rank": rank}
    method = registry.build("method", spec.method, method_settings)
    n_source = int((np.asarray(sample_domain) >= 0).sum())
    if "batch_size" not in spec.params and 2 <= n_source < trainer_settings.get("batch_size", 0):
        import warnings

        warnings.warn(
            f"the default batch_size {trainer_settings['batch_size']} is more than the {n_source} source "
            f"rows; using batches of {n_source} (set batch_size to choose).",
            UserWarning,
            stacklevel=2,
        )
        trainer_settings = {**trainer_settings, "batch_size": n_source}
    config = TrainerConfig(**{**trainer_settings, "seed": spec.seed})
    trainer = Trainer(model, method, config)
    # with a progress bar, the bar and the history show the accuracy on 500 labelled source rows
    # (not in quiet runs: fine-tuning on a few rows has many tiny epochs, each would pay for it)
    sd = np.asarray(sample_domain)
    src = np.flatnonzero(sd >= 0)[:500]
    evals = {"source": (X[src], np.asarray(y)[src])} if config.progress else {}
    evals = {**evals, **(eval_sets or {})} or None
    history = trainer.fit(X, y, sd, eval_sets=evals, callbacks=callbacks)
    return trainer, history, net_spec


def init_columns(dataset, arrays, init):
    """A table's rows for a network fine-tuned from ``init`` (a saved model, or None): its columns in
    the saved order (matched by name, see :func:`transferkit.predict.match_columns`), the column names,
    and the columns its impute step marked with a 0/1 column then (None without one). Unchanged
    without ``init`` or for images and texts."""
    names = dataset.extras.get("feature_names") if isinstance(dataset.extras, dict) else None
    if not (init and takes_steps(dataset) and names is not None):
        return arrays, names, None
    from transferkit.nn.saved_model import read_spec
    from transferkit.predict import match_columns

    saved = read_spec(init)
    trained = saved.get("feature_names")
    if trained:
        arrays = dataclasses.replace(arrays, X=match_columns({"feature_names": trained}, dataset, arrays.X))
        names = trained
    # the network's inputs: an impute step adds the 0/1 columns it added then, whichever columns have a
    # hole in these rows (the first rows may be complete where the pretraining ones were not)
    first = (saved.get("preprocess") or [{}])[0].get("state") or {}
    impute_columns = first["impute"]["indicator_columns"] if "impute" in first else None
    return arrays, names, impute_columns


def fit_predict_deep(
    spec, dataset, y, arrays, method_settings, trainer_settings, network_settings, preprocess=()
):
    """Train on all rows (:func:`fit_deep`) and predict every target domain (feature vectors through
    ``preprocess`` first, see :func:`inputs`).

    Returns the predictions per target name, the training history, and what a run keeps for its
    artifacts: ``{"network": (network, network_spec), "model": a view with features(X, sd),
    "X": the inputs flattened}`` (the saved model, and the 2-D view before and after adaptation).
    """
    arrays, names, impute_columns = init_columns(dataset, arrays, network_settings.get("init"))
    from transferkit import registry

    steps = []
    fit_rows = None  # every row: the unlabelled target too (unsupervised adaptation sees it)
    if not getattr(registry.entry("method", spec.method).load(), "uses_target", True):
        # domain generalization never sees the target, not even through the scaling or PCA it gets
        fit_rows = np.flatnonzero((np.asarray(arrays.sample_domain) >= 0) | (np.asarray(y) >= 0))
    # y: revealed target labels
    X = inputs(dataset, arrays, preprocess, fit_rows=fit_rows, seed=spec.seed, labels=y, fitted=steps,
               impute_columns=impute_columns)  # fmt: skip
    trainer, history, net_spec = fit_deep(spec, dataset, X, y, arrays.sample_domain, method_settings,
                                          trainer_settings, network_settings)  # fmt: skip
    # what `transferkit predict` needs to prepare new rows as these were
    net_spec = {**net_spec, "modality": dataset.modality}
    reading = dataset.extras.get("reading") if isinstance(dataset.extras, dict) else None
    if reading:  # how its table was read (named columns, categorical codes): predict reads new rows so
        net_spec["reading"] = reading
    if takes_steps(dataset) and X.ndim == 2:
        from transferkit.preprocessing import export_steps

        net_spec["feature_names"] = list(map(str, names)) if names is not None else None
        net_spec["preprocess"] = export_steps(steps, list(preprocess), arrays.domain_names)
    preds = {}
    for d, name in arrays.domain_names.items():
        if d < 0:
            preds[name] = trainer.predict(X[arrays.sample_domain == d])
    kept = {
        "network": (trainer.model, net_spec),
        "model": NetworkFeatures(trainer, X.shape[1:]),
        "X": X.reshape(len(X), -1),
        "best_epoch": trainer.best_epoch,
        "batch_size": trainer.config.batch_size,
    }  # the one used (a small source shrinks the default)
    return preds, history, kept


class NetworkFeatures:
    """The trained network's features of flattened input rows (for the run's 2-D view)."""

    def __init__(self, trainer, shape):
        self.trainer, self.shape = trainer, tuple(shape)

    def features(self, X, sample_domain=None):
        return self.trainer.features(np.asarray(X, np.float32).reshape(-1, *self.shape))
