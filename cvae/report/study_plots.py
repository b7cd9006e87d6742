"""The study's figures: ablation curves and samples, the weight search, seeds of the claims' runs, the augmentation
fractions and the aux-head factorial. Same conventions as `cvae.report.plots` (its style, page width and helpers)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cvae.report.plots import PAGE_WIDTH_IN, STYLE, epoch_axis, mosaic, new_figure, show_image, styled


def _two_lines(name: str, width: int = 14) -> str:
    """A long run name broken after the underscore nearest its middle, so that four panel titles fit a row."""
    breaks = [i for i, character in enumerate(name) if character == "_"]
    if len(name) <= width or not breaks:
        return name
    cut = min(breaks, key=lambda i: abs(i - len(name) / 2)) + 1
    return f"{name[:cut]}\n{name[cut:]}"


@styled
def overlaid_curves(curves: Mapping[str, pd.DataFrame], column: str = "val_total",
                    ylabel: str = "validation loss (per image)", reference: str = "paper") -> Figure:
    """Small multiples, one panel per named run (e.g. ablation variants): `column` over epochs, with the `reference`
    run drawn in gray in every other panel, so that no panel holds more than two lines; four panels a row."""
    names = list(curves)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    fig, axes = new_figure(rows, columns, (PAGE_WIDTH_IN, 0.4 + 1.55 * rows))
    base = curves.get(reference)
    for index, (ax, name) in enumerate(zip(axes.flat, names)):
        if base is not None and name != reference:
            ax.plot(base["epoch"] + 1, base[column], lw=1.2, color="0.6")
        metrics = curves[name]
        ax.plot(metrics["epoch"] + 1, metrics[column], marker="o", ms=2.5, lw=1.5, color="#1f77b4")
        ax.set_title(_two_lines(name), fontsize=STYLE["xtick.labelsize"], pad=3)
        epoch_axis(ax)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=3))
        ax.set_xlabel("epoch" if index + columns >= len(names) else "")  # the lowest panel of its column
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.supylabel(ylabel, fontsize=STYLE["axes.labelsize"])
    if base is not None:
        fig.legend([plt.Line2D([], [], color="#1f77b4", lw=1.5), plt.Line2D([], [], color="0.6", lw=1.2)],
                   ["the panel's run", reference], loc="outside lower center", ncols=2, frameon=False)
    return fig


@styled
def variant_samples(samples: Mapping[str, np.ndarray], per_row: int = 21) -> Figure:
    """One row per named variant, titled by its name: a strip of generated images (one per class); one axes each."""
    names = list(samples)
    strip_height = (PAGE_WIDTH_IN - 0.2) / per_row
    fig, axes = new_figure(len(names), 1, (PAGE_WIDTH_IN, len(names) * (strip_height + 0.3) + 0.1))
    for ax, name in zip(axes[:, 0], names):
        images = np.asarray(samples[name])
        show_image(ax, mosaic(images, 1, min(per_row, len(images))), name, loc="left", fontsize=STYLE["xtick.labelsize"],
              pad=2)
    return fig


# the caption of `weight_sensitivity`'s figure
SENSITIVITY_CAPTION = ("Each criterion's paired change against the default, in percent of the default's mean and "
                       "signed so that up is better, with its 95% interval over seeds, one weight at a time. The "
                       "shaded candidate is the rule's winner for that weight.")


@styled
def weight_sensitivity(search: pd.DataFrame, criteria: Mapping[str, int], names: Mapping[str, str]) -> Figure:
    """One panel per searched weight (three to a row): each criterion's paired change against the default (in % of
    the default's mean, signed so that up is better) with its 95% interval over seeds as a bar, over the weight's
    candidate values; the default and the rule's winner marked."""
    weights = list(dict.fromkeys(search["weight"]))
    ncols = min(3, len(weights))
    nrows = -(-len(weights) // ncols)
    fig, axes = new_figure(nrows, ncols, (PAGE_WIDTH_IN, 2.5 * nrows + 1.0), sharey=True)
    for ax, weight in zip(axes.flat, weights):
        line = search[search["weight"] == weight].sort_values("value")
        base = line[line["current"]].iloc[0]
        positions = range(len(line))
        for offset, column in zip(np.linspace(-0.12, 0.12, len(criteria)), criteria):
            scale = 100 / abs(base[column])
            change = line[f"{column}_gain"].to_numpy(dtype=float) * scale
            low = line[f"{column}_low"].to_numpy(dtype=float) * scale
            high = line[f"{column}_high"].to_numpy(dtype=float) * scale
            where = np.asarray(positions) + offset
            ax.errorbar(where, change, yerr=[np.nan_to_num(change - low), np.nan_to_num(high - change)],
                        marker="o", ms=4, lw=1.5, capsize=2, label=names[column])
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(list(positions), [f"{v:g}" + ("\n(default)" if row["current"] else "")
                                        for v, (_, row) in zip(line["value"], line.iterrows())],
                      multialignment="center")
        for position, (_, row) in zip(positions, line.iterrows()):
            if row["winner"]:
                ax.axvspan(position - 0.3, position + 0.3, color="#ffd54f", alpha=0.35, lw=0)
        ax.set_title(weight)  # the config's name, as the text and the tables write it
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(weights):]:
        ax.axis("off")
    for row in axes:
        row[0].set_ylabel("change (%, up = better)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(Patch(color="#ffd54f", alpha=0.35, label="the rule's winner"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return fig


@styled
def seeded_dots(study: pd.DataFrame, names: Sequence[str], column: str, ylabel: str) -> Figure:
    """Each seed's value (dots) and their mean (line) of one column for some variants: the spread behind a claim."""
    fig, axes = new_figure(1, 1, (PAGE_WIDTH_IN * 0.8, 3.2))
    ax = axes[0, 0]
    shown = [name for name in names if (study["name"] == name).any()]
    for position, name in enumerate(shown):
        values = study.loc[study["name"] == name, column].to_numpy()
        # the mean as a line, not a bar: the axis does not start at zero
        ax.hlines(values.mean(), position - 0.25, position + 0.25, color="#546e7a", lw=2.5)
        ax.scatter(np.full(len(values), position), values, color="#37474f", s=18, zorder=3)
    ax.set_xticks(range(len(shown)), shown)
    lows = [study.loc[study["name"] == name, column].min() for name in shown]
    highs = [study.loc[study["name"] == name, column].max() for name in shown]
    span = max(highs) - min(lows) or abs(max(highs)) or 1.0
    ax.set_xlim(-0.6, len(shown) - 0.4)
    ax.set_ylim(min(lows) - 0.3 * span, max(highs) + 0.3 * span)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    return fig


@styled
def fraction_curves(summary: pd.DataFrame, names: Mapping[str, str]) -> Figure:
    """Test accuracy against the share of real training images (log x), real-only and real plus generated: the mean
    over seeds with its 95% interval as a band."""
    fig, axes = new_figure(1, 1, (PAGE_WIDTH_IN, 3.6))
    ax = axes[0, 0]
    for arm, colour in (("real_only", "#546e7a"), ("real_plus_synthetic", "#e65100")):
        part = summary[summary["arm"] == arm].sort_values("fraction")
        ax.plot(part["fraction"] * 100, part["mean"], marker="o", color=colour, lw=2,
                label=names[arm])
        ax.fill_between(part["fraction"] * 100, part["low"], part["high"], color=colour, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("real training images used (share of the training split)")
    ax.set_ylabel("test accuracy (21 classes)")
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=2, frameon=False)
    return fig


@styled
def aux_factorial(rows: pd.DataFrame, original: Mapping[str, float], guess: Mapping[str, float],
                  read_names: Mapping[str, str]) -> Figure:
    """The aux-head factorial: one panel per head; the four trained cells along x, the three readings side by side
    in three colours, each seed a dot and the mean a short line; the original's value and a guess in the label
    proportions (`guess`) as horizontal lines. Accuracies in %."""
    cells = list(dict.fromkeys(zip(rows["batches"], rows["encoder"])))
    reads = list(read_names)
    colours = ["#1565c0", "#ef6c00", "#2e7d32"]
    fig, axes = new_figure(2, 1, (PAGE_WIDTH_IN, 6.4), sharex=True)
    for ax, head in zip(axes[:, 0], ("class", "modality")):
        for r, (read, colour) in enumerate(zip(reads, colours)):
            for c, cell in enumerate(cells):
                values = 100 * rows[(rows["batches"] == cell[0]) & (rows["encoder"] == cell[1]) &
                                    (rows["read"] == read)][f"{head}_acc"].to_numpy()
                x = c + (r - 1) * 0.25
                ax.scatter(np.full(len(values), x), values, color=colour, s=16, zorder=3,
                           label=read_names[read] if c == 0 else None)
                if len(values):
                    ax.hlines(values.mean(), x - 0.1, x + 0.1, color=colour, lw=2)
        ax.axhline(100 * original[head], color="#c62828", lw=1.2, label="the original's value")
        ax.axhline(100 * guess[head], color="0.35", lw=1.0, ls="--", label="guess in the label proportions")
        ax.set_ylabel(f"{head} head (%)")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3, axis="y")
    ticks = [f"{'one-dataset' if batches == 'single' else 'mixed'}\nbatches\n{encoder}" for batches, encoder in cells]
    axes[-1, 0].set_xticks(range(len(cells)), ticks)  # three lines each: four cells side by side fit the width
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    return fig


__all__ = ["overlaid_curves", "variant_samples", "weight_sensitivity", "seeded_dots", "fraction_curves", "aux_factorial",
           "SENSITIVITY_CAPTION"]
