"""The switch study: samples/s of the project's loop under each performance switch (channels_last, Adam's kernels,
oneDNN, threads, bf16), interleaved round-robin in one run and cached at <runs>/switches.json for the appendix."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
import warnings
from pathlib import Path

import torch

from cvae.core.config import make_config
from cvae.core.machine import device_name, machine_record
from cvae.core.paths import runs_dir
from cvae.data.loading import Split, load_data
from cvae.training.bench import BATCH_SIZE, matmul_gflops, project_batches, save_benchmark, timed_steps

# Every switch is measured on top of this baseline (the naive eager loop: fp32, NCHW, default Adam, all cores)
SWITCH_BASELINE = {"channels_last": False, "autocast": "none", "fused_adam": False}
SWITCHES: dict[str, dict] = {
    # name: config overrides plus process-level settings ("mkldnn": oneDNN on/off, "threads", "foreach" Adam)
    "baseline (fp32, NCHW, default Adam)": {},
    "channels_last": {"channels_last": True},
    "foreach Adam": {"foreach": True},
    "fused Adam": {"fused_adam": True},
    "oneDNN off (torch.backends.mkldnn)": {"mkldnn": False},
    "1 thread (threads=1)": {"threads": 1},
    "bf16 autocast": {"autocast": "bf16"},
    "channels_last + bf16 autocast (the default here)": {"channels_last": True, "autocast": "bf16"},
}
_PROCESS_KEYS = ("mkldnn", "threads", "foreach")


def compare_switches(profile: str = "smoke", switches: dict[str, dict] | None = None, repeats: int = 3,
                     steps: int = 6, warmup: int = 2, data_dir: str | Path | None = None) -> list[dict]:
    """Samples/s of the project's loop under each switch, interleaved round-robin so that every round sees the same
    machine load; per switch the median samples/s and the median (over rounds) of its ratio to the first switch.
    Every switch's overrides apply on top of SWITCH_BASELINE (fp32, NCHW), whatever the config defaults are."""
    from cvae.training.epochs import seed_everything, train_step
    from cvae.training.precision import autocast_dtype, select_device
    from cvae.training.train import prepare_model

    switches = switches or SWITCHES
    base_config = make_config(profile, {"batch_size": BATCH_SIZE})
    data = load_data(base_config, data_dir, progress=False)
    default_threads = torch.get_num_threads()
    runners = {}
    for name, settings in switches.items():
        config = make_config(profile, {"batch_size": BATCH_SIZE, **SWITCH_BASELINE,
                                       **{k: v for k, v in settings.items() if k not in _PROCESS_KEYS}})
        device = select_device(config.device)
        seed_everything(config.seed)
        model, trainer, optimizer, _ = prepare_model(config, device)
        if "foreach" in settings:
            optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                         foreach=settings["foreach"])
        split = Split(data.train.images.to(device), data.train.labels.to(device), data.train.modalities.to(device))
        batches = project_batches(split, BATCH_SIZE, config.channels_last, config.seed)
        amp = autocast_dtype(config, device)

        def run(count, trainer=trainer, optimizer=optimizer, config=config, batches=batches, amp=amp,
                device=device, settings=settings):
            torch.set_num_threads(settings.get("threads", default_threads))
            try:
                with warnings.catch_warnings():  # toggling oneDNN warns about Intel GPUs on every entry and exit
                    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
                    with torch.backends.mkldnn.flags(enabled=settings.get("mkldnn", True)):
                        _, step_s = timed_steps(batches, lambda b: train_step(trainer, optimizer, b, config,
                                                                               config.beta_max, amp), count, device)
            finally:
                torch.set_num_threads(default_threads)
            return count * BATCH_SIZE / step_s
        run(warmup) if warmup else None
        runners[name] = run
    rates: dict[str, list[float]] = {name: [] for name in runners}
    matmul = []
    for _ in range(repeats):
        matmul.append(matmul_gflops(torch.device("cpu")))
        for name, run in runners.items():
            rates[name].append(run(steps))
    first = next(iter(rates))
    flops = 55_860_608  # per sample; checked against the flop counter in tests/test_bench.py
    rows = []
    for name, values in rates.items():
        ratio = statistics.median(v / b for v, b in zip(values, rates[first]))
        rows.append({"switch": name, "samples_per_s": statistics.median(values), "relative_to_baseline": ratio,
                     "utilization": statistics.median(v * flops / 1e9 / m for v, m in zip(values, matmul)),
                     "rounds": values})
    return rows


SWITCHES_FILE = "switches.json"


def load_or_run_switches(profile: str = "smoke", repeats: int = 3, steps: int = 6, force: bool = False,
                         data_dir: str | Path | None = None) -> dict:
    """The switch study (`compare_switches`) cached at <runs>/switches.json: {"rows", "device_name", "torch",
    "date", "repeats", "steps", "seconds"}; rerun when missing, for another profile, or with `force`."""
    path = runs_dir() / SWITCHES_FILE
    if path.exists() and not force:
        cached = json.loads(path.read_text())
        if cached.get("profile") == profile:
            return cached
    started = time.perf_counter()
    rows = compare_switches(profile, repeats=repeats, steps=steps, data_dir=data_dir)
    result = {"profile": profile, "rows": rows, "baseline": SWITCH_BASELINE, "repeats": repeats, "steps": steps,
              "batch_size": BATCH_SIZE, "device_name": device_name(torch.device("cpu")),
              **machine_record(torch.device("cpu")),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "seconds": time.perf_counter() - started}
    save_benchmark(result, path)
    return result


__all__ = ["compare_switches", "load_or_run_switches", "SWITCHES", "SWITCH_BASELINE", "SWITCHES_FILE"]
