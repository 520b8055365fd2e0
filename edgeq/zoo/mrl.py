"""Matryoshka (MRL) image encoder on scikit-learn digits: every embedding prefix is usable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

NESTED_DIMS = (8, 16, 32, 64, 128)


def digits_split(test_size: int = 600, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Digits, float32 [N, 1, 8, 8] in [0, 1] and int64 labels: (x_train, x_test, y_train, y_test).

    One fixed stratified split shared by every digits model, so held-out data is never trained on.
    """
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    return tuple(
        train_test_split(
            images,
            digits.target.astype(np.int64),
            test_size=test_size,
            random_state=seed,
            stratify=digits.target,
        )
    )


class MRLEncoder(nn.Module):
    """Conv+BN+ReLU trunk, then an over-wide ReLU MLP (room for channel merging) to the embedding.

    `heads` (one linear classifier per nested dim) exist for the Matryoshka loss only; `forward`
    returns the raw embedding, which is what gets exported.
    """

    def __init__(
        self,
        embed_dim: int = 128,
        hidden: tuple[int, int] = (512, 256),
        dims: tuple[int, ...] = NESTED_DIMS,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.dims = dims
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], embed_dim),
        )
        self.heads = nn.ModuleList(nn.Linear(m, num_classes) for m in dims)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.features(image)

    def matryoshka_loss(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sum over nested dims m of the cross-entropy of head_m on the first m dims."""
        return sum(
            nn.functional.cross_entropy(head(embedding[:, :m]), labels)
            for m, head in zip(self.dims, self.heads, strict=True)
        )


def load_mrl_encoder(path: str | Path) -> MRLEncoder:
    """The eval-mode encoder from a state_dict checkpoint (loaded with weights_only=True)."""
    model = MRLEncoder()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()
