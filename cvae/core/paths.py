"""Where things live: the data folder, the run folders (each movable by an environment variable), and what a file
there holds (its digest)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cvae.core.medmnist_info import DEFAULT_ROOT as MEDMNIST_DEFAULT_ROOT

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # cvae/core/paths.py -> the repository
DATA_DIR_ENV = "CVAE_DATA_DIR"  # overrides the data folder for every profile
RUNS_DIR_ENV = "CVAE_RUNS_DIR"  # overrides where run folders are written

# The files of a run folder: `cvae.training.runs` writes them, `cvae.evaluation.run_evaluation` caches its numbers
# beside them, and the book and the archive read them by these names without importing either.
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
LAST_CHECKPOINT = "checkpoint_last.pt"
KEPT_CHECKPOINT = "checkpoint_best.pt"  # the kept epoch's weights (`Run.kept_epoch`); the name predates "kept"
SUMMARY_FILE = "summary.json"  # written last: its presence means the run finished
DIVERGED_FILE = "diverged.json"  # written instead of the summary when the loss or its gradient became non-finite
DIGESTS_FILE = "digests.json"  # {file name: [SHA-256 of its newest content, of the content it replaces or null]}
LOSS_BALANCE_FILE = "loss_balance.json"  # each weighted term's share of the loss and of the gradient
EVALUATION_FILE = "evaluation.json"  # the main run's cached evaluation
VARIANT_METRICS_FILE = "variant_metrics.json"  # a study run's cached measurement


def runs_dir() -> Path:
    """Folder that holds one sub-folder per trained config (default: <project>/runs)."""
    return Path(os.environ.get(RUNS_DIR_ENV) or PROJECT_ROOT / "runs")


def default_data_dir(data_source: str, synthetic_per_class: int = 300) -> Path:
    """The data folder used when neither the config nor the caller names one.

    Real MedMNIST goes where medmnist puts it (~/.medmnist); the synthetic stand-in never shares that folder,
    so fake files can never be mistaken for downloaded ones.
    """
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    if data_source == "synthetic":
        size = "official" if synthetic_per_class == 0 else f"{synthetic_per_class}pc"
        return PROJECT_ROOT / "data" / f"synthetic-{size}"
    return Path(MEDMNIST_DEFAULT_ROOT).expanduser()


_DIGESTS: dict[tuple, str] = {}


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest ('md5', 'sha256', any hashlib name) of a file, read in 1 MiB blocks; remembered in this process
    while the file's inode, size and mtime stay the same."""
    stat = os.stat(path)
    key = (algorithm, str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.new(algorithm)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def source_digest(modules: tuple[str, ...]) -> str:
    """16-hex-digit SHA-256 of the named `cvae` modules' source files ("evaluation.inference" is
    cvae/evaluation/inference.py): a cache keyed by it is recomputed whenever the code that made it changes, without a
    version number to bump by hand."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode())
        digest.update((PROJECT_ROOT / "cvae" / (name.replace(".", "/") + ".py")).read_bytes())
    return digest.hexdigest()[:16]


def json_digest(values: dict) -> str:
    """SHA-256 of a JSON-ready dict written canonically (sorted keys): the self-digest of a cached result."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
