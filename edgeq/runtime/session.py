"""Run an ONNX model through ONNX Runtime over whole data sets, batch by batch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def session_options(threads: int = 0, level: str = "all") -> ort.SessionOptions:
    """Session options with a fixed thread count and quiet logging (warnings go to the report)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    return options


class OrtRunner:
    """An ONNX Runtime session that predicts whole arrays (first axis = samples) in batches."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        threads: int = 0,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        batch_size: int = 64,
    ) -> None:
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(
            source, sess_options=session_options(threads), providers=list(providers)
        )
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.batch_size = batch_size

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    def feeds(self, data: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None):
        """The model's inputs from `data`, sliced to samples [start, stop) and cast to its dtypes."""
        return {
            name: np.ascontiguousarray(data[name][start:stop], dtype=_ORT_TO_NUMPY.get(info.type, np.float32))
            for name, info in self.inputs.items()
        }

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One session call on ready feeds."""
        return dict(zip(self.output_names, self.session.run(self.output_names, dict(feeds)), strict=True))

    def predict(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All outputs for every sample in `data`, concatenated over batches."""
        count = len(next(iter(data[name] for name in self.inputs)))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for start in range(0, count, self.batch_size):
            for name, value in self.run(self.feeds(data, start, start + self.batch_size)).items():
                parts[name].append(value)
        return {name: np.concatenate(values) for name, values in parts.items()}
