"""Ordinary torch models exported to ONNX the way a user would, for end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeq.frontend.torch_export import export_torch


class SmallCNN(nn.Module):
    """Conv-BatchNorm-ReLU blocks, max pooling, global average pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class SmallEncoder(nn.Module):
    """A transformer encoder (attention, LayerNorm, GELU-free FFN) pooled to an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(16, 64)
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


def small_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def _randomize_batchnorm(module: nn.Module) -> None:
    """Non-trivial running statistics, so folding BatchNorm is really exercised."""
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)


REFERENCE_MODELS = {
    "mlp": (small_mlp, (32,)),
    "cnn": (SmallCNN, (3, 16, 16)),
    "encoder": (SmallEncoder, (12, 16)),
}


def build_reference(name: str, folder: Path, samples: int = 96) -> tuple[Path, Path]:
    """Export reference model `name` to folder/name.onnx with calibration data folder/name.npz."""
    factory, shape = REFERENCE_MODELS[name]
    torch.manual_seed(0)
    module = factory().eval()
    with torch.no_grad():
        _randomize_batchnorm(module)
    model, _ = export_torch(module, torch.randn(4, *shape), input_names=["x"], output_names=["y"])
    onnx_path, data_path = folder / f"{name}.onnx", folder / f"{name}.npz"
    onnx.save(model, onnx_path)
    rng = np.random.default_rng(0)
    np.savez(data_path, x=rng.standard_normal((samples, *shape)).astype(np.float32))
    return onnx_path, data_path
