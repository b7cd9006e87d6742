"""How this book was built: the command, profiles, data files, environment and the time of each stage."""

from __future__ import annotations

import json
import os
from typing import Iterable

import pandas as pd
import torch

from cvae.core.config import PROFILES
from cvae.core.labels import DATASETS
from cvae.report.chapter import report_dir

TIMINGS_FILE = "timings.json"


def read_timings() -> dict:
    """Seconds per stage written by `cvae.publish.book` (empty dict when the notebooks were run by hand)."""
    path = report_dir() / TIMINGS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def book_command(profile: str, overrides: Iterable[str] = ()) -> str:
    """The command that rebuilds this book."""
    extra = "".join(f" --set {item}" for item in overrides or [])
    return f"python -m cvae book --profile {profile}{extra}" if extra else f"make book PROFILE={profile}"


def profile_table() -> pd.DataFrame:
    """The named profiles and what they change."""
    return pd.DataFrame([{"profile": name, "changes": ", ".join(f"{k}={v}" for k, v in values.items())}
                         for name, values in PROFILES.items()]).set_index("profile")


def data_files_table(run) -> pd.DataFrame:
    """Per data file two rows, the MD5 of the file used and the official one, and on the first whether they match
    ('no, stand-in' for the synthetic stand-in; one MD5 column keeps the table inside the text column)."""
    from cvae.core.medmnist_info import INFO

    rows = []
    for flag in DATASETS:
        differs = "no, stand-in" if run.summary.get("synthetic_data") else "no"
        matches = "yes" if run.summary["data_md5_ok"].get(flag) else differs
        rows.append({"file": f"{flag}.npz", "MD5 of": "this build's file", "MD5": run.summary["data_md5"].get(flag, ""),
                     "matches official": matches})
        rows.append({"file": f"{flag}.npz", "MD5 of": "the official release", "MD5": INFO[flag]["MD5"],
                     "matches official": ""})
    return pd.DataFrame(rows).set_index(["file", "MD5 of"])


def environment_table(run) -> pd.DataFrame:
    """Versions of the packages that matter and the hardware of this build (and of the training run)."""
    import platform
    from importlib import metadata

    rows = {"python": platform.python_version(), "platform": platform.platform(),
            "CPU cores": str(os.cpu_count()), "torch threads": str(torch.get_num_threads()),
            "CUDA device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "training device": str(run.summary.get("device")),
            "training precision": str(run.summary.get("precision"))}
    for package in ("torch", "torchvision", "numpy", "medmnist", "scikit-learn", "torchmetrics", "matplotlib",
                    "pandas", "jupyter-book", "myst-nb", "sphinx", "papermill", "jupytext"):
        try:
            rows[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            rows[package] = "not installed"
    return pd.DataFrame({"value": rows})


def timing_table(run) -> pd.DataFrame:
    """Seconds per build stage (from the driver's timings.json), each also normalized by this machine's fp32 matmul
    rate (GFLOP = seconds x GFLOP/s, the unit of the time budgets), and the recorded training time."""
    timings = read_timings()
    rate = timings.get("fp32_gflops")
    rows = [{"stage": name, "seconds": float(value)} for name, value in timings.get("stages", {}).items()]
    if timings.get("previous_html_seconds") is not None:
        rows.append({"stage": "HTML (previous build)", "seconds": float(timings["previous_html_seconds"])})
    rows.append({"stage": "training epochs (run folder)", "seconds": float(run.summary["train_seconds"])})
    table = pd.DataFrame(rows).set_index("stage")
    if rate:
        table["normalized (GFLOP)"] = (table["seconds"] * rate).map(lambda v: f"{v:,.0f}")
    table["seconds"] = table["seconds"].map(lambda v: f"{v:,.1f}")
    return table


def timing_sentence() -> str:
    """The machine rate the timings are normalized by (the driver keeps the profile's budget to itself: a book states
    no internal targets)."""
    timings = read_timings()
    if not timings.get("fp32_gflops"):
        return "The driver's timings are not available (the notebooks were run by hand)."
    return (f"This machine multiplies fp32 matrices at {timings['fp32_gflops']:,.0f} GFLOP/s, measured at the start "
            "of the build; the rate falls while other work shares the cores, so the appendix's benchmark, measured at "
            "another time, may read differently. A stage's normalized cost is its seconds times that rate.")


__all__ = [
    "TIMINGS_FILE", "read_timings", "book_command", "profile_table", "data_files_table", "environment_table",
    "timing_table", "timing_sentence",
]
