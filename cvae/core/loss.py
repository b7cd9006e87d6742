"""The original's six loss terms and the total, and its piecewise-linear beta schedule.

Reduction (this reproduction's choice, the original's table is missing): every term is summed over its own
elements per sample (784 pixels, 32x7x7 perceptual features, latent dimensions; a cross-entropy is already one
number per sample) and then averaged over the batch, so all terms are in "per image" units and the weights
compare like with like (Kingma & Welling's ELBO; pytorch/examples vae).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cvae.core.config import Config
from cvae.core.model import CVAEOutput, PerceptualNet


@dataclass(frozen=True)
class LossTerm:
    """One term of the loss: its key (in the loss dict and metrics.csv's train_/val_ columns), the Config field that
    weighs it (the KL's weight is the schedule's beta(t), which ends at `beta_max`), its title in figures and its
    short name in sentences, and whether it measures reconstruction."""

    name: str
    weight: str
    title: str
    short: str
    reconstruction: bool = False


LOSS_TERMS = (
    LossTerm("mse", "a_mse", "MSE", "MSE", reconstruction=True),
    LossTerm("l1", "a_l1", "L1", "L1", reconstruction=True),
    LossTerm("perceptual", "a_perc", "perceptual", "perceptual", reconstruction=True),
    LossTerm("kl", "beta_max", "KL", "KL"),
    LossTerm("class_ce", "gamma", "class cross-entropy", "class CE"),
    LossTerm("modality_ce", "gamma", "modality cross-entropy", "modality CE"),
)
TERMS = tuple(term.name for term in LOSS_TERMS)
TERM_TITLES = {**{term.name: term.title for term in LOSS_TERMS}, "total": "total"}
TERM_SHORT_NAMES = {term.name: term.short for term in LOSS_TERMS}
RECONSTRUCTION_TERMS = tuple(term.name for term in LOSS_TERMS if term.reconstruction)


def beta_at(epoch: int, beta_max: float, warmup_epochs: int = 20, ramp_epochs: int = 100) -> float:
    """KL weight at a 0-based epoch: 0 before warm-up ends, then linear to beta_max over ramp_epochs, then beta_max."""
    if epoch < warmup_epochs:
        return 0.0
    if epoch < warmup_epochs + ramp_epochs:
        return beta_max * (epoch - warmup_epochs) / ramp_epochs
    return float(beta_max)


def beta_milestones(warmup_epochs: int, ramp_epochs: int) -> tuple[int, int]:
    """(first epoch with beta > 0, first epoch at beta_max), both counted from 1: epoch e trains with t = e - 1."""
    return warmup_epochs + 2, warmup_epochs + ramp_epochs + 1


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per sample and latent dimension, in nats; (B, D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def loss_terms(
    output: CVAEOutput,
    images: torch.Tensor,
    labels: torch.Tensor,
    modalities: torch.Tensor,
    perceptual: PerceptualNet,
    config: Config,
    beta: float,
) -> dict[str, torch.Tensor]:
    """Each term (per-sample sum, batch mean) and `total` = weighted sum; scalar tensors keyed by name."""
    batch = images.shape[0]
    recon = output.recon
    terms = {
        "mse": F.mse_loss(recon, images, reduction="sum") / batch,
        "l1": F.l1_loss(recon, images, reduction="sum") / batch,
        "perceptual": F.mse_loss(perceptual(recon), perceptual(images), reduction="sum") / batch,
        "kl": kl_per_dimension(output.mu, output.logvar).sum() / batch,
        "class_ce": F.cross_entropy(output.class_logits, labels),
        "modality_ce": F.cross_entropy(output.modality_logits, modalities),
    }
    weights = term_weights(config, beta)
    terms["total"] = sum(weights[name] * terms[name] for name in TERMS)
    return terms


def term_weights(config: Config, beta) -> dict:
    """The weight of each term in the total, by term: its Config field's value (a_mse, a_l1, a_perc, gamma twice),
    and for the KL the schedule's `beta` (a float or a device scalar)."""
    return {term.name: beta if term.name == "kl" else getattr(config, term.weight) for term in LOSS_TERMS}


def weight_settings(config: Config) -> str:
    """'a_mse 1, a_l1 1, a_perc 0.1, beta_max 1, gamma 1': every weight field of the loss with its value, once each."""
    fields = dict.fromkeys(term.weight for term in LOSS_TERMS)
    return ", ".join(f"{name} {getattr(config, name):g}" for name in fields)
