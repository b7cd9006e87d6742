"""Evaluation of a trained run: generation, reconstruction, latent diagnostics, the aux-head diagnosis, augmentation.

`evaluate_run(config)` trains the config's run if needed, trains or reuses the domain evaluator
(`cvae.evaluator`), computes every number of the sampling, reconstructions, latent and augmentation chapters,
writes them to `<run>/evaluation.json` (atomically; reused unless `force` or the evaluation settings changed) and
returns the same plain-JSON dict. The helpers below (`latent_codes`, `generate_conditional_samples`,
`reconstruct`, ...) are what the notebooks call to show the things the numbers summarise.

The diagnosis trains cheap variants of the config through `cvae.train.train` (so they are cached runs too):
  - `encoder_unconditioned` (encoder_conditioned=False): the encoder no longer sees the labels, so mu must carry
    them if the decoder is to use anything but the condition;
  - `gamma_0` (gamma=0): the aux heads get no gradient at all (a loss weight of ~0, a detached head);
  - `gamma_10` (gamma=10): the aux cross-entropies 10x closer to the scale of the per-image reconstruction sums;
each beside a `control` with the paper's settings, all at the profile's ablation scale (shared with the ablations
chapter's runs), and measures on the main run: eval- vs train-mode heads (BatchNorm batch statistics, dropout), per-dimension KL
(posterior collapse) and the loss terms' scales. The verdict is assembled from these numbers by fixed rules
(`diagnosis_verdict`), never typed as a claim.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import metrics
from .config import Config
from .data import MedMNISTData, Split, iterate_batches, load_data, stratified_indices
from .evaluator import (REFERENCE_RESNET18_28, Evaluator, evaluator_data_config, evaluator_hash,
                        evaluator_settings_for, extract_features, load_or_train_evaluator, predict, split_reference,
                        train_classifier)
from .labels import CLASS_NAMES, DATASETS, MODALITY_OF_CLASS, NUM_CLASSES, NUM_MODALITIES
from .model import CVAE
from .runs import atomic_write_text, is_finished, load_run, run_dir_for
from .train import select_device, train

EVALUATION_FILE = "evaluation.json"
EVALUATION_VERSION = 2
ORIGINAL_AUX_ACCURACY = {"class": 0.34, "modality": 0.39}  # quoted from the original report, not computed
# Trained at the profile's ablation scale (`cvae.ablations.PROFILE_SCALE`) beside a control (the paper's settings
# at that scale), so gamma_0 (= ablation `no_aux`), gamma_10 (= `gamma_10`) and the control (= `paper`) are the
# very runs the ablations chapter trains: the cache serves them once for both chapters.
DIAGNOSIS_VARIANTS: dict[str, dict] = {
    "encoder_unconditioned": {"encoder_conditioned": False},
    "gamma_0": {"gamma": 0.0},
    "gamma_10": {"gamma": 10.0},
}
MARGIN = 0.05  # accuracy difference (absolute) the verdict treats as real rather than noise


@dataclass(frozen=True)
class EvaluationSettings:
    """Sample sizes and seeds of the evaluation (documented in the sampling and augmentation chapters).

    samples_per_class: CVAE samples generated per global class for domain FID/KID, conditional accuracy and as the
        synthetic training set (equal to the evaluator's held-out reference per class, so the real-vs-real floor
        and the generated sets have the same size).
    kid_subset_size: cap of KID's subset size; clipped to the smallest per-modality set compared.
    augmentation_real_per_class: the "small real subset" of the augmentation chapter, per class.
    classifier_steps: Adam steps of each downstream classifier (same architecture as the evaluator, trained fresh).
    """

    samples_per_class: int = 100
    kid_subsets: int = 50
    kid_subset_size: int = 1000
    probe_max_train: int = 20000
    silhouette_samples: int = 2000
    augmentation_real_per_class: int = 20
    classifier_steps: int = 150
    variant_samples_per_class: int = 50
    diagnose: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)


def evaluation_settings_for(config: Config, diagnose: bool = True) -> EvaluationSettings:
    """The profile's evaluation sizes: samples per class = the evaluator's held-out reference per class
    (100 on the stand-in, 200 for `quick`, 1,000 for `full`); 50 real images per class for augmentation on real data."""
    reference = evaluator_settings_for(config).reference_per_class
    small = config.data_source == "synthetic" and 0 < config.synthetic_per_class <= 1000
    return EvaluationSettings(samples_per_class=reference, augmentation_real_per_class=20 if small else 50,
                              classifier_steps=150 if small else 600, diagnose=diagnose)


# --------------------------------------------------------------------------------------------------------------
# helpers the notebooks call


@torch.inference_mode()
def encode_split(model: CVAE, split: Split, device: str | torch.device = "cpu", batch_size: int = 1024) -> dict:
    """Eval-mode posterior of every image of a split: {mu, logvar (N,D) float32, labels, modalities (N,)} ndarrays."""
    model.eval()
    mus, logvars = [], []
    for images, labels, modalities in iterate_batches(split, batch_size, device):
        mu, logvar = model.encode(images, labels, modalities)
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    return {"mu": torch.cat(mus).numpy(), "logvar": torch.cat(logvars).numpy(),
            "labels": split.labels.numpy(), "modalities": split.modalities.numpy()}


def latent_codes(model: CVAE, split: Split, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """(mu (N,D) float32, labels (N,) global 0-20, modalities (N,) 0-2) for a split, eval mode: the latent chapter's
    PCA/t-SNE input."""
    codes = encode_split(model, split, device)
    return codes["mu"], codes["labels"], codes["modalities"]


@torch.inference_mode()
def generate_conditional_samples(model: CVAE, per_class: int, seed: int = 0, device: str | torch.device = "cpu",
                                 classes: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`per_class` prior samples for each global class (all 21 unless `classes`), decoded with the class's own
    modality: (images (N,1,28,28) float in [0,1] on the CPU, labels (N,), modalities (N,)). Seeded: z is drawn on
    the CPU from a generator seeded with `seed`, so the set repeats on any device."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    images, labels, modalities = [], [], []
    for label in classes if classes is not None else range(NUM_CLASSES):
        z = torch.randn(per_class, model.latent_dim, generator=generator)
        y = torch.full((per_class,), int(label), dtype=torch.long)
        m = torch.full((per_class,), MODALITY_OF_CLASS[label], dtype=torch.long)
        images.append(model.decode(z.to(device), y.to(device), m.to(device)).cpu())
        labels.append(y)
        modalities.append(m)
    return torch.cat(images), torch.cat(labels), torch.cat(modalities)


@torch.inference_mode()
def reconstruct(model: CVAE, split: Split, device: str | torch.device = "cpu",
                batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode reconstructions from the posterior mean, decode(mu, y, m): (originals, reconstructions), each
    (N,1,28,28) float in [0,1] on the CPU."""
    model.eval()
    originals, recons = [], []
    for images, labels, modalities in iterate_batches(split, batch_size, device):
        mu, _ = model.encode(images, labels, modalities)
        recons.append(model.decode(mu, labels, modalities).cpu())
        originals.append(images.cpu())
    return torch.cat(originals), torch.cat(recons)


@torch.inference_mode()
def aux_head_accuracy(model: CVAE, split: Split, device: str | torch.device = "cpu", train_mode: bool = False,
                      batch_size: int = 256, seed: int = 0) -> dict[str, float]:
    """Accuracy of the auxiliary heads on a split: {'class', 'modality'}.

    Eval mode (default): BatchNorm running statistics, no dropout, the way a deployed head is read.
    Train mode: a copy of the whole model in `train()` (batch statistics in every BatchNorm, dropout on), fed
    shuffled batches of `batch_size` (as in training, where every batch mixes the modalities); the model itself is
    not changed. The gap between the two is the BatchNorm/dropout candidate cause.
    """
    net = copy.deepcopy(model).train() if train_mode else model.eval()
    correct_class = correct_modality = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        for images, labels, modalities in iterate_batches(split, batch_size, device, shuffle=train_mode,
                                                          generator=generator):
            mu, _ = net.encode(images, labels, modalities)
            correct_class += int((net.class_head(mu).argmax(1) == labels).sum())
            correct_modality += int((net.modality_head(mu).argmax(1) == modalities).sum())
    return {"class": correct_class / len(split), "modality": correct_modality / len(split)}


def per_modality(values_by_modality: dict[int, float]) -> dict[str, float]:
    """{modality id: value} -> {dataset flag: value}."""
    return {DATASETS[m]: float(v) for m, v in values_by_modality.items()}


# --------------------------------------------------------------------------------------------------------------
# the chapters' numbers


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
        fid[name] = metrics.frechet_distance(real, fake_features[fake_mask])
        floor[name] = metrics.frechet_distance(real, reference_features[reference_mask])
        kid[name], kid_std[name] = metrics.kernel_distance(real, fake_features[fake_mask], subset_size,
                                                           settings.kid_subsets, settings.seed)
        kid_floor[name], _ = metrics.kernel_distance(real, reference_features[reference_mask], subset_size,
                                                     settings.kid_subsets, settings.seed)
    predicted = predict(evaluator.model, images, device)
    predicted_modality = np.asarray(MODALITY_OF_CLASS)[predicted]
    labels_np, modalities_np = labels.numpy(), modalities.numpy()
    per_class = []
    for label in range(NUM_CLASSES):
        mask = labels_np == label
        per_class.append({
            "label": label, "name": CLASS_NAMES[label], "modality": DATASETS[MODALITY_OF_CLASS[label]],
            "class_accuracy": metrics.accuracy(predicted[mask], labels_np[mask]),
            "modality_accuracy": metrics.accuracy(predicted_modality[mask], modalities_np[mask]),
            "samples": int(mask.sum()),
        })
    return {
        "domain_fid": fid, "domain_kid": kid, "domain_kid_std": kid_std, "domain_fid_floor": floor,
        "domain_kid_floor": kid_floor, "kid_subset_size": int(subset_size),
        "conditional_class_accuracy": metrics.accuracy(predicted, labels_np),
        "conditional_modality_accuracy": metrics.accuracy(predicted_modality, modalities_np),
        "conditional_class_accuracy_by_modality": per_modality(
            metrics.grouped_accuracy(predicted, labels_np, modalities_np)),
        "conditional_per_class": per_class,
        "generation_sizes": {"samples": int(len(labels)), "test": int(len(test)), "reference": int(len(reference)),
                             "samples_per_class": settings.samples_per_class},
    }


def reconstruction_metrics(model: CVAE, test: Split, device="cpu") -> dict:
    """MSE (per pixel, [0,1] scale), PSNR (dB, capped at 100) and SSIM per modality and overall on the test split."""
    originals, recons = reconstruct(model, test, device)
    out = {"recon_mse": {}, "recon_psnr": {}, "recon_ssim": {}}
    for m, flag in list(enumerate(DATASETS)) + [(None, "overall")]:
        mask = torch.ones(len(test), dtype=torch.bool) if m is None else test.modalities == m
        scores = metrics.reconstruction_scores(recons[mask], originals[mask])
        for key in ("mse", "psnr", "ssim"):
            out[f"recon_{key}"][flag] = scores[key]
    return out


def latent_metrics(model: CVAE, data: MedMNISTData, config: Config, settings: EvaluationSettings, device="cpu",
                   light: bool = False) -> dict:
    """Aux heads (eval and train mode) beside linear probes on mu, baselines, silhouettes, per-dimension KL.

    `light` skips the silhouettes (used for the diagnosis variants)."""
    train_codes = encode_split(model, data.train, device)
    test_codes = encode_split(model, data.test, device)
    eval_mode = aux_head_accuracy(model, data.test, device)
    train_mode = aux_head_accuracy(model, data.test, device, train_mode=True, batch_size=config.batch_size,
                                   seed=settings.seed)
    probe = {
        target: metrics.linear_probe_accuracy(train_codes["mu"], train_codes[key], test_codes["mu"], test_codes[key],
                                              seed=settings.seed, max_train=settings.probe_max_train)
        for target, key in (("class", "labels"), ("modality", "modalities"))
    }
    kl = metrics.mean_kl_per_dimension(test_codes["mu"], test_codes["logvar"])
    out = {
        "aux_class_accuracy": eval_mode["class"], "aux_modality_accuracy": eval_mode["modality"],
        "aux_class_accuracy_train_mode": train_mode["class"], "aux_modality_accuracy_train_mode": train_mode["modality"],
        "probe_class_accuracy": probe["class"], "probe_modality_accuracy": probe["modality"],
        "active_units": metrics.active_units(kl), "kl_total": float(sum(kl)),
    }
    if not light:
        out["kl_per_dimension"] = kl
        out["baselines"] = {
            "class_chance": metrics.chance_accuracy(NUM_CLASSES),
            "class_majority": metrics.majority_accuracy(data.train.labels.numpy(), data.test.labels.numpy()),
            "modality_chance": metrics.chance_accuracy(NUM_MODALITIES),
            "modality_majority": metrics.majority_accuracy(data.train.modalities.numpy(),
                                                           data.test.modalities.numpy()),
        }
        out["silhouette_modality"] = metrics.silhouette(test_codes["mu"], test_codes["modalities"],
                                                        settings.silhouette_samples, settings.seed)
        out["silhouette_class"] = metrics.silhouette(test_codes["mu"], test_codes["labels"],
                                                     settings.silhouette_samples, settings.seed)
        out["active_unit_threshold_nats"] = metrics.ACTIVE_UNIT_THRESHOLD
    return out


def _per_modality_accuracy(model, test: Split, device) -> dict[str, float]:
    predicted = predict(model, test.images, device)
    result = per_modality(metrics.grouped_accuracy(predicted, test.labels.numpy(), test.modalities.numpy()))
    result["overall"] = metrics.accuracy(predicted, test.labels.numpy())
    return result


def augmentation_metrics(samples, data: MedMNISTData, settings: EvaluationSettings, device="cpu",
                         progress: bool = False, width: int = 16) -> dict:
    """Downstream value of the samples: 21-way classifiers (the evaluator's architecture, trained fresh for the same
    number of steps) tested on the real test split, per modality and overall.

    real_only: a small stratified real subset; real_plus_synthetic: the same plus every CVAE sample;
    tstr: the CVAE samples alone (train on synthetic, test on real: the classification accuracy score);
    trtr: as many real training images per class as there are samples per class (its real counterpart)."""
    images, labels, _ = samples
    fake_uint8 = (images[:, 0] * 255).round().clamp(0, 255).to(torch.uint8)
    train = data.train
    small = stratified_indices(train.labels, settings.augmentation_real_per_class, settings.seed + 7)
    matched = stratified_indices(train.labels, settings.samples_per_class, settings.seed + 8)
    sets = {
        "real_only": (train.images[small], train.labels[small]),
        "real_plus_synthetic": (torch.cat([train.images[small], fake_uint8]), torch.cat([train.labels[small], labels])),
        "tstr": (fake_uint8, labels),
        "trtr": (train.images[matched], train.labels[matched]),
    }
    results = {}
    for name, (x, y) in sets.items():
        classifier = train_classifier(x, y, settings.classifier_steps, seed=settings.seed, device=device,
                                      progress=progress, desc=f"classifier {name}", width=width)
        results[name] = _per_modality_accuracy(classifier, data.test, device)
    augmentation = {flag: {"real_only": results["real_only"][flag],
                           "real_plus_synthetic": results["real_plus_synthetic"][flag]}
                    for flag in [*DATASETS, "overall"]}
    return {
        "augmentation": augmentation,
        "tstr_accuracy": results["tstr"]["overall"], "trtr_accuracy": results["trtr"]["overall"],
        "tstr_accuracy_by_modality": {flag: results["tstr"][flag] for flag in DATASETS},
        "trtr_accuracy_by_modality": {flag: results["trtr"][flag] for flag in DATASETS},
        "augmentation_sizes": {"real_per_class": settings.augmentation_real_per_class,
                               "synthetic_per_class": settings.samples_per_class,
                               "trtr_real_per_class": settings.samples_per_class,
                               "classifier_steps": settings.classifier_steps},
    }


# --------------------------------------------------------------------------------------------------------------
# the diagnosis


def loss_scales(run_metrics, config: Config) -> dict:
    """Per-image scale of the weighted reconstruction terms vs the weighted aux terms at the best epoch (validation
    loss terms from metrics.csv), and their ratio."""
    best = run_metrics.loc[run_metrics["val_total"].idxmin()]
    reconstruction = (config.a_mse * best["val_mse"] + config.a_l1 * best["val_l1"]
                      + config.a_perc * best["val_perceptual"])
    aux = config.gamma * (best["val_class_ce"] + best["val_modality_ce"])
    return {"reconstruction_per_image": float(reconstruction), "aux_weighted_per_image": float(aux),
            "aux_unweighted_per_image": float(best["val_class_ce"] + best["val_modality_ce"]),
            "reconstruction_to_aux_ratio": metrics.finite(float(reconstruction / aux)) if aux > 0 else None}


def _variant_numbers(config: Config, data: MedMNISTData, evaluator: Evaluator, settings: EvaluationSettings, device,
                     progress: bool) -> dict:
    run_dir = train(config, data=data, progress=progress)
    run = load_run(run_dir)
    model = run.model("best", device)
    out = {"run": run_dir.name, "train_seconds": float(run.summary.get("train_seconds", 0.0))}
    out.update(latent_metrics(model, data, config, settings, device, light=True))
    out["recon_mse"] = reconstruction_metrics(model, data.test, device)["recon_mse"]["overall"]
    images, labels, modalities = generate_conditional_samples(model, settings.variant_samples_per_class,
                                                              settings.seed, device)
    predicted = predict(evaluator.model, images, device)
    out["conditional_class_accuracy"] = metrics.accuracy(predicted, labels.numpy())
    out["conditional_modality_accuracy"] = metrics.accuracy(np.asarray(MODALITY_OF_CLASS)[predicted],
                                                            modalities.numpy())
    out["loss_scales"] = loss_scales(run.metrics, config)
    return out


def _flag(condition: bool, yes: str, no: str) -> str:
    return yes if condition else no


def diagnosis_verdict(diagnosis: dict) -> tuple[list[str], str, dict | None]:
    """Findings, a one-paragraph verdict and the fix (None if no variant improves the heads), derived from the
    diagnosis numbers by fixed rules: an accuracy difference counts when it exceeds MARGIN (0.05)."""
    base, baselines = diagnosis["base"], diagnosis["baselines"]
    control, variants = diagnosis["control"], diagnosis["variants"]
    majority = max(baselines["modality_majority"], baselines["modality_chance"])
    reproduced = diagnosis["reproduces_original"]
    findings = [
        f"Aux modality head (eval mode, test) {base['aux_modality_accuracy']:.3f} against a majority baseline of "
        f"{majority:.3f}: the original's below-majority modality accuracy "
        f"{_flag(reproduced, 'reproduces', 'does not reproduce')} here. A linear probe on mu reaches "
        f"{base['probe_modality_accuracy']:.3f} (modality) and {base['probe_class_accuracy']:.3f} (class); "
        f"the aux class head {base['aux_class_accuracy']:.3f}."]
    gap = diagnosis["batchnorm_gap"]
    bn_matters = max(abs(gap["class"]), abs(gap["modality"])) > MARGIN
    findings.append(
        f"BatchNorm/dropout: train-mode minus eval-mode accuracy is {gap['class']:+.3f} (class) and "
        f"{gap['modality']:+.3f} (modality): " + _flag(bn_matters, "a real effect.", "not the cause."))
    control_gap = {what: control[f"aux_{what}_accuracy_train_mode"] - control[f"aux_{what}_accuracy"]
                   for what in ("class", "modality")}
    control_bn_matters = max(abs(v) for v in control_gap.values()) > MARGIN
    if control_bn_matters:
        findings.append(
            f"At the diagnosis scale (control run, fewer steps) the heads read differently in train and eval mode: "
            f"{control_gap['class']:+.3f} (class), {control_gap['modality']:+.3f} (modality), train minus eval; "
            f"BatchNorm running statistics lag behind a latent that is still moving.")
    collapse = diagnosis["posterior_collapse"]
    collapsed = collapse["active_units"] == 0
    findings.append(
        f"Posterior collapse: {collapse['active_units']} of {collapse['latent_dim']} latent dimensions carry more "
        f"than {metrics.ACTIVE_UNIT_THRESHOLD} nats (total KL {collapse['kl_total']:.1f} nats): "
        + _flag(collapsed, "mu is collapsed.", "not collapsed."))
    ratio = diagnosis["loss_scales"]["reconstruction_to_aux_ratio"]
    if ratio is not None:
        findings.append(f"Loss scale: per image, the weighted reconstruction terms are {ratio:.0f}x the weighted "
                        f"aux cross-entropies.")
    untrained_head = False
    if "gamma_0" in variants:
        g0 = variants["gamma_0"]
        untrained_head = (g0["aux_modality_accuracy"] < majority + MARGIN and g0["probe_modality_accuracy"] > 0.9)
        findings.append(
            f"Heads without gradient (gamma=0): aux modality {g0['aux_modality_accuracy']:.3f}, class "
            f"{g0['aux_class_accuracy']:.3f}, while a probe on the same mu reads modality at "
            f"{g0['probe_modality_accuracy']:.3f} (control: heads {control['aux_modality_accuracy']:.3f}): "
            + _flag(untrained_head, "an untrained head on a cleanly clustered latent reproduces the original's "
                    "symptom.", "this does not reproduce the symptom."))
    shortcut = False
    if "encoder_unconditioned" in variants:
        unc = variants["encoder_unconditioned"]
        shortcut = unc["probe_class_accuracy"] > control["probe_class_accuracy"] + MARGIN
        findings.append(
            f"Label shortcut: without the labels at the encoder, the class probe on mu goes from "
            f"{control['probe_class_accuracy']:.3f} to {unc['probe_class_accuracy']:.3f} and the aux class head "
            f"from {control['aux_class_accuracy']:.3f} to {unc['aux_class_accuracy']:.3f}: "
            + _flag(shortcut, "feeding the labels to the encoder lets mu drop them.",
                    "the conditioned encoder's mu keeps the labels anyway (the aux loss asks for them)."))
    if "gamma_10" in variants:
        g10 = variants["gamma_10"]
        findings.append(
            f"Aux weight x10 (gamma=10): aux class {g10['aux_class_accuracy']:.3f} (control "
            f"{control['aux_class_accuracy']:.3f}), modality {g10['aux_modality_accuracy']:.3f} (control "
            f"{control['aux_modality_accuracy']:.3f}); reconstruction MSE {g10['recon_mse']:.4f} (control "
            f"{control['recon_mse']:.4f}).")
    fix, best_gain = None, MARGIN
    for name, variant in variants.items():
        gain = max(variant["aux_class_accuracy"] - control["aux_class_accuracy"],
                   variant["aux_modality_accuracy"] - control["aux_modality_accuracy"])
        if gain > best_gain and variant["recon_mse"] <= 1.5 * control["recon_mse"]:
            fix, best_gain = {"variant": name, "overrides": variant["overrides"], "gain": gain}, gain
    if reproduced:
        verdict = "The original's near-chance aux modality accuracy reproduces. "
        if bn_matters or control_bn_matters:
            verdict += "Train- and eval-mode readings differ (BatchNorm/dropout). "
        if collapsed:
            verdict += "The posterior has collapsed, so mu carries nothing to read. "
        elif base["probe_modality_accuracy"] > 0.9:
            verdict += "A linear probe reads the modality from the same mu, so the heads, not the latent, fail. "
        if untrained_head:
            verdict += "Heads without gradient (gamma=0) show the same symptom. "
        verdict += (f"Fix: {fix['variant']} ({fix['overrides']})." if fix else "No tested variant fixes it.")
    else:
        verdict = (f"The original's near-chance aux accuracy does not reproduce: in eval mode the heads reach "
                   f"{base['aux_class_accuracy']:.2f} (class) and {base['aux_modality_accuracy']:.2f} (modality), "
                   f"against linear probes on mu of {base['probe_class_accuracy']:.2f} and "
                   f"{base['probe_modality_accuracy']:.2f}; no collapse ({collapse['active_units']} active units)"
                   + _flag(bn_matters, "; train- and eval-mode readings differ. ", " and no train/eval gap. "))
        if control_bn_matters and not bn_matters:
            verdict += (f"With fewer training steps (the control run) the modality head reads "
                        f"{control['aux_modality_accuracy']:.2f} in eval mode and "
                        f"{control['aux_modality_accuracy_train_mode']:.2f} in train mode (BatchNorm running "
                        f"statistics). ")
        if untrained_head:
            verdict += (f"Only heads that receive no gradient (gamma=0) reproduce the symptom: modality "
                        f"{variants['gamma_0']['aux_modality_accuracy']:.2f} on a latent that a probe reads at "
                        f"{variants['gamma_0']['probe_modality_accuracy']:.2f}. So the original's heads most likely "
                        f"never trained (a loss weight near 0, a detached head or misaligned labels), which is a "
                        f"pipeline fault, not a limit of the model. ")
        if shortcut:
            verdict += "Conditioning the encoder on the labels lets mu drop the class. "
        if fix:
            verdict += f"{fix['variant']} ({fix['overrides']}) improves the heads over the control. "
    return findings, verdict.strip(), fix


# where the data come from, the seed and the precision: a profile's config with only these changed (the stand-in
# at official sizes, another seed, fp32) still gets the profile's diagnosis scale (the hash ignores the rest of
# how a run executes already)
_NOT_THE_EXPERIMENT = ("data_source", "synthetic_per_class", "seed", "autocast")


def diagnosis_scale(config: Config) -> dict:
    """Overrides that put the diagnosis runs at the profile's ablation scale ({} for a config that is not a
    profile's, apart from the fields in _NOT_THE_EXPERIMENT, or where `cvae.ablations` is not available): the
    control and variants then share the ablations' cached runs."""
    from .config import PROFILES, make_config

    keep = {name: getattr(config, name) for name in _NOT_THE_EXPERIMENT}
    for profile in PROFILES:
        if make_config(profile).replace(**keep).config_hash() == config.config_hash():
            try:
                from .ablations import ablation_overrides_for_profile
            except ImportError:  # pragma: no cover - the ablations module is part of the package
                return {}
            return ablation_overrides_for_profile(profile)
    return {}


def run_diagnosis(config: Config, data: MedMNISTData, evaluator: Evaluator, base: dict, run, settings, device,
                  progress: bool) -> dict:
    """Train (or reuse) the control and the diagnosis variants at the ablation scale, measure them, and put them
    beside the main run's numbers; add the findings, the verdict and the fix."""
    scale = diagnosis_scale(config)
    control_config = config.replace(**scale)
    control_data = data if control_config.config_hash() == config.config_hash() else load_data(
        control_config, progress=progress)
    control = _variant_numbers(control_config, control_data, evaluator, settings, device, progress)
    variants = {}
    for name, overrides in DIAGNOSIS_VARIANTS.items():
        variant_config = control_config.replace(**overrides)
        if variant_config.config_hash() == control_config.config_hash():
            continue  # the config already is this variant
        variants[name] = {"overrides": overrides,
                          **_variant_numbers(variant_config, control_data, evaluator, settings, device, progress)}
    baselines = base["baselines"]
    majority = max(baselines["modality_majority"], baselines["modality_chance"])
    diagnosis = {
        "original_quoted": ORIGINAL_AUX_ACCURACY,
        "reproduces_original": bool(base["aux_modality_accuracy"] < majority + MARGIN),
        "base": {k: base[k] for k in ("aux_class_accuracy", "aux_modality_accuracy", "aux_class_accuracy_train_mode",
                                      "aux_modality_accuracy_train_mode", "probe_class_accuracy",
                                      "probe_modality_accuracy", "active_units", "kl_total", "recon_mse",
                                      "conditional_class_accuracy", "conditional_modality_accuracy")},
        "baselines": baselines,
        "batchnorm_gap": {"class": base["aux_class_accuracy_train_mode"] - base["aux_class_accuracy"],
                          "modality": base["aux_modality_accuracy_train_mode"] - base["aux_modality_accuracy"]},
        "posterior_collapse": {"active_units": base["active_units"], "latent_dim": config.latent_dim,
                               "kl_total": base["kl_total"]},
        "loss_scales": loss_scales(run.metrics, config),
        "scale_overrides": scale,
        "control": control,
        "variants": variants,
        "margin": MARGIN,
    }
    findings, verdict, fix = diagnosis_verdict(diagnosis)
    diagnosis.update(findings=findings, verdict=verdict, fix=fix)
    return diagnosis


# --------------------------------------------------------------------------------------------------------------
# orchestration


def evaluation_key(config: Config, settings: EvaluationSettings) -> str:
    """Hash of what the cached evaluation.json depends on beyond the run: evaluator and evaluation settings."""
    payload = {"evaluator": evaluator_hash(config, evaluator_settings_for(config)), "settings": settings.to_dict(),
               "variants": DIAGNOSIS_VARIANTS, "version": EVALUATION_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def _plain(value):
    """Numpy scalars/arrays and tuples -> plain Python, recursively; non-finite floats -> None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return metrics.finite(float(value))
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    return value


def evaluate_run(config: Config, force: bool = False, progress: bool = True, diagnose: bool = True) -> dict:
    """Every evaluation number of the config's run as a plain-JSON dict, cached in `<run>/evaluation.json`.

    Trains the run (and, with `diagnose`, the diagnosis variants) if needed, and trains or reuses the domain
    evaluator in `<runs>/evaluator-<hash>/`. `force` recomputes the evaluation (not the training)."""
    settings = evaluation_settings_for(config, diagnose)
    key = evaluation_key(config, settings)
    started = time.perf_counter()
    path = run_dir_for(config) / EVALUATION_FILE
    if path.exists() and is_finished(path.parent) and not force:
        cached = json.loads(path.read_text())
        if cached.get("evaluation_key") == key:
            return cached  # served without loading the data or the model
    data = load_data(config, progress=progress)
    run_dir = train(config, data=data, progress=progress)
    path = Path(run_dir) / EVALUATION_FILE
    timings = {"train_or_load_run": time.perf_counter() - started}
    device = select_device(config.device)
    run = load_run(run_dir)
    model = run.model("best", device)

    tick = time.perf_counter()
    evaluator_data = data if evaluator_data_config(config).config_hash() == config.config_hash() else None
    evaluator, evaluator_data = load_or_train_evaluator(config, evaluator_data, progress=progress, device=device)
    _, reference_index = split_reference(evaluator_data.train.labels, evaluator.settings)
    reference = evaluator_data.train.subset(reference_index)
    timings["evaluator"] = time.perf_counter() - tick

    tick = time.perf_counter()
    samples = generate_conditional_samples(model, settings.samples_per_class, settings.seed, device)
    result: dict = {
        "profile_config_hash": config.config_hash(), "run": Path(run_dir).name, "evaluation_key": key,
        "synthetic_data": bool(data.synthetic),
        "evaluator_test_accuracy": {**evaluator.summary["test_accuracy"],
                                    "overall": evaluator.summary["test_accuracy_overall"]},
        "evaluator_test_accuracy_overall": evaluator.summary["test_accuracy_overall"],
        "reference_resnet18_28": dict(REFERENCE_RESNET18_28),
        "evaluator": {"folder": evaluator.path.name, "settings": evaluator.settings.to_dict(),
                      "train_images": evaluator.summary["train_images"],
                      "reference_images": evaluator.summary["reference_images"],
                      "test_images": evaluator.summary["test_images"],
                      "train_seconds": evaluator.summary["train_seconds"]},
        "evaluation_settings": settings.to_dict(),
    }
    result.update(generation_metrics(evaluator, samples, data.test, reference, settings, device))
    timings["generation"] = time.perf_counter() - tick

    tick = time.perf_counter()
    result.update(reconstruction_metrics(model, data.test, device))
    timings["reconstruction"] = time.perf_counter() - tick

    tick = time.perf_counter()
    result.update(latent_metrics(model, data, config, settings, device))
    timings["latent"] = time.perf_counter() - tick

    tick = time.perf_counter()
    result.update(augmentation_metrics(samples, data, settings, device, progress, evaluator.settings.width))
    timings["augmentation"] = time.perf_counter() - tick

    if diagnose:
        tick = time.perf_counter()
        base = {**result, "recon_mse": result["recon_mse"]["overall"]}
        result["diagnosis"] = run_diagnosis(config, data, evaluator, base, run, settings, device, progress)
        timings["diagnosis"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started
    result["timings_seconds"] = timings
    result = _plain(result)
    atomic_write_text(path, json.dumps(result, indent=2))
    return result


__all__ = [
    "EvaluationSettings", "evaluation_settings_for", "evaluate_run", "encode_split", "latent_codes",
    "generate_conditional_samples", "reconstruct", "aux_head_accuracy", "generation_metrics",
    "reconstruction_metrics", "latent_metrics", "augmentation_metrics", "run_diagnosis", "diagnosis_verdict",
    "loss_scales", "DIAGNOSIS_VARIANTS", "EVALUATION_FILE",
]


ABLATION_METRICS_FILE = "ablation_metrics.json"


def ablation_metrics(config: Config, progress: bool = False) -> dict:
    """The ablation table's evaluation columns for one config's run, cached in `<run>/ablation_metrics.json`:
    aux and probe accuracy (eval mode, test split), reconstruction PSNR/SSIM (overall), overall domain FID and
    conditional class/modality accuracy of `variant_samples_per_class` samples per class. Uses the profile's evaluator."""
    settings = evaluation_settings_for(config, diagnose=False)
    key = evaluation_key(config, settings)
    path = run_dir_for(config) / ABLATION_METRICS_FILE
    if path.exists() and is_finished(path.parent):
        cached = json.loads(path.read_text())
        if cached.get("evaluation_key") == key:
            return cached
    data = load_data(config, progress=progress)
    device = select_device(config.device)
    evaluator, _ = load_or_train_evaluator(config, None, progress=progress, device=device)
    out = _variant_numbers(config, data, evaluator, settings, device, progress)
    model = load_run(run_dir_for(config)).model("best", device)
    recon = reconstruction_metrics(model, data.test, device)
    images, _, _ = generate_conditional_samples(model, settings.variant_samples_per_class, settings.seed, device)
    fid = metrics.frechet_distance(extract_features(evaluator.model, data.test.images, device),
                                   extract_features(evaluator.model, images, device))
    result = _plain({
        "evaluation_key": key, "recon_psnr": recon["recon_psnr"]["overall"], "recon_ssim": recon["recon_ssim"]["overall"],
        "domain_fid": fid, **{k: out[k] for k in ("aux_class_accuracy", "aux_modality_accuracy", "probe_class_accuracy",
                                                  "probe_modality_accuracy", "conditional_class_accuracy",
                                                  "conditional_modality_accuracy")},
    })
    atomic_write_text(path, json.dumps(result, indent=2))
    return result
