"""The one command: data -> notebooks (papermill, in order, same parameters) -> Jupyter Book HTML.

`build_book(profile)` gets the data first (a missing real file stops here with the data layer's message),
executes `notebooks/NN_*.py` (jupytext percent sources) into `report/NN_*.ipynb`, then runs
`jupyter-book build . --config _build/_config.generated.yml -W -n --keep-going --all` (the repository and launch
buttons derived from `_config.yml`'s one `repository.url`), or with `pdf` the LaTeX build of `cvae.publish.pdf`.
Training is cached by config hash in the run folder, and a
notebook whose source, parameters and package code are unchanged since its last successful execution is not
re-executed, so a second build with nothing changed retrains and recomputes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Iterable

from cvae.core.config import make_config
from cvae.core.paths import DIGESTS_FILE, EVALUATION_FILE, PROJECT_ROOT, VARIANT_METRICS_FILE, file_digest, runs_dir
from cvae.publish.jupyter_book import (KERNEL_NAME, BookError, jupyter_book_command, kernel_env, notebook_sources,
                                       write_derived_config)
from cvae.publish.manifest import data_digests
from cvae.report.chapter import REPORT_DIR_ENV, report_dir
from cvae.training.runs import atomic_write_text, is_finished, run_dir_for

STAMP_FILE = "executed.json"


def package_hash(package: Path = PROJECT_ROOT / "cvae") -> str:
    """16 hex digits over every source file of the package, subpackages included: any change re-executes the chapters."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _notebook_intact(target: Path, stamp: dict) -> bool:
    """Whether `target` is byte for byte the notebook the stamp recorded (its SHA-256), not edited or truncated."""
    return target.exists() and file_digest(target, "sha256") == stamp.get("sha256")


def execute_notebooks(parameters: dict, out_dir: Path, force: bool = False, log=print,
                      on_done=None, read_state=lambda: {}) -> dict[str, float]:
    """Run every chapter source with papermill into out_dir; returns seconds per notebook (0 for reused ones).

    A chapter is reused only when its source, the parameters, the package, the data files' MD5s and `read_state()`
    (the book passes `runs_state`: the main run, the study's runs, their measurements and the weight search) are what
    they were when it was executed, and its notebook is byte for byte the one written then (`executed.json` records
    both)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp_path = out_dir / STAMP_FILE
    try:
        stamps = json.loads(stamp_path.read_text()) if stamp_path.exists() and not force else {}
    except ValueError:  # a damaged record only costs re-executing every chapter
        stamps = {}
    package = package_hash()
    data = data_digests(parameters["data_dir"]) if parameters.get("data_dir") else {}  # MD5s, once per build
    state = read_state()
    texts = {source: source.read_text() for source in notebook_sources()}  # read once: what runs is what is stamped

    def key_of(source: Path, reads: dict) -> str:
        inputs = {"source": texts[source], "parameters": parameters, "package": package, "data": data,
                  "reads": reads}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]

    executed: list[Path] = []
    timings: dict[str, float] = {}
    upstream_changed = False
    saved_env = dict(os.environ)
    environment = kernel_env()  # computed before os.environ is replaced: the kernel inherits the full environment
    environment[REPORT_DIR_ENV] = str(out_dir)  # the chapters read the driver's timings from where it writes them
    os.environ.clear()
    os.environ.update(environment)
    try:
        for source in texts:
            target = out_dir / f"{source.stem}.ipynb"
            key = key_of(source, state)
            stamp = stamps.get(source.stem)
            reusable = not upstream_changed and isinstance(stamp, dict) and stamp.get("key") == key
            if reusable and not _notebook_intact(target, stamp):
                log(f"[book] {source.stem}: {target} is not the notebook this build wrote (edited, damaged or "
                    "missing); executing it again")
                reusable = False
            if reusable:
                log(f"[book] {source.stem}: unchanged, reused")
                timings[source.stem] = 0.0
                if on_done:
                    on_done(source.stem, 0.0)
                continue
            upstream_changed = True
            stamps.pop(source.stem, None)
            atomic_write_text(stamp_path, json.dumps(stamps, indent=2))
            log(f"[book] {source.stem}: executing")
            tick = time.perf_counter()
            _execute_chapter(source, texts[source], out_dir, parameters)
            timings[source.stem] = time.perf_counter() - tick
            stamps[source.stem] = {"key": key_of(source, read_state()), "sha256": file_digest(target, "sha256")}
            executed.append(source)
            atomic_write_text(stamp_path, json.dumps(stamps, indent=2))
            log(f"[book] {source.stem}: {timings[source.stem]:.1f} s")
            if on_done:
                on_done(source.stem, timings[source.stem])
        final = read_state()  # what the executed chapters read, once all have run (a cold build trains it midway)
        for source in executed:
            stamps[source.stem]["key"] = key_of(source, final)
        atomic_write_text(stamp_path, json.dumps(stamps, indent=2))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return timings


def _execute_chapter(source: Path, text: str, out_dir: Path, parameters: dict) -> None:
    """Execute one chapter's source with papermill into out_dir/NN_name.ipynb, written only when the whole chapter
    ran; BookError naming the cell when it fails (the failed notebook kept beside it)."""
    import jupytext
    import nbformat
    import papermill as pm

    target = out_dir / f"{source.stem}.ipynb"
    notebook = jupytext.reads(text, fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    # papermill saves as it goes: it writes a hidden file, so the chapter's last good notebook stays whole
    running = out_dir / f".{source.stem}.running.ipynb"
    failed = out_dir / f"{source.stem}.failed.ipynb"
    try:
        result = pm.execute_notebook(notebook, str(running), parameters=parameters, kernel_name=KERNEL_NAME,
                                     cwd=str(PROJECT_ROOT), progress_bar=False, log_output=False,
                                     # every output is in by then; a graceful shutdown of a kernel that
                                     # imported torch waits 0.7 s per chapter for its exit handlers
                                     shutdown_kernel="immediate",
                                     # the kernel listens on localhost only; its generic "running over TCP
                                     # without encryption" warning printed once per chapter
                                     extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"stopped in chapter {source.stem}; every finished run and epoch is kept: "
                                "rerun the same command to go on from there") from None
    except pm.PapermillExecutionError as error:
        if running.exists():
            os.replace(running, failed)
        raise BookError(f"{source.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
                        f"the executed notebook with the traceback is {failed}") from None
    finally:
        running.unlink(missing_ok=True)
    for cell in result.cells:  # the page states its parameters in the data notice's "Built with" line
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    result.metadata.setdefault("papermill", {})["output_path"] = str(target)
    atomic_write_text(target, nbformat.writes(result))
    failed.unlink(missing_ok=True)


def build_html(root: Path = PROJECT_ROOT, log=print) -> Path:
    """`jupyter-book build . --config _build/_config.generated.yml -W -n --keep-going --all`; BookError with the
    warnings if it fails."""
    from cvae.publish import manifest
    from cvae.publish.sphinx_fixes import drop_icon_script

    config_path = write_derived_config(root)
    read = manifest.start("html", [root / "report" / f"{source.stem}.ipynb" for source in notebook_sources()
                                   if (root / "report" / f"{source.stem}.ipynb").exists()], root)
    command = jupyter_book_command() + ["build", str(root), "--config", str(config_path.relative_to(root)),
                                         "-W", "-n", "--keep-going", "--all"]
    log("[book] " + " ".join(command[1:]))
    env = kernel_env()
    completed = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        lines = [line for line in (completed.stdout + completed.stderr).splitlines()
                 if "WARNING" in line or "ERROR" in line or "Error" in line]
        raise BookError("jupyter-book build failed:\n" + "\n".join(lines[-40:] or completed.stderr.splitlines()[-40:]))
    drop_icon_script(root / "_build" / "html")
    manifest.record("html", read, root)
    return root / "_build" / "html"


def build_book(profile: str = "quick", data_dir: str | Path | None = None, overrides: Iterable[str] = (),
               force: bool = False, html: bool = True, pdf: bool = False, log=print) -> Path:
    """Data, notebooks, HTML for one profile; returns the HTML folder (the executed-notebook folder without `html`).
    With `pdf`, the whole-book PDF instead of the HTML, from the same executed notebooks; returns the PDF's path."""
    from cvae.data.loading import ensure_files

    overrides = list(overrides or [])
    if data_dir:
        overrides.append(f"data_dir={data_dir}")
    config = make_config(profile, overrides)  # ConfigError before anything runs
    if pdf:
        from cvae.publish.pdf import require_tex

        require_tex()  # BookError naming the apt-get line, before any notebook runs
    timings: dict[str, float] = {}
    started = tick = time.perf_counter()
    gflops = machine_gflops()
    folder = ensure_files(config, progress=True)  # DataError (naming PROFILE=smoke) when offline without data
    timings["data"] = time.perf_counter() - tick
    parameters = {"profile": profile, "seed": int(config.seed), "data_source": config.data_source,
                  "data_dir": str(folder), "overrides": [o for o in overrides if not o.startswith("data_dir=")]}
    out_dir = report_dir()  # $CVAE_REPORT_DIR, as the chapters read it; _toc.yml lists <project>/report
    if html and not pdf and out_dir.resolve() != (PROJECT_ROOT / "report").resolve():
        raise BookError(f"${REPORT_DIR_ENV}={out_dir} moves the executed notebooks out of {PROJECT_ROOT / 'report'}, "
                        f"where _toc.yml has the HTML build read them; unset {REPORT_DIR_ENV} to build the HTML.")
    # resolved once, here: the chapters' kernels run in the project folder, not the caller's
    os.environ["CVAE_RUNS_DIR"] = str(runs_dir().resolve())
    if not is_finished(run_dir_for(config)):
        log(f"[book] no finished run for config {config.config_hash()}: the training chapter trains it")
        force_notebooks = True
    else:
        force_notebooks = force
    timings_path = out_dir / "timings.json"
    try:
        previous = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    except ValueError:  # a damaged record of the last build only loses its HTML time
        previous = {}
    record = {"profile": profile, "config_hash": config.config_hash(), "stages": timings,
              "previous_html_seconds": previous.get("html_seconds"), "fp32_gflops": gflops,
              "budget_gflop": BUDGET_GFLOP.get(profile)}
    if pdf and previous.get("profile") == profile and "html_seconds" in previous:
        record["html_seconds"] = previous["html_seconds"]  # a PDF build leaves the HTML build's timing in place
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(timings_path, json.dumps(record, indent=2))

    def on_done(stem: str, seconds: float) -> None:  # written as it goes: the last chapter reports the others
        timings[stem] = seconds
        atomic_write_text(timings_path, json.dumps(record, indent=2))

    execute_notebooks(parameters, out_dir, force=force_notebooks, log=log, on_done=on_done,
                      read_state=lambda: runs_state(config, profile, parameters))
    if pdf:
        from cvae.publish.pdf import build_pdf

        return build_pdf(report_dir=out_dir, log=log)
    if not html:
        return out_dir
    tick = time.perf_counter()
    result = build_html(log=log)
    record["html_seconds"] = time.perf_counter() - tick
    record["total_seconds"] = time.perf_counter() - started
    # the rate again, after the build: one sample taken while something else ran read 100 GFLOP/s where the idle
    # machine reads 184, so the higher, less disturbed of the two normalizes the total
    record["fp32_gflops_start"], record["fp32_gflops_end"] = gflops, machine_gflops()
    record["fp32_gflops"] = max(gflops, record["fp32_gflops_end"])
    record["total_gflop"] = record["total_seconds"] * record["fp32_gflops"]
    atomic_write_text(out_dir / "timings.json", json.dumps(record, indent=2))
    log(f"[book] HTML in {result} ({record['html_seconds']:.1f} s); open {result / 'index.html'}")
    log(budget_line(record))
    return result


def runs_state(config, profile: str, parameters: dict) -> dict:
    """Digests of what the chapters read from the runs folder: the main run's `digests.json` (all its files) and its
    cached evaluation, every study run's `digests.json` and measurement, and the recorded weight search (None where
    absent): retraining or re-measuring any of them executes the chapters again."""
    from cvae.report.chapter import run_overrides
    from cvae.study.runner import search_record_path, study_runs

    def digest(path: Path) -> str | None:
        return file_digest(path, "sha256") if path.is_file() else None

    extra = run_overrides(parameters["seed"], parameters["data_source"], parameters["overrides"])
    folders = [run_dir_for(config)] + [run_dir_for(run.config) for run in study_runs(profile, extra,
                                                                                     parameters["seed"])]
    state = {f"{folder.name}/{name}": digest(folder / name) for folder in folders
             for name in (DIGESTS_FILE, EVALUATION_FILE, VARIANT_METRICS_FILE)}
    state["weight_search"] = digest(search_record_path(profile, extra))
    return state


# Time budgets of a cold build, normalized by the machine's fp32 matmul rate (seconds x GFLOP/s), so that they mean
# the same on a 70 GFLOP/s laptop and a 185 GFLOP/s server (DESIGN.md, the performance issue)
BUDGET_GFLOP = {"smoke": 42_000, "quick": 666_000}


def machine_gflops() -> float:
    """This machine's fp32 matmul rate (GFLOP/s, 2048^2, best of 5, all cores), the unit of the time budgets."""
    import torch

    from cvae.training.bench import matmul_gflops

    return matmul_gflops(torch.device("cpu"))


def budget_line(record: dict) -> str:
    """'[book] total 231 s x 185 GFLOP/s = 42,735 GFLOP; budget of a cold smoke build 42,000 GFLOP' (or no budget)."""
    line = (f"[book] total {record['total_seconds']:,.0f} s x {record['fp32_gflops']:,.0f} GFLOP/s (fp32 matmul) = "
            f"{record['total_gflop']:,.0f} GFLOP")
    budget = record.get("budget_gflop")
    if budget:
        line += (f"; budget of a cold {record['profile']} build {budget:,} GFLOP "
                 f"({record['total_gflop'] / budget:.0%} of it; a rebuild that reuses runs costs less)")
    return line


__all__ = ["build_book", "execute_notebooks", "build_html", "STAMP_FILE"]
