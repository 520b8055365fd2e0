"""Run an ONNX model through ONNX Runtime over whole data sets, batch by batch, on the providers asked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgeq.errors import InputError
from edgeq.runtime.timing import timed_calls

Provider = str | tuple[str, dict[str, Any]]
"""An execution provider by name, or with its options: the two forms ONNX Runtime takes."""

CPU_PROVIDER = "CPUExecutionProvider"
CPU_ONLY: tuple[str, ...] = (CPU_PROVIDER,)

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.str_,
}


def session_options(threads: int = 0, level: str = "all") -> ort.SessionOptions:
    """Session options with a fixed thread count and quiet logging (warnings go to the report)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # errors come back as exceptions; warnings go to the report
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    return options


def provider_name(provider: Provider) -> str:
    """The provider's name, given with options or without."""
    return provider if isinstance(provider, str) else provider[0]


class OrtRunner:
    """An ONNX Runtime session that predicts whole arrays (first axis = samples) in batches.

    It runs on every provider asked for or not at all: ONNX Runtime itself drops a provider it lacks
    (or cannot start) with only a warning, and would then time the CPU under a GPU's name."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        threads: int = 0,
        providers: Sequence[Provider] = CPU_ONLY,
        batch_size: int = 64,
    ) -> None:
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(
            source, sess_options=session_options(threads), providers=list(providers)
        )
        enabled = self.session.get_providers()
        dropped = [provider_name(p) for p in providers if provider_name(p) not in enabled]
        if dropped:
            raise InputError(
                f"ONNX Runtime {ort.__version__} could not enable {', '.join(dropped)} (it has "
                f"{', '.join(ort.get_available_providers())}); not running on {', '.join(enabled)} instead"
            )
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.fixed_batch = fixed_batch(self.inputs.values())
        self.batch_size = self.fixed_batch or batch_size

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
        """All outputs for every sample in `data`, concatenated over batches (see `padded_run`)."""
        count = len(next(iter(data[name] for name in self.inputs)))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for start in range(0, count, self.batch_size):
            for name, value in self.padded_run(self.feeds(data, start, start + self.batch_size)).items():
                parts[name].append(value)
        return {name: np.concatenate(values) for name, values in parts.items()}

    def padded_run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`run`, with a batch shorter than the model's fixed one padded by repeating its first sample
        and the padding's rows cut from every output whose first axis is that batch."""
        rows = len(next(iter(feeds.values()))) if feeds else 0
        missing = (self.fixed_batch or 0) - rows
        if missing <= 0 or rows == 0:
            return self.run(feeds)
        padded = {name: np.concatenate([v, np.repeat(v[:1], missing, axis=0)]) for name, v in feeds.items()}
        outputs = self.run(padded)
        return {k: v[:rows] if v.ndim and len(v) == self.fixed_batch else v for k, v in outputs.items()}

    def timed(self, feeds: Mapping[str, np.ndarray]) -> Callable[[int], list[float]]:
        """A timer over `feeds`: n session calls, each in ms by the host clock (`run` returns on host)."""
        feeds = dict(feeds)
        return lambda runs: timed_calls(lambda: self.session.run(None, feeds), runs)


def fixed_batch(inputs: Iterable[Any]) -> int | None:
    """The batch every call must have: the first dim the model's inputs fix, or None if it is free.

    Exports without dynamic axes (most ONNX files in the wild) fix it, often to 1."""
    dims = [i.shape[0] for i in inputs if i.shape and isinstance(i.shape[0], int) and i.shape[0] > 0]
    return min(dims) if dims else None


def write_optimized(source: Path, out: Path, level: str, *, ort_format: bool = False) -> None:
    """Save `source` as ONNX Runtime's CPU provider optimizes it at `level` (as .ort if asked)."""
    options = session_options(level=level)
    options.optimized_model_filepath = str(out)
    if ort_format:
        options.add_session_config_entry("session.save_model_format", "ORT")
    try:
        ort.InferenceSession(str(source), options, providers=list(CPU_ONLY))
    except Exception as exc:  # ORT raises its own exception types
        raise InputError(f"ONNX Runtime cannot load the model: {str(exc).splitlines()[0]}") from None
