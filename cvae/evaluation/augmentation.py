"""Downstream value of the samples: classifiers trained with and without them at several shares of the real
training split, and train on synthetic, test on real (TSTR)."""

from __future__ import annotations

import math

import torch

from cvae.core.labels import DATASETS
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


__all__ = ["augmentation_metrics", "augmentation_by_fraction", "fraction_indices", "FRACTIONS"]
