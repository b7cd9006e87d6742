"""environment.yml must install exactly what pyproject.toml declares (CI cannot build conda envs, so check statically)."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    return pyproject, environment


def test_environment_installs_the_project_with_every_extra():
    pyproject, environment = load()
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert len(pip_section) == 1
    match = re.fullmatch(r"-e \.\[(.*)\]", pip_section[0])
    assert match, pip_section
    assert sorted(match.group(1).split(",")) == sorted(pyproject["project"]["optional-dependencies"])


def test_python_pin_is_allowed_by_requires_python():
    pyproject, environment = load()
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    major, minor = map(int, python.split("=")[1].split("."))
    low, high = re.findall(r"(\d+)\.(\d+)", pyproject["project"]["requires-python"])
    assert (int(low[0]), int(low[1])) <= (major, minor) < (int(high[0]), int(high[1]))


def test_no_torch_from_conda():
    _, environment = load()
    names = [d.split("=")[0] for d in environment["dependencies"] if isinstance(d, str)]
    assert "pytorch" not in names and "torch" not in names  # torch comes from pip only (mixing breaks)


def test_progress_bars_fall_back_to_text_without_ipywidgets():
    """`make book` installs no ipywidgets; tqdm.auto would then print a TqdmWarning under chapter headings."""
    import subprocess
    import sys

    probe = ("import sys; sys.modules['ipywidgets'] = None\n"
             "from cvae.core.progress import tqdm; print(tqdm.__module__)")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert shown.stdout.strip() == "tqdm.std"
    with_widgets = subprocess.run([sys.executable, "-c", "from cvae.core.progress import tqdm; print(tqdm.__module__)"],
                                  capture_output=True, text=True, check=True, cwd=ROOT)
    import importlib.util
    # with ipywidgets, tqdm.auto outside a notebook kernel is its asyncio text bar (the widget needs a kernel)
    expected = "tqdm.asyncio" if importlib.util.find_spec("ipywidgets") else "tqdm.std"
    assert with_widgets.stdout.strip() == expected
