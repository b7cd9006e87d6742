"""Opening a chapter notebook: its settings, configuration, finished run and data notice, glue and markdown."""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch

from cvae.core.config import Config, make_config
from cvae.core.formatting import plain
from cvae.core.paths import PROJECT_ROOT
from cvae.report.notices import show_data_notice

REPORT_DIR_ENV = "CVAE_REPORT_DIR"
BOOK_BUILD_ENV = "CVAE_BOOK_BUILD"  # set in a book build's kernels: live views show their static output


def _warning_to_stdout(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"note ({category.__name__}): {message}", file=sys.stdout)


def setup_notebook() -> None:
    """Deliberate warning handling for chapter notebooks: warnings print once to stdout as a visible note
    (stderr output is treated as an error by the browser test); matplotlib gets the figures' page style
    (`cvae.report.plots.STYLE`)."""
    import matplotlib as mpl

    warnings.resetwarnings()
    warnings.simplefilter("once")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    # a file's MD5 mismatch is the titled "Not the official MedMNIST files" notice, not a raw line with its path
    warnings.filterwarnings("ignore", message=r".* has MD5 .*, not the official")
    warnings.showwarning = _warning_to_stdout
    from cvae.report.plots import STYLE

    mpl.rcParams.update(STYLE)  # the figure functions apply it themselves; this covers any other plot
    from IPython import get_ipython

    if get_ipython() is not None:  # PNGs at twice FIGURE_DPI shown at the same size: sharp on dense screens, 200 dpi
        from matplotlib_inline.backend_inline import set_matplotlib_formats  # in print

        set_matplotlib_formats("retina")
    pd.set_option("display.precision", 4)
    pd.set_option("display.max_colwidth", None)  # a table cell is shown whole, never cut with "..."
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))


def notebook_config(profile: str = "smoke", seed: int | None = None, data_source: str = "", data_dir: str = "",
                    overrides: Iterable[str] = ()) -> Config:
    """The Config a chapter runs with: the profile, then `key=value` overrides, then seed/data source/folder."""
    items = list(overrides or [])
    if data_source:
        items.append(f"data_source={data_source}")
    if data_dir:
        items.append(f"data_dir={data_dir}")
    if seed is not None:
        items.append(f"seed={int(seed)}")
    return make_config(profile, items)


@dataclass(frozen=True)
class ChapterContext:
    """What a chapter opens with: its parameters, the config they give and, past the data chapter, the profile's
    finished run. Chapters ask it for the study and the overrides that ablation runs share, instead of threading the
    five parameters through every call."""

    profile: str
    seed: int
    data_source: str
    data_dir: str
    overrides: tuple[str, ...]
    config: Config
    run: object = None  # cvae.training.runs.Run; None in the data chapter

    @property
    def extra(self) -> list[str]:
        """The parameters that ablation runs share with the main run, as key=value strings (`run_overrides`)."""
        return run_overrides(self.seed, self.data_source, self.overrides)

    @property
    def built_with(self) -> str:
        """The parameters as one line for the data notice (`built_with`)."""
        return built_with(self.profile, self.seed, self.data_source, self.data_dir, self.overrides)

    def study(self, names: Iterable[str] | None = None) -> pd.DataFrame:
        """The chapter's study table (`cvae.study.runner.run_study`: trains what is missing, reuses the rest), for the
        same data source, seed, overrides and data folder as the main run."""
        from cvae.study.runner import run_study

        return run_study(self.profile, self.extra, self.seed, names=names, data_dir=self.config.data_dir or None)


def _context(profile: str, seed: int | None, data_source: str, data_dir: str, overrides: Iterable[str],
             run=None) -> ChapterContext:
    config = notebook_config(profile, seed, data_source, data_dir, overrides)
    return ChapterContext(profile, config.seed, data_source, data_dir, tuple(overrides or ()), config, run)


def open_data_chapter(profile: str = "smoke", seed: int | None = None, data_source: str = "", data_dir: str = "",
                      overrides: Iterable[str] = ()):
    """The data chapter's first lines: notebook settings, the context (no run yet), the loaded data and its notice.
    Returns (ChapterContext, MedMNISTData)."""
    from cvae.data.loading import load_data

    setup_notebook()
    context = _context(profile, seed, data_source, data_dir, overrides)
    data = load_data(context.config, progress=False)
    unofficial = [] if data.synthetic else [flag for flag, file in data.files.items() if not file.md5_ok]
    show_data_notice(data.synthetic, profile, context.config.config_hash(), unofficial, context.built_with)
    return context, data


def open_chapter(profile: str = "smoke", seed: int | None = None, data_source: str = "", data_dir: str = "",
                 overrides: Iterable[str] = (), train_if_missing: bool = False) -> ChapterContext:
    """Every later chapter's first lines from its parameters: notebook settings, the config, the profile's finished
    run and the data notice, as one ChapterContext. The run is trained here only with `train_if_missing` (the
    training chapter); elsewhere a missing run is a RunError that says which command trains it."""
    from cvae.training.runs import RunError, is_finished, load_run, run_dir_for
    from cvae.training.train import train

    setup_notebook()
    context = _context(profile, seed, data_source, data_dir, overrides)
    run_dir = run_dir_for(context.config)
    if train_if_missing:
        run_dir = train(context.config, progress=False)
    elif not is_finished(run_dir):
        raise RunError(f"no finished training run for this chapter's configuration (hash "
                       f"{context.config.config_hash()}) in {run_dir.parent}: execute notebooks/02_training first, "
                       f"or run `python -m cvae book --profile {profile}` which executes the chapters in order.")
    run = load_run(run_dir)
    synthetic = bool(run.summary["synthetic_data"])
    unofficial = [] if synthetic else [flag for flag, ok in run.summary.get("data_md5_ok", {}).items() if not ok]
    show_data_notice(synthetic, profile, context.config.config_hash(), unofficial, context.built_with)
    return dataclasses.replace(context, run=run)


def built_with(profile: str, seed, data_source: str = "", data_dir: str = "", overrides: Iterable[str] = ()) -> str:
    """The notebook parameters as one line for the data notice (the parameters cells are not shown on the page),
    each key once; a data folder other than the source's default is named only as "custom": a local path says
    nothing to a reader."""
    from cvae.core.paths import default_data_dir

    parts = [f"profile={profile}", f"seed={Config().seed if seed is None else int(seed)}",
             f"data_source={data_source or 'profile default'}"]
    config = notebook_config(profile, seed, data_source, "", overrides)
    if data_dir and Path(data_dir).resolve() != default_data_dir(config.data_source,
                                                                 config.synthetic_per_class).resolve():
        parts.append("data_dir=custom")
    shown = {"profile", "seed", "data_source", "data_dir"}
    parts += [item for item in overrides or [] if item.split("=", 1)[0].strip() not in shown]
    return ", ".join(parts)


def report_dir() -> Path:
    """Folder of the executed notebooks and the driver's timings ($CVAE_REPORT_DIR, default <project>/report)."""
    return Path(os.environ.get(REPORT_DIR_ENV) or PROJECT_ROOT / "report")


def glue(key: str, value, display: bool = False):
    """myst_nb.glue with NumPy/torch scalars converted; figures are closed after glueing. Returns None, so a glue
    call as a cell's last line does not display the value a second time."""
    from myst_nb import glue as _glue

    value = plain(value)
    _glue(key, value, display=display)
    if hasattr(value, "savefig"):
        import matplotlib.pyplot as plt

        plt.close(value)


def md(markdown_text: str):
    """An IPython Markdown object: glued, it renders as MyST where a page uses `glue:md` (same page only)."""
    from IPython.display import Markdown

    return Markdown(markdown_text)


def figure_markdown(key: str, name: str, caption: str):
    """The glued figure `key` as a MyST figure block named `name`, glued for a page's `glue:md` (`md`): a figure the
    page shows only when its data exist (glue "" otherwise)."""
    return md(f"```{{glue:figure}} {key}\n:name: {name}\n\n{caption}\n```\n")


def html(markdown_text: str):
    """MyST-free markdown rendered to an IPython HTML object (glued across pages, where only HTML, text and images
    render: the intro shows the discussion's abstract this way). It keeps its Markdown as well, which the PDF's
    LaTeX builder uses in place of the HTML."""
    from markdown_it import MarkdownIt

    return _HtmlWithMarkdown(MarkdownIt("commonmark").render(markdown_text), markdown_text)


def table(frame, caption: str, stacked: bool = False) -> "CaptionedTable":
    """A table with its caption above it (`caption`: plain text, `code` in backticks): the book numbers it
    ("Table 7.2", `cvae.publish.sphinx_fixes` in HTML, LaTeX in the PDF). `stacked`: on a phone each row reads as a
    card of labelled cells (`stacked_html`), for tables of sentences that would be screens tall in narrow columns."""
    return CaptionedTable(frame, caption, stacked)


TABLE_CAPTION_START = '<p class="table-caption">'  # read by the HTML numbering and the PDF (cvae.publish)


class CaptionedTable:
    """A DataFrame (or Styler) shown with its caption: text/html is the caption paragraph then pandas' own HTML."""

    def __init__(self, frame, caption: str, stacked: bool = False) -> None:
        self.frame, self.caption, self.stacked = frame, caption, stacked

    def caption_html(self) -> str:
        """The caption as `<p class="table-caption">...</p>` (HTML escaped, backticks as <code>)."""
        import html as html_module
        import re

        escaped = html_module.escape(" ".join(self.caption.split()), quote=False)
        coded = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        return f"{TABLE_CAPTION_START}{coded}</p>"

    def _repr_html_(self) -> str:
        frame = _index_name_in_header(self.frame)
        if self.stacked:
            inner = stacked_html(frame)
        else:
            inner = frame._repr_html_() if hasattr(frame, "_repr_html_") else frame.to_html()
        return self.caption_html() + "\n" + inner

    def __repr__(self) -> str:
        return f"{self.caption}\n{self.frame!r}"


def _index_name_in_header(frame):
    """A DataFrame whose (single) index has a name shows it in the header's first cell, where pandas would add a second
    header row holding only that name; other frames (Stylers, MultiIndex, named columns) are returned as they are."""
    import pandas as pd

    if (isinstance(frame, pd.DataFrame) and frame.index.name is not None and frame.columns.name is None
            and frame.index.nlevels == 1 and frame.columns.nlevels == 1):
        return frame.rename_axis(index=None, columns=frame.index.name)
    return frame


def stacked_html(frame) -> str:
    """A DataFrame of text as `<table class="dataframe stacked">`: every cell carries its column's name as
    `data-label`, which `_static/custom.css` shows above the cell when a phone stacks each row into a card."""
    import html as html_module

    def escape(value) -> str:
        return html_module.escape(str(value))

    corner = frame.columns.name or frame.index.name or ""
    header = "".join(f"<th>{escape(column)}</th>" for column in frame.columns)
    rows = []
    for index, row in frame.iterrows():
        cells = "".join(f'<td data-label="{escape(column)}">{escape(value)}</td>' for column, value in row.items())
        rows.append(f'<tr><th data-label="{escape(corner)}">{escape(index)}</th>{cells}</tr>')
    return (f'<table class="dataframe stacked">\n<thead><tr><th>{escape(corner)}</th>{header}</tr></thead>\n'
            f'<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table>")


class _HtmlWithMarkdown:
    """A display object with text/html (chosen by the HTML builder) and text/markdown (chosen by LaTeX)."""

    def __init__(self, html_text: str, markdown_text: str) -> None:
        self.html_text, self.markdown_text = html_text, markdown_text

    def _repr_html_(self) -> str:
        return self.html_text

    def _repr_markdown_(self) -> str:
        return self.markdown_text

    def __repr__(self) -> str:
        return self.markdown_text


def run_overrides(seed: int, data_source: str, overrides: Iterable[str]) -> list[str]:
    """The chapter parameters that ablation runs must share with the main run, as key=value strings."""
    items = list(overrides or [])
    if data_source:
        items.append(f"data_source={data_source}")
    if int(seed) != Config().seed:
        items.append(f"seed={int(seed)}")
    return items


def load_runs(run_dirs: dict) -> dict:
    """{name: run folder} -> {name: Run}."""
    from cvae.training.runs import load_run

    return {name: load_run(path) for name, path in run_dirs.items()}


def claims(config: Config, run, study_table) -> pd.DataFrame:
    """The claims table of this build (`cvae.study.findings.table`) from the main run's evaluation and the study."""
    from cvae.evaluation.run_evaluation import evaluate_run
    from cvae.study.findings import table

    return table(evaluate_run(config, progress=False), run.summary, config.epochs, study_table)


def evaluation(config: Config) -> dict:
    """`cvae.evaluation.run_evaluation.evaluate_run(config)`, cached in the run folder."""
    from cvae.evaluation.run_evaluation import evaluate_run

    return evaluate_run(config, progress=False)


__all__ = [
    "REPORT_DIR_ENV", "BOOK_BUILD_ENV", "setup_notebook", "notebook_config", "ChapterContext", "open_chapter",
    "open_data_chapter", "report_dir", "glue", "plain", "md", "figure_markdown", "html", "run_overrides", "load_runs",
    "evaluation", "claims",
]
