"""The benchmark: its keys and identities, a FLOP count checked by hand, the conventional pipeline, the cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from cvae.core.config import make_config
from cvae.core.labels import CLASS_OFFSETS, CLASSES_PER_DATASET, DATASETS
from cvae.core.model import CVAE
from cvae.data.loading import rgb_to_gray
from cvae.training import bench

REQUIRED_KEYS = ("conventional_samples_per_s", "project_samples_per_s", "speedup", "flops_per_sample",
                 "achieved_gflops", "matmul_gflops", "utilization", "data_fraction", "peak_memory_mb", "device",
                 "date", "torch", "device_name")


def hand_counted_training_flops_per_sample(config) -> int:
    """FLOPs of one training step per sample, counted from layer shapes (2 x multiply-accumulates), not by torch.

    Forward: every Conv2d / ConvTranspose2d / Linear of the CVAE once, the frozen perceptual CNN twice (on the
    reconstruction and on the input). Backward: the trained layers twice their forward (input and weight
    gradients) except the first convolution, whose input needs no gradient; the perceptual CNN once, for the
    gradient with respect to the reconstruction only.
    """
    model = CVAE(config)
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            if isinstance(module, nn.Linear):
                macs = module.in_features * module.out_features
            elif isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                macs = output.shape[1] * output.shape[2] * output.shape[3] * module.in_channels * k
            else:  # ConvTranspose2d: every input pixel scatters a k x k x c_out block
                k = module.kernel_size[0] * module.kernel_size[1]
                macs = inputs[0].shape[1] * inputs[0].shape[2] * inputs[0].shape[3] * module.out_channels * k
            counts[name] = counts.get(name, 0) + 2 * macs
        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            module.register_forward_hook(hook(name))
    model.eval()
    with torch.no_grad():
        images = torch.rand(1, 1, 28, 28)
        output = model(images, torch.tensor([0]), torch.tensor([0]))
        model.perceptual(output.recon)
        model.perceptual(images)
    perceptual = sum(v for k, v in counts.items() if k.startswith("perceptual."))
    trained = sum(v for k, v in counts.items() if not k.startswith("perceptual."))
    first_conv = counts["encoder_convs.0"]
    return trained * 3 - first_conv + perceptual // 2 * 3


def test_hand_count_matches_the_design_number():
    flops = hand_counted_training_flops_per_sample(make_config("smoke"))
    assert flops == 55_860_608  # 13.18 MFLOP forward of the CVAE, 5.50 MFLOP per perceptual pass
    assert abs(flops / 56e6 - 1) < 0.01


def test_flop_counter_agrees_with_the_hand_count():
    config = make_config("smoke")
    torch.manual_seed(0)
    model = CVAE(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = (torch.rand(8, 1, 28, 28), torch.randint(0, 21, (8,)), torch.randint(0, 3, (8,)))
    assert bench.training_flops(model, optimizer, batch, config) == 8 * hand_counted_training_flops_per_sample(config)


def test_benchmark_reports_consistent_numbers(stand_in_dir, runs_dir):
    result = bench.run_benchmark(profile="smoke", repeats=2, steps=1, warmup=0, data_dir=stand_in_dir,
                                 matmul_size=256, overrides={"autocast": "bf16"})
    for key in REQUIRED_KEYS:
        assert key in result, key
    assert result["device"] == "cpu" and result["batch_size"] == 256
    assert result["speedup"] == pytest.approx(result["project_samples_per_s"] / result["conventional_samples_per_s"])
    assert result["utilization"] == pytest.approx(result["achieved_gflops"] / result["matmul_gflops"])
    assert result["precision"] == "bf16-autocast"  # so the bf16 matmul ceiling is measured as well
    assert result["utilization_vs_bf16_matmul"] == pytest.approx(result["achieved_gflops"]
                                                                 / result["matmul_bf16_gflops"])
    assert result["achieved_gflops"] == pytest.approx(result["flops_per_sample"] * result["project_samples_per_s"]
                                                      / 1e9)
    assert result["flops_per_sample"] == hand_counted_training_flops_per_sample(make_config("smoke"))
    assert 0 <= result["data_fraction"] <= 1 and 0 <= result["conventional_data_fraction"] <= 1
    assert result["project_samples_per_s"] > 0 and result["conventional_samples_per_s"] > 0
    assert result["peak_memory_mb"] > 0
    assert len(result["samples"]["project_samples_per_s"]) == 2
    project_rates = result["samples"]["project_samples_per_s"]
    assert result["project_samples_per_s"] == pytest.approx(float(np.median(project_rates)))
    saved = json.loads((runs_dir / "benchmark.json").read_text())  # cached for the book
    assert saved["project_samples_per_s"] == pytest.approx(result["project_samples_per_s"])
    table = bench.format_table(result)
    assert "speedup" in table and "utilization" in table and "cpu" in table


def test_load_or_run_returns_the_cache_without_running(runs_dir, monkeypatch):
    settings = bench._throughput_settings(make_config("smoke"))
    cached = {"profile": "smoke", "project_samples_per_s": 123.0, "date": "2026-01-01T00:00:00+00:00",
              "device": "cpu", "torch": torch.__version__, "settings": settings}
    bench.save_benchmark(cached)
    monkeypatch.setattr(bench, "run_benchmark", lambda **kwargs: pytest.fail("should have used the cache"))
    assert bench.load_or_run_benchmark(profile="smoke") == cached


def test_load_or_run_measures_again_when_the_cached_settings_differ(runs_dir, monkeypatch):
    stale = bench._throughput_settings(make_config("smoke", {"autocast": "none", "channels_last": False}))
    bench.save_benchmark({"profile": "smoke", "project_samples_per_s": 123.0, "settings": stale})
    monkeypatch.setattr(bench, "run_benchmark", lambda **kwargs: {"fresh": True})
    assert bench.load_or_run_benchmark(profile="smoke") == {"fresh": True}


def test_save_writes_nan_as_null(runs_dir):
    path = bench.save_benchmark({"speedup": math.nan, "profile": "smoke"})
    assert json.loads(path.read_text())["speedup"] is None


def test_conventional_loader_yields_global_labels_and_gray_images(stand_in_dir):
    loader = bench.conventional_loader(stand_in_dir, batch_size=64, seed=0)
    images, targets = next(iter(loader))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    labels, modalities = targets[:, 0], targets[:, 1]
    for modality, flag in enumerate(DATASETS):
        mine = labels[modalities == modality]
        assert ((mine >= CLASS_OFFSETS[flag]) & (mine < CLASS_OFFSETS[flag] + CLASSES_PER_DATASET[flag])).all()
    assert len(loader.dataset) == 840  # __len__ is the file's size, not medmnist's official one
    # PIL's gray conversion (per-sample transform) agrees with the project's luma within one grey level
    path_dataset = loader.dataset.datasets[0]
    rgb = path_dataset.imgs[:16]
    per_sample = torch.stack([path_dataset[i][0] for i in range(16)])[:, 0]
    assert (per_sample * 255 - torch.from_numpy(rgb_to_gray(rgb)).float()).abs().max() <= 1.0
