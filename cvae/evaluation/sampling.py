"""Asking the model for images: any class on demand, as a labelled grid or as MedMNIST-format files.

`python -m cvae sample` resolves the requested classes (`resolve_classes`: global index, class name such as
`drusen`, or every class of a `--modality`), draws `n` prior samples per class at a temperature (`draw`) and writes a
PNG grid (`cvae.report.plots.sample_grid`) and/or one `.npz` per modality (`write_npz`): the keys, dtypes and shapes of the
real files, the labels local to each dataset, the samples in the train split, and a `generated_by` entry that says
the images were generated, by which run and config hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cvae.core.config import ConfigError
from cvae.core.labels import (CHANNELS, CLASS_NAMES, CLASS_OFFSETS, DATASETS, MODALITY_NAMES, MODALITY_OF_CLASS,
                              NUM_CLASSES, classes_of_modality)
from cvae.core.progress import tqdm
from cvae.data.loading import to_uint8

MARKER_KEY = "generated_by"  # the .npz entry (a JSON string) that marks generated images


def _modality_index(name: str) -> int:
    wanted = name.strip().lower()
    for index, (flag, shown) in enumerate(zip(DATASETS, MODALITY_NAMES)):
        if wanted in (flag, shown.lower(), flag.removesuffix("mnist")):
            return index
    raise ConfigError(f"unknown modality {name!r}; choose one of {', '.join(DATASETS)}")


def _class_index(text: str) -> int:
    wanted = text.strip().lower()
    if wanted.isdigit():
        label = int(wanted)
        if not 0 <= label < NUM_CLASSES:
            raise ConfigError(f"class {label} is outside the global labels 0-{NUM_CLASSES - 1}")
        return label
    exact = [label for label, name in enumerate(CLASS_NAMES) if name.lower() == wanted]
    partial = [label for label, name in enumerate(CLASS_NAMES) if wanted in name.lower()]
    found = exact or partial
    if len(found) != 1:
        names = ", ".join(CLASS_NAMES[i] for i in found)
        what = f"matches {len(found)} classes ({names})" if found else "matches no class"
        raise ConfigError(f"class {text!r} {what}; give a global label 0-{NUM_CLASSES - 1} or a name from "
                          f"`python -m cvae sample --list-classes`")
    return found[0]


def resolve_classes(classes: list[str] | None, modality: str | None) -> list[int]:
    """Global labels to sample: the named or numbered `classes` (every class of `modality`, or all 21, when none);
    ConfigError for an unknown name, a number out of range or a class outside the given modality."""
    allowed = classes_of_modality(_modality_index(modality)) if modality else list(range(NUM_CLASSES))
    if not classes:
        return allowed
    labels = [_class_index(text) for text in classes]
    outside = [label for label in labels if label not in allowed]
    if outside:
        raise ConfigError(f"class {CLASS_NAMES[outside[0]]} ({outside[0]}) is not a class of {modality}; its "
                          f"modality is {MODALITY_NAMES[MODALITY_OF_CLASS[outside[0]]]}")
    return list(dict.fromkeys(labels))


@torch.inference_mode()
def draw(model, labels: list[int], n: int, temperature: float = 1.0, seed: int = 0, device="cpu",
         progress: bool = False, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """`n` prior samples per global label, z ~ N(0, temperature^2 I), decoded with the label's own modality:
    (images (len(labels)*n, 28, 28) uint8, labels (len(labels)*n,) global). Seeded: the same seed, labels and n give
    the same images on any device."""
    if n <= 0:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if not temperature > 0:
        raise ConfigError(f"--temperature must be positive, got {temperature}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    images, out_labels = [], []
    with tqdm(total=len(labels) * n, desc="sampling", unit="image", disable=not progress) as bar:
        for label in labels:
            for start in range(0, n, batch_size):
                count = min(batch_size, n - start)
                z = temperature * torch.randn(count, model.latent_dim, generator=generator)
                y = torch.full((count,), label, dtype=torch.long)
                m = torch.full((count,), MODALITY_OF_CLASS[label], dtype=torch.long)
                decoded = model.decode(z.to(device), y.to(device), m.to(device)).float().cpu()
                images.append(to_uint8(decoded.squeeze(1)).numpy())
                out_labels.append(np.full(count, label, dtype=np.int64))
                bar.update(count)
    return np.concatenate(images), np.concatenate(out_labels)


def write_npz(folder: Path, images: np.ndarray, labels: np.ndarray, marker: dict) -> list[Path]:
    """One MedMNIST-format file per modality present (`<flag>.npz`): the samples as `train_images` ((N,28,28,3) for
    PathMNIST, the gray image in all three channels, else (N,28,28) uint8) with `train_labels` (N,1) uint8 local to
    the dataset, empty validation and test splits, and `generated_by` (the marker as JSON). Written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    modalities = np.asarray(MODALITY_OF_CLASS)[labels]
    for modality, flag in enumerate(DATASETS):
        chosen = modalities == modality
        if not chosen.any():
            continue
        pictures = images[chosen]
        if CHANNELS[flag] == 3:  # an RGB set: the gray image in all three channels
            pictures = np.repeat(pictures[..., None], 3, axis=-1)
        local = (labels[chosen] - CLASS_OFFSETS[flag]).astype(np.uint8).reshape(-1, 1)
        empty_images = np.zeros((0, *pictures.shape[1:]), dtype=np.uint8)
        arrays = {"train_images": pictures, "train_labels": local,
                  "val_images": empty_images, "val_labels": np.zeros((0, 1), dtype=np.uint8),
                  "test_images": empty_images, "test_labels": np.zeros((0, 1), dtype=np.uint8),
                  MARKER_KEY: np.array(json.dumps({**marker, "dataset": flag}))}
        path = folder / f"{flag}.npz"
        partial = path.with_name(path.name + ".tmp")
        with open(partial, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        partial.replace(path)
        written.append(path)
    return written


def read_marker(path: Path) -> dict | None:
    """The `generated_by` marker of a `.npz`, or None for a file without one (a real or stand-in file)."""
    with np.load(path) as npz:
        return json.loads(str(npz[MARKER_KEY])) if MARKER_KEY in npz.files else None


__all__ = ["MARKER_KEY", "resolve_classes", "draw", "write_npz", "read_marker"]
