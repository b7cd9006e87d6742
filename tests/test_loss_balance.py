"""The measured loss balance: shares add up, a zero weight contributes nothing, the model is left untouched."""

from __future__ import annotations

import math

import pytest
import torch

from cvae.core.config import make_config
from cvae.core.loss import TERMS, loss_terms
from cvae.core.model import CVAE
from cvae.training.loss_balance import balance_epochs, measure_balance


def _batch(n: int = 16):
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 21, (n,), generator=generator)
    return torch.rand(n, 1, 28, 28, generator=generator), labels, labels.clamp(max=2)


def test_balance_epochs_are_the_start_the_warm_up_end_beta_max_and_the_last_epoch():
    config = make_config("quick")  # 30 epochs, warm-up 4, ramp 20
    assert balance_epochs(config) == {0: "start", 4: "end of warm-up", 24: "beta reaches beta_max",
                                      29: "last epoch"}
    assert balance_epochs(make_config("smoke")) == {0: "start", 1: "end of warm-up", 2: "last epoch"}


def test_shares_sum_to_one_and_match_the_weighted_terms():
    config = make_config("smoke")
    model = CVAE(config)
    images, labels, modalities = _batch()
    rows = measure_balance(model, images, labels, modalities, config, beta=0.05, seed=1)
    assert set(rows) == set(TERMS)
    assert math.isclose(sum(r["share_of_loss"] for r in rows.values()), 1.0, rel_tol=1e-9)
    assert math.isclose(sum(r["share_of_gradient"] for r in rows.values()), 1.0, rel_tol=1e-9)
    assert rows["l1"]["weighted"] == pytest.approx(config.a_l1 * rows["l1"]["value"])
    assert rows["kl"]["weight"] == pytest.approx(0.05)
    # the same forward pass (same seed) gives the same total as loss_terms
    probe = CVAE(config)
    probe.load_state_dict(model.state_dict())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        terms = loss_terms(probe.train()(images, labels, modalities), images, labels, modalities, probe.perceptual,
                           config, 0.05)
    assert sum(r["weighted"] for r in rows.values()) == pytest.approx(float(terms["total"].detach()), rel=1e-5)


def test_a_zero_weight_has_no_share_and_the_model_is_not_changed():
    config = make_config("smoke", {"a_perc": 0.0})
    model = CVAE(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = measure_balance(model, *_batch(), config, beta=0.0)
    assert rows["perceptual"]["share_of_loss"] == 0.0 and rows["perceptual"]["share_of_gradient"] == 0.0
    assert rows["kl"]["share_of_gradient"] == 0.0  # beta = 0 during the warm-up
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm stats included
