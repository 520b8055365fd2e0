"""Run a TensorRT engine like `OrtRunner` does; its `timed` clocks executions with CUDA events on its
own stream, so the one interleaved loop (`runtime.timing.measure_interleaved`) times engines too.

GPU buffers, the stream and the events come from torch.cuda (a dependency of edgeq already), so no
second CUDA binding is needed. Host clocks would time the launch, not the kernels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.errors import InputError
from edgeq.runtime.timing import LatencyEntry, Timer, measure_interleaved


@dataclass(frozen=True)
class TensorInfo:
    """An engine input: shape as built (-1 on dynamic axes) and numpy dtype."""

    shape: tuple[int, ...]
    dtype: type


class TensorRTRunner:
    """A deserialized engine with one execution context; predicts whole arrays in batches."""

    def __init__(self, plan: str | Path | bytes, *, batch_size: int = 64) -> None:
        import tensorrt as trt
        import torch

        if not torch.cuda.is_available():
            raise InputError("running a TensorRT engine needs an NVIDIA GPU visible to torch.cuda")
        self._trt, self._torch = trt, torch
        blob = plan if isinstance(plan, bytes) else Path(plan).read_bytes()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            raise InputError(
                "TensorRT cannot load the engine: it was built by another TensorRT "
                "version or for another GPU; rebuild it with `edgeq build-engine`"
            )
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = {
            n: TensorInfo(
                tuple(self.engine.get_tensor_shape(n)),
                np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))).type,
            )
            for n in names
            if is_input[n]
        }
        self.output_names = [n for n in names if not is_input[n]]
        self.batch_size = min(batch_size, self._max_batch())
        self._buffers: dict[str, object] = {}

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    def feeds(self, data: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None):
        """The engine's inputs from `data`, sliced to samples [start, stop) and cast to its dtypes."""
        return {
            name: np.ascontiguousarray(data[name][start:stop], dtype=info.dtype)
            for name, info in self.inputs.items()
        }

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One engine execution on ready feeds, outputs copied back to the host."""
        self._bind(feeds)
        self._execute()
        self.stream.synchronize()
        return {name: self._buffers[name].cpu().numpy() for name in self.output_names}

    def predict(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All outputs for every sample in `data`, concatenated over batches."""
        count = len(data[self.input_names[0]])
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for start in range(0, count, self.batch_size):
            for name, value in self.run(self.feeds(data, start, start + self.batch_size)).items():
                parts[name].append(value)
        return {name: np.concatenate(values) for name, values in parts.items()}

    def timed(self, feeds: Mapping[str, np.ndarray]) -> Timer:
        """Bind `feeds` once; the returned timer clocks n executions in ms with CUDA events."""
        self._bind(feeds)
        cuda = self._torch.cuda

        def time_runs(runs: int) -> list[float]:
            samples = []
            for _ in range(runs):
                start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
                start.record(self.stream)
                self._execute()
                end.record(self.stream)
                end.synchronize()
                samples.append(start.elapsed_time(end))
            return samples

        return time_runs

    def _bind(self, feeds: Mapping[str, np.ndarray]) -> None:
        torch = self._torch
        for name, value in feeds.items():
            tensor = torch.from_numpy(np.ascontiguousarray(value)).to("cuda", non_blocking=False)
            self._buffers[name] = tensor
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise InputError(
                    f"input {name!r} shape {tuple(tensor.shape)} is outside the "
                    "engine's optimization profile; rebuild with a wider batch range"
                )
            self.context.set_tensor_address(name, tensor.data_ptr())
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InputError(f"output {name!r} has a data-dependent shape; not supported")
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
            tensor = torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, device="cuda")
            self._buffers[name] = tensor
            self.context.set_tensor_address(name, tensor.data_ptr())

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise InputError("TensorRT failed to execute the engine (see its log above)")

    def _max_batch(self) -> int:
        """The largest batch every input's optimization profile accepts."""
        limits = [
            self.engine.get_tensor_profile_shape(name, 0)[2][0]
            for name, info in self.inputs.items()
            if info.shape and info.shape[0] < 0
        ]
        return min(limits, default=next(iter(self.inputs.values())).shape[0])


def measure_engines(
    fp32: TensorRTRunner,
    compiled: TensorRTRunner,
    data: Mapping[str, np.ndarray],
    *,
    batch: int,
    warmup: int,
    rounds: int,
    seconds_per_round: float,
) -> LatencyEntry:
    """Both engines through the one interleaved timing loop, each clocked by its CUDA events."""
    stats = measure_interleaved(
        {"fp32": fp32, "compiled": compiled},
        data,
        batch=batch,
        warmup=warmup,
        rounds=rounds,
        seconds_per_round=seconds_per_round,
    )
    return LatencyEntry(batch, 0, rounds, stats["fp32"], stats["compiled"])
