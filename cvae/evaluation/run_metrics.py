"""The numbers of one run: generation (domain FID/KID, conditional accuracy), reconstruction, latent, loss scales."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from cvae.core.config import Config
from cvae.core.labels import CLASS_NAMES, DATASETS, MODALITY_OF_CLASS, NUM_CLASSES, NUM_MODALITIES
from cvae.core.loss import RECONSTRUCTION_TERMS, term_weights
from cvae.core.model import CVAE
from cvae.data.loading import MedMNISTData, Split, stratified_indices
from cvae.evaluation import metric_math
from cvae.evaluation.domain_evaluator import Evaluator, evaluator_settings_for, extract_features, predict
from cvae.evaluation.inference import aux_head_accuracy, aux_head_readings, encode_split, reconstruct


@dataclass(frozen=True)
class EvaluationSettings:
    """Sample sizes and seeds of the evaluation (documented in the sampling and augmentation chapters).

    samples_per_class: CVAE samples generated per global class for domain FID/KID, conditional accuracy and as the
        synthetic training set (equal to the evaluator's held-out reference per class, so the real-vs-real floor
        and the generated sets have the same size).
    kid_subset_size: cap of KID's subset size; clipped to the smallest per-modality set compared.
    classifier_steps: Adam steps of each downstream classifier (same architecture as the evaluator, trained fresh).
    fraction_*: the augmentation-by-fraction study (`cvae.evaluation.augmentation.augmentation_by_fraction`): Adam steps and width
        of each classifier, and how many seeds per fraction.
    """

    samples_per_class: int = 100
    kid_subsets: int = 50
    kid_subset_size: int = 1000
    probe_max_train: int = 20000
    silhouette_samples: int = 2000
    classifier_steps: int = 150
    variant_samples_per_class: int = 50
    embedding_points_per_class: int = 100  # test images per class in the PCA / t-SNE of mu (t-SNE grows with them)
    readings_per_class: int = 100  # test (and validation) images per class the aux heads are read on
    fraction_classifier_steps: int = 150
    fraction_classifier_width: int = 16
    fraction_seeds: int = 3
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)


def evaluation_settings_for(config: Config) -> EvaluationSettings:
    """The profile's evaluation sizes: samples per class = the evaluator's held-out reference per class
    (100 on the small stand-in, 200 for `quick`, 1,000 for `full`); longer downstream classifiers beyond the small
    stand-in."""
    reference = evaluator_settings_for(config).reference_per_class
    small = config.data_source == "synthetic" and 0 < config.synthetic_per_class <= 1000
    if small:  # the smoke book: every step of the evaluation, at the smallest sizes that still run it
        return EvaluationSettings(samples_per_class=reference, classifier_steps=100, variant_samples_per_class=20,
                                  fraction_classifier_steps=40, fraction_seeds=2, embedding_points_per_class=50)
    return EvaluationSettings(samples_per_class=reference, classifier_steps=600, fraction_classifier_steps=300)


def per_modality(values_by_modality: dict[int, float]) -> dict[str, float]:
    """{modality id: value} -> {dataset flag: value}."""
    return {DATASETS[m]: float(v) for m, v in values_by_modality.items()}


def generation_metrics(evaluator: Evaluator, samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor], test: Split,
                       reference: Split, settings: EvaluationSettings, device="cpu") -> dict:
    """Domain FID/KID per modality and overall (samples vs the real test split), the real-vs-real floor (the
    held-out part of train vs test), and conditional class/modality accuracy with a per-class table."""
    images, labels, modalities = samples
    fake_features = extract_features(evaluator.model, images, device)
    test_features = extract_features(evaluator.model, test.images, device)
    reference_features = extract_features(evaluator.model, reference.images, device)
    groups = {flag: (test.modalities == m, modalities == m, reference.modalities == m)
              for m, flag in enumerate(DATASETS)}
    groups["overall"] = (torch.ones(len(test), dtype=torch.bool), torch.ones(len(labels), dtype=torch.bool),
                         torch.ones(len(reference), dtype=torch.bool))
    smallest = min(int(mask.sum()) for masks in groups.values() for mask in masks)
    subset_size = min(settings.kid_subset_size, smallest)
    fid, kid, kid_std, floor, kid_floor = {}, {}, {}, {}, {}
    for name, (test_mask, fake_mask, reference_mask) in groups.items():
        real = test_features[test_mask]
        fid[name] = metric_math.frechet_distance(real, fake_features[fake_mask])
        floor[name] = metric_math.frechet_distance(real, reference_features[reference_mask])
        kid[name], kid_std[name] = metric_math.kernel_distance(real, fake_features[fake_mask], subset_size,
                                                           settings.kid_subsets, settings.seed)
        kid_floor[name], _ = metric_math.kernel_distance(real, reference_features[reference_mask], subset_size,
                                                     settings.kid_subsets, settings.seed)
    predicted = predict(evaluator.model, images, device)
    predicted_modality = np.asarray(MODALITY_OF_CLASS)[predicted]
    labels_np, modalities_np = labels.numpy(), modalities.numpy()
    per_class = []
    for label in range(NUM_CLASSES):
        mask = labels_np == label
        per_class.append({
            "label": label, "name": CLASS_NAMES[label], "modality": DATASETS[MODALITY_OF_CLASS[label]],
            "class_accuracy": metric_math.accuracy(predicted[mask], labels_np[mask]),
            "modality_accuracy": metric_math.accuracy(predicted_modality[mask], modalities_np[mask]),
            "samples": int(mask.sum()),
        })
    return {
        "domain_fid": fid, "domain_kid": kid, "domain_kid_std": kid_std, "domain_fid_floor": floor,
        "domain_kid_floor": kid_floor, "kid_subset_size": int(subset_size),
        "conditional_class_accuracy": metric_math.accuracy(predicted, labels_np),
        "conditional_modality_accuracy": metric_math.accuracy(predicted_modality, modalities_np),
        "conditional_class_accuracy_by_modality": per_modality(
            metric_math.grouped_accuracy(predicted, labels_np, modalities_np)),
        "conditional_per_class": per_class,
        "generation_sizes": {"samples": int(len(labels)), "test": int(len(test)), "reference": int(len(reference)),
                             "samples_per_class": settings.samples_per_class},
    }


def class_mean_images(split: Split) -> torch.Tensor:
    """The mean image of every global class of a split: (21,1,28,28) float in [0,1] (zeros for an absent class)."""
    images = split.images.float().div(255.0)
    sums = torch.zeros(NUM_CLASSES, 28, 28).index_add_(0, split.labels, images)
    counts = torch.bincount(split.labels, minlength=NUM_CLASSES).clamp(min=1).float()
    return (sums / counts[:, None, None]).unsqueeze(1)


def reconstruction_metrics(model: CVAE, test: Split, device="cpu", class_means_from: Split | None = None) -> dict:
    """MSE (per pixel, [0,1] scale), PSNR (dB, capped at 100) and SSIM per modality and overall on the test split.

    With `class_means_from` (the training split), also the SSIM gain of the reconstruction over the image's
    class-mean training image (the trivial reconstruction that knows only the condition), per modality, as the mean of
    the per-class mean gains with its 95% interval over classes (`cvae.core.spread.over_classes`: images of one class
    share their fate, so the images are not independent)."""
    from cvae.core.spread import over_classes

    originals, recons = reconstruct(model, test, device)
    out = {"recon_mse": {}, "recon_psnr": {}, "recon_ssim": {}}
    per_image = metric_math.reconstruction_scores_per_image(recons, originals)  # once; each modality takes its means
    ssim = per_image["ssim"]
    if class_means_from is not None:
        baseline = metric_math.ssim_per_image(class_mean_images(class_means_from)[test.labels], originals)
        out["recon_ssim_class_mean_baseline"], out["recon_ssim_gain_over_class_mean"] = {}, {}
    for m, flag in list(enumerate(DATASETS)) + [(None, "overall")]:
        mask = torch.ones(len(test), dtype=torch.bool) if m is None else test.modalities == m
        for key in ("mse", "psnr", "ssim"):
            out[f"recon_{key}"][flag] = float(per_image[key][mask].mean())
        if class_means_from is not None and int(mask.sum()) > 1:
            out["recon_ssim_class_mean_baseline"][flag] = float(baseline[mask].mean())
            by_class = metric_math.per_class_means((ssim - baseline)[mask].numpy(), test.labels[mask].numpy(), NUM_CLASSES)
            out["recon_ssim_gain_over_class_mean"][flag] = over_classes(by_class, bounds=None).to_dict()
    return out


def latent_metrics(model: CVAE, data: MedMNISTData, config: Config, settings: EvaluationSettings, device="cpu",
                   light: bool = False) -> dict:
    """Aux heads (every reading of `cvae.evaluation.inference.aux_head_readings` on a class-balanced part of the test split, and
    eval mode on the validation split) beside linear probes on mu, baselines, silhouettes, per-dimension KL.

    `light` skips the silhouettes (used for the diagnosis variants)."""
    train_codes = encode_split(model, data.train, device)
    test_codes = encode_split(model, data.test, device)

    # every reading of the heads on the same class-balanced part of each split (the full split where it is smaller)
    test = data.test.subset(stratified_indices(data.test.labels, settings.readings_per_class, settings.seed))
    readings = aux_head_readings(model, test, device, config.batch_size, settings.seed,
                                 class_means=class_mean_images(data.train))
    readings["eval_val_split"] = aux_head_accuracy(
        model, data.val.subset(stratified_indices(data.val.labels, settings.readings_per_class, settings.seed)), device)
    eval_mode, train_mode = readings["eval"], readings["train_mixed"]
    predicted = {
        target: metric_math.linear_probe_predictions(train_codes["mu"], train_codes[key], test_codes["mu"],
                                                 seed=settings.seed, max_train=settings.probe_max_train)
        for target, key in (("class", "labels"), ("modality", "modalities"))
    }
    probe = {target: metric_math.accuracy(predicted[target], test_codes[key])
             for target, key in (("class", "labels"), ("modality", "modalities"))}
    kl = metric_math.mean_kl_per_dimension(test_codes["mu"], test_codes["logvar"])
    out = {
        "aux_class_accuracy": eval_mode["class"], "aux_modality_accuracy": eval_mode["modality"],
        "aux_class_accuracy_train_mode": train_mode["class"],
        "aux_modality_accuracy_train_mode": train_mode["modality"],
        "probe_class_accuracy": probe["class"], "probe_modality_accuracy": probe["modality"],
        "active_units": metric_math.active_units(kl), "kl_total": float(sum(kl)), "latent_test_images": len(data.test),
        "aux_readings": readings,
        # what a modality head that ignores its input scores on the images the heads were read on: a guess in the
        # label proportions
        "modality_guess": float(sum(np.mean(test.modalities.numpy() == m) ** 2 for m in range(NUM_MODALITIES))),
    }
    if not light:
        for target, key in (("class", "labels"), ("modality", "modalities")):
            correct = np.asarray(predicted[target]) == np.asarray(test_codes[key])
            out[f"probe_{target}_accuracy_by_class"] = metric_math.per_class_means(correct, test_codes["labels"],
                                                                               NUM_CLASSES)
        out.update(latent_embedding(model, data.test, settings, device))
        out["kl_per_dimension"] = kl
        out["test_class_counts"] = np.bincount(data.test.labels.numpy(), minlength=NUM_CLASSES).tolist()
        out["baselines"] = {
            "class_chance": metric_math.chance_accuracy(NUM_CLASSES),
            "class_majority": metric_math.majority_accuracy(data.train.labels.numpy(), data.test.labels.numpy()),
            "modality_chance": metric_math.chance_accuracy(NUM_MODALITIES),
            "modality_majority": metric_math.majority_accuracy(data.train.modalities.numpy(),
                                                           data.test.modalities.numpy()),
        }
        out["silhouette_modality"] = metric_math.silhouette(test_codes["mu"], test_codes["modalities"],
                                                        settings.silhouette_samples, settings.seed)
        out["silhouette_class"] = metric_math.silhouette(test_codes["mu"], test_codes["labels"],
                                                     settings.silhouette_samples, settings.seed)
        out["active_unit_threshold_nats"] = metric_math.ACTIVE_UNIT_THRESHOLD
    return out


def latent_embedding(model: CVAE, test: Split, settings: EvaluationSettings, device="cpu") -> dict:
    """PCA and t-SNE of mu for a class-balanced sample of test images (what the latent chapter's figures show) and
    how well modality and class separate in each: per class, the mean share of a point's 10 nearest neighbours in
    the 2-D embedding that have its label. Keys: latent_embedding {labels, modalities, PCA, t-SNE, pca_explained},
    separation_2d {modality|class: {PCA|t-SNE: [per-class means]}}, separation_points [points per class]."""
    from cvae.evaluation.examples import embed_2d, latent_means

    mu, labels, modalities = latent_means(model, test, settings.embedding_points_per_class,
                                          settings.seed)
    embedding: dict = {"labels": labels.tolist(), "modalities": modalities.tolist()}
    separation: dict = {"modality": {}, "class": {}}
    for method in ("PCA", "t-SNE"):
        points, facts = embed_2d(mu, method, seed=settings.seed)
        embedding[method] = np.round(points, 4).tolist()
        if method == "PCA":
            embedding["pca_explained"] = float(sum(facts["explained_variance"]))
        for target, truth in (("modality", modalities), ("class", labels)):
            agreement = metric_math.neighbour_agreement(points, truth, NEIGHBOURS)
            separation[target][method] = metric_math.per_class_means(agreement, labels, NUM_CLASSES)
    return {"latent_embedding": embedding, "separation_2d": separation, "separation_neighbours": NEIGHBOURS,
            "separation_points": np.bincount(np.asarray(labels), minlength=NUM_CLASSES).tolist()}


NEIGHBOURS = 10  # the k of the 2-D separation measure (cvae.study.claims: "10 nearest 2-D neighbours")


def loss_scales(run_metrics, config: Config) -> dict:
    """Per-image scale of the weighted reconstruction terms vs the weighted aux terms at the best epoch (validation
    loss terms from metrics.csv), and their ratio."""
    best = run_metrics.loc[run_metrics["val_total"].idxmin()]
    weights = term_weights(config, config.beta_max)
    reconstruction = sum(weights[name] * best[f"val_{name}"] for name in RECONSTRUCTION_TERMS)
    aux = config.gamma * (best["val_class_ce"] + best["val_modality_ce"])
    return {"reconstruction_per_image": float(reconstruction), "aux_weighted_per_image": float(aux),
            "aux_unweighted_per_image": float(best["val_class_ce"] + best["val_modality_ce"]),
            "reconstruction_to_aux_ratio": metric_math.finite(float(reconstruction / aux)) if aux > 0 else None}


__all__ = [
    "EvaluationSettings", "evaluation_settings_for", "per_modality", "generation_metrics", "reconstruction_metrics",
    "latent_metrics", "latent_embedding", "loss_scales", "class_mean_images", "NEIGHBOURS",
]
