"""binder/postBuild in a fresh virtual environment: it installs the project and produces the executed notebooks the
launch buttons open (report/<chapter>.ipynb, one per chapter of _toc.yml); one of them then reruns with papermill.

The environment is a new `python -m venv` (no system site-packages) into which postBuild's own pip command installs
everything from the package index. Only torch is pinned to the CPU wheel this machine keeps in its local wheel
folder ($PIP_FIND_LINKS) when there is one, instead of the multi-GB CUDA wheels on PyPI; elsewhere postBuild's
extra index (PyTorch's CPU wheels) provides it. Training runs are shared with the smoke book ($CVAE_RUNS_DIR), so
postBuild retrains nothing and the test takes minutes, not the cold smoke build's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from book_build import smoke_book

from cvae.core.paths import PROJECT_ROOT, runs_dir

# at the top of the checkout only: cvae/data and cvae/report are the package's own layers
TOP_IGNORED = ("_build", "report", "runs", "data", ".venv", ".git", ".pytest_cache")
ANYWHERE_IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """What the copy of the checkout leaves out: built and local folders at the top, caches anywhere."""
    top = {name for name in names if name in TOP_IGNORED} if Path(folder) == PROJECT_ROOT else set()
    return top | ANYWHERE_IGNORED(folder, names)


def _local_torch_pin() -> str | None:
    """'torch==X' for a CPU torch wheel in the local wheel folders, or None."""
    for folder in filter(None, re.split(r"[\s:]+", os.environ.get("PIP_FIND_LINKS", "/opt/wheels"))):
        for wheel in sorted(Path(folder).glob("torch-*+cpu-*.whl")) if Path(folder).is_dir() else []:
            return "torch==" + wheel.name.split("-")[1]
    return None


@pytest.mark.slow
def test_postbuild_in_a_fresh_environment_produces_the_launch_notebooks(tmp_path):
    smoke_book()  # the smoke runs exist: postBuild reuses them
    repository = tmp_path / "repository"
    shutil.copytree(PROJECT_ROOT, repository, ignore=_not_copied)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "CVAE_", "PYTHON"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), PIP_RETRIES="1",
               CVAE_RUNS_DIR=str(runs_dir()), PIP_PROGRESS_BAR="off")
    pin = _local_torch_pin()
    if pin:
        constraints = tmp_path / "constraints.txt"
        constraints.write_text(pin + "\n")
        env["PIP_CONSTRAINT"] = str(constraints)
    completed = subprocess.run(["bash", "binder/postBuild"], cwd=repository, env=env, capture_output=True, text=True,
                               timeout=1800)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    installed = subprocess.run([str(venv / "bin" / "python"), "-c", "import cvae, torch; print(cvae.__file__)"],
                               capture_output=True, text=True, env=env, check=True, cwd=tmp_path)
    assert installed.stdout.strip() == str(repository / "cvae" / "__init__.py")  # the checkout, editable

    # every launch link of the book (report/<chapter>.ipynb in _toc.yml) opens an executed smoke notebook
    toc = yaml.safe_load((repository / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("report/")]
    assert len(chapters) == len(list((repository / "notebooks").glob("[0-9][0-9]_*.py")))
    for chapter in chapters:
        notebook = json.loads((repository / f"{chapter}.ipynb").read_text())
        assert notebook["metadata"]["papermill"]["parameters"]["profile"] == "smoke", chapter
        outputs = [o for cell in notebook["cells"] for o in cell.get("outputs", [])]
        assert outputs and not any(o["output_type"] == "error" for o in outputs), chapter
        assert "Synthetic data" in json.dumps(outputs), chapter  # the stand-in says what it is

    # a reader reruns one produced notebook: papermill in the fresh environment's kernel, smoke profile
    rerun = tmp_path / "05_latent.rerun.ipynb"
    env["JUPYTER_PREFER_ENV_PATH"] = "1"
    completed = subprocess.run([str(venv / "bin" / "papermill"), str(repository / "report" / "05_latent.ipynb"),
                                str(rerun), "-p", "profile", "smoke", "-k", "python3", "--cwd", str(repository)],
                               env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    rerun_notebook = json.loads(rerun.read_text())
    records = {output["metadata"]["scrapbook"]["name"]: output["data"]
               for cell in rerun_notebook["cells"] for output in cell.get("outputs", [])
               if "scrapbook" in output.get("metadata", {})}
    assert "application/papermill.record/image/png" in records["fig_pca"]
    assert "application/papermill.record/image/png" in records["fig_tsne"]
    explained = float(records["pca_explained"]["application/papermill.record/text/plain"])
    assert 0.0 < explained <= 1.0
