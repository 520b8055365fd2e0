"""Run an ONNX model through ONNX Runtime over whole data sets, batch by batch, on the providers asked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgeq.errors import InputError
from edgeq.runtime.roles import InputRoles, default_roles, from_call, roles_in_metadata, to_call
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
    """An ONNX Runtime session that predicts whole arrays (axis 0 = samples) in batches, feeding each
    input by its role (see `edgeq.runtime.roles`): constants added, samples moved to the declared
    batch axis, streams run frame by frame with their state carried.

    It runs on every provider asked for or not at all: ONNX Runtime itself drops a provider it lacks
    (or cannot start) with only a warning, and would then time the CPU under a GPU's name."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        threads: int = 0,
        providers: Sequence[Provider] = CPU_ONLY,
        batch_size: int = 64,
        roles: InputRoles | None = None,
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
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.roles = roles or roles_in_metadata(metadata, list(self.inputs))
        self.fixed_batch = fixed_batch(self.inputs.values(), self.roles)
        self.batch_size = self.fixed_batch or batch_size if self.roles.batched else 1

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    def feeds(self, data: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None, frame: int = 0):
        """One call's inputs for samples [start, stop) of `data`, cast to the model's dtypes: each by
        its role; for streams, frame `frame` with the streams' initial state."""
        roles, streaming = self.roles.inputs, self.roles.streaming
        feeds = {}
        for name, info in self.inputs.items():
            role = roles[name]
            if role.constant is not None:
                value = role.constant
            else:
                samples = data[name][start:stop]
                value = to_call(role, samples[:, frame] if streaming and not role.state_from else samples)
            feeds[name] = np.ascontiguousarray(value, dtype=_ORT_TO_NUMPY.get(info.type, np.float32))
        return feeds

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One session call on ready feeds."""
        return dict(zip(self.output_names, self.session.run(self.output_names, dict(feeds)), strict=True))

    def calls(self, data: Mapping[str, np.ndarray], start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
        """The outputs of every call samples [start, stop) take: one call, or for streams one per
        frame, each state input given the output it is carried from on the frame before."""
        feeds = self.feeds(data, start, stop)
        if not self.roles.streaming:
            yield self.padded_run(feeds)
            return
        states = {name: role.state_from for name, role in self.roles.inputs.items() if role.state_from}
        frames = next(
            data[n].shape[1] for n, r in self.roles.inputs.items() if not r.state_from and r.constant is None
        )
        outputs = self.padded_run(feeds)
        yield outputs
        for frame in range(1, frames):
            carried = {name: outputs[source] for name, source in states.items()}
            outputs = self.padded_run(self.feeds(data, start, stop, frame) | carried)
            yield outputs

    def predict(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All outputs for every sample in `data` (axis 0 = samples; for streams [streams, frames, ...])."""
        count = len(next(iter(data[name] for name in self.inputs)))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for start in range(0, count, self.batch_size):
            calls = list(self.calls(data, start, min(start + self.batch_size, count)))
            for name in self.output_names:
                values = [from_call(call[name], self.roles.output_axis(name)) for call in calls]
                parts[name].append(np.stack(values, axis=1) if self.roles.streaming else values[0])
        return {name: np.concatenate(values) for name, values in parts.items()}

    def padded_run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`run`, with a batch shorter than the model's fixed one padded by repeating its first sample
        and the padding's rows cut from every output whose batch axis holds that batch."""
        batched = {
            n: r.batch_axis for n, r in self.roles.inputs.items() if r.batch_axis is not None and n in feeds
        }
        name, axis = next(iter(batched.items()), (None, None))
        rows = feeds[name].shape[axis] if name is not None else 0
        missing = (self.fixed_batch or 0) - rows
        if missing <= 0 or rows == 0:
            return self.run(feeds)
        padded = dict(feeds)
        for name, axis in batched.items():
            first = np.take(feeds[name], [0], axis=axis)
            padded[name] = np.concatenate([feeds[name], np.repeat(first, missing, axis=axis)], axis=axis)
        outputs = self.run(padded)
        cut = {}
        for name, value in outputs.items():
            axis = self.roles.output_axis(name) or 0
            keep = value.ndim > axis and value.shape[axis] == self.fixed_batch
            cut[name] = np.take(value, range(rows), axis=axis) if keep else value
        return cut

    def timed(self, feeds: Mapping[str, np.ndarray]) -> Callable[[int], list[float]]:
        """A timer over `feeds`: n session calls, each in ms by the host clock (`run` returns on host)."""
        feeds = dict(feeds)
        return lambda runs: timed_calls(lambda: self.session.run(None, feeds), runs)


def fixed_batch(inputs: Iterable[Any], roles: InputRoles | None = None) -> int | None:
    """The batch every call must have: the smallest size the model's inputs fix on their batch axes,
    or None if it is free. Exports without dynamic axes (most ONNX files in the wild) fix it, often to 1."""
    inputs = list(inputs)
    roles = roles or default_roles([i.name for i in inputs])
    dims = []
    for info in inputs:
        role = roles.inputs.get(info.name)
        axis = None if role is None or role.constant is not None else role.batch_axis
        if (
            axis is not None
            and len(info.shape) > axis
            and isinstance(info.shape[axis], int)
            and info.shape[axis] > 0
        ):
            dims.append(info.shape[axis])
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
