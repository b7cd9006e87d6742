"""The augmentation chapter's numbers for the page: test accuracy with a share of the real training images, alone and
with the samples added, over seeds, and the paired gain, as a table and one sentence."""

from __future__ import annotations

import pandas as pd

from cvae.core.formatting import listed, signed
from cvae.core.spread import RATE_CHANGE, over_seeds, paired_difference

ARM_NAMES = {"real_only": "real only", "real_plus_synthetic": "real + generated", "gain": "gain"}


def fraction_summary(result: dict, column: str = "overall") -> pd.DataFrame:
    """From `augmentation_by_fraction`'s result: per (fraction, arm) the mean test accuracy over seeds with its 95%
    interval, and per fraction the paired gain (real plus generated minus real only) in rows with `arm` 'gain';
    `spans_all` marks an interval that covers every value it can take, `detectable` the smallest true change the
    seeds would find with 80% power (`Spread.detectable`; None without a spread)."""
    rows = pd.DataFrame(result["rows"])
    out = []
    for fraction, part in rows.groupby("fraction"):
        by_arm = {arm: part[part["arm"] == arm].sort_values("seed")[column].tolist()
                  for arm in ("real_only", "real_plus_synthetic")}
        spreads = {arm: over_seeds(values, (0.0, 1.0)) for arm, values in by_arm.items()}  # test accuracies
        spreads["gain"] = paired_difference(by_arm["real_plus_synthetic"], by_arm["real_only"], RATE_CHANGE)
        out += [{"fraction": fraction, "arm": arm, "mean": spread.mean, "low": spread.low, "high": spread.high,
                 "seeds": spread.n, "spans_all": spread.spans_all, "detectable": spread.detectable()}
                for arm, spread in spreads.items()]
    return pd.DataFrame(out)


def _gain_text(row: pd.Series, fraction: float, first: bool) -> str:
    """'by +5.0 points at 1% of the real images, 95% CI +2.5 to +7.5' (units said only in the first)."""
    text = f"by {signed(100 * row['mean'])}{' points' if first else ''} at {fraction:.0%}"
    text += " of the real images" if first else ""
    if pd.isna(row["low"]):
        return text + ", with no interval"
    if row["spans_all"]:
        return text + ", with an interval that spans every change a rate can make"
    return text + f", 95% CI {signed(100 * row['low'])} to {signed(100 * row['high'])}"


def fraction_sentence(summary: pd.DataFrame) -> str:
    """What adding the samples did at each share of the real images, and what the intervals allow one to say:
    'Adding the samples changed the test accuracy by +5.0 points at 1% of the real images, 95% CI +2.5 to +7.5; and
    by ... Each change is over 3 seeds. ...'."""
    gains = summary[summary["arm"] == "gain"].set_index("fraction")
    if gains.empty:
        return ""
    parts = [_gain_text(row, fraction, position == 0) for position, (fraction, row) in enumerate(gains.iterrows())]
    joined = parts[0] if len(parts) == 1 else "; ".join(parts[:-1]) + "; and " + parts[-1]
    return (f"Adding the samples changed the test accuracy {joined}. Each change is over {int(gains['seeds'].min())} "
            f"seeds. " + _fraction_reading(gains) + _undertrained(summary))


def _undertrained(summary: pd.DataFrame) -> str:
    """A warning when the real-only classifier scored lower with all of its share of real images than with a smaller
    share: at a fixed number of training steps it had not learned what more data offers, so the gains say little."""
    real = summary[summary["arm"] == "real_only"].set_index("fraction")["mean"].sort_index()
    smaller = real.iloc[:-1]
    if smaller.empty or real.iloc[-1] >= smaller.max():
        return ""
    return (f" The real-only classifier scored {100 * real.iloc[-1]:.1f}% with {real.index[-1]:.0%} of the real "
            f"images, below its {100 * smaller.max():.1f}% with {smaller.idxmax():.0%}: with a fixed number of "
            f"training steps it did not use the extra images, so these gains say little about augmentation.")


def _fraction_reading(gains: pd.DataFrame) -> str:
    """Which shares of the real images the samples helped or hurt at, judged by whether the interval excludes 0."""
    helped = [f"{f:.0%}" for f, row in gains.iterrows() if pd.notna(row["low"]) and row["low"] > 0]
    hurt = [f"{f:.0%}" for f, row in gains.iterrows() if pd.notna(row["high"]) and row["high"] < 0]
    if not helped and not hurt:
        # each share has its own spread, so each its own detectable change
        detectable = [f"{100 * value:.0f} at {fraction:.0%}" for fraction, value in gains["detectable"].items()
                      if pd.notna(value)]
        if detectable:
            detectable[0] = detectable[0].replace(" at ", " points at ", 1) + " of the real images"
        reach = (" With 80% power the seeds would have found a change of about " + listed(detectable) + "."
                 if detectable else "")
        return "No interval excludes zero, so on this build the samples neither helped nor hurt detectably." + reach
    said = ([f"helped at {listed(helped)}"] if helped else []) + ([f"hurt at {listed(hurt)}"] if hurt else [])
    return f"The samples {' and '.join(said)} of the real images, where the interval excludes zero."


def fraction_table(summary: pd.DataFrame) -> pd.DataFrame:
    """`fraction_summary` for the page: accuracies in %, the gain in percentage points, arms named in words."""
    unit = summary["arm"].map(lambda arm: "points" if arm == "gain" else "%")
    cells = {column: ["" if pd.isna(value) else signed(100 * value) if arm == "gain" else f"{100 * value:.1f}"
                      for value, arm in zip(summary[column], summary["arm"])] for column in ("mean", "low", "high")}
    intervals = ["no interval" if not low else "uninformative" if spans else f"{low} to {high}"
                 for low, high, spans in zip(cells["low"], cells["high"], summary["spans_all"])]
    return pd.DataFrame({"real images used": summary["fraction"].map(lambda f: f"{f:.0%}"),
                         "classifier": summary["arm"].map(ARM_NAMES), "unit": unit, "mean": cells["mean"],
                         "95% CI": intervals, "seeds": summary["seeds"].astype(int),
                         }).set_index(["real images used", "classifier"])


__all__ = ["ARM_NAMES", "fraction_summary", "fraction_sentence", "fraction_table"]
