"""Where a record was made: the software and hardware that run summaries, benchmarks and the weight search record."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def processor_name() -> str:
    """The CPU's model name from /proc/cpuinfo ('AMD EPYC 7B13'), else what `platform` knows ('x86_64')."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU's model name and its logical cores."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{processor_name()}, {os.cpu_count()} logical cores"


def machine_record(device: torch.device | None = None) -> dict:
    """{'python', 'torch', 'system', 'machine', 'processor', 'threads'} and, on a CUDA `device`, 'gpu'."""
    record = {"python": platform.python_version(), "torch": torch.__version__, "system": platform.system(),
              "machine": platform.machine(), "processor": processor_name(), "threads": torch.get_num_threads()}
    if device is not None and device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


__all__ = ["processor_name", "device_name", "machine_record"]
