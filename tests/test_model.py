import pytest
import torch

from cvae.core.config import make_config
from cvae.core.model import CVAE, PerceptualNet, count_parameters
from cvae.study.ablations import STANDARD


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CVAE(make_config("full")).eval()


def test_parameter_count_matches_the_original(model):
    assert count_parameters(model) == 1_155_993


def test_perceptual_net_is_frozen_seeded_and_not_counted(model):
    frozen = sum(p.numel() for p in model.perceptual.parameters())
    assert frozen == (16 * 9 + 16) + (32 * 16 * 9 + 32)
    assert all(not p.requires_grad for p in model.perceptual.parameters())
    a, b = PerceptualNet(seed=7), PerceptualNet(seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(PerceptualNet(seed=8).parameters()), next(a.parameters()))
    model.perceptual.train()
    assert not model.perceptual.training


def test_shapes_through_encode_decode_forward_sample(model):
    images = torch.rand(5, 1, 28, 28)
    labels = torch.tensor([0, 8, 9, 16, 20])
    modalities = torch.tensor([0, 0, 1, 1, 2])
    mu, logvar = model.encode(images, labels, modalities)
    assert mu.shape == logvar.shape == (5, 128)
    assert model.decode(mu, labels, modalities).shape == (5, 1, 28, 28)
    out = model(images, labels, modalities)
    assert out.recon.shape == (5, 1, 28, 28) and out.z.shape == (5, 128)
    assert out.class_logits.shape == (5, 21) and out.modality_logits.shape == (5, 3)
    assert 0.0 <= float(out.recon.detach().min()) and float(out.recon.detach().max()) <= 1.0
    samples = model.sample(label=17, modality=2, n=7, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (7, 1, 28, 28)


def test_reparameterize_is_mu_when_variance_vanishes():
    mu = torch.randn(4, 3)
    assert torch.allclose(CVAE.reparameterize(mu, torch.full_like(mu, -60.0)), mu)


@pytest.mark.parametrize("name, parameters", [("latent64", 1_094_425), ("deep", 4_799_257)])
def test_ablation_variants_build_and_run(name, parameters):
    model = CVAE(make_config("full", STANDARD[name])).eval()
    assert count_parameters(model) == parameters
    latent = make_config("full", STANDARD[name]).latent_dim
    out = model(torch.rand(2, 1, 28, 28), torch.tensor([3, 18]), torch.tensor([0, 2]))
    assert out.recon.shape == (2, 1, 28, 28) and out.mu.shape == (2, latent)


def test_unconditioned_encoder_ignores_labels():
    model = CVAE(make_config("full", {"encoder_conditioned": False})).eval()
    images = torch.rand(3, 1, 28, 28)
    mu_a, _ = model.encode(images, torch.tensor([0, 1, 2]), torch.tensor([0, 0, 0]))
    mu_b, _ = model.encode(images, torch.tensor([20, 19, 18]), torch.tensor([2, 2, 2]))
    assert torch.equal(mu_a, mu_b)
