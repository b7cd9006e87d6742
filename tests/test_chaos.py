"""Chaos: a tiny training run as a subprocess, killed (SIGKILL) at random moments and inside its checkpoint writes,
then resumed, must end bit-identical to an uninterrupted run, with no temporary file left (in the spirit of
torchtune's resume test). Also: two identical trainings at once, and what a diverging run prints."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from cvae.training.runs import DIGESTS_FILE, KEPT_CHECKPOINT, LAST_CHECKPOINT, METRICS_FILE, load_run, read_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc (Linux)")]

TINY = ["--set", "epochs=10", "--set", "batch_size=128", "--set", "encoder_channels=8,16,32", "--set", "hidden_dim=64",
        "--set", "latent_dim=16", "--set", "class_embed_dim=16", "--set", "modality_embed_dim=8", "--set", "threads=1",
        "--set", "beta_warmup_epochs=1", "--set", "beta_ramp_epochs=3"]

# Runs `python -m cvae ARGS`; CHAOS_KILL="mid-write:<file>:<n>" kills it halfway through writing the temporary file of
# its n-th write of <file>, "before-rename:<file>:<n>" once that file is whole but not yet renamed into place.
LAUNCHER = r"""
import os, signal, sys
mode = os.environ.get("CHAOS_KILL")
if mode:
    kind, name, nth = mode.split(":")
    seen = {"n": 0}
    real_fdopen, real_replace = os.fdopen, os.replace

    def hit():
        seen["n"] += 1
        return seen["n"] == int(nth)

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}")
        if kind == "mid-write" and os.path.basename(target).startswith(f".{name}.") and hit():
            write = handle.write

            def half_then_die(payload):
                write(payload[: len(payload) // 2])
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            handle.write = half_then_die
        return handle

    def replace(src, dst, *args, **kwargs):
        if kind == "before-rename" and os.path.basename(str(dst)) == name and hit():
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    os.fdopen, os.replace = fdopen, replace
from cvae.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def launch(args: list[str], runs: Path, kill: str = "") -> subprocess.Popen:
    """Start `python -m cvae ARGS` (through LAUNCHER) with its own runs folder."""
    env = {**os.environ, "CVAE_RUNS_DIR": str(runs), "PYTHONUNBUFFERED": "1", "CHAOS_KILL": kill}
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """Wait for a process; (exit status, stderr)."""
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def _tensors_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_random_kills_and_kills_inside_checkpoint_writes_resume_bit_identically(stand_in_dir, tmp_path):
    args = ["train", "--profile", "smoke", "--data-dir", str(stand_in_dir), *TINY]
    tick = time.perf_counter()
    code, err = finish(launch(args, tmp_path / "straight"))
    straight_seconds = time.perf_counter() - tick
    assert code == 0, err[-2000:]

    rng = random.Random(13)
    inside_writes = [f"mid-write:{LAST_CHECKPOINT}:2", f"before-rename:{LAST_CHECKPOINT}:1", f"mid-write:{DIGESTS_FILE}:3",
                     f"before-rename:{METRICS_FILE}:2", f"before-rename:{DIGESTS_FILE}:4"]
    rng.shuffle(inside_writes)
    at_random = ["at:0.3"] + [f"at:{rng.uniform(0.2, 0.8) * straight_seconds:.2f}" for _ in range(5)]
    runs, landed = tmp_path / "chaos", 0
    for moment in inside_writes + at_random:  # each write kill loses at most 2 of the 10 epochs: they all land
        if moment.startswith("at:"):  # start-up, data loading, mid-epoch, validation, a write: wherever it falls
            process = launch(args, runs)
            try:
                process.wait(timeout=float(moment.split(":")[1]))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
            code, err = finish(process)
        else:
            code, err = finish(launch(args, runs, kill=moment))
            assert code == -signal.SIGKILL, f"{moment} did not land: exit {code}\n{err[-2000:]}"
        assert code in (0, -signal.SIGKILL), f"{moment}: exit {code}\n{err[-2000:]}"
        landed += code == -signal.SIGKILL
    code, err = finish(launch(args, runs))  # the rerun after the last kill
    assert code == 0, err[-2000:]

    (a,), (b,) = (list(folder.glob("run-*")) for folder in (tmp_path / "straight", runs))
    timing = ["seconds", "train_samples_per_s"]
    pd.testing.assert_frame_equal(load_run(a).metrics.drop(columns=timing), load_run(b).metrics.drop(columns=timing))
    for name, keys in ((LAST_CHECKPOINT, ("model", "optimizer", "scheduler", "shuffle_rng", "torch_rng", "metrics",
                                          "best_val", "epoch")), (KEPT_CHECKPOINT, ("model", "epoch"))):
        first, second = read_checkpoint(a / name), read_checkpoint(b / name)
        for key in keys:
            if key == "metrics":
                continue  # per-epoch timings differ
            assert _tensors_equal(first[key], second[key]), f"{name}: {key} differs"
    assert not list(b.glob(".*.tmp")) and not list(runs.glob(".*.tmp"))
    print(f"chaos: {landed} of {len(inside_writes) + len(at_random)} kills landed (the others came after the run "
          f"had finished); the resumed run is bit-identical (uninterrupted {straight_seconds:.1f} s)")


def test_two_identical_trainings_at_once_one_trains_the_other_names_it(stand_in_dir, tmp_path):
    # far more epochs than it can finish while the second process starts and is refused (200 was not always enough)
    long = ["train", "--profile", "smoke", "--data-dir", str(stand_in_dir), *TINY, "--set", "epochs=20000"]
    runs = tmp_path / "runs"
    # the long run writes to a file, not a pipe: nobody reads a pipe while it trains, and a full pipe would stall it
    first_log = tmp_path / "first.stderr"
    with open(first_log, "w") as log:
        first = subprocess.Popen([sys.executable, "-c", LAUNCHER, *long], stdout=subprocess.DEVNULL, stderr=log,
                                 env={**os.environ, "CVAE_RUNS_DIR": str(runs), "PYTHONUNBUFFERED": "1",
                                      "CHAOS_KILL": ""}, text=True,
                                 # a suite started in the background (`cmd &`) ignores SIGINT, and children inherit
                                 # that: restore the default so Python turns Ctrl-C into KeyboardInterrupt
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(runs.glob("run-*/checkpoint_last.pt")):  # it holds the lock and trains
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.2)
    code, err = finish(launch(long, runs))
    first.send_signal(signal.SIGINT)  # Ctrl-C: it stops after saving what it finished
    first_code = first.wait(timeout=300)
    first_err = first_log.read_text()
    assert code == 2, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and f"is being trained right now by process {first.pid} " in line
    assert first_code == 130 and "are saved; rerun the same command to resume." in first_err.strip().splitlines()[-1]


def test_what_a_diverging_run_prints(stand_in_dir, tmp_path):
    args = ["train", "--profile", "smoke", "--data-dir", str(stand_in_dir), *TINY, "--set", "lr=0.9",
            "--set", "grad_clip=1e30"]
    code, err = finish(launch(args, tmp_path / "runs"))
    line = err.strip().splitlines()[-1]
    print(line)
    assert code == 2 and "Traceback" not in err
    assert line.startswith("error: training diverged in epoch ")
    assert "Lower lr (now 0.9) or grad_clip (now 1e+30)" in line
    tick = time.perf_counter()
    again, err_again = finish(launch(args, tmp_path / "runs"))
    assert again == 2 and err_again.strip().splitlines()[-1] == line  # at once, the same line
    print(f"rerun answered in {time.perf_counter() - tick:.1f} s")
