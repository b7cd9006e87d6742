"""The domain evaluator: a small CNN that classifies the 21 global classes, trained on real training images.

It is the yardstick of the sampling and augmentation chapters: its predictions on CVAE samples give the
conditional accuracy, and its penultimate layer (128 features) is the feature space of the "domain FID/KID"
(Fréchet/kernel distances computed like Inception FID, but in this in-project network's features; never compare
them with Inception FID numbers). Trained evaluators are cached like runs: `<runs>/evaluator-<hash>/`, keyed by the
data-relevant fields of the config and the evaluator's own settings.

Architecture: three stride-2 4x4 conv blocks (w, 2w, 4w channels; w = 16 on the stand-in, 32 on real data) with
BatchNorm and ReLU (28 -> 14 -> 7 -> 3, like the CVAE's encoder; about 4x cheaper on a CPU than 3x3 convs with
max-pooling), a 128-wide hidden layer (the feature layer), a linear layer to 21 logits. Input: (B,1,28,28) floats in [0,1], normalised inside the network (mean 0.5, std 0.5, as MedMNIST's
reference protocol).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cvae.core.config import Config, require_paper_datasets
from cvae.core.labels import DATASETS, NUM_CLASSES
from cvae.core.original import REFERENCE_RESNET18_28
from cvae.core.paths import runs_dir, source_digest
from cvae.data.loading import MedMNISTData, Split, load_data, model_input, shuffled_by_class
from cvae.training.runs import atomic_torch_save, atomic_write_text

FEATURE_DIM = 128
EVALUATOR_FILE = "evaluator.pt"
EVALUATOR_SUMMARY = "summary.json"  # written last: its presence means the evaluator finished training
_DATA_FIELDS = ("data_source", "synthetic_per_class")


@dataclass(frozen=True)
class EvaluatorSettings:
    """How the evaluator is trained and which training images it must never see.

    train_per_class: training images per global class (0 = every training image not held out).
    reference_per_class: training images per class held out of the evaluator's training: the real side of the
        real-vs-real floor of the domain FID (test vs this held-out part of train).
    width: channels of the first conv block (then 2x, 4x): 16 on the stand-in, 32 on real data.
    steps: optimizer steps (batch `batch_size`, Adam at `lr`, cosine decay to 0); seeded by `seed`.
    blur_augment: blur a random half of every batch (`degrade`), so the evaluator judges what an image shows
        (modality, class) rather than how sharp it is. VAE samples are blurry by construction; an evaluator that has
        only seen sharp images sorts blurry patches by brightness (on the stand-in it put every CVAE sample into
        TissueMNIST), which would make conditional accuracy measure sharpness instead of condition fidelity.
    """

    train_per_class: int = 0
    reference_per_class: int = 100
    width: int = 16
    steps: int = 300
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    blur_augment: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)


def evaluator_settings_for(config: Config) -> EvaluatorSettings:
    """The evaluator settings a profile's config uses (documented in the sampling chapter).

    - the full training set (train_per_class = 0, e.g. `smoke`, `full`): every training image but the held-out
      reference; 100 per class held out for the stand-in's few hundred per class, 1,000 per class otherwise;
    - a subset profile (`quick`, 1,000 per class): a larger cap, 3 x the CVAE's share (3,000 per class), so the
      evaluator is a stronger classifier than anything trained on the CVAE's own data.
    """
    if config.train_per_class == 0:
        small = config.data_source == "synthetic" and 0 < config.synthetic_per_class <= 1000
        if small:
            return EvaluatorSettings(train_per_class=0, reference_per_class=100, width=16, steps=300)
        return EvaluatorSettings(train_per_class=0, reference_per_class=1000, width=32, steps=8000)
    return EvaluatorSettings(train_per_class=3 * config.train_per_class,
                             reference_per_class=max(100, config.eval_per_class or 200), width=32, steps=3000)


class DomainClassifier(nn.Module):
    """Small CNN for the 21 global classes; `features` gives the (B,128) penultimate layer, `forward` the logits."""

    num_features = FEATURE_DIM  # read by torchmetrics when this module is passed as `feature=`

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.width = width

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, width), *block(width, 2 * width), *block(2 * width, 4 * width),  # 28 -> 14 -> 7 -> 3
            nn.Flatten(), nn.Linear(4 * width * 9, FEATURE_DIM), nn.ReLU(),
        )
        self.classifier = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B,1,28,28) in [0,1] -> (B,128) penultimate features."""
        return self.body((images - 0.5) / 0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B,1,28,28) in [0,1] -> (B,21) logits."""
        return self.classifier(self.features(images))


class FeatureExtractor(nn.Module):
    """The evaluator's penultimate layer as a torchmetrics `feature=` module: images (B,1,28,28) -> (B,128)."""

    num_features = FEATURE_DIM

    def __init__(self, classifier: DomainClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float())


def _images_as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N,28,28) or float (N,1,28,28) in [0,1] -> float (N,1,28,28) in [0,1]."""
    if images.dtype == torch.uint8:
        return model_input(images) if images.dim() == 3 else images.float().div_(255.0)
    return images if images.dim() == 4 else images.unsqueeze(1)


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian-blur a random half of a batch (B,1,28,28): a quarter with sigma in [0.5,1], a quarter in [1,2] px."""
    from torchvision.transforms.functional import gaussian_blur

    out = images.clone()
    chosen = torch.randperm(len(images), generator=generator)[: len(images) // 2]
    for (low, high), part in zip(((0.5, 1.0), (1.0, 2.0)), (chosen[: len(chosen) // 2], chosen[len(chosen) // 2:])):
        if len(part):
            sigma = float(torch.empty(1).uniform_(low, high, generator=generator))
            out[part] = gaussian_blur(images[part], [7, 7], [sigma, sigma])
    return out


def train_classifier(images: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int = 128,
                     lr: float = 2e-3, weight_decay: float = 1e-4, seed: int = 0, device: str | torch.device = "cpu",
                     progress: bool = False, desc: str = "classifier", width: int = 16,
                     blur_augment: bool = True) -> DomainClassifier:
    """Train a fresh `DomainClassifier` for `steps` Adam steps (cosine-decayed lr) on images ((N,28,28) uint8 or
    (N,1,28,28) floats in [0,1]) and (N,) global labels, optionally blurring half of each batch; eval mode out."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    n = len(labels)
    order, position = torch.randperm(n, generator=generator), 0
    model.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False, unit="step"):
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        index = order[position: position + batch_size]
        position += batch_size
        batch = _images_as_float(images[index])
        batch = (degrade(batch, generator) if blur_augment else batch).to(device)
        loss = nn.functional.cross_entropy(model(batch), labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


@torch.inference_mode()
def predict(model: DomainClassifier, images: torch.Tensor, device: str | torch.device = "cpu",
            batch_size: int = 1024) -> np.ndarray:
    """Predicted global labels (N,) int64 for images ((N,28,28) uint8 or (N,1,28,28) floats in [0,1])."""
    model.eval()
    out = [model(_images_as_float(images[i: i + batch_size]).to(device)).argmax(1).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


@torch.inference_mode()
def extract_features(model: DomainClassifier, images: torch.Tensor, device: str | torch.device = "cpu",
                     batch_size: int = 1024) -> torch.Tensor:
    """Penultimate features (N,128) float32 on the CPU for images ((N,28,28) uint8 or (N,1,28,28) in [0,1])."""
    model.eval()
    out = [model.features(_images_as_float(images[i: i + batch_size]).to(device)).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM)


def split_reference(labels: torch.Tensor, settings: EvaluatorSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint (evaluator-training indices, held-out reference indices) of a training split, stratified and seeded:
    per class, a seeded permutation gives the first `reference_per_class` to the reference, then up to
    `train_per_class` (0 = all the rest) to training."""
    train_parts, reference_parts = [], []
    for members in shuffled_by_class(labels, settings.seed + 101).values():
        reference_parts.append(members[: settings.reference_per_class])
        rest = members[settings.reference_per_class:]
        train_parts.append(rest[: settings.train_per_class] if settings.train_per_class else rest)
    return torch.sort(torch.cat(train_parts)).values, torch.sort(torch.cat(reference_parts)).values


def evaluator_data_config(config: Config) -> Config:
    """The config the evaluator's data is loaded with: the profile's data source, every training and test image
    (its test accuracy is measured on the whole official test split, as MedMNIST's reference figures are)."""
    return config.replace(train_per_class=0, eval_per_class=0)


def evaluator_hash(config: Config, settings: EvaluatorSettings) -> str:
    """10-hex-digit hash of the data-relevant config fields and the evaluator settings."""
    payload = {"data": {k: getattr(config, k) for k in _DATA_FIELDS}, "settings": settings.to_dict(), "version": 3}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def evaluator_dir_for(config: Config, settings: EvaluatorSettings | None = None) -> Path:
    """The evaluator's cache folder: <runs>/evaluator-<hash>."""
    settings = settings or evaluator_settings_for(config)
    return runs_dir() / f"evaluator-{evaluator_hash(config, settings)}"


@dataclass
class Evaluator:
    """A trained domain evaluator, its folder, settings and summary (test accuracy per dataset, sizes)."""

    model: DomainClassifier
    path: Path
    settings: EvaluatorSettings
    summary: dict


def per_dataset_accuracy(predictions: np.ndarray, split: Split) -> dict[str, float]:
    """21-way accuracy within each dataset of a split: {flag: accuracy}."""
    labels, modalities = split.labels.numpy(), split.modalities.numpy()
    return {flag: float(np.mean(predictions[modalities == m] == labels[modalities == m]))
            for m, flag in enumerate(DATASETS) if np.any(modalities == m)}


def per_class_accuracy(predictions: np.ndarray, labels: np.ndarray) -> list[float | None]:
    """21-way accuracy among the images of each global class (None for a class with no images): [NUM_CLASSES]."""
    return [float(np.mean(predictions[labels == c] == c)) if np.any(labels == c) else None
            for c in range(NUM_CLASSES)]


# the modules whose code trains and applies the evaluator: a change to any of them retrains it
EVALUATOR_MODULES = ("evaluation.domain_evaluator", "data.loading", "data.synthetic")


def _load_evaluator(folder: Path, model: DomainClassifier) -> dict | None:
    """Load a cached evaluator's weights into `model` and return its summary; None, with a warning naming the file,
    when a file is damaged (the caller then trains it again)."""
    import warnings

    for name in (EVALUATOR_SUMMARY, EVALUATOR_FILE):
        try:
            if name == EVALUATOR_SUMMARY:
                summary = json.loads((folder / name).read_text())
            else:
                model.load_state_dict(torch.load(folder / name, map_location="cpu", weights_only=True))
        except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as error:  # truncated zip, bad
            # JSON, wrong shapes: each means "train it again"
            warnings.warn(f"{folder / name} is damaged ({type(error).__name__}); training the evaluator again",
                          stacklevel=3)
            return None
    return summary if isinstance(summary, dict) else None


def load_or_train_evaluator(config: Config, data: MedMNISTData | None = None, settings: EvaluatorSettings | None = None,
                            force: bool = False, progress: bool = True,
                            device: str | torch.device = "cpu") -> tuple[Evaluator, MedMNISTData]:
    """The cached evaluator for the config's data (trained here on the real training split if needed).

    `data` must be loaded with `evaluator_data_config(config)` (all training images); it is loaded if None.
    Returns the evaluator and the data it used (the caller needs its held-out reference images).
    """
    require_paper_datasets(config, "the domain evaluator")
    settings = settings or evaluator_settings_for(config)
    folder = evaluator_dir_for(config, settings)
    data = data or load_data(evaluator_data_config(config), progress=progress)
    model = DomainClassifier(settings.width)
    made_from = {"data_md5": {flag: report.md5 for flag, report in sorted(data.files.items())},
                 "code": source_digest(EVALUATOR_MODULES)}
    if (folder / EVALUATOR_SUMMARY).exists() and not force:
        summary = _load_evaluator(folder, model)
        if summary is not None and all(summary.get(key) == value for key, value in made_from.items()):
            return Evaluator(model.to(device).eval(), folder, settings, summary), data
    train_index, reference_index = split_reference(data.train.labels, settings)
    tick = dt.datetime.now(dt.timezone.utc)
    model = train_classifier(data.train.images[train_index], data.train.labels[train_index], settings.steps,
                             settings.batch_size, settings.lr, settings.weight_decay, settings.seed, device,
                             progress=progress, desc=f"evaluator {folder.name}", width=settings.width,
                             blur_augment=settings.blur_augment)
    seconds = (dt.datetime.now(dt.timezone.utc) - tick).total_seconds()
    test_predictions = predict(model, data.test.images, device)
    summary = {
        "test_accuracy": per_dataset_accuracy(test_predictions, data.test),
        "test_accuracy_overall": float(np.mean(test_predictions == data.test.labels.numpy())),
        "test_accuracy_by_class": per_class_accuracy(test_predictions, data.test.labels.numpy()),
        "val_accuracy": per_dataset_accuracy(predict(model, data.val.images, device), data.val),
        "train_images": int(len(train_index)), "reference_images": int(len(reference_index)),
        "test_images": int(len(data.test)), "settings": settings.to_dict(),
        "data": {k: getattr(config, k) for k in _DATA_FIELDS}, "synthetic_data": bool(data.synthetic),
        "train_seconds": seconds, "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **made_from,
    }
    folder.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(model.state_dict(), folder / EVALUATOR_FILE)
    atomic_write_text(folder / EVALUATOR_SUMMARY, json.dumps(summary, indent=2))
    return Evaluator(model, folder, settings, summary), data


__all__ = [
    "DomainClassifier", "FeatureExtractor", "Evaluator", "EvaluatorSettings", "REFERENCE_RESNET18_28",
    "evaluator_settings_for", "train_classifier", "predict", "extract_features", "split_reference",
    "evaluator_data_config", "evaluator_dir_for", "evaluator_hash", "load_or_train_evaluator",
    "per_dataset_accuracy", "per_class_accuracy", "EVALUATOR_MODULES",
]
