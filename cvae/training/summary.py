"""The summary a finished run writes last: what it trained on, how, how long, and which epochs stood out.

Two epochs stand out and have their own names. `best_epoch` is the epoch of the lowest validation total under the
beta of its own epoch (the original's rule). `checkpoint_epoch` is the epoch of the kept checkpoint, the one every
evaluation reads: the lowest of the run's `checkpoint_metric` (by default the total at beta_max, so that epochs
compare under one KL weight)."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import torch

from cvae.core.config import Config
from cvae.core.machine import machine_record
from cvae.core.model import count_parameters
from cvae.data.loading import MedMNISTData

# the metrics.csv column that each PLATEAU_METRICS name means: what the scheduler watches (`plateau_metric`) and
# what picks the kept checkpoint (`checkpoint_metric`)
WATCHED_COLUMNS = {"total": "val_total", "total_at_beta_max": "val_total_at_beta_max"}


def run_summary(config: Config, model: torch.nn.Module, rows: list[dict], data: MedMNISTData, device: torch.device,
                execution: dict, graph_captures: int | None, started: float, rank_digests: list[str]) -> dict:
    """summary.json of a finished run; `graph_captures` is None when the step did not replay a CUDA graph."""
    metrics = pd.DataFrame(rows)
    best = metrics.loc[metrics["val_total"].idxmin()]  # the original's rule: the lowest total under beta(t)
    kept = metrics.loc[metrics[WATCHED_COLUMNS[config.checkpoint_metric]].idxmin()]
    return {
        "config_hash": config.config_hash(), "parameters": count_parameters(model), "epochs": config.epochs,
        "best_epoch": int(best["epoch"]), "best_val_total": float(best["val_total"]),
        "checkpoint_metric": config.checkpoint_metric, "checkpoint_epoch": int(kept["epoch"]),
        "final_val_total": float(metrics["val_total"].iloc[-1]),
        "train_seconds": float(metrics["seconds"].sum()), "this_session_seconds": time.time() - started,
        "median_train_samples_per_s": float(metrics["train_samples_per_s"].median()),
        "device": str(device), "synthetic_data": data.synthetic, "data_dir": str(data.data_dir),
        "data_md5": {flag: report.md5 for flag, report in data.files.items()},
        "data_md5_ok": {flag: report.md5_ok for flag, report in data.files.items()},
        "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "world_size": len(rank_digests), "rank_state_digests": rank_digests,
        "replicas_identical": len(set(rank_digests)) == 1,
        "precision": "bf16-autocast" if execution["precision"] == "bf16" else "fp32",
        "channels_last": config.channels_last, "compile": config.compile, "threads": torch.get_num_threads(),
        "cuda_graphs": graph_captures is not None, "graph_captures": graph_captures or 0,
        "execution": execution,
        "peak_device_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                                  else None),
        "environment": machine_record(device),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
