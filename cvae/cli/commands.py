"""What each command of `python -m cvae` does, given its parsed arguments; each returns the exit status."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

from cvae.core.config import ConfigError, make_config, parse_overrides, require_paper_datasets
from cvae.core.labels import DATASETS


def _config(args):
    """The configuration the arguments name: the profile, every --set override and --data-dir."""
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
        for flag in DATASETS:
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
    require_paper_datasets(run.config, "sampling")
    started = time.perf_counter()
    images, drawn = draw(run.model("kept"), labels, args.n, args.temperature, args.seed, progress=True)
    seconds = time.perf_counter() - started
    marker = {"generated": True, "run": run.path.name, "config_hash": run.summary["config_hash"],
              "checkpoint_epoch": run.kept_epoch, "temperature": args.temperature,
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
    from cvae.training.bench import format_table, run_benchmark, save_benchmark
    from cvae.training.stacking import together_result
    from cvae.training.switches import load_or_run_switches

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
