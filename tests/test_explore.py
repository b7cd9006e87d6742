"""The live views (`cvae.report.explore`) behind the sampling and ablation chapters' widgets, the static output a book build
shows instead, the chapters executed headless with non-default values, and `make lab`'s JupyterLab opening a
chapter's .py source as a notebook."""

from __future__ import annotations

import ast
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cvae.core.config import make_config
from cvae.core.model import CVAE
from cvae.core.paths import PROJECT_ROOT
from cvae.report import chapter, explore


@pytest.fixture(scope="module")
def model():
    import torch

    torch.manual_seed(0)
    return CVAE(make_config("smoke")).eval()


def _pixels(figure) -> np.ndarray:
    return np.asarray(figure.axes[0].images[0].get_array())


def test_the_sample_view_follows_its_class_temperature_and_seed(model):
    first = _pixels(explore.sample_view(model, "drusen", 1.0, n=4, seed=3))
    assert np.array_equal(first, _pixels(explore.sample_view(model, "19", 1.0, n=4, seed=3)))  # name or label
    assert not np.array_equal(first, _pixels(explore.sample_view(model, "drusen", 0.3, n=4, seed=3)))
    assert not np.array_equal(first, _pixels(explore.sample_view(model, "drusen", 1.0, n=4, seed=4)))
    assert not np.array_equal(first, _pixels(explore.sample_view(model, "adipose", 1.0, n=4, seed=3)))
    page = explore.sample_page(model, "drusen", 0.5, n=4, seed=2)
    assert page["on_demand_what"] == "drusen (OCTMNIST), temperature 0.5, seed 2"


def test_an_unknown_class_is_refused_by_name(model):
    from cvae.core.config import ConfigError

    with pytest.raises(ConfigError, match="'no such tissue' matches no class"):
        explore.sample_view(model, "no such tissue", 1.0)


def test_a_book_build_glues_the_static_view_and_shows_no_widget(monkeypatch):
    glued, widgets_built = {}, []
    monkeypatch.setenv(chapter.BOOK_BUILD_ENV, "1")
    monkeypatch.setattr(chapter, "glue", lambda key, value: glued.__setitem__(key, value))
    assert not explore.live()
    explore.offer(lambda: widgets_built.append(1), lambda: {"fig_x": "figure", "x_sentence": "text"})
    assert glued == {"fig_x": "figure", "x_sentence": "text"} and widgets_built == []


def test_a_live_kernel_gets_the_widget_with_its_controls(monkeypatch, model):
    pytest.importorskip("ipywidgets", reason="the interactive extra (make lab-env) is not installed")
    monkeypatch.delenv(chapter.BOOK_BUILD_ENV, raising=False)
    assert explore.live()
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *items: shown.extend(items))
    explore.offer(lambda: explore.sampling_widget(model, "drusen", 0.5), lambda: pytest.fail("static in a live kernel"))
    import ipywidgets

    widget = next(item for item in shown if isinstance(item, ipywidgets.interactive))
    controls = {child.description: child.value for child in widget.children if hasattr(child, "description")}
    assert controls == {"class": "drusen", "temperature": 0.5, "seed": 0}


def _glued(notebook: dict) -> dict[str, dict]:
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:  # papermill's record of a glued value: application/papermill.record/<mime type>
                values[name] = {mime.removeprefix("application/papermill.record/"): value
                                for mime, value in output["data"].items()}
    return values


def _execute(chapter_stem: str, parameters: dict, out: Path) -> dict:
    """Execute one chapter source headless as the book does (static views), returning the executed notebook."""
    import jupytext
    import papermill as pm

    from cvae.publish.jupyter_book import KERNEL_NAME, kernel_env

    notebook = jupytext.read(PROJECT_ROOT / "notebooks" / f"{chapter_stem}.py")
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    saved = dict(os.environ)
    os.environ.update({**kernel_env(), chapter.REPORT_DIR_ENV: str(out)})
    try:
        pm.execute_notebook(notebook, str(out / f"{chapter_stem}.ipynb"), parameters=parameters,
                            kernel_name=KERNEL_NAME, cwd=str(PROJECT_ROOT), progress_bar=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return json.loads((out / f"{chapter_stem}.ipynb").read_text())


@pytest.mark.slow
def test_both_widget_chapters_follow_non_default_values(tmp_path):
    from book_build import smoke_book

    smoke_book()  # the smoke runs and study exist: these executions train nothing
    default = {name: _glued(json.loads((PROJECT_ROOT / "report" / f"{name}.ipynb").read_text()))
               for name in ("04_sampling", "06_ablations")}
    sampling = _glued(_execute("04_sampling", {"profile": "smoke", "explore_class": "adipose",
                                               "explore_temperature": 0.5}, tmp_path))
    assert ast.literal_eval(default["04_sampling"]["on_demand_what"]["text/plain"]) == \
        "drusen (OCTMNIST), temperature 1, seed 0"
    assert ast.literal_eval(sampling["on_demand_what"]["text/plain"]) == "adipose (PathMNIST), temperature 0.5, seed 0"
    assert sampling["fig_on_demand"]["image/png"] != default["04_sampling"]["fig_on_demand"]["image/png"]
    assert base64.b64decode(sampling["fig_on_demand"]["image/png"])[:4] == b"\x89PNG"

    ablations = _glued(_execute("06_ablations", {"profile": "smoke", "explore_variants": ["deep"],
                                                 "explore_seeds": 1}, tmp_path))
    before = ast.literal_eval(default["06_ablations"]["explore_sentences"]["text/plain"])  # glue stores repr()
    after = ast.literal_eval(ablations["explore_sentences"]["text/plain"])
    assert before.startswith("latent64 against the paper's model: loss change ") and "over 2 seeds" in before
    assert after.startswith("deep against the paper's model: loss change ") and "n = 1, no interval" in after
    assert after.endswith("0 of 1 runs passed the learning gate.")  # the smoke study's runs do not learn


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_make_lab_opens_a_chapter_source_as_a_paired_notebook(tmp_path):
    jupyter = Path(sys.executable).parent / "jupyter"
    if not (jupyter.exists() and shutil.which("make")):
        pytest.fail("JupyterLab is not installed: `make lab-env` (run by `make test`) installs the interactive extra")
    port, token = _free_port(), "cvae-test"
    settings = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert json.loads(settings.read_text()) == json.loads((PROJECT_ROOT / "binder" / "overrides.json").read_text())
    server = subprocess.Popen(["make", "-s", "lab", f"VENV={Path(sys.prefix)}",
                               f"LAB_ARGS=--no-browser --port={port} --IdentityProvider.token={token} "
                               f"--ServerApp.runtime_dir={tmp_path}"],
                              cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/notebooks/04_sampling.py?type=notebook&content=1&token={token}"
        # the server's root is the project folder (the kernels run there), its start page notebooks/
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    opened = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        assert opened["type"] == "notebook"
        sources = ["".join(cell["source"]) for cell in opened["content"]["cells"]]
        assert sources[0] == "# Conditional sampling" and any("explore.offer(" in source for source in sources)
        assert opened["content"]["metadata"]["jupytext"]["text_representation"]["format_name"] == "percent"
        from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

        config = find_jupytext_configuration_file(str(PROJECT_ROOT / "notebooks"))  # what Lab pairs on save
        assert load_jupytext_configuration_file(config).formats == ["ipynb,py:percent"]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_the_study_view_asks_for_the_studys_own_runs():
    from cvae.study.runner import main_config, seeded_runs, study_runs

    chosen = seeded_runs("smoke", ["paper", "latent64"], range(0, 2))
    study = {(run.name, run.seed): run.config.config_hash() for run in study_runs("smoke")}
    assert [(run.name, run.seed) for run in chosen] == [("paper", 0), ("latent64", 0), ("paper", 1), ("latent64", 1)]
    assert all(study[(run.name, run.seed)] == run.config.config_hash() for run in chosen)  # cached runs, no training
    assert main_config("smoke", [], None).config_hash() == make_config("smoke").config_hash()
