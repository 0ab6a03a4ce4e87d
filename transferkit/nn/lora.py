r"""Parameter-efficient fine-tuning with LoRA adapters, through PEFT (an optional extra).

:func:`apply_lora` injects low-rank adapters :math:`W + \frac{\alpha}{r} B A` (Hu et al., ICLR 2022)
into the linear and convolution layers of the trunk with PEFT's ``inject_adapter_in_model``: the
network stays the same object (``features``, the head, the trainer, checkpoints all work
unchanged), the original weights are fixed, and only the adapters, the bottleneck and the head
train. The work is PEFT's; this module only chooses the layers and keeps the head trainable.
:func:`lora_settings` reads back what was injected (rank, alpha, dropout, layers), which
:func:`transferkit.nn.saved_model.save_network` records so that a saved model reloads exactly.

    pip install "transferkit[peft]"
    transferkit run ... --method fine-tune --set init=DIR/model --set lora_rank=8
"""

from __future__ import annotations

import fnmatch
import math

from torch import nn

from transferkit.errors import TransferkitError, check_whole

__all__ = ["apply_lora", "lora_settings", "lora_targets"]


def lora_targets(model: nn.Module, patterns=("backbone.*",)) -> list[str]:
    """Names of the ``Linear`` and ``Conv2d`` modules matching ``patterns`` (the trunk by default).

    Grouped (depthwise) convolutions are left out: a low-rank update of a per-channel filter is no
    saving, and PEFT refuses them (MobileNetV3 and EfficientNet adapt their pointwise layers).
    """
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d))
        and getattr(module, "groups", 1) == 1
        and any(fnmatch.fnmatchcase(name, p) for p in patterns)
    ]


def apply_lora(
    model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0, patterns=("backbone.*",),
    targets: list[str] | None = None,
) -> list[str]:  # fmt: skip
    """Add rank-``rank`` LoRA adapters to the trunk's layers in place; return the adapted layers' names.

    ``alpha`` defaults to ``rank`` (a scale of 1). ``targets`` names the layers exactly (what
    :func:`lora_settings` gives back); otherwise they are :func:`lora_targets` of ``patterns``. The
    adapted layers' own weights and every other backbone parameter are fixed; the adapters, the head
    and the bottleneck (a small layer that is freshly initialized unless the network was loaded
    from a saved model) train.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise TransferkitError(
            "LoRA fine-tuning uses the PEFT library, which is not installed: pip install 'transferkit[peft]' "
            "(or pip install peft)."
        ) from None
    check_whole("lora_rank", rank, 1)
    if alpha is not None and not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise TransferkitError(
            f"the LoRA alpha must be a finite number > 0 (or None: the rank), got {alpha!r}."
        )
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise TransferkitError(f"the LoRA dropout must be a number in [0, 1), got {dropout!r}.")
    if any("lora_" in n for n, _ in model.named_parameters()):
        raise TransferkitError("this network already has LoRA adapters; apply_lora adds them once.")
    if targets is not None:
        layers = dict(model.named_modules())
        unknown = [t for t in targets if not isinstance(layers.get(t), (nn.Linear, nn.Conv2d))]
        if unknown:
            raise TransferkitError(
                f"LoRA targets {unknown} are not Linear or Conv2d layers of this network; name the layers "
                "to adapt with patterns, or save the model again."
            )
        targets = list(targets)
    else:
        targets = lora_targets(model, patterns)
    if not targets:
        raise TransferkitError(
            f"no Linear or Conv2d layer matches {list(patterns)}; LoRA needs at least one layer to adapt."
        )
    config = LoraConfig(r=int(rank), lora_alpha=float(alpha or rank), lora_dropout=float(dropout),
                        target_modules=targets, bias="none")  # fmt: skip
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_(
            "lora_" in name
            or name.startswith("head.")
            or (name.startswith("bottleneck.") and ".base_layer." not in name)
        )
    return targets


def lora_settings(model: nn.Module) -> dict | None:
    """``{"rank", "alpha", "dropout", "targets"}`` of the LoRA adapters in ``model`` (None: it has none).

    What :func:`apply_lora` needs to rebuild the same adapters: the scale ``alpha / rank`` and the
    adapted layers are part of the network's function, so a saved model records them.
    """
    if not any("lora_" in n for n, _ in model.named_parameters()):
        return None
    config = (getattr(model, "peft_config", None) or {}).get("default")
    if config is None:
        raise TransferkitError(
            "this network has LoRA parameters but no PEFT configuration to describe them; add the "
            "adapters with transferkit.nn.lora.apply_lora."
        )
    # the adapted layers as they are in the network (PEFT shortens a long list of target names to
    # suffixes in its config, which are not layer names)
    targets = sorted(
        name for name, m in model.named_modules() if isinstance(getattr(m, "lora_A", None), nn.ModuleDict)
    )
    return {
        "rank": int(config.r),
        "alpha": float(config.lora_alpha),
        "dropout": float(config.lora_dropout),
        "targets": targets,
    }
