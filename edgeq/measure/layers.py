"""Per-layer damage: where along the graph the quantized model's activations drift from fp32."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import onnx

from edgeq.data import take
from edgeq.graph.edit import with_outputs
from edgeq.quant.primitives import sqnr_db
from edgeq.runtime.session import OrtRunner


@dataclass(frozen=True)
class LayerDamage:
    """SQNR of what a node reads and writes vs fp32; `own_sqnr_db` is the noise it adds itself.

    Noise powers add: own = −10·log10(10^(−out/10) − 10^(−in/10)), the SQNR this layer would
    have if it alone were quantized. The lowest own SQNR is the first culprit.
    """

    name: str
    op_type: str
    tensor: str
    precision: str
    sqnr_in_db: float
    sqnr_db: float

    @property
    def own_sqnr_db(self) -> float:
        if math.isnan(self.sqnr_in_db) or math.isnan(self.sqnr_db):
            return float("nan")
        added = 10 ** (-self.sqnr_db / 10) - 10 ** (-self.sqnr_in_db / 10)
        return float("inf") if added <= 0 else -10 * math.log10(added)

    def to_dict(self) -> dict:
        return asdict(self) | {"own_sqnr_db": self.own_sqnr_db}


def layer_damage(
    fp32: onnx.ModelProto,
    quantized: onnx.ModelProto,
    nodes: Mapping[str, str],
    data: Mapping[str, np.ndarray],
    max_samples: int = 128,
) -> list[LayerDamage]:
    """Rank the given nodes ({name: precision}) by the noise they add, worst first.

    The quantized graph runs in ONNX Runtime with the probed tensors exposed, so this is the QDQ
    graph's arithmetic, not the fused artifact's; headline fidelity is measured on the artifact.
    Nodes keep their names through the QDQ rewrite, so each is found in both graphs.
    """
    reference_nodes = {n.name: n for n in fp32.graph.node}
    quantized_nodes = {n.name: n for n in quantized.graph.node}
    pairs = [
        (reference_nodes[name], quantized_nodes[name])
        for name in nodes
        if name in reference_nodes and name in quantized_nodes and reference_nodes[name].input
    ]
    if not pairs:
        return []
    count = len(next(iter(data.values())))
    subset = take(data, np.arange(min(count, max_samples)), count)
    present = {t for n in quantized.graph.node for t in n.output} | {i.name for i in quantized.graph.input}
    read = [(r, *_ends(r, q)) for r, q in pairs]
    reference = _probe(fp32, [t for r, _, _ in read for t in (r.input[0], r.output[0])], subset)
    candidate = _probe(quantized, [t for _, *ends in read for t in ends if t in present], subset)
    damages = [
        LayerDamage(
            r.name,
            r.op_type,
            r.output[0],
            nodes[r.name],
            _sqnr(reference.get(r.input[0]), candidate.get(q_in)),
            _sqnr(reference.get(r.output[0]), candidate.get(q_out)),
        )
        for r, q_in, q_out in read
    ]
    return sorted(damages, key=lambda d: _rank(d.own_sqnr_db))


def _ends(reference: onnx.NodeProto, quantized: onnx.NodeProto) -> tuple[str, str]:
    """The quantized graph's tensors a layer reads and writes: the node's own where it is still the
    same op (static QDQ: it reads the dequantized input, whose noise is its own), else the fp32
    node's names, which a lowering into another form keeps at its ends (a per-token MatMul's node
    reads uint8 codes and writes the product before the rows' max|x| rescale it: against them every
    per-token layer read -55 dB in and no layer ranked). A lowering that took in the bias Add writes
    the Add's output instead: that layer is not probed (NaN, ranked last)."""
    if quantized.op_type == reference.op_type:
        return quantized.input[0], quantized.output[0]
    return reference.input[0], reference.output[0]


def _rank(value: float) -> float:
    return math.inf if math.isnan(value) else value


def _probe(model: onnx.ModelProto, tensors: list[str], data) -> dict[str, np.ndarray]:
    """Values of the requested tensors, exposed as extra graph outputs."""
    return OrtRunner(with_outputs(model, sorted(set(tensors))).SerializeToString()).predict(data)


def _sqnr(want: np.ndarray | None, have: np.ndarray | None) -> float:
    if want is None or have is None or want.dtype.kind != "f" or want.shape != have.shape:
        return float("nan")
    return sqnr_db(want, have)
