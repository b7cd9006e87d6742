"""Ablations: named variants of the base configuration ("paper"), each trained as a cached run at the profile's
ablation scale (`cvae.core.config.ABLATION_SCALE`).

The named variants test the original's claims and the aux-head diagnosis; the loss weights are varied by the weight
search, whose candidates are variants too, named by their one override ("a_l1=0.1", `cvae.study.weight_search`). Which
runs a book trains, over which seeds, is `cvae.study.runner`'s concern.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from cvae.core.config import ABLATION_SCALE, FACTORIAL_SCALE, Config, ConfigError, make_config, parse_overrides
from cvae.training.train import train

# name -> overrides of the profile's base configuration ("paper")
STANDARD: dict[str, dict] = {
    "paper": {},
    "latent64": {"latent_dim": 64},  # the original: latent 128 "reduces [the loss] significantly" against 64
    # "more convolutional layers, roughly 4.8 million parameters": 4,799,257 trainable parameters
    "deep": {"encoder_channels": (64, 128, 256), "extra_convs_per_stage": 1, "hidden_dim": 352},
    "no_aux": {"gamma": 0.0},  # heads without gradient (diagnosis)
    "gamma_10": {"gamma": 10.0},  # an aux loss 10x heavier (diagnosis)
    "encoder_unconditioned": {"encoder_conditioned": False},  # the encoder sees only the image (diagnosis)
    # the aux-head factorial's one-dataset cells (cvae.study.aux_factorial, at FACTORIAL_SCALE), the encoder conditioned
    # or not; its mixed cells are `paper` and `encoder_unconditioned`
    "single_batches": {"batch_composition": "single"},
    "single_batches_unconditioned": {"batch_composition": "single", "encoder_conditioned": False},
    "plateau_at_beta_max": {"plateau_metric": "total_at_beta_max"},  # the learning-rate schedule ignores beta(t)
    "fp32": {"autocast": "none"},  # full precision: does the default bf16 autocast cost anything? (performance)
}


FACTORIAL = ("single_batches", "single_batches_unconditioned")  # the variants trained at FACTORIAL_SCALE


def ablation_overrides_for_profile(profile: str, name: str | None = None) -> dict:
    """Overrides every ablation of a profile shares (its reduced size and schedule, `cvae.core.config.ABLATION_SCALE`),
    with the factorial's longer schedule for its variants (`cvae.core.config.FACTORIAL_SCALE`); {} where none."""
    overrides = dict(ABLATION_SCALE.get(profile, {}))
    if name in FACTORIAL:
        overrides.update(FACTORIAL_SCALE.get(profile, {}))
    return overrides


def scale_text(profile: str, name: str | None = None) -> str:
    """The scale a profile's ablation `name` trains at, for a caption: 'train_per_class=300, epochs=24, ...', or
    the profile's own sizes where it has no reduced scale."""
    shared = ablation_overrides_for_profile(profile, name)
    return ", ".join(f"{key}={value}" for key, value in shared.items()) or "the profile's own sizes"


def factorial_scale_text(profile: str) -> str:
    """The aux-head factorial's scale as a caption's sentence, said once when its cells all train at one scale."""
    single, mixed = scale_text(profile, "single_batches"), scale_text(profile)
    if single == mixed:
        return f"Every cell trains at {mixed}."
    return f"The one-dataset cells train at {single}, the mixed cells at {mixed}."


def variant_overrides(name: str) -> dict:
    """The overrides of a named variant, or of a one-override name such as 'a_l1=0.1'; ConfigError otherwise."""
    if name in STANDARD:
        return dict(STANDARD[name])
    if "=" in name:
        return parse_overrides([name])
    raise ConfigError(f"unknown ablation {name!r}; standard ones: {', '.join(STANDARD)}, or one override such as "
                      f"a_l1=0.1")


def ablation_config(name: str | None, profile: str, extra: dict | Iterable[str] = ()) -> Config:
    """The config of an ablation (or of `paper` plus `extra` when name is None) under a profile."""
    overrides = ablation_overrides_for_profile(profile, name)
    overrides.update(variant_overrides(name or "paper"))
    overrides.update(extra if isinstance(extra, dict) else parse_overrides(extra))
    return make_config(profile, overrides)


def run_ablation(name: str | None, profile: str = "quick", extra: dict | Iterable[str] = (),
                 data_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Train the ablation (or reuse its finished run); returns the run folder."""
    config = ablation_config(name, profile, extra)
    if data_dir:
        config = config.replace(data_dir=str(data_dir))
    return train(config, progress=progress)


def convergence(table) -> str:
    """A sentence on how many runs of a study table were still improving at their last epoch: their kept epoch (the
    lowest validation loss at the final beta, the loss the study compares) was the last one, so the comparison is at a
    fixed budget rather than at convergence. `kept_epoch` is 1-based. (The lowest total under the beta of its own epoch,
    `best_total_epoch`, is no guide here: the KL weight still rises during the ramp.)"""
    if table.empty:
        return "No ablation run is present."
    still = table[table["kept_epoch"] == table["epochs"]]
    if still.empty:
        return ("Every run reached its lowest validation loss at the final β before its last epoch: the comparison is between "
                "(nearly) converged runs.")
    which = f"All {len(table)} runs" if len(still) == len(table) else f"{len(still)} of {len(table)} runs"
    return (f"{which} reached their lowest validation loss at the final β in their last epoch, so they were still improving: the "
            f"table compares them at a fixed budget of {int(table['epochs'].max())} epochs, not at convergence.")


def learning_rate_drops(metrics) -> int:
    """How many times the learning rate fell during a run (metrics.csv's lr column, one row per epoch)."""
    lr = list(metrics["lr"])
    return sum(after < before for before, after in zip(lr, lr[1:]))


def schedule_sentence(paper_metrics, plateau_metrics, patience: int) -> str:
    """Whether `plateau_at_beta_max` changed anything: the learning-rate drops of both runs, and when neither dropped
    within its epochs, that the two runs train identically at this scale."""
    paper, plateau = learning_rate_drops(paper_metrics), learning_rate_drops(plateau_metrics)
    if paper == plateau == 0:
        return (f"In neither run did the learning rate drop within its {len(paper_metrics)} epochs, with a patience "
                f"of {patience}, so plateau_at_beta_max trains exactly as the paper's model at this scale. Only a "
                f"schedule long enough to reach a plateau can show what it changes.")
    return (f"The learning rate dropped {paper} time{'s' if paper != 1 else ''} for the paper's model and {plateau} "
            f"time{'s' if plateau != 1 else ''} with plateau_at_beta_max.")


__all__ = ["learning_rate_drops", "schedule_sentence", "STANDARD", "FACTORIAL", "scale_text", "factorial_scale_text",
           "ablation_overrides_for_profile", "variant_overrides", "ablation_config", "run_ablation", "convergence"]
