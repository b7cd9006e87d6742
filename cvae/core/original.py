"""Numbers quoted from the original report and published references, shown beside ours (never computed here)."""

from __future__ import annotations

from cvae.core.formatting import percent

# The original report's numbers, quoted beside ours (never computed here).
ORIGINAL = {
    "best_epoch": 79,
    "aux_class_accuracy": 0.34,
    "aux_modality_accuracy": 0.39,
    "parameters": 1_155_993,
    "deep_parameters": 4_800_000,
    "train_total": 352_939,
    "beta_warmup_epochs": 20,  # t_warmup of its KL schedule
    "beta_ramp_epochs": 100,  # t_schedule
}

# MedMNIST v2 (Yang et al. 2023), Table 3, ResNet-18 at 28 px, test ACC (quoted references, not computed here)
REFERENCE_RESNET18_28 = {"pathmnist": 0.907, "tissuemnist": 0.676, "octmnist": 0.743}


def report_original(what: str) -> str:
    """The original's quoted aux-head accuracy as text ('about 34%')."""
    return f"about {percent(ORIGINAL[f'aux_{what}_accuracy'], 0)}"


def report_original_heads() -> str:
    """The original's class and modality heads as quoted, in one phrase: 'about 34% and 39%'."""
    return f"{report_original('class')} and {percent(ORIGINAL['aux_modality_accuracy'], 0)}"


__all__ = [
    "ORIGINAL", "REFERENCE_RESNET18_28", "report_original", "report_original_heads",
]
