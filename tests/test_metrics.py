"""Every metric function on inputs whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cvae.evaluation import metric_math
from cvae.evaluation.domain_evaluator import (DomainClassifier, EvaluatorSettings, FeatureExtractor, extract_features,
                                              per_class_accuracy, per_dataset_accuracy, split_reference)


def _features(n=400, d=16, shift=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=generator, dtype=torch.float64) + shift


def test_frechet_distance_identical_sets_is_zero_and_shifted_sets_are_far():
    real = _features()
    assert metric_math.frechet_distance(real, real.clone()) == pytest.approx(0.0, abs=1e-6)
    # two samples of the same distribution: small (finite-sample bias only)
    same = metric_math.frechet_distance(real, _features(seed=1))
    # a mean shift of 3 in each of 16 dimensions adds |shift|^2 = 16 * 9 = 144 to the distance
    shifted = metric_math.frechet_distance(real, _features(seed=1, shift=3.0))
    assert same < 3.0
    assert shifted == pytest.approx(144.0 + same, rel=0.05)


def test_frechet_distance_with_the_evaluator_as_torchmetrics_feature_module_matches_precomputed_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(0)
    model = DomainClassifier().eval()
    real, fake = torch.rand(64, 1, 28, 28), torch.rand(64, 1, 28, 28) * 0.5
    metric = FrechetInceptionDistance(feature=FeatureExtractor(model), normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    direct = float(metric.compute())
    via_features = metric_math.frechet_distance(extract_features(model, real), extract_features(model, fake))
    assert via_features == pytest.approx(direct, rel=1e-4, abs=1e-6)


def test_kernel_distance_identical_near_zero_shifted_large_and_seeded():
    real = _features()
    mean, std = metric_math.kernel_distance(real, real.clone(), subset_size=100, subsets=20)
    assert abs(mean) < 0.05 and std >= 0
    far, _ = metric_math.kernel_distance(real, _features(seed=1, shift=3.0), subset_size=100, subsets=20)
    assert far > 10.0
    # subset size larger than the sets is clipped; the same seed repeats exactly
    a = metric_math.kernel_distance(real, _features(seed=2), subset_size=10_000, subsets=5, seed=3)
    b = metric_math.kernel_distance(real, _features(seed=2), subset_size=10_000, subsets=5, seed=3)
    assert a == b


def test_accuracy_perfect_is_one_and_shuffled_labels_give_chance():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 21, size=21_000)
    assert metric_math.accuracy(labels, labels) == 1.0
    shuffled = rng.permutation(labels)
    assert metric_math.accuracy(shuffled, labels) == pytest.approx(1 / 21, abs=0.01)
    assert metric_math.chance_accuracy(21) == pytest.approx(1 / 21)
    with pytest.raises(ValueError):
        metric_math.accuracy([1, 2], [1])


def test_grouped_and_majority_accuracy():
    predictions = np.array([0, 0, 1, 1, 2, 2])
    targets = np.array([0, 1, 1, 1, 2, 0])
    groups = np.array([0, 0, 1, 1, 2, 2])
    assert metric_math.grouped_accuracy(predictions, targets, groups) == {0: 0.5, 1: 1.0, 2: 0.5}
    # the training majority is class 2; on a test set with two 2s out of five, majority accuracy is 0.4
    assert metric_math.majority_accuracy([2, 2, 2, 0, 1], [2, 2, 0, 1, 1]) == pytest.approx(0.4)


def test_psnr_and_ssim_of_identical_images_are_the_cap_and_one():
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.all(metric_math.psnr_per_image(images, images) == metric_math.PSNR_CAP_DB)
    assert torch.allclose(metric_math.ssim_per_image(images, images), torch.ones(4), atol=1e-5)
    assert torch.all(metric_math.mse_per_image(images, images) == 0)


def test_psnr_and_mse_of_a_known_noise_case_match_the_hand_computation():
    images = torch.full((2, 1, 28, 28), 0.5)
    noisy = images.clone()
    noisy[:, :, ::2, :] += 0.1  # 14 of 28 rows off by 0.1, the rest exact: MSE = 0.5 * 0.01 = 0.005
    mse = metric_math.mse_per_image(noisy, images)
    assert torch.allclose(mse, torch.full((2,), 0.005), rtol=1e-4)
    expected_db = 10 * math.log10(1.0 / 0.005)  # 23.01 dB
    assert torch.allclose(metric_math.psnr_per_image(noisy, images), torch.full((2,), expected_db), atol=1e-3)
    scores = metric_math.reconstruction_scores(noisy, images)
    assert scores["psnr"] == pytest.approx(expected_db, abs=1e-3)
    assert 0 < scores["ssim"] < 1


def test_ssim_falls_with_noise():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 28, 28, generator=generator)
    light = (images + 0.02 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    heavy = (images + 0.3 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    assert float(metric_math.ssim_per_image(light, images).mean()) > float(metric_math.ssim_per_image(heavy, images).mean())


def test_silhouette_is_high_on_separated_clusters_and_near_zero_on_random_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 200)
    centres = np.array([[0, 0], [20, 0], [0, 20]], dtype=float)
    points = centres[labels] + rng.normal(size=(600, 2))
    assert metric_math.silhouette(points, labels) > 0.8
    assert abs(metric_math.silhouette(points, rng.permutation(labels))) < 0.1


def test_kl_per_dimension_and_active_units():
    n = 1000
    mu = torch.zeros(n, 4)
    logvar = torch.zeros(n, 4)
    mu[:, 0] = 1.0  # KL 0.5 nats
    mu[:, 1] = 0.2  # KL 0.02 nats
    mu[:, 2] = 0.1  # KL 0.005 nats: below the 0.01 threshold
    kl = metric_math.mean_kl_per_dimension(mu, logvar)
    assert kl == pytest.approx([0.5, 0.02, 0.005, 0.0], abs=1e-9)
    assert metric_math.active_units(kl) == 2
    assert metric_math.active_units(kl, threshold=0.001) == 3
    assert metric_math.active_units([0.0] * 8) == 0


def test_linear_probe_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=900)
    features = rng.normal(size=(900, 8))
    features[:, 0] += 6 * labels  # class encoded along one direction
    assert metric_math.linear_probe_accuracy(features[:600], labels[:600], features[600:], labels[600:]) > 0.98
    noise = rng.normal(size=(900, 8))
    assert metric_math.linear_probe_accuracy(noise[:600], labels[:600], noise[600:], labels[600:]) < 0.5


def test_split_reference_is_disjoint_stratified_and_capped():
    labels = torch.arange(21).repeat_interleave(50)
    train_index, reference_index = split_reference(labels, EvaluatorSettings(train_per_class=30, reference_per_class=10))
    assert len(set(train_index.tolist()) & set(reference_index.tolist())) == 0
    assert torch.bincount(labels[reference_index], minlength=21).tolist() == [10] * 21
    assert torch.bincount(labels[train_index], minlength=21).tolist() == [30] * 21


def test_per_dataset_accuracy_of_a_perfect_classifier_is_one():
    from cvae.core.labels import MODALITY_OF_CLASS
    from cvae.data.loading import Split

    labels = torch.arange(21).repeat(3)
    split = Split(torch.zeros(63, 28, 28, dtype=torch.uint8), labels, torch.tensor(MODALITY_OF_CLASS)[labels])
    assert per_dataset_accuracy(labels.numpy(), split) == {"pathmnist": 1.0, "tissuemnist": 1.0, "octmnist": 1.0}


def test_per_class_accuracy_counts_each_class_among_its_own_images():
    labels = np.array([0, 0, 0, 0, 5, 5, 20])
    predictions = np.array([0, 0, 0, 3, 5, 0, 20])  # class 0: 3 of 4, class 5: 1 of 2, class 20: 1 of 1
    accuracy = per_class_accuracy(predictions, labels)
    assert len(accuracy) == 21
    assert (accuracy[0], accuracy[5], accuracy[20]) == (0.75, 0.5, 1.0)
    assert accuracy[1] is None and sum(value is None for value in accuracy) == 18


def test_finite_maps_non_finite_to_none():
    assert metric_math.finite(1.5) == 1.5
    assert metric_math.finite(float("inf")) is None and metric_math.finite(float("nan")) is None
