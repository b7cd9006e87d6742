"""How a run executes: the device, bf16 autocast where the hardware runs it natively, and the performance switches a
run keeps from its first epoch to its last."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

from cvae.core.config import PERFORMANCE_FIELDS, Config, ConfigError

# Every performance switch changes the bits an epoch computes, so a run keeps the ones it started with and a resume
# uses them whatever it is asked: channels_last picks other convolution kernels, threads splits the CPU reductions
# differently, fused_adam updates the weights in another order, compile fuses and reorders operations, and
# cuda_graphs draws its noise from captured kernels. The precision "auto" resolves per machine, so the dtype used is
# kept too. The device is recorded; a resume on another one is allowed (checkpoints are portable) and said.
FIXED_AT_START = PERFORMANCE_FIELDS


def select_device(name: str = "auto") -> torch.device:
    """torch.device for 'cpu', 'cuda', 'mps', or 'auto' (cuda, then mps, then cpu)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was requested but no CUDA GPU is visible; use --set device=auto or device=cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError("device=mps was requested but no Apple GPU is available; use --set device=auto or "
                          "device=cpu.")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions and matmuls natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private probe; absent or failing means "don't rely on it"
        return False


def autocast_dtype(config: Config, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype a config asks for on a device: bfloat16 for 'bf16', and for 'auto' on CUDA or on a CPU
    with native bf16; None (fp32) otherwise."""
    device = torch.device(device)
    if config.autocast == "bf16":
        return torch.bfloat16
    if config.autocast == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast on the device in `dtype`, or a context that changes nothing when `dtype` is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def execution_settings(config: Config, device: torch.device, amp_dtype: torch.dtype | None) -> dict:
    """How a run executes (fixed at its start): the performance switches, the CPU threads actually used, the
    precision and the device type."""
    settings = {name: getattr(config, name) for name in FIXED_AT_START}
    settings.update(threads=torch.get_num_threads(), precision="bf16" if amp_dtype == torch.bfloat16 else "fp32",
                    device=device.type)
    return settings


def fixed_settings(config: Config, state: dict | None, device: torch.device,
                   run_dir: Path) -> tuple[Config, torch.dtype | None]:
    """The config and autocast dtype to train with: a resumed run keeps the execution settings it started with
    (a warning says which differ from this command's)."""
    amp_dtype = autocast_dtype(config, device)
    started = (state or {}).get("execution")
    if not started:  # a new run (or one from before runs recorded this): what this command asks, threads counted
        return config.replace(threads=torch.get_num_threads()), amp_dtype
    asked = execution_settings(config, device, amp_dtype)
    changed = {key: (value, asked[key]) for key, value in started.items() if asked.get(key) != value}
    if changed:
        listed = ", ".join(f"{key}={value} (this command: {now})" for key, (value, now) in changed.items())
        moved = (" Its remaining epochs run on another device, so they will not be bit-identical to an uninterrupted "
                 "run." if "device" in changed else "")
        warnings.warn(f"{run_dir.name} resumes with the settings it started with: {listed}; they change the numbers, "
                      f"so a run keeps them.{moved}", stacklevel=3)
    config = config.replace(**{name: started[name] for name in FIXED_AT_START})
    torch.set_num_threads(started["threads"])
    return config, (torch.bfloat16 if started["precision"] == "bf16" else None)
