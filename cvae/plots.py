"""Every figure of the report. Each function takes plain arrays / DataFrames and returns a matplotlib Figure.

No computation beyond layout happens here (the numbers come from `cvae.examples`, `cvae.evaluate`, the run folder).
Figures keep a white face colour so they stay legible when the book is read in its dark theme.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .labels import CLASS_NAMES, MODALITY_NAMES, classes_of_modality
from .loss import TERMS

TERM_TITLES = {
    "mse": "MSE", "l1": "L1", "perceptual": "perceptual", "kl": "KL",
    "class_ce": "class cross-entropy", "modality_ce": "modality cross-entropy", "total": "total",
}
MODALITY_COLOURS = ("#d62728", "#1f77b4", "#2ca02c")


def _figure(nrows: int, ncols: int, size: tuple[float, float], **kwargs):
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kwargs)
    fig.patch.set_facecolor("white")
    return fig, axes


def class_colours() -> list:
    """21 colours, one per global class, grouped by modality (reds, blues, greens)."""
    maps = (plt.get_cmap("Reds"), plt.get_cmap("Blues"), plt.get_cmap("Greens"))
    colours = []
    for modality, cmap in enumerate(maps):
        members = classes_of_modality(modality)
        colours += [cmap(0.35 + 0.6 * i / max(len(members) - 1, 1)) for i in range(len(members))]
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


def _show(ax, image: np.ndarray, title: str | None = None, fontsize: float = 8) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def loss_curves(metrics: pd.DataFrame, best_epoch: int) -> Figure:
    """Figure 1: train and validation value of every loss term and the total per epoch, best epoch marked.

    Eight panels: the six terms, the total, and the validation accuracy of both auxiliary heads.
    """
    fig, axes = _figure(2, 4, (13, 5.6))
    epochs = metrics["epoch"].to_numpy() + 1  # 1-based for the reader
    for ax, term in zip(axes.flat, (*TERMS, "total")):
        ax.plot(epochs, metrics[f"train_{term}"], marker="o", ms=3, lw=1.5, label="train")
        ax.plot(epochs, metrics[f"val_{term}"], marker="s", ms=3, lw=1.5, label="validation")
        ax.axvline(best_epoch + 1, color="0.3", ls="--", lw=1, label=f"best epoch ({best_epoch + 1})")
        ax.set_title(TERM_TITLES[term], fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax = axes.flat[7]
    ax.plot(epochs, metrics["val_class_acc"], marker="o", ms=3, label="class head")
    ax.plot(epochs, metrics["val_modality_acc"], marker="s", ms=3, label="modality head")
    ax.axvline(best_epoch + 1, color="0.3", ls="--", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_title("validation accuracy of the aux heads", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def beta_schedule(epochs: Sequence[int], betas: Sequence[float]) -> Figure:
    """The KL weight beta(t) per epoch (one axes)."""
    fig, axes = _figure(1, 1, (5, 2.6))
    ax = axes[0, 0]
    ax.step(np.asarray(epochs) + 1, betas, where="post", lw=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"$\beta$")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def reconstructions(originals: Mapping[int, np.ndarray], recons: Mapping[int, np.ndarray]) -> Figure:
    """Figure 2: per modality, originals (top row) over reconstructions (bottom row); one axes per modality.

    `originals[m]`, `recons[m]`: (n, 28, 28) arrays in [0, 1] (or uint8) for modality m.
    """
    modalities = sorted(originals)
    n = max(len(originals[m]) for m in modalities)
    fig, axes = _figure(len(modalities), 1, (min(1.0 * n, 12), 2.5 * len(modalities)))
    for ax, m in zip(axes[:, 0], modalities):
        stacked = np.concatenate([np.asarray(originals[m], np.float32) / (255.0 if np.asarray(originals[m]).dtype == np.uint8 else 1.0),
                                  np.asarray(recons[m], np.float32)])
        _show(ax, mosaic(stacked, 2, len(originals[m])), f"{MODALITY_NAMES[m]}: originals (top), reconstructions (bottom)", 10)
    fig.tight_layout()
    return fig


def class_grid(images_by_class: Mapping[int, np.ndarray], per_cell: int = 4, title: str | None = None) -> Figure:
    """Figures 3 and 6: rows = modalities, columns = that modality's classes, each cell a mosaic of images.

    `images_by_class[label]`: (k, 28, 28) images of one global class (k >= per_cell; in [0,1] or uint8).
    The column titles are the medmnist class names; unused cells are hidden. 3 x 9 axes.
    """
    side = int(np.ceil(np.sqrt(per_cell)))
    ncols = max(len(classes_of_modality(m)) for m in range(len(MODALITY_NAMES)))
    fig, axes = _figure(len(MODALITY_NAMES), ncols, (1.45 * ncols, 2.0 * len(MODALITY_NAMES)))
    for m, row in enumerate(axes):
        members = classes_of_modality(m)
        for c, ax in enumerate(row):
            if c >= len(members):
                ax.axis("off")
                continue
            label = members[c]
            name = "\n".join(textwrap.wrap(CLASS_NAMES[label], 18, break_on_hyphens=False, break_long_words=False)[:3])
            _show(ax, mosaic(np.asarray(images_by_class[label])[:per_cell], side, side), f"{label}: {name}", 6.5)
            if c == 0:
                ax.set_ylabel(MODALITY_NAMES[m], fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def latent_scatter(embedding: np.ndarray, modalities: np.ndarray, labels: np.ndarray, method: str) -> Figure:
    """Figures 4 and 5: a 2-D embedding of mu coloured by modality (left) and by global class (right); 2 axes."""
    fig, axes = _figure(1, 2, (13, 5.4))
    embedding = np.asarray(embedding)
    for m, name in enumerate(MODALITY_NAMES):
        keep = modalities == m
        axes[0, 0].scatter(*embedding[keep].T, s=5, alpha=0.6, color=MODALITY_COLOURS[m], label=name)
    axes[0, 0].legend(markerscale=3, fontsize=9)
    axes[0, 0].set_title(f"{method} of $\\mu$, coloured by modality", fontsize=10)
    colours = class_colours()
    for label in np.unique(labels):
        keep = labels == label
        axes[0, 1].scatter(*embedding[keep].T, s=5, alpha=0.6, color=colours[int(label)],
                           label=f"{int(label)} {CLASS_NAMES[int(label)][:22]}")
    axes[0, 1].legend(markerscale=3, fontsize=6.5, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes[0, 1].set_title(f"{method} of $\\mu$, coloured by class", fontsize=10)
    for ax in axes[0]:
        ax.set_xlabel(f"{method} 1")
        ax.set_ylabel(f"{method} 2")
        ax.grid(alpha=0.2)
    fig.tight_layout()
    return fig


def gray_conversion(rgb: np.ndarray, gray: np.ndarray) -> Figure:
    """PathMNIST colour images (top) and their ITU-R 601 luma (bottom); (n,28,28,3) and (n,28,28) uint8; 2 axes."""
    n = len(rgb)
    fig, axes = _figure(2, 1, (min(1.1 * n, 11), 3.2))
    rgb_tiles = np.ones((28, n * 29 - 1, 3), dtype=np.float32)
    for i, image in enumerate(rgb):
        rgb_tiles[:, i * 29: i * 29 + 28] = image / 255.0
    axes[0, 0].imshow(rgb_tiles, interpolation="nearest")
    axes[0, 0].set_title("RGB", fontsize=9)
    axes[0, 0].set_xticks([]), axes[0, 0].set_yticks([])
    _show(axes[1, 0], mosaic(gray, 1, n), "gray = 0.299 R + 0.587 G + 0.114 B", 9)
    fig.tight_layout()
    return fig


def class_counts(counts: pd.DataFrame) -> Figure:
    """Images per global class and split as grouped horizontal bars; `counts` indexed by class, columns = splits."""
    fig, axes = _figure(1, 1, (8, 6))
    ax = axes[0, 0]
    counts.plot.barh(ax=ax, width=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.grid(alpha=0.3, axis="x")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def kl_per_dimension(kl: Sequence[float], threshold: float = 0.01) -> Figure:
    """Mean KL per latent dimension (nats), sorted, with the active-unit threshold; one axes."""
    fig, axes = _figure(1, 1, (8, 3))
    ax = axes[0, 0]
    values = np.sort(np.asarray(kl, dtype=float))[::-1]
    ax.bar(np.arange(len(values)), values, width=1.0, color="#1f77b4")
    ax.axhline(threshold, color="0.3", ls="--", lw=1, label=f"active-unit threshold ({threshold:g} nats)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("latent dimension (sorted by KL)")
    ax.set_ylabel("KL (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _modality_index(modality) -> int:
    """0-2 from a modality id, dataset flag ('pathmnist') or display name ('PathMNIST')."""
    from .labels import DATASETS

    if isinstance(modality, str):
        lowered = modality.lower()
        return DATASETS.index(lowered) if lowered in DATASETS else [n.lower() for n in MODALITY_NAMES].index(lowered)
    return int(modality)


def per_class_accuracy(table: pd.DataFrame, value: str = "class_accuracy", chance: float | None = None) -> Figure:
    """Horizontal bars of one accuracy column per class (rows of `table` with `label`, `name`, `modality`); 1 axes."""
    fig, axes = _figure(1, 1, (8, 6))
    ax = axes[0, 0]
    colours = [MODALITY_COLOURS[_modality_index(m)] for m in table["modality"]]
    ax.barh([f"{int(l)} {n[:30]}" for l, n in zip(table["label"], table["name"])], table[value], color=colours)
    if chance is not None:
        ax.axvline(chance, color="0.3", ls="--", lw=1, label="chance")
        ax.legend(fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(value.replace("_", " "))
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def overlaid_curves(curves: Mapping[str, pd.DataFrame], column: str = "val_total", ylabel: str = "validation loss") -> Figure:
    """One line per named run (e.g. ablation variants): `column` over epochs; one axes."""
    fig, axes = _figure(1, 1, (8, 4))
    ax = axes[0, 0]
    for name, metrics in curves.items():
        ax.plot(metrics["epoch"] + 1, metrics[column], marker="o", ms=3, lw=1.5, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def variant_samples(samples: Mapping[str, np.ndarray], per_row: int = 21) -> Figure:
    """One row per named variant: a strip of generated images (one per class); one axes per variant."""
    names = list(samples)
    fig, axes = _figure(len(names), 1, (11, 0.75 * len(names) + 0.6))
    for ax, name in zip(axes[:, 0], names):
        images = np.asarray(samples[name])
        _show(ax, mosaic(images, 1, min(per_row, len(images))))
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def weight_sensitivity(search: pd.DataFrame, criteria: Mapping[str, int], names: Mapping[str, str]) -> Figure:
    """One panel per searched weight: each criterion's change against the default value (in %, signed so that up is
    better), over the weight's candidate values; the default and the rule's winner marked."""
    weights = list(dict.fromkeys(search["weight"]))
    fig, axes = _figure(1, len(weights), (3.1 * len(weights), 3.4), sharey=True)
    for ax, weight in zip(axes[0], weights):
        line = search[search["weight"] == weight].sort_values("value")
        base = line[line["current"]].iloc[0]
        positions = range(len(line))
        for column, sign in criteria.items():
            change = sign * (line[column] - base[column]) / abs(base[column]) * 100
            ax.plot(positions, change, marker="o", ms=4, lw=1.5, label=names[column])
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(list(positions), [f"{v:g}" for v in line["value"]])
        for position, (_, row) in zip(positions, line.iterrows()):
            if row["winner"]:
                ax.axvspan(position - 0.3, position + 0.3, color="#ffd54f", alpha=0.35, lw=0)
            if row["current"]:
                ax.annotate("default", (position, 0), xytext=(0, -14), textcoords="offset points", ha="center",
                            fontsize=8, color="0.3")
        ax.set_xlabel(weight.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("change against the default (%, up = better)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def seeded_dots(study: pd.DataFrame, names: Sequence[str], column: str, ylabel: str) -> Figure:
    """Each seed's value (dots) and the mean (bar) of one column for some variants: the spread behind a claim."""
    fig, axes = _figure(1, 1, (6.4, 3.2))
    ax = axes[0, 0]
    shown = [name for name in names if (study["name"] == name).any()]
    for position, name in enumerate(shown):
        values = study.loc[study["name"] == name, column].to_numpy()
        ax.bar(position, values.mean(), color="#cfd8dc", width=0.6)
        ax.scatter(np.full(len(values), position), values, color="#37474f", s=18, zorder=3)
    ax.set_xticks(range(len(shown)), shown)
    lows = [study.loc[study["name"] == name, column].min() for name in shown]
    highs = [study.loc[study["name"] == name, column].max() for name in shown]
    span = max(highs) - min(lows) or abs(max(highs)) or 1.0
    ax.set_ylim(min(lows) - 0.6 * span, max(highs) + 0.3 * span)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def loss_shares(balance: Mapping[str, Mapping[str, Mapping[str, float]]], terms: Sequence[str]) -> Figure:
    """Stacked bars per measured moment: each weighted term's share of the loss (left) and of the gradient norm over
    the parameters (right)."""
    moments = list(balance)
    fig, axes = _figure(1, 2, (10, 3.6), sharey=True)
    colours = plt.get_cmap("tab10").colors
    for ax, key, title in zip(axes[0], ("share_of_loss", "share_of_gradient"), ("share of the loss",
                                                                               "share of the gradient norm")):
        bottom = np.zeros(len(moments))
        for index, term in enumerate(terms):
            values = np.array([balance[m][term][key] for m in moments])
            ax.bar(range(len(moments)), values, bottom=bottom, color=colours[index], label=TERM_TITLES[term])
            bottom += values
        ax.set_xticks(range(len(moments)), [textwrap.fill(m, 14) for m in moments], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0, 0].set_ylabel("share")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    return fig


def learning_rate(epochs: Sequence[int], rates: Sequence[float], betas: Sequence[float]) -> Figure:
    """The learning rate per epoch (log scale, left axis) with the KL weight beta(t) (right axis); epochs 1-based."""
    fig, axes = _figure(1, 1, (7, 3.0))
    ax = axes[0, 0]
    ax.step(epochs, rates, where="post", color="#1f77b4", lw=2, label="learning rate")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate", color="#1f77b4")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    twin = ax.twinx()
    twin.plot(epochs, betas, color="#d62728", lw=1.5, ls="--", label="KL weight beta(t)")
    twin.set_ylabel("beta(t)", color="#d62728")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fraction_curves(summary: pd.DataFrame) -> Figure:
    """Test accuracy against the share of real training images (log x), real-only and real plus generated: the mean
    over seeds with its 95% interval as a band."""
    fig, axes = _figure(1, 1, (6.4, 3.4))
    ax = axes[0, 0]
    for arm, colour in (("real_only", "#546e7a"), ("real_plus_synthetic", "#e65100")):
        part = summary[summary["arm"] == arm].sort_values("fraction")
        ax.plot(part["fraction"] * 100, part["mean"], marker="o", color=colour, lw=2, label=arm.replace("_", " "))
        ax.fill_between(part["fraction"] * 100, part["low"], part["high"], color=colour, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("real training images used (% of the training split)")
    ax.set_ylabel("test accuracy (21 classes)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def placeholder_figure(text: str):
    """A small figure that says what is missing (keeps the numbered figure and its caption in place)."""
    fig, ax = plt.subplots(figsize=(5, 1.2))
    fig.patch.set_facecolor("white")
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


__all__ = [
    "loss_curves", "beta_schedule", "reconstructions", "class_grid", "latent_scatter", "gray_conversion",
    "class_counts", "kl_per_dimension", "per_class_accuracy", "overlaid_curves", "variant_samples",
    "mosaic", "class_colours", "placeholder_figure", "weight_sensitivity", "seeded_dots", "loss_shares", "learning_rate",
    "fraction_curves",
]
