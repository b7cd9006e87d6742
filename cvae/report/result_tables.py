"""Tables of the evaluation results (`cvae.evaluation.run_evaluation`), read defensively: a missing metric shows as n/a."""

from __future__ import annotations

import pandas as pd

from cvae.core.formatting import lookup, plain, significant
from cvae.core.labels import DATASET_NAMES
from cvae.core.original import report_original


def _unavailable(what: str) -> pd.DataFrame:
    return pd.DataFrame({"status": [f"{what}: not available (cvae.evaluation.run_evaluation missing or metric not computed)"]})


_MODALITY_KEYS = {**DATASET_NAMES, "overall": "overall"}


def _per_modality(result: dict | None, columns: dict[str, str], shown=significant) -> pd.DataFrame:
    """One row per modality and overall, one column per metric, each value as `shown` writes it (3 significant
    digits by default)."""
    frame = {}
    for key, title in columns.items():
        values = lookup(result, key)
        if isinstance(values, dict):
            frame[title] = {_MODALITY_KEYS.get(k, k): shown(plain(v)) for k, v in values.items()}
    return pd.DataFrame(frame) if frame else pd.DataFrame()


def _percent_number(value) -> str:
    return f"{100 * value:.1f}" if value is not None else "n/a"


def reconstruction_table(result: dict | None) -> pd.DataFrame:
    """MSE / PSNR / SSIM of test reconstructions per modality."""
    table = _per_modality(result, {"recon_mse": "MSE (per pixel)", "recon_psnr": "PSNR (dB)", "recon_ssim": "SSIM"})
    return table if len(table) else _unavailable("reconstruction metrics")


def distance_table(result: dict | None) -> pd.DataFrame:
    """Domain FID / KID of samples against real test images per modality, with the real-vs-real floor."""
    table = _per_modality(result, {"domain_fid": "domain FID", "domain_fid_floor": "FID floor (real vs real)",
                                   "domain_kid": "domain KID", "domain_kid_floor": "KID floor (real vs real)"})
    return table if len(table) else _unavailable("domain FID/KID")


def conditional_table(result: dict | None) -> pd.DataFrame:
    """One row per class: label, name, modality, class_accuracy, modality_accuracy of its samples, and
    real_class_accuracy, the evaluator's class accuracy on the class's real test images."""
    rows = lookup(result, "conditional_per_class")
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).assign(real_class_accuracy=lookup(result, "evaluator_test_accuracy_by_class"))


def per_class_table(conditional: pd.DataFrame) -> pd.DataFrame:
    """The conditional table for the page: class (label and name), modality, the samples' accuracies and the real
    test images' class accuracy in %, samples."""
    if not len(conditional):
        return _unavailable("conditional accuracy")
    return pd.DataFrame({
        "class": [f"{label}: {name}" for label, name in zip(conditional["label"], conditional["name"])],
        "modality": conditional["modality"],
        "class acc (%)": (100 * conditional["class_accuracy"]).round(1),
        "real images' class acc (%)": (100 * conditional["real_class_accuracy"]).round(1),
        "modality acc (%)": (100 * conditional["modality_accuracy"]).round(1),
        "samples": conditional["samples"],
    }).set_index("class")


def latent_table(result: dict | None, run=None) -> pd.DataFrame:
    """Class and modality accuracy read from mu, in %: aux heads, linear probe, chance and majority baselines, and
    the original's aux heads as quoted."""
    rows = []
    for what in ("class", "modality"):
        shown = {label: _percent_number(lookup(result, *keys)) for label, keys in (
            ("aux head, eval mode (%)", (f"aux_{what}_accuracy",)),
            ("linear probe on mu (%)", (f"probe_{what}_accuracy",)),
            ("chance (%)", ("baselines", f"{what}_chance")),
            ("majority class (%)", ("baselines", f"{what}_majority")))}
        rows.append({"target": what, **shown, "original report, aux head": report_original(what)})
    table = pd.DataFrame(rows).set_index("target")
    return table


def tstr_table(result: dict | None) -> pd.DataFrame:
    """Per modality: train-on-synthetic and train-on-real (same size) accuracy on the real test split."""
    table = _per_modality(result, {"tstr_accuracy_by_modality": "train on synthetic, TSTR (%)",
                                   "trtr_accuracy_by_modality": "train on real, same size, TRTR (%)"},
                          shown=_percent_number)
    if not len(table):
        return _unavailable("TSTR")
    table.loc["overall"] = [_percent_number(lookup(result, "tstr_accuracy")),
                            _percent_number(lookup(result, "trtr_accuracy"))]
    return table


__all__ = [
    "reconstruction_table", "distance_table", "conditional_table", "per_class_table", "latent_table", "tstr_table",
]
