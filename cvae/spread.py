"""Spread of a measurement: over seeds (a t-interval) or over test images (a Wilson interval for an accuracy).

Every claim the book states carries one of these: the mean (or the measured rate), how many values it rests on, and
a 95% interval. The verdict rules of `cvae.claims` read only the interval, never a fixed margin.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence


CONFIDENCE = 0.95


@dataclass(frozen=True)
class Spread:
    """A mean over n values with their standard deviation and a 95% interval [low, high] (None when n < 2)."""

    mean: float
    sd: float | None
    n: int
    low: float | None
    high: float | None
    kind: str  # "seeds" (t-interval over runs), "images" (Wilson interval over test images) or "single"

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Spread":
        """Inverse of `to_dict`."""
        return cls(**values)

    def excludes(self, value: float) -> bool:
        """Whether the interval lies entirely on one side of `value` (False when there is no interval)."""
        return self.low is not None and self.high is not None and (self.low > value or self.high < value)

    def text(self, digits: int = 3, percent: bool = False, unit: str = "") -> str:
        """'0.412 ± 0.013 (n = 3 seeds, 95% CI 0.380-0.444)' style text; percent=True writes rates in %."""
        scale, suffix = (100.0, "%") if percent else (1.0, unit)
        fmt = f",.{digits}f"
        mean = f"{self.mean * scale:{fmt}}{suffix}"
        if self.n < 2 or self.low is None:
            return f"{mean} (n = {self.n}, no interval)"
        what = {"seeds": "seeds", "images": "test images", "single": "values"}[self.kind]
        spread = f" ± {self.sd * scale:{fmt}}" if self.kind == "seeds" and self.sd is not None else ""
        return (f"{mean}{spread} (n = {self.n:,} {what}, 95% CI {self.low * scale:{fmt}} to "
                f"{self.high * scale:{fmt}}{suffix})")

    def cell(self, digits: int = 3) -> str:
        """'0.412 (0.380 to 0.444)': the mean and its 95% interval for a table cell whose header names n."""
        mean = f"{self.mean:,.{digits}f}"
        return mean if self.low is None else f"{mean} ({self.low:,.{digits}f} to {self.high:,.{digits}f})"


def over_seeds(values: Sequence[float], bounds: tuple[float, float] | None = None) -> Spread:
    """Mean, sample standard deviation and 95% t-interval of one value per seed; `bounds` (e.g. (0, 1) for an
    accuracy) clips the interval to the values the quantity can take."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("over_seeds needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return Spread(mean, None, n, None, None, "seeds")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    from scipy import stats  # here, not at import: scipy.stats costs every chapter ~0.6 s to import

    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Spread(mean, sd, n, low, high, "seeds")


def paired_relative_difference(values: Sequence[float], baseline: Sequence[float]) -> Spread:
    """(value - baseline) / |baseline| per seed (same seed = same data subset and initial draw), over seeds."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values need the same seeds: {len(values)} against {len(baseline)}")
    return over_seeds([(v - b) / abs(b) for v, b in zip(values, baseline)])


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> Spread:
    """value - baseline per seed, over seeds."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values need the same seeds: {len(values)} against {len(baseline)}")
    return over_seeds([v - b for v, b in zip(values, baseline)])


def accuracy_interval(correct: int, total: int) -> Spread:
    """A measured accuracy correct/total with its 95% Wilson score interval over the test images."""
    if total <= 0:
        raise ValueError("accuracy_interval needs at least one test image")
    p = correct / total
    from scipy import stats

    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return Spread(p, None, total, max(0.0, centre - half), min(1.0, centre + half), "images")


def mean_interval(values: Sequence[float]) -> Spread:
    """Mean of per-image values (e.g. SSIM of each test image) with its 95% t-interval over the images."""
    spread = over_seeds(values)
    return Spread(spread.mean, spread.sd, spread.n, spread.low, spread.high, "images")


__all__ = ["Spread", "over_seeds", "paired_relative_difference", "paired_difference", "accuracy_interval",
           "mean_interval", "CONFIDENCE"]
