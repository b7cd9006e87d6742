"""What a trained model produces: posteriors, latent codes, conditional samples, reconstructions, aux-head accuracy."""

from __future__ import annotations

import copy

import numpy as np
import torch

from cvae.core.labels import MODALITY_OF_CLASS, NUM_CLASSES
from cvae.core.model import CVAE
from cvae.data.loading import Split, iterate_batches, model_input


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


READINGS = ("eval", "train_mixed", "train_single")  # how the heads are read: the factorial's third factor


def _reading_batches(split: Split, reading: str, batch_size: int, generator: torch.Generator):
    """Index tensors of the batches a reading feeds the heads: the split in order (eval), shuffled (train_mixed) or
    single-dataset batches in random order (train_single)."""
    if reading == "eval":
        return list(torch.split(torch.arange(len(split)), 1024))
    if reading == "train_mixed":
        return list(torch.split(torch.randperm(len(split), generator=generator), batch_size))
    from cvae.training.epochs import single_dataset_batches

    return single_dataset_batches(split.modalities, batch_size, generator)


def _ssim_gain(reconstructions: torch.Tensor, images: torch.Tensor, class_means: torch.Tensor,
               labels: torch.Tensor) -> torch.Tensor:
    """SSIM of each reconstruction minus SSIM of its class-mean image, both against the image: (B,) on the CPU."""
    from cvae.evaluation.metric_math import ssim_per_image

    baseline = class_means.to(images.device)[labels]
    return (ssim_per_image(reconstructions, images) - ssim_per_image(baseline, images)).float().cpu()


def _gain_over_classes(gains: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """{'ssim_gain', 'ssim_gain_low'}: the mean of the per-class mean gains and the lower end of its 95% interval
    over classes (`cvae.core.spread.over_classes`, as the learning gate reads it)."""
    from cvae.core.labels import NUM_CLASSES
    from cvae.core.spread import over_classes
    from cvae.evaluation.metric_math import per_class_means

    spread = over_classes(per_class_means(gains.numpy(), labels.numpy(), NUM_CLASSES), bounds=None)
    return {"ssim_gain": spread.mean, "ssim_gain_low": spread.low}


def aux_head_readings(model: CVAE, split: Split, device: str | torch.device = "cpu", batch_size: int = 256,
                      seed: int = 0, class_means: torch.Tensor | None = None) -> dict[str, dict[str, float]]:
    """The heads' accuracy on a split under every reading, and the reading-time checks that need no training:
    {reading: {'class', 'modality'}} for READINGS (eval mode; a copy in train mode, BatchNorm batch statistics and
    dropout, fed mixed or single-dataset batches), plus 'eval_z' (heads fed a sample z instead of mu) and
    'eval_local_labels' ({'class'}: the 21-way prediction scored against each dataset's own labels 0-8 / 0-7 / 0-3,
    as a script that kept the local labels would score it). With `class_means` ((21,1,28,28), `class_mean_images`),
    each of READINGS also gets the learning gate's reconstruction criterion read the same way: 'ssim_gain' and
    'ssim_gain_low', the SSIM gain of mu's reconstruction over the class-mean image with the lower end of its 95%
    interval over classes. The model itself is left untouched."""
    from cvae.core.labels import CLASS_OFFSETS, DATASETS

    offsets = torch.tensor([CLASS_OFFSETS[flag] for flag in DATASETS])
    out: dict[str, dict[str, float]] = {}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for reading in (*READINGS, "eval_z"):
            net = copy.deepcopy(model).train() if reading.startswith("train") else model.eval()
            generator = torch.Generator().manual_seed(seed)
            right = {"class": 0, "modality": 0, "local": 0}
            gains = torch.zeros(len(split))
            for index in _reading_batches(split, "eval" if reading == "eval_z" else reading, batch_size, generator):
                images = model_input(split.images[index].to(device))
                labels, modalities = split.labels[index].to(device), split.modalities[index].to(device)
                mu, logvar = net.encode(images, labels, modalities)
                code = net.reparameterize(mu, logvar) if reading == "eval_z" else mu
                predicted = net.class_head(code).argmax(1)
                right["class"] += int((predicted == labels).sum())
                right["modality"] += int((net.modality_head(code).argmax(1) == modalities).sum())
                right["local"] += int((predicted == labels - offsets.to(device)[modalities]).sum())
                if class_means is not None and reading in READINGS:
                    gains[index] = _ssim_gain(net.decode(mu, labels, modalities), images, class_means, labels)
            out[reading] = {"class": right["class"] / len(split), "modality": right["modality"] / len(split)}
            if class_means is not None and reading in READINGS:
                out[reading].update(_gain_over_classes(gains, split.labels))
            if reading == "eval":
                out["eval_local_labels"] = {"class": right["local"] / len(split)}
    model.eval()
    return out


__all__ = [
    "encode_split", "latent_codes", "generate_conditional_samples", "reconstruct", "aux_head_accuracy",
    "aux_head_readings", "READINGS",
]
