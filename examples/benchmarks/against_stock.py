"""edgeq against the stock ONNX Runtime quantization tools, measured on this machine.

A user who does not have edgeq reaches for `quantize_dynamic`, `quantize_static` or the 4-bit
`MatMulNBitsQuantizer`. This script builds realistic-size synthetic models (a BERT-mini-class
encoder, a ResNet-class CNN, an MLP) plus the shipped reference models, runs every tool on each,
and times all resulting models against fp32 ORT *interleaved in one process* (the only fair
comparison on a shared, noisy machine). It reports speedup vs fp32 (ratio of median latencies),
fidelity (output cosine, or the reference model's own task metric) and bytes on disk.

    python examples/benchmarks/against_stock.py            # full run (~15 min on 2 cores)
    python examples/benchmarks/against_stock.py --quick    # short run, fewer rounds

NNCF is not an edgeq dependency; its row is filled where `import nncf` works, e.g. from a venv made
with `python -m venv --system-site-packages V && V/bin/pip install nncf==3.4.0`, running this script
with `V/bin/python`. The closing verdict table compares edgeq with the fastest stock tool that stays
inside edgeq's accuracy budget.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import click
import numpy as np
import onnx
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import edgeq
from edgeq.data import load_npz, split
from edgeq.graph import model_bytes
from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.tasks import TaskResult, resolve_evaluator
from edgeq.recipe import Budget, load_recipe
from edgeq.runtime.machine import describe_machine
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import measure_interleaved, speedup
from edgeq.stages.timing import batch_sizes
from edgeq.targets import load_target

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
THREADS = 2  # the target spec's latency.threads; the build machines have 2 cores
BATCH_SIZES = [1, 32]  # a model with a fixed batch axis is timed at its own
Arrays = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------
# Synthetic models with trained-looking weights
# ---------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """BERT-style attention written out (Q/K/V Linear, scaled softmax), as HF BERT exports it."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split_heads(self.query(x)), split_heads(self.key(x)), split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(b, s, -1)
        return self.out(context)


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (BERT/MiniLM): attention + residual + LN, GELU FFN + residual + LN."""

    def __init__(self, hidden: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.attention = SelfAttention(hidden, heads)
        self.norm1, self.norm2 = nn.LayerNorm(hidden, eps=1e-12), nn.LayerNorm(hidden, eps=1e-12)
        self.up, self.down = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.down(nn.functional.gelu(self.up(x))))


class BertMini(nn.Module):
    """MiniLM-L6-class sentence encoder: token + position embeddings, 6 layers, mean pooling."""

    def __init__(
        self,
        vocab: int = 30522,
        seq: int = 64,
        hidden: int = 384,
        heads: int = 12,
        layers: int = 6,
        ffn: int = 1536,
    ) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, hidden), nn.Embedding(seq, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, ffn) for _ in range(layers))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.norm(self.tokens(input_ids) + self.positions(positions))
        for layer in self.layers:
            x = layer(x)
        return x.mean(1)


def make_trained_looking(model: BertMini, seed: int = 0) -> None:
    """Give a random encoder the statistics that matter for quantization in a trained one.

    Trained BERTs have LayerNorm gains near 1 with a handful of outlier channels (gain and bias
    15-25x the rest, the same channels in every layer: Kovaleva et al. 2021, "BERT Busters"),
    which is exactly what wrecks per-tensor activation ranges; attention logits are peaked
    (softmax not uniform); weights are ~N(0, 1/fan_in). Plain random init has none
    of that and would make every quantizer look good.
    """
    gen = torch.Generator().manual_seed(seed)
    hidden = model.norm.weight.numel()
    outliers = torch.randperm(hidden, generator=gen)[:4]
    with torch.no_grad():
        model.tokens.weight.normal_(0, 0.05, generator=gen)
        model.positions.weight.normal_(0, 0.02, generator=gen)
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0, 1.0 / math.sqrt(module.in_features), generator=gen)
                module.bias.normal_(0, 0.02, generator=gen)
            elif isinstance(module, nn.LayerNorm):
                module.weight.normal_(1.0, 0.1, generator=gen)
                module.bias.normal_(0.0, 0.05, generator=gen)
                module.weight[outliers] = torch.empty(4).uniform_(15, 25, generator=gen)
                module.bias[outliers] = torch.empty(4).uniform_(-5, 5, generator=gen)
        for layer in model.layers:  # peaked attention: Q/K gains make logits std ~2-3
            layer.attention.query.weight.mul_(2.0)
            layer.attention.key.weight.mul_(2.0)
            layer.down.weight.mul_(0.5)


def zipf_tokens(count: int, seq: int, vocab: int, seed: int) -> np.ndarray:
    """Token ids with a Zipf-like frequency, as in real text."""
    rng = np.random.default_rng(seed)
    ranks = rng.zipf(1.3, size=(count, seq))
    return ((ranks - 1) % vocab).astype(np.int64)


class ResBlock(nn.Module):
    """Basic ResNet block (two 3x3 convs with BatchNorm, projection shortcut on stride/width change)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class ResNetSmall(nn.Module):
    """ResNet-18-style CNN for 64x64 inputs: stem + 4 stages of 2 blocks (32-256 channels)."""

    def __init__(self, classes: int = 100) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        widths, blocks, cin = (32, 64, 128, 256), [], 32
        for i, width in enumerate(widths):
            blocks += [ResBlock(cin, width, 1 if i == 0 else 2), ResBlock(width, width, 1)]
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(image)).mean((2, 3)))


def smooth_images(count: int, size: int, seed: int) -> np.ndarray:
    """Low-frequency random images (natural images are mostly smooth), normalized like ImageNet."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.normal(size=(count, 3, size // 8, size // 8)).astype(np.float32))
    fine = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    noise = 0.1 * rng.normal(size=fine.shape).astype(np.float32)
    return (fine.numpy() + noise).astype(np.float32)


def settle_batchnorm(model: nn.Module, images: np.ndarray) -> None:
    """Run training-mode passes so BatchNorm running statistics match the data, as after training."""
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), 64):
            model(torch.from_numpy(images[start : start + 64]))
    model.eval()


def make_mlp() -> nn.Module:
    """A 4-layer MLP over 512 features (tabular / embedding-head class)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(512, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def export(model: nn.Module, example: torch.Tensor, input_name: str, path: Path) -> Path:
    """TorchScript ONNX export, opset 17, dynamic batch axis (what edgeq users ship)."""
    model.eval()
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=[input_name],
        output_names=["output"],
        dynamic_axes={input_name: {0: "batch"}, "output": {0: "batch"}},
    )
    return path


# ---------------------------------------------------------------------------------------------
# Benchmark cases
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One model to benchmark: its file, calibration and held-out data, and how edgeq compiles it."""

    name: str
    model: Path
    calib: Arrays
    evaluation: Arrays
    edgeq_kwargs: dict
    task: tuple[str, dict] | None = None
    budget: Budget = field(default_factory=Budget)


def save_npz(path: Path, arrays: Arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def synthetic_cases(work: Path, samples: int) -> list[Case]:
    """Build, export and calibrate the three synthetic models (deterministic seeds)."""
    torch.manual_seed(0)
    bert = BertMini()
    make_trained_looking(bert)
    ids = {"input_ids": zipf_tokens(2 * samples, 64, 30522, seed=1)}
    cnn = ResNetSmall()
    images = smooth_images(2 * samples + 256, 64, seed=2)
    settle_batchnorm(cnn, images[2 * samples :])
    features = np.random.default_rng(3).normal(size=(2 * samples, 512)).astype(np.float32)
    specs = [
        ("bert-mini", bert, "input_ids", ids["input_ids"]),
        ("resnet-64", cnn, "image", images[: 2 * samples]),
        ("mlp", make_mlp(), "x", features),
    ]
    cases = []
    for name, module, input_name, data in specs:
        path = export(module, torch.from_numpy(data[:1]), input_name, work / f"{name}.onnx")
        calib, evaluation = {input_name: data[:samples]}, {input_name: data[samples:]}
        kwargs = {
            "calib": save_npz(work / f"{name}-calib.npz", calib),
            "eval": save_npz(work / f"{name}-eval.npz", evaluation),
        }
        cases.append(Case(name, path, calib, evaluation, kwargs))
    return cases


REFERENCE_RECIPES = (
    "examples/mrl_encoder/recipe.yaml",
    "examples/binary_ae/recipe.yaml",
    "examples/pointer_net/recipe.yaml",
)


def reference_cases() -> list[Case]:
    """The shipped reference models, split into calib/eval exactly as edgeq splits them."""
    cases = []
    for recipe_file in REFERENCE_RECIPES:
        recipe, model = load_recipe(ROOT / recipe_file)
        arrays = load_npz(recipe.calib)
        inputs = [i.name for i in onnx.load(model).graph.input]
        count = len(arrays[inputs[0]])
        calib, evaluation = split(arrays, count, recipe.eval_fraction)
        task = (recipe.task.name, recipe.task.options) if recipe.task else None
        cases.append(
            Case(
                Path(recipe_file).parent.name,
                Path(model),
                calib,
                evaluation,
                {"recipe": recipe},
                task,
                recipe.budget,
            )
        )
    return cases


# ---------------------------------------------------------------------------------------------
# The tools
# ---------------------------------------------------------------------------------------------


class Reader:
    """ORT CalibrationDataReader over the calibration arrays, 32 samples per batch."""

    def __init__(self, data: Arrays, inputs: list[str]) -> None:
        count = len(data[inputs[0]])
        self.batches = iter([{n: data[n][i : i + 32] for n in inputs} for i in range(0, count, 32)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def input_names(path: Path) -> list[str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]


def ort_dynamic(case: Case, out: Path) -> Path:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(case.model), str(out))
    return out


def ort_static(case: Case, out: Path) -> Path:
    from onnxruntime.quantization import QuantFormat, quantize_static

    quantize_static(
        str(case.model),
        str(out),
        Reader(case.calib, input_names(case.model)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
    )
    return out


def ort_4bit(case: Case, out: Path) -> Path:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(case.model)), block_size=32, is_symmetric=True)
    quantizer.process()
    if not any(n.op_type == "MatMulNBits" for n in quantizer.model.model.graph.node):
        raise NotApplicable("no MatMul with constant weights")
    quantizer.model.save_model_to_file(str(out))
    return out


def nncf_ptq(case: Case, out: Path) -> Path:
    try:
        import nncf  # noqa: F401
    except ImportError:
        raise NotApplicable("nncf not installed") from None
    import nncf

    dataset = nncf.Dataset(
        [
            {n: case.calib[n][i : i + 1] for n in input_names(case.model)}
            for i in range(min(300, len(next(iter(case.calib.values())))))
        ]
    )
    onnx.save(nncf.quantize(onnx.load(str(case.model)), dataset), str(out))
    return out


TARGET = {"name": "cpu-x86-avx2"}  # set from --target


def edgeq_compile(case: Case, out: Path) -> tuple[Path, str]:
    """edgeq's own pipeline (it measures its candidates itself); returns artifact and its choice."""
    kwargs = {"target": TARGET["name"], **case.edgeq_kwargs}
    result = edgeq.compile(str(case.model), out=out, runs=False, force=True, **kwargs)
    return result.artifact, result.report.decision.chosen


class NotApplicable(Exception):
    """The tool does not apply to this model (reported as n/a, not as a failure)."""


Tool = Callable[[Case, Path], Path]
STOCK_TOOLS: dict[str, Tool] = {
    "ort-dynamic": ort_dynamic,
    "ort-static-qdq": ort_static,
    "ort-4bit-b32": ort_4bit,
    "nncf-ptq": nncf_ptq,
}


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One model x tool result; speedups keyed by batch size (fp32 median / tool median)."""

    model: str
    tool: str
    speedups: dict[int, float] = field(default_factory=dict)
    cosine: float | None = None
    centered: float | None = None
    task: str = ""
    task_drop: float | None = None
    megabytes: float | None = None
    note: str = ""

    def within(self, budget: Budget) -> bool:
        """Inside the accuracy budget edgeq's compile uses (task drop, else output cosine)."""
        if self.task_drop is not None:
            return self.task_drop <= budget.max_drop
        return self.cosine is not None and self.cosine >= budget.min_cosine

    def fidelity_key(self) -> float:
        """Higher is more faithful: minus the task drop, else the worst output cosine."""
        return -self.task_drop if self.task_drop is not None else self.cosine


def fidelity(reference: dict, candidate: dict) -> tuple[float, float | None]:
    """Worst output cosine (agreement for integer outputs such as tours or bits), as edgeq's budget,
    and worst centered cosine (after removing the fp32 mean output from both).

    The plain cosine is dominated by what every sample shares (a pooled encoder's outlier
    channels, a CNN's mean logits) and reads 0.999+ even when per-sample differences are lost;
    centering measures the part that tells samples apart.
    """
    outputs = compare_outputs(reference, candidate)
    cosine = min(o.cosine if o.cosine is not None else o.agreement for o in outputs)
    centered = [o.centered_cosine for o in outputs if o.centered_cosine is not None]
    return cosine, min(centered, default=None)


def task_metric(case: Case, fp32: OrtRunner, runner: OrtRunner) -> tuple[str, float | None]:
    """The reference model's primary task metric (compiled value beside fp32's) and its worst drop."""
    if case.task is None:
        return "", None
    result: TaskResult = resolve_evaluator(case.task[0])(fp32, runner, case.evaluation, **case.task[1])
    name = result.primary[0]
    metric = result.metric(name)
    return f"{name} {metric.compiled:.3f} (fp32 {metric.fp32:.3f})", result.worst_primary_drop


def build_tools(case: Case, work: Path, console: Console) -> tuple[dict[str, Path], list[Row]]:
    """Run every tool; returns the model files that built and rows for those that did not."""
    built, failed = {"fp32": case.model}, []
    jobs: dict[str, Tool] = dict(STOCK_TOOLS)
    for tool, job in jobs.items():
        try:
            built[tool] = job(case, work / f"{case.name}-{tool}.onnx")
        except NotApplicable as exc:
            failed.append(Row(case.name, tool, note=f"n/a: {exc}"))
        except Exception as exc:  # a stock tool failing on a model is a result, not a crash
            console.print(f"[yellow]{case.name} {tool} failed: {exc}[/]")
            failed.append(Row(case.name, tool, note=f"failed: {str(exc).splitlines()[0][:80]}"))
    try:
        artifact, chosen = edgeq_compile(case, work / f"{case.name}-edgeq")
        built[f"edgeq ({chosen})"] = artifact
    except Exception as exc:
        traceback.print_exc()
        failed.append(Row(case.name, "edgeq", note=f"failed: {str(exc).splitlines()[0][:80]}"))
    return built, failed


FP32_AGAIN = "fp32 (second session)"  # the A/A pair: what the machine's noise makes of equal models


def measure_case(
    case: Case, work: Path, rounds: int, seconds: float, console: Console
) -> tuple[list[Row], dict[int, float]]:
    """Build every tool's model, then fidelity per model and one interleaved latency run per batch.

    Also returns the timing noise per batch: |1 - ratio| of two sessions of the fp32 model."""
    built, rows = build_tools(case, work, console)
    runners = {}
    for tool, path in list(built.items()):
        try:
            runners[tool] = OrtRunner(path, threads=THREADS)
        except Exception as exc:
            rows.append(Row(case.name, tool, note=f"ORT cannot load: {str(exc).splitlines()[0][:80]}"))
            built.pop(tool)
    fp32 = runners["fp32"]
    reference = fp32.predict(case.evaluation)
    results = {}
    for tool, runner in runners.items():
        predicted = runner.predict(case.evaluation)
        text, drop = task_metric(case, fp32, runner)
        cosine, centered = fidelity(reference, predicted)
        results[tool] = Row(
            case.name,
            tool,
            cosine=cosine,
            centered=centered,
            task=text,
            task_drop=drop,
            megabytes=model_bytes(built[tool]) / 1e6,
        )
    runners[FP32_AGAIN] = OrtRunner(case.model, threads=THREADS)
    noise = {}
    for batch in batch_sizes(fp32, BATCH_SIZES):
        stats = measure_interleaved(
            runners,
            case.evaluation,
            batch=batch,
            warmup=3,
            rounds=rounds,
            seconds_per_round=seconds * len(runners),
        )
        noise[batch] = abs(1.0 - speedup(stats["fp32"], stats[FP32_AGAIN]))
        for tool, row in results.items():
            row.speedups[batch] = speedup(stats["fp32"], stats[tool])
            if tool == "fp32":
                row.note = (
                    row.note + f" b{batch} p50 {stats['fp32'].p50_ms:.2f} ms (A/A noise {noise[batch]:.0%})"
                ).strip()
    return list(results.values()) + rows, noise


@dataclass
class Verdict:
    """edgeq against the fastest stock tool inside the same accuracy budget, on one model."""

    model: str
    edgeq: str
    stock: str
    ratios: dict[int, float]  # edgeq speedup / stock speedup, per batch
    noise: dict[int, float]
    fidelity: str  # "better", "equal" or "worse"

    @property
    def overall(self) -> float:
        """Geometric mean of the per-batch ratios: the objective edgeq's own selection maximises."""
        return math.exp(sum(math.log(r) for r in self.ratios.values()) / len(self.ratios))

    @property
    def holds(self) -> bool:
        """As fast overall (within the mean A/A noise, 3% at least) and at least as faithful.

        Overall, not per batch: one artifact serves every batch size, and on some models no single
        one is fastest at both (the MLP: stock dynamic wins batch 1, stock static batch 32)."""
        noise = max(0.03, sum(self.noise.values()) / len(self.noise))
        return self.overall >= 1.0 - noise and self.fidelity != "worse"


def verdict(case: Case, rows: list[Row], noise: dict[int, float]) -> Verdict | None:
    """Compare edgeq's row with the fastest stock row (geometric mean over batches) within budget."""
    mine = next((r for r in rows if r.tool.startswith("edgeq") and r.speedups), None)
    stock = [r for r in rows if r.tool in STOCK_TOOLS and r.speedups and r.within(case.budget)]
    if mine is None:
        return None
    if not stock:
        return Verdict(
            case.name, mine.tool, "none within budget", {b: math.inf for b in mine.speedups}, noise, "better"
        )
    best = max(stock, key=lambda r: math.prod(r.speedups.values()))
    ratios = {b: mine.speedups[b] / best.speedups[b] for b in mine.speedups}
    gap = mine.fidelity_key() - best.fidelity_key()
    tolerance = 1e-4 if mine.task_drop is None else 1e-6
    fidelity = "equal" if abs(gap) <= tolerance else ("better" if gap > 0 else "worse")
    return Verdict(case.name, mine.tool, best.tool, ratios, noise, fidelity)


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

COLUMNS = (
    "model",
    "tool",
    "speedup b1",
    "speedup b32",
    "cosine vs fp32",
    "centered cosine",
    "task metric",
    "MB",
    "note",
)


def cells(row: Row) -> list[str]:
    """A row as table cells; a fixed-batch model's only batch goes in the batch-1 column."""
    speeds = [f"{v:.2f}x" for v in row.speedups.values()] + ["", ""]
    return [
        row.model,
        row.tool,
        speeds[0],
        speeds[1],
        "" if row.cosine is None else f"{row.cosine:.4f}",
        "" if row.centered is None else f"{row.centered:.4f}",
        row.task,
        "" if row.megabytes is None else f"{row.megabytes:.2f}",
        row.note,
    ]


def rich_table(title: str, columns: tuple[str, ...], lines_of_cells: list[list[str]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for line in lines_of_cells:
        table.add_row(*line)
    return table


VERDICT_COLUMNS = (
    "model",
    "edgeq",
    "fastest stock within budget",
    "edgeq / stock b1",
    "edgeq / stock b32",
    "edgeq / stock overall",
    "A/A noise b1 / b32",
    "fidelity vs stock",
    "edgeq at least as fast and faithful",
)


def verdict_cells(v: Verdict) -> list[str]:
    ratios = [f"{r:.2f}x" if math.isfinite(r) else "n/a" for r in v.ratios.values()] + [""]
    overall = f"{v.overall:.2f}x" if math.isfinite(v.overall) else "n/a"
    noise = " / ".join(f"{n:.0%}" for n in v.noise.values())
    return [
        v.model,
        v.edgeq,
        v.stock,
        ratios[0],
        ratios[1] if len(v.ratios) > 1 else "",
        overall,
        noise,
        v.fidelity,
        "yes" if v.holds else "**no**",
    ]


def markdown_table(columns: tuple[str, ...], lines_of_cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in lines_of_cells]
    return "\n".join(lines)


def installed_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_header(command: str) -> str:
    """What a reader needs to interpret the numbers: command, CPU and ISA, runtime, date."""
    machine = describe_machine()
    return "\n".join(
        [
            "# edgeq vs stock ONNX Runtime quantization",
            "",
            f"- command: `{command}`",
            f"- date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
            f"- machine: {machine.cpu}, {machine.cores} cores, flags: {' '.join(machine.flags)}",
            f"- onnxruntime {ort.__version__}, onnx {onnx.__version__}, torch {torch.__version__}, "
            f"nncf {installed_version('nncf')}; intra-op threads {THREADS}; edgeq target {TARGET['name']}",
            "- verdict: edgeq's artifact against the fastest stock tool (geometric mean over the batch "
            "sizes) whose output stays inside the accuracy budget edgeq's compile uses (task drop, else "
            "cosine ≥ 0.99); it holds when edgeq is at least as fast overall (geometric mean of the "
            "per-batch ratios, inside the A/A noise, 3% at least) and not less faithful.",
            "- speedup: fp32 ORT latency / tool latency at that batch, the median over rounds of each "
            "round's ratio of medians; all models of a row group timed interleaved in one process "
            "(rotating order, repeated rounds).",
            "- cosine: worst output cosine vs fp32 on held-out data (agreement for integer outputs), "
            "as edgeq's budget uses it; centered cosine: the same after subtracting the fp32 mean output "
            "(what distinguishes samples).",
            "",
        ]
    )


@click.command()
@click.option("--quick", is_flag=True, help="Fewer samples and rounds: a smoke run of a few minutes.")
@click.option("--only", multiple=True, help="Benchmark only these models (e.g. --only bert-mini).")
@click.option("--output", type=click.Path(path_type=Path), default=HERE / "results.md", show_default=True)
@click.option(
    "--target",
    default="native",
    show_default=True,
    help="edgeq target for its compile (native: the shipped target for this CPU).",
)
def main(quick: bool, only: tuple[str, ...], output: Path, target: str) -> None:
    """Build the models, run every tool, time them interleaved, print and write the tables."""
    console = Console()
    TARGET["name"] = load_target(target).name
    torch.set_num_threads(THREADS)
    rounds, seconds, samples = (3, 0.1, 128) if quick else (9, 0.3, 256)
    rows: list[Row] = []
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="edgeq-bench-") as tmp:
        work = Path(tmp)
        cases = synthetic_cases(work, samples) + reference_cases()
        for case in cases:
            if only and case.name not in only:
                continue
            console.print(f"[bold]{case.name}[/]: building and timing every tool")
            try:
                case_rows, noise = measure_case(case, work, rounds, seconds, console)
            except Exception as exc:  # one broken model must not lose the others' results
                traceback.print_exc()
                rows.append(Row(case.name, "all", note=f"failed: {str(exc).splitlines()[0][:80]}"))
                continue
            rows += case_rows
            verdicts += [v for v in [verdict(case, case_rows, noise)] if v is not None]
    title = "edgeq vs stock ORT quantization (speedup = fp32 p50 / tool p50, interleaved)"
    console.print(rich_table(title, COLUMNS, [cells(r) for r in rows]))
    verdict_lines = [verdict_cells(v) for v in verdicts]
    console.print(rich_table("verdict", VERDICT_COLUMNS, verdict_lines))
    command = "python examples/benchmarks/against_stock.py " + " ".join(sys.argv[1:])
    text = (
        machine_header(command.strip())
        + "\n"
        + markdown_table(VERDICT_COLUMNS, verdict_lines)
        + "\n\n"
        + markdown_table(COLUMNS, [cells(r) for r in rows])
        + "\n"
    )
    print(text)
    output.write_text(text)


if __name__ == "__main__":
    main()
