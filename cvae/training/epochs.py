"""One epoch of training and one of validation, and the optimizer step they share.

The data stay resident on the training device as uint8 tensors and every batch is one index into them, so no
per-sample Dataset/DataLoader work and, on a GPU, no host-device copy or host synchronisation per step: loss sums and
the count of non-finite steps stay on the device until the epoch ends. Under DistributedDataParallel every rank trains
on its shard of the epoch's permutation and the sums are reduced across ranks.
"""

from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from cvae.core.config import Config, ConfigError
from cvae.core.loss import TERMS, loss_terms
from cvae.core.model import CVAE
from cvae.data.loading import Split, model_input
from cvae.training import distributed
from cvae.training.graphed_step import SUM_KEYS, GraphedTrainStep
from cvae.training.loss_balance import BALANCE_BATCH
from cvae.training.precision import autocast

EVAL_BATCH_SIZE = 1024


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(config: Config, epoch: int) -> int:
    """The torch seed of one epoch under DDP: each rank draws its own noise and dropout masks, reproducibly."""
    return (config.seed * 1_000_003 + epoch * 10_007 + distributed.rank()) % (2**63)


def build_optimizer(model: CVAE, config: Config):
    """Adam (lr, weight decay from config; fused kernel if config.fused_adam) and ReduceLROnPlateau on the
    validation loss."""
    extra = {"fused": True} if config.fused_adam else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **extra)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
    )
    return optimizer, scheduler


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
    with autocast(images.device, amp_dtype):
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
        images = model_input(split.images[index])
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        yield images, split.labels[index], split.modalities[index]


def to_device(split: Split, device: torch.device) -> Split:
    """The split's three tensors on `device` (the split itself when they are there already)."""
    if split.images.device == device:
        return split
    return Split(split.images.to(device), split.labels.to(device), split.modalities.to(device))


def balance_batch(split: Split, config: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BALANCE_BATCH validation images spread evenly over the split (so every modality is in it), fixed per run."""
    index = torch.linspace(0, len(split) - 1, min(BALANCE_BATCH, len(split))).round().long().to(split.labels.device)
    images = model_input(split.images[index])
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, split.labels[index], split.modalities[index]


def train_epoch(model, optimizer, split: Split, config: Config, beta: float, device, generator, progress: bool,
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
    if graphed is not None:  # single device only (see train.uses_cuda_graphs)
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
    `train_epoch`, over `single_dataset_batches`."""
    if distributed.is_distributed():
        raise ConfigError("batch_composition=single trains in one process; start it without torchrun")
    batches = single_dataset_batches(split.modalities.cpu(), config.batch_size, generator)
    sums: dict[str, torch.Tensor] = {}
    nonfinite = torch.zeros((), dtype=torch.float64, device=device)
    for index in tqdm(batches, desc="  batches", leave=False, disable=not progress, unit="batch"):
        index = index.to(device)
        images = model_input(split.images[index])
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


def _validation_sums(model: CVAE, split: Split, config: Config, beta: float, device: torch.device,
                     amp_dtype: torch.dtype | None = None) -> tuple[dict[str, torch.Tensor], int]:
    """Per-key sums over a split (float64 tensors on the device; loss terms weighted by batch size, plus correct
    class/modality counts) and the number of samples, in eval mode. Synchronises with the host once, at the end."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    split = to_device(split, device)
    sums = {key: torch.zeros((), dtype=torch.float64, device=device)
            for key in (*TERMS, "total", "class_acc", "modality_acc")}
    with torch.inference_mode():
        for images, labels, modalities in resident_batches(split, None, EVAL_BATCH_SIZE, config.channels_last):
            with autocast(device, amp_dtype):
                output = model(images, labels, modalities)
                terms = loss_terms(output, images, labels, modalities, model.perceptual, config, beta)
            n = len(labels)
            for key, value in terms.items():
                sums[key] += value.double() * n
            sums["class_acc"] += (output.class_logits.argmax(1) == labels).sum()
            sums["modality_acc"] += (output.modality_logits.argmax(1) == modalities).sum()
    model.train(was_training)
    return sums, len(split)


def validate_epoch(model, split: Split, config: Config, beta: float, device, amp_dtype) -> dict[str, float]:
    """Mean loss terms and aux-head accuracies (fractions) over the split, in eval mode: over this rank's contiguous
    part of it, sums reduced across ranks (the whole split in one process)."""
    if distributed.is_distributed():
        part = torch.tensor_split(torch.arange(len(split), device=split.labels.device),
                                  distributed.world_size())[distributed.rank()]
        split = split.subset(part)
    sums, n = _validation_sums(model, split, config, beta, device, amp_dtype)
    keys = list(sums)
    values = distributed.all_reduce_sum(torch.stack([sums[k] for k in keys] +
                                                    [torch.tensor(float(n), dtype=torch.float64, device=device)]))
    values = values.tolist()
    total = values[-1]
    return {key: value / total for key, value in zip(keys, values[:-1])}
