"""Torch modules: architectures re-declared from packages that ship their weights, and small shape probes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PNet(nn.Module):
    """MTCNN proposal net (facenet-pytorch): fully convolutional face/no-face + box regression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """MTCNN refine net (facenet-pytorch): 24x24 face candidates to score + box."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """MTCNN output net (facenet-pytorch): 48x48 faces to score, box and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


class Crepe(nn.Module):
    """CREPE pitch tracker (torchcrepe): 1024 samples at 16 kHz to 360 pitch-bin probabilities."""

    WIDTHS = {"tiny": [1, 128, 16, 16, 16, 32, 64], "full": [1, 1024, 128, 128, 128, 256, 512]}

    def __init__(self, size: str) -> None:
        super().__init__()
        widths = self.WIDTHS[size]
        self.in_features = widths[-1] * 4
        for i in range(6):
            kernel, stride = ((512, 1), (4, 1)) if i == 0 else ((64, 1), (1, 1))
            setattr(self, f"conv{i + 1}", nn.Conv2d(widths[i], widths[i + 1], kernel, stride))
            setattr(self, f"conv{i + 1}_BN", nn.BatchNorm2d(widths[i + 1], eps=0.0010000000474974513))
        self.classifier = nn.Linear(self.in_features, 360)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio[:, None, :, None]
        for i in range(1, 7):
            padding = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)
            conv, norm = getattr(self, f"conv{i}"), getattr(self, f"conv{i}_BN")
            x = F.max_pool2d(norm(F.relu(conv(F.pad(x, padding)))), (2, 1), (2, 1))
        x = x.permute(0, 2, 1, 3).reshape(-1, self.in_features)
        return torch.sigmoid(self.classifier(x))


class ResidualMLP(nn.Module):
    """y = o(relu(x + Linear(x, bias=False))): the bias-free residual block that broke edgeq."""

    def __init__(self, width: int = 256, classes: int = 10) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width, bias=False)
        self.o = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(torch.relu(x + self.inner(x)))


class LSTMTagger(nn.Module):
    """Token ids (int64) to per-token tags through an embedding and a bidirectional LSTM."""

    def __init__(self, vocab: int, width: int = 128, tags: int = 17) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * width, tags)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(input_ids))[0])


class GRUDenoiser(nn.Module):
    """Log-spectrogram frames to a per-bin gain mask through a GRU (an RNNoise-style speech enhancer)."""

    def __init__(self, bins: int = 129, width: int = 96) -> None:
        super().__init__()
        self.inp = nn.Linear(bins, width)
        self.gru = nn.GRU(width, width, num_layers=2, batch_first=True)
        self.out = nn.Linear(width, bins)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.gru(torch.tanh(self.inp(frames)))[0]))


class MaskedPooler(nn.Module):
    """Features plus a bool padding mask: masked mean pooling then an MLP (a bool model input)."""

    def __init__(self, width: int = 64, out: int = 32) -> None:
        super().__init__()
        self.proj = nn.Linear(width, 128)
        self.head = nn.Linear(128, out)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.proj(features)) * mask.unsqueeze(-1).to(features.dtype)
        pooled = hidden.sum(1) / mask.sum(1, keepdim=True).clamp(min=1).to(features.dtype)
        return self.head(pooled)


class ControlFlow(nn.Module):
    """A scripted loop (ONNX Loop) whose trip count depends on the data, then a data-dependent If."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.step = nn.Linear(width, width)
        self.small = nn.Linear(width, 8)
        self.large = nn.Linear(width, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = (x.abs().mean() * 4).clamp(1, 6).long()  # int64 first: Loop wants an int64 trip count
        for _ in range(int(steps)):
            x = x + torch.tanh(self.step(x))
        if bool(x.mean() > 0):
            return self.large(x)
        return self.small(x)
