"""What a run folder holds after each epoch: the metrics so far, the loss balance, the last checkpoint (everything a
resume needs) and, when the watched validation loss fell, the kept checkpoint."""

from __future__ import annotations

import json

import pandas as pd
import torch

from cvae.core.config import Config
from cvae.training.graphed_step import portable_optimizer_state
from cvae.training.resume import Progress
from cvae.training.runs import KEPT_CHECKPOINT, LAST_CHECKPOINT, LOSS_BALANCE_FILE, METRICS_FILE, torch_bytes


def kept_checkpoint(model: torch.nn.Module, config: Config, epoch: int) -> bytes:
    """The checkpoint a run keeps for evaluation: the model at the epoch its `checkpoint_metric` was lowest."""
    return torch_bytes({"model": model.state_dict(), "config": config.to_dict(), "epoch": epoch})


def last_checkpoint(model, optimizer, scheduler, generator: torch.Generator, device: torch.device, config: Config,
                    epoch: int, progress: Progress, execution: dict, data: dict) -> bytes:
    """Everything a resume needs after `epoch`: weights, optimizer and scheduler, every random state, the metrics and
    loss balance so far, the execution settings the run keeps and the data it trains on."""
    return torch_bytes({
        "model": model.state_dict(), "optimizer": portable_optimizer_state(optimizer),
        "scheduler": scheduler.state_dict(),
        "shuffle_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "config": config.to_dict(), "epoch": epoch, "metrics": progress.rows, "best_val": progress.best_watched,
        "balance": progress.balance, "execution": execution, "data": data,
    })


def epoch_files(progress: Progress, last: bytes, kept: bytes | None) -> dict[str, bytes]:
    """The files one epoch writes into the run folder, by name (the kept checkpoint only when it improved)."""
    files = {KEPT_CHECKPOINT: kept} if kept is not None else {}
    files[METRICS_FILE] = pd.DataFrame(progress.rows).to_csv(index=False).encode()
    files[LOSS_BALANCE_FILE] = json.dumps(progress.balance, indent=2).encode()
    files[LAST_CHECKPOINT] = last
    return files
