"""Command line: `python -m cvae {info,data,synth,train,evaluate,ablate,bench,book,submission}`; see each `--help`."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from pathlib import Path

from cvae.core.config import PROFILES, ConfigError, make_config, parse_overrides


def _add_profile(parser: argparse.ArgumentParser, default: str = "quick") -> None:
    parser.add_argument("--profile", default=default, help=f"one of {', '.join(PROFILES)} (default: {default})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (repeatable), e.g. --set latent_dim=64")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="folder with the .npz files (default: see README)")


def _config(args):
    overrides = list(args.overrides)
    if getattr(args, "data_dir", None):
        overrides.append(f"data_dir={args.data_dir}")
    return make_config(args.profile, overrides)


def cmd_info(args) -> int:
    from cvae.core.model import CVAE, count_parameters

    config = _config(args)
    info = {"profile": args.profile, "config_hash": config.config_hash(),
            "parameters": count_parameters(CVAE(config)), "config": config.to_dict()}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"profile {info['profile']}  config {info['config_hash']}  trainable parameters {info['parameters']:,}")
        for key, value in info["config"].items():
            print(f"  {key:22s} {value}")
    return 0


def cmd_data(args) -> int:
    from cvae.data.loading import load_data, summary

    config = _config(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_data(config, progress=not args.json)
    result = summary(data)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        label = "SYNTHETIC stand-in (not medical data)" if data.synthetic else "MedMNIST"
        print(f"{label} from {data.data_dir}")
        for flag in ("pathmnist", "tissuemnist", "octmnist"):
            r = result[flag]
            print(f"  {flag:12s} train {r['train']:>7,}  val {r['val']:>6,}  test {r['test']:>6,}  "
                  f"classes {r['classes']}  md5 {'ok' if r['md5_ok'] else 'differs from the official release'}")
        print(f"  global classes: {result['global_classes']}")
    return 0


def cmd_synth(args) -> int:
    from cvae.data.synthetic import write_stand_in

    if not args.official_sizes and args.per_class <= 0:
        raise ConfigError(f"--per-class must be a positive number of images per class and split, got {args.per_class}; "
                          "for the official MedMNIST split sizes use --official-sizes")
    per_class = None if args.official_sizes else args.per_class
    folder = write_stand_in(args.out, per_class=per_class, seed=args.seed)
    print(f"wrote the SYNTHETIC stand-in (not medical data) to {folder}")
    return 0


def cmd_train(args) -> int:
    from cvae.training.train import train

    config = _config(args)
    run_dir = train(config, force=args.force, progress=True)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports (it is the one that wrote)
        print(run_dir)
    return 0


def cmd_evaluate(args) -> int:
    from cvae.evaluation.run_evaluation import evaluate_run

    config = _config(args)
    result = evaluate_run(config, force=args.force, progress=not args.json)
    print(json.dumps(result, indent=2) if args.json else _format_nested(result))
    return 0


def cmd_ablate(args) -> int:
    from cvae.study import ablations
    from cvae.study import runner as study

    config = _config(args)  # ConfigError (bad --set) before anything trains
    if args.list:
        for run in study.study_runs(args.profile, args.overrides, config.seed):
            changes = " ".join(f"{k}={v}" for k, v in ablations.variant_overrides(run.name).items())
            print(f"{run.name:24s} seed {run.seed}  {changes or '(the base configuration)'}")
        return 0
    if args.aux_factorial:
        from cvae.study import aux_factorial

        table = study.run_study(args.profile, args.overrides, config.seed, data_dir=args.data_dir,
                                names=list(aux_factorial.CELLS.values()), progress=not args.json)
        report = aux_factorial.report(table)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(aux_factorial.summary_table(aux_factorial.factorial_rows(table)).to_string())
            print(report["sentence"])
        return 0
    if args.study:
        from cvae.evaluation.run_evaluation import evaluate_run
        from cvae.study.claims import claims_report
        from cvae.study.findings import table as claims_table
        from cvae.training.runs import load_run, run_dir_for

        table = study.run_study(args.profile, args.overrides, config.seed, data_dir=args.data_dir,
                                progress=not args.json)
        evaluation = evaluate_run(config, progress=not args.json)  # the claims need the main run too
        summary = load_run(run_dir_for(config)).summary
        claims = claims_report(claims_table(evaluation, summary, config.epochs, table))
        report = study.study_report(table, args.profile, config.seed, claims)
        print(json.dumps(report, indent=2) if args.json else study.format_report(report))
        return 0
    if not args.names and not args.overrides:
        raise ConfigError("name an ablation (see --list), give --study, or give --set key=value overrides")
    for name in args.names or [None]:
        run_dir = ablations.run_ablation(name, profile=args.profile, extra=args.overrides, data_dir=args.data_dir)
        print(f"{name or 'custom'}\t{run_dir}")
    return 0


def cmd_sample(args) -> int:
    import time

    from cvae.core.labels import CLASS_NAMES
    from cvae.evaluation.sampling import draw, resolve_classes, write_npz
    from cvae.training.runs import RunError, is_finished, load_run, run_dir_for

    if args.list_classes:
        for label, name in enumerate(CLASS_NAMES):
            print(f"{label:2d}  {name}")
        return 0
    labels = resolve_classes(args.classes, args.modality)  # ConfigError before any model is read
    if not (args.out or args.npz):
        raise ConfigError("nothing to write: give --out grid.png, --npz FOLDER, or both")
    run_dir = Path(args.run) if args.run else run_dir_for(_config(args))
    if not is_finished(run_dir):
        raise RunError(f"no finished run in {run_dir}; train it first (python -m cvae train --profile "
                       f"{args.profile}) or name one with --run")
    run = load_run(run_dir)
    started = time.perf_counter()
    images, drawn = draw(run.model("best"), labels, args.n, args.temperature, args.seed, progress=True)
    seconds = time.perf_counter() - started
    marker = {"generated": True, "run": run.path.name, "config_hash": run.summary["config_hash"],
              "checkpoint_epoch": run.summary.get("checkpoint_epoch"), "temperature": args.temperature,
              "seed": args.seed, "synthetic_training_data": bool(run.summary["synthetic_data"])}
    if args.out:
        from cvae.report.plots import sample_grid

        trained_on = "the synthetic stand-in" if run.summary["synthetic_data"] else "MedMNIST"
        title = (f"Samples of {run.path.name} (trained on {trained_on}), temperature {args.temperature:g}, "
                 f"seed {args.seed}")
        figure = sample_grid(images, drawn, per_row=min(12, args.n), title=title)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.out, dpi=150, bbox_inches="tight")
        print(f"grid: {args.out}")
    for path in write_npz(Path(args.npz), images, drawn, marker) if args.npz else []:
        print(f"npz: {path}")
    print(f"{len(drawn):,} samples of {len(labels)} classes in {seconds:.2f} s ({len(drawn) / seconds:,.0f} samples/s)")
    return 0


def cmd_search(args) -> int:
    from cvae.study import runner as study

    config = _config(args)  # ConfigError (bad --set) before anything trains
    record = study.run_search(args.profile, args.overrides, config.seed, data_dir=args.data_dir,
                              progress=not args.json)
    print(json.dumps(record, indent=2) if args.json else study.format_search(record))
    return 0


def cmd_bench(args) -> int:
    from cvae.training.bench import format_table, load_or_run_switches, run_benchmark, save_benchmark
    from cvae.training.stacking import together_result

    if args.switches:
        result = load_or_run_switches(profile=args.profile, repeats=args.repeats, force=True)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for row in result["rows"]:
                print(f"{row['switch']:<50} {row['samples_per_s']:>8,.0f} samples/s  "
                      f"{row['relative_to_baseline']:.2f}x  utilization {row['utilization']:.2f}")
        return 0
    result = run_benchmark(profile=args.profile, repeats=args.repeats, overrides=parse_overrides(args.overrides))
    result.update(together_result(args.profile, parse_overrides(args.overrides), result))
    save_benchmark(result)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def cmd_book(args) -> int:
    from cvae.publish.book import build_book

    html = build_book(profile=args.profile, data_dir=args.data_dir, overrides=args.overrides, force=args.force,
                      pdf=args.pdf)
    print(html)
    return 0


def cmd_submission(args) -> int:
    from cvae.publish.submission import write_submission

    archive = write_submission(allow_synthetic=args.allow_synthetic, include_checkpoints=args.checkpoints,
                               out_dir=args.out)
    print(archive)
    return 0


def _format_nested(value, indent: int = 0) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{' ' * indent}{k}:" + ("\n" + _format_nested(v, indent + 2) if isinstance(v, dict)
                                                   else f" {v:.4g}" if isinstance(v, float) else f" {v}")
                         for k, v in value.items())
    return f"{' ' * indent}{value}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m cvae`."""
    parser = argparse.ArgumentParser(prog="python -m cvae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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
    p.add_argument("--out", required=True, help="folder to write pathmnist/tissuemnist/octmnist .npz into")
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
    p.add_argument("--modality", default=None, help="pathmnist, tissuemnist or octmnist: every class of it")
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
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
