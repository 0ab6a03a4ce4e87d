"""Checkpoints that survive a kill and never unpickle: safetensors for tensors, JSON for the rest.

A checkpoint folder holds ``weights.safetensors`` (the model, the method's modules, the optimizer's
tensors and the RNG states, all as named tensors) and ``state.json`` (epoch, step, history, config,
the optimizer's non-tensor structure). Both are written atomically (temporary file + rename), the
weights first and the state last, so ``state.json`` always names a complete set of weights. Loading
reads tensors with ``safetensors`` and numbers with ``json``: no pickle, no arbitrary code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from transferkit.errors import TransferkitError
from transferkit.io import atomic_write_bytes, atomic_write_json

__all__ = ["load_checkpoint", "save_checkpoint"]

WEIGHTS, STATE = "weights.safetensors", "state.json"


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
    atomic_write_bytes(folder / WEIGHTS, save(tensors))
    full = {**state, "optimizer": opt_meta, "scheduler": scheduler.state_dict() if scheduler else None}
    return atomic_write_json(folder / STATE, full)


def load_checkpoint(folder, *, model, method, optimizer, scheduler) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote; returns the saved ``state``."""
    from safetensors.torch import load

    folder = Path(folder)
    if not (folder / STATE).exists() or not (folder / WEIGHTS).exists():
        raise TransferkitError(f"no complete checkpoint in {folder} (need {WEIGHTS} and {STATE}).")
    try:
        state = json.loads((folder / STATE).read_text())
        tensors = load((folder / WEIGHTS).read_bytes())
    except Exception as exc:  # a truncated or foreign file
        raise TransferkitError(
            f"the checkpoint in {folder} is damaged ({exc}); delete it or start afresh."
        ) from exc
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        method.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("method.")})
        optimizer.load_state_dict(_unflatten_optimizer(state["optimizer"], tensors))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise TransferkitError(
            f"the checkpoint in {folder} does not fit this model/method/optimizer ({exc}); was it written "
            "by a different configuration?"
        ) from exc
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return state
