"""The conditional VAE of the original report, its auxiliary heads and the frozen perceptual CNN."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cvae.core.config import Config
from cvae.core.labels import registry

_BOTTLENECK = 3  # spatial size after three stride-2 convs: 28 -> 14 -> 7 -> 3


class CVAEOutput(NamedTuple):
    """What `CVAE.forward` returns; images (B,1,28,28) in [0,1], latents (B,latent_dim), logits (B,21)/(B,3)."""

    recon: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    class_logits: torch.Tensor
    modality_logits: torch.Tensor


def _conv_block(c_in: int, c_out: int, extra: int) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
    for _ in range(extra):
        layers += [nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
    return layers


def _deconv_block(c_in: int, c_out: int, extra: int, output_padding: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(extra):
        layers += [nn.Conv2d(c_in, c_in, 3, 1, 1), nn.BatchNorm2d(c_in), nn.LeakyReLU(0.2)]
    layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, output_padding=output_padding), nn.BatchNorm2d(c_out),
               nn.LeakyReLU(0.2)]
    return layers


def _head(widths: list[int], dropouts: list[float]) -> nn.Sequential:
    """MLP head: Linear + BatchNorm1d + LeakyReLU + Dropout for each hidden layer, then a Linear to the logits."""
    layers: list[nn.Module] = []
    for (w_in, w_out), p in zip(zip(widths[:-2], widths[1:-1]), dropouts):
        layers += [nn.Linear(w_in, w_out), nn.BatchNorm1d(w_out), nn.LeakyReLU(0.2), nn.Dropout(p)]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


class PerceptualNet(nn.Module):
    """Frozen, untrained CNN of the original: (B,1,28,28) -> (B,32,7,7) features; seeded so runs repeat."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(7)
        )
        torch.random.set_rng_state(generator_state)  # building the net leaves the caller's random stream alone
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "PerceptualNet":
        return super().train(False)  # always frozen

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


class CVAE(nn.Module):
    """Conditional VAE with class (21) and modality (3) embeddings shared by encoder and decoder."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        c1, c2, c3 = config.encoder_channels
        extra = config.extra_convs_per_stage
        self.latent_dim = config.latent_dim
        datasets = registry(config.datasets)
        self.class_embedding = nn.Embedding(datasets.num_classes, config.class_embed_dim)
        self.modality_embedding = nn.Embedding(datasets.num_modalities, config.modality_embed_dim)
        condition_dim = config.class_embed_dim + config.modality_embed_dim
        flat_dim = c3 * _BOTTLENECK * _BOTTLENECK

        self.encoder_convs = nn.Sequential(
            *_conv_block(1, c1, extra), *_conv_block(c1, c2, extra), *_conv_block(c2, c3, extra), nn.Flatten()
        )
        self.encoder_conditioned = config.encoder_conditioned
        encoder_in = flat_dim + (condition_dim if config.encoder_conditioned else 0)
        self.encoder_hidden = nn.Sequential(nn.Linear(encoder_in, config.hidden_dim), nn.LeakyReLU(0.2))
        self.to_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.to_logvar = nn.Linear(config.hidden_dim, config.latent_dim)

        self.decoder_hidden = nn.Sequential(
            nn.Linear(config.latent_dim + condition_dim, config.hidden_dim), nn.LeakyReLU(0.2),
            nn.Linear(config.hidden_dim, flat_dim), nn.LeakyReLU(0.2),
        )
        self.decoder_convs = nn.Sequential(
            *_deconv_block(c3, c2, extra, output_padding=1),  # 3 -> 7
            *_deconv_block(c2, c1, extra, output_padding=0),  # 7 -> 14
            *[m for _ in range(extra) for m in (nn.Conv2d(c1, c1, 3, 1, 1), nn.BatchNorm2d(c1), nn.LeakyReLU(0.2))],
            nn.ConvTranspose2d(c1, 1, 4, 2, 1),  # 14 -> 28
            nn.Sigmoid(),
        )
        self._bottleneck_channels = c3
        # The original's class head reads "64 -> 128 -> 64 -> 21"; only a latent-wide input reproduces its count.
        self.class_head = _head([config.latent_dim, 128, 64, datasets.num_classes], [0.3, 0.2])
        self.modality_head = _head([config.latent_dim, 64, datasets.num_modalities], [0.3])
        self.perceptual = PerceptualNet(config.perceptual_seed)

    def condition(self, labels: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """(B,) global labels and (B,) modality ids -> (B, class_embed_dim + modality_embed_dim)."""
        return torch.cat([self.class_embedding(labels), self.modality_embedding(modalities)], dim=1)

    def encode(self, images: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor):
        """(B,1,28,28) images in [0,1] -> (mu, logvar), each (B, latent_dim)."""
        features = self.encoder_convs(images)  # (B, c3*3*3)
        if self.encoder_conditioned:
            features = torch.cat([features, self.condition(labels, modalities)], dim=1)  # (B, c3*3*3 + 192)
        hidden = self.encoder_hidden(features)
        return self.to_mu(hidden), self.to_logvar(hidden)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I); (B, latent_dim)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) latents and conditions -> (B,1,28,28) images in [0,1]."""
        hidden = self.decoder_hidden(torch.cat([z, self.condition(labels, modalities)], dim=1))
        return self.decoder_convs(hidden.view(-1, self._bottleneck_channels, _BOTTLENECK, _BOTTLENECK))

    def forward(self, images: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor) -> CVAEOutput:
        """Encode, sample z, decode, and classify mu with both auxiliary heads."""
        mu, logvar = self.encode(images, labels, modalities)
        z = self.reparameterize(mu, logvar)
        recon = self.decode(z, labels, modalities)
        return CVAEOutput(recon, mu, logvar, z, self.class_head(mu), self.modality_head(mu))

    @torch.no_grad()
    def sample(self, label: int, modality: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n,1,28,28) in [0,1] for one global class and its modality, z drawn from the prior."""
        device = self.class_embedding.weight.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        labels = torch.full((n,), int(label), dtype=torch.long, device=device)
        modalities = torch.full((n,), int(modality), dtype=torch.long, device=device)
        return self.decode(z, labels, modalities)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the frozen perceptual CNN is excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
