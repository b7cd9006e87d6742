import math
from pathlib import Path

import pytest
import torch

from cvae.core.config import LOSS_WEIGHTS, make_config
from cvae.core.loss import beta_at, kl_per_dimension, loss_terms
from cvae.core.model import CVAEOutput, PerceptualNet


@pytest.mark.parametrize("epoch, expected", [(0, 0.0), (19, 0.0), (20, 0.0), (70, 0.5), (119, 0.99), (120, 1.0),
                                             (150, 1.0)])
def test_beta_schedule_at_its_breakpoints(epoch, expected):
    assert beta_at(epoch, beta_max=1.0, warmup_epochs=20, ramp_epochs=100) == pytest.approx(expected)


def test_beta_schedule_scales_with_beta_max():
    assert beta_at(70, beta_max=0.1) == pytest.approx(0.05)


def test_kl_of_standard_normal_is_zero_and_known_value():
    assert torch.equal(kl_per_dimension(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))
    # KL(N(1, e^1) || N(0,1)) = 0.5 * (1 + e - 1 - 1)
    value = kl_per_dimension(torch.tensor([[1.0]]), torch.tensor([[1.0]]))
    assert float(value) == pytest.approx(0.5 * (1 + math.e - 1 - 1))


def test_every_term_against_a_hand_computation():
    config = make_config("full", {"a_mse": 2.0, "a_l1": 3.0, "a_perc": 5.0, "gamma": 7.0})
    images = torch.zeros(2, 1, 28, 28)
    recon = torch.zeros(2, 1, 28, 28)
    recon[0, 0, 0, :4] = 0.5  # sample 0: four pixels off by 0.5
    recon[1, 0, 5, 5] = 1.0  # sample 1: one pixel off by 1
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.zeros(2, 2)
    class_logits = torch.zeros(2, 21)  # uniform: CE = ln 21
    modality_logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    output = CVAEOutput(recon, mu, logvar, mu, class_logits, modality_logits)
    perceptual = PerceptualNet(seed=0)
    terms = loss_terms(output, images, torch.tensor([0, 20]), torch.tensor([0, 2]), perceptual, config, beta=0.25)

    mse = (4 * 0.25 + 1.0) / 2  # per-sample sums, batch mean
    l1 = (4 * 0.5 + 1.0) / 2
    kl = (0.5 * 1.0 + 0.5 * 4.0) / 2
    class_ce = math.log(21)
    modality_ce = (-math.log(math.exp(10) / (math.exp(10) + 2)) + math.log(3)) / 2
    perc = float(((perceptual(recon) - perceptual(images)) ** 2).sum() / 2)
    assert float(terms["mse"]) == pytest.approx(mse)
    assert float(terms["l1"]) == pytest.approx(l1)
    assert float(terms["kl"]) == pytest.approx(kl)
    assert float(terms["class_ce"]) == pytest.approx(class_ce, rel=1e-6)
    assert float(terms["modality_ce"]) == pytest.approx(modality_ce, rel=1e-6)
    assert float(terms["perceptual"]) == pytest.approx(perc, rel=1e-6)
    assert perc > 0
    total = 2 * mse + 3 * l1 + 5 * perc + 0.25 * kl + 7 * (class_ce + modality_ce)
    assert float(terms["total"]) == pytest.approx(total, rel=1e-6)


def test_the_loss_terms_are_one_registry_that_weights_titles_and_messages_read():
    import dataclasses

    from cvae.core.config import Config, make_config
    from cvae.core.loss import (LOSS_TERMS, RECONSTRUCTION_TERMS, TERM_SHORT_NAMES, TERM_TITLES, TERMS, term_weights,
                                weight_settings)
    from cvae.training.failures import divergence_record

    config = make_config("smoke", {"a_mse": 2.0, "a_l1": 3.0, "a_perc": 0.5, "gamma": 7.0, "beta_max": 0.25})
    assert TERMS == ("mse", "l1", "perceptual", "kl", "class_ce", "modality_ce")
    assert term_weights(config, 0.125) == {"mse": 2.0, "l1": 3.0, "perceptual": 0.5, "kl": 0.125, "class_ce": 7.0,
                                           "modality_ce": 7.0}
    assert weight_settings(config) == "a_mse 2, a_l1 3, a_perc 0.5, beta_max 0.25, gamma 7"
    assert RECONSTRUCTION_TERMS == ("mse", "l1", "perceptual")
    assert set(TERM_TITLES) == {*TERMS, "total"} and tuple(TERM_SHORT_NAMES) == TERMS
    fields = {field.name for field in dataclasses.fields(Config)}
    assert {term.weight for term in LOSS_TERMS} <= fields
    # config validates the weights without importing torch: its list must be the registry's, in the registry's order
    assert tuple(dict.fromkeys(term.weight for term in LOSS_TERMS)) == LOSS_WEIGHTS
    record = divergence_record(config, Path("runs/run-x"), 3, "the loss was nan", 2)
    assert "(a_mse 2, a_l1 3, a_perc 0.5, beta_max 0.25, gamma 7)" in record["fix"]
