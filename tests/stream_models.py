"""Small real models with the interfaces of issue 21, exported with torch: a GRU voice-activity-style
detector with its state as input/output (batch on axis 1 of the state, like silero-vad), and a
sequence-first model whose batch axis is 1."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch

FEATURES, HIDDEN = 16, 32


class GruDetector(torch.nn.Module):
    """One frame in, a probability and the next state out: x [B, 16], h [1, B, 32] -> y [B, 1], hn."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(FEATURES, HIDDEN)
        self.cell = torch.nn.GRUCell(HIDDEN, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hn = self.cell(torch.relu(self.embed(x)), h[0])
        return torch.sigmoid(self.head(hn)), hn[None]


def activity_streams(streams: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames [streams, frames, 16] of noise with bursts of a louder pattern, and the bursts' 0/1 labels."""
    pattern = np.random.default_rng(0).standard_normal(FEATURES)  # the same "voice" in every data set
    rng = np.random.default_rng(seed)
    labels = np.zeros((streams, frames), np.float32)
    for s in range(streams):
        start = rng.integers(0, frames // 2)
        labels[s, start : start + rng.integers(frames // 4, frames // 2)] = 1.0
    noise = 0.5 * rng.standard_normal((streams, frames, FEATURES))
    x = noise + labels[..., None] * (pattern + 0.3 * rng.standard_normal((streams, frames, FEATURES)))
    return x.astype(np.float32), labels


@functools.cache
def train_detector(steps: int = 60) -> GruDetector:
    """The detector trained (seeded, a second or two; once per process) to flag the bursts, so its
    decisions mean something."""
    torch.manual_seed(0)
    model = GruDetector()
    x, labels = (torch.from_numpy(a) for a in activity_streams(32, 24, seed=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        h, loss = torch.zeros(1, len(x), HIDDEN), 0.0
        for frame in range(x.shape[1]):
            y, h = model(x[:, frame], h)
            loss = loss + torch.nn.functional.binary_cross_entropy(y[:, 0], labels[:, frame])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def export_detector(path: Path, fixed_batch: int | None = None) -> Path:
    """The trained detector as ONNX with dynamic batch (axis 0 of x and y, axis 1 of h and hn), or
    with the batch fixed at `fixed_batch`, as exports without dynamic axes have it."""
    batch = fixed_batch or 2
    example = (torch.zeros(batch, FEATURES), torch.zeros(1, batch, HIDDEN))
    axes = (
        None if fixed_batch else {"x": {0: "batch"}, "h": {1: "batch"}, "y": {0: "batch"}, "hn": {1: "batch"}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            train_detector(), example, str(path), input_names=["x", "h"], output_names=["y", "hn"],
            dynamic_axes=axes, dynamo=False, opset_version=17,
        )  # fmt: skip
    return path


class SequenceFirst(torch.nn.Module):
    """x [T, B, 8] (sequence first, batch on axis 1) -> y [B, 4]: a per-step MLP, pooled over time."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=0)


def export_sequence_first(path: Path) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SequenceFirst().eval(), (torch.randn(6, 2, 8),), str(path), input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {1: "batch"}, "y": {0: "batch"}}, dynamo=False, opset_version=17,
        )  # fmt: skip
    return path
