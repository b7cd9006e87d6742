"""Nothing lost, nothing silently wrong: bad inputs, a damaged or busy run folder, a full or read-only disk, a
diverging loss and `--force` each end in one line on stderr naming the file or folder and the fix, exit status 2.

The CLI runs in-process (`cvae.__main__.main`) on a tiny model and the 40-per-class stand-in; the subprocess and
kill tests are in test_chaos.py (slow).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cvae.__main__ import main
from cvae.core.config import make_config
from cvae.training import train as train_module
from cvae.training.runs import (CONFIG_FILE, DIGESTS_FILE, DIVERGED_FILE, KEPT_CHECKPOINT, LAST_CHECKPOINT,
                                METRICS_FILE, SUMMARY_FILE, RunError, load_run, read_checkpoint, run_lock,
                                set_aside_path)

TINY = {"epochs": 2, "batch_size": 128, "encoder_channels": "8,16,32", "hidden_dim": 64, "latent_dim": 16,
        "class_embed_dim": 16, "modality_embed_dim": 8, "threads": 1, "beta_warmup_epochs": 1, "beta_ramp_epochs": 1}


def tiny_args(data_dir, command: str = "train", **overrides) -> list[str]:
    """CLI arguments of the tiny smoke configuration on a data folder."""
    values = {**TINY, **overrides}
    sets = [item for key, value in values.items() for item in ("--set", f"{key}={value}")]
    return [command, "--profile", "smoke", "--data-dir", str(data_dir), *sets]


def tiny_config(data_dir, **overrides):
    """The Config of `tiny_args`."""
    values = {**TINY, **overrides}
    return make_config("smoke", [f"{k}={v}" for k, v in values.items()] + [f"data_dir={data_dir}"])


def cli(capsys, args: list[str]) -> tuple[int, str]:
    """Run `python -m cvae ARGS` in this process; (exit status, stderr)."""
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capsys.readouterr().err


def error_line(code: int, err: str, fragment: str, one_line: bool = True) -> str:
    """The error message after checking: exit 2, no traceback, one `error:` line (the last) holding `fragment`."""
    assert code == 2, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, err[-2000:]
    message = "\n".join(lines[starts[0]:])
    assert fragment in message, message
    if one_line:
        assert starts[0] == len(lines) - 1, message
    return message


@pytest.fixture(scope="module")
def trained(stand_in_dir, tmp_path_factory):
    """A finished tiny run and an interrupted one (epoch 0 saved), in a module-private runs folder."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CVAE_RUNS_DIR", str(root / "finished"))
        finished = train_module.train(tiny_config(stand_in_dir), progress=False)
        patch.setenv("CVAE_RUNS_DIR", str(root / "interrupted"))
        interrupted = train_module.train(tiny_config(stand_in_dir), progress=False, stop_after_epoch=0)
    return {"finished": finished, "interrupted": interrupted}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """An empty runs folder for this test."""
    folder = tmp_path / "runs"
    monkeypatch.setenv("CVAE_RUNS_DIR", str(folder))
    return folder


def copy_run(trained, which: str, runs: Path) -> Path:
    """A copy of the module's finished or interrupted run in this test's runs folder."""
    target = runs / trained[which].name
    shutil.copytree(trained[which], target)
    return target


# --- bad inputs: one line, exit 2, no traceback ------------------------------------------------------------------

BAD_SETTINGS = [
    ("gamma=nan", "gamma must be a finite number"), ("gamma=inf", "gamma must be a finite number"),
    ("a_mse=1e300", "a_mse must be at most"), ("a_l1=1e7", "a_l1 must be at most"),
    ("weight_decay=nan", "weight_decay must be a finite number"), ("weight_decay=2", "weight_decay must be below 1"),
    ("lr=0", "lr must be in (0, 1)"), ("lr=-1", "lr must be in (0, 1)"), ("lr=nan", "lr must be a finite number"),
    ("grad_clip=0", "grad_clip must be positive"), ("grad_clip=inf", "grad_clip must be a finite number"),
    ("seed=-1", "seed must be in [0, 2**32)"), ("seed=1099511627776", "seed must be in [0, 2**32)"),
    ("perceptual_seed=-5", "perceptual_seed must be in"), ("epochs=0", "epochs must be positive"),
    ("batch_size=0", "batch_size must be positive"), ("latent_dim=-3", "latent_dim must be positive"),
    ("epochs=many", "epochs must be an integer"), ("channels_last=maybe", "channels_last must be true or false"),
    ("encoder_channels=8,16", "exactly 3 entries"), ("encoder_channels=0,16,32", "must be positive integers"),
    ("device=tpu", "device must be one of"), ("autocast=fp8", "autocast must be one of"),
    ("compile=fast", "compile must be one of"), ("data_source=imagenet", "data_source must be one of"),
    ("plateau_factor=1.5", "plateau_factor must be in (0, 1)"), ("beta_max=-1", "beta_max must be >= 0"),
    ("threads=-1", "threads must be >= 0"), ("threads=100000", "threads must be at most 4096"),
    ("latentdim=3", "unknown config key 'latentdim'"), ("latent_dim", "is not of the form key=value"),
]


@pytest.mark.parametrize("command", ["train", "evaluate", "ablate", "book", "data"])
@pytest.mark.parametrize("setting, message", BAD_SETTINGS, ids=[s for s, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_before_anything_runs(setting, message, command, capsys, runs, tmp_path):
    args = [command, "--profile", "smoke", "--data-dir", str(tmp_path / "no-data"), "--set", setting]
    if command == "ablate":
        args.insert(1, "paper")
    error_line(*cli(capsys, args), message)
    assert not (tmp_path / "no-data").exists() and not runs.exists()  # nothing was written or loaded


@pytest.mark.parametrize("args, message", [
    (["info", "--profile", "huge"], "unknown profile 'huge'"),
    (["ablate", "nonexistent", "--profile", "smoke"], "unknown ablation 'nonexistent'"),
    (["ablate", "--profile", "smoke"], "name an ablation"),
    (["bench", "--set", "seed=-1"], "seed must be in"),
])
def test_other_bad_arguments_are_one_line(args, message, capsys, runs):
    error_line(*cli(capsys, args), message)


@pytest.mark.parametrize("command", ["train", "evaluate", "ablate", "book", "data"])
def test_a_data_folder_that_is_a_file_is_named(command, capsys, runs, tmp_path):
    not_a_folder = tmp_path / "medmnist.npz"
    not_a_folder.write_bytes(b"not a folder")
    args = [command, "--profile", "smoke", "--data-dir", str(not_a_folder)] + (["paper"] if command == "ablate" else [])
    message = error_line(*cli(capsys, args), "is a file, not a folder")
    assert str(not_a_folder) in message and "--data-dir" in message


def test_a_data_folder_below_a_file_is_named(capsys, runs, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    message = error_line(*cli(capsys, ["data", "--profile", "smoke", "--data-dir", str(blocker / "data")]),
                         "a part of this path is a file, not a folder")
    assert str(blocker) in message


@pytest.mark.parametrize("runs_env, message", [
    ("{file}", "a file is in the way of a folder"),
    ("{file}/runs", "a part of this path is a file, not a folder"),
])
def test_a_runs_folder_occupied_by_a_file_is_named(runs_env, message, capsys, stand_in_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CVAE_RUNS_DIR", runs_env.format(file=blocker))
    line = error_line(*cli(capsys, tiny_args(stand_in_dir)), message)
    assert str(blocker) in line and "$CVAE_RUNS_DIR" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["train", "evaluate", "ablate"])
def test_device_cuda_without_a_gpu_is_one_line(command, capsys, runs, stand_in_dir):
    args = tiny_args(stand_in_dir, command, device="cuda")
    if command == "ablate":
        args.insert(1, "paper")
    error_line(*cli(capsys, args), "device=cuda was requested but no CUDA GPU is visible; use --set device=auto")
    assert not any(runs.glob("run-*"))


def _write_like(source: Path, target: Path, keep: dict[str, int]) -> None:
    """Copy a stand-in folder, keeping only the first `keep[split]` images of each split of every file."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.npz"):
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
        for split, count in keep.items():
            arrays[f"{split}_images"] = arrays[f"{split}_images"][:count]
            arrays[f"{split}_labels"] = arrays[f"{split}_labels"][:count]
        np.savez_compressed(target / path.name, **arrays)
    for extra in source.iterdir():
        if extra.suffix != ".npz":
            shutil.copy2(extra, target / extra.name)


@pytest.mark.parametrize("split, name", [("train", "training"), ("val", "validation")])
def test_an_empty_split_is_named(split, name, capsys, runs, stand_in_dir, tmp_path):
    _write_like(stand_in_dir, tmp_path / "empty", {split: 0})
    message = error_line(*cli(capsys, tiny_args(tmp_path / "empty")), f"the {name} split is empty")
    assert str(tmp_path / "empty") in message


def test_a_garbled_data_file_is_named(capsys, runs, stand_in_dir, tmp_path):
    shutil.copytree(stand_in_dir, tmp_path / "garbled")
    (tmp_path / "garbled" / "octmnist.npz").write_bytes(b"PK\x03\x04 garbage")
    message = error_line(*cli(capsys, tiny_args(tmp_path / "garbled")), "cannot be read")
    assert str(tmp_path / "garbled" / "octmnist.npz") in message


def test_an_array_header_claiming_more_than_memory_is_named(capsys, runs, stand_in_dir, tmp_path):
    import io
    import zipfile

    shutil.copytree(stand_in_dir, tmp_path / "huge")
    path = tmp_path / "huge" / "octmnist.npz"
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            if key == "train_images":  # the header claims 10^12 images; the file holds a few bytes
                np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False,
                                                              "shape": (10**12, 28, 28)})
                buffer.write(b"\0" * 64)
            else:
                np.lib.format.write_array(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    message = error_line(*cli(capsys, tiny_args(tmp_path / "huge")), "train_images.npy claims an array of shape "
                                                                     "(1000000000000, 28, 28)")
    assert str(path) in message and "more than the 192 bytes it holds; the file is corrupt" in message


def test_a_data_file_that_never_ends_is_refused_not_read(capsys, runs, stand_in_dir, tmp_path):
    shutil.copytree(stand_in_dir, tmp_path / "endless")
    (tmp_path / "endless" / "octmnist.npz").unlink()
    (tmp_path / "endless" / "octmnist.npz").symlink_to("/dev/zero")
    message = error_line(*cli(capsys, tiny_args(tmp_path / "endless")), "is not a regular file")
    assert str(tmp_path / "endless" / "octmnist.npz") in message


def test_a_full_standard_output_is_named_as_such(tmp_path):
    with open("/dev/full", "w") as full:
        completed = subprocess.run([sys.executable, "-m", "cvae", "info"], stdout=full, stderr=subprocess.PIPE,
                                   text=True, env={**os.environ, "CVAE_RUNS_DIR": str(tmp_path / "runs")})
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.startswith("error: the standard output cannot be written (No space left on device)")
    assert completed.stderr.count("\n") == 1 and "runs" not in completed.stderr


def test_an_interrupt_during_a_chapter_names_the_chapter(capsys, tmp_path, monkeypatch):
    import papermill

    import cvae.publish.book

    source = tmp_path / "03_reconstructions.py"
    source.write_text("# %%\nprint(1)\n")
    monkeypatch.setattr(cvae.publish.book, "notebook_sources", lambda folder=None: [source])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    monkeypatch.setattr(cvae.publish.book, "build_book", lambda *a, **k: cvae.publish.book.execute_notebooks({}, tmp_path / "out",
                                                                                               log=lambda *_: None))
    code = main(["book", "--profile", "smoke"])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip() == ("interrupted: stopped in chapter 03_reconstructions; every finished run and epoch is "
                           "kept: rerun the same command to go on from there")


def test_offline_without_real_data_names_the_files_and_the_folder(capsys, runs, tmp_path, monkeypatch):
    import torchvision.datasets.utils

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    message = error_line(*cli(capsys, ["train", "--profile", "quick", "--data-dir", str(tmp_path / "real")]),
                         "MedMNIST data missing and could not be downloaded", one_line=False)
    assert "pathmnist.npz" in message and str(tmp_path / "real") in message


# --- a full disk, a read-only folder: the machine's errors are one line too ---------------------------------------

@contextlib.contextmanager
def mounted(folder: Path, options: str, source: str = "tmpfs", kind: str | None = "tmpfs"):
    """Mount a file system on `folder` for the block (root only); yields False where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    command = ["mount"] + (["-t", kind] if kind else []) + ["-o", options, source, str(folder)]
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(command, capture_output=True).returncode:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_full_disk_is_one_line_and_the_run_resumes_once_there_is_room(capsys, stand_in_dir, tmp_path, monkeypatch):
    disk = tmp_path / "small-disk"
    monkeypatch.setenv("CVAE_RUNS_DIR", str(disk / "runs"))
    with mounted(disk, "size=1m") as real:  # a checkpoint of the tiny model is ~1 MB: the first one does not fit
        if not real:  # no mount allowed here: inject the same error at the write
            real_replace = os.replace

            def full(src, dst, *args, **kwargs):
                if str(dst).endswith(LAST_CHECKPOINT):
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_replace(src, dst, *args, **kwargs)

            monkeypatch.setattr("cvae.training.runs.os.replace", full)
        message = error_line(*cli(capsys, tiny_args(stand_in_dir)), "no space left on the disk")
        run_dir = next((disk / "runs").glob("run-*"))
        assert str(run_dir / LAST_CHECKPOINT) in message and "a training run resumes" in message
        assert not list(run_dir.glob(".*.tmp"))  # the half-written file is gone
        assert not (run_dir / SUMMARY_FILE).exists()
        if real:
            subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        else:
            monkeypatch.setattr("cvae.training.runs.os.replace", real_replace)
        code, err = cli(capsys, tiny_args(stand_in_dir))
        assert code == 0, err
        assert load_run(run_dir).summary["epochs"] == 2


@contextlib.contextmanager
def read_only(folder: Path, source: Path):
    """`folder` read-only for the block: a read-only bind mount (root), else no write permission (not root);
    yields the error the message names."""
    source.mkdir(parents=True, exist_ok=True)
    with mounted(folder, "bind,ro", source=str(source), kind=None) as real:
        if real:
            yield "read-only file system"
            return
    if os.geteuid() == 0:
        pytest.skip("root without mount: no folder is read-only to it")
    folder.chmod(0o555)
    try:
        yield "permission denied"
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("what", ["runs", "data"])
def test_a_read_only_folder_is_one_line(what, capsys, stand_in_dir, tmp_path, monkeypatch):
    folder = tmp_path / "read-only"
    with read_only(folder, tmp_path / "source") as expected:
        if what == "runs":
            monkeypatch.setenv("CVAE_RUNS_DIR", str(folder))
            args = tiny_args(stand_in_dir)
        else:
            monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "runs"))
            args = ["data", "--profile", "smoke", "--data-dir", str(folder / "stand-in")]
        message = error_line(*cli(capsys, args), expected)
        assert str(folder) in message and ("choose a writable place" in message or "make it writable" in message)


def test_a_finished_run_on_a_read_only_disk_is_still_reused(trained, capsys, stand_in_dir, tmp_path, monkeypatch):
    source = tmp_path / "source"
    copy_run(trained, "finished", source)
    with mounted(tmp_path / "read-only", "bind,ro", source=str(source), kind=None) as real:
        if not real:
            pytest.skip("needs a read-only mount (root)")
        monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "read-only"))
        code, err = cli(capsys, tiny_args(stand_in_dir))
        assert code == 0, err


# --- divergence ---------------------------------------------------------------------------------------------------

def _nan_from(epoch: int):
    real = train_module.beta_at

    def beta(t, *args):
        return float("nan") if t >= epoch else real(t, *args)

    return beta


def test_a_loss_that_is_nan_from_the_start_stops_in_epoch_0(capsys, runs, stand_in_dir, monkeypatch):
    monkeypatch.setattr(train_module, "beta_at", _nan_from(0))
    message = error_line(*cli(capsys, tiny_args(stand_in_dir, epochs=20)), "training diverged in epoch 0 of run-")
    assert "not finite (NaN or inf)" in message and "no epoch finished cleanly" in message
    assert "Lower lr (now 0.0005) or grad_clip (now 1)" in message
    (run_dir,) = runs.glob("run-*")
    assert (run_dir / DIVERGED_FILE).exists()
    assert not (run_dir / SUMMARY_FILE).exists() and not (run_dir / LAST_CHECKPOINT).exists()
    monkeypatch.setattr(train_module, "train_epoch", lambda *a, **k: pytest.fail("trained again"))
    again = error_line(*cli(capsys, tiny_args(stand_in_dir, epochs=20)), "training diverged in epoch 0")
    assert again == message  # the rerun says the same at once
    with pytest.raises(RunError, match="training diverged in epoch 0"):
        load_run(run_dir)


def test_a_late_divergence_keeps_the_last_good_checkpoint(capsys, runs, stand_in_dir, monkeypatch):
    monkeypatch.setattr(train_module, "beta_at", _nan_from(2))
    message = error_line(*cli(capsys, tiny_args(stand_in_dir, epochs=5)), "training diverged in epoch 2 of run-")
    assert "its last good checkpoint (epoch 1) is kept" in message
    (run_dir,) = runs.glob("run-*")
    assert read_checkpoint(run_dir / LAST_CHECKPOINT)["epoch"] == 1
    assert len((run_dir / METRICS_FILE).read_text().splitlines()) == 1 + 2
    assert json.loads((run_dir / DIVERGED_FILE).read_text())["last_good_epoch"] == 1
    assert not (run_dir / SUMMARY_FILE).exists()


def test_a_non_finite_gradient_with_a_finite_loss_is_caught(runs, stand_in_dir, monkeypatch):
    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda *a, **k: real_clip(*a, **k) * float("inf"))  # the norm only: weights stay finite
    with pytest.raises(train_module.TrainingDiverged, match="in 7 of 7 steps"):
        train_module.train(tiny_config(stand_in_dir), progress=False)


# --- --force keeps the old run until the new one has a checkpoint -----------------------------------------------

def _fingerprint(run_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def test_force_with_bad_data_keeps_the_finished_run(trained, capsys, runs, stand_in_dir, tmp_path):
    run_dir = copy_run(trained, "finished", runs)
    before = _fingerprint(run_dir)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    error_line(*cli(capsys, tiny_args(not_a_folder) + ["--force"]), "is a file, not a folder")
    shutil.copytree(stand_in_dir, tmp_path / "garbled")
    (tmp_path / "garbled" / "pathmnist.npz").write_bytes(b"")
    error_line(*cli(capsys, tiny_args(tmp_path / "garbled") + ["--force"]), "cannot be read")
    assert _fingerprint(run_dir) == before and load_run(run_dir).summary["epochs"] == 2


def test_force_interrupted_before_its_first_checkpoint_restores_the_old_run(trained, capsys, runs, stand_in_dir,
                                                                             monkeypatch):
    run_dir = copy_run(trained, "finished", runs)
    before = _fingerprint(run_dir)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_epoch", interrupted)
    code, err = cli(capsys, tiny_args(stand_in_dir) + ["--force"])
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"interrupted: no epoch of {run_dir.name} had finished, so none was saved; "
                                            "the previous run is restored.")
    assert _fingerprint(run_dir) == before and not set_aside_path(run_dir).exists()


def test_force_that_diverges_at_once_restores_the_old_run(trained, capsys, runs, stand_in_dir, monkeypatch):
    run_dir = copy_run(trained, "finished", runs)
    before = _fingerprint(run_dir)
    monkeypatch.setattr(train_module, "beta_at", _nan_from(0))
    message = error_line(*cli(capsys, tiny_args(stand_in_dir) + ["--force"]), "training diverged in epoch 0")
    assert message.endswith(f"The previous run in {run_dir} is restored.")
    assert _fingerprint(run_dir) == before


def test_force_replaces_the_run_once_the_new_one_has_a_checkpoint(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "finished", runs)
    (run_dir / "evaluation.json").write_text("{}")  # derived from the old weights: must go with them
    old_summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    code, err = cli(capsys, tiny_args(stand_in_dir) + ["--force"])
    assert code == 0, err
    new_summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert new_summary["finished_at"] >= old_summary["finished_at"] and not (run_dir / "evaluation.json").exists()
    assert not set_aside_path(run_dir).exists()


def test_a_forced_run_killed_before_its_first_checkpoint_gets_the_old_run_back(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "finished", runs)
    before = _fingerprint(run_dir)
    os.replace(run_dir, set_aside_path(run_dir))  # what `--force` did before it was killed
    run_dir.mkdir()
    (run_dir / CONFIG_FILE).write_text("{}")
    code, err = cli(capsys, tiny_args(stand_in_dir))
    assert code == 0, err
    assert _fingerprint(run_dir) == before and not set_aside_path(run_dir).exists()


# --- damaged files: named, the run refused, nothing used or deleted -----------------------------------------------

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "last truncated": (LAST_CHECKPOINT, _truncate),
    "last empty": (LAST_CHECKPOINT, lambda p: p.write_bytes(b"")),
    "last garbled": (LAST_CHECKPOINT, lambda p: p.write_bytes(os.urandom(4096))),
    "last one flipped byte": (LAST_CHECKPOINT, _flip_byte),
    "last deleted": (LAST_CHECKPOINT, lambda p: p.unlink()),
    "best truncated": (KEPT_CHECKPOINT, _truncate),
    "best one flipped byte": (KEPT_CHECKPOINT, _flip_byte),
    "best copied over last": (LAST_CHECKPOINT, lambda p: shutil.copy(p.parent / KEPT_CHECKPOINT, p)),
    "metrics truncated": (METRICS_FILE, lambda p: p.write_bytes(p.read_bytes()[:-40])),
    "metrics deleted": (METRICS_FILE, lambda p: p.unlink()),
    "summary garbled": (SUMMARY_FILE, lambda p: p.write_text('{"config_hash": "')),
    "summary empty": (SUMMARY_FILE, lambda p: p.write_text("")),
    "summary edited": (SUMMARY_FILE, lambda p: p.write_text(p.read_text().replace('"epochs": 2', '"epochs": 3'))),
    "config garbled": (CONFIG_FILE, lambda p: p.write_text("{")),
    "config edited": (CONFIG_FILE, lambda p: p.write_text(p.read_text().replace('"seed": 0', '"seed": 1'))),
    "digests garbled": (DIGESTS_FILE, lambda p: p.write_text("[1, 2")),
    "digests of another run": (DIGESTS_FILE, lambda p: p.write_text(json.dumps(
        {k: ["0" * 64, None] for k in json.loads(p.read_text())}))),
}


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_file_of_a_finished_run_is_named(case, command, trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "finished", runs)
    name, damage = DAMAGE[case]
    damage(run_dir / name)
    damaged = _fingerprint(run_dir)
    message = error_line(*cli(capsys, tiny_args(stand_in_dir, command)), str(run_dir / name))
    assert "damaged" in message or "missing" in message
    assert "--force" in message
    assert _fingerprint(run_dir) == damaged  # nothing used, rewritten or deleted
    with pytest.raises(RunError, match=name.replace(".", r"\.")):
        load_run(run_dir)


@pytest.mark.parametrize("case", ["last truncated", "last empty", "last garbled", "last one flipped byte",
                                  "best one flipped byte", "best copied over last", "metrics truncated",
                                  "digests garbled"])
def test_a_damaged_file_of_an_interrupted_run_is_named_on_resume(case, trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "interrupted", runs)
    name, damage = DAMAGE[case]
    damage(run_dir / name)
    damaged = _fingerprint(run_dir)
    message = error_line(*cli(capsys, tiny_args(stand_in_dir)), str(run_dir / name))
    assert "damaged" in message
    assert _fingerprint(run_dir) == damaged


def test_a_stray_summary_does_not_make_an_interrupted_run_finished(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "interrupted", runs)
    shutil.copy(trained["finished"] / SUMMARY_FILE, run_dir / SUMMARY_FILE)
    message = error_line(*cli(capsys, tiny_args(stand_in_dir)), str(run_dir / SUMMARY_FILE))
    assert "is not a file this run wrote" in message


def test_a_run_written_before_digests_is_checked_and_then_recorded(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "finished", runs)
    (run_dir / DIGESTS_FILE).unlink()
    code, err = cli(capsys, tiny_args(stand_in_dir))
    assert code == 0 and "was written before runs recorded file digests" in err
    assert (run_dir / DIGESTS_FILE).exists()
    (run_dir / DIGESTS_FILE).unlink()  # without digests, a flipped byte in a tensor still fails its zip CRC-32
    _flip_byte(run_dir / KEPT_CHECKPOINT)
    error_line(*cli(capsys, tiny_args(stand_in_dir)), f"{run_dir / KEPT_CHECKPOINT} is damaged")


def test_a_run_is_not_reused_for_other_data(trained, capsys, runs, stand_in_dir, tmp_path):
    copy_run(trained, "finished", runs)
    _write_like(stand_in_dir, tmp_path / "broken", {"train": 100})  # a damaged copy: fewer training images
    message = error_line(*cli(capsys, tiny_args(tmp_path / "broken")), "was trained on other data than")
    assert "octmnist.npz has MD5" in message and "--force" in message
    copy = tmp_path / "same-data-elsewhere"
    shutil.copytree(stand_in_dir, copy)
    code, err = cli(capsys, tiny_args(copy))  # the same files in another folder: the same run
    assert code == 0, err


def test_an_interrupted_run_does_not_resume_on_other_data(trained, capsys, runs, stand_in_dir, tmp_path):
    copy_run(trained, "interrupted", runs)
    _write_like(stand_in_dir, tmp_path / "broken", {"train": 100})
    message = error_line(*cli(capsys, tiny_args(tmp_path / "broken")), "was started on other data than")
    assert "the split sizes are" in message


# --- one writer per run; what an earlier process left behind -----------------------------------------------------

def test_a_second_identical_training_says_who_is_training(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "interrupted", runs)
    with run_lock(run_dir):
        message = error_line(*cli(capsys, tiny_args(stand_in_dir)), f"{run_dir} is being trained right now by process "
                                                                    f"{os.getpid()}")
        assert "wait for it to finish" in message
    assert read_checkpoint(run_dir / LAST_CHECKPOINT)["epoch"] == 0  # untouched while locked


def test_a_lock_left_by_a_killed_process_is_recovered(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "finished", runs)
    lock = runs / f".{run_dir.name}.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"handle = open({str(lock)!r}, 'a+'); fcntl.flock(handle, fcntl.LOCK_EX)\n"
        "handle.write('process 999999 (killed)'); handle.flush(); print('locked', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    error_line(*cli(capsys, tiny_args(stand_in_dir)), "is being trained right now by process 999999")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    code, err = cli(capsys, tiny_args(stand_in_dir))
    assert code == 0, err


def test_stale_temporary_files_are_cleaned_on_the_next_start(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "interrupted", runs)
    stale = [run_dir / ".checkpoint_last.pt.abc123.tmp", run_dir / ".metrics.csv.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    code, err = cli(capsys, tiny_args(stand_in_dir))
    assert code == 0, err
    assert not any(path.exists() for path in stale) and not list(run_dir.glob(".*.tmp"))


def test_run_files_follow_the_umask(trained):
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in trained["finished"].iterdir()}
    assert set(modes.values()) == {0o666 & ~mask}, modes


def test_a_resume_keeps_the_settings_the_run_started_with(trained, capsys, runs, stand_in_dir):
    run_dir = copy_run(trained, "interrupted", runs)
    code, err = cli(capsys, tiny_args(stand_in_dir, channels_last=False, threads=2))
    assert code == 0, err
    assert ("resumes with the settings it started with: channels_last=True (this command: False), threads=1 (this "
            "command: 2)") in err
    config, summary = (json.loads((run_dir / name).read_text()) for name in (CONFIG_FILE, SUMMARY_FILE))
    assert config["channels_last"] is summary["channels_last"] is True and config["threads"] == summary["threads"] == 1


def test_ctrl_c_says_which_epochs_are_saved(trained, capsys, runs, stand_in_dir, monkeypatch):
    run_dir = copy_run(trained, "interrupted", runs)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_epoch", interrupted)
    code, err = cli(capsys, tiny_args(stand_in_dir))
    assert code == 130
    assert err.strip().splitlines()[-1] == (f"interrupted: epochs 0-0 of {run_dir.name} are saved; rerun the same "
                                            "command to resume.")


def test_a_whole_check_of_a_finished_run_costs_little(trained):
    tick = time.perf_counter()
    for _ in range(3):
        load_run(trained["finished"])
    assert time.perf_counter() - tick < 3.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_graphed_step_catches_a_non_finite_loss_and_gradient(runs, stand_in_dir, monkeypatch):
    config = tiny_config(stand_in_dir, device="cuda", epochs=3, batch_size=64)
    run = load_run(train_module.train(config, progress=False))
    assert run.summary["cuda_graphs"] and run.summary["graph_captures"] >= 1  # finite: it finishes as before
    monkeypatch.setattr(train_module, "beta_at", _nan_from(2))
    with pytest.raises(train_module.TrainingDiverged, match="in epoch 2 of .* not finite"):
        train_module.train(config.replace(seed=1), progress=False)
    monkeypatch.undo()
    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: real_clip(*a, **k) * float("inf"))
    with pytest.raises(train_module.TrainingDiverged, match=r"in epoch 0 .* in 14 of 14 steps"):
        train_module.train(config.replace(seed=2), progress=False)  # the norm's flag, inside the captured graph


def test_a_finished_run_copied_into_another_configurations_folder_is_refused(trained, capsys, runs, stand_in_dir):
    other = tiny_config(stand_in_dir, seed=7)
    target = runs / f"run-{other.config_hash()}"
    shutil.copytree(trained["finished"], target)  # digests.json still matches every file it holds
    copied = _fingerprint(target)
    message = error_line(*cli(capsys, tiny_args(stand_in_dir, seed=7)), f"belongs to {trained['finished'].name}, "
                                                                           f"not to {target.name}")
    assert "copied or moved into another configuration's folder" in message
    assert _fingerprint(target) == copied
