"""Tiny real ONNX models, calibration files and brief targets for the cache and sweep tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES, HIDDEN, CLASSES = 16, 32, 4


def tiny_mlp(path: Path, seed: int = 0, hidden: int = HIDDEN) -> Path:
    """Gemm-Relu-Gemm with a dynamic batch axis; `seed` changes only the weights."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(
            (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32), name
        )

    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", CLASSES])],
        [
            weight("w1", hidden, FEATURES),
            weight("b1", hidden),
            weight("w2", CLASSES, hidden),
            weight("b2", CLASSES),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def tiny_calib(path: Path, samples: int = 48, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.standard_normal((samples, FEATURES)).astype(np.float32))
    return path


def brief_target(path: Path, name: str = "cpu-brief") -> Path:
    """The cpu-x86-avx2 conventions with latency timing cut to milliseconds."""
    path.write_text(
        f"name: {name}\n"
        "description: cpu-x86-avx2 conventions, brief latency for tests\n"
        "runtime: onnxruntime\n"
        "providers: [CPUExecutionProvider]\n"
        "quantization:\n"
        "  int8:\n"
        "    activations: {signed: false, symmetric: false}\n"
        "    weights: {signed: true, symmetric: true, per_channel: true, reduce_range: true}\n"
        "artifact:\n"
        "  ort_format: false\n"
        "latency:\n"
        "  batch_sizes: [1]\n"
        "  threads: 1\n"
        "  warmup: 0\n"
        "  rounds: 2\n"
        "  seconds_per_round: 0.002\n"
    )
    return path
