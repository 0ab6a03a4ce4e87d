"""The one explicit table of everything a run can name: methods, preprocessing steps, estimators.

This table feeds ``transferkit methods``, ``transferkit run``, ``transferkit bench``, the docs and
the contract tests: a method added as one file plus one line here is listed, runnable, benchmarked
and tested. Imports are lazy, so listing names never imports torch.

Settings are given as ``key=value`` strings (``--set reg=0.5``) and parsed with the constructor's
type hints; an unknown key is an error that names the closest valid keys.

>>> from transferkit.registry import build, list_methods
>>> "coral" in list_methods()
True
>>> build("method", "coral", {"reg": "0.5"})
CORAL(reg=0.5)
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from transferkit.errors import TransferkitError, did_you_mean, unknown_name

__all__ = [
    "ESTIMATORS",
    "METHODS",
    "PREPROCESSING",
    "Entry",
    "build",
    "entry",
    "list_methods",
    "parse_spec",
    "parse_value",
]

# name -> "module:Class". Sorted; one line per method.
METHODS: dict[str, str] = {
    "adamatch": "transferkit.deep.adamatch:AdaMatch",
    "cdan": "transferkit.deep.cdan:CDAN",
    "cdan-e": "transferkit.deep.cdan:CDANE",
    "coral": "transferkit.shallow.coral:CORAL",
    "dan": "transferkit.deep.dan:DAN",
    "dann": "transferkit.deep.dann:DANN",
    "deep-coral": "transferkit.deep.deep_coral:DeepCORAL",
    "deep-source-only": "transferkit.deep.source_only:SourceOnly",
    "density-ratio": "transferkit.shallow.density_ratio:DensityRatio",
    "dg-coral": "transferkit.dg.coral:DGCORAL",
    "dg-mmd": "transferkit.dg.mmd:DGMMD",
    "erm": "transferkit.dg.erm:ERM",
    "fine-tune": "transferkit.deep.fine_tune:FineTune",
    "fine-tuned-linear": "transferkit.shallow.fine_tuned_linear:FineTunedLinear",
    "fixmatch": "transferkit.deep.fixmatch:FixMatch",
    "gfk": "transferkit.shallow.gfk:GFK",
    "groupdro": "transferkit.dg.groupdro:GroupDRO",
    "irm": "transferkit.dg.irm:IRM",
    "jda": "transferkit.shallow.jda:JDA",
    "kliep": "transferkit.shallow.kliep:KLIEP",
    "kmm": "transferkit.shallow.kmm:KMM",
    "knn": "transferkit.shallow.knn:KNN",
    "label-shift": "transferkit.shallow.label_shift:LabelShift",
    "mcc": "transferkit.deep.mcc:MCC",
    "meda": "transferkit.shallow.meda:MEDA",
    "mixup": "transferkit.dg.mixup:Mixup",
    "nearest-neighbor-weighting": "transferkit.shallow.nearest_neighbor_weighting:NearestNeighborWeighting",
    "ot-mapping": "transferkit.shallow.ot_mapping:OTMapping",
    "pseudo-label": "transferkit.deep.pseudo_label:PseudoLabel",
    "randconv": "transferkit.dg.randconv:RandConv",
    "regularized-transfer": "transferkit.shallow.regularized_transfer:RegularizedTransferLR",
    "self-training": "transferkit.shallow.self_training:SelfTraining",
    "shared-lda": "transferkit.shallow.shared_lda:SharedLDA",
    "source-only": "transferkit.shallow.source_only:SourceOnly",
    "subspace-alignment": "transferkit.shallow.subspace_alignment:SubspaceAlignment",
    "swa": "transferkit.dg.swa:SWA",
    "target-only": "transferkit.shallow.target_only:TargetOnly",
    "tca": "transferkit.shallow.tca:TCA",
    "tradaboost": "transferkit.shallow.tradaboost:TrAdaBoost",
    "vrex": "transferkit.dg.vrex:VREx",
}

PREPROCESSING: dict[str, str] = {
    "impute": "transferkit.preprocessing:Impute",
    "normalize": "transferkit.preprocessing:RowNormalize",
    "pca": "transferkit.preprocessing:SharedPCA",
    "select-k-best": "transferkit.preprocessing:SelectKBest",
    "sentence-embedding": "transferkit.preprocessing:SentenceEmbedding",
    "standardize": "transferkit.preprocessing:Standardize",
    "tfidf": "transferkit.preprocessing:Tfidf",
}

# The final classifier trained on the (adapted) labelled source rows.
ESTIMATORS: dict[str, str] = {
    "linear-svm": "sklearn.svm:LinearSVC",
    "linear-svm-cv": "transferkit.estimators:LinearSVMCV",
    "logreg": "sklearn.linear_model:LogisticRegression",
    "nearest-neighbor": "sklearn.neighbors:KNeighborsClassifier",
    "random-forest": "sklearn.ensemble:RandomForestClassifier",
    "ridge": "sklearn.linear_model:RidgeClassifier",
    "svm": "sklearn.svm:SVC",
}
# Defaults transferkit sets on top of scikit-learn's (documented in `transferkit methods`).
ESTIMATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "logreg": {"max_iter": 1000},
    "linear-svm": {"max_iter": 5000},
    "nearest-neighbor": {"n_neighbors": 1},  # 1-NN, the classifier of the published shallow DA tables
}
DEFAULT_ESTIMATOR = "linear-svm-cv"

_TABLES = {"method": METHODS, "preprocessing": PREPROCESSING, "estimator": ESTIMATORS}


@dataclass(frozen=True)
class Entry:
    """One registered name: its kind, where it lives, and what it says about itself."""

    kind: str
    name: str
    target: str

    def load(self) -> type:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def family(self) -> str:
        return getattr(self.load(), "family", self.kind)

    @property
    def role(self) -> str:
        return getattr(self.load(), "role", self.kind)

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.load()) or ""
        import re

        line = doc.strip().splitlines()[0] if doc.strip() else ""
        line = re.sub(r":\w+:`([^`]*)`", r"\1", line)  # plain text: drop reST roles (:math:`x` -> x)
        return re.sub(r"``([^`]*)``", r"\1", line)  # and literal quotes (``k`` -> k)

    @property
    def requires_target_labels(self) -> bool:
        return bool(getattr(self.load(), "requires_target_labels", False))

    @property
    def search_space(self) -> dict[str, tuple]:
        """The method's small grid for label-free selection (``search_space`` on the class), or {}."""
        return dict(getattr(self.load(), "search_space", {}) or {})

    def parameters(self) -> dict[str, tuple[Any, Any]]:
        """``{name: (type hint or None, default)}`` of the constructor (plus trainer settings for deep)."""
        cls = self.load()
        if getattr(cls, "role", None) == "deep":
            from transferkit.deep.runner import deep_parameters

            return {**self._own_parameters(cls), **deep_parameters()}
        return self._own_parameters(cls)

    def _own_parameters(self, cls) -> dict[str, tuple[Any, Any]]:
        hints = _hints(cls)
        out = {}
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            default = None if p.default is inspect.Parameter.empty else p.default
            if self.kind == "estimator":
                default = ESTIMATOR_DEFAULTS.get(self.name, {}).get(name, default)
            out[name] = (hints.get(name), default)
        return out


def _hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # third-party classes without resolvable hints
        return {}


def entry(kind: str, name: str) -> Entry:
    """Look up a registered name; an unknown one is an error naming the closest valid names."""
    table = _TABLES[kind]
    if name not in table:
        raise unknown_name(kind, name, table)
    return Entry(kind, name, table[name])


def list_methods(pattern: str | None = None, kind: str = "method") -> list[str]:
    """Registered names of a kind, optionally filtered by a shell pattern (``'co*'``)."""
    names = sorted(_TABLES[kind])
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _parse_as(text: str, hint) -> Any:
    origin = typing.get_origin(hint)
    if hint is type(None):
        if text.lower() in {"none", "null"}:
            return None
        raise ValueError("expected none")
    if origin in (Union, types.UnionType):
        errors = []
        for member in typing.get_args(hint):
            try:
                return _parse_as(text, member)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(" or ".join(errors))
    if origin is Literal:
        choices = typing.get_args(hint)
        for c in choices:
            if str(c) == text:
                return c
        raise ValueError(f"one of {', '.join(map(str, choices))}")
    if hint is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("true or false")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("an integer") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("a number") from None
    if hint is str:
        return text
    if origin in (tuple, list) or hint in (tuple, list):
        args = typing.get_args(hint)
        item = args[0] if args else str
        return tuple(_parse_as(t.strip(), item) for t in text.split(",") if t.strip())
    return _parse_literal(text)


def _parse_literal(text: str) -> Any:
    """Best guess for parameters without a type hint: none, bool, int, float, then string."""
    low = text.lower()
    if low in {"none", "null"}:
        return None
    if low in {"true", "false"}:
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_value(text: str, hint=None, default=None) -> Any:
    """Parse one ``--set`` value by the parameter's type hint (or its default's type)."""
    if hint is None:
        if isinstance(default, bool):
            hint = bool
        elif isinstance(default, int):
            hint = int | float | str
        elif isinstance(default, float):
            hint = float
        else:
            return _parse_literal(text)
    return _parse_as(text, hint)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``'name:key=value,key=value'`` into the name and its settings (values unparsed)."""
    name, _, rest = spec.partition(":")
    return name.strip(), parse_settings([p for p in rest.split(",") if p.strip()])


def parse_settings(pairs) -> dict[str, str]:
    """Turn ``['a=1', 'b=x']`` into ``{'a': '1', 'b': 'x'}``; a pair without '=' is an error, and so
    is a key given twice (the last value would win without a word)."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TransferkitError(f"setting '{pair}' must look like key=value.")
        key = key.strip()
        if key in out:
            raise TransferkitError(
                f"setting '{key}' is given twice ({key}={out[key]} and {pair.strip()}); give it once."
            )
        out[key] = value.strip()
    return out


def resolve_params(e: Entry, settings: dict[str, Any]) -> dict[str, Any]:
    """Parse string settings by type hint; unknown keys get a did-you-mean error."""
    params = e.parameters()
    resolved = {}
    for key, value in settings.items():
        if key not in params:
            valid = ", ".join(params) or "none"
            raise TransferkitError(
                f"{e.kind} '{e.name}' has no parameter '{key}'.{did_you_mean(key, params)} Valid: {valid}."
            )
        hint, default = params[key]
        if isinstance(value, str):
            try:
                value = parse_value(value, hint, default)
            except ValueError as exc:
                raise TransferkitError(
                    f"{e.kind} '{e.name}': parameter '{key}' expects {exc}, got '{value}'."
                ) from None
        resolved[key] = value
    return resolved


def build(kind: str, name: str, settings: dict[str, Any] | None = None):
    """Create the registered ``kind`` called ``name`` with its settings (strings are parsed)."""
    e = entry(kind, name)
    params = dict(ESTIMATOR_DEFAULTS.get(name, {})) if kind == "estimator" else {}
    params.update(resolve_params(e, settings or {}))
    if e.role == "deep":  # trainer and network settings are the runner's, not the loss module's
        params = {k: v for k, v in params.items() if k in e._own_parameters(e.load())}
    try:
        obj = e.load()(**params)
        if hasattr(obj, "_parameter_constraints") and hasattr(obj, "_validate_params"):
            obj._validate_params()  # a scikit-learn estimator's own range checks, now and not at fit
        if hasattr(obj, "check_settings"):
            obj.check_settings()  # a transferkit object's checks that need no data, likewise
        return obj
    except TransferkitError:
        raise
    except (TypeError, ValueError) as exc:
        raise TransferkitError(f"{kind} '{name}' rejected its settings {params}: {exc}") from None
