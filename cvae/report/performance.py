"""The performance appendix: this build's short benchmark, the cached switch study, the precision comparison and the
recorded GPU measurement, as tables and sentences."""

from __future__ import annotations

import json

import pandas as pd

from cvae.core.formatting import plain, significant
from cvae.core.original import ORIGINAL
from cvae.core.paths import PROJECT_ROOT

GPU_STUDY_FILE = PROJECT_ROOT / "results" / "gpu_study.json"  # measured by scripts/gpu_study.py, committed


def _stand_in_folder(config) -> str | None:
    """The chapter's data folder when it holds a stand-in, which the benchmark then measures on (so nothing looks
    elsewhere); None (the smoke profile's folder) for real data."""
    if config is None or config.data_source != "synthetic":
        return None
    from cvae.data.loading import resolve_data_dir

    return str(resolve_data_dir(config))


def benchmark(config=None) -> dict:
    """This build's benchmark (`cvae.training.bench.load_or_run_benchmark`): a cached `make bench` result for the same
    settings if there is one, else a short measurement (2 repeats of 6 steps) that keeps within the smoke budget."""
    from cvae.training.bench import load_or_run_benchmark

    return load_or_run_benchmark(profile="smoke", repeats=2, steps=6, warmup=1, data_dir=_stand_in_folder(config))


def benchmark_table(result: dict) -> pd.DataFrame:
    """The benchmark's headline numbers, with units."""
    rows = {
        "device": result["device_name"],
        "precision": result["precision"],
        "conventional pipeline (samples/s)": f"{result['conventional_samples_per_s']:,.0f}",
        "this project's loop (samples/s)": f"{result['project_samples_per_s']:,.0f}",
        "speedup": f"{result['speedup']:.2f}x",
        "FLOPs per training sample (MFLOP)": f"{result['flops_per_sample'] / 1e6:,.1f}",
        "achieved (GFLOP/s)": significant(result['achieved_gflops']),
        "fp32 matrix product (GFLOP/s)": significant(result['matmul_gflops']),
        "utilization of the fp32 rate": f"{result['utilization']:.2f}",
        "data share of the step": f"{result['data_fraction']:.2%}",
        "measured": f"{result['date'][:16].replace('T', ' ')} UTC, {result['repeats']} x {result['steps_per_repeat']} "
                    f"steps",
    }
    if result.get("matmul_bf16_gflops"):
        rows["bf16 matrix product (GFLOP/s)"] = significant(result['matmul_bf16_gflops'])
        rows["utilization of the bf16 rate"] = f"{result['utilization_vs_bf16_matmul']:.2f}"
    return pd.DataFrame({"value": rows})


def benchmark_sentence(result: dict) -> str:
    """One sentence on the benchmark, with its device and date."""
    return (f"On {result['device_name']} ({result['date'][:10]}), this project's training loop ran "
            f"{plain(result['project_samples_per_s']):,.0f} samples per second against "
            f"{plain(result['conventional_samples_per_s']):,.0f} for the conventional pipeline "
            f"({result['speedup']:.2f}x), at {result['utilization']:.2f} of the fp32 matrix-product rate.")


def study_workers_sentence(profile: str, result: dict) -> str:
    """How the study trains its runs on this machine, with the measured gain when `python -m cvae bench` recorded it."""
    from cvae.training.run_pool import default_workers

    workers = default_workers(profile)
    if workers == 1:
        how = "The study trains its runs one after another."
    else:
        how = f"The study trains its runs {workers} at a time, one process per core with one thread each."
    if "side_by_side_speedup" not in result:
        return how + (" The benchmark, python -m cvae bench, measures what that gains and what stacking the models "
                      "gains.")
    return (f"{how} In the benchmark on this machine, {result['side_by_side_workers']} such processes trained "
            f"{result['side_by_side_speedup']:.2f}x the samples per second of one run on every core. Stacking "
            f"{result['stacked_models']} models in one process with vmap gave {result['stacked_speedup']:.2f}x.")


def cached_switches() -> dict | None:
    """The last switch study (`python -m cvae bench --switches`, cached in the runs folder), or None: it runs on
    demand (`make bench`), never inside a book build."""
    from cvae.core.paths import runs_dir
    from cvae.training.switches import SWITCHES_FILE

    path = runs_dir() / SWITCHES_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def switch_table(result: dict) -> pd.DataFrame:
    """Samples/s, ratio to the fp32 NCHW baseline and utilization of each switch of a cached switch study."""
    return pd.DataFrame([{"switch": row["switch"], "samples/s": f"{row['samples_per_s']:,.0f}",
                          "x baseline": f"{row['relative_to_baseline']:.2f}",
                          "utilization (fp32)": f"{row['utilization']:.2f}"} for row in result["rows"]]
                        ).set_index("switch")


def switches_sentence(result: dict | None) -> str:
    """Where the switch study comes from (machine and date), or how to produce it."""
    if result is None:
        return ("This build did not measure what each performance switch gives, since that study takes minutes; "
                "make bench measures it.")
    best = max(result["rows"], key=lambda row: row["relative_to_baseline"])
    return (f"The switch study times each switch alone on top of a naive fp32 loop with the default memory layout, "
            f"round-robin in one run of python -m cvae bench --switches: batch 256, medians of {result['repeats']} "
            f"rounds of {result['steps']} steps, on {result['device_name']} on {result['date'][:10]}. The largest "
            f"gain, {best['relative_to_baseline']:.2f} times the baseline's samples per second, came from "
            f"{best['switch']}. This build reused that cached study rather than measure it again.")


def precision_sentence(run, differences: dict[str, tuple[float, float, float | None]]) -> str:
    """Whether the default precision changes the results, in words: the largest relative difference between the
    default and fp32 over the result criteria of `differences` (`cvae.report.ablation_tables.precision_differences`).
    Their training times are left out: one run each, and the first run of a build also pays start-up costs."""
    from cvae.report.ablation_tables import PRECISION_METRICS

    if run.summary.get("precision") != "bf16-autocast":
        return ("This machine has no native bf16, so the default already trains in fp32 and there is no precision to "
                "compare.")
    timing = PRECISION_METRICS["train_seconds"]
    relative = {label: abs(value) for label, (_, _, value) in differences.items()
                if value is not None and label != timing}
    if not relative:
        return "This machine trains the default under bf16 autocast; this build trained no fp32 run to compare."
    largest = max(relative, key=relative.get)
    # the two runs' wall times are not compared: the first run of a build also pays its start-up costs
    return (f"This machine trains the default under bf16 autocast. The same variant trained in fp32 on the same "
            f"profile, scale and seed differs from it by at most {100 * relative[largest]:.1f}%, in {largest}, over "
            f"{len(relative)} criteria. This is one seed, so the difference is not set against run-to-run noise. "
            f"What each precision does to speed is the switch study's measurement, not these two runs'.")


def gpu_study() -> dict | None:
    """The recorded GPU measurement (`scripts/gpu_study.py`), or None when none was made."""
    if not GPU_STUDY_FILE.exists():
        return None
    return json.loads(GPU_STUDY_FILE.read_text())


GPU_MODES = {"eager": "eager (a launch per kernel)", "cuda_graphs": "CUDA graph", "cuda_graphs_fused_adam":
             "CUDA graph + fused Adam (the default)", "cuda_graphs_fused_adam_nchw": "default, NCHW layout",
             "cuda_graphs_fused_adam_fp32": "default, fp32", "cuda_graphs_fused_adam_fp32_nchw": "default, fp32, NCHW"}


def gpu_table(study: dict | None) -> pd.DataFrame:
    """One row per execution mode of the GPU measurement: samples/s, seconds per epoch, 150 epochs, memory."""
    if study is None:
        return pd.DataFrame({"status": ["no GPU measurement recorded: run scripts/gpu_study.py on a GPU"]})
    conventional = (study.get("bench") or {}).get("conventional_samples_per_s")
    rows = []
    for mode, numbers in study["training"].items():
        rate = numbers["median_train_samples_per_s_after_first"]
        rows.append({"mode": GPU_MODES.get(mode, mode), "samples/s": f"{rate:,.0f}",
                     "s per epoch": f"{numbers['median_epoch_seconds_after_first']:.2f}",
                     "150 epochs (min)": f"{numbers['extrapolated_150_epoch_minutes']:.1f}",
                     "x conventional": f"{rate / conventional:.1f}" if conventional else "n/a",
                     "GPU memory (MB)": f"{numbers['peak_device_memory_mb']:,.0f}"})
    return pd.DataFrame(rows).set_index("mode")


def gpu_sentence(study: dict | None) -> str:
    """Where the GPU numbers come from, and what they show: the fastest mode's epoch, 150 epochs and its speed-up."""
    if study is None:
        return "No GPU measurement has been recorded."
    best = max(study["training"].values(), key=lambda n: n["median_train_samples_per_s_after_first"])
    minutes = best["extrapolated_150_epoch_minutes"]
    conventional = study["bench"]["conventional_samples_per_s"]
    speedup = best["median_train_samples_per_s_after_first"] / conventional
    return (f"Measured once on one {study['device']} on {study['measured_at'][:10]} with torch {study['torch']}, by "
            f"scripts/gpu_study.py on the stand-in at official sizes, not by this build. The "
            f"fastest mode trains an epoch of all {ORIGINAL['train_total']:,} images in "
            f"{best['median_epoch_seconds_after_first']:.2f} s with its validation: "
            f"150 epochs in {minutes:.1f} minutes. Its training steps alone ran {speedup:.1f} times as fast as the "
            f"conventional pipeline's {conventional:,.0f} samples/s. "
            f"The graph captures the whole training step, so an epoch costs one launch per step instead of a few "
            f"hundred.")


__all__ = ["benchmark", "benchmark_table", "benchmark_sentence", "cached_switches", "switch_table",
           "switches_sentence", "precision_sentence", "gpu_study", "gpu_table", "gpu_sentence", "GPU_STUDY_FILE"]
