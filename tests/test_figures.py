"""Every figure of the book is legible where it is read: rendered as the notebook saves it (tight bounding box, the
figure's dpi) and scaled to the book's figure width at 1280 px, no text is smaller than the book's smallest running
text (`plots.MIN_TEXT_PX`), and no legend covers a plotting area. The inputs are at the size of a full build
(30 epochs, 21 classes, 13 variants, the whole weight grid), where crowding is worst."""

from __future__ import annotations

import io
from unittest import mock

import matplotlib

matplotlib.use("Agg", force=True)  # tests only; the book's kernels keep the inline backend

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from cvae.core.labels import CLASS_NAMES, MODALITY_OF_CLASS, NUM_CLASSES, class_label
from cvae.core.loss import TERMS
from cvae.report.augmentation_tables import ARM_NAMES
from cvae.report import plots, study_plots
from cvae.study.aux_factorial import READ_NAMES
from cvae.study.weight_search import CRITERIA, CRITERION_NAMES, GRID

RNG = np.random.default_rng(0)


def _metrics(epochs: int) -> pd.DataFrame:
    rows = []
    for epoch in range(epochs):
        row = {"epoch": epoch, "beta": min(0.1, 0.01 * epoch), "lr": 5e-4 * 0.5 ** (epoch // 10)}
        for term in (*TERMS, "total"):
            row[f"train_{term}"] = 1000.0 / (epoch + 1) + RNG.uniform(0, 50)
            row[f"val_{term}"] = 1000.0 / (epoch + 1) + RNG.uniform(0, 50)
        row.update(val_class_acc=0.3 + 0.01 * epoch, val_modality_acc=0.9,
                   val_total_at_beta_max=row["val_total"] + (0.1 - row["beta"]) * row["val_kl"])
        rows.append(row)
    return pd.DataFrame(rows)


def _images(n: int) -> np.ndarray:
    return RNG.random((n, 28, 28))


def _search() -> pd.DataFrame:
    rows = []
    defaults = {"a_l1": 0.1, "a_perc": 0.5, "beta_max": 0.1, "gamma": 1.0}
    for weight, values in GRID.items():
        for value in values:
            gains = {f"{c}_gain": 0.0 if value == defaults[weight] else RNG.uniform(-2, 2) for c in CRITERIA}
            rows.append({"weight": weight, "value": value, "current": value == defaults[weight],
                         "winner": value == values[-1], **{c: RNG.uniform(0.2, 30) for c in CRITERIA}, **gains,
                         **{f"{c}_low": gains[f"{c}_gain"] - 0.5 for c in CRITERIA},
                         **{f"{c}_high": gains[f"{c}_gain"] + 0.5 for c in CRITERIA}})
    return pd.DataFrame(rows)


def _per_class() -> pd.DataFrame:
    return pd.DataFrame({"label": range(NUM_CLASSES), "name": CLASS_NAMES, "modality": MODALITY_OF_CLASS,
                         "class_accuracy": RNG.random(NUM_CLASSES)})


def _balance() -> dict:
    moments = ("start", "end of warm-up", "end of the beta ramp", "last epoch")
    return {f"epoch {e}: {m}": {t: {"share_of_loss": 1 / len(TERMS), "share_of_gradient": 1 / len(TERMS)}
                                for t in TERMS} for e, m in zip((1, 5, 25, 30), moments)}


def _study() -> pd.DataFrame:
    return pd.DataFrame([{"name": name, "seed": seed, "best_val_total": RNG.uniform(300, 320)}
                         for name in ("paper", "latent64", "deep") for seed in range(3)])


def _fractions() -> pd.DataFrame:
    return pd.DataFrame([{"fraction": f, "arm": arm, "mean": 0.5, "low": 0.45, "high": 0.55}
                         for f in (0.01, 0.1, 1.0) for arm in ("real_only", "real_plus_synthetic")])


VARIANTS = ["paper", "latent64", "deep", "no_aux", "gamma_10", "encoder_unconditioned", "plateau_at_beta_max",
            "fp32", "a_l1=0", "a_l1=0.5", "a_perc=0", "a_perc=5", "beta_max=1"]
def _factorial() -> pd.DataFrame:
    return pd.DataFrame([{"batches": b, "encoder": e, "read": r, "seed": seed, "class_acc": RNG.uniform(0.2, 1),
                          "modality_acc": RNG.uniform(0.3, 1), "probe_modality_acc": 1.0}
                         for b in ("mixed", "single") for e in ("conditioned", "unconditioned")
                         for r in READ_NAMES for seed in range(3)])


FIGURES = {
    "sample_grid": lambda: plots.sample_grid(RNG.integers(0, 255, (21 * 12, 28, 28)).astype(np.uint8),
                                             np.repeat(np.arange(NUM_CLASSES), 12), title="Samples of run-x"),
    "aux_factorial": lambda: study_plots.aux_factorial(_factorial(), {"class": 0.34, "modality": 0.39},
                                                 {"class": 0.07, "modality": 0.392}, READ_NAMES),
    "loss_curves": lambda: plots.loss_curves(_metrics(30), best_epoch=4, kept_epoch=27),
    "learning_rate": lambda: plots.learning_rate(np.arange(1, 31), _metrics(30)["lr"], _metrics(30)["beta"]),
    "loss_shares": lambda: plots.loss_shares(_balance(), TERMS),
    "reconstructions": lambda: plots.reconstructions({m: _images(12) for m in range(3)},
                                                     {m: _images(12) for m in range(3)}),
    "class_grid": lambda: plots.class_grid({label: _images(4) for label in range(NUM_CLASSES)}, per_cell=4),
    "latent_scatter": lambda: plots.latent_scatter(RNG.normal(size=(2100, 2)), np.repeat(MODALITY_OF_CLASS, 100),
                                                   np.repeat(np.arange(NUM_CLASSES), 100), "t-SNE"),
    "gray_conversion": lambda: plots.gray_conversion(RNG.integers(0, 255, (9, 28, 28, 3)).astype(np.uint8),
                                                     RNG.integers(0, 255, (9, 28, 28)).astype(np.uint8)),
    "class_counts": lambda: plots.class_counts(pd.DataFrame(
        {"train": RNG.integers(1000, 40000, NUM_CLASSES), "val": RNG.integers(100, 4000, NUM_CLASSES),
         "test": RNG.integers(100, 8000, NUM_CLASSES)}, index=[class_label(c) for c in range(NUM_CLASSES)])),
    "kl_per_dimension": lambda: plots.kl_per_dimension(RNG.exponential(0.5, 128)),
    "per_class_accuracy": lambda: plots.per_class_accuracy(_per_class(), "class_accuracy", chance=1 / 21),
    "overlaid_curves": lambda: study_plots.overlaid_curves({name: _metrics(12) for name in VARIANTS}),
    "variant_samples": lambda: study_plots.variant_samples({name: _images(21) for name in VARIANTS}),
    "weight_sensitivity": lambda: study_plots.weight_sensitivity(_search(), CRITERIA, CRITERION_NAMES),
    "seeded_dots": lambda: study_plots.seeded_dots(_study(), ["paper", "latent64", "deep"], "best_val_total",
                                             "best validation loss (per image)"),
    "fraction_curves": lambda: study_plots.fraction_curves(_fractions(), ARM_NAMES),
    "placeholder_figure": lambda: plots.placeholder_figure("evaluation not available"),
}


def _render(fig) -> float:
    """Save as the notebook does and return the scale at which the page shows the PNG (1 = its own size)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=fig.dpi)
    buffer.seek(0)
    width_px = plt.imread(buffer).shape[1]
    return min(1.0, plots.TEXT_COLUMN_PX / width_px)


def _drawn_texts(fig) -> list[Text]:
    """The texts a draw of the figure actually draws (not tick labels outside the axes' limits), with some text."""
    drawn = []
    draw = Text.draw

    def recording(text, renderer):
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)
        return draw(text, renderer)

    with mock.patch.object(Text, "draw", recording):
        fig.canvas.draw()
    return drawn


HELPERS = ("mosaic", "class_colours", "styled", "new_figure", "epoch_axis", "show_image")  # no figure of the book


def test_every_book_figure_has_a_case_here():
    figures = {name for module in (plots, study_plots) for name in module.__all__
               if callable(getattr(module, name)) and name not in HELPERS}
    assert set(FIGURES) == figures


@pytest.fixture(params=sorted(FIGURES))
def rendered(request):
    """(name, figure, its scale on the page, renderer) of one book figure, saved as the notebook saves it."""
    fig = FIGURES[request.param]()
    scale = _render(fig)
    yield request.param, fig, scale, fig.canvas.get_renderer()
    plt.close(fig)


def test_figure_text_is_no_smaller_than_the_books_small_print(rendered):
    name, fig, scale, _ = rendered
    small = sorted({(round(t.get_fontsize() * fig.dpi / 72 * scale, 1), t.get_text()[:30]) for t in _drawn_texts(fig)})
    assert small, "no text found"
    assert small[0][0] >= plots.MIN_TEXT_PX, f"{name}: text below {plots.MIN_TEXT_PX} px on the page: {small[:5]}"


def test_no_legend_covers_a_plotting_area(rendered):
    name, fig, _, renderer = rendered
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    data_axes = [ax for ax in fig.axes if ax.axison and (ax.lines or ax.collections or ax.patches)]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in data_axes:
            assert not box.overlaps(ax.bbox), f"{name}: a legend covers the axes titled {ax.get_title()!r}"


def test_no_two_labels_overlap(rendered):
    name, fig, _, renderer = rendered
    boxes = [(text.get_text(), text.get_window_extent(renderer).shrunk(0.98, 0.9)) for text in _drawn_texts(fig)]
    for index, (text, box) in enumerate(boxes):
        for other, other_box in boxes[index + 1:]:
            assert not box.overlaps(other_box), f"{name}: {text!r} overlaps {other!r}"


def test_figures_use_the_page_style_whatever_the_callers_rcparams():
    with plt.rc_context({"font.size": 6, "figure.dpi": 50}):
        fig = plots.kl_per_dimension(np.ones(8))
    assert fig.dpi == plots.FIGURE_DPI
    assert fig.axes[0].xaxis.label.get_fontsize() == plots.STYLE["axes.labelsize"]
    plt.close(fig)


def test_ablation_curves_are_small_multiples_with_at_most_two_lines_a_panel():
    fig = FIGURES["overlaid_curves"]()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().replace("\n", "") for ax in panels] == VARIANTS  # one panel per variant, in order
    assert [len(ax.get_lines()) for ax in panels] == [1] + [2] * (len(VARIANTS) - 1)  # each beside the paper's
    assert len(fig.axes) == 16 and sum(1 for ax in fig.axes if not ax.get_visible()) == 3  # 4 x 4, three unused
    plt.close(fig)
