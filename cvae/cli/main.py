"""The command line's parser and its one guard: every failure a user can cause ends in one line with exit status 2."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings

from cvae.cli.commands import (cmd_ablate, cmd_bench, cmd_book, cmd_data, cmd_evaluate, cmd_info, cmd_sample,
                               cmd_search, cmd_submission, cmd_synth, cmd_train)
from cvae.core.config import PROFILES, ConfigError
from cvae.core.labels import DATASETS


def _add_profile(parser: argparse.ArgumentParser, default: str = "quick") -> None:
    parser.add_argument("--profile", default=default, help=f"one of {', '.join(PROFILES)} (default: {default})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (repeatable), e.g. --set latent_dim=64")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="folder with the .npz files (default: see README)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m cvae`."""
    parser = argparse.ArgumentParser(prog="python -m cvae", description="Command line of the report: `python -m cvae {info,data,synth,train,evaluate,ablate,sample,search,bench,book,submission}`; see each `--help`.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_commands(sub)
    _add_study_commands(sub)
    _add_book_commands(sub)
    return parser


def _add_run_commands(sub) -> None:
    """info, data, synth, train, evaluate: one profile's configuration, data, run and evaluation."""
    p = sub.add_parser("info", help="config and parameter count of a profile")
    _add_profile(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("data", help="load (downloading if needed) and count the data")
    _add_profile(p)
    _add_data_dir(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("synth", help="write the synthetic MedMNIST-format stand-in (not medical data)")
    p.add_argument("--out", required=True, help=f"folder to write {'/'.join(DATASETS)} .npz into")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--per-class", type=int, default=300, help="images per class and split, > 0 (default 300)")
    size.add_argument("--official-sizes", action="store_true",
                      help="the official MedMNIST split sizes and per-class counts (452,855 images)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a profile (or reuse its finished run); prints the run folder")
    _add_profile(p)
    _add_data_dir(p)
    p.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="all evaluation metrics for the profile's run (cached)")
    _add_profile(p)
    _add_data_dir(p)
    p.add_argument("--force", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def _add_study_commands(sub) -> None:
    """ablate, sample, search, bench: the study, samples on demand, the weight search, the benchmark."""
    p = sub.add_parser("ablate", help="train (or reuse) ablations, or the whole study over seeds with its claims")
    p.add_argument("names", nargs="*", help="ablation names (see --list), or one override such as a_l1=0.1")
    p.add_argument("--list", action="store_true", help="print every run of the study: name, seed, overrides")
    p.add_argument("--study", "--standard", dest="study", action="store_true",
                   help="train (or reuse) and measure every run of the study and the main run; print every "
                        "claim with its test, margin, verdict, detectable effect and learning gate")
    p.add_argument("--aux-factorial", action="store_true",
                   help="train (or reuse) the aux-head factorial's cells and print its table and verdict")
    p.add_argument("--json", action="store_true",
                   help="with --study or --aux-factorial: the report as JSON (keys in the README)")
    _add_profile(p)
    _add_data_dir(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("sample", help="generate samples of any class from a trained run: a PNG grid and/or "
                                      "MedMNIST-format .npz files")
    p.add_argument("--run", default=None, help="a run folder (default: the profile's run, with --set overrides)")
    p.add_argument("--class", dest="classes", action="append", default=[], metavar="CLASS",
                   help="a global label 0-20 or a class name such as drusen (repeatable; default: every class)")
    p.add_argument("--modality", default=None, help=f"{', '.join(DATASETS)}: every class of it")
    p.add_argument("--n", type=int, default=16, help="samples per class (default 16)")
    p.add_argument("--temperature", type=float, default=1.0, help="scale of the prior's standard deviation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="PNG grid to write")
    p.add_argument("--npz", default=None, help="folder for one MedMNIST-format .npz per modality")
    p.add_argument("--list-classes", action="store_true", help="print the 21 global labels and names")
    _add_profile(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("search", help="the loss-weight search over seeds, outside the book build (cached runs; "
                                      "records its decision in runs/weight_search-<hash>.json)")
    p.add_argument("--json", action="store_true", help="the record as JSON (keys in the README)")
    _add_profile(p)
    _add_data_dir(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("bench", help="training throughput against the conventional MedMNIST pipeline")
    _add_profile(p, default="smoke")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--switches", action="store_true",
                   help="measure each performance switch against the fp32/NCHW baseline (writes runs/switches.json)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)


def _add_book_commands(sub) -> None:
    """book, submission: the book (HTML or PDF) and the archive to hand in."""
    p = sub.add_parser("book", help="get the data, run the notebooks with papermill, build the Jupyter Book")
    _add_profile(p)
    _add_data_dir(p)
    p.add_argument("--force", action="store_true", help="re-execute every notebook")
    p.add_argument("--pdf", action="store_true",
                   help="build the whole-book PDF (_build/pdf/book.pdf, needs TeX) instead of the HTML, from the same "
                        "executed notebooks")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("submission", help="zip the built book (PDF, HTML, notebooks, run records) for handing in")
    p.add_argument("--allow-synthetic", action="store_true",
                   help="package a build made on the synthetic stand-in (the archive says so)")
    p.add_argument("--checkpoints", action="store_true", help="include the runs' model checkpoints (large)")
    p.add_argument("--out", default=None, help="folder for the archive (default: _build/submission)")
    p.set_defaults(func=cmd_submission)


_FOLDERS_HINT = "the runs folder ($CVAE_RUNS_DIR) or the data folder (--data-dir, $CVAE_DATA_DIR)"
# what the user's machine can cause, by errno: (what happened, the fix); any other OSError is a bug (traceback)
_ENVIRONMENT_ERRORS = {
    errno.ENOSPC: ("no space left on the disk", f"free space there or move {_FOLDERS_HINT} to a disk with room; "
                   "a training run resumes from its last finished epoch"),
    errno.EDQUOT: ("disk quota exceeded", f"free space there or move {_FOLDERS_HINT} elsewhere"),
    errno.EROFS: ("read-only file system", f"choose a writable place for {_FOLDERS_HINT}"),
    errno.EACCES: ("permission denied", f"make it writable for you, or choose another place for {_FOLDERS_HINT}"),
    errno.EPERM: ("operation not permitted", f"make it writable for you, or choose another place for {_FOLDERS_HINT}"),
    errno.ENOTDIR: ("a part of this path is a file, not a folder", f"move that file away, or choose another place "
                    f"for {_FOLDERS_HINT}"),
    errno.EEXIST: ("a file is in the way of a folder", f"move it away, or choose another place for {_FOLDERS_HINT}"),
    errno.EISDIR: ("a folder is in the way of a file", "move it away"),
    errno.ENAMETOOLONG: ("the path is too long", f"choose a shorter place for {_FOLDERS_HINT}"),
    errno.EIO: ("input/output error", "the disk may be failing: copy what you can and check it"),
}


def environment_error_line(error: OSError) -> str | None:
    """One line naming the path, what went wrong and the fix, for an OSError the machine caused (full disk,
    read-only or occupied folder, ...); None for any other OSError."""
    if error.errno not in _ENVIRONMENT_ERRORS:
        return None
    what, fix = _ENVIRONMENT_ERRORS[error.errno]
    named = [str(p) for p in (error.filename, error.filename2) if p is not None]
    path = " -> ".join(named) or "(the system named no path)"
    return f"{path}: {what}; {fix}."


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors the user or the machine can cause end with one line on stderr and exit status 2 (1 for
    other failures: bugs keep their traceback)."""
    from cvae.data.errors import DataError
    from cvae.training.runs import RunError

    args = build_parser().parse_args(argv)
    warnings.showwarning = _warning_line  # a warning is one line too
    stdout = sys.stdout
    sys.stdout = _GuardedOutput(stdout)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a redirected output fails here, inside the handlers below, not after exit
        return code
    except (ConfigError, DataError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except _OutputError as error:
        _silence(stdout)
        if error.errno == errno.EPIPE:  # the reader stopped early (`cvae info | head -1`): not an error
            return 0
        print(f"error: the standard output cannot be written ({error}): redirect it to a file on a disk with room, "
              "or run the command without the redirection", file=sys.stderr)
        return 2
    except OSError as error:
        line = environment_error_line(error)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print(f"interrupted: {str(error) or 'rerun the same command to continue where it stopped'}", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout


class _OutputError(Exception):
    """Writing to the standard output failed (a full disk, /dev/full, a closed pipe): not a file of the project."""

    def __init__(self, error: OSError):
        super().__init__(error.strerror or str(error))
        self.errno = error.errno


class _GuardedOutput:
    """sys.stdout, with a failed write or flush raised as _OutputError so that it is not blamed on a project folder."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            raise _OutputError(error) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            raise _OutputError(error) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _silence(stream) -> None:
    """Point a failed standard output at /dev/null, so that the exit's own flush does not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError, AttributeError):  # a test's captured output has no file descriptor
        pass
