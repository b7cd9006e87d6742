"""The offline stand-in: MedMNIST-format `.npz` files with learnable, class-specific structure. NOT real data.

Each file has exactly the keys, dtypes and shapes of the real release (`pathmnist.npz` RGB (N,28,28,3), the
others (N,28,28), labels (N,1) uint8), so it is read by the same loader as the real files. The folder also gets
a marker file, and everything built from it is labelled synthetic.

Per class: PathMNIST = an H&E-like colour with an oriented grating (orientation, frequency and colour depend on
the class); TissueMNIST = 1-4 bright blobs, small or large; OCTMNIST = layered retina-like bands with a
class-specific lesion (bump, dark cyst, small drusen, or none), under multiplicative speckle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .labels import CLASSES_PER_DATASET, DATASETS

MARKER_FILE = "SYNTHETIC_STAND_IN.json"
OFFICIAL_SPLIT_SIZES = {
    "pathmnist": {"train": 89_996, "val": 10_004, "test": 7_180},
    "tissuemnist": {"train": 165_466, "val": 23_640, "test": 47_280},
    "octmnist": {"train": 97_477, "val": 10_832, "test": 1_000},
}
SPLITS = ("train", "val", "test")
_CHUNK = 16_384
_YY, _XX = np.meshgrid(np.arange(28, dtype=np.float32), np.arange(28, dtype=np.float32), indexing="ij")

# nine H&E-like colours (RGB in [0,1]) for the nine PathMNIST classes
_PATH_COLOURS = np.array([
    [0.95, 0.85, 0.90], [0.90, 0.90, 0.92], [0.75, 0.45, 0.60], [0.35, 0.20, 0.55], [0.80, 0.70, 0.85],
    [0.85, 0.40, 0.55], [0.65, 0.35, 0.70], [0.90, 0.60, 0.70], [0.50, 0.25, 0.50],
], dtype=np.float32)


def _path_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    angle = labels * np.pi / 9 + rng.normal(0, 0.08, n)
    frequency = 0.12 + 0.07 * (labels % 3) + rng.normal(0, 0.005, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    wave = (_XX[None] * np.cos(angle)[:, None, None] + _YY[None] * np.sin(angle)[:, None, None])
    texture = 0.55 + 0.45 * np.sin(2 * np.pi * frequency[:, None, None] * wave + phase[:, None, None])
    colour = _PATH_COLOURS[labels] * rng.uniform(0.9, 1.1, (n, 1)).astype(np.float32)
    image = colour[:, None, None, :] * texture[..., None]
    return image + rng.normal(0, 0.04, image.shape)


def _tissue_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    count = 1 + labels % 4  # 1-4 blobs
    radius = np.where(labels < 4, 2.5, 5.0) + rng.normal(0, 0.3, n)
    image = np.full((n, 28, 28), 0.15, dtype=np.float32)
    for blob in range(4):
        cy, cx = rng.uniform(6, 22, n), rng.uniform(6, 22, n)
        d2 = (_YY[None] - cy[:, None, None]) ** 2 + (_XX[None] - cx[:, None, None]) ** 2
        present = (blob < count).astype(np.float32)[:, None, None]
        image += present * 0.7 * np.exp(-d2 / (2 * radius[:, None, None] ** 2))
    return image + rng.normal(0, 0.04, image.shape)


def _oct_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    tilt = rng.normal(0, 0.05, n)[:, None, None]
    top = rng.uniform(8, 12, n)[:, None, None] + tilt * (_XX[None] - 14)
    cx = rng.uniform(9, 19, n)[:, None, None]
    bump = np.exp(-((_XX[None] - cx) ** 2) / 8.0) * 5.0 * (labels == 0)[:, None, None]  # CNV: a large elevation
    drusen = (np.sin(_XX[None] * 1.4 + rng.uniform(0, 6, n)[:, None, None]) > 0.6) * 1.5 * (labels == 2)[:, None, None]
    depth = _YY[None] - top + bump
    image = (0.75 * np.exp(-(depth ** 2) / 2.0) + 0.45 * np.exp(-((depth - 5) ** 2) / 3.0)
             + 0.9 * np.exp(-((depth - 10 + drusen) ** 2) / 1.5))
    cyst = np.exp(-(((_XX[None] - cx) / 3.5) ** 2 + ((depth - 5) / 2.0) ** 2)) * (labels == 1)[:, None, None]
    image = image * (1 - 0.9 * cyst)  # DME: a dark fluid pocket inside the layers
    return image * rng.gamma(8.0, 1 / 8.0, image.shape)  # multiplicative speckle


_RENDERERS = {"pathmnist": _path_images, "tissuemnist": _tissue_images, "octmnist": _oct_images}


def _class_counts(total: int, num_classes: int) -> np.ndarray:
    counts = np.full(num_classes, total // num_classes)
    counts[: total % num_classes] += 1
    return counts


def render(flag: str, labels: np.ndarray, seed: int) -> np.ndarray:
    """uint8 images for the given local labels: (N,28,28,3) for pathmnist, else (N,28,28)."""
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, len(labels), _CHUNK):
        image = _RENDERERS[flag](labels[start : start + _CHUNK], rng)
        chunks.append(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
    return np.concatenate(chunks) if chunks else np.zeros((0, 28, 28) + ((3,) if flag == "pathmnist" else ()), np.uint8)


def write_stand_in(out_dir: str | Path, per_class: int | None = 300, seed: int = 0, progress: bool = True) -> Path:
    """Write pathmnist/tissuemnist/octmnist `.npz` stand-ins into out_dir; per_class None = official split sizes."""
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(flag, split) for flag in DATASETS for split in SPLITS]
    bar = tqdm(jobs, desc="writing synthetic stand-in", unit="split", disable=not progress)
    arrays: dict[str, dict[str, np.ndarray]] = {flag: {} for flag in DATASETS}
    for index, (flag, split) in enumerate(bar):
        k = CLASSES_PER_DATASET[flag]
        total = per_class * k if per_class else OFFICIAL_SPLIT_SIZES[flag][split]
        counts = _class_counts(total, k)
        rng = np.random.default_rng([seed, index])
        labels = rng.permutation(np.repeat(np.arange(k), counts)).astype(np.uint8)
        arrays[flag][f"{split}_images"] = render(flag, labels.astype(np.int64), seed=int(rng.integers(2**31)))
        arrays[flag][f"{split}_labels"] = labels[:, None]
    for flag in DATASETS:
        tmp = out_dir / f".{flag}.npz.tmp"
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays[flag])
        tmp.replace(out_dir / f"{flag}.npz")
    marker = {
        "what": "SYNTHETIC stand-in for MedMNIST, written by cvae.synthetic. Not medical images.",
        "per_class": per_class, "seed": seed,
        "sizes": {flag: {s: int(len(arrays[flag][f"{s}_labels"])) for s in SPLITS} for flag in DATASETS},
    }
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2))
    return out_dir


def is_stand_in(folder: str | Path) -> bool:
    """True when the folder holds files written by `write_stand_in`."""
    return (Path(folder) / MARKER_FILE).exists()
