"""A fitted shallow model on disk: ``classifier.skops`` (the fitted composer) and ``classifier.json``.

``transferkit run --out DIR`` writes one under ``DIR/model`` for every shallow run (the deep ones save
their network there, :mod:`transferkit.nn.saved_model`), and ``transferkit predict DIR`` classifies new
rows with it. The composer (:class:`~transferkit.shallow.base.DAClassifier`: the run's fitted
preprocessing steps, the adaptation method and the final classifier) is written with skops, which
stores objects without pickle and loads only the types it is told to trust: the classes of
transferkit, scikit-learn, SciPy, NumPy and POT (of their functions only ``TRUSTED_FUNCTIONS``: an
object may call a function it holds). A file holding any other type is refused. The JSON file says
what the composer needs to classify new rows as the training rows were: the classes by name, the
columns of a table, how the table was read, the domains by name with the code each had, the modality,
and the checksum of the ``.skops`` file it goes with (both are written atomically, the JSON last, so a
save killed between the two is found at load instead of pairing them).

>>> import tempfile, numpy as np
>>> from transferkit.shallow.base import DAClassifier
>>> from transferkit.shallow.coral import CORAL
>>> from sklearn.linear_model import LogisticRegression
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int); sd = np.repeat([0, -1], 30)
>>> clf = DAClassifier(CORAL(), LogisticRegression()).fit(X, np.where(sd < 0, -1, y), sd)
>>> spec = {"classes": ["neg", "pos"], "domains": {"s": 0, "t": -1}}
>>> folder = save_classifier(clf, tempfile.mkdtemp(), spec)
>>> again = load_classifier(folder)
>>> bool((again.predict(X[30:], sd[30:]) == clf.predict(X[30:], sd[30:])).all())
True
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from transferkit.errors import TransferkitError

__all__ = [
    "MODEL",
    "SPEC",
    "is_saved_classifier",
    "load_classifier",
    "read_classifier_spec",
    "save_classifier",
]

MODEL, SPEC = "classifier.skops", "classifier.json"
# the packages whose types a saved composer may hold (skops refuses any other)
TRUSTED_PACKAGES = ("transferkit", "sklearn", "scipy", "numpy", "ot")
# of their functions, only these: a loaded object may call any function it holds with arguments of the
# file's choosing (scikit-learn's FunctionTransformer does), and numpy.testing's runstring runs its text
TRUSTED_FUNCTIONS = ("ot.da.distribution_estimation_uniform",)


def _trusted(name: str) -> bool:
    """Whether a type a skops file names may be loaded: a class of ``TRUSTED_PACKAGES``, or one of
    ``TRUSTED_FUNCTIONS``."""
    module, _, attr = name.rpartition(".")
    if name in TRUSTED_FUNCTIONS:
        return True
    if module.split(".")[0] not in TRUSTED_PACKAGES or "__main__" in module.split("."):
        return False  # importing a package's __main__ runs it
    import importlib

    try:
        return isinstance(getattr(importlib.import_module(module), attr), type)
    except Exception:  # no such module or name
        return False


def save_classifier(clf, folder, spec: dict[str, Any]) -> Path:
    """Write the fitted composer ``clf`` and its ``spec`` (``classes``, ``domains`` name -> code, and
    optionally ``feature_names``, ``reading``, ``modality``, ``method``, ``estimator``, ``preprocess``)
    into ``folder``; return the folder."""
    import skops.io as sio

    from transferkit.io import atomic_write_bytes, atomic_write_json

    missing = {"classes", "domains"} - set(spec)
    if missing:
        raise TransferkitError(f"a saved classifier needs {sorted(missing)} in its spec.")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise TransferkitError(f"{folder} is a file; save the model into a folder (a new or existing one).")
    data = sio.dumps(clf)
    atomic_write_bytes(folder / MODEL, data)
    atomic_write_json(
        folder / SPEC, {**spec, "model_sha256": hashlib.sha256(data).hexdigest()}, standard=True
    )
    return folder


def is_saved_classifier(folder) -> bool:
    """Whether ``folder`` (or ``folder/model``, a run's ``--out`` folder) holds a saved shallow model."""
    folder = Path(folder).expanduser()
    return (folder / SPEC).exists() or (folder / "model" / SPEC).exists()


def _folder(folder) -> Path:
    folder = Path(folder).expanduser()
    return folder / "model" if not (folder / SPEC).exists() and (folder / "model" / SPEC).exists() else folder


def read_classifier_spec(folder) -> dict[str, Any]:
    """The JSON description of a saved shallow model, checked; a damaged one is a clear error."""
    folder = _folder(folder)
    if not (folder / SPEC).exists() or not (folder / MODEL).exists():
        raise TransferkitError(
            f"no saved classifier in {folder}: it needs {SPEC} and {MODEL} (written by `transferkit run ... "
            "--out DIR` for a shallow method, under DIR/model)."
        )
    from transferkit.io import read_model_json

    spec = read_model_json(folder / SPEC)
    from transferkit.nn.saved_model import _is_reading

    names = spec.get("feature_names") if isinstance(spec, dict) else None
    problem = (
        "it is not a JSON object"
        if not isinstance(spec, dict)
        else "classes is not a list of class names"
        if not (isinstance(spec.get("classes"), list) and spec["classes"])
        else "domains does not map domain names to codes"
        if not (
            isinstance(spec.get("domains"), dict)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in spec["domains"].values())
        )
        else "feature_names is not a list of column names"
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names))
        else "reading does not say how a table was read"
        if not _is_reading(spec.get("reading", {}))
        else ""
    )
    if problem:
        raise TransferkitError(f"{folder / SPEC} is damaged: {problem}; save the model again.")
    return spec


def load_classifier(folder):
    """The fitted composer saved in ``folder``, loaded by skops with only the trusted packages' types."""
    import skops.io as sio

    folder = _folder(folder)
    spec = read_classifier_spec(folder)
    data = (folder / MODEL).read_bytes()
    if spec.get("model_sha256") != hashlib.sha256(data).hexdigest():
        raise TransferkitError(
            f"{folder / MODEL} is not the file {SPEC} was saved with (a save interrupted between the two "
            "files, or one of them replaced); save the model again."
        )
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops' own errors on a damaged archive have no common base
        raise TransferkitError(
            f"{folder / MODEL} is damaged ({type(exc).__name__}); save the model again."
        ) from None
    refused = [t for t in untrusted if not _trusted(t)]
    if refused:
        raise TransferkitError(
            f"{folder / MODEL} holds objects of types transferkit does not load ({', '.join(refused[:3])}); "
            f"only classes of {', '.join(TRUSTED_PACKAGES)} are loaded (no functions but "
            f"{', '.join(TRUSTED_FUNCTIONS)}). Load a model you saved yourself."
        )
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise TransferkitError(
            f"{folder / MODEL} could not be loaded ({type(exc).__name__}: {exc}); save the model again with "
            "this version of transferkit and scikit-learn."
        ) from None
