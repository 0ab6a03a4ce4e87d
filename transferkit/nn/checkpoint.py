"""Checkpoints that survive a kill and never unpickle: safetensors for tensors, JSON for the rest.

A checkpoint folder holds a weights file (the model, the method's modules, the optimizer's tensors
and the RNG states, all as named tensors; ``weights-e<epoch>-s<step>.safetensors``) and ``state.json``
(epoch, step, history, config, the optimizer's non-tensor structure, and the name of its weights
file). Each file is written atomically (temporary file + rename): the new weights under a new name
first, then the state that names them, and only then are older weights files deleted. So a process
killed at any moment leaves a ``state.json`` that names weights of its own epoch, and a resumed run
ends exactly as an uninterrupted one (with one file for both, a kill between the two writes left
epoch k's weights beside epoch k-1's state). Loading reads tensors with ``safetensors`` and numbers
with ``json``: no pickle, no arbitrary code; a damaged or incomplete checkpoint is a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from transferkit.errors import TransferkitError
from transferkit.io import atomic_write_bytes, atomic_write_json

__all__ = ["load_checkpoint", "save_checkpoint", "weights_file"]

WEIGHTS, STATE = "weights.safetensors", "state.json"  # WEIGHTS: the one weights file of older checkpoints
_OURS = ("weights-e*-s*.safetensors", WEIGHTS, "best-e*.safetensors", "best.safetensors")


def weights_file(folder) -> Path:
    """The weights file the checkpoint's ``state.json`` names (``weights.safetensors`` in older ones)."""
    folder = Path(folder)
    try:
        name = json.loads((folder / STATE).read_text()).get("weights_file", WEIGHTS)
    except (OSError, ValueError, AttributeError):
        name = WEIGHTS
    return folder / _plain_name(name, folder)


def _plain_name(name, folder) -> str:
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
        raise TransferkitError(f"the checkpoint in {folder} is damaged (it names the file {name!r}).")
    return name


def remove_unnamed(folder, keep: set[str]) -> None:
    """Delete this module's weights files that the current ``state.json`` does not name."""
    folder = Path(folder)
    for pattern in _OURS:
        for f in folder.glob(pattern):
            if f.name not in keep:
                f.unlink(missing_ok=True)


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        entry = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
                entry[k] = {"tensor": f"optim.{pid}.{k}"}
            else:
                entry[k] = {"value": v}
        meta["state"][str(pid)] = entry
    return tensors, meta


def _unflatten_optimizer(meta: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: tensors[v["tensor"]] if "tensor" in v else v["value"] for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder, *, model, method, optimizer, scheduler, state: dict[str, Any]) -> Path:
    """Write the checkpoint atomically; ``state`` must be JSON-serializable."""
    from safetensors.torch import save

    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"method.{k}": v.detach().cpu().contiguous() for k, v in method.state_dict().items()})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from its own
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    name = f"weights-e{int(state['epoch'])}-s{int(state['step'])}.safetensors"
    atomic_write_bytes(folder / name, save(tensors))  # under a new name: the last state still holds
    full = {**state, "weights_file": name, "optimizer": opt_meta,
            "scheduler": scheduler.state_dict() if scheduler else None}  # fmt: skip
    path = atomic_write_json(folder / STATE, full)
    remove_unnamed(folder, {name, *([state["best_file"]] if state.get("best_file") else [])})
    return path


def load_checkpoint(folder, *, model, method, optimizer, scheduler) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote; returns the saved ``state``."""
    from safetensors.torch import load

    folder = Path(folder)
    damaged = f"the checkpoint in {folder} is damaged"
    if not (folder / STATE).exists():
        raise TransferkitError(f"no complete checkpoint in {folder} (need {STATE} and its weights file).")
    try:
        state = json.loads((folder / STATE).read_text())
    except (OSError, ValueError) as exc:  # a truncated or foreign file
        raise TransferkitError(f"{damaged} ({exc}); delete it or start afresh.") from exc
    ok = (
        isinstance(state, dict)
        and all(isinstance(state.get(k), int) and state[k] >= 0 for k in ("epoch", "step"))
        and isinstance(state.get("history"), list)
        and isinstance(state.get("optimizer"), dict)
    )
    if not ok:
        raise TransferkitError(f"{damaged} ({STATE} lacks a valid epoch, step, history or optimizer).")
    weights = folder / _plain_name(state.get("weights_file", WEIGHTS), folder)
    if not weights.exists():
        raise TransferkitError(f"{damaged}: its weights file {weights.name} is missing.")
    try:
        tensors = load(weights.read_bytes())
    except Exception as exc:  # a truncated or foreign file
        raise TransferkitError(f"{damaged} ({exc}); delete it or start afresh.") from exc
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8:
        raise TransferkitError(f"{damaged}: {weights.name} holds no random-number state.")
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        method.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("method.")})
        optimizer.load_state_dict(_unflatten_optimizer(state["optimizer"], tensors))
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise TransferkitError(
            f"the checkpoint in {folder} does not fit this model/method/optimizer ({exc}); was it written "
            "by a different configuration?"
        ) from exc
    if scheduler is not None and state.get("scheduler") is not None:
        try:
            scheduler.load_state_dict(state["scheduler"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransferkitError(f"{damaged} (its scheduler state: {exc!r}).") from exc
    torch.set_rng_state(rng)
    cuda_rng = tensors.get("rng.cuda")
    if cuda_rng is not None and cuda_rng.dtype == torch.uint8 and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    return state
