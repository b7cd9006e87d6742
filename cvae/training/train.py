"""Training: Adam + ReduceLROnPlateau + clipping, per-epoch metrics, the kept and last checkpoints, resume, reuse.

Read top to bottom: `train` takes the run folder's lock and the CPU threads, `_train` reuses a finished run or loads
the data and resumes, `_Training` runs the epochs. Each concern has its own module: one epoch and the step
(`cvae.training.epochs`), device and precision (`precision`), reuse and resume (`resume`), what an epoch writes
(`checkpoints`), the summary (`summary`), divergence and Ctrl-C (`failures`).

Performance (see `cvae.training.bench` and the reproducibility chapter): the data stay resident on the training
device and the loss sums stay there until the epoch ends. Switches in the config: `autocast` (bf16 on CUDA and on
CPUs with native bf16 by default), `channels_last`, `compile` (reduce-overhead = CUDA graphs), `fused_adam`,
`threads` (CPU threads; 1 is fastest when other processes share the cores). Launched by `torchrun`, the loop runs
under DistributedDataParallel; only rank 0 writes.

Safety: every step adds to a device-side count of steps whose loss or gradient norm was not finite, read once per
epoch with the loss sums; a run that diverges stops at the end of that epoch, keeps its last good checkpoint and
writes `diverged.json` instead of a summary. One process trains a run folder at a time
(`cvae.training.runs.run_lock`), every file is recorded by its digest and checked on resume and reuse, and `force`
sets the old run aside until the new one has its first checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from cvae.core.config import Config
from cvae.core.loss import TERMS, beta_at
from cvae.core.model import CVAE
from cvae.data.errors import DataError
from cvae.data.loading import MedMNISTData, Split, load_data
from cvae.training import distributed
from cvae.training.checkpoints import epoch_files, kept_checkpoint, last_checkpoint
from cvae.training.epochs import (balance_batch, build_optimizer, epoch_seed, seed_everything, to_device, train_epoch,
                                  validate_epoch)
from cvae.training.failures import TrainingDiverged, divergence, divergence_record, stopped_early
from cvae.training.graphed_step import GraphedTrainStep
from cvae.training.loss_balance import balance_epochs, measure_balance
from cvae.training.precision import execution_settings, fixed_settings, select_device
from cvae.training.resume import Progress, data_record, restore, resume_state, reusable
from cvae.training.runs import (CONFIG_FILE, DIVERGED_FILE, SUMMARY_FILE, RunWriter, check_run_files, clean_temporaries,
                                discard_set_aside, diverged_message, restore_set_aside, run_dir_for, run_lock,
                                set_aside)
from cvae.training.summary import WATCHED_COLUMNS, run_summary


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
    `record_balance` measures the loss balance (`cvae.training.loss_balance`) at the epochs it names; the study's many
    small runs skip it. Under `torchrun` (WORLD_SIZE > 1) it joins the process group (gloo on CPU, nccl on CUDA) and
    trains with DDP.
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


def _train(config, data, data_dir, force, progress, run_dir, stop_after_epoch, device, record_balance=True) -> Path:
    """Reuse the finished run, or load the data, resume what was saved and train the remaining epochs."""
    main = distributed.is_main_process()
    progress = progress and main
    if not force and reusable(config, data, data_dir, run_dir):
        return run_dir
    data = _loaded_data(config, data, data_dir, progress)
    state = None if force else resume_state(config, run_dir, data)
    config, amp_dtype = fixed_settings(config, state, device, run_dir)
    training = _Training.start(config, data, device, amp_dtype, state, run_dir, progress, record_balance)
    del state
    training.aside = bool(force and main and set_aside(run_dir))
    training.writer = RunWriter(run_dir, {} if force else check_run_files(run_dir, finished=False)) if main else None
    try:
        training.write({CONFIG_FILE: json.dumps(config.replace(threads=training.execution["threads"]).to_dict(),
                                                indent=2).encode()})
        finished = training.run_epochs(stop_after_epoch)
    except BaseException as error:
        restored = training.aside and restore_set_aside(run_dir)
        replacement = stopped_early(error, run_dir, training.progress.saved_epoch, restored)
        if replacement is error:
            raise
        raise replacement from None
    if finished:
        digests = distributed.all_gather_strings(distributed.state_digest(training.model))
        graph_captures = training.graphed.captures if training.graphed is not None else None
        training.write({SUMMARY_FILE: json.dumps(run_summary(
            config, training.model, training.progress.rows, data, device, training.execution, graph_captures,
            training.started, digests), indent=2).encode()})
    distributed.barrier()  # every rank returns only once the run folder is whole
    return run_dir


def _loaded_data(config: Config, data: MedMNISTData | None, data_dir, progress: bool) -> MedMNISTData:
    """The data to train on, loaded unless given (rank 0 first: it may write the stand-in, which the others then
    read); DataError when the training or validation split is empty."""
    if data is None:
        if distributed.is_main_process():
            data = load_data(config, data_dir, progress=progress)
        distributed.barrier()
        if not distributed.is_main_process():
            data = load_data(config, data_dir, progress=False)
    else:
        distributed.barrier()
    for name, split in (("training", data.train), ("validation", data.val)):
        if len(split) == 0:
            raise DataError(f"the {name} split is empty: the files in {data.data_dir} hold no {name} images for this "
                            f"configuration (train_per_class={config.train_per_class}, eval_per_class="
                            f"{config.eval_per_class}); check those files, or rewrite the stand-in.")
    return data


def uses_cuda_graphs(config: Config, device: torch.device) -> bool:
    """Whether training replays the step as a CUDA graph: asked for, on one CUDA device, without torch.compile."""
    return (config.cuda_graphs and device.type == "cuda" and not distributed.is_distributed()
            and config.compile == "none" and config.batch_composition == "mixed")


def prepare_model(config: Config, device: torch.device):
    """The CVAE on the device (channels_last if asked), its DDP / compiled training wrapper, optimizer, scheduler."""
    model = CVAE(config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(model, config)
    trainer: torch.nn.Module = model
    if distributed.is_distributed():
        # broadcast_buffers (the default) copies rank 0's BatchNorm statistics to every rank at each forward;
        # the loop also broadcasts them after the epoch's last step, so all replicas stay identical.
        trainer = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index if device.index is not None else torch.cuda.current_device()]
            if device.type == "cuda" else None)
    if config.compile != "none":
        trainer = torch.compile(trainer, mode=None if config.compile == "default" else config.compile)
    return model, trainer, optimizer, scheduler


@dataclass
class _Training:
    """One run's training in progress: the model and its optimizer on the device, the resident splits, where it
    stands (`progress`) and where it writes (`writer`, rank 0 only)."""

    config: Config
    data: MedMNISTData
    device: torch.device
    amp_dtype: torch.dtype | None
    run_dir: Path
    show_progress: bool
    model: CVAE
    trainer: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    generator: torch.Generator
    train_split: Split
    val_split: Split
    execution: dict
    progress: Progress
    moments: dict
    graphed: GraphedTrainStep | None
    writer: RunWriter | None = None
    aside: bool = False
    started: float = 0.0

    @classmethod
    def start(cls, config, data, device, amp_dtype, state, run_dir, show_progress, record_balance) -> "_Training":
        """Everything set up in the order that makes a resumed run continue bit for bit: seeds, model, restore."""
        execution = execution_settings(config, device, amp_dtype)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        train_split, val_split = to_device(data.train, device), to_device(data.val, device)
        seed_everything(config.seed)
        model, trainer, optimizer, scheduler = prepare_model(config, device)
        generator = torch.Generator().manual_seed(config.seed)
        progress = restore(state, model, optimizer, scheduler, generator, device)
        graphed = (GraphedTrainStep(model, optimizer, train_split, config, amp_dtype)
                   if uses_cuda_graphs(config, device) else None)
        return cls(config, data, device, amp_dtype, run_dir, show_progress, model, trainer, optimizer, scheduler,
                   generator, train_split, val_split, execution, progress,
                   balance_epochs(config) if record_balance else {}, graphed)

    def write(self, files: dict[str, bytes]) -> None:
        """Write files into the run folder (rank 0; the other ranks write nothing)."""
        if self.writer is not None:
            self.writer.write(files)

    def run_epochs(self, stop_after_epoch: int | None) -> bool:
        """Train from the first unsaved epoch to the last; False when `stop_after_epoch` ended it early."""
        self.started = time.time()
        config = self.config
        epochs = tqdm(range(self.progress.start_epoch, config.epochs), desc=f"training {self.run_dir.name}",
                      unit="epoch", initial=self.progress.start_epoch, total=config.epochs,
                      disable=not self.show_progress)
        probe_batch = balance_batch(self.val_split, config)
        for epoch in epochs:
            val = self.run_epoch(epoch, probe_batch)
            epochs.set_postfix(val_total=f"{val['total']:.2f}", val_mod_acc=f"{val['modality_acc']:.2f}")
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                return False
        return True

    def run_epoch(self, epoch: int, probe_batch) -> dict[str, float]:
        """Train one epoch, validate, step the scheduler and save; returns the validation means.
        TrainingDiverged (after writing diverged.json) when a loss or gradient was not finite."""
        config, progress = self.config, self.progress
        if distributed.world_size() > 1:
            torch.manual_seed(epoch_seed(config, epoch))
        beta = beta_at(epoch, config.beta_max, config.beta_warmup_epochs, config.beta_ramp_epochs)
        if epoch in self.moments and distributed.is_main_process():  # RNG-neutral: training continues bit for bit
            progress.balance[str(epoch)] = {"moment": self.moments[epoch], "epoch": epoch, "beta": beta,
                                            "terms": measure_balance(self.model, *probe_batch, config, beta,
                                                                     config.seed)}
        tick = time.perf_counter()
        train_means, seen, bad_steps = train_epoch(self.trainer, self.optimizer, self.train_split, config, beta,
                                                   self.device, self.generator, self.show_progress, self.amp_dtype,
                                                   self.graphed)
        distributed.broadcast_buffers(self.model)  # identical BatchNorm statistics on every rank before eval and saving
        train_seconds = time.perf_counter() - tick
        steps = -(-seen // config.batch_size)
        problem = divergence(train_means, None, bad_steps, steps)
        val = None if problem else validate_epoch(self.model, self.val_split, config, beta, self.device,
                                                  self.amp_dtype)
        problem = problem or divergence(train_means, val, 0, steps)
        if problem:
            record = divergence_record(config, self.run_dir, epoch, problem, progress.saved_epoch)
            self.write({DIVERGED_FILE: json.dumps(record, indent=2).encode()})
            raise TrainingDiverged(diverged_message(record))
        lr = self.optimizer.param_groups[0]["lr"]
        at_beta_max = val["total"] + (config.beta_max - beta) * val["kl"]  # the total with beta(t) = beta_max
        row = {"epoch": epoch, "beta": beta, "lr": lr, "val_total_at_beta_max": at_beta_max}
        row.update({f"train_{k}": train_means[k] for k in (*TERMS, "total")})
        row.update({f"val_{k}": val[k] for k in (*TERMS, "total")})
        row.update({"val_class_acc": val["class_acc"], "val_modality_acc": val["modality_acc"],
                    "seconds": time.perf_counter() - tick, "train_samples_per_s": seen / train_seconds})
        progress.rows.append(row)
        self.scheduler.step(row[WATCHED_COLUMNS[config.plateau_metric]])
        self.save(epoch, row[WATCHED_COLUMNS[config.checkpoint_metric]])
        return val

    def save(self, epoch: int, watched: float) -> None:
        """Write the epoch's files (the kept checkpoint when `watched` is the lowest so far); the first checkpoint of
        a forced run lets the old run go."""
        improved = watched < self.progress.best_watched
        if improved:
            self.progress.best_watched = watched
        if distributed.is_main_process():
            kept = kept_checkpoint(self.model, self.config, epoch) if improved else None
            last = last_checkpoint(self.model, self.optimizer, self.scheduler, self.generator, self.device,
                                   self.config, epoch, self.progress, self.execution, data_record(self.data))
            self.write(epoch_files(self.progress, last, kept))
            if self.aside:  # the new run has its first checkpoint: the old one can go
                discard_set_aside(self.run_dir)
                self.aside = False
        self.progress.saved_epoch = epoch
