"""The one command: the smoke book builds every page, a rebuild retrains nothing, offline quick fails clearly.

No test bounds wall time: machines differ 2.6x in fp32 matmul rate and CI shares its cores. The budgets are
normalized (seconds x GFLOP/s) and checked by `python -m cvae book`, which prints them, and stated in the README."""

from __future__ import annotations

import json
import re

import pytest
from book_build import smoke_book, toc_pages

from cvae.core.config import make_config
from cvae.core.paths import PROJECT_ROOT
from cvae.training.runs import SUMMARY_FILE, run_dir_for


@pytest.mark.slow
def test_smoke_book_builds_every_page():
    html, _ = smoke_book()
    for page in toc_pages():
        assert (html / f"{page}.html").exists(), page
    for notebook in sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        executed = json.loads((PROJECT_ROOT / "report" / f"{notebook.stem}.ipynb").read_text())
        assert executed["metadata"]["papermill"]["parameters"]["profile"] == "smoke"
        tags = [cell["metadata"].get("tags", []) for cell in executed["cells"]]
        assert sum("parameters" in t for t in tags) == 1 and sum("injected-parameters" in t for t in tags) == 1
        for cell in executed["cells"]:
            for output in cell.get("outputs", []):
                assert output["output_type"] != "error", notebook.name
                assert not (output["output_type"] == "stream" and output["name"] == "stderr"), (
                    f"{notebook.name} wrote to stderr: {''.join(output['text'])[:300]}")
    timings = json.loads((PROJECT_ROOT / "report" / "timings.json").read_text())
    assert timings["profile"] == "smoke" and timings["html_seconds"] > 0
    assert set(timings["stages"]) >= {"data", "01_data", "02_training"}


@pytest.mark.slow
def test_every_table_of_the_book_has_a_numbered_caption():
    html, _ = smoke_book()
    numbered = []
    for page in toc_pages():
        text = (html / f"{page}.html").read_text()
        tables = len(re.findall(r"<table\b", text)) - len(re.findall(r'<table class="(?:table|field-list)', text))
        labels = re.findall(r'<p class="table-caption"><span class="caption-number">(Table [\d.]+) </span>', text)
        assert len(labels) == tables, (page, labels, tables)  # every output table, none without its caption
        assert len(set(labels)) == len(labels), page
        numbered += labels
    assert len(numbered) >= 18


@pytest.mark.slow
def test_a_figure_whose_data_the_build_lacks_is_left_out_and_a_sentence_says_why():
    from cvae.report.chapter import figure_markdown

    block = figure_markdown("fig_x", "fig-x", "Caption.").data
    assert block == "```{glue:figure} fig_x\n:name: fig-x\n\nCaption.\n```\n"
    html, _ = smoke_book()
    page = (html / "report" / "06_ablations.html").read_text()
    assert "This build did not run the search around our defaults" in page  # the smoke build records no weight search
    assert 'id="fig-sensitivity"' not in page


@pytest.mark.slow
def test_second_build_retrains_and_recomputes_nothing():
    from cvae.publish.book import build_book

    smoke_book()
    run_dir = run_dir_for(make_config("smoke"))
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    notebooks_before = {p.name: p.stat().st_mtime_ns for p in (PROJECT_ROOT / "report").glob("*.ipynb")}
    messages: list[str] = []
    build_book("smoke", html=False, log=messages.append)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    assert (run_dir / SUMMARY_FILE).exists()
    assert {p.name: p.stat().st_mtime_ns for p in (PROJECT_ROOT / "report").glob("*.ipynb")} == notebooks_before
    reused = [m for m in messages if m.endswith("unchanged, reused")]
    assert len(reused) == len(list((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))), messages


@pytest.mark.slow
def test_offline_quick_profile_stops_with_the_data_message(tmp_path, monkeypatch, capsys):
    import torchvision.datasets.utils

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    monkeypatch.setenv("CVAE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "runs"))
    from cvae.__main__ import main

    assert main(["book", "--profile", "quick"]) == 2
    message = capsys.readouterr().err
    assert "PROFILE=smoke" in message
    assert re.search(r"pathmnist\.npz", message) and str(tmp_path / "empty") in message
    assert not (tmp_path / "runs").exists()  # nothing trained, no notebook ran


@pytest.mark.slow
def test_a_chapter_is_reused_only_while_its_notebook_and_data_are_what_the_build_wrote(tmp_path, monkeypatch,
                                                                                         stand_in_dir):
    import shutil

    import numpy as np

    import cvae.publish.book
    from cvae.publish.book import execute_notebooks

    source = tmp_path / "notebooks" / "01_tiny.py"
    source.parent.mkdir()
    source.write_text('# %% tags=["parameters"]\nprofile = ""\ndata_dir = ""\n\n# %%\nprint("built", profile)\n')
    monkeypatch.setattr(cvae.publish.book, "notebook_sources", lambda folder=None: [source])
    data = tmp_path / "data"
    shutil.copytree(stand_in_dir, data)
    out = tmp_path / "report"
    parameters = {"profile": "smoke", "data_dir": str(data)}
    main_run = {"digests.json": "a"}

    def build() -> str:
        log: list[str] = []
        execute_notebooks(parameters, out, log=log.append, read_state=lambda: dict(main_run))
        return " | ".join(log)

    assert "01_tiny: executing" in build()
    assert "01_tiny: unchanged, reused" in build()
    notebook = out / "01_tiny.ipynb"
    notebook.write_text(notebook.read_text().replace("built smoke", "built by hand"))  # an edited output
    assert "is not the notebook this build wrote (edited, damaged or missing); executing it again" in build()
    assert "built smoke" in notebook.read_text() and "built by hand" not in notebook.read_text()
    notebook.write_text(notebook.read_text()[:200])  # truncated
    assert "executing it again" in build()
    assert "01_tiny: unchanged, reused" in build()
    with np.load(data / "octmnist.npz") as npz:  # the data folder's files change: what read them runs again
        arrays = {key: npz[key] for key in npz.files}
    arrays["train_images"][0] = 255 - arrays["train_images"][0]
    np.savez(data / "octmnist.npz", **arrays)
    log = build()
    assert "01_tiny: executing" in log and "reused" not in log
    assert "01_tiny: unchanged, reused" in build()
    main_run["digests.json"] = "b"  # the main run was retrained: what read it runs again
    assert "01_tiny: executing" in build()
    monkeypatch.setattr(cvae.publish.book, "package_hash", lambda: "the package after an edit")
    assert "01_tiny: executing" in build()  # any change to the package's code runs every chapter again
    assert "01_tiny: unchanged, reused" in build()


def test_the_package_hash_changes_with_any_module_of_any_layer_and_only_with_the_code(tmp_path):
    import shutil

    from cvae.core.paths import PROJECT_ROOT
    from cvae.publish.book import package_hash

    package = tmp_path / "cvae"
    shutil.copytree(PROJECT_ROOT / "cvae", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = package_hash(package)
    assert package_hash(package) == before == package_hash(PROJECT_ROOT / "cvae")
    layers = sorted(folder for folder in package.iterdir() if (folder / "__init__.py").exists())
    assert [layer.name for layer in layers] == ["cli", "core", "data", "evaluation", "publish", "report", "study",
                                                "training"]
    hashes = {before}
    for layer in layers:
        module = sorted(layer.glob("*.py"))[-1]
        module.write_text(module.read_text() + "\n# an edit\n")
        last = package_hash(package)
        hashes.add(last)
    assert len(hashes) == 1 + len(layers)  # every edit, in every layer, gave a new hash
    (package / "core" / "notes.txt").write_text("not code")
    (package / "core" / "__pycache__").mkdir(exist_ok=True)
    (package / "core" / "__pycache__" / "labels.cpython-311.pyc").write_bytes(b"compiled")
    assert package_hash(package) == last  # files that are not Python source change nothing
