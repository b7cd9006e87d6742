"""Stacked models (vmap) keep their own initialisation and step, and the side-by-side measurement reports its ratios."""

from __future__ import annotations

import pytest
import torch

from cvae.core.config import make_config
from cvae.core.model import CVAE
from cvae.training.stacking import StackedModels, measure_together, random_batches

TINY = {"encoder_channels": (8, 16, 32), "hidden_dim": 64, "latent_dim": 16, "class_embed_dim": 16,
        "modality_embed_dim": 8}


def test_each_stacked_model_starts_as_built_alone_and_takes_its_own_first_adam_step():
    config = make_config("smoke", TINY)
    stacked = StackedModels(config, seeds=[3, 4])
    before = {name: value.detach().clone() for name, value in stacked.params.items()}
    for k, seed in enumerate([3, 4]):
        torch.manual_seed(seed)
        alone = CVAE(config)
        for name, value in alone.named_parameters():
            if not name.startswith("perceptual."):
                assert torch.equal(before[name][k], value.detach()), name
    totals = stacked.step(*random_batches(1, models=2)[0])
    assert totals.shape == (2,) and torch.isfinite(totals).all() and totals[0] != totals[1]
    for name, value in stacked.params.items():
        change = (value.detach() - before[name]).abs()
        # Adam's first step moves each weight by at most lr (m / sqrt(v) = g / |g|), weight decay included
        assert change.max() <= config.lr * 1.001, name
        if name.endswith("weight"):
            assert (change.flatten(1) > 0).any(1).all(), name  # both models moved


@pytest.mark.slow
def test_the_together_measurement_reports_both_ratios():
    result = measure_together(make_config("smoke", TINY), None, steps=2, repeats=1, models=2, workers=2)
    assert result["stacked_models"] == 2 and result["side_by_side_workers"] == 2
    assert result["stacked_speedup"] == pytest.approx(result["stacked_samples_per_s"] / result["alone_samples_per_s"])
    assert result["side_by_side_speedup"] > 0 and len(result["together_rounds"]["side_by_side"]) == 1


def test_the_performance_chapter_states_how_the_study_trains_and_what_it_gains(monkeypatch):
    from cvae.report import performance

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    measured = {"side_by_side_workers": 2, "side_by_side_speedup": 1.249, "stacked_models": 4, "stacked_speedup": 0.54}
    assert performance.study_workers_sentence("quick", measured) == (
        "The study trains its runs 2 at a time, one process per core with one thread each. In the benchmark "
        "on this machine, 2 such processes trained 1.25x the samples per second of one run on every core. Stacking 4 "
        "models in one process with vmap gave 0.54x.")
    assert performance.study_workers_sentence("smoke", {}).startswith("The study trains its runs one after another.")
