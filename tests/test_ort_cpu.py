"""The ONNX Runtime CPU artifact: ORT runs the same kernels from it as from the graph it was compiled
from (the saved level leaves the layout transformations to load time), and it is no larger."""

from __future__ import annotations

import platform
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

from edgeq.backends.ort_cpu import compile_ort_cpu
from edgeq.passes.prepare import prepare_model
from edgeq.targets import load_target

X86 = platform.machine().lower() in ("x86_64", "amd64")


def runtime_graph(model: Path, scratch: Path) -> Counter:
    """The nodes (domain, op, attributes) ORT runs after its level-"all" optimizations at load."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(scratch)
    options.log_severity_level = 3  # the "hardware-specific graph" warning is the point here
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return Counter(
        (n.domain, n.op_type, tuple(sorted(onnx.helper.printable_attribute(a) for a in n.attribute)))
        for n in onnx.load(str(scratch)).graph.node
    )


@pytest.fixture(scope="module")
def cnn(reference_models) -> tuple[Path, dict[str, np.ndarray]]:
    path, data = reference_models["cnn"]
    with np.load(data) as archive:
        return path, {"x": archive["x"]}


def test_the_fp32_artifact_runs_the_input_graphs_kernels(cnn, tmp_path: Path) -> None:
    path, data = cnn
    prepared = prepare_model(onnx.load(str(path)), data)
    artifact = compile_ort_cpu(prepared, load_target("cpu-x86-avx2"), tmp_path / "fp32")
    saved = {n.op_type for n in onnx.load(str(artifact.path)).graph.node}
    assert "FusedConv" in saved  # extended-level fusions are baked in
    want = runtime_graph(path, tmp_path / "input.all.onnx")
    have = runtime_graph(artifact.path, tmp_path / "artifact.all.onnx")
    assert have == want
    if X86:  # ORT's NCHWc layout (MLAS blocked convolutions) is still applied when the artifact loads
        assert any(domain == "com.microsoft.nchwc" for domain, _, _ in have)


def test_an_int8_artifact_keeps_the_runtime_layout_optimizations(cnn, tmp_path: Path) -> None:
    path, data = cnn
    feeds = iter([{"x": data["x"][i : i + 1]} for i in range(16)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(path), str(qdq), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    artifact = compile_ort_cpu(onnx.load(str(qdq)), load_target("cpu-x86-avx2"), tmp_path / "int8")
    want = runtime_graph(qdq, tmp_path / "qdq.all.onnx")
    have = runtime_graph(artifact.path, tmp_path / "artifact.all.onnx")
    assert have == want
    assert any("QLinear" in op for _, op, _ in have)  # ORT ran the int8 kernels, not fp32 ones


def test_the_fp32_artifact_is_no_larger_than_its_input(cnn, tmp_path: Path) -> None:
    """edgeq's shape inference annotates every tensor (value_info) and ORT imports every domain it
    knows; neither is read at load, and neither may make the artifact outgrow the user's model."""
    path, data = cnn
    prepared = prepare_model(onnx.load(str(path)), data)
    assert len(prepared.graph.value_info) > 0
    artifact = compile_ort_cpu(prepared, load_target("cpu-x86-avx2"), tmp_path / "fp32")
    saved = onnx.load(str(artifact.path))
    assert artifact.bytes <= path.stat().st_size
    assert len(saved.graph.value_info) == 0
    used = {n.domain for n in saved.graph.node} | {""}
    assert {o.domain for o in saved.opset_import} <= used
    onnx.checker.check_model(saved)
    session = ort.InferenceSession(str(artifact.path), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = {"x": data["x"][:8]}
    np.testing.assert_allclose(session.run(None, x)[0], reference.run(None, x)[0], rtol=1e-4, atol=1e-5)
