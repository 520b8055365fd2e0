"""edgeq on OpenVINO against NNCF's post-training quantization on OpenVINO, and both against ORT.

For each model: NNCF's `nncf.quantize` on the ONNX model (its QDQ ONNX converted to OpenVINO IR),
NNCF's `quantize_with_accuracy_control` on the OpenVINO model (judged by the model's own metric on
the evaluation half), edgeq's chosen artifact for `cpu-openvino` and for this CPU's ONNX Runtime
target (what `native` names: `cpu-x86-avx512vnni` or `cpu-x86-avx2`), all timed interleaved in one
process with the fp32 model on both runtimes (OpenVINO in true f32; NNCF's IRs run in f32 too, as
asked explicitly). Speedups are medians of per-round ratios against each runtime's own fp32;
fidelity is the output cosine vs ORT fp32 and the model's own metric: the recall@10 of the fp32
neighbours over the evaluation set (encoders) or the top-1 agreement with fp32 (classifiers).
Calibration and evaluation samples are disjoint halves of each model's data.

    pip install 'edgeq[bench]'    # openvino, nncf
    python examples/benchmarks/against_nncf.py [--quick] [--only minilm_l6_ts] [--no-accuracy-control]

`--at-nncf` also compiles edgeq for `cpu-openvino` with NNCF PTQ's own fidelity on the evaluation half
as the budget: the two tools compared at equal fidelity, not edgeq's default budget against NNCF's.
Once each model is timed, every edgeq OpenVINO artifact is set against NNCF's IR at each
batch, its fidelity beside NNCF PTQ's: the median of their per-round time ratios (NNCF / edgeq, > 1:
edgeq faster) and its distribution-free interval (edgeq's run-off rule; from 10 rounds on it drops
the extreme rounds), read as faster, slower (the interval excludes 1) or a tie. `--rounds 15`
gives that interval room to decide.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import click
import numpy as np
import onnx
from rich.console import Console
from rich.table import Table

import edgeq
from edgeq.backends.artifact import Artifact
from edgeq.backends.openvino import compile_openvino
from edgeq.backends.openvino_runner import OpenVINORunner
from edgeq.data import load_npz
from edgeq.runtime.machine import describe_machine
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyStats, measure_interleaved, speedup
from edgeq.stages.timing import median_interval
from edgeq.targets import load_target, native_target_name

ROOT = Path(__file__).resolve().parents[2]
WILD = Path.home() / ".cache" / "edgeq-wild"
ORT_TARGET, OV_TARGET = native_target_name(), "cpu-openvino"  # ORT: this CPU's shipped target
THREADS = 2
ORT = "ORT fp32"
NNCF = "NNCF PTQ → OpenVINO"
Arrays = dict[str, np.ndarray]
MAX_DROP = {True: 0.03, False: 0.005}
"""NNCF accuracy control's absolute budget: recall@10 >= 0.97 (encoders), top-1 >= 99.5% (classifiers)."""


@dataclass(frozen=True)
class Case:
    name: str
    model: Path
    data: Path
    encoder: bool  # an embedding model: neighbour recall is its own metric
    samples: int = 128  # calibration + evaluation, split in halves

    def halves(self) -> tuple[Arrays, Arrays]:
        arrays = {k: v[: self.samples] for k, v in load_npz(self.data).items() if not k.startswith("label")}
        half = len(next(iter(arrays.values()))) // 2
        return {k: v[:half] for k, v in arrays.items()}, {k: v[half:] for k, v in arrays.items()}


CASES = [
    Case("minilm_l6_ts", WILD / "minilm_l6_ts/model.onnx", WILD / "minilm_l6_ts/calib.npz", True),
    Case("crepe_tiny", WILD / "crepe_tiny/model.onnx", WILD / "crepe_tiny/calib.npz", False),
    Case("rapidocr_cls", WILD / "rapidocr_cls/model.onnx", WILD / "rapidocr_cls/calib.npz", False, 96),
    Case("mrl_encoder", ROOT / "examples/mrl_encoder/model.onnx", ROOT / "calib/mrl_digits.npz", True, 256),
]


def singles(arrays: Arrays) -> list[Arrays]:
    """One feed per sample (batch 1), as NNCF's datasets take them."""
    return [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(len(next(iter(arrays.values()))))]


def nncf_ptq(case: Case, calib: Arrays, out: Path) -> Path:
    """NNCF's default PTQ of the ONNX model (the transformer preset for encoders), as OpenVINO IR."""
    import nncf

    dataset = singles(calib)
    kind = nncf.ModelType.TRANSFORMER if case.name.startswith("minilm") else None
    quantized = nncf.quantize(
        onnx.load(str(case.model)), nncf.Dataset(dataset), model_type=kind, subset_size=len(dataset)
    )
    return compile_openvino(quantized, out / "nncf").path


def nncf_accuracy_control(case: Case, calib: Arrays, evaluation: Arrays, out: Path) -> tuple[Path, float]:
    """NNCF's PTQ with accuracy control on the OpenVINO model, judged by the model's own metric
    against fp32 (OpenVINO in f32) on the evaluation half; the IR and the seconds it took."""
    import nncf
    import openvino as ov

    from edgeq.backends.openvino_runner import core

    model = ov.convert_model(str(case.model))
    reference = core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    items = singles(evaluation)
    fp32 = np.concatenate([reference(item)[0] for item in items])

    def validate(compiled, data) -> float:
        return own_metric(case, fp32, np.concatenate([compiled(item)[0] for item in data]))

    kind = nncf.ModelType.TRANSFORMER if case.name.startswith("minilm") else None
    start = time.perf_counter()
    quantized = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset(calibration := singles(calib)),
        nncf.Dataset(items),
        validation_fn=validate,
        max_drop=MAX_DROP[case.encoder],
        drop_type=nncf.DropType.ABSOLUTE,
        model_type=kind,
        subset_size=len(calibration),
    )
    seconds = time.perf_counter() - start
    xml = out / "nncf-ac" / "model.xml"
    xml.parent.mkdir(parents=True)
    ov.save_model(quantized, str(xml), compress_to_fp16=False)
    return xml, seconds


def edgeq_artifact(
    case: Case, target: str, calib: Arrays, evaluation: Arrays, out: Path, **budget: float
) -> tuple[Path, str]:
    """edgeq's kept artifact for `target` (under `budget` where given, else the default) and the
    candidate it chose."""
    folder = out / (target + "".join(f"-{k}{v}" for k, v in budget.items()))
    extra = {"budget": budget} if budget else {}
    result = edgeq.compile(
        case.model, out=folder, target=target, calib=calib, eval=evaluation, runs=False, **extra
    )
    return result.artifact, result.report.decision.chosen


def cosine(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean per-sample cosine of the first output."""
    a, b = reference.reshape(len(reference), -1), other.reshape(len(other), -1)
    return float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def neighbours(embeddings: np.ndarray, k: int = 10) -> np.ndarray:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1)[:, :k]


def recall_at_10(reference: np.ndarray, other: np.ndarray) -> float:
    """The fraction of each sample's 10 fp32 neighbours (cosine, eval set) the other model keeps."""
    ours, theirs = neighbours(reference), neighbours(other)
    return float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ours, theirs, strict=True)]))


def top1_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """The fraction of samples whose arg-max over the last axis (every position) matches fp32's."""
    return float(np.mean(reference.argmax(-1) == other.argmax(-1)))


def own_metric(case: Case, reference: np.ndarray, other: np.ndarray) -> float:
    """The model's own fidelity metric: neighbour recall@10 (encoders) or top-1 agreement."""
    return recall_at_10(reference, other) if case.encoder else top1_agreement(reference, other)


def model_bytes(path: Path) -> int:
    """What the runtime loads: the file, its external data or an IR's weights."""
    return Artifact(path, "").bytes


def head_to_head(nncf: LatencyStats, ours: LatencyStats) -> str:
    """edgeq's artifact against NNCF's IR timed in the same rounds: the median per-round ratio NNCF /
    edgeq, its interval, and the verdict the interval allows."""
    ratios = np.asarray(nncf.round_p50_ms) / np.asarray(ours.round_p50_ms)
    low, high = median_interval(ratios)
    verdict = "edgeq faster" if low > 1 else "NNCF faster" if high < 1 else "tie"
    return f"{np.median(ratios):.2f}× [{low:.2f}, {high:.2f}] {verdict}"


def versus_nncf(
    case: Case, fidelity: dict[str, float], timing: dict[int, dict[str, LatencyStats]]
) -> list[str]:
    """One line per edgeq OpenVINO artifact: its own metric beside NNCF PTQ's, and how its speed
    compares with NNCF's at every batch."""
    lines, theirs = [], fidelity[NNCF]
    for name, metric in fidelity.items():
        if OV_TARGET in name:
            batches = "; ".join(f"b{b} {head_to_head(t[NNCF], t[name])}" for b, t in timing.items())
            order = ">=" if metric >= theirs else "<"
            lines.append(f"  {case.name}: {name} {metric:.3f} {order} NNCF PTQ's {theirs:.3f}: {batches}")
    return lines


def measure(
    case: Case, rounds: int, quick: bool, accuracy_control: bool, at_nncf: bool, console: Console
) -> list[list[str]]:
    calib, evaluation = case.halves()
    settings = load_target(OV_TARGET).openvino
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        console.print(f"[bold]{case.name}[/]: nncf, edgeq {OV_TARGET}, edgeq {ORT_TARGET}")
        nncf_ir = nncf_ptq(case, calib, work)
        runners = {
            ORT: OrtRunner(case.model, threads=THREADS),
            "OpenVINO f32": OpenVINORunner(case.model, settings, precision="f32"),
            NNCF: OpenVINORunner(nncf_ir, settings),
        }
        sizes = [model_bytes(p) for p in (case.model, case.model, nncf_ir)]
        if accuracy_control:
            ac_ir, seconds = nncf_accuracy_control(case, calib, evaluation, work)
            console.print(f"  NNCF accuracy control: {seconds:.0f} s")
            runners[f"NNCF AC (drop ≤ {MAX_DROP[case.encoder]}) → OpenVINO"] = OpenVINORunner(ac_ir, settings)
            sizes.append(model_bytes(ac_ir))
        ov_path, ov_chosen = edgeq_artifact(case, OV_TARGET, calib, evaluation, work)
        ort_path, ort_chosen = edgeq_artifact(case, ORT_TARGET, calib, evaluation, work)
        runners[f"edgeq {OV_TARGET} ({ov_chosen})"] = OpenVINORunner(ov_path, settings)
        runners[f"edgeq {ORT_TARGET} ({ort_chosen})"] = OrtRunner(ort_path, threads=THREADS)
        sizes += [model_bytes(ov_path), model_bytes(ort_path)]
        first = runners[ORT].output_names[0]
        fp32 = runners[ORT].predict(evaluation)
        outputs = {name: r.predict(evaluation)[first] for name, r in runners.items()}
        if at_nncf:  # edgeq held to the fidelity NNCF's PTQ reached, on the same evaluation half
            reached = own_metric(case, fp32[first], outputs[NNCF])
            budget = {"min_recall": reached} if case.encoder else {"min_top1": reached}
            path, chosen = edgeq_artifact(case, OV_TARGET, calib, evaluation, work, **budget)
            name = f"edgeq {OV_TARGET} at NNCF's {reached:.3f} ({chosen})"
            runners[name] = OpenVINORunner(path, settings)
            outputs[name] = runners[name].predict(evaluation)[first]
            sizes.append(model_bytes(path))
        batches = [runners[ORT].fixed_batch] if runners[ORT].fixed_batch else [1, 32]
        timing = {
            batch: measure_interleaved(
                runners,
                evaluation,
                batch=batch,
                warmup=3,
                rounds=rounds,
                seconds_per_round=0.25 * len(runners) if quick else 0.5 * len(runners),
            )
            for batch in batches
        }
    rows, timings = [], list(timing.values())
    fidelity = {name: own_metric(case, fp32[first], output) for name, output in outputs.items()}
    for (name, output), size in zip(outputs.items(), sizes, strict=True):
        own = "OpenVINO f32" if "OpenVINO" in name or OV_TARGET in name else ORT
        ratios = [f"{speedup(t[own], t[name]):.2f}× / {speedup(t[ORT], t[name]):.2f}×" for t in timings]
        ratios += ["—"] * (2 - len(ratios))
        recall = f"{fidelity[name]:.3f}"
        ms = " / ".join(f"{t[name].p50_ms:.2f}" for t in timings)
        rows.append(
            [case.name, name, ms, *ratios, f"{cosine(fp32[first], output):.5f}", recall, f"{size / 1e6:.2f}"]
        )
    console.print(f"  batches {batches}, {rounds} rounds")
    for line in versus_nncf(case, fidelity, timing):
        console.print(line, highlight=False, soft_wrap=True)
    return rows


COLUMNS = ("model", "artifact", "p50 ms (b1 / b32)", "speedup b1 own / ORT", "speedup b32 own / ORT")
COLUMNS_TAIL = ("cosine vs ORT fp32", "recall@10 / top-1", "MB")


@click.command()
@click.option("--quick", is_flag=True, help="Fewer (5), shorter timing rounds.")
@click.option(
    "--rounds", type=click.IntRange(3, 99), help="Interleaved timing rounds (default 9; 5 with --quick)."
)
@click.option("--only", multiple=True, help="Case names to run (default: all).")
@click.option("--no-accuracy-control", is_flag=True, help="Skip NNCF's quantize_with_accuracy_control.")
@click.option(
    "--at-nncf", is_flag=True, help="Also compile edgeq with NNCF PTQ's own fidelity as the budget."
)
def main(
    quick: bool, rounds: int | None, only: tuple[str, ...], no_accuracy_control: bool, at_nncf: bool
) -> None:
    console = Console()
    machine = describe_machine()
    versions = ", ".join(f"{name} {version(name)}" for name in ("openvino", "nncf", "onnxruntime"))
    console.print(f"{machine.cpu}, {THREADS} threads; {versions}")
    columns = (*COLUMNS, *COLUMNS_TAIL)
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns), flush=True)
    rows, rounds = [], rounds or (5 if quick else 9)
    for case in CASES:
        if not only or case.name in only:
            rows += (measured := measure(case, rounds, quick, not no_accuracy_control, at_nncf, console))
            for row in measured:  # as each model finishes: a long run keeps what it measured
                print("| " + " | ".join(row) + " |", flush=True)
    table = Table(*columns, title="edgeq vs NNCF on OpenVINO, and ONNX Runtime")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
