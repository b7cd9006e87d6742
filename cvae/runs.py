"""Run folders: one per config hash, written atomically, read back as a `Run`."""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .config import Config
from .model import CVAE
from .paths import runs_dir

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
LAST_CHECKPOINT = "checkpoint_last.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"
SUMMARY_FILE = "summary.json"  # written last: its presence means the run finished


class RunError(RuntimeError):
    """A run folder is missing, unfinished or unreadable; the message says what to do."""


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save, atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def run_dir_for(config: Config) -> Path:
    """The folder a config trains into: <runs>/run-<config hash>."""
    return runs_dir() / f"run-{config.config_hash()}"


def is_finished(run_dir: Path) -> bool:
    """True when the run wrote its summary (all epochs done, checkpoints in place)."""
    return (Path(run_dir) / SUMMARY_FILE).exists()


@dataclass
class Run:
    """A finished run read back: its folder, config, per-epoch metrics and summary."""

    path: Path
    config: Config
    metrics: pd.DataFrame
    summary: dict

    def model(self, which: str = "best", device: str | torch.device = "cpu") -> CVAE:
        """The CVAE with the 'best' (lowest validation loss) or 'last' weights, in eval mode."""
        name = {"best": BEST_CHECKPOINT, "last": LAST_CHECKPOINT}[which]
        checkpoint = torch.load(self.path / name, map_location=device, weights_only=False)
        model = CVAE(Config.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["model"])
        return model.to(device).eval()


def load_run(run_dir: str | Path) -> Run:
    """Read a finished run folder; RunError if it is missing or unfinished."""
    path = Path(run_dir)
    if not path.exists():
        raise RunError(f"run folder {path} does not exist; train it first (python -m cvae train ...).")
    if not is_finished(path):
        raise RunError(f"run {path} has not finished; rerun the same training command to resume it.")
    config = Config.from_dict(json.loads((path / CONFIG_FILE).read_text()))
    metrics = pd.read_csv(path / METRICS_FILE)
    summary = json.loads((path / SUMMARY_FILE).read_text())
    return Run(path, config, metrics, summary)
