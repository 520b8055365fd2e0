"""Build the bad-input corpus: tiny models, calibration files, recipes and targets, in a tmp dir.

Nothing here is committed as a binary: each builder writes its case under `root` and returns the
path. `tiny_mlp` is the one real model (a 2-layer MLP exported from torch, dynamic batch axis);
the rest are broken copies of it or small graphs made with `onnx.helper`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IN_FEATURES, HIDDEN, OUT_FEATURES = 16, 32, 8
SAMPLES = 64
INPUT = "x"

FAST_TARGET = """\
name: cpu-test-fast
description: the x86 target with latency timing cut to the bone, for tests
runtime: onnxruntime
providers: [CPUExecutionProvider]
quantization:
  int8:
    activations: {signed: false, symmetric: false}
    weights: {signed: true, symmetric: true, per_channel: true, reduce_range: true}
artifact:
  ort_format: false
latency:
  batch_sizes: [1]
  threads: 1
  warmup: 0
  rounds: 1
  seconds_per_round: 0.001
"""


def fast_target(root: Path) -> Path:
    """A target YAML whose latency measurement takes milliseconds (tests time compiles, not models)."""
    path = root / "fast-target.yaml"
    path.write_text(FAST_TARGET)
    return path


def tiny_mlp(root: Path, name: str = "mlp.onnx") -> Path:
    """A 2-layer MLP (Linear-ReLU-Linear) exported from torch with a dynamic batch axis."""
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(IN_FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT_FEATURES)
    ).eval()
    path = root / name
    torch.onnx.export(
        module,
        (torch.randn(2, IN_FEATURES),),
        str(path),
        input_names=[INPUT],
        output_names=["y"],
        dynamic_axes={INPUT: {0: "batch"}, "y": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return path


def _mlp_graph(
    nodes_extra=(),
    opset: int = 17,
    domains=(),
    sizes: tuple[int, int, int] = (IN_FEATURES, HIDDEN, OUT_FEATURES),
) -> onnx.ModelProto:
    """The same MLP built with onnx.helper (Gemm-Relu-Gemm); `nodes_extra` appended after it."""
    rng = np.random.default_rng(0)
    features, hidden, outputs = sizes

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(
            (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32), name
        )

    w1, w2 = weight("w1", hidden, features), weight("w2", outputs, hidden)
    b1 = numpy_helper.from_array(np.zeros(hidden, np.float32), "b1")
    b2 = numpy_helper.from_array(np.zeros(outputs, np.float32), "b2")
    nodes = [
        helper.make_node("Gemm", [INPUT, "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["z"], name="fc2", transB=1),
        *nodes_extra,
    ]
    last = nodes[-1].output[0]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["batch", outputs])],
        [w1, b1, w2, b2],
    )
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 7 if opset < 15 else 8
    return model


def _save(model: onnx.ModelProto, root: Path, name: str) -> Path:
    path = root / name
    onnx.save(model, str(path))
    return path


# --- models --------------------------------------------------------------------------------------


def empty_model(root: Path) -> Path:
    path = root / "empty.onnx"
    path.write_bytes(b"")
    return path


def truncated_model(root: Path) -> Path:
    data = tiny_mlp(root, "whole.onnx").read_bytes()
    path = root / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def png_as_model(root: Path) -> Path:
    """A real PNG header (and some bytes) renamed .onnx."""
    path = root / "picture.onnx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    return path


def text_as_model(root: Path) -> Path:
    path = root / "notes.onnx"
    path.write_text("this is a text file, not a model\n" * 20)
    return path


def _external(root: Path, name: str) -> tuple[onnx.ModelProto, Path]:
    """The MLP with every weight in `name.data`; returns the proto (weights external) and path."""
    folder = root / name
    folder.mkdir()
    model = _mlp_graph()
    path = folder / "model.onnx"
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    return onnx.load(str(path), load_external_data=False), path


WIDE = (256, 2048, 256)


def wide_mlp(root: Path) -> Path:
    """An MLP wide enough that calibrating it on `WIDE_SAMPLES` samples takes seconds."""
    return _save(_mlp_graph(sizes=WIDE), root, "wide.onnx")


def external_data_missing(root: Path) -> Path:
    _, path = _external(root, "missing-data")
    (path.parent / "model.onnx.data").unlink()
    return path


def external_data_escaping(root: Path) -> Path:
    model, path = _external(root, "escaping-data")
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    onnx.save(model, str(path))
    return path


def old_opset(root: Path) -> Path:
    """Opset 7: below edgeq's minimum (onnx_load.MIN_OPSET = 11)."""
    return _save(_mlp_graph(opset=7), root, "opset7.onnx")


def custom_op(root: Path) -> Path:
    """The MLP followed by an op from a custom domain nothing can run."""
    node = helper.make_node("FancyActivation", ["z"], ["y"], name="fancy", domain="com.example")
    return _save(_mlp_graph([node], domains=["com.example"]), root, "custom-op.onnx")


def control_flow_if(root: Path) -> Path:
    """The MLP whose output goes through an If: relu(z) when sum(z) > 0, else -z."""
    then_graph = helper.make_graph(
        [helper.make_node("Relu", ["z"], ["then_y"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, None)],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["z"], ["else_y"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, None)],
    )
    zero = helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.float32(0)))
    nodes = [
        helper.make_node("ReduceSum", ["z"], ["total"], name="total", keepdims=0),
        zero,
        helper.make_node("Greater", ["total", "zero"], ["positive"], name="positive"),
        helper.make_node(
            "If", ["positive"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph
        ),
    ]
    return _save(_mlp_graph(nodes), root, "control-flow-if.onnx")


def control_flow_loop(root: Path) -> Path:
    """The MLP followed by a Loop that adds 1 to the output three times (a scan-like body)."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.float32(1))),
            helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None),
        ],
    )
    nodes = [
        helper.make_node("Constant", [], ["trips"], value=numpy_helper.from_array(np.int64(3))),
        helper.make_node("Constant", [], ["go"], value=numpy_helper.from_array(np.bool_(True))),
        helper.make_node("Loop", ["trips", "go", "z"], ["y"], name="loop", body=body),
    ]
    return _save(_mlp_graph(nodes), root, "control-flow-loop.onnx")


def large_external_model(root: Path, gigabytes: float = 2.1) -> Path:
    """An embedding table (> 2 GB, external data) gathered by index, then a small MatMul head.

    The table file is sparse zeros written through np.memmap: building it costs neither RAM nor
    disk. Only the head is quantizable, so the test exercises loading and saving, not int8 math.
    """
    folder = root / "large"
    folder.mkdir()
    rows = int(gigabytes * 1e9) // (4 * HIDDEN)
    np.memmap(folder / "table.bin", dtype=np.float32, mode="w+", shape=(rows, HIDDEN)).flush()
    table = onnx.TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[rows, HIDDEN])
    table.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "table.bin"), ("offset", "0"), ("length", str(rows * HIDDEN * 4))):
        table.external_data.add(key=key, value=value)
    head = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((HIDDEN, OUT_FEATURES)).astype(np.float32), "head"
    )
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["embedded"], name="embed"),
            helper.make_node("MatMul", ["embedded", "head"], ["y"], name="head"),
        ],
        "large",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", OUT_FEATURES])],
        [table, head],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _save(model, folder, "large.onnx")


def large_model_calib(samples: int = SAMPLES) -> dict[str, np.ndarray]:
    return {"ids": np.random.default_rng(2).integers(0, 1000, samples, dtype=np.int64)}


# --- calibration data ----------------------------------------------------------------------------


def good_calib(samples: int = SAMPLES, features: int = IN_FEATURES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {INPUT: rng.standard_normal((samples, features)).astype(np.float32)}


def write_npz(root: Path, name: str, arrays: dict[str, np.ndarray]) -> Path:
    path = root / name
    np.savez(path, **arrays)
    return path


def calib_cases() -> dict[str, dict[str, np.ndarray]]:
    """Calibration files that must be refused, by case name (all for the tiny MLP)."""
    x = good_calib()[INPUT]
    nan, inf = x.copy(), x.copy()
    nan[3, 2] = np.nan
    inf[5, 1] = np.inf
    return {
        "missing-input": {"labels": np.arange(SAMPLES)},
        "misspelled": {INPUT.upper(): x},
        "misspelled-beside-extra": {"x_": x, "labels": np.arange(SAMPLES)},
        "int-for-float": {INPUT: np.ones((SAMPLES, IN_FEATURES), np.int64)},
        "wrong-rank": {INPUT: x.reshape(SAMPLES, 4, 4)},
        "wrong-shape": {INPUT: x[:, :10]},
        "nan-values": {INPUT: nan},
        "inf-values": {INPUT: inf},
        "zero-samples": {INPUT: np.zeros((0, IN_FEATURES), np.float32)},
        "bool-for-float": {INPUT: np.ones((SAMPLES, IN_FEATURES), bool)},
        "overflows-in-model": {INPUT: np.full((SAMPLES, IN_FEATURES), 3e38, np.float32)},
    }


def constant_calib() -> dict[str, np.ndarray]:
    """Every sample identical and every feature the same value: legal, ranges must still be valid."""
    return {INPUT: np.full((SAMPLES, IN_FEATURES), 0.5, np.float32)}


class Canary:
    """Unpickling this touches `path`: a pickled calib file that gets loaded leaves the trace."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def pickled_calib(root: Path, canary: Path) -> Path:
    """An npz whose array is an object array holding a pickle that would touch `canary`."""
    path = root / "pickled.npz"
    array = np.empty((SAMPLES,), dtype=object)
    array[:] = [Canary(canary)] * SAMPLES
    np.savez(path, x=array)
    assert pickle.dumps(array)  # the file really holds a pickle
    return path


def not_npz(root: Path) -> Path:
    path = root / "calib.npz"
    path.write_text("x,y\n1,2\n")
    return path


def npy_not_npz(root: Path) -> Path:
    """A single array saved with np.save (a .npy), handed over as calibration data."""
    path = root / "array.npy"
    np.save(path, good_calib()[INPUT])
    return path


def truncated_npz(root: Path) -> Path:
    whole = write_npz(root, "whole.npz", good_calib()).read_bytes()
    path = root / "truncated.npz"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def zip_with_text(root: Path) -> Path:
    """A zip archive (so it opens as an npz) whose member is a text file, not a .npy."""
    path = root / "notes.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.txt", "1,2,3\n")
    return path


def corrupt_npz_member(root: Path) -> Path:
    """A compressed npz whose array bytes are damaged (the zip directory is intact)."""
    path = root / "corrupt.npz"
    np.savez_compressed(path, **good_calib())
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return path


def empty_npz(root: Path) -> Path:
    path = root / "nothing.npz"
    np.savez(path)
    return path


NOISY_TASK = '''\
"""A task evaluator that sets off the kinds of warnings libraries emit during a compile."""

import warnings

import numpy as np

from edgeq.measure.tasks import TaskMetric, TaskResult


def evaluate(fp32, compiled, data, **options):
    warnings.warn("noisy evaluator: this API is deprecated", DeprecationWarning, stacklevel=1)
    warnings.warn("noisy evaluator: something looks odd", UserWarning, stacklevel=1)
    np.log(np.zeros(1))  # RuntimeWarning: divide by zero
    return TaskResult("noisy", [TaskMetric("one", 1.0, 1.0)], ["one"])
'''


def noisy_task(root: Path) -> str:
    """Write the warning-emitting evaluator module into `root`; returns its `module:function`."""
    (root / "noisy_task.py").write_text(NOISY_TASK)
    return "noisy_task:evaluate"
