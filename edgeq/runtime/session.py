"""Run an ONNX model through ONNX Runtime over whole data sets, batch by batch, on the providers asked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgeq.errors import InputError
from edgeq.runtime.roles import InputRoles, roles_in_metadata
from edgeq.runtime.runner import BatchRunner
from edgeq.runtime.timing import Timer, timed_calls

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
    """Session options with a fixed thread count and quiet logging (warnings go to the report).

    The worker threads stop spinning when a call returns: an idle session's spinning workers
    otherwise hold the cores for ~50 ms after its last call, so the next session timed beside it ran
    its first calls 1.5-2.5x slow (all-MiniLM-L6-v2, batch 1, 2 threads, AMD Zen 4), and its own
    back-to-back latency wandered 10-16 ms between runs where the stopped form read 10.6-11.0."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.force_spinning_stop", "1")
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


class OrtRunner(BatchRunner):
    """An ONNX Runtime session that predicts whole arrays (axis 0 = samples) in batches, each input fed
    by its role.

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
        self.dtypes = {name: _ORT_TO_NUMPY.get(info.type, np.float32) for name, info in self.inputs.items()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.set_roles(roles or roles_in_metadata(metadata, list(self.inputs)), batch_size)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One session call on ready feeds."""
        return dict(zip(self.output_names, self.session.run(self.output_names, dict(feeds)), strict=True))

    def timed(self, feeds: Mapping[str, np.ndarray]) -> Timer:
        """A timer over `feeds`: n session calls, each in ms by the host clock (`run` returns on host)."""
        feeds = dict(feeds)
        return lambda runs: timed_calls(lambda: self.session.run(None, feeds), runs)


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
