"""Claims judged class by class: each class's rate gets an exact interval over its own independent draws (its samples,
or its test images), and the claim holds only if every class lies on its side of the margin.

This is an intersection-union test, so it needs no correction for the number of classes, and a better class never
lowers the verdict. The claim fails only if some class lies wholly on the other side at the Bonferroni level over
the classes. `cvae.study.claims` uses it for the samples' modality and the neighbour separation in the 2-D figures.
"""

from __future__ import annotations

from cvae.core.formatting import percent
from cvae.core.spread import CONFIDENCE, clopper_pearson


def rates_text(counts: list[tuple[float, int]], above: bool) -> str:
    """'97.0% over classes, lowest class 91.0% of its 100 points' (the highest class when the claim is about a low
    rate)."""
    rates = [right / n for right, n in counts]
    edge = min(range(len(counts)), key=rates.__getitem__) if above else max(range(len(counts)), key=rates.__getitem__)
    return (f"{percent(sum(rates) / len(rates))} over classes, {'lowest' if above else 'highest'} class "
            f"{percent(rates[edge])} of its {counts[edge][1]:,} points")


def class_by_class(counts: list[tuple[float, int]], margin: float, above: bool) -> tuple[str, str]:
    """Verdict and reason of a test over classes. Reproduced: every class's exact 95% interval (`clopper_pearson` of its
    (successes, draws)) lies on the claim's side of the margin (above it when `above`), an intersection-union test
    that needs no correction for the number of classes. Not reproduced: some class lies wholly on the other side even
    at the Bonferroni level over the classes, since any one of them would do. A better class never lowers the
    verdict."""
    bounds = [clopper_pearson(right, n) for right, n in counts]
    corrected = [clopper_pearson(right, n, 1 - (1 - CONFIDENCE) / len(counts)) for right, n in counts]
    wrong = sum((high < margin) if above else (low > margin) for low, high in corrected)
    short = sum(not ((low > margin) if above else (high < margin)) for low, high in bounds)
    beyond = "below" if above else "above"
    if wrong:
        return "not reproduced", (f"{wrong} of {len(counts)} classes lie wholly {beyond} {margin:.0%}, at the "
                                  f"Bonferroni level over the {len(counts)} classes")
    if short:
        return "inconclusive", f"{short} of {len(counts)} classes' intervals reach {margin:.0%} or {beyond}"
    edge = (f"the lowest from {percent(min(low for low, _ in bounds))}" if above
            else f"the highest up to {percent(max(high for _, high in bounds))}")
    return "reproduced", f"every class's interval lies {'above' if above else 'below'} {margin:.0%}, {edge}"


def every_class_detectable(counts: list[tuple[float, int]], margin: float, above: bool = True,
                           draws: str = "samples", power: float = 0.8) -> str:
    """How far from the margin, on the claim's side, every class would have to be for the class-by-class test to pass
    with `power`, at the fewest draws any class has: 'every class 8.7 points above the margin, at 98.7%'."""
    from scipy import stats

    samples = min(n for _, n in counts)
    target = margin if above else 1 - margin  # a claim of a low rate is one of a high rate of the other outcome
    needed = next((s for s in range(samples + 1) if clopper_pearson(s, samples)[0] > target), None)
    if needed is None:
        return f"none: {samples} {draws} per class cannot clear {margin:.0%}"
    per_class = power ** (1 / len(counts))  # all classes must pass
    rate = next(p / 1000 for p in range(1, 1001) if stats.binom.sf(needed - 1, samples, p / 1000) >= per_class)
    side, shown = ("above", rate) if above else ("below", 1 - rate)
    return f"every class {100 * (rate - target):.1f} points {side} the margin, at {percent(shown)}"


__all__ = ["class_by_class", "every_class_detectable", "rates_text"]
