"""Training: Adam + ReduceLROnPlateau + clipping, per-epoch metrics, best/last checkpoints, resume, reuse."""

from __future__ import annotations

import datetime as dt
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .config import Config
from .data import MedMNISTData, Split, iterate_batches, load_data
from .loss import TERMS, beta_at, loss_terms
from .model import CVAE, count_parameters
from .runs import (BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE, SUMMARY_FILE, atomic_torch_save,
                   atomic_write_text, is_finished, run_dir_for)


def select_device(name: str = "auto") -> torch.device:
    """torch.device for 'cpu', 'cuda', 'mps', or 'auto' (cuda, then mps, then cpu)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but no CUDA GPU is visible; use device=auto or device=cpu.")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(model: CVAE, config: Config):
    """Adam (lr, weight decay from config) and ReduceLROnPlateau on the validation loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
    )
    return optimizer, scheduler


def train_step(model: CVAE, optimizer, batch, config: Config, beta: float) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch (images, labels, modalities); returns the detached loss terms."""
    images, labels, modalities = batch
    output = model(images, labels, modalities)
    terms = loss_terms(output, images, labels, modalities, model.perceptual, config, beta)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


@torch.inference_mode()
def evaluate(model: CVAE, split: Split, config: Config, beta: float, device: torch.device) -> dict[str, float]:
    """Mean loss terms and aux-head accuracies over a split, in eval mode (BatchNorm running stats, no dropout)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    correct_class = correct_modality = 0
    for images, labels, modalities in iterate_batches(split, 1024, device):
        output = model(images, labels, modalities)
        terms = loss_terms(output, images, labels, modalities, model.perceptual, config, beta)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(labels)
        correct_class += int((output.class_logits.argmax(1) == labels).sum())
        correct_modality += int((output.modality_logits.argmax(1) == modalities).sum())
    model.train(was_training)
    n = len(split)
    result = {key: value / n for key, value in sums.items()}
    result["class_acc"] = correct_class / n
    result["modality_acc"] = correct_modality / n
    return result


def _train_epoch(model, optimizer, split: Split, config: Config, beta: float, device, generator, progress: bool):
    model.train()
    sums: dict[str, torch.Tensor] = {}
    batches = iterate_batches(split, config.batch_size, device, shuffle=True, generator=generator)
    total = -(-len(split) // config.batch_size)
    for batch in tqdm(batches, total=total, desc="  batches", leave=False, disable=not progress, unit="batch"):
        terms = train_step(model, optimizer, batch, config, beta)
        n = len(batch[1])
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value * n  # stays on device: no host sync per step
    return {key: float(value) / len(split) for key, value in sums.items()}


def _environment() -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


def train(
    config: Config, data: MedMNISTData | None = None, data_dir: str | Path | None = None,
    force: bool = False, progress: bool = True, run_dir: Path | None = None, stop_after_epoch: int | None = None,
) -> Path:
    """Train `config` into its run folder, resuming an interrupted run; reuse a finished one. Returns the folder.

    `stop_after_epoch` ends the process-level loop early without writing the summary (simulates an interruption).
    """
    run_dir = Path(run_dir) if run_dir else run_dir_for(config)
    if is_finished(run_dir) and not force:
        return run_dir
    if force:
        for name in (SUMMARY_FILE, LAST_CHECKPOINT, BEST_CHECKPOINT, METRICS_FILE):
            (run_dir / name).unlink(missing_ok=True)
    data = data or load_data(config, data_dir, progress=progress)
    device = select_device(config.device)
    seed_everything(config.seed)
    model = CVAE(config).to(device)
    optimizer, scheduler = build_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    rows: list[dict] = []
    best_val = float("inf")
    start_epoch = 0
    last = run_dir / LAST_CHECKPOINT
    if last.exists():
        state = torch.load(last, map_location=device, weights_only=False)
        if state["config"] != config.to_dict() and Config.from_dict(state["config"]).config_hash() != config.config_hash():
            raise RuntimeError(f"{last} belongs to another config; delete {run_dir} or choose another runs folder.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        rows, best_val, start_epoch = state["metrics"], state["best_val"], state["epoch"] + 1
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))
    started = time.time()
    epochs = tqdm(range(start_epoch, config.epochs), desc=f"training {run_dir.name}", unit="epoch",
                  initial=start_epoch, total=config.epochs, disable=not progress)
    for epoch in epochs:
        beta = beta_at(epoch, config.beta_max, config.beta_warmup_epochs, config.beta_ramp_epochs)
        tick = time.perf_counter()
        train_means = _train_epoch(model, optimizer, data.train, config, beta, device, generator, progress)
        train_seconds = time.perf_counter() - tick
        val = evaluate(model, data.val, config, beta, device)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step(val["total"])
        row = {"epoch": epoch, "beta": beta, "lr": lr}
        row.update({f"train_{k}": train_means[k] for k in (*TERMS, "total")})
        row.update({f"val_{k}": val[k] for k in (*TERMS, "total")})
        row.update({"val_class_acc": val["class_acc"], "val_modality_acc": val["modality_acc"],
                    "seconds": time.perf_counter() - tick, "train_samples_per_s": len(data.train) / train_seconds})
        rows.append(row)
        if val["total"] < best_val:
            best_val = val["total"]
            atomic_torch_save({"model": model.state_dict(), "config": config.to_dict(), "epoch": epoch},
                              run_dir / BEST_CHECKPOINT)
        atomic_write_text(run_dir / METRICS_FILE, pd.DataFrame(rows).to_csv(index=False))
        atomic_torch_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "shuffle_rng": generator.get_state(), "torch_rng": torch.get_rng_state(), "config": config.to_dict(),
            "epoch": epoch, "metrics": rows, "best_val": best_val,
        }, last)
        epochs.set_postfix(val_total=f"{val['total']:.2f}", val_mod_acc=f"{val['modality_acc']:.2f}")
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return run_dir
    metrics = pd.DataFrame(rows)
    best = metrics.loc[metrics["val_total"].idxmin()]
    summary = {
        "config_hash": config.config_hash(), "parameters": count_parameters(model), "epochs": config.epochs,
        "best_epoch": int(best["epoch"]), "best_val_total": float(best["val_total"]),
        "final_val_total": float(metrics["val_total"].iloc[-1]),
        "train_seconds": float(metrics["seconds"].sum()), "this_session_seconds": time.time() - started,
        "median_train_samples_per_s": float(metrics["train_samples_per_s"].median()),
        "device": str(device), "synthetic_data": data.synthetic, "data_dir": str(data.data_dir),
        "data_md5": {flag: report.md5 for flag, report in data.files.items()},
        "data_md5_ok": {flag: report.md5_ok for flag, report in data.files.items()},
        "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "environment": _environment(), "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    return run_dir
