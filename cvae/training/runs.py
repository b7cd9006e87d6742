"""Run folders: one per config hash, written atomically, every file recorded by its digest, read back verified.

Before a file of a run is written, `digests.json` records the SHA-256 of its new content beside that of the content it
replaces; then the file is replaced atomically. A kill at any moment therefore leaves every file matching one
recorded digest, and a file matching none is damaged: it is named, and the run is refused, never used or deleted.
A finished run (summary.json, written last) must match its newest digests. One process at a time writes a run
folder (`run_lock`); `--force` sets the old folder aside until the new run has its first checkpoint (`set_aside`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from cvae.core.config import Config, ConfigError
from cvae.core.model import CVAE
from cvae.core.paths import (CONFIG_FILE, DIGESTS_FILE, DIVERGED_FILE, KEPT_CHECKPOINT, LAST_CHECKPOINT,
                             LOSS_BALANCE_FILE, METRICS_FILE, SUMMARY_FILE, file_digest, runs_dir)

RUN_FILES = (CONFIG_FILE, METRICS_FILE, LOSS_BALANCE_FILE, LAST_CHECKPOINT, KEPT_CHECKPOINT, SUMMARY_FILE,
             DIVERGED_FILE)
LAST_KEYS = ("model", "optimizer", "scheduler", "shuffle_rng", "torch_rng", "config", "epoch", "metrics", "best_val")


class RunError(RuntimeError):
    """A run folder is missing, unfinished, damaged or busy; the message says what to do."""


def _file_mode() -> int:
    mask = os.umask(0)  # the only way to read the umask; set straight back
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path` (never a half-written file); the file
    gets the usual permissions (0666 less the umask). An OSError names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # an OSError here names the folder
    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
            out.flush()
            os.fchmod(out.fileno(), _file_mode())
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):  # a failed write() names no file, mkstemp a temporary one: name the target
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save, atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def run_dir_for(config: Config) -> Path:
    """The folder a config trains into: <runs>/run-<config hash>."""
    return runs_dir() / f"run-{config.config_hash()}"


def is_finished(run_dir: Path) -> bool:
    """True when the run wrote its summary (all epochs done, checkpoints in place); `load_run` verifies it."""
    return (Path(run_dir) / SUMMARY_FILE).exists()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file (what digests.json records); `cvae.core.paths.file_digest`."""
    return file_digest(path, "sha256")


def _retrain_hint(run_dir: Path) -> str:
    return (f"restore it, or retrain the run with the same command and --force (the damaged folder is set aside "
            f"and deleted once the new run has its first checkpoint), or delete {run_dir}")


def read_json(path: Path) -> dict:
    """A JSON object from a file of a run; RunError naming the file when it is not one."""
    try:
        value = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise RunError(f"{path} is damaged ({type(error).__name__}: {str(error)[:80]}); "
                       f"{_retrain_hint(Path(path).parent)}.") from None
    if not isinstance(value, dict):
        raise RunError(f"{path} is damaged (not a JSON object); {_retrain_hint(Path(path).parent)}.")
    return value


def read_checkpoint(path: Path, keys: tuple[str, ...] = (), device: str | torch.device = "cpu") -> dict:
    """torch.load of a checkpoint of a run; RunError naming the file when it cannot be read or lacks `keys`."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise RunError(f"{path} is missing; {_retrain_hint(Path(path).parent)}.") from None
    except Exception as error:  # zip, pickle and EOF errors of a truncated or garbled file
        raise RunError(f"{path} is damaged ({type(error).__name__}: {str(error).splitlines()[0][:80]}); "
                       f"{_retrain_hint(Path(path).parent)}.") from None
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        raise RunError(f"{path} is not a checkpoint of this kind (no {', '.join(missing)}); "
                       f"{_retrain_hint(Path(path).parent)}.")
    return state


def read_digests(run_dir: Path) -> dict[str, list] | None:
    """The digests.json record of a run folder, or None when the run has none (new, or written before digests)."""
    path = Path(run_dir) / DIGESTS_FILE
    if not path.exists():
        return None
    record = read_json(path)
    if not all(isinstance(v, list) and v and all(d is None or isinstance(d, str) for d in v) for v in record.values()):
        raise RunError(f"{path} is damaged (not a digest record); {_retrain_hint(Path(run_dir))}.")
    return record


def _check_folder_name(run_dir: Path) -> None:
    """RunError when a run folder's config.json hashes to another folder's name (a run copied or moved into the
    folder of another configuration), or cannot be read."""
    try:
        config_hash = Config.from_dict(read_json(run_dir / CONFIG_FILE)).config_hash()
    except (ConfigError, TypeError) as error:
        raise RunError(f"{run_dir / CONFIG_FILE} is damaged ({error}); {_retrain_hint(run_dir)}.") from None
    if run_dir.name.startswith("run-") and run_dir.name != f"run-{config_hash}":
        raise RunError(f"{run_dir / CONFIG_FILE} belongs to run-{config_hash}, not to {run_dir.name} (a run copied "
                       f"or moved into another configuration's folder); {_retrain_hint(run_dir)}.")


def _adopt_unrecorded(run_dir: Path) -> dict[str, list]:
    """Record the digests of a run folder written before runs recorded them, after checking that every file reads
    back whole and belongs to the folder; RunError naming the first that does not."""
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not present:  # a new run: nothing to record yet
        return {}
    if CONFIG_FILE in present:
        _check_folder_name(run_dir)
    for name, keys in ((LAST_CHECKPOINT, LAST_KEYS), (KEPT_CHECKPOINT, ("model", "config", "epoch"))):
        if name in present:
            _check_zip(run_dir / name)  # torch.load itself ignores the CRC-32 of every tensor
            read_checkpoint(run_dir / name, keys)
    if SUMMARY_FILE in present:
        summary = read_json(run_dir / SUMMARY_FILE)
        if not {CONFIG_FILE, METRICS_FILE, LAST_CHECKPOINT, KEPT_CHECKPOINT} <= set(present):
            raise RunError(f"{run_dir / SUMMARY_FILE} says the run finished, but its files are incomplete; "
                           f"{_retrain_hint(run_dir)}.")
        epochs = read_checkpoint(run_dir / LAST_CHECKPOINT)["epoch"] + 1
        try:
            rows = len(pd.read_csv(run_dir / METRICS_FILE))
        except (ValueError, pd.errors.ParserError) as error:
            raise RunError(f"{run_dir / METRICS_FILE} is damaged ({error}); {_retrain_hint(run_dir)}.") from None
        if not summary.get("epochs") == epochs == rows:
            raise RunError(f"{run_dir} is inconsistent: summary.json says {summary.get('epochs')} epochs, the last "
                           f"checkpoint {epochs}, metrics.csv {rows} rows; {_retrain_hint(run_dir)}.")
    record = {name: [sha256_of(run_dir / name), None] for name in present}
    atomic_write_text(run_dir / DIGESTS_FILE, json.dumps(record, indent=2))
    warnings.warn(f"{run_dir} was written before runs recorded file digests: its files read back whole and their "
                  f"digests are now recorded in {DIGESTS_FILE}", stacklevel=3)
    return record


def _check_zip(path: Path) -> None:
    """RunError naming a checkpoint whose zip container is unreadable or fails a CRC-32 check."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        bad = f"{type(error).__name__}: {error}"
    if bad is not None:
        raise RunError(f"{path} is damaged (bad entry {bad}); {_retrain_hint(path.parent)}.")


def check_run_files(run_dir: Path, finished: bool) -> dict[str, str | None]:
    """The digest of every file of a run on disk, each checked against digests.json (a finished run: against its
    newest digest); RunError naming the first damaged, missing or foreign file."""
    run_dir = Path(run_dir)
    record = read_digests(run_dir)
    if record is None:
        record = _adopt_unrecorded(run_dir)
    on_disk: dict[str, str | None] = {}
    for name in RUN_FILES:
        path = run_dir / name
        accepted = record.get(name, [None])
        if finished:
            accepted = accepted[:1]
        digest = sha256_of(path) if path.exists() else None
        if digest in accepted:
            on_disk[name] = digest
            continue
        if digest is None:
            raise RunError(f"{path} is missing, though {DIGESTS_FILE} records it; {_retrain_hint(run_dir)}.")
        if name not in record:
            raise RunError(f"{path} is not a file this run wrote (not in its {DIGESTS_FILE}); move it away or "
                           f"{_retrain_hint(run_dir)}.")
        raise RunError(f"{path} is damaged: its SHA-256 matches none recorded in {run_dir / DIGESTS_FILE} (truncated, "
                       f"modified or copied from elsewhere); nothing was used or deleted. "
                       f"{_retrain_hint(run_dir).capitalize()}.")
    if on_disk.get(CONFIG_FILE):
        _check_folder_name(run_dir)  # name, config.json and digests must all agree
    return on_disk


class RunWriter:
    """Writes files of one run folder: records their digests in digests.json first, then replaces them atomically."""

    def __init__(self, run_dir: Path, on_disk: dict[str, str | None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.on_disk = dict(on_disk or {})

    def write(self, files: dict[str, bytes]) -> None:
        """Replace these files (name -> content), each one atomically, in the order given."""
        record = read_digests(self.run_dir) or {}
        new = {name: hashlib.sha256(payload).hexdigest() for name, payload in files.items()}
        for name, digest in new.items():
            before = self.on_disk.get(name)
            record[name] = [digest] if before == digest else [digest, before]
        atomic_write_text(self.run_dir / DIGESTS_FILE, json.dumps(record, indent=2))
        for name, payload in files.items():
            atomic_write_bytes(self.run_dir / name, payload)
            self.on_disk[name] = new[name]


def torch_bytes(obj) -> bytes:
    """What torch.save writes for `obj`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def clean_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files an interrupted atomic write left in a folder (call it holding the folder's lock)."""
    stale = sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold the lock of a run folder (`.<name>.lock` beside it) while training it; RunError naming the process that
    holds it. The operating system releases the lock of a process that dies, so a killed run never blocks."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks; one writer is then up to the user
        yield
        return
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    path = run_dir.parent / f".{run_dir.name}.lock"
    try:
        handle = open(path, "a+")
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        yield  # nobody can write this runs folder, this process included: reusing a finished run needs no lock
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise RunError(f"{run_dir} is being trained right now by {holder}; wait for it to finish and rerun the same "
                       "command (it then reuses the run), or stop that process.") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} since "
                     f"{dt.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def set_aside_path(run_dir: Path) -> Path:
    """Where `--force` keeps the previous run folder until the new run has its first checkpoint."""
    return Path(run_dir).parent / f".{Path(run_dir).name}.replaced"


def set_aside(run_dir: Path) -> bool:
    """Move a run folder to its set-aside place (for `--force`); False when there is no folder to move."""
    if not Path(run_dir).exists():
        return False
    os.replace(run_dir, set_aside_path(run_dir))
    return True


def restore_set_aside(run_dir: Path) -> bool:
    """Put a set-aside run folder back, dropping the new one unless it has a checkpoint (then the old one goes);
    True when the old folder was restored. Call it holding the run's lock."""
    aside = set_aside_path(run_dir)
    if not aside.exists():
        return False
    if (Path(run_dir) / LAST_CHECKPOINT).exists():
        shutil.rmtree(aside)
        return False
    if Path(run_dir).exists():
        shutil.rmtree(run_dir)  # a run with no finished epoch holds no more than its config and digests
    os.replace(aside, run_dir)
    return True


def discard_set_aside(run_dir: Path) -> None:
    """Delete the set-aside folder (the new run has its first checkpoint)."""
    aside = set_aside_path(run_dir)
    if aside.exists():
        shutil.rmtree(aside)


@dataclass
class Run:
    """A finished run read back: its folder, config, per-epoch metrics and summary."""

    path: Path
    config: Config
    metrics: pd.DataFrame
    summary: dict

    @property
    def best_total_epoch(self) -> int:
        """The epoch (0-based) of the lowest validation total under the beta of its own epoch: the original's rule,
        `best_epoch` in summary.json."""
        return int(self.summary["best_epoch"])

    @property
    def kept_epoch(self) -> int:
        """The epoch (0-based) of the kept checkpoint, the one every evaluation reads: the lowest of the run's
        `checkpoint_metric`, `checkpoint_epoch` in summary.json."""
        return int(self.summary["checkpoint_epoch"])

    def model(self, which: str = "kept", device: str | torch.device = "cpu") -> CVAE:
        """The CVAE with the kept weights (`kept_epoch`, the checkpoint every evaluation reads) or the 'last'
        epoch's, in eval mode."""
        name = {"kept": KEPT_CHECKPOINT, "last": LAST_CHECKPOINT}[which]
        checkpoint = read_checkpoint(self.path / name, ("model", "config"), device)
        model = CVAE(Config.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["model"])
        return model.to(device).eval()


def diverged_message(record: dict) -> str:
    """The one line that says a run diverged, where, what is kept and what to change."""
    good = record["last_good_epoch"]
    kept = (f"its last good checkpoint (epoch {good}) is kept" if good is not None
            else "no epoch finished cleanly, so there is no checkpoint")
    return (f"training diverged in epoch {record['epoch']} of {record['run']}: {record['what']}; {kept} and the run is "
            f"not marked finished. {record['fix']}")


def load_run(run_dir: str | Path) -> Run:
    """Read a finished run folder, every file checked against its recorded digest; RunError if it is missing,
    unfinished, diverged or damaged."""
    path = Path(run_dir)
    if not path.exists():
        raise RunError(f"run folder {path} does not exist; train it first (python -m cvae train ...).")
    if (path / DIVERGED_FILE).exists() and not is_finished(path):
        raise RunError(diverged_message(read_json(path / DIVERGED_FILE)))
    if not is_finished(path):
        raise RunError(f"run {path} has not finished; rerun the same training command to resume it.")
    check_run_files(path, finished=True)
    try:
        config = Config.from_dict(read_json(path / CONFIG_FILE))
    except (ConfigError, TypeError) as error:
        raise RunError(f"{path / CONFIG_FILE} is damaged ({error}); {_retrain_hint(path)}.") from None
    try:
        metrics = pd.read_csv(path / METRICS_FILE)
    except (ValueError, pd.errors.ParserError) as error:
        raise RunError(f"{path / METRICS_FILE} is damaged ({error}); {_retrain_hint(path)}.") from None
    summary = read_json(path / SUMMARY_FILE)
    return Run(path, config, metrics, summary)
