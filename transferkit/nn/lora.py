r"""Parameter-efficient fine-tuning with LoRA adapters, through PEFT (an optional extra).

:func:`apply_lora` injects low-rank adapters :math:`W + \frac{\alpha}{r} B A` (Hu et al., ICLR 2022)
into the linear and convolution layers of the trunk with PEFT's ``inject_adapter_in_model``: the
network stays the same object (``features``, the head, the trainer, checkpoints all work
unchanged), the original weights are fixed, and only the adapters and the head train. The work is
PEFT's; this module only chooses the layers and keeps the head trainable.

    pip install "transferkit[peft]"
    transferkit run ... --method fine-tune --set init=DIR/model --set lora_rank=8
"""

from __future__ import annotations

import fnmatch

from torch import nn

from transferkit.errors import TransferkitError

__all__ = ["apply_lora", "lora_targets"]


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
    model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0, patterns=("backbone.*",)
) -> list[str]:
    """Add rank-``rank`` LoRA adapters to the trunk's layers in place; return the adapted layers' names.

    ``alpha`` defaults to ``rank`` (a scale of 1). Every other parameter is fixed except the head's.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise TransferkitError(
            "LoRA fine-tuning uses the PEFT library, which is not installed: pip install 'transferkit[peft]' "
            "(or pip install peft)."
        ) from None
    if rank < 1:
        raise TransferkitError(f"lora_rank must be >= 1, got {rank}.")
    targets = lora_targets(model, patterns)
    if not targets:
        raise TransferkitError(
            f"no Linear or Conv2d layer matches {list(patterns)}; LoRA needs at least one layer to adapt."
        )
    config = LoraConfig(r=int(rank), lora_alpha=float(alpha or rank), lora_dropout=dropout,
                        target_modules=targets, bias="none")  # fmt: skip
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name or name.startswith("head."))
    return targets
