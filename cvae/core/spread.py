"""Spread of a measurement over seeds or over classes: a mean, its standard deviation and a 95% t-interval.

Every claim the book states carries one of these: the mean (or the measured rate), how many values it rests on, and
a 95% interval. Outcomes of generated samples and of test images cluster by class (a class is mostly all right or all
wrong), so their rates are judged over classes (`over_classes`), never per image. Identical values over seeds give
no interval: zero spread is not certainty. The verdict rules of `cvae.study.claims` read the interval against a margin
stated before the data, and the smallest effect the spread could have detected (`Spread.detectable`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from cvae.core import formatting

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Spread:
    """A mean over n values with their standard deviation and a 95% interval [low, high] (None when n < 2)."""

    mean: float
    sd: float | None
    n: int
    low: float | None
    high: float | None
    kind: str  # "seeds" or "classes": a t-interval over runs or over per-class values
    spans_all: bool = False  # the interval, clipped to the values the quantity can take, covers all of them

    @property
    def no_spread(self) -> bool:
        """True when n >= 2 values were all identical: there is no interval, and that is not certainty."""
        return self.n >= 2 and self.sd == 0.0

    @property
    def exact_bound(self) -> bool:
        """True for the bound of identical extreme rates (`rate_over_classes`): an interval without spread."""
        return self.no_spread and self.low is not None

    def detectable(self, power: float = 0.8) -> float | None:
        """Smallest true effect (in the quantity's units) a two-sided 5% t-test on this spread finds with `power`,
        from the observed sd over seeds or classes: ncp * sd / sqrt(n), with ncp solved exactly on the noncentral t
        (the usual (t_0.975 + t_power) understates it by 16% at 1 degree of freedom); None without a spread."""
        from scipy import optimize, stats

        if self.n < 2 or self.low is None or not self.sd:
            return None
        df = self.n - 1
        critical = stats.t.ppf(0.5 + CONFIDENCE / 2, df)

        def shortfall(ncp: float) -> float:  # power at this noncentrality, less the power asked for
            lower = float(stats.nct.cdf(-critical, df, ncp))  # negligible here, and NaN far out in the tail
            return float(stats.nct.sf(critical, df, ncp)) + (0.0 if math.isnan(lower) else lower) - power

        return float(optimize.brentq(shortfall, 0.0, 200.0) * self.sd / math.sqrt(self.n))

    def p_value(self, value: float = 0.0) -> float | None:
        """Two-sided p-value of a t-test of mean == value over seeds or classes; None without a spread."""
        from scipy import stats

        if self.sd is None or self.sd == 0.0 or self.n < 2:
            return None
        t = (self.mean - value) / (self.sd / math.sqrt(self.n))
        return float(2 * stats.t.sf(abs(t), self.n - 1))

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
        """'41.2%, 95% CI 38.0% to 44.4% over 3 seeds' style text; percent=True writes rates in %."""
        def shown(value: float) -> str:
            return formatting.percent(value, digits) if percent else f"{value:,.{digits}f}{unit}"

        mean = shown(self.mean)
        what = {"seeds": "seeds", "classes": "classes"}[self.kind]
        if self.exact_bound:
            return (f"{mean} in each of the {self.n} {what}, so the 95% interval is {shown(self.low)} to "
                    f"{shown(self.high)}")
        if self.no_spread:
            return f"{mean} in each of the {self.n} {what}, which gives no interval"
        if self.n < 2 or self.low is None:
            return f"{mean}, n = {self.n}, no interval"
        if self.spans_all:
            return f"{mean}; over {self.n:,} {what} the 95% CI spans every value it can take"
        return f"{mean}, 95% CI {shown(self.low)} to {shown(self.high)} over {self.n:,} {what}"

    def points(self) -> str:
        """A difference of rates in percentage points: '-55.4 points, 95% CI -56.9 to -53.8 over 2 seeds', or that
        the interval covers every change a rate can make, or that there is none."""
        text = f"{formatting.signed(100 * self.mean)} points"
        if self.low is None:
            return f"{text}, {self.n} {self.kind}, no interval"
        if self.spans_all:
            return f"{text}, with a 95% CI over {self.n} {self.kind} that spans every change a rate can make"
        return (f"{text}, 95% CI {formatting.signed(100 * self.low)} to {formatting.signed(100 * self.high)} over "
                f"{self.n} {self.kind}")

    def cell(self, digits: int = 3, percent: bool = False) -> str:
        """'0.412 (0.380 to 0.444)': the mean and its 95% interval for a table cell whose header names n and the
        unit; percent=True writes a rate in % ('41.2 (38.0 to 44.4)' with digits=1)."""
        scale = 100.0 if percent else 1.0
        mean = f"{scale * self.mean:,.{digits}f}"
        if self.low is None:
            return mean
        if self.spans_all:
            return f"{mean} (uninformative)"
        return f"{mean} ({scale * self.low:,.{digits}f} to {scale * self.high:,.{digits}f})"


def over_seeds(values: Sequence[float], bounds: tuple[float, float] | None = None, kind: str = "seeds") -> Spread:
    """Mean, sample standard deviation and 95% t-interval of one value per seed; `bounds` (e.g. (0, 1) for an
    accuracy) clips the interval to the values the quantity can take. Identical values give sd 0 and no interval."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("over_seeds needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return Spread(mean, None, n, None, None, kind)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # identical values up to rounding in the mean
        return Spread(values[0], 0.0, n, None, None, kind)
    from scipy import stats  # here, not at import: scipy.stats costs every chapter ~0.6 s to import

    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    spans_all = bounds is not None and low <= bounds[0] and high >= bounds[1]
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Spread(mean, sd, n, low, high, kind, spans_all)


def over_classes(values_by_class: Sequence[float], bounds: tuple[float, float] | None = (0.0, 1.0)) -> Spread:
    """Mean of per-class values (each class's accuracy or mean gain) with a 95% t-interval over the classes: the
    interval for an outcome that clusters by class (equal samples per class make the mean the overall rate)."""
    return over_seeds(values_by_class, bounds, kind="classes")


def rate_over_classes(values_by_class: Sequence[float], kind: str = "classes") -> Spread:
    """`over_classes` for a rate. When every class (or seed) gave the same rate there is no spread to form a
    t-interval from; at 0% or 100% a bound over the clusters themselves is used: a rate X in [0, 1] with mean mu
    reads 100% with probability at most mu (X >= [X = 1]), so n independent clusters all read 100% with probability
    at most mu^n, and mu < 0.025^(1/n) is rejected at 2.5% (the 95% interval (0.025^(1/n), 1); 0% mirrors it). The
    bound needs no distribution of X and never counts a class's images as independent; any other identical value
    keeps no interval."""
    spread = over_seeds(values_by_class, (0.0, 1.0), kind=kind)
    if spread.no_spread and spread.mean in (0.0, 1.0):
        bound = (0.5 - CONFIDENCE / 2) ** (1 / spread.n)
        low, high = (bound, 1.0) if spread.mean == 1.0 else (0.0, 1.0 - bound)
        return Spread(spread.mean, 0.0, spread.n, low, high, kind)
    return spread


def clopper_pearson(successes: float, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact two-sided interval (low, high), 95% by default, of a rate from `successes` of `trials` independent
    draws."""
    from scipy import stats

    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(stats.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values of a family of tests (None stays None and is not counted in the family)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def paired_relative_difference(values: Sequence[float], baseline: Sequence[float]) -> Spread:
    """(value - baseline) / |baseline| per seed (same seed = same data subset and initial draw), over seeds."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values need the same seeds: {len(values)} against {len(baseline)}")
    return over_seeds([(v - b) / abs(b) for v, b in zip(values, baseline)])


RATE_CHANGE = (-1.0, 1.0)  # the values a difference of two rates can take: the `bounds` of `paired_difference`


def paired_difference(values: Sequence[float], baseline: Sequence[float],
                      bounds: tuple[float, float] | None = None, kind: str = "seeds") -> Spread:
    """value - baseline per seed (or per class, `kind`), over the pairs; `bounds` (RATE_CHANGE for rates) clips the
    interval as in `over_seeds`."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values need the same {kind}: {len(values)} against {len(baseline)}")
    return over_seeds([v - b for v, b in zip(values, baseline)], bounds, kind)


__all__ = ["Spread", "over_seeds", "over_classes", "rate_over_classes", "clopper_pearson", "holm",
           "paired_relative_difference", "paired_difference", "RATE_CHANGE", "CONFIDENCE"]
