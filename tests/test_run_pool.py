"""Runs trained together (one process per core, one thread each) equal the same runs trained alone on one thread,
bit for bit, write complete run folders that are reused, and stay within a stated tolerance of a two-thread run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cvae.core.config import make_config
from cvae.core.paths import PROJECT_ROOT
from cvae.training.run_pool import default_workers, expected_cost, train_together
from cvae.training.runs import (CONFIG_FILE, KEPT_CHECKPOINT, LAST_CHECKPOINT, METRICS_FILE, SUMMARY_FILE,
                                check_run_files, is_finished, load_run, run_dir_for)
from cvae.training.train import train

# two two-thread runs differ from one-thread runs only by the order of the CPU's reductions: after 2 epochs the
# validation losses (about 200 per image here) agree to within this fraction
THREADS_TOLERANCE = 0.01
COMPLETE = (CONFIG_FILE, METRICS_FILE, LAST_CHECKPOINT, KEPT_CHECKPOINT, SUMMARY_FILE)


def tiny(folder, seed: int):
    return make_config("smoke", {"data_dir": str(folder), "epochs": 2, "batch_size": 128, "encoder_channels": (8, 16, 32),
                                 "hidden_dim": 64, "latent_dim": 16, "class_embed_dim": 16, "modality_embed_dim": 8,
                                 "seed": seed})


def losses(run_dir) -> list[float]:
    return load_run(run_dir).metrics["val_total"].tolist()


@pytest.mark.slow
def test_two_runs_trained_together_equal_each_trained_alone(stand_in_dir, runs_dir, tmp_path, monkeypatch):
    configs = [tiny(stand_in_dir, 0), tiny(stand_in_dir, 1)]
    folders = train_together(configs, workers=2, progress=False)
    assert folders == [run_dir_for(config) for config in configs]
    together = {}
    for config, folder in zip(configs, folders):
        on_disk = check_run_files(folder, finished=True)  # every file matches its recorded digest
        assert is_finished(folder) and all(on_disk[name] for name in COMPLETE), on_disk
        run = load_run(folder)
        assert run.config.threads == run.summary["threads"] == 1 and len(run.metrics) == 2
        together[config.seed] = (losses(folder), (folder / "checkpoint_last.pt").stat().st_mtime_ns)
    assert together[0][0] != together[1][0]  # each run its own seed

    # reused, not retrained: a second call trains nothing
    train_together(configs, workers=2, progress=False)
    assert all((folder / "checkpoint_last.pt").stat().st_mtime_ns == together[config.seed][1]
               for config, folder in zip(configs, folders))

    # the same runs alone, on one thread, in another runs folder: the same numbers, bit for bit
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "alone"))
    previous = torch.get_num_threads()
    try:
        for config in configs:
            alone = train(config.replace(threads=1), progress=False, record_balance=False)
            assert losses(alone) == together[config.seed][0]
        # on two threads the reductions run in another order: close, not equal
        monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "two_threads"))
        two = train(configs[0].replace(threads=2), progress=False, record_balance=False)
    finally:
        torch.set_num_threads(previous)
    assert losses(two) == pytest.approx(together[0][0], rel=THREADS_TOLERANCE)


@pytest.mark.slow
def test_a_diverging_run_raises_its_own_error_here_and_the_other_run_finishes(stand_in_dir, runs_dir):
    from cvae.training.failures import TrainingDiverged

    diverging = tiny(stand_in_dir, 0).replace(lr=0.9, grad_clip=1e30, epochs=10)
    healthy = tiny(stand_in_dir, 1)
    with pytest.raises(TrainingDiverged, match=r"^training diverged in epoch \d+ of run-.*Lower lr \(now 0.9\)"):
        train_together([diverging, healthy], workers=2, progress=False)
    assert is_finished(run_dir_for(healthy)) and not is_finished(run_dir_for(diverging))


def test_longest_runs_start_first_and_the_smoke_profile_trains_one_at_a_time(stand_in_dir):
    short, deep = tiny(stand_in_dir, 0), tiny(stand_in_dir, 0).replace(extra_convs_per_stage=1)
    assert expected_cost(deep) > expected_cost(short) and expected_cost(short.replace(epochs=4)) == 2 * expected_cost(short)
    assert default_workers("smoke") == 1 and default_workers("quick") == max(1, torch.get_num_threads())


PARENT = '''
import os, sys, time
from cvae.core.config import make_config
from cvae.training.run_pool import train_together


def wait_here(config_dict, record_balance):
    (Path(sys.argv[2]) / f"worker-{os.getpid()}").write_text("")
    time.sleep(600)


if __name__ == "__main__":
    from pathlib import Path
    configs = [make_config("smoke", {"data_dir": sys.argv[1], "seed": seed}) for seed in (0, 1)]
    train_together(configs, workers=2, progress=False, trainer=wait_here)
'''


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie no one has reaped yet counts as stopped)."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_stop_when_the_process_that_started_them_is_killed(stand_in_dir, runs_dir, tmp_path):
    """A build stopped by its process ID (SIGKILL: no clean-up runs) leaves no worker training: the next build would
    find that run locked. Polls with a generous limit: this checks that the workers stop, not how fast."""
    script, marks = tmp_path / "parent.py", tmp_path / "marks"
    script.write_text("from pathlib import Path\n" + PARENT)
    marks.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(stand_in_dir), str(marks)], cwd=PROJECT_ROOT,
                              env={**os.environ, "CVAE_RUNS_DIR": str(runs_dir)})
    try:
        for _ in range(600):
            workers = [int(mark.name.split("-")[1]) for mark in marks.glob("worker-*")]
            if len(workers) == 2 or parent.poll() is not None:
                break
            time.sleep(0.2)
        assert len(workers) == 2 and parent.poll() is None, (workers, parent.poll())
        parent.kill()
        parent.wait()
        for _ in range(300):
            if not any(_alive(pid) for pid in workers):
                break
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        for mark in marks.glob("worker-*"):
            try:
                os.kill(int(mark.name.split("-")[1]), signal.SIGKILL)
            except ProcessLookupError:
                pass
