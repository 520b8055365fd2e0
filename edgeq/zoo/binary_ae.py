"""Binary-latent autoencoder (Binary Latent Diffusion style) on 8x8 digits.

Conv encoder -> 1x1 conv -> sigmoid -> bits -> 1x1 projection -> conv decoder. Training samples
Bernoulli bits with a straight-through estimator; eval (and export) thresholds p > 0.5, since ONNX
Bernoulli is random.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class BinaryAE(nn.Module):
    """8x8 image -> 2x2 cells x `bits_per_cell` bits -> reconstruction in [0, 1]."""

    def __init__(self, bits_per_cell: int = 32, width: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(),
        )
        self.to_logits = nn.Conv2d(width, bits_per_cell, 1)
        self.from_bits = nn.Conv2d(bits_per_cell, width, 1)
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, 1, 3, padding=1),
            nn.Sigmoid(),
        )

    def code_logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.to_logits(self.encoder(image))

    def binarize(self, logits: torch.Tensor) -> torch.Tensor:
        """Bernoulli bits with a straight-through gradient in training; p > 0.5 in eval."""
        p = torch.sigmoid(logits)
        if self.training:
            return torch.bernoulli(p).detach() + p - p.detach()
        return (p > 0.5).to(p.dtype)

    def decode(self, bits: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_bits(bits))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bits, recon, logits): logits expose how close each bit is to flipping."""
        logits = self.code_logits(image)
        bits = self.binarize(logits)
        return bits, self.decode(bits), logits


class BitEncoder(nn.Module):
    """The encoder half of a `BinaryAE` (image -> bits), exported on its own as encoder.onnx."""

    def __init__(self, autoencoder: BinaryAE) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.binarize(self.autoencoder.code_logits(image))


def load_binary_ae(path: str | Path) -> BinaryAE:
    """The eval-mode autoencoder from a state_dict checkpoint (loaded with weights_only=True)."""
    model = BinaryAE()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()
