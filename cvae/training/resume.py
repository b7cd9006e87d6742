"""Reuse and resume: a finished run is reused and an interrupted one resumed only when its files match their digests
and it was trained on the data at hand; otherwise a one-line error says which file or which data differ."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from cvae.core.config import Config
from cvae.data.loading import MedMNISTData, md5_of, resolve_data_dir
from cvae.training.failures import TrainingDiverged
from cvae.training.runs import (DIVERGED_FILE, LAST_CHECKPOINT, LAST_KEYS, SUMMARY_FILE, RunError, check_run_files,
                                diverged_message, is_finished, read_checkpoint, read_json)


def data_record(data: MedMNISTData) -> dict:
    """What a run trains on: the MD5 of each data file and the split sizes used (after any subset)."""
    return {"md5": {flag: report.md5 for flag, report in data.files.items()},
            "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}}


def data_difference(recorded: dict, current: dict) -> str:
    """'' when the recorded data are the current ones, else what differs (file MD5s, split sizes)."""
    parts = [f"{flag}.npz has MD5 {md5} there, the run used {recorded['md5'][flag]}"
             for flag, md5 in current.get("md5", {}).items()
             if recorded.get("md5", {}).get(flag) not in (None, md5)]
    sizes = current.get("sizes")
    if sizes and recorded.get("sizes") and sizes != recorded["sizes"]:
        parts.append(f"the split sizes are {sizes} there, {recorded['sizes']} in the run")
    return "; ".join(parts)


def _check_same_data(run_dir: Path, recorded: dict, data: MedMNISTData | None, config: Config,
                     data_dir: str | Path | None) -> None:
    """RunError when the data a run recorded are not the data at hand (loaded, or the files in the data folder)."""
    if data is not None:
        folder, current = data.data_dir, data_record(data)
    else:
        folder = resolve_data_dir(config, data_dir)
        paths = [folder / f"{flag}.npz" for flag in config.datasets]
        if not all(path.is_file() for path in paths):
            return  # nothing to compare: reusing a run needs no data
        current = {"md5": {flag: md5_of(path) for flag, path in zip(config.datasets, paths)}}
    difference = data_difference(recorded, current)
    if difference:
        raise RunError(f"{run_dir} was trained on other data than {folder}: {difference}. Point --data-dir at the data "
                       "it was trained on, or retrain it on these data with --force.")


def reusable(config: Config, data: MedMNISTData | None, data_dir, run_dir: Path) -> bool:
    """True when the run folder holds a finished run that may be reused (checked); TrainingDiverged when it
    diverged; False when there is nothing finished to reuse."""
    if (run_dir / DIVERGED_FILE).exists() and not is_finished(run_dir):
        check_run_files(run_dir, finished=False)
        raise TrainingDiverged(diverged_message(read_json(run_dir / DIVERGED_FILE)))
    if not is_finished(run_dir):
        return False
    check_run_files(run_dir, finished=True)
    summary = read_json(run_dir / SUMMARY_FILE)
    recorded = {"md5": summary.get("data_md5", {}), "sizes": summary.get("sizes")}
    _check_same_data(run_dir, recorded, data, config, data_dir)
    return True


def resume_state(config: Config, run_dir: Path, data: MedMNISTData) -> dict | None:
    """The last checkpoint of an interrupted run, checked (digest, config, data); None for a new run."""
    on_disk = check_run_files(run_dir, finished=False)
    if on_disk.get(LAST_CHECKPOINT) is None:
        return None
    last = run_dir / LAST_CHECKPOINT
    state = read_checkpoint(last, LAST_KEYS)
    if Config.from_dict(state["config"]).config_hash() != config.config_hash():
        raise RunError(f"{last} belongs to another config; delete {run_dir} or choose another runs folder.")
    if state.get("data"):
        difference = data_difference(state["data"], data_record(data))
        if difference:
            raise RunError(f"{run_dir} was started on other data than {data.data_dir}: {difference}. Point --data-dir "
                           "at the data it started on, or retrain it on these data with --force.")
    return state


@dataclass
class Progress:
    """Where training stands: the metrics rows so far, the loss balance by epoch, the lowest watched validation
    loss, the first epoch to train and the epoch the last checkpoint on disk holds."""

    rows: list[dict] = field(default_factory=list)
    balance: dict[str, dict] = field(default_factory=dict)
    best_watched: float = float("inf")
    start_epoch: int = 0
    saved_epoch: int | None = None


def restore(state: dict | None, model, optimizer, scheduler, generator: torch.Generator,
            device: torch.device) -> Progress:
    """Load an interrupted run's last checkpoint into the model, optimizer, scheduler and random generators, and
    return where it stood; a fresh `Progress` for a new run."""
    if state is None:
        return Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["shuffle_rng"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
    return Progress(rows=state["metrics"], balance=state.get("balance", {}), best_watched=state["best_val"],
                    start_epoch=state["epoch"] + 1, saved_epoch=state["epoch"])
