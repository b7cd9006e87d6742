"""Training throughput: the project's loop against the conventional MedMNIST pipeline, on the same model and step.

`python -m cvae bench [--json]` (and `make bench`) measures, in one process, one after the other in every repeat:

* a large fp32 matmul (the machine's practical peak, GFLOP/s);
* the conventional pipeline, as MedMNIST's own experiments feed a model: medmnist's Dataset classes with
  per-sample PIL transforms (PathMNIST: `Grayscale`, then `ToTensor`) through
  `torch.utils.data.DataLoader(batch_size=256, shuffle=True)` with the default `num_workers=0`, as in MedMNIST's
  `examples/getting_started.ipynb` (its `Normalize(mean=[.5], std=[.5])` is left out: this model reads [0, 1]
  pixels), every batch copied to the device;
* the project's loop (`cvae.training.train`): resident uint8 tensors on the device, one index per batch.

Both feed the same `cvae.training.train.train_step` (forward, all six loss terms, backward, clipping, Adam) of the same
model at batch 256. Per step the time to produce the batch and the time of the step are taken with
`time.perf_counter` (on a GPU after a synchronisation, which only the benchmark does). Reported numbers are
medians over repeats; warm-up steps are excluded. The stand-in files are used for both pipelines; medmnist's
`__len__` asserts the official split sizes, so the conventional pipeline's Dataset subclasses override only
`__len__` (to the number of images in the file); `__getitem__` is medmnist's own.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import statistics
import time
from pathlib import Path

import medmnist
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader
from torch.utils.flop_counter import FlopCounterMode

from cvae.core.config import PERFORMANCE_FIELDS, Config, make_config
from cvae.core.labels import CLASS_OFFSETS, DATASETS
from cvae.core.machine import device_name, machine_record
from cvae.core.original import ORIGINAL
from cvae.core.paths import runs_dir
from cvae.data.loading import Split, load_data
from cvae.training.runs import atomic_write_text

BENCHMARK_FILE = "benchmark.json"
BATCH_SIZE = 256
CONVENTIONAL_NUM_WORKERS = 0  # MedMNIST's getting-started example uses DataLoader's default


# ------------------------------------------------------------------------------------------------ the pipelines
def _stand_in_class(flag: str):
    """medmnist's Dataset class for `flag` with `__len__` returning the file's size (the stand-in may be smaller
    than the official split, which medmnist's `__len__` asserts). Nothing else is changed."""
    base = getattr(medmnist, medmnist.INFO[flag]["python_class"])
    return type(f"StandIn{base.__name__}", (base,), {"__len__": lambda self: int(self.imgs.shape[0])})


class _GlobalTarget:
    """target_transform: a (1,) local label -> (2,) int64 [global label, modality]."""

    def __init__(self, offset: int, modality: int) -> None:
        self.offset, self.modality = offset, modality

    def __call__(self, target: np.ndarray) -> np.ndarray:
        return np.array([int(target[0]) + self.offset, self.modality], dtype=np.int64)


def conventional_loader(data_dir: str | Path, batch_size: int = BATCH_SIZE, seed: int = 0,
                        num_workers: int = CONVENTIONAL_NUM_WORKERS) -> DataLoader:
    """The conventional pipeline over the three training splits: medmnist Datasets with per-sample transforms
    (PathMNIST RGB -> gray by PIL's ITU-R 601 luma, the same weights as `cvae.data.loading.rgb_to_gray`) in a
    ConcatDataset, through a shuffling DataLoader. Batches: (images (B,1,28,28) in [0,1], targets (B,2))."""
    from torchvision import transforms

    parts = []
    for modality, flag in enumerate(DATASETS):
        steps = [transforms.Grayscale(num_output_channels=1)] if medmnist.INFO[flag]["n_channels"] == 3 else []
        transform = transforms.Compose([*steps, transforms.ToTensor()])
        parts.append(_stand_in_class(flag)(split="train", root=str(data_dir), transform=transform,
                                           target_transform=_GlobalTarget(CLASS_OFFSETS[flag], modality)))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(ConcatDataset(parts), batch_size=batch_size, shuffle=True, num_workers=num_workers,
                      generator=generator, drop_last=True)


def _conventional_batches(loader: DataLoader, device: torch.device, channels_last: bool):
    while True:
        for images, targets in loader:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = targets.to(device, non_blocking=True)
            yield images, targets[:, 0], targets[:, 1]


def project_batches(split: Split, batch_size: int, channels_last: bool, seed: int):
    from cvae.training.epochs import resident_batches

    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(split), generator=generator).to(split.images.device)
        order = order[: len(order) // batch_size * batch_size]  # full batches only, like drop_last above
        yield from resident_batches(split, order, batch_size, channels_last)


# ------------------------------------------------------------------------------------------------ measurements
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Achieved GFLOP/s of an n x n matmul in `dtype` (2 n^3 FLOP), best of `repeats` after one warm-up."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def training_flops(model, optimizer, batch, config: Config, amp_dtype=None) -> int:
    """FLOPs of one training step (forward with all losses, backward) on `batch`, by torch.utils.flop_counter."""
    from cvae.training.epochs import train_step

    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, batch, config, beta=config.beta_max, amp_dtype=amp_dtype)
    return int(counter.get_total_flops())


def timed_steps(batches, step, steps: int, device: torch.device) -> tuple[float, float]:
    """Run `steps` steps; returns (seconds producing batches, seconds in steps)."""
    data_seconds = step_seconds = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        _sync(device)
        fetched = time.perf_counter()
        step(batch)
        _sync(device)
        data_seconds += fetched - start
        step_seconds += time.perf_counter() - fetched
    return data_seconds, step_seconds


def _peak_memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS (ru_maxrss)"


def run_benchmark(profile: str = "smoke", repeats: int = 5, steps: int = 12, warmup: int = 3,
                  overrides: dict | None = None, data_dir: str | Path | None = None, save: bool = True,
                  include_conventional: bool = True, matmul_size: int = 2048) -> dict:
    """Measure both pipelines (see the module docstring) and return the result dict; medians over `repeats`.

    Each repeat times `steps` steps of the conventional pipeline, then `steps` of the project's loop, after a
    matmul reference. `overrides` change the profile's config (e.g. {"channels_last": True}); the batch size is
    always 256. With `save` the result is also written to `<runs>/benchmark.json` (see load_or_run_benchmark).
    """
    from cvae.training.epochs import seed_everything, train_step
    from cvae.training.precision import autocast_dtype, select_device
    from cvae.training.train import prepare_model

    if repeats < 1 or steps < 1 or warmup < 0:
        raise ValueError("repeats and steps must be >= 1 and warmup >= 0")
    config = make_config(profile, {**(overrides or {}), "batch_size": BATCH_SIZE})
    started = time.perf_counter()
    data = load_data(config, data_dir, progress=False)
    device = select_device(config.device)
    amp_dtype = autocast_dtype(config, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    seed_everything(config.seed)
    model, trainer, optimizer, _ = prepare_model(config, device)
    beta = config.beta_max

    default_threads = torch.get_num_threads()
    training_threads = config.threads or default_threads

    def step(batch):
        train_step(trainer, optimizer, batch, config, beta, amp_dtype)

    def timed(batches):  # training at the config's thread count; the matmul reference always uses every core
        torch.set_num_threads(training_threads)
        try:
            return timed_steps(batches, step, steps, device)
        finally:
            torch.set_num_threads(default_threads)

    train_split = Split(data.train.images.to(device), data.train.labels.to(device), data.train.modalities.to(device))
    project = project_batches(train_split, BATCH_SIZE, config.channels_last, config.seed)
    conventional = (_conventional_batches(conventional_loader(data.data_dir, BATCH_SIZE, config.seed), device,
                                          config.channels_last) if include_conventional else None)
    flops = training_flops(model, optimizer, next(project), config, amp_dtype)
    torch.set_num_threads(training_threads)
    for _ in range(warmup):  # includes torch.compile's compilation when asked for
        step(next(project))
        if conventional is not None:
            step(next(conventional))
    torch.set_num_threads(default_threads)
    _sync(device)

    records = _rounds(repeats, steps, device, matmul_size, amp_dtype == torch.bfloat16, timed, project, conventional)
    result = _benchmark_record(config, profile, overrides, data, device, amp_dtype, records, flops / BATCH_SIZE)
    result.update(repeats=repeats, steps_per_repeat=steps, warmup_steps=warmup, matmul_size=matmul_size,
                  threads=training_threads, matmul_threads=default_threads, seconds=time.perf_counter() - started)
    if save:
        save_benchmark(result)
    return result


def _rounds(repeats: int, steps: int, device: torch.device, matmul_size: int, bf16: bool, timed, project,
            conventional) -> dict[str, list[float]]:
    """Each round: the fp32 (and, when the model runs in bf16, the bf16) matmul reference, then `steps` steps of the
    conventional pipeline and of the project's loop; the samples/s and data shares of every round."""
    records = {"matmul_gflops": [], "matmul_bf16_gflops": [], "conventional_samples_per_s": [],
               "conventional_data_fraction": [], "project_samples_per_s": [], "data_fraction": []}
    for _ in range(repeats):
        records["matmul_gflops"].append(matmul_gflops(device, matmul_size))
        if bf16:  # the ceiling of the precision the model actually ran in, for honesty
            records["matmul_bf16_gflops"].append(matmul_gflops(device, matmul_size, dtype=torch.bfloat16))
        if conventional is not None:
            data_s, step_s = timed(conventional)
            records["conventional_samples_per_s"].append(steps * BATCH_SIZE / (data_s + step_s))
            records["conventional_data_fraction"].append(data_s / (data_s + step_s))
        data_s, step_s = timed(project)
        records["project_samples_per_s"].append(steps * BATCH_SIZE / (data_s + step_s))
        records["data_fraction"].append(data_s / (data_s + step_s))
    return records


def _benchmark_record(config: Config, profile: str, overrides: dict | None, data, device: torch.device,
                      amp_dtype, records: dict[str, list[float]], flops_per_sample: float) -> dict:
    """The benchmark's result from its rounds: medians, ratios, utilization, estimates, the settings measured."""
    median = {key: statistics.median(values) if values else float("nan") for key, values in records.items()}
    peak_mb, peak_kind = _peak_memory_mb(device)
    achieved = flops_per_sample * median["project_samples_per_s"] / 1e9
    return {
        "device": device.type,
        "device_name": device_name(device),
        "profile": profile,
        "overrides": {k: v for k, v in (overrides or {}).items()},
        "batch_size": BATCH_SIZE,
        "train_samples": len(data.train),
        "synthetic_data": data.synthetic,
        "precision": "bf16-autocast" if amp_dtype == torch.bfloat16 else "fp32",
        "channels_last": config.channels_last,
        "compile": config.compile,
        "fused_adam": config.fused_adam,
        "conventional_pipeline": (f"medmnist Dataset (per-sample PIL Grayscale for PathMNIST + ToTensor; __len__ "
                                  f"overridden to the file's size) -> ConcatDataset -> DataLoader(batch_size="
                                  f"{BATCH_SIZE}, shuffle=True, num_workers={CONVENTIONAL_NUM_WORKERS})"),
        "project_pipeline": "resident uint8 tensors on the device, one index per batch (cvae.training.train)",
        "conventional_samples_per_s": median["conventional_samples_per_s"],
        "conventional_data_fraction": median["conventional_data_fraction"],
        "project_samples_per_s": median["project_samples_per_s"],
        "speedup": median["project_samples_per_s"] / median["conventional_samples_per_s"],
        "flops_per_sample": flops_per_sample,
        "achieved_gflops": achieved,
        "matmul_gflops": median["matmul_gflops"],
        "utilization": achieved / median["matmul_gflops"],
        "matmul_bf16_gflops": median["matmul_bf16_gflops"],
        "utilization_vs_bf16_matmul": achieved / median["matmul_bf16_gflops"],
        "data_fraction": median["data_fraction"],
        "peak_memory_mb": peak_mb,
        "peak_memory_kind": peak_kind,
        "full_profile_epoch_minutes_estimate": ORIGINAL["train_total"] / median["project_samples_per_s"] / 60,
        "full_profile_hours_estimate":
            Config().epochs * ORIGINAL["train_total"] / median["project_samples_per_s"] / 3600,
        "samples": {key: values for key, values in records.items()},
        "settings": _throughput_settings(config),
        **machine_record(device),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _throughput_settings(config: Config) -> dict:
    """The config fields that change a benchmark's numbers (a cached result with other values is stale)."""
    return {key: getattr(config, key) for key in ("autocast", "device", *PERFORMANCE_FIELDS)}


def benchmark_path() -> Path:
    """Where the latest benchmark result is cached: <runs>/benchmark.json."""
    return runs_dir() / BENCHMARK_FILE


def save_benchmark(result: dict, path: Path | None = None) -> Path:
    """Write a result atomically as JSON (NaN written as null); returns the path."""
    path = Path(path) if path else benchmark_path()
    clean = json.loads(json.dumps(result, default=str).replace("NaN", "null"))
    atomic_write_text(path, json.dumps(clean, indent=2))
    return path


def load_or_run_benchmark(profile: str = "smoke", repeats: int = 5, force: bool = False, **kwargs) -> dict:
    """The cached result at <runs>/benchmark.json if it exists for this profile and the same throughput settings
    (and not `force`), else a fresh run_benchmark (which writes the cache). Keys: see `run_benchmark`; `date` (UTC
    ISO), `device`, `device_name` and `torch` say when and where it was measured."""
    path = benchmark_path()
    if path.exists() and not force:
        cached = json.loads(path.read_text())
        expected = _throughput_settings(make_config(profile, kwargs.get("overrides") or {}))
        if cached.get("profile") == profile and cached.get("settings") == expected:
            return cached
    return run_benchmark(profile=profile, repeats=repeats, save=True, **kwargs)


def format_table(result: dict) -> str:
    """A plain-text table of a benchmark result."""
    def number(value, fmt):
        return "n/a" if value is None or (isinstance(value, float) and value != value) else format(value, fmt)

    rows = [
        ("device", f"{result['device']} ({result['device_name']})"),
        ("precision / channels_last / compile", f"{result['precision']} / {result['channels_last']} / "
                                               f"{result['compile']}"),
        ("training threads / matmul threads", f"{result['threads']} / {result['matmul_threads']}"),
        ("data", f"{'synthetic stand-in' if result['synthetic_data'] else 'MedMNIST'}, profile {result['profile']}, "
                 f"batch {result['batch_size']}"),
        ("conventional pipeline, samples/s", number(result["conventional_samples_per_s"], ",.0f")),
        ("  its data share of step time", number(result["conventional_data_fraction"], ".1%")),
        ("project loop, samples/s", number(result["project_samples_per_s"], ",.0f")),
        ("speedup (project / conventional)", number(result["speedup"], ".2f") + "x"),
        ("FLOPs per training sample", number(result["flops_per_sample"] / 1e6, ",.1f") + " MFLOP"),
        ("achieved GFLOP/s", number(result["achieved_gflops"], ",.1f")),
        ("fp32 matmul GFLOP/s (same run)", number(result["matmul_gflops"], ",.1f")),
        ("utilization (achieved / fp32 matmul)", number(result["utilization"], ".2f")),
        ("bf16 matmul GFLOP/s (same run)", number(result.get("matmul_bf16_gflops"), ",.1f")),
        ("utilization (achieved / bf16 matmul)", number(result.get("utilization_vs_bf16_matmul"), ".2f")),
        ("data share of step time (project)", number(result["data_fraction"], ".2%")),
        ("peak memory", number(result["peak_memory_mb"], ",.0f") + f" MB ({result['peak_memory_kind']})"),
        ("full profile, 150 epochs (estimate)", number(result["full_profile_hours_estimate"], ".2f") + " h"),
    ]
    if "stacked_speedup" in result:
        rows += [(f"{result['stacked_models']} models stacked (vmap) / one alone",
                  number(result["stacked_speedup"], ".2f") + "x"),
                 (f"{result['side_by_side_workers']} one-thread processes / one alone",
                  number(result["side_by_side_speedup"], ".2f") + "x"),
                 ("  their utilization (achieved / bf16 matmul)",
                  number(result.get("side_by_side_utilization_vs_bf16_matmul"), ".2f"))]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append(f"medians of {result['repeats']} repeats x {result['steps_per_repeat']} steps "
                 f"(warm-up {result['warmup_steps']} excluded); torch {result['torch']}; {result['date']}")
    return "\n".join(lines)


__all__ = ["run_benchmark", "load_or_run_benchmark", "format_table", "conventional_loader", "matmul_gflops",
           "training_flops", "benchmark_path", "save_benchmark", "project_batches", "timed_steps"]
