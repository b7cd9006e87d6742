"""The offline stand-in: MedMNIST-format `.npz` files that are as hard to classify as the real sets. NOT real data.

Each file has exactly the keys, dtypes and shapes of the real release (`pathmnist.npz` RGB (N,28,28,3), the
others (N,28,28), labels (N,1) uint8), so it is read by the same loader as the real files. The folder also gets
a marker file, and everything built from it is labelled synthetic.

What the images look like. Every image is drawn from continuous class parameters (a few numbers in [0, 1] per
image: nuclear density, cell size, retinal thickness, ...), sampled around each class's centre with a spread per
modality (`SPREAD`). Neighbouring classes have neighbouring centres (stroma next to smooth muscle, normal mucosa
next to tumour, drusen next to normal retina, the tubule cells of the kidney next to each other), so their ranges
overlap the way real classes do: an image can be a borderline case, never a relabelled copy of another class.
- PathMNIST (RGB): H&E stain mixed in optical density (Beer-Lambert, Ruifrok-Johnston stain vectors): pink eosin
  tissue, purple hematoxylin nuclei (shot noise of round or spindle-shaped kernels), white lumens and fat.
  Adipose = large empty cells with thin walls (a Voronoi diagram); background = almost no tissue; debris =
  fragmented small dark specks in patchy eosin; lymphocytes = dense small dark round nuclei; mucus = pale bluish
  amorphous material; smooth muscle = deep pink oriented fibres with spindle nuclei; normal mucosa = glands
  (white lumens rimmed by nuclei); stroma = paler, looser fibres; tumour = crowded large irregular nuclei around
  small irregular lumens.
- TissueMNIST (gray, dark like the real set): one centred cell-like blob (size, elongation, brightness, granular
  texture, ragged outline, darker nucleus, blur) and its neighbours, on a dark noisy background.
- OCTMNIST (gray): retinal B-scan bands (bright inner surface, inner and outer layers, bright RPE line, choroid)
  under multiplicative speckle, with the lesions graded continuously: foveal pit (normal), RPE undulation
  (drusen), a large RPE elevation with subretinal fluid (CNV), retinal thickening with dark intraretinal cysts (DME).

Class counts. `--official-sizes` writes the real sets' per-class counts (`OFFICIAL_CLASS_COUNTS`), so the class
imbalance is the real one. PathMNIST: train + val per class = NCT-CRC-HE-100K's published counts (Kather et al.
2019; ADI 10,407 ... TUM 14,317), test = CRC-VAL-HE-7K's (1,338 ... 1,233); the train/val division per class is
the one third-party audits of pathmnist.npz report. OCTMNIST: Kermany et al. (2018) train set (CNV 37,206,
DME 11,349, DRUSEN 8,617, NORMAL 51,140, less one each of the first three: MedMNIST's 108,309), test 250 per class;
its 9:1 train/val division per class is the released file's as recalled (only the totals could be checked offline).
TissueMNIST: as in the released file, 70/10/20 % of each class; no primary per-class table was reachable offline to
confirm them (they sum exactly to the official split sizes). With a `per_class` K every class gets K images in every
split (the smoke profile, the tests).

Calibration. `SPREAD` was chosen so that the project's domain evaluator (`cvae.evaluation.domain_evaluator`, trained as the `quick`
profile trains it: 3,000 images per class, width 32, 3,000 steps) reaches the MedMNIST v2 ResNet-18 (28 px) test
accuracy on each set (Path 0.907, Tissue 0.676, OCT 0.743; Yang et al. 2023, Table 3). A sweep of one spread for
all three sets (0.05 to 0.8, same settings, on a GPU) showed accuracy falling smoothly with it (Path 0.99 to 0.26,
Tissue 0.75 to 0.21, OCT 0.99 to 0.42) while fewer than 0.1% of test images were put into the wrong modality; the
spreads were read off it and checked on the CPU at official sizes (`load_or_train_evaluator` for the quick profile
with data_source=synthetic, synthetic_per_class=0, seed 0): Path 0.910, Tissue 0.679, OCT 0.739 (binomial standard
errors of the official test sets 0.003, 0.002, 0.014). `tests/test_synthetic.py` keeps them within 0.05.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.fft  # installed with scikit-learn; float32 transforms on every core, ~2.5x numpy's
from tqdm import tqdm

from cvae.core.labels import CHANNELS, CLASSES_PER_DATASET, DATASETS
from cvae.data.errors import DataError

MARKER_FILE = "SYNTHETIC_STAND_IN.json"
GENERATOR_VERSION = 2  # 1: oriented gratings, trivially separable; 2: calibrated to the published accuracies
SPLITS = ("train", "val", "test")
# per-class image counts of the real release, class order as in medmnist.INFO (sources in the module docstring)
OFFICIAL_CLASS_COUNTS = {
    "pathmnist": {"train": (9366, 9509, 10360, 10401, 8006, 12182, 7886, 9401, 12885),
                  "val": (1041, 1057, 1152, 1156, 890, 1354, 877, 1045, 1432),
                  "test": (1338, 847, 339, 634, 1035, 592, 741, 421, 1233)},
    "tissuemnist": {"train": (53075, 7814, 5866, 15406, 11789, 7705, 39203, 24608),
                    "val": (7582, 1117, 838, 2201, 1684, 1101, 5601, 3516),
                    "test": (15165, 2233, 1677, 4402, 3369, 2202, 11201, 7031)},
    "octmnist": {"train": (33484, 10213, 7754, 46026), "val": (3721, 1135, 862, 5114), "test": (250, 250, 250, 250)},
}
OFFICIAL_SPLIT_SIZES = {flag: {split: sum(counts) for split, counts in splits.items()}
                        for flag, splits in OFFICIAL_CLASS_COUNTS.items()}
# standard deviation of the class parameters around their class centre (the difficulty knob, one per modality)
SPREAD = {"pathmnist": 0.127, "tissuemnist": 0.092, "octmnist": 0.29}
_CHUNK = 1024  # images per rendering step: small enough that the temporaries stay in the CPU cache (2x faster)
_CANVAS = 32  # textures are filtered on a 32x32 periodic canvas and cropped to 28x28, which hides the wrap-around
_FY = np.fft.fftfreq(_CANVAS).astype(np.float32)[:, None]
_FX = np.fft.rfftfreq(_CANVAS).astype(np.float32)[None, :]
_YY, _XX = np.meshgrid(np.arange(28, dtype=np.float32), np.arange(28, dtype=np.float32), indexing="ij")
# optical density of one unit of hematoxylin and of eosin in R, G, B (Ruifrok & Johnston 2001, normalised)
_HEMATOXYLIN = (np.array([0.65, 0.70, 0.29]) / np.linalg.norm([0.65, 0.70, 0.29])).astype(np.float32)
_EOSIN = (np.array([0.07, 0.99, 0.11]) / np.linalg.norm([0.07, 0.99, 0.11])).astype(np.float32)

# class centres of the image parameters, one row per class in medmnist.INFO order, every value in [0, 1]
_PATH_CENTRES = np.array([
    # tissue fat  nuclei size elong eosin fibre gland dark mucus patchy
    [0.95, 1.00, 0.05, 0.45, 0.20, 0.45, 0.10, 0.00, 0.60, 0.05, 0.05],  # adipose
    [0.10, 0.00, 0.05, 0.40, 0.30, 0.30, 0.10, 0.00, 0.50, 0.30, 0.40],  # background
    [0.75, 0.00, 0.50, 0.10, 0.20, 0.55, 0.15, 0.00, 0.70, 0.25, 0.85],  # debris
    [1.00, 0.00, 0.90, 0.45, 0.10, 0.25, 0.05, 0.00, 0.95, 0.00, 0.20],  # lymphocytes
    [0.60, 0.00, 0.08, 0.35, 0.30, 0.20, 0.30, 0.00, 0.40, 0.90, 0.35],  # mucus
    [1.00, 0.00, 0.30, 0.50, 0.90, 0.90, 0.90, 0.00, 0.65, 0.00, 0.05],  # smooth muscle
    [0.90, 0.00, 0.50, 0.50, 0.30, 0.45, 0.20, 0.90, 0.75, 0.30, 0.10],  # normal colon mucosa
    [0.95, 0.00, 0.15, 0.45, 0.65, 0.65, 0.60, 0.00, 0.55, 0.10, 0.10],  # cancer-associated stroma
    [1.00, 0.00, 0.70, 0.80, 0.35, 0.50, 0.15, 0.45, 0.85, 0.00, 0.25],  # adenocarcinoma epithelium
], np.float32)
_TISSUE_CENTRES = np.array([
    # size elong bright granular ragged nucleus neighbours blur
    [0.50, 0.30, 0.45, 0.30, 0.20, 0.50, 0.60, 0.30],  # collecting duct, connecting tubule
    [0.55, 0.35, 0.50, 0.40, 0.20, 0.45, 0.60, 0.30],  # distal convoluted tubule
    [0.30, 0.60, 0.35, 0.20, 0.40, 0.60, 0.40, 0.40],  # glomerular endothelial cells
    [0.30, 0.80, 0.30, 0.15, 0.30, 0.50, 0.20, 0.40],  # interstitial endothelial cells
    [0.20, 0.10, 0.70, 0.10, 0.10, 0.30, 0.10, 0.20],  # leukocytes
    [0.45, 0.40, 0.50, 0.30, 0.80, 0.60, 0.30, 0.30],  # podocytes
    [0.75, 0.30, 0.65, 0.75, 0.25, 0.40, 0.55, 0.30],  # proximal tubule segments
    [0.50, 0.45, 0.50, 0.35, 0.20, 0.50, 0.65, 0.30],  # thick ascending limb
], np.float32)
_OCT_CENTRES = np.array([
    # thick pit  cysts elevation drusen fluid irregular
    [0.65, 0.20, 0.15, 0.80, 0.25, 0.55, 0.60],  # choroidal neovascularization
    [0.80, 0.15, 0.80, 0.15, 0.10, 0.30, 0.40],  # diabetic macular edema
    [0.40, 0.40, 0.05, 0.30, 0.75, 0.05, 0.35],  # drusen
    [0.40, 0.70, 0.03, 0.05, 0.10, 0.03, 0.15],  # normal
], np.float32)


def _col(values) -> np.ndarray:
    """(n,) -> (n,1,1) float32, to broadcast one value per image over its pixels."""
    return np.asarray(values, np.float32)[:, None, None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)  # the logistic function, without overflow warnings


def _gaussian_transfer(sigma_major, sigma_minor, theta) -> np.ndarray:
    """(n,32,17) Fourier transfer of unit-peak anisotropic Gaussian kernels (sigmas in px, theta in radians)."""
    cos, sin = _col(np.cos(theta)), _col(np.sin(theta))
    along, across = _FX * cos + _FY * sin, -_FX * sin + _FY * cos
    return np.exp(-2 * np.pi ** 2 * ((_col(sigma_major) * along) ** 2 + (_col(sigma_minor) * across) ** 2))


def _filter(fields: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Filter (n,32,32) periodic fields by (n,32,17) transfers; the (n,28,28) crop."""
    spectrum = scipy.fft.rfft2(fields, workers=-1) * transfer
    return scipy.fft.irfft2(spectrum, s=(_CANVAS, _CANVAS), workers=-1)[:, 2:30, 2:30].astype(np.float32)


def _texture(rng: np.random.Generator, transfer: np.ndarray) -> np.ndarray:
    """(n,28,28) filtered white noise, standardised per image to mean 0 and std 1."""
    white = rng.random((len(transfer), _CANVAS, _CANVAS), dtype=np.float32)  # uniform: 4x cheaper than normal
    out = _filter(white, transfer)
    out -= out.mean(axis=(1, 2), keepdims=True)
    return out / (out.std(axis=(1, 2), keepdims=True) + 1e-6)


def _uniform_noise(rng: np.random.Generator, shape: tuple, std: float) -> np.ndarray:
    """Zero-mean uniform pixel noise of the given std (float32; 4x cheaper to draw than Gaussian noise)."""
    return (rng.random(shape, dtype=np.float32) - 0.5) * np.float32(std * 12 ** 0.5)


def _class_parameters(centres: np.ndarray, labels: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """(n, P) image parameters in [0, 1]: each class's centre plus Gaussian scatter of std `spread`."""
    scatter = rng.standard_normal((len(labels), centres.shape[1]), dtype=np.float32)
    return np.clip(centres[labels] + spread * scatter, 0, 1)


def _voronoi_walls(rng: np.random.Generator, fat: np.ndarray) -> np.ndarray:
    """(n,28,28): thin walls between large cells (a jittered-grid Voronoi diagram) where fat >= 0.1, else 1."""
    walls = np.ones((len(fat), 28, 28), np.float32)
    chosen = np.nonzero(fat >= 0.1)[0]
    m = len(chosen)
    spacing = _col(rng.uniform(8, 12, m))
    offset_y, offset_x = _col(rng.uniform(0, 1, m)), _col(rng.uniform(0, 1, m))
    nearest = np.full((m, 28, 28), 1e9, np.float32)
    second = np.full((m, 28, 28), 1e9, np.float32)
    for gy in range(-1, 5):
        for gx in range(-1, 5):
            seed_y = (gy + offset_y + _col(rng.uniform(-0.45, 0.45, m))) * spacing
            seed_x = (gx + offset_x + _col(rng.uniform(-0.45, 0.45, m))) * spacing
            distance = np.sqrt((_YY - seed_y) ** 2 + (_XX - seed_x) ** 2)
            second = np.minimum(second, np.maximum(nearest, distance))
            nearest = np.minimum(nearest, distance)
    walls[chosen] = np.exp(-((second - nearest) / 1.0) ** 2)
    return walls


def _path_images(labels: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    n = len(labels)
    parameters = _class_parameters(_PATH_CENTRES, labels, rng, spread).T
    tissue, fat, nuclei, size, elong, eosin, fibre, gland, dark, mucus, patchy = (_col(p) for p in parameters)
    theta = rng.uniform(0, np.pi, n)
    ones = np.ones(n, np.float32)
    smooth = _texture(rng, _gaussian_transfer(2.5 * ones, 2.5 * ones, theta))
    coarse = _texture(rng, _gaussian_transfer(4.0 * ones, 4.0 * ones, theta))
    coverage = _sigmoid((coarse + 5 * (tissue - 0.5)) / 0.3)  # where there is tissue at all
    threshold = 1.7 - 1.1 * gland
    lumen = _sigmoid((smooth - threshold) / 0.15) * (gland > 0.2)  # gland lumens: white
    rim = np.exp(-((smooth - threshold + 0.45) / 0.3) ** 2)  # the epithelium just outside a lumen
    stained = coverage * ((1 - fat) + fat * _voronoi_walls(rng, parameters[1])) * (1 - lumen)
    # nuclei: Bernoulli impulses (denser on gland rims, patchy in debris) blurred by a round or spindle kernel
    density = ((0.003 + 0.32 * nuclei ** 2) * ((1 - gland) + gland * 2.5 * rim)
               * ((1 - patchy) + patchy * 2.2 * (smooth > 0.3)))
    density = np.pad(density, ((0, 0), (2, 2), (2, 2)), mode="wrap")
    present = rng.random(density.shape, dtype=np.float32) < density
    impulses = present * (0.6 + 0.8 * rng.random(density.shape, dtype=np.float32))
    minor = 0.5 + 0.7 * parameters[3]
    major = minor * (1 + 2.5 * parameters[4])
    nuclear = 1 - np.exp(-2.2 * _filter(impulses, _gaussian_transfer(major, minor, theta)))
    fibres = _texture(rng, _gaussian_transfer(1.0 + 3.5 * parameters[6], 0.7 * ones, theta))
    eosin_od = (0.08 + 0.6 * eosin) * (1 + 0.35 * fibre * np.tanh(fibres)) * (1 - 0.6 * mucus)
    hematoxylin_od = (0.5 + 1.2 * dark) * nuclear + (0.05 + 0.3 * mucus) * (0.8 + 0.2 * smooth)
    strength = _col(rng.uniform(0.85, 1.15, n)) * stained  # staining intensity varies from slide to slide
    od = strength[..., None] * (hematoxylin_od[..., None] * _HEMATOXYLIN + eosin_od[..., None] * _EOSIN) + 0.03
    image = np.exp(-od)
    return image + _uniform_noise(rng, image.shape, 0.02)


def _blob_distance(cy, cx, radius, aspect, angle, ragged, rng: np.random.Generator) -> np.ndarray:
    """(n,28,28) elliptical distance from each image's blob centre (1 = its outline), its outline made ragged."""
    n = len(cy)
    dy, dx = _YY - _col(cy), _XX - _col(cx)
    cos, sin = _col(np.cos(angle)), _col(np.sin(angle))
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    stretch = _col(np.sqrt(aspect))
    distance = np.sqrt((along / (_col(radius) * stretch)) ** 2 + (across * stretch / _col(radius)) ** 2)
    phi = np.arctan2(across, along)
    wobble = (_col(rng.uniform(0.5, 1, n)) * np.cos(3 * phi + _col(rng.uniform(0, 2 * np.pi, n)))
              + _col(rng.uniform(0.5, 1, n)) * np.cos(5 * phi + _col(rng.uniform(0, 2 * np.pi, n))))
    return distance * (1 + 0.3 * _col(ragged) * wobble)


def _tissue_images(labels: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    n = len(labels)
    size, elong, bright, granular, ragged, nucleus, neighbours, blur = _class_parameters(
        _TISSUE_CENTRES, labels, rng, spread).T
    radius, aspect = 2.5 + 6.0 * size, 1 + 2.0 * elong
    angle = rng.uniform(0, np.pi, n)
    cy, cx = 14 + rng.normal(0, 1.2, n), 14 + rng.normal(0, 1.2, n)
    edge = _col(0.08 + 0.3 * blur)
    brightness = _col(0.25 + 0.6 * bright)
    cell = _sigmoid((1 - _blob_distance(cy, cx, radius, aspect, angle, ragged, rng)) / edge)
    ones = np.ones(n, np.float32)
    speckles = _texture(rng, _gaussian_transfer(0.8 * ones, 0.8 * ones, angle))
    grain = np.clip(1 + 0.6 * _col(granular) * speckles, 0.2, None)
    ny, nx = cy + rng.normal(0, 0.25, n) * radius, cx + rng.normal(0, 0.25, n) * radius
    nuclear = np.exp(-((_YY - _col(ny)) ** 2 + (_XX - _col(nx)) ** 2) / _col(2 * (0.3 * radius) ** 2))
    image = brightness * cell * grain * (1 - 0.6 * _col(nucleus) * nuclear)
    for _ in range(3):  # up to three neighbouring cells of the same kind, dimmer
        present = rng.random(n) < 0.2 + 0.8 * neighbours
        direction = rng.uniform(0, 2 * np.pi, n)
        radius_k = radius * rng.uniform(0.7, 1.1, n)
        gap = (radius + radius_k) * rng.uniform(0.9, 1.3, n)
        distance = _blob_distance(cy + gap * np.sin(direction), cx + gap * np.cos(direction), radius_k, aspect,
                                  angle + rng.normal(0, 0.3, n), ragged, rng)
        image += _col(present * rng.uniform(0.4, 0.9, n)) * brightness * _sigmoid((1 - distance) / edge)
    background = 0.05 + 0.02 * _texture(rng, _gaussian_transfer(1.5 * ones, 1.5 * ones, angle))
    return image + background + _uniform_noise(rng, image.shape, 0.025)


def _oct_images(labels: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    n = len(labels)
    parameters = _class_parameters(_OCT_CENTRES, labels, rng, spread).T
    thick, pit, cysts, elevation, drusen, fluid, irregular = (_col(p) for p in parameters)
    fovea = _col(14 + rng.normal(0, 2.5, n))
    x, y = _XX - fovea, _YY
    height, tilt, curvature = rng.uniform(6, 11, n), rng.normal(0, 0.08, n), rng.normal(0.004, 0.004, n)
    surface = _col(height) + _col(tilt) * x + _col(curvature) * x ** 2
    rpe_flat = surface + (5 + 7 * thick) * (1 + 0.6 * thick * np.exp(-x ** 2 / 60))  # thickest at the fovea
    top = surface + 5.5 * pit * np.exp(-x ** 2 / _col(2 * rng.uniform(2, 3.5, n) ** 2))  # the foveal pit
    lesion_x = _col(rng.normal(0, 4, n))
    bulge = 6.0 * elevation * np.exp(-(x - lesion_x) ** 2 / _col(2 * rng.uniform(2, 4, n) ** 2))  # CNV lifts the RPE
    period, phase = rng.uniform(4.5, 7.5, n), rng.uniform(0, 2 * np.pi, n)
    wave = np.maximum(0, np.sin(2 * np.pi * x / _col(period) + _col(phase))) ** 3
    rpe = rpe_flat - bulge - 2.5 * drusen * wave  # drusen: small bumps under the RPE
    depth = y - top
    span = np.maximum(rpe - top, 1.0)
    inside = _sigmoid(depth / 0.6) * _sigmoid((rpe - y) / 0.6)
    below = np.maximum(y - rpe, 0)
    bands = (0.75 * np.exp(-(depth / 1.2) ** 2) + 0.35 * inside * _sigmoid((0.55 - depth / span) / 0.08)
             + 0.12 * inside + 0.95 * np.exp(-((y - rpe) / 1.0) ** 2)
             + 0.45 * _sigmoid((y - rpe) / 0.5) * np.exp(-below / 4))
    zeros, ones = np.zeros(n, np.float32), np.ones(n, np.float32)
    bands *= 1 + 0.5 * irregular * np.tanh(_texture(rng, _gaussian_transfer(2.5 * ones, ones, zeros)))
    holes = np.zeros_like(bands)
    centre_top, centre_span = top[:, 14, 14], span[:, 14, 14]
    for k in range(4):  # DME: up to four dark intraretinal cysts
        present = rng.random(n) < parameters[2] * 1.1 - 0.1 * k
        cyst_x = _col(rng.normal(0, 5, n))
        cyst_y = _col(centre_top + rng.uniform(0.3, 0.7, n) * centre_span)
        r = _col(0.8 + 2.2 * parameters[2] * rng.uniform(0.5, 1, n))
        cyst = np.exp(-(((x - cyst_x) / r) ** 2 + ((y - cyst_y) / (0.8 * r)) ** 2) ** 2)
        holes = np.maximum(holes, _col(present) * cyst)
    pocket = (fluid * np.exp(-((x - lesion_x) / (2 + 3 * fluid)) ** 4)  # subretinal fluid above the lifted RPE
              * _sigmoid((y - (rpe - 0.8 - 3 * fluid)) / 0.4) * _sigmoid((rpe - 1.0 - y) / 0.4))
    image = 0.05 + 0.85 * bands * (1 - 0.9 * np.maximum(holes, np.clip(1.5 * pocket, 0, 1)))
    return image * rng.standard_gamma(6.0, image.shape, dtype=np.float32) / 6  # multiplicative speckle


_RENDERERS = {"pathmnist": _path_images, "tissuemnist": _tissue_images, "octmnist": _oct_images}


def class_counts(flag: str, split: str, per_class: int | None) -> np.ndarray:
    """Images per class (K,) for one split: `per_class` each, or the real release's counts when None."""
    if per_class is None:
        return np.asarray(OFFICIAL_CLASS_COUNTS[flag][split])
    return np.full(CLASSES_PER_DATASET[flag], per_class)


def render(flag: str, labels: np.ndarray, seed: int, spread: float | None = None) -> np.ndarray:
    """uint8 images for the given local labels (N,): (N,28,28,3) for an RGB set (PathMNIST), else (N,28,28); seeded."""
    rng = np.random.default_rng(seed)
    spread = SPREAD[flag] if spread is None else spread
    chunks = []
    for start in range(0, len(labels), _CHUNK):
        image = _RENDERERS[flag](np.asarray(labels[start : start + _CHUNK], dtype=np.int64), rng, spread)
        chunks.append(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
    return np.concatenate(chunks) if chunks else np.zeros((0, 28, 28) + ((3,) if CHANNELS[flag] == 3 else ()), np.uint8)


STAND_IN_FILES = tuple(f"{flag}.npz" for flag in DATASETS) + (MARKER_FILE,)


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs (POSIX); elsewhere only this process counts as alive."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(target: Path) -> None:
    """Delete what killed writes left behind: `.<name>.synth-*-<pid>` siblings of dead processes, old `.npz.tmp`."""
    for path in target.parent.glob(f".{target.name}.synth-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and _process_alive(int(pid))):
            shutil.rmtree(path, ignore_errors=True)
    if target.is_dir():
        for path in target.glob(".*.npz.tmp"):  # written in place by generator version 1
            path.unlink()


def _refuse_unless_replaceable(target: Path) -> None:
    """DataError unless target is absent, empty, or holds nothing but a marked stand-in's files."""

    if not target.exists():
        return
    if not target.is_dir():
        raise DataError(f"{target} is a file; give the stand-in a folder of its own (python -m cvae synth --out DIR).")
    names = sorted(path.name for path in target.iterdir())
    npz = [name for name in names if name.endswith(".npz")]
    if npz and not is_stand_in(target):
        raise DataError(f"{target} holds {', '.join(npz)} without the stand-in marker {MARKER_FILE}: it may be real "
                        "MedMNIST, so it is not overwritten; write the stand-in into a new or empty folder "
                        "(python -m cvae synth --out NEW_DIR).")
    foreign = [name for name in names if name not in STAND_IN_FILES]
    if foreign:
        raise DataError(f"{target} holds files that are not part of a stand-in ({', '.join(foreign[:3])}), so it is "
                        "not replaced; write the stand-in into a new or empty folder "
                        "(python -m cvae synth --out NEW_DIR).")


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed's format, byte for byte the same for the same arrays: numpy stamps each zip entry with the
    time of writing, which would give every rewrite of a stand-in a new MD5 (and make its trained runs refuse it)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, buffer.getvalue())


def _write_files(folder: Path, counts: dict[str, dict[str, np.ndarray]], seed: int, progress: bool) -> None:
    """Render every split of the three sets with the given per-class counts and save one `.npz` per set."""
    bar = tqdm(total=len(DATASETS) * len(SPLITS), desc="writing synthetic stand-in", unit="split", disable=not progress)
    with ThreadPoolExecutor(max_workers=1) as saver:  # compresses one set (zlib frees the GIL) while the next renders
        saved = []
        for index, flag in enumerate(DATASETS):
            arrays = {}
            for number, split in enumerate(SPLITS):
                rng = np.random.default_rng([seed, index * len(SPLITS) + number])
                labels = rng.permutation(np.repeat(np.arange(len(counts[flag][split])), counts[flag][split]))
                arrays[f"{split}_images"] = render(flag, labels, seed=int(rng.integers(2**31)))
                arrays[f"{split}_labels"] = labels.astype(np.uint8)[:, None]
                bar.update()
            saved.append(saver.submit(_save_npz, folder / f"{flag}.npz", arrays))
        for future in saved:
            future.result()
    bar.close()


def write_stand_in(out_dir: str | Path, per_class: int | None = 300, seed: int = 0, progress: bool = True,
                   counts: dict | None = None) -> Path:
    """Write the three `.npz` stand-ins and the marker into out_dir; returns out_dir.

    per_class: K images per class and split, or None for the real release's per-class counts; `counts`
    ({flag: {split: per-class counts}}) overrides it. The files are written into a temporary sibling folder that
    is renamed into place, so an interrupted write leaves no partial stand-in. Refuses (DataError) a folder that
    holds anything but an earlier stand-in, e.g. real MedMNIST files.
    """
    if per_class is not None and per_class <= 0:
        raise ValueError(f"per_class must be positive (or None for the official sizes), got {per_class}")
    custom = counts is not None
    counts = counts or {flag: {split: class_counts(flag, split, per_class) for split in SPLITS} for flag in DATASETS}
    out_dir = Path(out_dir).expanduser()
    target = Path(os.path.abspath(out_dir))  # absolute, so that its parent holds the temporary siblings
    _remove_leftovers(target)
    _refuse_unless_replaceable(target)
    building = target.parent / f".{target.name}.synth-new-{os.getpid()}"
    replaced = target.parent / f".{target.name}.synth-old-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        _write_files(building, counts, seed, progress)
        marker = {
            "what": "SYNTHETIC stand-in for MedMNIST, written by cvae.data.synthetic. Not medical images.",
            "generator_version": GENERATOR_VERSION, "per_class": None if custom else per_class, "seed": seed,
            "custom_counts": custom, "spread": SPREAD,
            "sizes": {flag: {split: int(sum(counts[flag][split])) for split in SPLITS} for flag in DATASETS},
            "class_counts": {flag: {split: [int(c) for c in counts[flag][split]] for split in SPLITS}
                             for flag in DATASETS},
        }
        (building / MARKER_FILE).write_text(json.dumps(marker, indent=2))  # last: a marker means a complete set
        if target.exists():
            target.rename(replaced)  # an empty folder or an earlier stand-in (checked above)
        building.rename(target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(replaced, ignore_errors=True)
    return out_dir


def is_stand_in(folder: str | Path) -> bool:
    """True when the folder holds files written by `write_stand_in`."""
    return (Path(folder) / MARKER_FILE).exists()


def rebuild_command(folder: str | Path) -> str:
    """The `python -m cvae synth` command that rewrites the stand-in described by folder's marker."""
    try:
        marker = json.loads((Path(folder) / MARKER_FILE).read_text())
    except (OSError, ValueError):
        marker = {}
    per_class = marker.get("per_class", 300)
    size = "--official-sizes" if per_class is None else f"--per-class {per_class}"
    return f"python -m cvae synth --out {folder} {size} --seed {marker.get('seed', 0)}"
