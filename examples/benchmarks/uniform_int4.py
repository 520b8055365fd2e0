"""Uniform 4-bit weights, round-to-nearest vs GPTQ, with the embedding table in 4 or 8 bits.

    python examples/benchmarks/uniform_int4.py ~/.cache/edgeq-wild/minilm_l6_ts

Every MatMul with a constant weight becomes MatMulNBits (blocks of 32, accuracy_level 1 = fp32
compute or 4 = int8 compute), the Gather tables GatherBlockQuantized (4 bits) or int8 rows; each
variant is judged on the compile's held-out split (cosine, neighbour recall@10, top-1) with its
bytes, and the 4-bit-table variants are timed at batch 1 interleaved with fp32.
"""

from __future__ import annotations

import sys
from pathlib import Path

import onnx

from edgeq.data import load_npz, split
from edgeq.graph.ops import LINEAR_OPS
from edgeq.passes.prepare import prepare_model
from edgeq.quant.int4 import lower_to_matmul_nbits, quantize_embeddings, set_accuracy_level
from edgeq.quant.layer_inputs import input_second_moments, planned_layers
from edgeq.quant.plan import ensure_node_names, plan_int8
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import measure_interleaved, speedup
from edgeq.targets import load_target

sys.path.insert(0, str(Path(__file__).parent))
from layer_precision import output_metrics  # noqa: E402


def main(folder: Path) -> None:
    calib = load_npz(folder / "calib.npz")
    calibration, evaluation = split(calib, len(next(iter(calib.values()))), 0.5)
    prepared = prepare_model(onnx.load(folder / "model.onnx"))
    ensure_node_names(prepared)
    static = plan_int8(prepared, load_target("cpu-x86-avx2").quantization.int8)
    layers = [q for q in planned_layers(prepared, static) if q.op_type in LINEAR_OPS]
    names = [layer.node.name for layer in layers]
    hessians = input_second_moments(prepared, layers, calibration, samples=64)
    fp32 = OrtRunner(prepared.SerializeToString())
    reference = fp32.predict(evaluation)
    output = next(iter(reference))
    fp32_bytes = len(prepared.SerializeToString())
    timed = {"fp32": fp32}
    for rounding, given in (("rtn", None), ("gptq", hessians)):
        for table_bits in (4, 8):
            model = lower_to_matmul_nbits(prepared, names, block_size=32, hessians=given)
            model = quantize_embeddings(model, bits=table_bits, block_size=32)
            for level in (1, 4):
                variant = set_accuracy_level(model, level)
                runner = OrtRunner(variant.SerializeToString())
                metrics = output_metrics(reference[output], runner.predict(evaluation)[output])
                name = f"{rounding}-table{table_bits}-level{level}"
                ratio = len(variant.SerializeToString()) / fp32_bytes
                print(name, {k: round(v, 4) for k, v in metrics.items()}, f"bytes {ratio:.3f}x", flush=True)
                if table_bits == 4:
                    timed[name] = runner
    stats = measure_interleaved(timed, evaluation, batch=1, warmup=2, rounds=7, seconds_per_round=0.25)
    for name in timed:
        if name != "fp32":
            print(name, f"batch 1: {speedup(stats['fp32'], stats[name]):.2f}x fp32")


if __name__ == "__main__":
    main(Path(sys.argv[1]).expanduser())
