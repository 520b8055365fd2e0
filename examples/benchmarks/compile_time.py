"""Compile time, cold and warm: how long a compile takes, and how long a recompile with only a
changed gate takes once the cache holds the measurement.

    python examples/benchmarks/compile_time.py [--models mrl_encoder,minilm_l6,...] [--bits 8 4]
        [--target cpu-x86-avx2] [--out /tmp/edgeq-compile-time]

Models: the reference examples (examples/*/recipe.yaml), the real all-MiniLM-L6-v2 encoder of the
wild corpus (~/.cache/edgeq-wild/minilm_l6_ts: 6 layers, hidden 384) and BERT encoders of 6, 12
and 24 layers at hidden 384 built from a transformers BertConfig (random weights: compile time
depends on the graph, not on what it learned) for the growth with model size. Each compile is a
fresh `edgeq compile` process: cold with an empty $EDGEQ_CACHE, warm in the same cache with
`--min-cosine 0.5` added. Prints a markdown table (also OUT/compile_time.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WILD = Path.home() / ".cache" / "edgeq-wild" / "minilm_l6_ts"
REFERENCE = {
    "mrl_encoder": ROOT / "examples" / "mrl_encoder" / "recipe.yaml",
    "binary_ae": ROOT / "examples" / "binary_ae" / "recipe.yaml",
    "pointer_net": ROOT / "examples" / "pointer_net" / "recipe.yaml",
}
BERT_LAYERS = {"bert_l6": 6, "bert_l12": 12, "bert_l24": 24}
DEFAULT = ["mrl_encoder", "binary_ae", "pointer_net", "minilm_l6", *BERT_LAYERS]


def model_arguments(name: str, folder: Path) -> list[str]:
    """The `edgeq compile` arguments that name the model and its data."""
    if name in REFERENCE:
        return ["--recipe", str(REFERENCE[name])]
    if name == "minilm_l6":
        return [str(WILD / "model.onnx"), "--calib", str(WILD / "calib.npz")]
    path = folder / f"{name}.onnx"
    if not path.exists():
        build_bert(BERT_LAYERS[name], path)
    return [str(path), "--calib", str(WILD / "calib.npz")]


def build_bert(layers: int, path: Path) -> None:
    """A BERT encoder of `layers` layers, hidden 384 (MiniLM's shape), inputs as MiniLM's."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        num_hidden_layers=layers, hidden_size=384, num_attention_heads=12, intermediate_size=1536
    )

    class Encoder(torch.nn.Module):  # inputs by name: BertModel's positional order is not stable
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(config, add_pooling_layer=False)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    model = Encoder().eval()
    ids = torch.ones(2, 64, dtype=torch.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids)),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def timed_compile(arguments: list[str], out: Path, cache: Path) -> tuple[float, float, dict]:
    """Wall and CPU seconds (user + system) of one `edgeq compile` process, and its report. On a
    loaded machine the CPU seconds are the steadier number (latency rounds are wall time, though)."""
    env = {**os.environ, "EDGEQ_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-P", "-m", "edgeq", "compile", *arguments, "-o", str(out), "--force", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if finished.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed: {finished.stderr.strip()[-400:]}")
    return seconds, cpu, json.loads((out / "report.json").read_text())


def slowest_stages(report: dict, count: int = 3) -> str:
    stages = sorted(report["stages"], key=lambda s: -s["seconds"])[:count]
    return ", ".join(f"{s['name']} {s['seconds']:.0f}s" for s in stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT))
    parser.add_argument("--bits", nargs="+", default=["8", "4"])
    parser.add_argument("--target", default="cpu-x86-avx2")
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgeq-compile-time"))
    args = parser.parse_args()
    header = ["model", "bits", "cold s (cpu s)", "warm s (cpu s), changed gate", "warm/cold", "load"]
    header.append("chosen")
    rows = ["| " + " | ".join([*header, "slowest cold stages"]) + " |", "|---" * 8 + "|"]
    for name in args.models.split(","):
        for bits in args.bits:
            run = args.out / f"{name}-{bits}"
            shutil.rmtree(run, ignore_errors=True)
            arguments = [*model_arguments(name, args.out), "--target", args.target, "--bits", bits]
            load = os.getloadavg()[0]
            cold, cold_cpu, report = timed_compile(arguments, run / "cold", run / "cache")
            gated = [*arguments, "--min-cosine", "0.5"]
            warm, warm_cpu, again = timed_compile(gated, run / "warm", run / "cache")
            reused = "" if again.get("cache") else " (not reused)"
            row = f"| {name} | {bits} | {cold:.1f} ({cold_cpu:.1f}) | {warm:.1f} ({warm_cpu:.1f}){reused} | "
            row += f"{warm / cold:.0%} | {load:.1f}-{os.getloadavg()[0]:.1f} | "
            row += f"{report['decision']['chosen']} | {slowest_stages(report)} |"
            rows.append(row)
            print(row, flush=True)
    rows.append(f"\n{os.cpu_count()} cores; load: the 1-minute load average before and after; {args.target}.")
    text = "\n".join(rows)
    (args.out / "compile_time.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
