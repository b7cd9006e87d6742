"""How training stops early: a loss or gradient that is no longer finite, or Ctrl-C; each says what is kept and what
to do next."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from cvae.core.config import Config
from cvae.core.loss import TERMS, weight_settings
from cvae.training.runs import RunError


class TrainingDiverged(RunError):
    """The loss or its gradient became non-finite; the message names the epoch, what is kept and what to change."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says which epochs are saved."""


def divergence(train_means: dict, val: dict | None, bad_steps: int, steps: int) -> str:
    """'' when an epoch's numbers are finite, else what was not."""
    if bad_steps or not all(math.isfinite(value) for value in train_means.values()):
        return f"the training loss or its gradient was not finite (NaN or inf) in {max(bad_steps, 1)} of {steps} steps"
    if val is not None and not all(math.isfinite(val[key]) for key in (*TERMS, "total")):
        return f"the validation loss was {val['total']}"
    return ""


def divergence_record(config: Config, run_dir: Path, epoch: int, problem: str, last_good_epoch: int | None) -> dict:
    """What diverged.json records: the run, the epoch, what was not finite, the epoch kept and the settings to change."""
    fix = (f"Lower lr (now {config.lr:g}) or grad_clip (now {config.grad_clip:g}), or the loss weights "
           f"({weight_settings(config)}); a changed setting trains a new run.")
    return {"run": run_dir.name, "config_hash": config.config_hash(), "epoch": epoch, "what": problem,
            "last_good_epoch": last_good_epoch, "fix": fix,
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def stopped_early(error: BaseException, run_dir: Path, saved_epoch: int | None, restored: bool) -> BaseException:
    """The error to raise when training stopped on `error`: Ctrl-C names the epochs saved, a divergence says that
    the previous run is back; anything else unchanged."""
    if isinstance(error, KeyboardInterrupt):
        saved = (f"epochs 0-{saved_epoch} of {run_dir.name} are saved; rerun the same command to resume" if
                 saved_epoch is not None else f"no epoch of {run_dir.name} had finished, so none was saved")
        return TrainingInterrupted(saved + ("; the previous run is restored" if restored else "") + ".")
    if restored and isinstance(error, TrainingDiverged):
        return TrainingDiverged(f"{error} The previous run in {run_dir} is restored.")
    return error
