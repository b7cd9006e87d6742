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
    "gamma_10": {"gamma": 10.0},  # also the aux-head "fix" of the latent chapter's diagnosis
    "encoder_unconditioned": {"encoder_conditioned": False},  # the encoder sees only the image (diagnosis)
    "fp32": {"autocast": "none"},  # full precision: does the default bf16 autocast cost anything? (performance)
}

# The original's two claims, tested on the table: latent 128 "significantly" lowers the loss against 64, and the
# ~4.8M-parameter deeper model "looks very similar". A relative difference below this counts as "no difference".
CLAIM_MARGIN = 0.02

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


def ablation_table(profile: str, names: Iterable[str] | None = None, extra: dict | Iterable[str] = (),
                   evaluate: bool = False) -> pd.DataFrame:
    """One row per finished ablation run of the profile: parameters, best epoch, final val loss per term, time.

    `extra` are overrides shared by every ablation (as given to `run_ablation`); missing runs are left out.
    With `evaluate`, adds reconstruction PSNR/SSIM, domain FID, conditional, aux and probe accuracies
    (`cvae.evaluate.ablation_metrics`, cached in each run folder).
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
               "parameters": run.summary["parameters"], "epochs": run.summary["epochs"],
               "best_epoch": run.summary["best_epoch"],
               "best_val_total": run.summary["best_val_total"]}
        row.update({f"final_val_{term}": float(last[f"val_{term}"]) for term in (*TERMS, "total")})
        row.update({"val_class_acc": float(last["val_class_acc"]), "val_modality_acc": float(last["val_modality_acc"]),
                    "train_seconds": run.summary["train_seconds"], "run": run_dir.name})
        if evaluate:
            from .evaluate import ablation_metrics

            row.update({k: v for k, v in ablation_metrics(config).items() if k != "evaluation_key"})
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(diff: dict) -> str:
    return ", ".join(f"{key}={new}" for key, (_, new) in diff.items()) or "(base)"


def _relative(a: float, b: float) -> float:
    return (a - b) / abs(b)


def claims(table: pd.DataFrame, margin: float = CLAIM_MARGIN) -> dict[str, str]:
    """Whether the table supports the original's two claims, as sentences built from its numbers.

    Claim 1: latent 128 (`paper`) reaches a lower best validation loss than `latent64` by more than `margin`.
    Claim 2: `deep` is no better: its best validation loss is not lower than `paper`'s by more than `margin`.
    """
    rows = table.set_index("ablation") if "ablation" in table.columns else table
    out = {}
    if {"paper", "latent64"} <= set(rows.index):
        paper, small = rows.loc["paper", "best_val_total"], rows.loc["latent64", "best_val_total"]
        change = _relative(small, paper)
        verdict = "supports" if change > margin else "does not support"
        out["latent"] = (f"Latent 64 ends at a best validation loss of {small:.2f} per image against {paper:.2f} for "
                         f"latent 128 ({change:+.1%}): this {verdict} the original's claim that 128 is clearly better "
                         f"(threshold {margin:.0%}).")
    if {"paper", "deep"} <= set(rows.index):
        paper, deep = rows.loc["paper", "best_val_total"], rows.loc["deep", "best_val_total"]
        change = _relative(deep, paper)
        verdict = "supports" if change > -margin else "does not support"
        out["deep"] = (f"The deeper model ({int(rows.loc['deep', 'parameters']):,} parameters) ends at "
                       f"{deep:.2f} against {paper:.2f} ({change:+.1%}): this {verdict} the original's claim that it "
                       f"is no better (threshold {margin:.0%}).")
    out.setdefault("latent", "The latent-size claim is untested here: `paper` or `latent64` was not trained.")
    out.setdefault("deep", "The deeper-model claim is untested here: `paper` or `deep` was not trained.")
    return out


def convergence(table: pd.DataFrame) -> str:
    """A sentence on how many variants reached their lowest validation loss in their last epoch (still improving,
    so the comparison is at a fixed budget rather than at convergence)."""
    if table.empty:
        return "No ablation run is present."
    still = table[table["best_epoch"] == table["epochs"] - 1]
    if still.empty:
        return ("Every variant reached its lowest validation loss before its last epoch: the comparison is between "
                "(nearly) converged runs.")
    which = (f"All {len(table)} variants" if len(still) == len(table) else
             f"{len(still)} of {len(table)} variants ({', '.join(still['ablation'])})")  # plain text: glued as text
    return (f"{which} reached their lowest validation loss in their last epoch, so they were still improving: the "
            f"table compares them at a fixed budget of {int(table['epochs'].max())} epochs, not at convergence.")
