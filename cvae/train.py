"""Training: Adam + ReduceLROnPlateau + clipping, per-epoch metrics, best/last checkpoints, resume, reuse.

Performance (see `cvae.bench` and the reproducibility chapter): the data stay resident on the training device as
uint8 tensors and every batch is one index into them, so no per-sample Dataset/DataLoader work and, on a GPU,
no host-device copy or host synchronisation per step (loss sums stay on the device until the epoch ends).
Switches in the config: `autocast` (bf16 on CUDA and on CPUs with native bf16 by default), `channels_last`,
`compile` (reduce-overhead = CUDA graphs), `fused_adam`, `threads` (CPU threads; 1 is fastest when other processes
share the cores).
Launched by `torchrun`, the loop runs under DistributedDataParallel: every rank trains on its shard of each
epoch's permutation, metric sums are reduced across ranks, only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import random
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import distributed
from .config import Config
from .data import MedMNISTData, Split, load_data
from .graphed_step import SUM_KEYS, GraphedTrainStep, portable_optimizer_state
from .loss import TERMS, beta_at, loss_terms
from .model import CVAE, count_parameters
from .runs import (BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE, SUMMARY_FILE, atomic_torch_save,
                   atomic_write_text, is_finished, run_dir_for)

EVAL_BATCH_SIZE = 1024
_SUM_KEYS = (*TERMS, "total")


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
    """Adam (lr, weight decay from config; fused kernel if config.fused_adam) and ReduceLROnPlateau on the
    validation loss."""
    extra = {"fused": True} if config.fused_adam else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **extra)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
    )
    return optimizer, scheduler


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions and matmuls natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private probe; absent or failing means "don't rely on it"
        return False


def autocast_dtype(config: Config, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype a config asks for on a device: bfloat16 for 'bf16', and for 'auto' on CUDA or on a CPU
    with native bf16; None (fp32) otherwise."""
    device = torch.device(device)
    if config.autocast == "bf16":
        return torch.bfloat16
    if config.autocast == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return torch.bfloat16
    return None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def unwrap(model: torch.nn.Module) -> CVAE:
    """The CVAE inside torch.compile's and DistributedDataParallel's wrappers (the model itself if unwrapped)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def train_step(model: CVAE, optimizer, batch, config: Config, beta: float,
               amp_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch (images, labels, modalities); returns the detached loss terms.

    `model` may be wrapped by torch.compile and/or DistributedDataParallel; `amp_dtype` (e.g. torch.bfloat16) runs
    the forward pass and the losses under autocast. No host synchronisation happens here.
    """
    images, labels, modalities = batch
    with _autocast(images.device, amp_dtype):
        output = model(images, labels, modalities)
        terms = loss_terms(output, images, labels, modalities, unwrap(model).perceptual, config, beta)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


def resident_batches(split: Split, order: torch.Tensor | None, batch_size: int,
                     channels_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (images (B,1,28,28) float in [0,1], labels, modalities) from a split already on the training device.

    `order` (on the same device) gives the sample order; None takes the split in order by slicing (no gather).
    Every batch is one index (or slice) of the resident uint8 tensors: no copy between host and device.
    """
    n = len(split) if order is None else len(order)
    for start in range(0, n, batch_size):
        if order is None:
            index = slice(start, start + batch_size)
        else:
            index = order[start : start + batch_size]
        images = split.images[index].unsqueeze(1).float().div_(255.0)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        yield images, split.labels[index], split.modalities[index]


def _to_device(split: Split, device: torch.device) -> Split:
    if split.images.device == device:
        return split
    return Split(split.images.to(device), split.labels.to(device), split.modalities.to(device))


def _evaluate_sums(model: CVAE, split: Split, config: Config, beta: float, device: torch.device,
                   amp_dtype: torch.dtype | None = None) -> tuple[dict[str, torch.Tensor], int]:
    """Per-key sums over a split (float64 tensors on the device; loss terms weighted by batch size, plus correct
    class/modality counts) and the number of samples. Synchronises with the host once, at the end."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    split = _to_device(split, device)
    sums = {key: torch.zeros((), dtype=torch.float64, device=device) for key in (*_SUM_KEYS, "class_acc",
                                                                                  "modality_acc")}
    with torch.inference_mode():
        channels_last = config.channels_last
        for images, labels, modalities in resident_batches(split, None, EVAL_BATCH_SIZE, channels_last):
            with _autocast(device, amp_dtype):
                output = model(images, labels, modalities)
                terms = loss_terms(output, images, labels, modalities, model.perceptual, config, beta)
            n = len(labels)
            for key, value in terms.items():
                sums[key] += value.double() * n
            sums["class_acc"] += (output.class_logits.argmax(1) == labels).sum()
            sums["modality_acc"] += (output.modality_logits.argmax(1) == modalities).sum()
    model.train(was_training)
    return sums, len(split)


def evaluate(model: CVAE, split: Split, config: Config, beta: float, device: torch.device) -> dict[str, float]:
    """Mean loss terms and aux-head accuracies over a split, in eval mode (BatchNorm running stats, no dropout)."""
    device = torch.device(device)
    sums, n = _evaluate_sums(model, split, config, beta, device, autocast_dtype(config, device))
    return {key: float(value) / n for key, value in sums.items()}


def _train_epoch(model, optimizer, split: Split, config: Config, beta: float, device, generator, progress: bool,
                 amp_dtype: torch.dtype | None = None,
                 graphed: GraphedTrainStep | None = None) -> tuple[dict[str, float], int]:
    """One pass over this rank's shard of a fresh permutation; returns the mean terms over all ranks' samples and
    the number of samples all ranks trained on. With `graphed`, the steps replay its CUDA graph."""
    model.train()
    order = distributed.shard_indices(torch.randperm(len(split), generator=generator)).to(device)
    total = -(-len(order) // config.batch_size)
    if graphed is not None:  # single device only (see uses_cuda_graphs)
        with tqdm(total=total, desc="  batches", leave=False, disable=not progress, unit="batch") as bar:
            sums = graphed.train_epoch(order, beta, bar).tolist()  # the epoch's one host synchronisation
        return {key: value / len(split) for key, value in zip(SUM_KEYS, sums)}, len(split)
    sums: dict[str, torch.Tensor] = {}
    batches = resident_batches(split, order, config.batch_size, config.channels_last)
    for batch in tqdm(batches, total=total, desc="  batches", leave=False, disable=not progress, unit="batch"):
        terms = train_step(model, optimizer, batch, config, beta, amp_dtype)
        n = len(batch[1])
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value * n  # stays on device: no host sync per step
    if not distributed.is_distributed():
        return {key: float(value) / len(split) for key, value in sums.items()}, len(split)
    keys = sorted(sums)
    reduced = distributed.all_reduce_sum(torch.stack([sums[k].double() for k in keys]))
    seen = len(order) * distributed.world_size()
    return {key: float(value) / seen for key, value in zip(keys, reduced.tolist())}, seen


def _validate_epoch(model, split: Split, config: Config, beta: float, device, amp_dtype) -> dict[str, float]:
    """evaluate() over this rank's contiguous part of the split, sums reduced across ranks (whole split in one
    process)."""
    if distributed.is_distributed():
        part = torch.tensor_split(torch.arange(len(split), device=split.labels.device),
                                  distributed.world_size())[distributed.rank()]
        split = split.subset(part)
    sums, n = _evaluate_sums(model, split, config, beta, device, amp_dtype)
    keys = list(sums)
    values = distributed.all_reduce_sum(torch.stack([sums[k] for k in keys] +
                                                    [torch.tensor(float(n), dtype=torch.float64, device=device)]))
    values = values.tolist()
    total = values[-1]
    return {key: value / total for key, value in zip(keys, values[:-1])}


def _environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _prepare(config: Config, device: torch.device):
    """The CVAE on the device (channels_last if asked), its DDP / compiled training wrapper, optimizer, scheduler."""
    model = CVAE(config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(model, config)
    trainer: torch.nn.Module = model
    if distributed.is_distributed():
        # broadcast_buffers (the default) copies rank 0's BatchNorm statistics to every rank at each forward;
        # _train_epoch's caller also broadcasts them after the epoch's last step, so all replicas stay identical.
        trainer = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index if device.index is not None else torch.cuda.current_device()]
            if device.type == "cuda" else None)
    if config.compile != "none":
        trainer = torch.compile(trainer, mode=None if config.compile == "default" else config.compile)
    return model, trainer, optimizer, scheduler


def uses_cuda_graphs(config: Config, device: torch.device) -> bool:
    """Whether training replays the step as a CUDA graph: asked for, on one CUDA device, without torch.compile."""
    return (config.cuda_graphs and device.type == "cuda" and not distributed.is_distributed()
            and config.compile == "none")


def _epoch_seed(config: Config, epoch: int) -> int:
    # under DDP each rank draws its own reparameterisation noise and dropout masks, reproducibly per epoch
    return (config.seed * 1_000_003 + epoch * 10_007 + distributed.rank()) % (2**63)


def train(
    config: Config, data: MedMNISTData | None = None, data_dir: str | Path | None = None,
    force: bool = False, progress: bool = True, run_dir: Path | None = None, stop_after_epoch: int | None = None,
) -> Path:
    """Train `config` into its run folder, resuming an interrupted run; reuse a finished one. Returns the folder.

    `stop_after_epoch` ends the process-level loop early without writing the summary (simulates an interruption).
    Under `torchrun` (WORLD_SIZE > 1) it joins the process group (gloo on CPU, nccl on CUDA) and trains with DDP.
    """
    device = select_device(config.device)
    created_group = distributed.init_from_env(device)
    if device.type == "cuda" and distributed.is_distributed():
        device = torch.device("cuda", distributed.local_rank())
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(config, data, data_dir, force, progress, run_dir, stop_after_epoch, device)
    finally:
        torch.set_num_threads(previous_threads)
        distributed.shutdown(created_group)


def _train(config, data, data_dir, force, progress, run_dir, stop_after_epoch, device) -> Path:
    main = distributed.is_main_process()
    world = distributed.world_size()
    progress = progress and main
    run_dir = Path(run_dir) if run_dir else run_dir_for(config)
    if is_finished(run_dir) and not force:
        return run_dir
    if force and main:
        for name in (SUMMARY_FILE, LAST_CHECKPOINT, BEST_CHECKPOINT, METRICS_FILE):
            (run_dir / name).unlink(missing_ok=True)
    if data is None:  # rank 0 first: it may write the stand-in, which the others then read
        if main:
            data = load_data(config, data_dir, progress=progress)
        distributed.barrier()
        if not main:
            data = load_data(config, data_dir, progress=False)
    else:
        distributed.barrier()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp_dtype = autocast_dtype(config, device)
    train_split, val_split = _to_device(data.train, device), _to_device(data.val, device)
    seed_everything(config.seed)
    model, trainer, optimizer, scheduler = _prepare(config, device)
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
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        rows, best_val, start_epoch = state["metrics"], state["best_val"], state["epoch"] + 1
    graphed = GraphedTrainStep(model, optimizer, train_split, config, amp_dtype) if uses_cuda_graphs(
        config, device) else None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))
    started = time.time()
    epochs = tqdm(range(start_epoch, config.epochs), desc=f"training {run_dir.name}", unit="epoch",
                  initial=start_epoch, total=config.epochs, disable=not progress)
    for epoch in epochs:
        if world > 1:
            torch.manual_seed(_epoch_seed(config, epoch))
        beta = beta_at(epoch, config.beta_max, config.beta_warmup_epochs, config.beta_ramp_epochs)
        tick = time.perf_counter()
        train_means, seen = _train_epoch(trainer, optimizer, train_split, config, beta, device, generator, progress,
                                         amp_dtype, graphed)
        distributed.broadcast_buffers(model)  # identical BatchNorm statistics on every rank before eval and saving
        train_seconds = time.perf_counter() - tick
        val = _validate_epoch(model, val_split, config, beta, device, amp_dtype)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step(val["total"])
        row = {"epoch": epoch, "beta": beta, "lr": lr}
        row.update({f"train_{k}": train_means[k] for k in (*TERMS, "total")})
        row.update({f"val_{k}": val[k] for k in (*TERMS, "total")})
        row.update({"val_class_acc": val["class_acc"], "val_modality_acc": val["modality_acc"],
                    "seconds": time.perf_counter() - tick, "train_samples_per_s": seen / train_seconds})
        rows.append(row)
        if val["total"] < best_val:
            best_val = val["total"]
            if main:
                atomic_torch_save({"model": model.state_dict(), "config": config.to_dict(), "epoch": epoch},
                                  run_dir / BEST_CHECKPOINT)
        if main:
            atomic_write_text(run_dir / METRICS_FILE, pd.DataFrame(rows).to_csv(index=False))
            atomic_torch_save({
                "model": model.state_dict(), "optimizer": portable_optimizer_state(optimizer),
                "scheduler": scheduler.state_dict(),
                "shuffle_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "config": config.to_dict(), "epoch": epoch, "metrics": rows, "best_val": best_val,
            }, last)
        epochs.set_postfix(val_total=f"{val['total']:.2f}", val_mod_acc=f"{val['modality_acc']:.2f}")
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            distributed.barrier()
            return run_dir
    digests = distributed.all_gather_strings(distributed.state_digest(model))
    if main:
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
            "world_size": world, "rank_state_digests": digests, "replicas_identical": len(set(digests)) == 1,
            "precision": "bf16-autocast" if amp_dtype == torch.bfloat16 else "fp32",
            "channels_last": config.channels_last, "compile": config.compile, "threads": torch.get_num_threads(),
            "cuda_graphs": graphed is not None, "graph_captures": graphed.captures if graphed is not None else 0,
            "peak_device_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                                      else None),
            "environment": _environment(device),
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    distributed.barrier()  # every rank returns only once the run folder is whole
    return run_dir
