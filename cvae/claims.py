"""The original report's claims, what this build measured for each, and a verdict by one rule stated once.

Every verdict in the book comes from `claims_table` (the discussion's table, the abstract, the chapters' sentences),
so a page can never say more than the table does. The rule (`RULE`, printed in the discussion):

- **not testable on this data**: the claim is about what medical images look like or how they separate, and the
  build used the synthetic stand-in; or the claim needs the original's 150-epoch schedule and the build trained a
  shorter one;
- **inconclusive**: fewer than `MIN_SEEDS` seeds where the claim compares runs, or the 95% interval of our measurement
  straddles the claim's threshold;
- **reproduced**: the 95% interval lies entirely on the claim's side of its threshold;
- **not reproduced**: the 95% interval lies entirely on the other side.

Intervals are t-intervals over seeds for comparisons of training runs, and Wilson or t-intervals over the test images
for a single run's measurement (`cvae.spread`). A verdict on a claim about the model, reached on the stand-in, is a
verdict about the pipeline on the stand-in, and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from .spread import Spread

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable on this data")
MIN_SEEDS = 3
AUX_TOLERANCE = 0.05  # the original's heads were "around" 34% / 39%: an absolute band of +-5 points
CLUSTER_THRESHOLD = 0.95  # "separated quite well": a linear probe reads the modality from mu at >= 95%
SAMPLE_MODALITY_THRESHOLD = 0.90  # "the different modalities are distinguishable": >= 90% of samples
ORIGINAL_SCHEDULE_EPOCHS = 150

RULE = (
    "A claim is **not testable on this data** when it is about what medical images look like or how they separate and "
    "this build used the synthetic stand-in, or when it needs the original's 150-epoch schedule and this build trained "
    f"a shorter one. Otherwise it is **inconclusive** when a comparison of training runs rests on fewer than "
    f"{MIN_SEEDS} seeds or when the 95% interval of our measurement straddles the claim's threshold, "
    "**reproduced** when the interval lies entirely on the claim's side of the threshold, and **not reproduced** "
    "when it lies entirely on the other side. Intervals are over seeds for comparisons of runs and over test images "
    "for one run's measurement."
)


@dataclass(frozen=True)
class Claim:
    """One claim of the original: its words, its number (quoted, never computed) and what kind of data can test it."""

    key: str
    claim: str
    original: str
    about_images: bool  # about medical images themselves: the stand-in cannot test it
    needs_full_schedule: bool = False


CLAIMS: tuple[Claim, ...] = (
    Claim("best_epoch", "the best validation loss comes well before the end of training",
          "epoch 79 of 150", about_images=False, needs_full_schedule=True),
    Claim("latent", "a 128-dimensional latent gives a clearly lower loss than a 64-dimensional one",
          '"reduces significantly"', about_images=False),
    Claim("deep", "a deeper model of about 4.8 million parameters is no better",
          '"looks very similar"', about_images=False),
    Claim("aux_heads", "the auxiliary heads stay near chance",
          "class about 34%, modality about 39%", about_images=False),
    Claim("modality_clusters", "the modalities form separate clusters in the latent space (PCA, t-SNE)",
          "its Figures 4 and 5 (the intro maps them to this book's)", about_images=True),
    Claim("reconstructions", "reconstructions work quite well (PathMNIST)",
          "its Figure 2 (the intro maps it to this book's)", about_images=True),
    Claim("samples", "samples differ by modality, and less clearly by class",
          "its Figures 3 and 6 (the intro maps them to this book's)", about_images=True),
)


@dataclass(frozen=True)
class Finding:
    """Our measurement for one claim as text, its verdict and the reason the rule gives."""

    ours: str
    verdict: str
    reason: str


def _side(interval: Spread, threshold: float, claimed_above: bool) -> str | None:
    """'reproduced' / 'not reproduced' when the interval clears `threshold` on one side, None when it straddles it."""
    if not interval.excludes(threshold):
        return None
    above = interval.low > threshold
    return "reproduced" if above == claimed_above else "not reproduced"


def _seeded(interval: Spread | None) -> bool:
    return interval is not None and interval.n >= MIN_SEEDS and interval.low is not None


def _best_epoch(e: dict) -> Finding:
    ours = f"epoch {e['best_epoch']} of {e['epochs']}"
    if e["epochs"] != ORIGINAL_SCHEDULE_EPOCHS:
        return Finding(ours, "not testable on this data",
                       f"needs the original's {ORIGINAL_SCHEDULE_EPOCHS}-epoch schedule; this build trained "
                       f"{e['epochs']} epochs")
    spread: Spread | None = e.get("best_epoch_seeds")
    if not _seeded(spread):
        return Finding(ours, "inconclusive", f"one training run; the rule needs {MIN_SEEDS} seeds")
    # "well before the end": the interval of the best epoch lies below the last epoch's first 90%
    verdict = _side(spread, 0.9 * e["epochs"], claimed_above=False) or "inconclusive"
    return Finding(f"epoch {spread.text(1)} of {e['epochs']}", verdict, "interval against 90% of the schedule")


def _relative(name: str, claimed_above: bool, threshold_text: str, subject: str,
              baseline: str) -> Callable[[dict], Finding]:
    def finding(e: dict) -> Finding:
        spread: Spread | None = e.get(name)
        if spread is None:
            return Finding("not measured", "inconclusive", "the runs were not trained in this build")
        direction = "higher" if spread.mean > 0 else "lower"  # says which way the mean points, not the verdict
        ours = f"{subject}: best validation loss {abs(spread.mean):.1%} {direction} than {baseline}" + (
            f" (difference {spread.low:+.1%} to {spread.high:+.1%}, 95% CI, {spread.n} seeds)"
            if spread.low is not None else f" ({spread.n} seed{'s' if spread.n != 1 else ''})")
        if not _seeded(spread):
            return Finding(ours, "inconclusive", f"{spread.n} seed(s); the rule needs {MIN_SEEDS}")
        verdict = _side(spread, 0.0, claimed_above)
        return Finding(ours, verdict or "inconclusive",
                       f"interval {'clears' if verdict else 'straddles'} 0 ({threshold_text})")
    return finding


def _aux_heads(e: dict) -> Finding:
    class_spread: Spread | None = e.get("aux_class")
    modality_spread: Spread | None = e.get("aux_modality")
    if class_spread is None or modality_spread is None:
        return Finding("not measured", "inconclusive", "the runs were not trained in this build")
    ours = f"class {class_spread.text(2, percent=True)}; modality {modality_spread.text(2, percent=True)}"
    if not (_seeded(class_spread) and _seeded(modality_spread)):
        return Finding(ours, "inconclusive", f"fewer than {MIN_SEEDS} seeds")
    verdicts = []
    for spread, value in ((class_spread, 0.34), (modality_spread, 0.39)):
        low, high = value - AUX_TOLERANCE, value + AUX_TOLERANCE
        if spread.high < low or spread.low > high:
            verdicts.append("not reproduced")
        elif low <= spread.low and spread.high <= high:
            verdicts.append("reproduced")
        else:
            verdicts.append("inconclusive")
    verdict = ("not reproduced" if "not reproduced" in verdicts else
               "reproduced" if all(v == "reproduced" for v in verdicts) else "inconclusive")
    return Finding(ours, verdict, f"intervals against the original's values +-{AUX_TOLERANCE:.0%} points")


def _modality_clusters(e: dict) -> Finding:
    spread: Spread = e["probe_modality"]
    ours = f"linear probe on mu reads the modality at {spread.text(1, percent=True)}"
    verdict = _side(spread, CLUSTER_THRESHOLD, claimed_above=True) or "inconclusive"
    return Finding(ours, verdict, f"interval against {CLUSTER_THRESHOLD:.0%}")


def _reconstructions(e: dict) -> Finding:
    spread: Spread = e["recon_ssim_gain_path"]
    ours = (f"PathMNIST SSIM {e['recon_ssim_path']:.3f}, {spread.mean:+.3f} over each image's class-mean image "
            f"(95% CI {spread.low:+.3f} to {spread.high:+.3f}, {spread.n:,} test images)")
    verdict = _side(spread, 0.0, claimed_above=True) or "inconclusive"
    return Finding(ours, verdict, "per-image SSIM gain over the class-mean image, interval against 0")


def _samples(e: dict) -> Finding:
    modality: Spread = e["conditional_modality"]
    cls: Spread = e["conditional_class"]
    chance, within = e["class_chance"], e["class_chance_within_modality"]
    ours = (f"the evaluator assigns {modality.text(1, percent=True)} of samples to their modality and "
            f"{cls.text(1, percent=True)} to their class (chance {chance:.1%}; {within:.1%} for a guess among the "
            f"right modality's classes)")
    by_modality = _side(modality, SAMPLE_MODALITY_THRESHOLD, claimed_above=True)
    # "differ by class" beyond what the modality gives away: against chance among the modality's classes
    by_class = _side(cls, within, claimed_above=True)
    if "not reproduced" in (by_modality, by_class):
        verdict = "not reproduced"
    elif by_modality == by_class == "reproduced":
        verdict = "reproduced"
    else:
        verdict = "inconclusive"
    return Finding(ours, verdict, f"modality interval against {SAMPLE_MODALITY_THRESHOLD:.0%}, class interval "
                                  f"against chance within the modality")


_FINDERS: dict[str, Callable[[dict], Finding]] = {
    "best_epoch": _best_epoch,
    "latent": _relative("latent", claimed_above=True, threshold_text="latent 64 minus latent 128, relative",
                        subject="latent 64", baseline="latent 128"),
    "deep": _relative("deep", claimed_above=True, threshold_text="deeper model minus the original's, relative",
                      subject="the deeper model", baseline="the original's"),
    "aux_heads": _aux_heads,
    "modality_clusters": _modality_clusters,
    "reconstructions": _reconstructions,
    "samples": _samples,
}


def assess(claim: Claim, evidence: dict) -> Finding:
    """The finding for one claim from the build's evidence (see `claims_table` for the keys)."""
    if claim.about_images and evidence["synthetic"]:
        try:  # what the stand-in gave, for the record: it cannot judge a claim about medical images
            ours = _FINDERS[claim.key](evidence).ours + " (on the stand-in)"
        except (KeyError, TypeError, AttributeError):
            ours = "not measured"
        return Finding(ours, "not testable on this data",
                       "about medical images; this build used the synthetic stand-in")
    finding = _FINDERS[claim.key](evidence)
    if evidence["synthetic"] and finding.verdict != "not testable on this data":
        return Finding(finding.ours, finding.verdict,
                       f"{finding.reason}; on the stand-in, a verdict about this pipeline, not about MedMNIST")
    return finding


def claims_table(evidence: dict) -> pd.DataFrame:
    """One row per claim of the original: claim, original (quoted), ours, verdict, reason; indexed by claim key.

    `evidence` keys: synthetic (bool), epochs and best_epoch (1-based) of the main run [, best_epoch_seeds Spread];
    latent, deep (Spread of the paired relative difference in best validation loss: latent64 vs the original's model,
    deep vs the original's model, positive = higher loss); aux_class, aux_modality (Spread over seeds); and, for
    real data, probe_modality, conditional_modality, conditional_class (Spread over test images), class_chance,
    class_chance_within_modality,
    recon_ssim_path (float) and recon_ssim_gain_path (Spread over test images)."""
    rows = []
    for claim in CLAIMS:
        finding = assess(claim, evidence)
        rows.append({"key": claim.key, "claim": claim.claim, "original": claim.original, "ours": finding.ours,
                     "verdict": finding.verdict, "reason": finding.reason})
    return pd.DataFrame(rows).set_index("key")


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many claims got each verdict: {verdict: count} over VERDICTS (zeros included)."""
    counts = table["verdict"].value_counts()
    return {verdict: int(counts.get(verdict, 0)) for verdict in VERDICTS}


def sentence(table: pd.DataFrame, key: str, data_label: str) -> str:
    """One plain-text sentence stating a claim's verdict from the table, the verdict in capitals: 'The original's claim
    that ... is NOT REPRODUCED on <data>: <ours> (<reason>).' The only way the book words a verdict."""
    row = table.loc[key]
    return (f"The original's claim that {row['claim']} ({row['original']}) is {row['verdict'].upper()} on "
            f"{data_label}: {row['ours']} ({row['reason']}).")


__all__ = ["CLAIMS", "Claim", "Finding", "RULE", "VERDICTS", "MIN_SEEDS", "assess", "claims_table", "sentence",
           "verdict_counts"]
