"""silero-vad compiled by edgeq over real streams: per-frame and decision agreement with fp32, speedup.

Streams are 2-second stretches of espeak-ng speech with the pauses between sentences (the wild-model
corpus's speech source), cut as silero's own wrapper calls the model: 512 new samples per frame after
64 samples of context, state carried frame to frame. Half the streams calibrate, half evaluate.

    python examples/benchmarks/streaming_vad.py [--target cpu-x86-avx2] [--out /tmp/vad]

Needs the corpus model (`~/.cache/edgeq-wild/silero_vad/model.onnx`, see examples/wild/README.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wild"))
import samples  # noqa: E402  (examples/wild/samples.py: the corpus's speech)

MODEL = Path.home() / ".cache" / "edgeq-wild" / "silero_vad" / "model.onnx"
RATE, HOP, CONTEXT, SECONDS = 16000, 512, 64, 2


def streams(count: int) -> np.ndarray:
    """[count, frames, 576] windows of consecutive speech, each frame 64 samples of context + 512."""
    audio = samples.speech(RATE)
    audio = audio + np.random.default_rng(0).normal(0, 0.003, audio.shape).astype(np.float32)
    frames = SECONDS * RATE // HOP
    span = frames * HOP + CONTEXT
    starts = np.linspace(0, len(audio) - span, count).astype(int)
    windows = [
        np.stack([audio[s + f * HOP : s + f * HOP + CONTEXT + HOP] for f in range(frames)]) for s in starts
    ]
    return np.stack(windows).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu-x86-avx2")
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgeq-streaming-vad"))
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--max-drop", type=float, help="the budget's decision-agreement drop (points)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = streams(args.streams)
    np.savez(args.out / "calib.npz", input=data[0::2])
    np.savez(args.out / "eval.npz", input=data[1::2])
    recipe = {
        "target": args.target,
        "calib": "calib.npz",
        "eval": "eval.npz",
        "inputs": {"sr": {"constant": RATE}, "state": {"batch_axis": 1, "state_from": "stateN"}},
    }
    if args.max_drop is not None:
        recipe["budget"] = {"max_drop": args.max_drop}
    (args.out / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    command = [sys.executable, "-P", "-m", "edgeq", "compile", str(MODEL), "--recipe", "recipe.yaml"]
    command += ["-o", "compiled", "--force", "-q"]
    print(" ".join(command), f"(in {args.out})")
    subprocess.run(command, cwd=args.out, check=True)
    report = json.loads((args.out / "compiled" / "report.json").read_text())
    task = report["accuracy"]["task"]
    shape = " x ".join(map(str, data.shape))
    print(f"streams x frames x samples: {shape}; evaluated on {task['details']['streams']} streams")
    for metric in task["metrics"]:
        print(f"  {metric['name']:<28} fp32 {metric['fp32']:9.4f}  compiled {metric['compiled']:9.4f}")
    print("  abs error by frame (output):", task["details"]["output:abs_error_by_frame"][::4])
    for candidate in report["decision"]["candidates"]:
        speed = ", ".join(f"b{b} {s:.2f}x" for b, s in candidate["speedups"].items())
        print(
            f"  {candidate['name']:<24} {speed}  drop {candidate['task_drop']}  {candidate['problem'] or ''}"
        )
    print("chosen:", report["decision"]["chosen"], "-", report["decision"]["reason"])
    print("latency:", report["feeding"]["latency"])


if __name__ == "__main__":
    main()
