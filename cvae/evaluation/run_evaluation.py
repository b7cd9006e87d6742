"""Evaluation of trained runs, orchestrated and cached: every number of the evaluation chapters in one JSON file.

`evaluate_run(config)` trains the config's run if needed, trains or reuses the domain evaluator
(`cvae.evaluation.domain_evaluator`), computes every number of the sampling, reconstructions, latent and augmentation chapters
(`cvae.evaluation.run_metrics`, `cvae.evaluation.augmentation`), writes them to `<run>/evaluation.json` (atomically; reused unless `force`
or the evaluation settings changed) and returns the same plain-JSON dict.

`variant_metrics(config)` is its cheaper sibling for the study's runs (`cvae.study.runner`: ablations, seeds, weight search,
the aux-head diagnosis): one pass over the variant's own test subset for reconstruction, latent probes and heads, and
one batch of samples for the domain FID and conditional accuracy, all judged by the *profile's* evaluator (never one
trained for the variant's smaller data), cached in `<run>/variant_metrics.json`. What the notebooks call to show the
things the numbers summarise (`latent_codes`, `generate_conditional_samples`, `reconstruct`, ...) lives in
`cvae.evaluation.inference`.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from cvae.core.config import Config, require_paper_datasets
from cvae.core.labels import DATASETS, MODALITY_OF_CLASS
from cvae.core.original import REFERENCE_RESNET18_28
from cvae.core.paths import EVALUATION_FILE, VARIANT_METRICS_FILE, file_digest, json_digest, runs_dir, source_digest
from cvae.data.loading import MedMNISTData, Split, load_data
from cvae.evaluation import metric_math
from cvae.evaluation.augmentation import augmentation_by_fraction, augmentation_metrics
from cvae.evaluation.domain_evaluator import (EVALUATOR_SUMMARY, Evaluator, evaluator_data_config, evaluator_hash,
                                              evaluator_settings_for, extract_features, load_or_train_evaluator,
                                              predict, split_reference)
from cvae.evaluation.inference import generate_conditional_samples
from cvae.evaluation.run_metrics import (EvaluationSettings, evaluation_settings_for, generation_metrics,
                                         latent_metrics, loss_scales, reconstruction_metrics)
from cvae.training.precision import select_device
from cvae.training.runs import KEPT_CHECKPOINT, atomic_write_text, is_finished, load_run, run_dir_for
from cvae.training.train import train

# the modules whose code computes an evaluation: a change to any of them recomputes every cached evaluation
EVALUATION_MODULES = ("evaluation.run_evaluation", "evaluation.run_metrics", "evaluation.metric_math",
                      "evaluation.domain_evaluator", "evaluation.inference", "evaluation.augmentation", "core.model",
                      "data.loading", "data.synthetic")
DIGEST_KEY = "content_sha256"  # a cached result's digest of its own content: an edited file is recomputed


def evaluation_key(config: Config, settings: EvaluationSettings, evaluator_config: Config | None = None) -> str:
    """Hash of what a cached evaluation depends on beyond the run: the evaluator and the evaluation settings."""
    judge = evaluator_config or config
    payload = {"evaluator": evaluator_hash(judge, evaluator_settings_for(judge)), "settings": settings.to_dict(),
               "code": source_digest(EVALUATION_MODULES)}
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
        return metric_math.finite(float(value))
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    return value


def _cached(path: Path, key: str) -> dict | None:
    """The cached result at `path` when it is current: same key (evaluator, settings, code), its content unedited,
    and computed from the checkpoint now in the run folder; else None (it is recomputed, never trusted)."""
    if not (path.exists() and is_finished(path.parent)):
        return None
    try:
        cached = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(cached, dict) or cached.get("evaluation_key") != key:
        return None
    content = {k: v for k, v in cached.items() if k != DIGEST_KEY}
    checkpoint = path.parent / KEPT_CHECKPOINT
    judge = runs_dir() / str(cached.get("evaluator_folder")) / EVALUATOR_SUMMARY
    if cached.get(DIGEST_KEY) != json_digest(content) or not checkpoint.exists() or \
            cached.get("checkpoint_sha256") != file_digest(checkpoint, "sha256") or not judge.is_file() or \
            cached.get("evaluator_summary_sha256") != file_digest(judge, "sha256"):
        return None  # edited, or the run or the evaluator that judged it was trained again since
    return cached


def _store(path: Path, result: dict, evaluator: Evaluator) -> dict:
    """Write a result with the digests of the checkpoint it measured, of the evaluator that judged it (its summary,
    rewritten whenever it is trained) and of its own content; returns what it wrote."""
    result = {**result, "checkpoint_sha256": file_digest(path.parent / KEPT_CHECKPOINT, "sha256"),
              "evaluator_folder": evaluator.path.name,
              "evaluator_summary_sha256": file_digest(evaluator.path / EVALUATOR_SUMMARY, "sha256")}
    result[DIGEST_KEY] = json_digest(result)
    atomic_write_text(path, json.dumps(result, indent=2))
    return result


def evaluate_run(config: Config, force: bool = False, progress: bool = True) -> dict:
    """Every evaluation number of the config's run as a plain-JSON dict, cached in `<run>/evaluation.json`.

    Trains the run if needed, and trains or reuses the domain evaluator in `<runs>/evaluator-<hash>/`. `force`
    recomputes the evaluation (not the training)."""
    require_paper_datasets(config, "the evaluation")
    settings = evaluation_settings_for(config)
    key = evaluation_key(config, settings)
    started = time.perf_counter()
    path = run_dir_for(config) / EVALUATION_FILE
    if not force and (cached := _cached(path, key)) is not None:
        return cached  # served without loading the data or the model
    data = load_data(config, progress=progress)
    run_dir = train(config, data=data, progress=progress)
    path = Path(run_dir) / EVALUATION_FILE
    timings = {"train_or_load_run": time.perf_counter() - started}
    device = select_device(config.device)
    run = load_run(run_dir)
    model = run.model("kept", device)

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
        "evaluator_test_accuracy_by_class": evaluator.summary["test_accuracy_by_class"],
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
    result.update(reconstruction_metrics(model, data.test, device, class_means_from=data.train))
    timings["reconstruction"] = time.perf_counter() - tick

    tick = time.perf_counter()
    result.update(latent_metrics(model, data, config, settings, device))
    result["loss_scales"] = loss_scales(run.metrics, config)
    timings["latent"] = time.perf_counter() - tick

    tick = time.perf_counter()
    result.update(augmentation_metrics(samples, data, settings, device, progress, evaluator.settings.width))
    result["augmentation_by_fraction"] = augmentation_by_fraction(
        samples, data, settings.fraction_classifier_steps, settings.fraction_seeds, device=device,
        width=settings.fraction_classifier_width, progress=progress)
    timings["augmentation"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started
    result["timings_seconds"] = timings
    return _store(path, _plain(result), evaluator)


_TEST_FEATURES: dict[tuple, torch.Tensor] = {}  # (evaluator folder, test labels digest) -> features, per process


def _real_features(evaluator: Evaluator, split: Split, device) -> torch.Tensor:
    """The evaluator's features of a real split, computed once per process for every variant sharing it."""
    digest = hashlib.sha256(split.labels.numpy().tobytes() + split.images[:64].numpy().tobytes()).hexdigest()
    key = (str(evaluator.path), len(split), digest)
    if key not in _TEST_FEATURES:
        if len(_TEST_FEATURES) >= 2:
            _TEST_FEATURES.clear()  # the validation and test splits of one seed at a time: the study loops by seed
        _TEST_FEATURES[key] = extract_features(evaluator.model, split.images, device)
    return _TEST_FEATURES[key]


def cached_variant_metrics(config: Config, evaluator_config: Config | None = None) -> dict | None:
    """`variant_metrics` of a finished run when its cache is current, without loading data or models; else None."""
    judge = evaluator_config or config
    return _cached(run_dir_for(config) / VARIANT_METRICS_FILE,
                   evaluation_key(config, evaluation_settings_for(config), judge))


def variant_metrics(config: Config, data: MedMNISTData | None = None, evaluator: Evaluator | None = None,
                    evaluator_config: Config | None = None, progress: bool = False) -> dict:
    """The study's numbers of one run, cached in `<run>/variant_metrics.json`: reconstruction MSE/PSNR/SSIM (test,
    overall) and the SSIM gain over the class-mean image (the learning gate), validation PSNR and FID (the weight
    search's criteria), aux heads in eval and train mode, linear probes on mu, active units, loss scales, and, from
    `variant_samples_per_class` samples per class, the domain FID against the test split and the conditional
    class/modality accuracy, with the seconds the measurement took. `evaluator` (else the one of `evaluator_config`,
    else the config's own) judges the samples: the study passes the book's main configuration, so every variant is
    judged by the same evaluator as the main run."""
    require_paper_datasets(config, "the study's evaluation")
    if (cached := cached_variant_metrics(config, evaluator_config)) is not None:
        return cached
    settings = evaluation_settings_for(config)
    judge = evaluator_config or config
    key = evaluation_key(config, settings, judge)
    path = run_dir_for(config) / VARIANT_METRICS_FILE
    started = time.perf_counter()
    data = data or load_data(config, progress=progress)
    device = select_device(config.device)
    if evaluator is None:
        evaluator, _ = load_or_train_evaluator(judge, None, progress=progress, device=device)
    run = load_run(train(config, data=data, progress=progress))
    model = run.model("kept", device)
    recon = reconstruction_metrics(model, data.test, device, class_means_from=data.train)
    out = {key_: recon[key_]["overall"] for key_ in ("recon_mse", "recon_psnr", "recon_ssim")}
    gain = recon["recon_ssim_gain_over_class_mean"]["overall"]
    out["recon_ssim_gain"], out["recon_ssim_gain_low"] = gain["mean"], gain["low"]
    for flag in DATASETS:  # the learning gate reads each modality's interval over its classes
        out[f"recon_ssim_gain_low_{flag}"] = recon["recon_ssim_gain_over_class_mean"][flag]["low"]
    out["val_recon_psnr"] = reconstruction_metrics(model, data.val, device)["recon_psnr"]["overall"]  # the search's
    out.update(latent_metrics(model, data, config, settings, device, light=True))
    images, labels, modalities = generate_conditional_samples(model, settings.variant_samples_per_class,
                                                              settings.seed, device)
    predicted = predict(evaluator.model, images, device)
    out["conditional_class_accuracy"] = metric_math.accuracy(predicted, labels.numpy())
    out["conditional_modality_accuracy"] = metric_math.accuracy(np.asarray(MODALITY_OF_CLASS)[predicted],
                                                            modalities.numpy())
    by_modality = metric_math.grouped_accuracy(predicted, labels.numpy(), modalities.numpy())
    out.update({f"conditional_class_accuracy_{DATASETS[m]}": rate for m, rate in by_modality.items()})
    sample_features = extract_features(evaluator.model, images, device)
    out["domain_fid"] = metric_math.frechet_distance(_real_features(evaluator, data.test, device), sample_features)
    out["val_domain_fid"] = metric_math.frechet_distance(_real_features(evaluator, data.val, device), sample_features)
    out["loss_scales"] = loss_scales(run.metrics, config)
    result = _plain({"evaluation_key": key, "run": run.path.name, "evaluator": evaluator.path.name, **out,
                     "eval_seconds": time.perf_counter() - started})
    return _store(path, result, evaluator)


__all__ = ["EVALUATION_FILE", "EVALUATION_MODULES", "VARIANT_METRICS_FILE", "evaluation_key", "evaluate_run",
           "variant_metrics", "cached_variant_metrics"]
