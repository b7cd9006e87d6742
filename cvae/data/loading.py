"""MedMNIST loading: three `.npz` files -> one set of in-memory uint8 tensors with global labels.

One code path reads real and stand-in files alike. A file already in the data folder is used as it is and its
MD5 compared with `medmnist.INFO`; a missing real file is downloaded by medmnist; offline, a DataError says what
is missing, where it should go, where to get it and what to do instead. Nothing ever falls back to fake data.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from cvae.core.config import Config
from cvae.core.labels import registry
from cvae.core.medmnist_info import INFO
from cvae.core.paths import DATA_DIR_ENV, default_data_dir, file_digest
from cvae.data.errors import DataError
from cvae.data.synthetic import SPLITS, is_stand_in, rebuild_command, write_stand_in

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma


@dataclass
class Split:
    """One split of the merged data, resident in memory: images (N,28,28) uint8, labels and modalities (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    modalities: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> "Split":
        """The rows at `indices` (a 1-D index tensor)."""
        return Split(self.images[indices], self.labels[indices], self.modalities[indices])


@dataclass
class FileReport:
    """What was found for one dataset file: its path, MD5, the official MD5 and whether they agree."""

    flag: str
    path: str
    md5: str
    expected_md5: str
    md5_ok: bool
    sizes: dict[str, int] = field(default_factory=dict)  # split sizes in the file, before any subset


@dataclass
class MedMNISTData:
    """train/val/test Splits with global labels 0-20, where they came from, and whether they are synthetic."""

    train: Split
    val: Split
    test: Split
    data_dir: Path
    synthetic: bool
    files: dict[str, FileReport]

    def split(self, name: str) -> Split:
        """The split called 'train', 'val' or 'test'."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """(N,28,28,3) uint8 RGB -> (N,28,28) uint8 by ITU-R 601 luma, Y = 0.299 R + 0.587 G + 0.114 B, rounded."""
    luma = images.astype(np.float32) @ np.asarray(GRAY_WEIGHTS, dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def md5_of(path: Path) -> str:
    """Hex MD5 of a file (the form MedMNIST publishes its checksums in); `cvae.core.paths.file_digest`."""
    return file_digest(path, "md5")


def resolve_data_dir(config: Config, data_dir: str | Path | None = None) -> Path:
    """The data folder: the argument, else config.data_dir, else $CVAE_DATA_DIR, else the source's default;
    DataError when that path exists but is not a folder."""
    chosen = data_dir or config.data_dir
    folder = Path(chosen).expanduser() if chosen else default_data_dir(config.data_source, config.synthetic_per_class)
    folder = folder.resolve()  # absolute once, so the book's kernels (run in the project folder) read the same one
    if folder.exists() and not folder.is_dir():
        raise DataError(f"the data folder {folder} is a file, not a folder; point --data-dir (or ${DATA_DIR_ENV}, or "
                        "data_dir) at the folder that holds the .npz files.")
    return folder


def _missing_files_message(flags: list[str], folder: Path, reason: str) -> str:
    lines = [f"MedMNIST data missing and could not be downloaded ({reason}).",
             f"Missing file(s) in {folder}:"]
    for flag in flags:
        lines.append(f"  {flag}.npz  <- {INFO[flag]['url']}  (MD5 {INFO[flag]['MD5']})")
    lines += [
        "To fix: download those files on a machine with internet access and copy them into that folder,",
        f"or point the project at a folder that has them (--data-dir DIR, or ${DATA_DIR_ENV}=DIR).",
        "Offline alternative: build with the synthetic stand-in (make book PROFILE=smoke, or --profile smoke);",
        "its pages are labelled synthetic, it is not medical data.",
    ]
    return "\n".join(lines)


def _download(flags: list[str], folder: Path) -> None:
    """Download missing real files with medmnist (which checks the MD5); DataError when that fails."""
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for flag in flags:
        import medmnist  # the full package only to download (its import pulls in scikit-learn)

        dataset_class = getattr(medmnist, INFO[flag]["python_class"])
        try:
            dataset_class(split="train", root=str(folder), download=True)
        except Exception as error:  # medmnist wraps every network failure in a RuntimeError
            failed.append((flag, error))
    if failed:
        error = failed[0][1]
        cause = error.__context__ or error  # medmnist re-raises without chaining; the network error is the context
        reason = f"offline or the download failed: {type(cause).__name__}: {str(cause).strip().splitlines()[0][:200]}"
        raise DataError(_missing_files_message([flag for flag, _ in failed], folder, reason))


def ensure_files(config: Config, data_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Make sure the config's `.npz` files exist: write the stand-in (synthetic) or download them (medmnist)."""
    folder = resolve_data_dir(config, data_dir)
    missing = [flag for flag in config.datasets if not (folder / f"{flag}.npz").exists()]
    if not missing:
        return folder
    if config.data_source == "synthetic":
        if is_stand_in(folder):  # damaged: rebuilding it here could silently change its size or seed
            raise DataError(f"{folder} is a synthetic stand-in missing {', '.join(f'{flag}.npz' for flag in missing)}; "
                            f"rebuild it with: {rebuild_command(folder)}")
        if any((folder / f"{flag}.npz").exists() for flag in config.datasets):
            raise DataError(f"{folder} holds some MedMNIST files but not all; refusing to mix synthetic files "
                            "into it. Choose an empty folder for the stand-in.")
        write_stand_in(folder, per_class=config.synthetic_per_class or None, seed=0, progress=progress)
        return folder
    if is_stand_in(folder):
        raise DataError(f"{folder} holds the synthetic stand-in, not real MedMNIST; use data_source=synthetic "
                        "for it, or another folder for the real files.")
    _download(missing, folder)
    return folder


def _check_array_headers(path: Path) -> None:
    """DataError when an array's header in the .npz claims more bytes than its member holds (numpy would try to
    allocate it before noticing); reads the headers only."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(member)
            claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if claimed > info.file_size:
                raise DataError(f"{path}: {info.filename} claims an array of shape {shape} ({claimed:,} bytes), more "
                                f"than the {info.file_size:,} bytes it holds; the file is corrupt. Delete it and "
                                "download it again (or rewrite the stand-in).")


def _read_npz(path: Path, flag: str) -> dict[str, np.ndarray]:
    """Every split's images and labels of one file, checked for keys, dtypes, shapes and label range."""
    try:
        _check_array_headers(path)
        with np.load(path) as npz:
            keys = set(npz.files)
            wanted = [f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")]
            absent = [k for k in wanted if k not in keys]
            if absent:
                raise DataError(f"{path} is missing the key(s) {', '.join(absent)}; it is not a MedMNIST file. "
                                "Delete it and download it again (or rewrite the stand-in).")
            arrays = {k: npz[k] for k in wanted}
    except MemoryError:  # an array header that claims more than the file holds (numpy tries to allocate it)
        raise DataError(f"{path} claims an array larger than memory; the file is corrupt. Delete it and download it "
                        "again (or rewrite the stand-in).") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DataError(f"{path} cannot be read ({type(error).__name__}: {error}); the file is corrupt or "
                        "incomplete. Delete it and download it again (or rewrite the stand-in).") from None
    rgb = INFO[flag]["n_channels"] == 3
    expected_tail = (28, 28, 3) if rgb else (28, 28)
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.shape[1:] != expected_tail:
            raise DataError(f"{path}: {split}_images has shape {images.shape} and dtype {images.dtype}; expected "
                            f"(N, {', '.join(map(str, expected_tail))}) uint8 for {flag} at 28x28.")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{path}: {split}_labels are {labels.dtype}, not integers; MedMNIST labels are class "
                            "indices (uint8). Write the file with integer labels.")
        if labels.shape != (len(images), 1):
            raise DataError(f"{path}: {split}_labels has shape {labels.shape}; expected ({len(images)}, 1).")
        k = len(INFO[flag]["label"])
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise DataError(f"{path}: {split}_labels has labels in [{labels.min()}, {labels.max()}], but {flag} has "
                            f"{k} classes (0-{k - 1}); the file is not the {flag} release.")
    return arrays


def shuffled_by_class(labels: torch.Tensor, seed: int) -> dict[int, torch.Tensor]:
    """{label: the indices of its items in one seeded random order}: the draw behind every stratified subset."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    return {int(label): order[labels[order] == label] for label in torch.unique(labels)}


def stratified_indices(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of at most `per_class` items of every label, drawn with a seeded permutation; (M,) int64."""
    chosen = [members[:per_class] for members in shuffled_by_class(labels, seed).values()]
    return torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.long)


def load_data(config: Config, data_dir: str | Path | None = None, progress: bool = True) -> MedMNISTData:
    """Load (writing or downloading if needed) and merge the config's datasets (the paper's three unless
    `config.datasets` says otherwise); subsets follow the config."""
    folder = ensure_files(config, data_dir, progress=progress)
    synthetic = is_stand_in(folder)
    if config.data_source == "medmnist" and synthetic:
        raise DataError(f"{folder} holds the synthetic stand-in; set data_source=synthetic to use it.")
    parts: dict[str, list[Split]] = {s: [] for s in SPLITS}
    files = {}
    datasets = registry(config.datasets)
    for modality, flag in enumerate(datasets.flags):
        path = folder / f"{flag}.npz"
        if not path.is_file():  # a device such as /dev/zero never ends: hashing it would hang
            raise DataError(f"{path} is not a regular file (it leads to a device, a pipe or a folder); put the "
                            f"{flag} .npz file itself there.")
        md5, expected = md5_of(path), INFO[flag]["MD5"]
        arrays = _read_npz(path, flag)
        files[flag] = FileReport(flag, str(path), md5, expected, md5 == expected,
                                 {s: int(len(arrays[f"{s}_labels"])) for s in SPLITS})
        if md5 != expected and not synthetic:
            warnings.warn(f"{path} has MD5 {md5}, not the official {expected}: a different release or a modified "
                          "file. Results may not compare with published numbers.", stacklevel=2)
        for split in SPLITS:
            images = arrays[f"{split}_images"]
            if images.ndim == 4:
                images = rgb_to_gray(images)
            labels = torch.from_numpy(arrays[f"{split}_labels"][:, 0].astype(np.int64)) + datasets.class_offsets[flag]
            parts[split].append(Split(torch.from_numpy(np.ascontiguousarray(images)), labels,
                                      torch.full_like(labels, modality)))
    merged = {}
    for split, pieces in parts.items():
        whole = Split(*(torch.cat([getattr(p, name) for p in pieces]) for name in ("images", "labels", "modalities")))
        per_class = config.train_per_class if split == "train" else config.eval_per_class
        if per_class:
            whole = whole.subset(stratified_indices(whole.labels, per_class, seed=config.seed + SPLITS.index(split)))
        merged[split] = whole
    return MedMNISTData(merged["train"], merged["val"], merged["test"], folder, synthetic, files)


def model_input(images: torch.Tensor) -> torch.Tensor:
    """(B,28,28) uint8 -> (B,1,28,28) float32 in [0,1]: what the model and the evaluator read."""
    return images.unsqueeze(1).float().div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0,1], any shape -> uint8 0-255, rounded: a generated image as MedMNIST stores one."""
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def iterate_batches(
    split: Split, batch_size: int, device: torch.device | str = "cpu", shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (images (B,1,28,28) float in [0,1], labels (B,), modalities (B,)) by indexing the resident tensors."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        images = model_input(split.images[index].to(device, non_blocking=True))
        yield images, split.labels[index].to(device), split.modalities[index].to(device)


def summary(data: MedMNISTData) -> dict:
    """Counts per dataset and split (as loaded), number of classes and MD5 agreement: the `cvae data --json` object."""
    result = {}
    for modality, flag in enumerate(data.files):  # the files were read in modality order
        entry = {}
        for split in SPLITS:
            entry[split] = int((data.split(split).modalities == modality).sum())
        entry["classes"] = len(INFO[flag]["label"])
        entry["md5_ok"] = data.files[flag].md5_ok
        result[flag] = entry
    result["global_classes"] = sum(result[flag]["classes"] for flag in data.files)
    result["synthetic"] = data.synthetic
    result["data_dir"] = str(data.data_dir)
    return result
