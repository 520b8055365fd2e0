"""Run a torch model over whole data sets with the same `predict` interface as `OrtRunner`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn


class TorchPredictor:
    """Batches `data[input_names]` through an eval-mode model; outputs keyed by `output_names`.

    Lets the task evaluators score a fake-quant torch model exactly as they score an ONNX session.
    """

    def __init__(
        self, model: nn.Module, input_names: Sequence[str], output_names: Sequence[str], batch_size: int = 256
    ) -> None:
        self.model = model
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.batch_size = batch_size

    def predict(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(data[self.input_names[0]])
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        self.model.eval()
        with torch.no_grad():
            for start in range(0, count, self.batch_size):
                args = [
                    torch.from_numpy(
                        np.ascontiguousarray(data[name][start : start + self.batch_size], dtype=np.float32)
                    )
                    for name in self.input_names
                ]
                outputs = self.model(*args)
                outputs = outputs if isinstance(outputs, tuple | list) else (outputs,)
                for name, value in zip(self.output_names, outputs, strict=True):
                    parts[name].append(value.numpy())
        return {name: np.concatenate(values) for name, values in parts.items()}
