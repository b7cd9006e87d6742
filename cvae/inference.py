"""What a trained model produces: posteriors, latent codes, conditional samples, reconstructions, aux-head accuracy."""

from __future__ import annotations

import copy

import numpy as np
import torch

from .data import Split, iterate_batches
from .labels import MODALITY_OF_CLASS, NUM_CLASSES
from .model import CVAE


@torch.inference_mode()
def encode_split(model: CVAE, split: Split, device: str | torch.device = "cpu", batch_size: int = 1024) -> dict:
    """Eval-mode posterior of every image of a split: {mu, logvar (N,D) float32, labels, modalities (N,)} ndarrays."""
    model.eval()
    mus, logvars = [], []
    for images, labels, modalities in iterate_batches(split, batch_size, device):
        mu, logvar = model.encode(images, labels, modalities)
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    return {"mu": torch.cat(mus).numpy(), "logvar": torch.cat(logvars).numpy(),
            "labels": split.labels.numpy(), "modalities": split.modalities.numpy()}


def latent_codes(model: CVAE, split: Split, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """(mu (N,D) float32, labels (N,) global 0-20, modalities (N,) 0-2) for a split, eval mode: the latent chapter's
    PCA/t-SNE input."""
    codes = encode_split(model, split, device)
    return codes["mu"], codes["labels"], codes["modalities"]


@torch.inference_mode()
def generate_conditional_samples(model: CVAE, per_class: int, seed: int = 0, device: str | torch.device = "cpu",
                                 classes: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`per_class` prior samples for each global class (all 21 unless `classes`), decoded with the class's own
    modality: (images (N,1,28,28) float in [0,1] on the CPU, labels (N,), modalities (N,)). Seeded: z is drawn on
    the CPU from a generator seeded with `seed`, so the set repeats on any device."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    images, labels, modalities = [], [], []
    for label in classes if classes is not None else range(NUM_CLASSES):
        z = torch.randn(per_class, model.latent_dim, generator=generator)
        y = torch.full((per_class,), int(label), dtype=torch.long)
        m = torch.full((per_class,), MODALITY_OF_CLASS[label], dtype=torch.long)
        images.append(model.decode(z.to(device), y.to(device), m.to(device)).cpu())
        labels.append(y)
        modalities.append(m)
    return torch.cat(images), torch.cat(labels), torch.cat(modalities)


@torch.inference_mode()
def reconstruct(model: CVAE, split: Split, device: str | torch.device = "cpu",
                batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode reconstructions from the posterior mean, decode(mu, y, m): (originals, reconstructions), each
    (N,1,28,28) float in [0,1] on the CPU."""
    model.eval()
    originals, recons = [], []
    for images, labels, modalities in iterate_batches(split, batch_size, device):
        mu, _ = model.encode(images, labels, modalities)
        recons.append(model.decode(mu, labels, modalities).cpu())
        originals.append(images.cpu())
    return torch.cat(originals), torch.cat(recons)


@torch.inference_mode()
def aux_head_accuracy(model: CVAE, split: Split, device: str | torch.device = "cpu", train_mode: bool = False,
                      batch_size: int = 256, seed: int = 0) -> dict[str, float]:
    """Accuracy of the auxiliary heads on a split: {'class', 'modality'}.

    Eval mode (default): BatchNorm running statistics, no dropout, the way a deployed head is read.
    Train mode: a copy of the whole model in `train()` (batch statistics in every BatchNorm, dropout on), fed
    shuffled batches of `batch_size` (as in training, where every batch mixes the modalities); the model itself is
    not changed. The gap between the two is the BatchNorm/dropout candidate cause.
    """
    net = copy.deepcopy(model).train() if train_mode else model.eval()
    correct_class = correct_modality = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        for images, labels, modalities in iterate_batches(split, batch_size, device, shuffle=train_mode,
                                                          generator=generator):
            mu, _ = net.encode(images, labels, modalities)
            correct_class += int((net.class_head(mu).argmax(1) == labels).sum())
            correct_modality += int((net.modality_head(mu).argmax(1) == modalities).sum())
    return {"class": correct_class / len(split), "modality": correct_modality / len(split)}


__all__ = [
    "encode_split", "latent_codes", "generate_conditional_samples", "reconstruct", "aux_head_accuracy",
]
