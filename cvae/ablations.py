"""Ablations: named sets of config overrides, trained as cached runs and compared in one table."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from .config import Config, ConfigError, config_diff, make_config, parse_overrides
from .loss import TERMS
from .runs import is_finished, load_run, run_dir_for
from .train import train

# name -> overrides of the profile's base configuration ("paper")
STANDARD: dict[str, dict] = {
    "paper": {},
    "latent64": {"latent_dim": 64},
    # "more convolutional layers, roughly 4.8 million parameters": 4,799,257 trainable parameters
    "deep": {"encoder_channels": (64, 128, 256), "extra_convs_per_stage": 1, "hidden_dim": 352},
    "no_l1": {"a_l1": 0.0},
    "no_perceptual": {"a_perc": 0.0},
    "no_aux": {"gamma": 0.0},
    "beta_0.01": {"beta_max": 0.01},
    "beta_0.3": {"beta_max": 0.3},
    "beta_1": {"beta_max": 1.0},
    "gamma_0.1": {"gamma": 0.1},
    "gamma_10": {"gamma": 10.0},
}

# What each profile's ablations train on: smaller than the main run where the budget needs it (the page says so).
PROFILE_SCALE: dict[str, dict] = {
    "smoke": {"train_per_class": 100, "eval_per_class": 100},
    "quick": {"train_per_class": 500, "eval_per_class": 100, "epochs": 15, "beta_warmup_epochs": 2,
              "beta_ramp_epochs": 10},
    "full": {},
}


def ablation_overrides_for_profile(profile: str) -> dict:
    """Overrides every ablation of a profile shares (its reduced size and schedule); {} where none."""
    return dict(PROFILE_SCALE.get(profile, {}))


def ablation_config(name: str | None, profile: str, extra: dict | Iterable[str] = ()) -> Config:
    """The config of a standard ablation (or of `paper` plus `extra` when name is None) under a profile."""
    if name is not None and name not in STANDARD:
        raise ConfigError(f"unknown ablation {name!r}; standard ones: {', '.join(STANDARD)}")
    overrides = ablation_overrides_for_profile(profile)
    overrides.update(STANDARD.get(name or "paper", {}))
    overrides.update(extra if isinstance(extra, dict) else parse_overrides(extra))
    return make_config(profile, overrides)


def run_ablation(name: str | None, profile: str = "quick", extra: dict | Iterable[str] = (),
                 data_dir: str | None = None, progress: bool = True) -> Path:
    """Train the ablation (or reuse its finished run); returns the run folder."""
    config = ablation_config(name, profile, extra)
    if data_dir:
        config = config.replace(data_dir=str(data_dir))
    return train(config, progress=progress)


def run_ablations(names: Iterable[str], profile: str, data_dir: str | None = None,
                  progress: bool = True) -> dict[str, Path]:
    """Train (or reuse) several standard ablations; {name: run folder}."""
    return {name: run_ablation(name, profile, data_dir=data_dir, progress=progress) for name in names}


def ablation_table(profile: str, names: Iterable[str] | None = None, extra: dict | Iterable[str] = ()) -> pd.DataFrame:
    """One row per finished ablation run of the profile: parameters, best epoch, final val loss per term, time.

    `extra` are overrides shared by every ablation (as given to `run_ablation`); missing runs are left out.
    """
    rows = []
    base = ablation_config("paper", profile, extra)
    for name in (list(names) if names is not None else list(STANDARD)):
        config = ablation_config(name, profile, extra)
        run_dir = run_dir_for(config)
        if not is_finished(run_dir):
            continue
        run = load_run(run_dir)
        last = run.metrics.iloc[-1]
        row = {"ablation": name, "changes": _describe(config_diff(base, config)),
               "parameters": run.summary["parameters"], "best_epoch": run.summary["best_epoch"],
               "best_val_total": run.summary["best_val_total"]}
        row.update({f"final_val_{term}": float(last[f"val_{term}"]) for term in (*TERMS, "total")})
        row.update({"val_class_acc": float(last["val_class_acc"]), "val_modality_acc": float(last["val_modality_acc"]),
                    "train_seconds": run.summary["train_seconds"], "run": run_dir.name})
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(diff: dict) -> str:
    return ", ".join(f"{key}={new}" for key, (_, new) in diff.items()) or "(base)"
