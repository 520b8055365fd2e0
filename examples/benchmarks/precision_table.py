"""One run, one table: stock ONNX Runtime quantization beside edgeq's 8-bit and 4-bit forms, per model.

    W=~/.cache/edgeq-wild
    python examples/benchmarks/precision_table.py $W/minilm_l6_ts $W/crepe_tiny examples/mrl_encoder

Each MODEL is a folder with model.onnx and calib.npz (the wild corpus), or a reference example
folder with recipe.yaml. The data is split as edgeq splits it (half held out); every form is
judged on the held-out half by the metric of its outputs' kind (`edgeq.measure.kinds`: neighbour
recall@10 for an embedding, top-1 agreement for class scores, cosine otherwise), its bytes against
fp32, and timed at batch 1 interleaved with fp32 and every other form in one process. The forms
(a dash where one does not apply, e.g. no MatMul with constant weights):

- stock: `quantize_dynamic`, `quantize_static` (QDQ, per channel), `MatMulNBitsQuantizer` (4 bits,
  blocks of 32);
- edgeq INT8: dynamic (per-tensor activations, per-column weights), per-token dynamic on the
  SmoothQuant-smoothed graph, 8-bit MatMulNBits (int8 compute: activations per row and block);
- edgeq 4-bit: GPTQ 4-bit MatMulNBits with a 4-bit embedding table, and 8-bit MatMulNBits with a
  4-bit embedding table (blocks of 128: the bytes of a small encoder are mostly its table).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime as ort

from edgeq.data import Arrays, load_npz, split
from edgeq.graph.ops import LINEAR_OPS
from edgeq.measure.kinds import kind_metrics, recognise
from edgeq.passes.prepare import prepare_model
from edgeq.quant.dynamic import lower_dynamic
from edgeq.quant.int4 import lower_to_matmul_nbits, quantize_embeddings, set_accuracy_level
from edgeq.quant.layer_inputs import input_second_moments, planned_layers
from edgeq.quant.plan import ensure_node_names, plan_int8
from edgeq.quant.smoothquant import smooth_matmul_inputs
from edgeq.recipe import load_recipe
from edgeq.runtime.machine import describe_machine
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import measure_interleaved, speedup
from edgeq.targets import load_target

sys.path.insert(0, str(Path(__file__).parent))
from against_stock import Case, NotApplicable, ort_4bit, ort_dynamic, ort_static  # noqa: E402

INT8 = load_target("cpu-x86-avx512vnni").quantization.int8
BUDGETED = ("neighbour recall@10", "top-1 agreement", "cosine")  # the kind's own metric, first found


def load_case(folder: Path) -> Case:
    """A corpus folder (model.onnx + calib.npz) or a reference example (recipe.yaml)."""
    if (folder / "recipe.yaml").exists():
        recipe, model = load_recipe(folder / "recipe.yaml")
        arrays, path = load_npz(recipe.calib), Path(model)
    else:
        arrays, path = load_npz(folder / "calib.npz"), folder / "model.onnx"
    inputs = [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    calib, evaluation = split(arrays, len(arrays[inputs[0]]), 0.5)
    return Case(folder.name, path, calib, evaluation, {})


def edgeq_forms(case: Case) -> dict[str, Callable[[], onnx.ModelProto]]:
    """edgeq's 8-bit and 4-bit forms of the case's prepared graph, built when called."""
    prepared = prepare_model(onnx.load(str(case.model)))
    ensure_node_names(prepared)
    static = plan_int8(prepared, INT8)
    layers = [q for q in planned_layers(prepared, static) if q.op_type in LINEAR_OPS]
    names = [q.node.name for q in layers]

    def need_matmuls() -> None:
        if not names:
            raise NotApplicable("no MatMul/Gemm with constant weights")

    def dynamic(per_token: bool) -> onnx.ModelProto:
        need_matmuls()
        source = smooth_matmul_inputs(prepared, case.calib, 64) if per_token else prepared
        return quantize_embeddings(lower_dynamic(source, names, False, per_token=per_token), bits=8)

    def blocked(bits: int, block: int, table_bits: int, gptq: bool) -> onnx.ModelProto:
        need_matmuls()
        hessians = input_second_moments(prepared, layers, case.calib, samples=64) if gptq else None
        model = lower_to_matmul_nbits(prepared, names, block, hessians=hessians, bits=bits)
        return set_accuracy_level(quantize_embeddings(model, bits=table_bits, block_size=32), 4)

    return {
        "edgeq int8-dynamic": lambda: dynamic(False),
        "edgeq int8-dynamic-per-token-smooth": lambda: dynamic(True),
        "edgeq int8 MatMulNBits-8": lambda: blocked(8, 32, 8, False),
        "edgeq 4-bit GPTQ": lambda: blocked(4, 32, 4, True),
        "edgeq 4-bit table + MatMulNBits-8": lambda: blocked(8, 128, 4, False),
    }


def own_metric(kinds, reference: Arrays, predicted: Arrays) -> str:
    """The first output's kind metric (recall@10, top-1 agreement or cosine)."""
    metrics = kind_metrics(kinds[:1], reference, predicted)
    found = next((m for name in BUDGETED for m in metrics if m.metric == name), metrics[0])
    return f"{found.metric} {found.value:.3f}"


def run_case(case: Case, work: Path) -> list[str]:
    """One markdown row per form: metric, bytes, batch-1 speedup (all timed in one run)."""
    fp32 = OrtRunner(str(case.model))
    reference = fp32.predict(case.evaluation)
    kinds = recognise(onnx.load(str(case.model)), reference)
    fp32_bytes = case.model.stat().st_size
    runners, rows = {"fp32": fp32}, {}
    stock = {"stock quantize_dynamic": ort_dynamic, "stock quantize_static": ort_static}
    stock["stock MatMulNBits-4"] = ort_4bit
    builders: dict[str, Callable[[], Path]] = {
        name: (lambda tool=tool, name=name: tool(case, work / f"{case.name}-{name.split()[-1]}.onnx"))
        for name, tool in stock.items()
    }
    for name, build in edgeq_forms(case).items():

        def save(build=build, name=name) -> Path:
            path = work / f"{case.name}-{name.split()[-1]}.onnx"
            onnx.save(build(), str(path))
            return path

        builders[name] = save
    for name, build in builders.items():
        try:
            path = build()
        except NotApplicable as reason:
            rows[name] = f"| {case.name} | {name} | — ({reason}) | | |"
            continue
        runners[name] = OrtRunner(str(path))
        metric = own_metric(kinds, reference, runners[name].predict(case.evaluation))
        rows[name] = f"| {case.name} | {name} | {metric} | {path.stat().st_size / fp32_bytes:.3f}x |"
        print(rows[name], flush=True)
    stats = measure_interleaved(runners, case.evaluation, batch=1, warmup=3, rounds=9, seconds_per_round=1.5)
    for name in runners:
        if name != "fp32":
            rows[name] += f" {speedup(stats['fp32'], stats[name]):.2f}x |"
    return [
        f"| {case.name} | fp32 | {own_metric(kinds, reference, reference)} | 1.000x | 1.00x |",
        *rows.values(),
    ]


def main(folders: list[Path]) -> None:
    ort.set_default_logger_severity(3)
    lines = ["| model | form | metric (kind) | bytes | batch-1 speedup |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for folder in folders:
            lines += run_case(load_case(folder.expanduser()), Path(work))
    print(describe_machine(), "load average", Path("/proc/loadavg").read_text().split()[:3])
    print("\n".join(lines))


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
