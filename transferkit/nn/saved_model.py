"""A trained network on disk: ``model.safetensors`` (weights) and ``network.json`` (how to rebuild it).

``transferkit run --out DIR`` writes one under ``DIR/model`` for every deep run; ``--set init=DIR/model``
starts another run from it (fine-tuning a source model). Both files are written atomically and read
without unpickling: safetensors for tensors, JSON for the architecture.

>>> import tempfile, torch
>>> from transferkit.nn.model import build_network
>>> net = build_network("mlp", 3, in_shape=(4,), hidden=(8,))
>>> folder = save_network(net, tempfile.mkdtemp(), {"backbone": "mlp", "num_classes": 3, "in_shape": [4],
...                                                   "options": {"hidden": [8]}})
>>> again = load_network(folder)
>>> bool(torch.equal(again.head.weight, net.head.weight))
True
>>> load_network(folder, num_classes=5).head.out_features  # a new head for a new label set
5
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from transferkit.errors import TransferkitError, check_whole, is_whole

__all__ = ["load_network", "save_network"]

WEIGHTS, SPEC = "model.safetensors", "network.json"


def save_network(network: torch.nn.Module, folder, spec: dict[str, Any]) -> Path:
    """Write ``network``'s weights and its ``spec`` (``backbone``, ``num_classes``, ``in_shape``,
    optional ``bottleneck_dim``, ``input_norm``, backbone ``options`` and ``classes``); return the folder.

    LoRA adapters are described from the network itself (``spec["lora"]``: rank, alpha, dropout and
    the adapted layers, :func:`transferkit.nn.lora.lora_settings`), so that it reloads exactly."""
    from safetensors.torch import save

    from transferkit.io import atomic_write_bytes, atomic_write_json

    missing = {"backbone", "num_classes", "in_shape"} - set(spec)
    if missing:
        raise TransferkitError(f"a saved network needs {sorted(missing)} in its spec.")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise TransferkitError(f"{folder} is a file; save the model into a folder (a new or existing one).")
    if any("lora_" in name for name in network.state_dict()):
        from transferkit.nn.lora import lora_settings

        spec = {**spec, "lora": lora_settings(network)}
    elif spec.get("lora"):
        raise TransferkitError(
            "the spec says the network has LoRA adapters, but it has none; leave 'lora' out of the spec."
        )
    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    data = save(tensors)
    # two atomic writes: the spec names its weights by checksum, so a save killed between them (new
    # weights beside the previous save's spec) is found at load instead of pairing the two
    spec = {**spec, "weights_sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_bytes(folder / WEIGHTS, data)
    atomic_write_json(folder / SPEC, spec)
    return folder


def model_folder(folder) -> Path:
    """The folder of a saved network: ``folder`` itself, or ``folder/model`` when ``folder`` is the
    ``--out`` folder of a run (what ``transferkit run ... --out DIR`` writes)."""
    folder = Path(folder).expanduser()
    if not (folder / SPEC).exists() and (folder / "model" / SPEC).exists():
        return folder / "model"
    return folder


def read_spec(folder) -> dict[str, Any]:
    folder = model_folder(folder)
    if not (folder / SPEC).exists() or not (folder / WEIGHTS).exists():
        raise TransferkitError(
            f"no saved model in {folder}: a network needs {SPEC} and {WEIGHTS} (`transferkit run ... --out "
            "DIR` writes them under DIR/model for a deep method; for a shallow one classifier.skops, which "
            "predict reads too; the target-only oracle saves no model)."
        )
    from transferkit.io import read_model_json

    spec = read_model_json(folder / SPEC)
    if not isinstance(spec, dict) or not {"backbone", "num_classes", "in_shape"} <= set(spec):
        raise TransferkitError(
            f"{folder / SPEC} does not describe a network (it needs backbone, num_classes and in_shape); "
            "save the model again."
        )
    k, shape, classes, names = (
        spec["num_classes"],
        spec["in_shape"],
        spec.get("classes"),
        spec.get("feature_names"),
    )
    problem = (
        "num_classes is not a whole number >= 1"
        if not (is_whole(k) and k >= 1)
        else "in_shape is not a list of whole numbers >= 1"
        if not (isinstance(shape, list) and shape and all(is_whole(d) and d >= 1 for d in shape))
        else f"classes does not name the {k} classes"
        if classes is not None and not (isinstance(classes, list) and len(classes) == k)
        else "feature_names is not a list of column names"
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names))
        else "reading does not say how a table was read"
        if not _is_reading(spec.get("reading", {}))
        else _structure_problem(spec)
    )
    if problem:
        raise TransferkitError(f"{folder / SPEC} is damaged: {problem}; save the model again.")
    return spec


def load_network(
    folder, num_classes: int | None = None, new_head: bool = False, head_hidden: int | None = None
) -> torch.nn.Module:
    """Rebuild the saved network and load its weights (strictly; no unpickling).

    With ``num_classes`` different from the saved one, or ``new_head``, the head is replaced by a
    freshly initialized head (structure transfer: same trunk, new label set); ``head_hidden`` makes
    that new head an MLP. Everything but the head was transferred, so L2-SP pulls all of it towards
    the saved weights (``new_parameters`` is the head alone).
    """
    from safetensors.torch import load

    from transferkit.nn.model import build_network

    if num_classes is not None:
        check_whole("num_classes", num_classes, 1)
    if head_hidden is not None and not (is_whole(head_hidden) and head_hidden >= 1):
        raise TransferkitError(f"head_hidden must be a whole number >= 1 (or None), got {head_hidden!r}.")
    folder = model_folder(folder)
    spec = read_spec(folder)
    try:
        net = build_network(
            spec["backbone"], int(spec["num_classes"]), in_shape=tuple(spec["in_shape"]),
            bottleneck_dim=spec.get("bottleneck_dim"), head_hidden=spec.get("head_hidden"),
            input_norm=bool(spec.get("input_norm", False)), **_options(spec.get("options") or {}),
        )  # fmt: skip
    except (TypeError, RuntimeError, AttributeError) as exc:  # TransferkitErrors pass through
        raise TransferkitError(
            f"{folder / SPEC} describes a network that cannot be built ({type(exc).__name__}: {exc}); "
            "save the model again."
        ) from None
    lora = spec.get("lora")
    if lora:  # adapters first, so that their weights have somewhere to go
        from transferkit.nn.lora import apply_lora

        # models saved before the adapters' settings were recorded: alpha = rank, the backbone's layers
        apply_lora(net, int(lora["rank"]), alpha=lora.get("alpha"), dropout=float(lora.get("dropout", 0.0)),
                   targets=lora.get("targets"))  # fmt: skip
    raw = (folder / WEIGHTS).read_bytes()
    expected = spec.get("weights_sha256")
    if expected is not None and hashlib.sha256(raw).hexdigest() != expected:  # saves before it have none
        raise TransferkitError(
            f"{folder / WEIGHTS} is not the weights {folder / SPEC} was saved with (a save interrupted "
            "between the two files, or one of them replaced); save the model again."
        )
    try:
        tensors = load(raw)
        net.load_state_dict(tensors)
    except Exception as exc:
        raise TransferkitError(f"the saved model in {folder} could not be loaded ({exc}).") from exc
    if new_head or (num_classes is not None and num_classes != net.num_classes):
        net.num_classes = int(num_classes if num_classes is not None else net.num_classes)
        net.head_hidden = head_hidden if new_head else net.head_hidden
        from transferkit.nn.model import make_head

        net.head = make_head(net.feature_dim, net.num_classes, net.head_hidden)
    net.new_parameters = ("head.*",)
    return net


def _is_reading(reading) -> bool:
    """Whether a saved ``reading`` is load_table's arguments: column names, or lists of them."""
    from transferkit.datasets.table import TABLE_READING

    def names(v) -> bool:
        return isinstance(v, str) or (isinstance(v, list) and all(isinstance(n, str) for n in v))

    return isinstance(reading, dict) and all(k in TABLE_READING and names(v) for k, v in reading.items())


def _structure_problem(spec: dict) -> str:
    """What is wrong with the optional architecture fields of a spec ("" when nothing is)."""

    def width(value) -> bool:
        return value is None or (is_whole(value) and value >= 1)

    lora = spec.get("lora")
    if not width(spec.get("bottleneck_dim")):
        return "bottleneck_dim is not a whole number >= 1"
    if not width(spec.get("head_hidden")):
        return "head_hidden is not a whole number >= 1"
    if spec.get("options") is not None and not isinstance(spec["options"], dict):
        return "options is not a mapping of backbone options"
    if lora and not (
        isinstance(lora, dict)
        and is_whole(lora.get("rank"))
        and lora["rank"] >= 1
        and (lora.get("alpha") is None or isinstance(lora["alpha"], (int, float)))
        and isinstance(lora.get("dropout", 0.0), (int, float))
        and (lora.get("targets") is None or (
            isinstance(lora["targets"], list) and all(isinstance(t, str) for t in lora["targets"])))
    ):  # fmt: skip
        return "lora does not give the adapters' rank (a whole number >= 1), alpha, dropout and targets"
    return ""


def _options(options: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
