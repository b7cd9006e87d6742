"""Study-table columns the tests' rows share."""

from __future__ import annotations

from cvae.core.labels import DATASETS


def learned_columns(gain_low: float = 0.05, class_accuracy: float = 0.5) -> dict:
    """The columns the learning gate reads from a study row, the same in every modality (pooled ones too)."""
    return {"recon_ssim_gain_low": gain_low, "conditional_class_accuracy": class_accuracy,
            **{f"recon_ssim_gain_low_{flag}": gain_low for flag in DATASETS},
            **{f"conditional_class_accuracy_{flag}": class_accuracy for flag in DATASETS}}
