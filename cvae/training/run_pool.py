"""Training several runs at once: one process per CPU core, one thread each.

A small model at batch 256 does not keep two cores busy: on the 2-core AMD EPYC measured, two one-thread runs side by
side trained 1.25-1.28x the samples per second of one run on two threads (`python -m cvae bench --json`,
`side_by_side_speedup`). Stacking four models in one process with `torch.func.vmap` was slower there
(`stacked_speedup` 0.53), so the study trains its runs side by side instead. Each run is the ordinary cached run of `cvae.training.train.train`:
its own seed, initialisation, data order and optimizer state, the same run folder, resumable alone. Its one training
thread is recorded in its config and summary like any other thread count; it changes the order of the CPU's
reductions, so the numbers equal those of the same run trained alone on one thread, not on two.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable

import torch

from cvae.core.config import Config
from cvae.core.model import CVAE, count_parameters
from cvae.core.progress import tqdm
from cvae.data.loading import ensure_files
from cvae.training.runs import is_finished, run_dir_for

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
# profiles whose study runs are too short to pay for starting a process (a few seconds each on two cores)
SEQUENTIAL_PROFILES = ("smoke",)


def default_workers(profile: str | None = None) -> int:
    """How many runs a study trains at once: one per thread torch would use (its CPU cores), 1 for SEQUENTIAL_PROFILES."""
    return 1 if profile in SEQUENTIAL_PROFILES else max(1, torch.get_num_threads())


def expected_cost(config: Config) -> float:
    """A run's training cost in arbitrary units (epochs x training images per class x parameters), to start the
    longest runs first so that the last one to finish is short."""
    return config.epochs * max(config.train_per_class, 1) * count_parameters(CVAE(config))


def _die_with_parent() -> None:
    """Worker initializer: on Linux, have the kernel stop this worker when the process that started it dies. A build
    stopped by its process ID would otherwise leave its workers training, and the next build would find those runs
    locked; stopped, a run resumes from its last checkpoint."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux: workers then finish their run as before
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _train_alone(config_dict: dict, record_balance: bool) -> str:
    from cvae.training.train import train  # imported in the worker: it starts with a fresh interpreter

    config = Config.from_dict(config_dict)
    return str(train(config, progress=False, record_balance=record_balance))


def train_together(configs: Iterable[Config], workers: int, record_balance: bool = False,
                   progress: bool = True, trainer: Callable[[dict, bool], str] = _train_alone) -> list[Path]:
    """Train every unfinished run of `configs` (deduplicated by config hash) `workers` at a time, each in its own
    process on one thread (in this process, one after another, when `workers` is 1); returns their run folders in
    the order given. When a run fails, the runs not yet started are cancelled, those running finish, and the error
    is raised here. Workers stop when this process dies (`_die_with_parent`)."""
    configs = list(configs)
    todo = {config.config_hash(): config for config in configs if not is_finished(run_dir_for(config))}
    if todo and workers <= 1:
        for config in todo.values():
            trainer(config.to_dict(), record_balance)
    elif todo:
        for config in {(c.data_source, c.data_dir, c.synthetic_per_class): c for c in todo.values()}.values():
            ensure_files(config, progress=False)  # the stand-in is written once, here, never by two workers at once
        ordered = sorted(todo.values(), key=expected_cost, reverse=True)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe from a Jupyter kernel and threads
        with ProcessPoolExecutor(max_workers=min(workers, len(ordered)), mp_context=context,
                                 initializer=_die_with_parent) as pool, \
                tqdm(total=len(ordered), desc=f"training {len(ordered)} runs, {workers} at a time", unit="run",
                     disable=not progress) as bar:
            futures = [pool.submit(trainer, config.replace(threads=1).to_dict(), record_balance)
                       for config in ordered]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                bar.update(len(done))
                for future in done:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()
    return [run_dir_for(config) for config in configs]


__all__ = ["SEQUENTIAL_PROFILES", "default_workers", "expected_cost", "train_together"]
