"""Number formatting the chapters and tables share: scalars made plain, percentages, fixed decimals, safe look-ups."""

from __future__ import annotations

import math

import numpy as np
import torch


def plain(value):
    """NumPy / torch scalars -> Python numbers (myst-nb glue cannot format NumPy 2 reprs)."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def percent(value: float | None, digits: int = 1) -> str:
    """'34.1%' (or 'n/a' for None/NaN); a rate that rounds to 100% is '100%', not '100.0%', whose fourth digit
    would claim a precision no rate of this report has."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    scaled = 100 * float(value)
    return f"{scaled:.0f}%" if round(abs(scaled), digits) >= 100 else f"{scaled:.{digits}f}%"


def lookup(result: dict | None, *keys):
    """result[k1][k2]... or None when any level is missing."""
    value = result
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return plain(value)


def number(value, digits: int = 3) -> str:
    """A number as text with `digits` decimals ('n/a' for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):,.{digits}f}"


def significant(value, digits: int = 3) -> str:
    """A number as text with `digits` significant digits and no exponent: 373.62 -> '374', 0.012345 -> '0.0123'
    ('n/a' for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    value = float(value)
    magnitude = math.floor(math.log10(abs(value))) if value else 0
    return f"{value:,.{max(0, digits - 1 - magnitude)}f}"


def signed(value: float, digits: int = 1) -> str:
    """A change with its sign and `digits` decimals, never '-0.0': -0.04 -> '+0.0', 1.25 -> '+1.2'."""
    return f"{round(float(value), digits) + 0.0:+.{digits}f}"


def signed_percent(value: float, digits: int = 1) -> str:
    """A relative change in % with its sign, never '-0.0%': -0.0004 -> '+0.0%', -0.023 -> '-2.3%'."""
    return f"{signed(100 * float(value), digits)}%"


def device_words(device: str) -> str:
    """A torch device as a sentence names it: 'cpu' -> 'the CPU', 'cuda' -> 'a GPU', anything else as given."""
    return {"cpu": "the CPU", "cuda": "a GPU"}.get(device, device)


def listed(items: list[str]) -> str:
    """Items as a reader lists them: 'A', 'A and B', 'A, B and C'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def duration(seconds: float) -> str:
    """A wall time as a reader says it, in the largest unit that keeps it at 1 or more: '42 s', '3.5 minutes',
    '2.1 hours' (three significant digits at most)."""
    if seconds < 60:
        return f"{significant(seconds, 2 if seconds >= 10 else 1)} s"
    if seconds < 3600:
        return f"{significant(seconds / 60, 2)} minutes"
    return f"{significant(seconds / 3600, 2)} hours"


__all__ = [
    "plain", "percent", "number", "significant", "lookup", "duration", "signed", "signed_percent", "listed",
]
