"""Training: Adam + ReduceLROnPlateau + clipping, per-epoch metrics, best/last checkpoints, resume, reuse.

Performance (see `cvae.training.bench` and the reproducibility chapter): the data stay resident on the training device as
uint8 tensors and every batch is one index into them, so no per-sample Dataset/DataLoader work and, on a GPU,
no host-device copy or host synchronisation per step (loss sums stay on the device until the epoch ends).
Switches in the config: `autocast` (bf16 on CUDA and on CPUs with native bf16 by default), `channels_last`,
`compile` (reduce-overhead = CUDA graphs), `fused_adam`, `threads` (CPU threads; 1 is fastest when other processes
share the cores).
Launched by `torchrun`, the loop runs under DistributedDataParallel: every rank trains on its shard of each
epoch's permutation, metric sums are reduced across ranks, only rank 0 writes.

Safety: every step adds to a device-side count of steps whose loss or gradient norm was not finite, read once per
epoch with the loss sums; a run that diverges stops at the end of that epoch, keeps its last good checkpoint and
writes `diverged.json` instead of a summary. One process trains a run folder at a time (`cvae.training.runs.run_lock`),
every file is recorded by its digest and checked on resume and reuse, and `force` sets the old run aside until the
new one has its first checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import platform
import random
import time
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cvae.core.config import PERFORMANCE_FIELDS, Config, ConfigError
from cvae.core.labels import DATASETS
from cvae.core.loss import TERMS, beta_at, loss_terms
from cvae.core.model import CVAE, count_parameters
from cvae.data.errors import DataError
from cvae.data.loading import MedMNISTData, Split, load_data, md5_of, resolve_data_dir
from cvae.training import distributed
from cvae.training.graphed_step import SUM_KEYS, GraphedTrainStep, portable_optimizer_state
from cvae.training.loss_balance import BALANCE_BATCH, balance_epochs, measure_balance
from cvae.training.runs import (BEST_CHECKPOINT, CONFIG_FILE, DIVERGED_FILE, LAST_CHECKPOINT, LAST_KEYS,
                                LOSS_BALANCE_FILE, METRICS_FILE, SUMMARY_FILE, RunError, RunWriter, check_run_files,
                                clean_temporaries, discard_set_aside, diverged_message, is_finished, read_checkpoint,
                                read_json, restore_set_aside, run_dir_for, run_lock, set_aside, torch_bytes)

EVAL_BATCH_SIZE = 1024
# the metrics.csv column each `checkpoint_metric` minimises
CHECKPOINT_COLUMNS = {"total": "val_total", "total_at_beta_max": "val_total_at_beta_max"}
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
        raise ConfigError("device=cuda was requested but no CUDA GPU is visible; use --set device=auto or device=cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError("device=mps was requested but no Apple GPU is available; use --set device=auto or "
                          "device=cpu.")
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
               amp_dtype: torch.dtype | None = None, nonfinite: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch (images, labels, modalities); returns the detached loss terms.

    `model` may be wrapped by torch.compile and/or DistributedDataParallel; `amp_dtype` (e.g. torch.bfloat16) runs
    the forward pass and the losses under autocast. `nonfinite` (a device scalar) gets 1 added when the loss or the
    gradient norm is not finite. No host synchronisation happens here.
    """
    images, labels, modalities = batch
    with _autocast(images.device, amp_dtype):
        output = model(images, labels, modalities)
        terms = loss_terms(output, images, labels, modalities, unwrap(model).perceptual, config, beta)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    if nonfinite is not None:
        nonfinite += ~(torch.isfinite(norm) & torch.isfinite(terms["total"].detach()))
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
                 graphed: GraphedTrainStep | None = None) -> tuple[dict[str, float], int, int]:
    """One pass over this rank's shard of a fresh permutation; returns the mean terms over all ranks' samples, the
    number of samples all ranks trained on, and the number of steps (over all ranks) whose loss or gradient norm was
    not finite. With `graphed`, the steps replay its CUDA graph."""
    model.train()
    if config.batch_composition == "single":
        return _train_epoch_single(model, optimizer, split, config, beta, device, generator, progress, amp_dtype)
    order = distributed.shard_indices(torch.randperm(len(split), generator=generator)).to(device)
    total = -(-len(order) // config.batch_size)
    if graphed is not None:  # single device only (see uses_cuda_graphs)
        with tqdm(total=total, desc="  batches", leave=False, disable=not progress, unit="batch") as bar:
            sums = graphed.train_epoch(order, beta, bar)
            *sums, bad = torch.cat([sums, graphed.nonfinite.view(1)]).tolist()  # the epoch's one host sync
        return {key: value / len(split) for key, value in zip(SUM_KEYS, sums)}, len(split), int(bad)
    sums: dict[str, torch.Tensor] = {}
    nonfinite = torch.zeros((), dtype=torch.float64, device=device)
    batches = resident_batches(split, order, config.batch_size, config.channels_last)
    for batch in tqdm(batches, total=total, desc="  batches", leave=False, disable=not progress, unit="batch"):
        terms = train_step(model, optimizer, batch, config, beta, amp_dtype, nonfinite)
        n = len(batch[1])
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value * n  # stays on device: no host sync per step
    keys = sorted(sums)
    reduced = distributed.all_reduce_sum(torch.stack([sums[k].double() for k in keys] + [nonfinite])).tolist()
    seen = len(order) * distributed.world_size()
    return {key: value / seen for key, value in zip(keys, reduced)}, seen, int(reduced[-1])


def _train_epoch_single(model, optimizer, split: Split, config: Config, beta: float, device, generator,
                        progress: bool, amp_dtype) -> tuple[dict[str, float], int, int]:
    """One epoch of single-dataset batches (`batch_composition="single"`, one process): the same step as
    `_train_epoch`, over `single_dataset_batches`."""
    if distributed.is_distributed():
        raise ConfigError("batch_composition=single trains in one process; start it without torchrun")
    batches = single_dataset_batches(split.modalities.cpu(), config.batch_size, generator)
    sums: dict[str, torch.Tensor] = {}
    nonfinite = torch.zeros((), dtype=torch.float64, device=device)
    for index in tqdm(batches, desc="  batches", leave=False, disable=not progress, unit="batch"):
        index = index.to(device)
        images = split.images[index].unsqueeze(1).float().div_(255.0)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        terms = train_step(model, optimizer, (images, split.labels[index], split.modalities[index]), config, beta,
                           amp_dtype, nonfinite)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value * len(index)
    return {key: float(value) / len(split) for key, value in sums.items()}, len(split), int(nonfinite)


def single_dataset_batches(modalities: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The index tensors (B,) of one epoch of single-dataset batches: each dataset's images in their own random order,
    cut into batches (its last one shorter), then all batches in random order: as a loader per dataset, or one
    concatenated dataset read without a shuffle across datasets, would feed them."""
    batches = []
    for modality in torch.unique(modalities).tolist():
        members = torch.nonzero(modalities == modality).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        batches += list(torch.split(members, batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


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
            and config.compile == "none" and config.batch_composition == "mixed")


def _balance_batch(split: Split, config: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BALANCE_BATCH validation images spread evenly over the split (so every modality is in it), fixed per run."""
    index = torch.linspace(0, len(split) - 1, min(BALANCE_BATCH, len(split))).round().long().to(split.labels.device)
    images = split.images[index].unsqueeze(1).float().div(255.0)
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, split.labels[index], split.modalities[index]


def _epoch_seed(config: Config, epoch: int) -> int:
    # under DDP each rank draws its own reparameterisation noise and dropout masks, reproducibly per epoch
    return (config.seed * 1_000_003 + epoch * 10_007 + distributed.rank()) % (2**63)


class TrainingDiverged(RunError):
    """The loss or its gradient became non-finite; the message names the epoch, what is kept and what to change."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says which epochs are saved."""


# Every performance switch changes the bits an epoch computes, so a run keeps the ones it started with and a resume
# uses them whatever it is asked: channels_last picks other convolution kernels, threads splits the CPU reductions
# differently, fused_adam updates the weights in another order, compile fuses and reorders operations, and
# cuda_graphs draws its noise from captured kernels. The precision "auto" resolves per machine, so the dtype used is
# kept too. The device is recorded; a resume on another one is allowed (checkpoints are portable) and said.
FIXED_AT_START = PERFORMANCE_FIELDS


def execution_settings(config: Config, device: torch.device, amp_dtype: torch.dtype | None) -> dict:
    """How a run executes (fixed at its start): the performance switches, the CPU threads actually used, the
    precision and the device type."""
    settings = {name: getattr(config, name) for name in FIXED_AT_START}
    settings.update(threads=torch.get_num_threads(), precision="bf16" if amp_dtype == torch.bfloat16 else "fp32",
                    device=device.type)
    return settings


def data_record(data: MedMNISTData) -> dict:
    """What a run trains on: the MD5 of each data file and the split sizes used (after any subset)."""
    return {"md5": {flag: report.md5 for flag, report in data.files.items()},
            "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}}


def _data_difference(recorded: dict, current: dict) -> str:
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
        paths = [folder / f"{flag}.npz" for flag in DATASETS]
        if not all(path.is_file() for path in paths):
            return  # nothing to compare: reusing a run needs no data
        current = {"md5": {flag: md5_of(path) for flag, path in zip(DATASETS, paths)}}
    difference = _data_difference(recorded, current)
    if difference:
        raise RunError(f"{run_dir} was trained on other data than {folder}: {difference}. Point --data-dir at the data "
                       "it was trained on, or retrain it on these data with --force.")


def _summary_data(summary: dict) -> dict:
    return {"md5": summary.get("data_md5", {}), "sizes": summary.get("sizes")}


def train(
    config: Config, data: MedMNISTData | None = None, data_dir: str | Path | None = None,
    force: bool = False, progress: bool = True, run_dir: Path | None = None, stop_after_epoch: int | None = None,
    record_balance: bool = True,
) -> Path:
    """Train `config` into its run folder, resuming an interrupted run; reuse a finished one. Returns the folder.

    A finished or interrupted run is used only when every file matches its recorded digest and the data match the
    ones it recorded (RunError naming the file otherwise). `force` retrains, keeping the old run aside until the new
    one has its first checkpoint. A run that diverges raises TrainingDiverged (and says so again when rerun).
    `stop_after_epoch` ends the process-level loop early without writing the summary (simulates an interruption).
    `record_balance` measures the loss balance (`cvae.training.loss_balance`) at the epochs it names; the study's many small
    runs skip it. Under `torchrun` (WORLD_SIZE > 1) it joins the process group (gloo on CPU, nccl on CUDA) and trains with DDP.
    """
    device = select_device(config.device)
    created_group = distributed.init_from_env(device)
    if device.type == "cuda" and distributed.is_distributed():
        device = torch.device("cuda", distributed.local_rank())
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(run_dir) if run_dir else run_dir_for(config)
    try:
        with run_lock(run_dir) if distributed.is_main_process() else contextlib.nullcontext():
            if distributed.is_main_process():
                clean_temporaries(run_dir)
                restore_set_aside(run_dir)  # a forced run killed before its first checkpoint: the old run is back
            distributed.barrier()
            return _train(config, data, data_dir, force, progress, run_dir, stop_after_epoch, device,
                          record_balance)
    finally:
        torch.set_num_threads(previous_threads)
        distributed.shutdown(created_group)


def _reuse_or_refuse(config, data, data_dir, run_dir: Path) -> bool:
    """True when the run folder holds a finished run that may be reused (checked); TrainingDiverged when it
    diverged; False when there is nothing finished to reuse."""
    if (run_dir / DIVERGED_FILE).exists() and not is_finished(run_dir):
        check_run_files(run_dir, finished=False)
        raise TrainingDiverged(diverged_message(read_json(run_dir / DIVERGED_FILE)))
    if not is_finished(run_dir):
        return False
    check_run_files(run_dir, finished=True)
    _check_same_data(run_dir, _summary_data(read_json(run_dir / SUMMARY_FILE)), data, config, data_dir)
    return True


def _resume_state(config: Config, run_dir: Path, data: MedMNISTData, device: torch.device) -> dict | None:
    """The last checkpoint of an interrupted run, checked (digest, config, data); None for a new run."""
    on_disk = check_run_files(run_dir, finished=False)
    if on_disk.get(LAST_CHECKPOINT) is None:
        return None
    last = run_dir / LAST_CHECKPOINT
    state = read_checkpoint(last, LAST_KEYS)
    if Config.from_dict(state["config"]).config_hash() != config.config_hash():
        raise RunError(f"{last} belongs to another config; delete {run_dir} or choose another runs folder.")
    if state.get("data"):
        difference = _data_difference(state["data"], data_record(data))
        if difference:
            raise RunError(f"{run_dir} was started on other data than {data.data_dir}: {difference}. Point --data-dir "
                           "at the data it started on, or retrain it on these data with --force.")
    return state


def _fixed_settings(config: Config, state: dict | None, device: torch.device,
                    run_dir: Path) -> tuple[Config, torch.dtype | None]:
    """The config and autocast dtype to train with: a resumed run keeps the execution settings it started with
    (a warning says which differ from this command's)."""
    amp_dtype = autocast_dtype(config, device)
    started = (state or {}).get("execution")
    if not started:  # a new run (or one from before runs recorded this): what this command asks, threads counted
        return config.replace(threads=torch.get_num_threads()), amp_dtype
    asked = execution_settings(config, device, amp_dtype)
    changed = {key: (value, asked[key]) for key, value in started.items() if asked.get(key) != value}
    if changed:
        listed = ", ".join(f"{key}={value} (this command: {now})" for key, (value, now) in changed.items())
        moved = (" Its remaining epochs run on another device, so they will not be bit-identical to an uninterrupted "
                 "run." if "device" in changed else "")
        warnings.warn(f"{run_dir.name} resumes with the settings it started with: {listed}; they change the numbers, "
                      f"so a run keeps them.{moved}", stacklevel=3)
    config = config.replace(**{name: started[name] for name in FIXED_AT_START})
    torch.set_num_threads(started["threads"])
    return config, (torch.bfloat16 if started["precision"] == "bf16" else None)


def _divergence(train_means: dict, val: dict | None, bad_steps: int, steps: int) -> str:
    """'' when an epoch's numbers are finite, else what was not."""
    if bad_steps or not all(math.isfinite(value) for value in train_means.values()):
        return f"the training loss or its gradient was not finite (NaN or inf) in {max(bad_steps, 1)} of {steps} steps"
    if val is not None and not all(math.isfinite(val[key]) for key in (*TERMS, "total")):
        return f"the validation loss was {val['total']}"
    return ""


def _fix_for_divergence(config: Config) -> str:
    return (f"Lower lr (now {config.lr:g}) or grad_clip (now {config.grad_clip:g}), or the loss weights (a_mse "
            f"{config.a_mse:g}, a_l1 {config.a_l1:g}, a_perc {config.a_perc:g}, beta_max {config.beta_max:g}, gamma "
            f"{config.gamma:g}); a changed setting trains a new run.")


def _train(config, data, data_dir, force, progress, run_dir, stop_after_epoch, device, record_balance=True) -> Path:
    main = distributed.is_main_process()
    world = distributed.world_size()
    progress = progress and main
    if not force and _reuse_or_refuse(config, data, data_dir, run_dir):
        return run_dir
    if data is None:  # rank 0 first: it may write the stand-in, which the others then read
        if main:
            data = load_data(config, data_dir, progress=progress)
        distributed.barrier()
        if not main:
            data = load_data(config, data_dir, progress=False)
    else:
        distributed.barrier()
    for name, split in (("training", data.train), ("validation", data.val)):
        if len(split) == 0:
            raise DataError(f"the {name} split is empty: the files in {data.data_dir} hold no {name} images for this "
                            f"configuration (train_per_class={config.train_per_class}, eval_per_class="
                            f"{config.eval_per_class}); check those files, or rewrite the stand-in.")
    state = None if force else _resume_state(config, run_dir, data, device)
    config, amp_dtype = _fixed_settings(config, state, device, run_dir)
    execution = execution_settings(config, device, amp_dtype)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    train_split, val_split = _to_device(data.train, device), _to_device(data.val, device)
    seed_everything(config.seed)
    model, trainer, optimizer, scheduler = _prepare(config, device)
    generator = torch.Generator().manual_seed(config.seed)
    rows: list[dict] = []
    balance: dict[str, dict] = {}  # 0-based epoch -> the loss balance measured at its start (cvae.training.loss_balance)
    moments = balance_epochs(config) if record_balance else {}
    probe_batch = _balance_batch(val_split, config)
    best_val = float("inf")
    start_epoch = 0
    saved_epoch = None  # the epoch the last checkpoint on disk holds
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        rows, best_val, start_epoch = state["metrics"], state["best_val"], state["epoch"] + 1
        balance = state.get("balance", {})
        saved_epoch = state["epoch"]
    del state
    graphed = GraphedTrainStep(model, optimizer, train_split, config, amp_dtype) if uses_cuda_graphs(
        config, device) else None
    aside = bool(force and main and set_aside(run_dir))
    writer = RunWriter(run_dir, {} if force else check_run_files(run_dir, finished=False)) if main else None
    try:
        if main:
            writer.write({CONFIG_FILE: json.dumps(config.replace(threads=execution["threads"]).to_dict(),
                                                  indent=2).encode()})
        started = time.time()
        epochs = tqdm(range(start_epoch, config.epochs), desc=f"training {run_dir.name}", unit="epoch",
                      initial=start_epoch, total=config.epochs, disable=not progress)
        for epoch in epochs:
            if world > 1:
                torch.manual_seed(_epoch_seed(config, epoch))
            beta = beta_at(epoch, config.beta_max, config.beta_warmup_epochs, config.beta_ramp_epochs)
            if epoch in moments and main:  # RNG-neutral: training continues bit for bit as without it
                balance[str(epoch)] = {"moment": moments[epoch], "epoch": epoch, "beta": beta,
                                       "terms": measure_balance(model, *probe_batch, config, beta, config.seed)}
            tick = time.perf_counter()
            train_means, seen, bad_steps = _train_epoch(trainer, optimizer, train_split, config, beta, device,
                                                        generator, progress, amp_dtype, graphed)
            distributed.broadcast_buffers(model)  # identical BatchNorm statistics on every rank before eval and saving
            train_seconds = time.perf_counter() - tick
            steps = -(-seen // config.batch_size)
            problem = _divergence(train_means, None, bad_steps, steps)
            val = None if problem else _validate_epoch(model, val_split, config, beta, device, amp_dtype)
            problem = problem or _divergence(train_means, val, 0, steps)
            if problem:
                record = {"run": run_dir.name, "config_hash": config.config_hash(), "epoch": epoch, "what": problem,
                          "last_good_epoch": saved_epoch, "fix": _fix_for_divergence(config),
                          "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
                if main:
                    writer.write({DIVERGED_FILE: json.dumps(record, indent=2).encode()})
                raise TrainingDiverged(diverged_message(record))
            lr = optimizer.param_groups[0]["lr"]
            at_beta_max = val["total"] + (config.beta_max - beta) * val["kl"]  # the total with beta(t) = beta_max
            watched = {"total": val["total"], "total_at_beta_max": at_beta_max}  # by PLATEAU_METRICS name
            scheduler.step(watched[config.plateau_metric])
            row = {"epoch": epoch, "beta": beta, "lr": lr, "val_total_at_beta_max": at_beta_max}
            row.update({f"train_{k}": train_means[k] for k in (*TERMS, "total")})
            row.update({f"val_{k}": val[k] for k in (*TERMS, "total")})
            row.update({"val_class_acc": val["class_acc"], "val_modality_acc": val["modality_acc"],
                        "seconds": time.perf_counter() - tick, "train_samples_per_s": seen / train_seconds})
            rows.append(row)
            files = {}
            if watched[config.checkpoint_metric] < best_val:
                best_val = watched[config.checkpoint_metric]
                if main:
                    files[BEST_CHECKPOINT] = torch_bytes({"model": model.state_dict(), "config": config.to_dict(),
                                                          "epoch": epoch})
            if main:
                files[METRICS_FILE] = pd.DataFrame(rows).to_csv(index=False).encode()
                files[LOSS_BALANCE_FILE] = json.dumps(balance, indent=2).encode()
                files[LAST_CHECKPOINT] = torch_bytes({
                    "model": model.state_dict(), "optimizer": portable_optimizer_state(optimizer),
                    "scheduler": scheduler.state_dict(),
                    "shuffle_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "config": config.to_dict(), "epoch": epoch, "metrics": rows, "best_val": best_val,
                    "balance": balance, "execution": execution, "data": data_record(data),
                })
                writer.write(files)
                if aside:  # the new run has its first checkpoint: the old one can go
                    discard_set_aside(run_dir)
                    aside = False
            saved_epoch = epoch
            epochs.set_postfix(val_total=f"{val['total']:.2f}", val_mod_acc=f"{val['modality_acc']:.2f}")
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                distributed.barrier()
                return run_dir
    except BaseException as error:
        restored = aside and restore_set_aside(run_dir)
        if isinstance(error, KeyboardInterrupt):
            saved = (f"epochs 0-{saved_epoch} of {run_dir.name} are saved; rerun the same command to resume" if
                     saved_epoch is not None else f"no epoch of {run_dir.name} had finished, so none was saved")
            raise TrainingInterrupted(saved + ("; the previous run is restored" if restored else "") + ".") from None
        if restored and isinstance(error, TrainingDiverged):
            raise TrainingDiverged(f"{error} The previous run in {run_dir} is restored.") from None
        raise
    digests = distributed.all_gather_strings(distributed.state_digest(model))
    if main:
        metrics = pd.DataFrame(rows)
        best = metrics.loc[metrics["val_total"].idxmin()]  # the original's rule: the lowest total under beta(t)
        kept = metrics.loc[metrics[CHECKPOINT_COLUMNS[config.checkpoint_metric]].idxmin()]
        summary = {
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
            "world_size": world, "rank_state_digests": digests, "replicas_identical": len(set(digests)) == 1,
            "precision": "bf16-autocast" if amp_dtype == torch.bfloat16 else "fp32",
            "channels_last": config.channels_last, "compile": config.compile, "threads": torch.get_num_threads(),
            "cuda_graphs": graphed is not None, "graph_captures": graphed.captures if graphed is not None else 0,
            "execution": execution,
            "peak_device_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                                      else None),
            "environment": _environment(device),
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        writer.write({SUMMARY_FILE: json.dumps(summary, indent=2).encode()})
    distributed.barrier()  # every rank returns only once the run folder is whole
    return run_dir
