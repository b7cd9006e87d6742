"""The GPU measurement of the performance issue, as one prepared script (about 6-8 minutes on one H100).

1. writes the synthetic stand-in at the official sizes (352,939 training images);
2. runs `python -m cvae bench --json` on CUDA (the conventional MedMNIST pipeline against the project's loop);
3. trains the `full` profile on it for a few epochs, eagerly and with the training step as a CUDA graph
   (`cuda_graphs`), each in its own runs folder (the two share a config hash);
4. writes OUT/gpu_study.json: samples/s, epoch seconds, the extrapolated 150-epoch time, GPU memory, the speedup over
   the conventional pipeline, and how far the two execution modes' losses differ.

Usage: python scripts/gpu_study.py OUT [--epochs 3] [--device cuda]. Each stage runs as a subprocess with its own time
limit; a stage that fails is recorded with its error and the script goes on. Nothing else in the project needs a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: the repository's cvae
from cvae.core.paths import METRICS_FILE, SUMMARY_FILE  # noqa: E402

FULL_TRAIN_IMAGES = 352_939
PAPER_EPOCHS = 150
# execution modes of the training run: name -> config overrides (performance switches; autocast changes the hash)
MODES = {
    "eager": ["cuda_graphs=false"],
    "cuda_graphs": ["cuda_graphs=true"],
    "cuda_graphs_fused_adam": ["cuda_graphs=true", "fused_adam=true"],
    "cuda_graphs_fused_adam_nchw": ["cuda_graphs=true", "fused_adam=true", "channels_last=false"],
    "cuda_graphs_fused_adam_fp32": ["cuda_graphs=true", "fused_adam=true", "autocast=none"],
    "cuda_graphs_fused_adam_fp32_nchw": ["cuda_graphs=true", "fused_adam=true", "autocast=none",
                                         "channels_last=false"],
}


def run_stage(name: str, command: list[str], timeout: float, env: dict, log: Path) -> dict:
    """Run one command with a time limit; returns {name, seconds, returncode, stdout tail}."""
    tick = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as error:
        code, stdout, stderr = "timeout", error.stdout or "", error.stderr or ""
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
    seconds = time.perf_counter() - tick
    with log.open("a") as handle:
        handle.write(f"\n===== {name} ({seconds:.1f} s, exit {code}): {' '.join(command)}\n{stdout}\n{stderr[-6000:]}\n")
    print(f"[gpu-study] {name}: {seconds:.1f} s, exit {code}", flush=True)
    return {"name": name, "seconds": seconds, "returncode": code, "stdout": stdout, "stderr_tail": stderr[-2000:]}


def training_numbers(run_dir: Path) -> dict:
    """Per-epoch timings of a (possibly unfinished) run folder, and its summary when it finished."""
    import pandas as pd

    metrics = pd.read_csv(run_dir / METRICS_FILE)
    summary_path = run_dir / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    steady = metrics.iloc[1:] if len(metrics) > 1 else metrics  # epoch 1 includes cuDNN autotuning and capture
    epoch_seconds = statistics.median(steady["seconds"])
    samples_per_s = statistics.median(steady["train_samples_per_s"])
    return {
        "epochs": int(len(metrics)), "epoch_seconds": list(map(float, metrics["seconds"])),
        "median_epoch_seconds_after_first": float(epoch_seconds),
        "median_train_samples_per_s_after_first": float(samples_per_s),
        "extrapolated_150_epoch_minutes": float(epoch_seconds * PAPER_EPOCHS / 60),
        "train_total_per_epoch": list(map(float, metrics["train_total"])),
        "val_total_per_epoch": list(map(float, metrics["val_total"])),
        "peak_device_memory_mb": summary.get("peak_device_memory_mb"),
        "precision": summary.get("precision"), "cuda_graphs": summary.get("cuda_graphs"),
        "graph_captures": summary.get("graph_captures"), "environment": summary.get("environment"),
        "train_images": (summary.get("sizes") or {}).get("train"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/gpu-study"))
    parser.add_argument("--synthetic-per-class", type=int, default=0, help="0 = official sizes (the default)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--modes", default="eager,cuda_graphs,cuda_graphs_fused_adam",
                        help=f"comma-separated training modes, from: {', '.join(MODES)}")
    parser.add_argument("--skip-bench", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "gpu_study.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    python = [sys.executable, "-m", "cvae"]
    data = args.scratch / ("standin-official" if args.synthetic_per_class == 0 else f"standin-{args.synthetic_per_class}")
    result: dict = {"stages": [], "device_requested": args.device}
    try:
        import torch

        result["torch"] = torch.__version__
        result["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception as error:  # noqa: BLE001 - recorded, the stages say more
        result["torch_error"] = repr(error)
    size = ["--official-sizes"] if args.synthetic_per_class == 0 else ["--per-class", str(args.synthetic_per_class)]
    if not (data / "pathmnist.npz").exists():
        result["stages"].append(run_stage("synth", python + ["synth", "--out", str(data), *size], 300, env, log))
    result["bench"] = None
    if not args.skip_bench:
        bench_env = dict(env, CVAE_RUNS_DIR=str(args.scratch / "runs-bench"))
        bench = run_stage("bench", python + ["bench", "--json", "--repeats", "3", "--set", f"device={args.device}"],
                          180, bench_env, log)
        result["stages"].append(bench)
        try:
            result["bench"] = json.loads(bench["stdout"])
        except (json.JSONDecodeError, TypeError):
            pass
    common = ["train", "--profile", args.profile, "--data-dir", str(data), "--set", "data_source=synthetic",
              "--set", f"synthetic_per_class={args.synthetic_per_class}", "--set", f"epochs={args.epochs}",
              "--set", f"device={args.device}"]
    result["training"] = {}
    for mode in args.modes.split(","):
        extra = [item for setting in MODES[mode] for item in ("--set", setting)]
        runs = args.scratch / f"runs-{mode}"
        stage = run_stage(f"train {mode}", python + common + extra, 240, dict(env, CVAE_RUNS_DIR=str(runs)), log)
        result["stages"].append(stage)
        folders = sorted(runs.glob("run-*"))
        if folders and (folders[0] / METRICS_FILE).exists():
            result["training"][mode] = training_numbers(folders[0])
    conventional = (result.get("bench") or {}).get("conventional_samples_per_s")
    for mode, numbers in result["training"].items():
        if conventional:
            numbers["speedup_over_conventional"] = numbers["median_train_samples_per_s_after_first"] / conventional
    eager, graphed = result["training"].get("eager"), result["training"].get("cuda_graphs")
    if eager and graphed:
        result["graphs_vs_eager"] = {
            "samples_per_s_ratio": graphed["median_train_samples_per_s_after_first"]
            / eager["median_train_samples_per_s_after_first"],
            "max_relative_difference_train_total": max(abs(a - b) / abs(b) for a, b in zip(
                graphed["train_total_per_epoch"], eager["train_total_per_epoch"])),
            "max_relative_difference_val_total": max(abs(a - b) / abs(b) for a, b in zip(
                graphed["val_total_per_epoch"], eager["val_total_per_epoch"])),
        }
    for stage in result["stages"]:
        stage.pop("stdout", None)
    (args.out / "gpu_study.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=1)[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
