"""Downstream value of the samples: classifiers trained with and without them at several shares of the real
training split, and train on synthetic, test on real (TSTR)."""

from __future__ import annotations

import math

import pandas as pd
import torch

from cvae.core.formatting import listed
from cvae.core.labels import DATASETS
from cvae.core.spread import RATE_CHANGE, over_seeds, paired_difference
from cvae.data.loading import MedMNISTData, Split, shuffled_by_class, stratified_indices, to_uint8
from cvae.evaluation import metric_math
from cvae.evaluation.domain_evaluator import predict, train_classifier
from cvae.evaluation.run_metrics import EvaluationSettings, per_modality


def _per_modality_accuracy(model, test: Split, device) -> dict[str, float]:
    predicted = predict(model, test.images, device)
    result = per_modality(metric_math.grouped_accuracy(predicted, test.labels.numpy(), test.modalities.numpy()))
    result["overall"] = metric_math.accuracy(predicted, test.labels.numpy())
    return result


def augmentation_metrics(samples, data: MedMNISTData, settings: EvaluationSettings, device="cpu",
                         progress: bool = False, width: int = 16) -> dict:
    """Train on synthetic, test on real (TSTR, the classification accuracy score): a 21-way classifier (the
    evaluator's architecture, trained fresh) on the CVAE samples alone, and its real counterpart (TRTR) on as many
    real training images per class, both tested on the real test split, per modality and overall. Downstream
    classifiers train on the images as they are (no blur augmentation: that is only for the evaluator, which must read
    blurry samples)."""
    images, labels, _ = samples
    fake_uint8 = to_uint8(images[:, 0])
    train = data.train
    matched = stratified_indices(train.labels, settings.samples_per_class, settings.seed + 8)
    sets = {"tstr": (fake_uint8, labels), "trtr": (train.images[matched], train.labels[matched])}
    results = {}
    for name, (x, y) in sets.items():
        classifier = train_classifier(x, y, settings.classifier_steps, seed=settings.seed, device=device,
                                      progress=progress, desc=f"classifier {name}", width=width, blur_augment=False)
        results[name] = _per_modality_accuracy(classifier, data.test, device)
    return {
        "tstr_accuracy": results["tstr"]["overall"], "trtr_accuracy": results["trtr"]["overall"],
        "tstr_accuracy_by_modality": {flag: results["tstr"][flag] for flag in DATASETS},
        "trtr_accuracy_by_modality": {flag: results["trtr"][flag] for flag in DATASETS},
        "augmentation_sizes": {"synthetic_per_class": settings.samples_per_class,
                               "trtr_real_per_class": settings.samples_per_class,
                               "classifier_steps": settings.classifier_steps},
    }


FRACTIONS = (0.01, 0.1, 1.0)  # shares of the training split the real-only classifier gets


def fraction_indices(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A seeded, stratified `fraction` of a split: ceil(fraction x n_c) indices of every class c (at least 1);
    sorted (M,) int64."""
    chosen = [members[: max(1, math.ceil(fraction * len(members) - 1e-9))]
              for members in shuffled_by_class(labels, seed).values()]
    return torch.sort(torch.cat(chosen)).values


def augmentation_by_fraction(samples, data: MedMNISTData, steps: int, seeds: int = 3,
                             fractions: tuple[float, ...] = FRACTIONS, device="cpu", width: int = 16,
                             progress: bool = False) -> dict:
    """Real-only against real plus every generated sample, at several fractions of the training split, over seeds.

    For each fraction and seed s: a stratified fraction of the real training images (drawn with seed s), a classifier
    (the evaluator's architecture, `steps` Adam steps, seed s) on them alone and one on them plus the samples; both
    tested on the whole real test split. Returns {"rows": one dict per (fraction, seed, arm) with overall and
    per-modality accuracy, "sizes": real/synthetic image counts per fraction, "steps", "seeds"}."""
    images, labels, _ = samples
    fake_uint8 = to_uint8(images[:, 0])
    rows, sizes = [], {}
    for fraction in fractions:
        for seed in range(seeds):
            chosen = fraction_indices(data.train.labels, fraction, seed + 11)
            real_x, real_y = data.train.images[chosen], data.train.labels[chosen]
            sizes[str(fraction)] = {"real": int(len(chosen)), "synthetic": int(len(labels))}
            arms = {"real_only": (real_x, real_y),
                    "real_plus_synthetic": (torch.cat([real_x, fake_uint8]), torch.cat([real_y, labels]))}
            for arm, (x, y) in arms.items():
                classifier = train_classifier(x, y, steps, seed=seed, device=device, progress=progress,
                                              desc=f"classifier {arm} {fraction:g} seed {seed}", width=width,
                                              blur_augment=False)
                rows.append({"fraction": fraction, "seed": seed, "arm": arm,
                             **_per_modality_accuracy(classifier, data.test, device)})
    return {"rows": rows, "sizes": sizes, "steps": steps, "seeds": seeds, "fractions": list(fractions)}





def fraction_summary(result: dict, column: str = "overall") -> pd.DataFrame:
    """From `augmentation_by_fraction`'s result: per (fraction, arm) the mean test accuracy over seeds with its 95%
    interval, and per fraction the paired gain (real plus generated minus real only); rows with `arm` 'gain'."""
    rows = pd.DataFrame(result["rows"])
    out = []
    for fraction, part in rows.groupby("fraction"):
        by_arm = {arm: part[part["arm"] == arm].sort_values("seed")[column].tolist()
                  for arm in ("real_only", "real_plus_synthetic")}
        for arm, values in by_arm.items():
            spread = over_seeds(values, (0.0, 1.0))  # test accuracies
            out.append({"fraction": fraction, "arm": arm, "mean": spread.mean, "low": spread.low,
                        "high": spread.high, "seeds": spread.n})
        gain = paired_difference(by_arm["real_plus_synthetic"], by_arm["real_only"], RATE_CHANGE)
        out.append({"fraction": fraction, "arm": "gain", "mean": gain.mean, "low": gain.low, "high": gain.high,
                    "seeds": gain.n})
    return pd.DataFrame(out)


ARM_NAMES = {"real_only": "real only", "real_plus_synthetic": "real + generated", "gain": "gain"}


def fraction_sentence(summary: pd.DataFrame) -> str:
    """What adding the samples did at each share of the real images, in one sentence, and what the intervals allow
    one to say: 'Adding the samples changed the test accuracy by +5.2 points at 1% of the real images (95% CI ...),
    ... each over 3 seeds. No interval excludes zero: ...'."""
    gains = summary[summary["arm"] == "gain"].set_index("fraction")
    if gains.empty:
        return ""
    parts = []
    for position, (fraction, row) in enumerate(gains.iterrows()):  # the first says the units, the rest only numbers
        first = position == 0
        interval = (f"{'95% CI ' if first else ''}{100 * row['low']:+.1f} to {100 * row['high']:+.1f}"
                    if pd.notna(row["low"]) else "no interval")
        parts.append(f"{100 * row['mean']:+.1f}{' points' if first else ''} at {fraction:.0%}"
                     f"{' of the real images' if first else ''} ({interval})")
    seeds = int(gains["seeds"].min())
    return (f"Adding the samples changed the test accuracy by {listed(parts)}, each over {seeds} seeds. "
            + _fraction_reading(gains))


def _fraction_reading(gains: pd.DataFrame) -> str:
    """Which shares of the real images the samples helped or hurt at, judged by whether the interval excludes 0."""
    helped = [f"{f:.0%}" for f, row in gains.iterrows() if pd.notna(row["low"]) and row["low"] > 0]
    hurt = [f"{f:.0%}" for f, row in gains.iterrows() if pd.notna(row["high"]) and row["high"] < 0]
    if not helped and not hurt:
        return "No interval excludes zero, so on this build the samples neither helped nor hurt detectably."
    said = ([f"helped at {', '.join(helped)}"] if helped else []) + ([f"hurt at {', '.join(hurt)}"] if hurt else [])
    return f"The samples {' and '.join(said)} of the real images, where the interval excludes zero."


def fraction_table(summary: pd.DataFrame) -> pd.DataFrame:
    """`fraction_summary` for the page: accuracies in %, the gain in percentage points, arms named in words."""
    unit = summary["arm"].map(lambda arm: "points" if arm == "gain" else "%")
    cells = {column: [f"{100 * value:+.1f}" if arm == "gain" else f"{100 * value:.1f}"
                      for value, arm in zip(summary[column], summary["arm"])] for column in ("mean", "low", "high")}
    intervals = [f"{low} to {high}" for low, high in zip(cells["low"], cells["high"])]
    return pd.DataFrame({"real images used": summary["fraction"].map(lambda f: f"{f:.0%}"),
                         "classifier": summary["arm"].map(ARM_NAMES), "unit": unit, "mean": cells["mean"],
                         "95% CI": intervals, "seeds": summary["seeds"].astype(int),
                         }).set_index(["real images used", "classifier"])


__all__ = ["augmentation_metrics", "augmentation_by_fraction", "fraction_indices", "fraction_summary", "FRACTIONS",
           "ARM_NAMES", "fraction_sentence", "fraction_table"]
