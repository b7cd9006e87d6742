"""How every interval in the book is computed, in words: the one list the discussion shows (the code is
`cvae.core.spread`, `cvae.study.class_by_class` and the Holm corrections of `cvae.study.diagnosis` and
`cvae.study.weight_search`)."""

from __future__ import annotations

INTERVALS = (  # one item per kind of interval, as the discussion lists them
    "Over seeds: a t-interval over the runs' values, or over their paired differences when runs are compared. "
    "These carry the variation between training seeds.",
    "Over classes: a t-interval over the 21 per-class values, for a number that sums up the model, such as the SSIM "
    "gain or the samples' class accuracy. Images of one class are not independent, so the class is the unit. These "
    "come from the main run alone and leave out the variation between training seeds.",
    "Within a class: an exact Clopper-Pearson interval over that class's samples or test images. A test image's "
    "share of neighbours with its label is treated like a yes-or-no outcome with the same mean, which overstates "
    "its variance. Neighbours in one map are fitted together, though, so these intervals may be too narrow.",
    "Many tests at once: Holm's correction over the contrasts of the aux heads and over the weight search's "
    "candidates and criteria; Bonferroni over the classes for a claim about every class.",
    "A rate that is 100% in every seed or class has no spread. Its lower bound is the mean rate at which all of "
    "them would read 100% with probability 2.5%, so 100% in each of 2 seeds gives 15.8% to 100%; 0% mirrors it. "
    "Intervals of a rate are cut at 0 and 100%, and with 2 seeds a t-interval is wide: its critical value is 12.7.",
    "Notation: every interval is a 95% interval. In a table, 1.23 (1.10 to 1.36) is a mean and its interval, and "
    "1.23 ± 0.04 is a mean and the standard deviation over seeds.",
)


def intervals_markdown() -> str:
    """How each kind of interval is computed (`INTERVALS`), as a Markdown list for the discussion."""
    return "\n".join(f"- {kind}" for kind in INTERVALS)


__all__ = ["INTERVALS", "intervals_markdown"]
