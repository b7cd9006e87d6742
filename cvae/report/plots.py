"""The report's figures of data, training, reconstructions, samples and the latent space (the study's are in
`cvae.report.study_plots`). Each function takes plain arrays / DataFrames and returns a matplotlib Figure.

No computation beyond layout happens here (the numbers come from `cvae.evaluation.examples`, `cvae.evaluation.run_evaluation`, the run folder).
Figures keep a white face colour so they stay legible when the book is read in its dark theme.
"""

from __future__ import annotations

import functools
import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from cvae.core.labels import MODALITY_NAMES, class_label, classes_of_modality
from cvae.core.loss import TERM_TITLES, TERMS

MODALITY_COLOURS = ("#d62728", "#1f77b4", "#2ca02c")

# The page a figure is read on. At 1280 px the book's figures are 672 px wide (Chromium, sphinx-book-theme), and the
# notebook saves each figure at FIGURE_DPI with a tight bounding box (0.1 in padding), so a figure up to
# PAGE_WIDTH_IN wide is shown at its own size and its text at the size set here. MIN_TEXT_PX is the book's smallest
# running text (tables, 0.85rem = 13.6 px beside a 16 px body; the theme's footnote marks are 13 px): no label of a
# figure may be smaller on the page (tests/test_figures.py renders every figure and checks it).
TEXT_COLUMN_PX = 672
FIGURE_DPI = 100
PAGE_WIDTH_IN = 6.5
MIN_TEXT_PX = 13.6
STYLE = {
    "font.size": 10.5, "axes.titlesize": 11, "axes.labelsize": 10.5, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 10, "legend.title_fontsize": 10.5, "figure.titlesize": 11.5, "figure.dpi": FIGURE_DPI,
    "savefig.dpi": FIGURE_DPI, "figure.facecolor": "white", "savefig.facecolor": "white",
}

def styled(function):
    """Run a figure function under STYLE, whatever the caller's rcParams (the notebook's or a test's)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return function(*args, **kwargs)
    return wrapper


def new_figure(nrows: int, ncols: int, size: tuple[float, float], **kwargs):
    """A white figure of nrows x ncols axes (always a 2-D array), `size` in inches, constrained layout by default."""
    kwargs.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)
    fig.patch.set_facecolor("white")
    return fig, axes


def class_colours() -> list:
    """21 colours, one per global class: each modality in its own hue families (PathMNIST reds, pinks and a brown,
    TissueMNIST blues and indigos, OCTMNIST greens), four lightness steps per family, so neighbouring classes differ
    in hue or clearly in lightness (one hue in nine lightness steps could not be told apart)."""
    b, c = plt.get_cmap("tab20b").colors, plt.get_cmap("tab20c").colors
    families = ([*b[12:16], *b[16:20], b[8]], [*c[0:4], *b[0:4]], [*c[8:12]])
    colours = []
    for modality, family in enumerate(families):
        colours += list(family[:len(classes_of_modality(modality))])
    return colours


def mosaic(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Tile (rows*cols, H, W) images into one (rows*(H+pad)-pad, cols*(W+pad)-pad) array (missing tiles = white)."""
    images = np.asarray(images, dtype=np.float32)
    if images.max(initial=0) > 1.5:
        images = images / 255.0
    h, w = images.shape[-2:]
    canvas = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)
    for i, image in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        canvas[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = image
    return canvas


def show_image(ax, image: np.ndarray, title: str | None = None, **title_kwargs) -> None:
    """A gray image (H, W) with values in [0, 1] on `ax`, without ticks, with an optional title."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, **title_kwargs)


def epoch_axis(ax) -> None:
    """An axis over epochs: whole epochs on x (at most five ticks), four ticks on y, a light grid."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.grid(alpha=0.3)


def _mark_epochs(ax, best_epoch: int, kept_epoch: int | None) -> None:
    ax.axvline(best_epoch + 1, color="0.3", ls="--", lw=1, label=f"lowest total (epoch {best_epoch + 1})")
    if kept_epoch is not None and kept_epoch != best_epoch:
        ax.axvline(kept_epoch + 1, color="#6a1b9a", ls=":", lw=1.5, label=f"kept checkpoint (epoch {kept_epoch + 1})")


@styled
def loss_curves(metrics: pd.DataFrame, best_epoch: int, kept_epoch: int | None = None) -> Figure:
    """Figure 1: train and validation value of every loss term and the total per epoch, with the epoch of the lowest
    validation total (the original's rule) and, where it differs, the kept checkpoint's epoch marked (0-based inputs).

    Eight panels in four rows of two: the six terms, the total, and the validation accuracy of both auxiliary heads;
    one legend above them all.
    """
    fig, axes = new_figure(4, 2, (PAGE_WIDTH_IN, 8.6))
    epochs = metrics["epoch"].to_numpy() + 1  # 1-based for the reader
    for ax, term in zip(axes.flat, (*TERMS, "total")):
        ax.plot(epochs, metrics[f"train_{term}"], marker="o", ms=3, lw=1.5, color="C0", label="train")
        ax.plot(epochs, metrics[f"val_{term}"], marker="s", ms=3, lw=1.5, color="C1", label="validation")
        if term == "total" and "val_total_at_beta_max" in metrics:  # what picks the kept checkpoint
            ax.plot(epochs, metrics["val_total_at_beta_max"], ls="-.", lw=1.5, color="C5",
                    label="validation at the final β (picks the kept one)")
        _mark_epochs(ax, best_epoch, kept_epoch)
        ax.set_title(f"{TERM_TITLES[term]} (per image)")
        epoch_axis(ax)
    ax = axes.flat[7]
    ax.plot(epochs, metrics["val_class_acc"], marker="o", ms=3, color="C2", label="class head (validation)")
    # dashed over solid: both lines stay visible where the two heads read the same (e.g. both at 100%)
    ax.plot(epochs, metrics["val_modality_acc"], marker="s", ms=3, color="C3", ls="--",
            label="modality head (validation)")
    _mark_epochs(ax, best_epoch, kept_epoch)
    ax.set_ylim(0, 1.02)
    ax.set_title("aux heads: accuracy")
    epoch_axis(ax)
    entries = {label: handle for panel in (axes.flat[0], axes.flat[6], ax)
               for handle, label in zip(*panel.get_legend_handles_labels())}  # one entry per label, in order
    fig.legend(list(entries.values()), list(entries), loc="outside upper center", ncols=2, frameon=False)
    return fig


@styled
def reconstructions(originals: Mapping[int, np.ndarray], recons: Mapping[int, np.ndarray]) -> Figure:
    """Figure 2: per modality, originals (top row) over reconstructions (bottom row); one axes per modality.

    `originals[m]`, `recons[m]`: (n, 28, 28) arrays in [0, 1] (or uint8) for modality m.
    """
    modalities = sorted(originals)
    n = max(len(originals[m]) for m in modalities)
    width = min(0.62 * n + 0.2, PAGE_WIDTH_IN)
    fig, axes = new_figure(len(modalities), 1, (width, (width - 0.2) / n * 2 * len(modalities) + 0.45 * len(modalities)))
    for ax, m in zip(axes[:, 0], modalities):
        shown = np.asarray(originals[m])
        stacked = np.concatenate([shown.astype(np.float32) / (255.0 if shown.dtype == np.uint8 else 1.0),
                                  np.asarray(recons[m], np.float32)])
        show_image(ax, mosaic(stacked, 2, len(shown)), f"{MODALITY_NAMES[m]}: originals (top), reconstructions (bottom)")
    return fig


def _class_key(classes: Sequence[int], prefix: str = "", width_chars: int = 86) -> str:
    """The names of some global classes as wrapped lines 'PathMNIST: 0 adipose · 1 background · ...'."""
    # a no-break space inside each name keeps a label with its name on one line
    names = " · ".join(class_label(label).replace(" ", "\u00a0") for label in classes)
    return "\n".join(line.replace("\u00a0", " ") for line in textwrap.wrap(prefix + names, width_chars,
                                                                            subsequent_indent="    "))


@styled
def class_grid(images_by_class: Mapping[int, np.ndarray], per_cell: int = 4, title: str | None = None) -> Figure:
    """Figures 3 and 6: rows = modalities, columns = that modality's classes, each cell a mosaic of images.

    `images_by_class[label]`: (k, 28, 28) images of one global class (k >= per_cell; in [0,1] or uint8).
    Each cell is titled by its global label; the class names are the key under the grid. 3 x 9 axes.
    """
    side = int(np.ceil(np.sqrt(per_cell)))
    ncols = max(len(classes_of_modality(m)) for m in range(len(MODALITY_NAMES)))
    key = "\n".join(_class_key(classes_of_modality(m), f"{MODALITY_NAMES[m]}: ") for m in range(len(MODALITY_NAMES)))
    key_height = 0.2 * (key.count("\n") + 1) + 0.15
    grid_height = len(MODALITY_NAMES) * ((PAGE_WIDTH_IN - 0.4) / ncols + 0.3) + (0.3 if title else 0)
    fig, axes = new_figure(len(MODALITY_NAMES), ncols, (PAGE_WIDTH_IN, grid_height + key_height))
    fig.get_layout_engine().set(rect=(0, key_height / (grid_height + key_height), 1,
                                      1 - key_height / (grid_height + key_height)))
    for m, row in enumerate(axes):
        members = classes_of_modality(m)
        for c, ax in enumerate(row):
            if c >= len(members):
                ax.axis("off")
                continue
            label = members[c]
            show_image(ax, mosaic(np.asarray(images_by_class[label])[:per_cell], side, side), str(label))
            if c == 0:
                ax.set_ylabel(MODALITY_NAMES[m])
    fig.text(0.01, 0.01, key, va="bottom", ha="left", fontsize=STYLE["xtick.labelsize"], linespacing=1.4)
    if title:
        fig.suptitle(title)
    return fig


@styled
def latent_scatter(embedding: np.ndarray, modalities: np.ndarray, labels: np.ndarray, method: str) -> Figure:
    """Figures 4 and 5: a 2-D embedding of mu coloured by modality (left) and by global class (right); 2 axes.

    The legends sit outside the panels: the modalities above, the classes below in two columns."""
    fig, axes = new_figure(1, 2, (PAGE_WIDTH_IN, 6.4))
    embedding = np.asarray(embedding)
    for m, name in enumerate(MODALITY_NAMES):
        keep = modalities == m
        axes[0, 0].scatter(*embedding[keep].T, s=5, alpha=0.6, color=MODALITY_COLOURS[m], label=name)
    axes[0, 0].set_title("by modality")
    colours = class_colours()
    handles, names = [], []
    for label in np.unique(labels):
        keep = labels == label
        handles.append(axes[0, 1].scatter(*embedding[keep].T, s=5, alpha=0.6, color=colours[int(label)]))
        names.append(class_label(label))
    axes[0, 1].set_title("by class")
    for ax in axes[0]:
        ax.set_xlabel(f"{method} 1")
        ax.set_ylabel(f"{method} 2")
        ax.set_box_aspect(1)
        ax.grid(alpha=0.2)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncols=3, markerscale=3,
               frameon=False)
    fig.legend(handles, names, loc="outside lower center", ncols=2, markerscale=3, frameon=False,
               columnspacing=1.0, handletextpad=0.3)
    return fig


@styled
def gray_conversion(rgb: np.ndarray, gray: np.ndarray) -> Figure:
    """PathMNIST colour images (top) and their ITU-R 601 luma (bottom); (n,28,28,3) and (n,28,28) uint8; 2 axes."""
    n = len(rgb)
    width = min(0.62 * n + 0.2, PAGE_WIDTH_IN)
    fig, axes = new_figure(2, 1, (width, 2 * (width - 0.2) / n + 0.9))
    rgb_tiles = np.ones((28, n * 29 - 1, 3), dtype=np.float32)
    for i, image in enumerate(rgb):
        rgb_tiles[:, i * 29: i * 29 + 28] = image / 255.0
    axes[0, 0].imshow(rgb_tiles, interpolation="nearest")
    axes[0, 0].set_title("RGB")
    axes[0, 0].set_xticks([]), axes[0, 0].set_yticks([])
    show_image(axes[1, 0], mosaic(gray, 1, n), "gray = 0.299 R + 0.587 G + 0.114 B")
    return fig


@styled
def class_counts(counts: pd.DataFrame) -> Figure:
    """Images per global class and split as grouped horizontal bars; `counts` indexed by class, columns = splits."""
    fig, axes = new_figure(1, 1, (PAGE_WIDTH_IN, 0.24 * len(counts) + 1.0))  # print scales it to 0.38 of a page
    ax = axes[0, 0]
    counts.plot.barh(ax=ax, width=0.8, legend=False)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_ylabel("")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.grid(alpha=0.3, axis="x")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=len(counts.columns), frameon=False)
    return fig


@styled
def kl_per_dimension(kl: Sequence[float], threshold: float = 0.01) -> Figure:
    """Mean KL per latent dimension (nats), sorted, with the active-unit threshold; one axes."""
    fig, axes = new_figure(1, 1, (PAGE_WIDTH_IN, 3.2))
    ax = axes[0, 0]
    values = np.sort(np.asarray(kl, dtype=float))[::-1]
    ax.bar(np.arange(len(values)), values, width=1.0, color="#1f77b4")
    ax.axhline(threshold, color="0.3", ls="--", lw=1, label=f"active-unit threshold ({threshold:g} nats)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("latent dimension (sorted by KL)")
    ax.set_ylabel("KL (nats)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", frameon=False)
    return fig


def _modality_index(modality) -> int:
    """0-2 from a modality id, dataset flag ('pathmnist') or display name ('PathMNIST')."""
    from cvae.core.labels import DATASETS

    if isinstance(modality, str):
        lowered = modality.lower()
        return DATASETS.index(lowered) if lowered in DATASETS else [n.lower() for n in MODALITY_NAMES].index(lowered)
    return int(modality)


@styled
def per_class_accuracy(table: pd.DataFrame, value: str = "class_accuracy", chance: float | None = None) -> Figure:
    """Horizontal bars of one accuracy column per class (rows of `table` with `label`, `name`, `modality`), with a
    black tick at each class's `real_class_accuracy` when the column is the class accuracy; 1 axes."""
    fig, axes = new_figure(1, 1, (PAGE_WIDTH_IN, 0.3 * len(table) + 1.3))
    ax = axes[0, 0]
    colours = [MODALITY_COLOURS[_modality_index(m)] for m in table["modality"]]
    ax.barh([class_label(label) for label in table["label"]], table[value], color=colours)
    handles = [Patch(color=colour, label=name) for colour, name in zip(MODALITY_COLOURS, MODALITY_NAMES)]
    if chance is not None:
        handles.append(ax.axvline(chance, color="0.3", ls="--", lw=1, label=f"chance ({chance:.1%})"))
    if value == "class_accuracy" and "real_class_accuracy" in table:
        handles.append(ax.scatter(table["real_class_accuracy"], range(len(table)), marker="|", s=220, color="black",
                                  linewidths=2, zorder=3, label="real test images"))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel(value.replace("_", " "))
    ax.grid(alpha=0.3, axis="x")
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), frameon=False, columnspacing=1.0)
    return fig


def _moment_tick(moment: str) -> str:
    """'epoch 25: end of the beta ramp' -> '25\nend of\nthe\nbeta\nramp' (a tick under a bar 0.7 in wide)."""
    epoch, _, name = moment.partition(": ")
    if not name:
        return moment
    return "\n".join([epoch.removeprefix("epoch "), *textwrap.wrap(name, 8, break_long_words=False)])


@styled
def loss_shares(balance: Mapping[str, Mapping[str, Mapping[str, float]]], terms: Sequence[str]) -> Figure:
    """Stacked bars per measured moment: each weighted term's share of the loss (left) and of the gradient norm over
    the parameters (right); the legend under both."""
    moments = list(balance)
    fig, axes = new_figure(1, 2, (PAGE_WIDTH_IN, 4.4), sharey=True)
    colours = plt.get_cmap("tab10").colors
    for ax, key, title in zip(axes[0], ("share_of_loss", "share_of_gradient"), ("share of the loss",
                                                                               "share of the gradient norm")):
        bottom = np.zeros(len(moments))
        for index, term in enumerate(terms):
            values = np.array([balance[m][term][key] for m in moments])
            ax.bar(range(len(moments)), values, bottom=bottom, color=colours[index], label=TERM_TITLES[term])
            bottom += values
        ax.set_xticks(range(len(moments)), [_moment_tick(m) for m in moments])
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.set_title(title)
        ax.set_xlabel("start of epoch")
        ax.grid(alpha=0.3, axis="y")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    return fig


@styled
def learning_rate(epochs: Sequence[int], rates: Sequence[float], betas: Sequence[float]) -> Figure:
    """The learning rate per epoch (log scale, left axis) with the KL weight beta(t) (right axis); epochs 1-based."""
    fig, axes = new_figure(1, 1, (PAGE_WIDTH_IN, 3.0))
    ax = axes[0, 0]
    ax.step(epochs, rates, where="post", color="#1f77b4", lw=2, label="learning rate")
    ax.set_yscale("log")
    levels = sorted(set(float(rate) for rate in rates))
    if len(levels) <= 6:  # label the rates the schedule actually used
        ax.set_yticks(levels, [f"{level:.3g}" for level in levels])
        ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate", color="#1f77b4")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    twin = ax.twinx()
    # beta is one value per epoch: a step centred on each epoch, with a dot on it, never a ramp between two epochs
    twin.step(epochs, betas, where="mid", color="#d62728", lw=1.5, ls="--", label="KL weight beta(t)")
    twin.plot(epochs, betas, "o", color="#d62728", ms=3)
    twin.set_ylabel("beta(t)", color="#d62728")
    ax.grid(alpha=0.3)
    return fig


@styled
def placeholder_figure(text: str):
    """A small figure that says what is missing (keeps the numbered figure and its caption in place)."""
    fig, ax = plt.subplots(figsize=(5, 1.2))
    fig.patch.set_facecolor("white")
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


@styled
def sample_grid(images: np.ndarray, labels: np.ndarray, per_row: int = 12, title: str | None = None) -> Figure:
    """One row per requested class (its global label and name on the left), up to `per_row` of its samples:
    (N, 28, 28) uint8 or [0, 1] images with their (N,) global labels."""
    classes = list(dict.fromkeys(int(label) for label in labels))
    row_height = (PAGE_WIDTH_IN - 2.2) / per_row + 0.08
    fig, axes = new_figure(len(classes), 1, (PAGE_WIDTH_IN, len(classes) * row_height + (0.4 if title else 0.1)))
    for ax, label in zip(axes[:, 0], classes):
        chosen = np.asarray(images)[np.asarray(labels) == label][:per_row]
        show_image(ax, mosaic(chosen, 1, per_row))
        ax.set_ylabel(textwrap.shorten(class_label(label), 26, placeholder="…"), rotation=0, ha="right",
                      va="center", fontsize=STYLE["xtick.labelsize"])
    if title:
        fig.suptitle(title)
    return fig


@styled
def sample_block(images: np.ndarray, label: int, per_row: int = 6) -> Figure:
    """Samples of one class as a block of `per_row` columns, titled by the class: (N, 28, 28) uint8 or [0, 1]."""
    rows = -(-len(images) // per_row)
    fig, axes = new_figure(1, 1, (PAGE_WIDTH_IN * 0.6, PAGE_WIDTH_IN * 0.6 * rows / per_row + 0.4))
    show_image(axes[0, 0], mosaic(images, rows, per_row), class_label(label))
    return fig


__all__ = [
    "sample_grid", "loss_curves", "reconstructions", "class_grid", "latent_scatter", "gray_conversion",
    "class_counts", "kl_per_dimension", "per_class_accuracy", "mosaic", "class_colours", "placeholder_figure",
    "loss_shares", "learning_rate", "styled", "new_figure", "epoch_axis", "show_image", "STYLE", "PAGE_WIDTH_IN",
    "TEXT_COLUMN_PX", "FIGURE_DPI", "MIN_TEXT_PX",
]
