"""Two live views for JupyterLab (`make lab`): samples of a chosen class at a chosen temperature, and chosen study
variants over chosen seeds with each one's interval against the paper's model.

Each view is a plain function that returns what a page shows (`sample_view`, `study_view`); the widgets
(`sampling_widget`, `study_widget`) only call it again when a control changes. `offer` shows the widget in a live
kernel with ipywidgets installed and, in a book build or without ipywidgets, glues the view at its default values
for the page's figure directive.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
from matplotlib.figure import Figure

from cvae.core.labels import CLASS_NAMES, MODALITY_NAMES, MODALITY_OF_CLASS
from cvae.evaluation.sampling import draw, resolve_classes
from cvae.report.chapter import BOOK_BUILD_ENV
from cvae.study.ablations import STANDARD

TEMPERATURES = (0.25, 2.0)  # the temperature slider's range


def live() -> bool:
    """Whether widgets can run here: ipywidgets is installed and this is not a book build's kernel."""
    return not os.environ.get(BOOK_BUILD_ENV) and importlib.util.find_spec("ipywidgets") is not None


def sample_view(model, class_name: str, temperature: float = 1.0, n: int = 12, seed: int = 0) -> Figure:
    """`n` prior samples of one class (global label or name, as `python -m cvae sample --class`) decoded at
    `temperature` (z ~ N(0, temperature^2 I)): a block of 28x28 images, six per row, titled by the class."""
    from cvae.report.plots import sample_block

    labels = resolve_classes([str(class_name)], None)
    images, _ = draw(model, labels, n, temperature, seed)
    return sample_block(images, labels[0], per_row=6)


def sample_page(model, class_name: str, temperature: float = 1.0, n: int = 12, seed: int = 0) -> dict:
    """The sampling chapter's values for `sample_view`: {'fig_on_demand': the figure, 'on_demand_what': 'drusen
    (OCTMNIST), temperature 1, seed 0'}."""
    label = resolve_classes([str(class_name)], None)[0]
    what = (f"{CLASS_NAMES[label]} ({MODALITY_NAMES[MODALITY_OF_CLASS[label]]}), temperature {temperature:g}, "
            f"seed {seed}")
    return {"fig_on_demand": sample_view(model, class_name, temperature, n, seed), "on_demand_what": what}


@dataclass(frozen=True)
class StudyView:
    """What `study_view` shows: the curves (one line per variant and seed), one sentence per variant against the
    paper's model, and the measured rows (one per run, the study's columns)."""

    figure: Figure
    sentences: list[str]
    table: pd.DataFrame

    def glued(self) -> dict:
        """The page's values: {'fig_explore': figure, 'explore_sentences': the sentences as one paragraph}."""
        return {"fig_explore": self.figure, "explore_sentences": " ".join(self.sentences)}


def study_view(profile: str, variants: Iterable[str], seeds: int, seed: int = 0, extra: Iterable[str] = (),
               data_dir: str | Path | None = None, progress: bool = False, train_missing: bool = True) -> StudyView:
    """Train (or reuse) the paper's model and each of `variants` over `seeds` seeds from `seed`, then plot their
    validation loss at the final KL weight per epoch and state each variant's paired change against the paper's
    model (% of its loss, 95% CI over seeds) and how many of its runs passed the learning gate. With
    `train_missing` False (a book build) only runs that already exist are shown."""
    from cvae.core.paths import runs_dir
    from cvae.report.chapter import load_runs
    from cvae.report.plots import placeholder_figure
    from cvae.report.study_plots import overlaid_curves
    from cvae.study.runner import main_config, measure_runs, paired_spread, seeded_runs, variant_gate
    from cvae.training.run_pool import default_workers
    from cvae.training.runs import is_finished, run_dir_for

    names = ["paper", *[name for name in dict.fromkeys(variants) if name != "paper"]]
    runs = seeded_runs(profile, names, range(seed, seed + seeds), extra, data_dir)
    if not train_missing:
        runs = [run for run in runs if is_finished(run_dir_for(run.config))]
        names = [name for name in names if any(run.name == name for run in runs)]
    if not runs:
        return StudyView(placeholder_figure("no finished runs of these variants: make lab trains them"),
                         ["This build has no finished runs of the chosen variants."], pd.DataFrame())
    table = measure_runs(runs, main_config(profile, extra, data_dir), progress, default_workers(profile))
    ordered = table.sort_values(["name", "seed"], key=lambda c: c.map(names.index) if c.name == "name" else c)
    loaded = load_runs({f"{row['name']} seed {int(row['seed'])}": runs_dir() / row["run"]
                        for _, row in ordered.iterrows()})  # one variant's seeds together in the legend
    figure = overlaid_curves({name: run.metrics for name, run in loaded.items()}, "val_total_at_beta_max",
                             "validation loss at the final β (per image)")
    sentences = []
    for name in [name for name in names if name != "paper"]:
        spread, gate = paired_spread(table, name), variant_gate(table, name)
        change = spread.text(1, percent=True) if spread is not None else "no paired seeds"
        learned = f"{gate.runs - gate.failed_runs} of {gate.runs} runs passed the learning gate"
        sentences.append(f"{name} against the paper's model: loss change {change}; {learned}.")
    return StudyView(figure, sentences, table)


def _display_figure(figure: Figure) -> None:
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(figure)
    plt.close(figure)  # else the inline backend shows it a second time


def sampling_widget(model, class_name: str = CLASS_NAMES[0], temperature: float = 1.0, n: int = 12, seed: int = 0):
    """A class menu and a temperature slider over `sample_view` (redrawn on every change)."""
    import ipywidgets as widgets

    class_name = CLASS_NAMES[resolve_classes([str(class_name)], None)[0]]  # a label or partial name -> the menu's

    def show(class_name: str, temperature: float, seed: int):
        _display_figure(sample_view(model, class_name, temperature, n, seed))

    return widgets.interactive(
        show, class_name=widgets.Dropdown(options=list(CLASS_NAMES), value=class_name, description="class"),
        temperature=widgets.FloatSlider(value=temperature, min=TEMPERATURES[0], max=TEMPERATURES[1], step=0.05,
                                        description="temperature"),
        seed=widgets.IntText(value=seed, description="seed"))


def study_widget(profile: str, variants: Iterable[str] = ("latent64",), seeds: int = 3, seed: int = 0,
                 extra: Iterable[str] = (), data_dir: str | Path | None = None):
    """Variant checkboxes, a seed count and a Run button over `study_view` (missing runs train when pressed)."""
    import ipywidgets as widgets
    from IPython.display import Markdown, display

    def show(variants: tuple[str, ...], seeds: int):
        view = study_view(profile, variants, seeds, seed, extra, data_dir, progress=True)
        _display_figure(view.figure)
        display(Markdown("\n\n".join(view.sentences)))

    choices = [name for name in STANDARD if name != "paper"]
    return widgets.interactive(
        show, {"manual": True, "manual_name": "train and show"},
        variants=widgets.SelectMultiple(options=choices, value=tuple(v for v in variants if v in choices),
                                        description="variants"),
        seeds=widgets.IntSlider(value=seeds, min=1, max=5, description="seeds"))


def offer(widget: Callable[[], object], static: Callable[[], dict]) -> None:
    """Display `widget()` where widgets can run (`live`); else glue `static()`'s values (figures, sentences) under
    their keys, so the built page shows the view at its default values where its markdown places them."""
    from IPython.display import display

    from cvae.report.chapter import glue

    if live():
        display(widget())
        return
    for key, value in static().items():
        glue(key, value)


__all__ = ["live", "sample_view", "sample_page", "StudyView", "study_view", "sampling_widget", "study_widget",
           "offer"]
