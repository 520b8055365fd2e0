"""Streaming models (a state carried output → input): calibrated and evaluated over whole streams.

A trained GRU detector exported with torch (state `h` [1, batch, 32] in, `hn` out, like silero-vad's
`state`/`stateN`) is compiled through the CLI (npz + declared roles) and the API (lists of streams of
feed dicts); the report's per-frame and decision agreement are checked against the artifact run here
frame by frame. The real silero-vad of the wild-model corpus runs too where the corpus is built.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

import edgeq
from edgeq.data import Arrays, split
from edgeq.frontend.input_roles import resolve_roles, with_roles
from edgeq.quant.calibrate import calibrate_ranges
from edgeq.quant.primitives import QuantFormat
from edgeq.recipe import Calibration, InputSpec
from edgeq.runtime.session import OrtRunner
from tests.bad_inputs.cli import run_edgeq
from tests.conftest import FAST_TARGET
from tests.stream_models import HIDDEN, activity_streams, export_detector

SILERO = Path.home() / ".cache" / "edgeq-wild" / "silero_vad"


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_detector(tmp_path_factory.mktemp("gru") / "detector.onnx")


def loop(model: Path, x: np.ndarray) -> np.ndarray:
    """The detector's probabilities [streams, frames], one stream and one frame per session call."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    probabilities = np.zeros(x.shape[:2], np.float32)
    for stream in range(len(x)):
        h = np.zeros((1, 1, HIDDEN), np.float32)
        for frame in range(x.shape[1]):
            feed = {"x": x[stream, frame][None], "h": h}
            y, h = session.run(["y", "hn"], {n: feed[n] for n in names if n in feed})
            probabilities[stream, frame] = y[0, 0]
    return probabilities


def streaming(model: Path, **specs: InputSpec) -> onnx.ModelProto:
    """The model carrying its roles (declared `specs`, the rest inferred), as a compile stamps them."""
    loaded = onnx.load(str(model))
    return with_roles(loaded, resolve_roles(loaded, specs))


def test_the_runner_batches_streams_and_carries_their_state_like_a_frame_loop(detector: Path) -> None:
    x, _ = activity_streams(5, 12, seed=3)
    runner = OrtRunner(streaming(detector).SerializeToString(), batch_size=2)  # batches of 2, 2, 1 streams
    got = runner.predict({"x": x, "h": np.zeros((5, 1, HIDDEN), np.float32)})
    assert got["y"].shape == (5, 12, 1) and got["hn"].shape == (5, 12, 1, HIDDEN)
    np.testing.assert_allclose(got["y"][..., 0], loop(detector, x), rtol=1e-5, atol=1e-6)


def test_calibration_carries_the_state_through_each_stream(detector: Path) -> None:
    """Ranges come from the states a stream reaches, not from zero state on every frame: the GRU's
    recurrent Gemm (its input is h) reads only its bias when h is zero."""
    x, _ = activity_streams(8, 24, seed=4)
    settings, fmt = Calibration(method="minmax"), QuantFormat(signed=False, symmetric=False)
    streams = {"x": x, "h": np.zeros((8, 1, HIDDEN), np.float32)}
    recurrent = ["/cell/Gemm_1_output_0"]
    carried = calibrate_ranges(streaming(detector), recurrent, streams, settings, fmt)
    frames = {"x": x.reshape(-1, x.shape[-1]), "h": np.zeros((8 * 24, 1, HIDDEN), np.float32)}
    fresh = calibrate_ranges(streaming(detector, h=InputSpec(batch_axis=1)), recurrent, frames, settings, fmt)
    width = {
        name: r[recurrent[0]][1] - r[recurrent[0]][0] for name, r in (("carried", carried), ("fresh", fresh))
    }
    assert width["carried"] > 2 * width["fresh"], width


def stream_recipe(tmp_path: Path, calib: Arrays) -> Path:
    np.savez(tmp_path / "streams.npz", **calib)
    recipe = {
        "target": FAST_TARGET,
        "calib": "streams.npz",
        "inputs": {"x": {"batch_axis": 0}, "h": {"batch_axis": 1, "state_from": "hn"}},
        "task": {"name": "streams", "options": {"threshold": 0.5}},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def check_report(report: dict, artifact: Path, reference: Path, x: np.ndarray) -> None:
    """The report's decision agreement is the one the kept artifact and fp32 give over these streams;
    every other quantized candidate was refused for a measured reason or measured no faster (within
    the timing noise) than the one chosen."""
    feeding = {i["name"]: i for i in report["feeding"]["inputs"]}
    assert report["feeding"]["streams"] is True
    carried = json.loads({p.key: p.value for p in onnx.load(str(artifact)).metadata_props}["edgeq.inputs"])
    assert carried["inputs"]["h"]["state_from"] == "hn", "the artifact says how it is fed"
    assert "state carried from output 'hn'" in feeding["h"]["how"] and "batch axis 1" in feeding["h"]["how"]
    assert "per frame" in report["feeding"]["latency"]
    task = report["accuracy"]["task"]
    assert task["task"] == "streams" and task["primary"] == ["decision_agreement"]
    metrics = {m["name"]: m for m in task["metrics"]}
    want, have = loop(reference, x) > 0.5, loop(artifact, x) > 0.5
    assert metrics["decision_agreement"]["compiled"] == pytest.approx(100 * (want == have).mean())
    assert 10 < metrics["positive_frames"]["fp32"] < 90  # the detector's decisions vary over a stream
    assert {"y:frame_abs_error_p99", "hn:frame_rel_l2_p99", "hn:frame_cosine_min"} <= set(metrics)
    assert len(task["details"]["y:abs_error_by_frame"]) == min(32, x.shape[1])
    decision = report["decision"]
    chosen = next(c for c in decision["candidates"] if c["name"] == decision["chosen"])
    margin = 1 - max(decision["timing_noise"].values())
    for candidate in decision["candidates"]:
        if candidate["name"] not in ("fp32", chosen["name"]):
            assert candidate["task_drop"] is not None
            refused = candidate["problem"] or not candidate["within_budget"]
            outrun = mean_speedup(candidate) * margin <= mean_speedup(chosen)  # the chosen is as fast
            assert refused or outrun, candidate


def mean_speedup(candidate: dict) -> float:
    """The geometric mean over batch sizes the selection ranks candidates by."""
    return float(np.exp(np.mean(np.log(list(candidate["speedups"].values())))))


def test_a_stream_npz_and_declared_roles_compile_from_the_cli(detector: Path, tmp_path: Path) -> None:
    x, _ = activity_streams(12, 20, seed=5)  # [streams, frames, 16]: 6 calibrate, 6 evaluate
    recipe = stream_recipe(tmp_path, {"x": x})
    out = tmp_path / "out"
    result = run_edgeq("compile", detector, "--recipe", recipe, "-o", out, "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    held_out = report["accuracy"]["samples"]
    assert held_out == 6 and report["accuracy"]["task"]["details"]["streams"] == 6
    _, evaluation = split({"x": x}, 12, 0.5)
    check_report(report, out / report["artifact"]["path"], detector, evaluation["x"])


def test_lists_of_streams_of_feed_dicts_compile_from_the_api(detector: Path, tmp_path: Path) -> None:
    """No roles declared: h → hn is inferred from the graph; each feed is one frame of one stream."""
    calib_x, _ = activity_streams(6, 16, seed=6)
    eval_x, _ = activity_streams(4, 16, seed=7)

    def streams(x: np.ndarray) -> list[list[dict[str, np.ndarray]]]:
        zeros = np.zeros((1, 1, HIDDEN), np.float32)
        return [[{"x": frame[None], "h": zeros} for frame in stream] for stream in x]

    result = edgeq.compile(
        detector, out=tmp_path / "out", target=FAST_TARGET, calib=streams(calib_x), eval=streams(eval_x)
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {i["name"]: i["source"] for i in report["feeding"]["inputs"]} == {"x": "default", "h": "inferred"}
    check_report(report, result.artifact, detector, eval_x)


@pytest.mark.skipif(not SILERO.is_dir(), reason="the wild-model corpus is not built on this machine")
def test_silero_vad_compiles_from_its_npz_with_declared_roles(tmp_path: Path) -> None:
    """The real streaming VAD: an If on the scalar sample rate, state [2, batch, 128] on axis 1."""
    recipe = {
        "target": FAST_TARGET,
        "calib": str(SILERO / "calib.npz"),
        "inputs": {"sr": {"constant": 16000}, "state": {"batch_axis": 1, "state_from": "stateN"}},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", SILERO / "model.onnx", "--recipe", tmp_path / "recipe.yaml", "-o", out, "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    feeding = {i["name"]: i["how"] for i in report["feeding"]["inputs"]}
    assert feeding["sr"].startswith("constant 16000") and "stateN" in feeding["state"]
    metrics = {m["name"] for m in report["accuracy"]["task"]["metrics"]}
    assert {"decision_agreement", "output:frame_abs_error_p99", "stateN:frame_cosine_min"} <= metrics
    assert report["quantization"]["counts"]["int8"] > 0, "the If on sr is folded: its Convs can be quantized"
    # the corpus's chunks are random windows the VAD never flags: the report says agreement is moot
    assert any(
        "every fp32 decision of 'output' at 0.5 is negative" in w["message"] for w in report["warnings"]
    )


@pytest.mark.skipif(not SILERO.is_dir(), reason="the wild-model corpus is not built on this machine")
def test_silero_vad_compiles_from_feed_dicts_through_the_api(tmp_path: Path) -> None:
    """Feed dicts as silero's users call it (one 512-sample chunk, the state, sr): a flat list is one
    stream; nothing is declared, the roles are inferred (sr: its one value; state → stateN)."""
    chunks = np.load(SILERO / "calib.npz")["input"]
    zeros = np.zeros((2, 1, 128), np.float32)
    feeds = [{"input": chunk[None], "state": zeros, "sr": np.array(16000)} for chunk in chunks]
    result = edgeq.compile(SILERO / "model.onnx", out=tmp_path / "out", target=FAST_TARGET, calib=feeds)
    how = {i.name: (i.how, i.source) for i in result.report.feeding.inputs}
    assert how["sr"] == ("constant 16000, computed into the artifact", "inferred")
    assert how["state"][0].startswith("state carried from output 'stateN'")
    assert result.report.task.details["frames"] == len(chunks) // 2
