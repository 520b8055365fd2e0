"""Shared fixtures: every test gets its own runs store, so nothing touches the home directory."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_runs_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EDGEQ_RUNS points at a fresh tmp file and $EDGEQ_CACHE at a fresh folder (subprocesses inherit
    them): no test reuses another's results."""
    path = tmp_path_factory.mktemp("runs") / "runs.sqlite"
    monkeypatch.setenv("EDGEQ_RUNS", str(path))
    monkeypatch.setenv("EDGEQ_CACHE", str(tmp_path_factory.mktemp("cache")))
    return path


FAST_TARGET = str(Path(__file__).parent / "data" / "cpu-fast.yaml")
REPO = Path(__file__).resolve().parents[1]  # shipped models and data, wherever pytest runs from


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (VNNI or AMX): without them int8 kernels
    pair u8 x s8 products in int16, run slower and saturate full-range weights."""
    from edgeq.runtime.machine import INT8_DOT_FLAGS, describe_machine

    return bool(INT8_DOT_FLAGS & set(describe_machine().flags))


def native_reduce_range() -> bool:
    """Whether this CPU's shipped target uses 7-bit weights: on AVX2 without VNNI ONNX Runtime's u8 x s8
    kernels saturate full 8-bit weights, so a test of INT8 fidelity quantizes as the CPU needs."""
    from edgeq.targets import load_target

    return load_target("native").quantization.int8.weights.reduce_range


@pytest.fixture(scope="session")
def reference_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """{name: (model.onnx, calib.npz)} for an MLP, a CNN with BatchNorm and a transformer encoder."""
    from tests.reference_models import REFERENCE_MODELS, build_reference

    folder = tmp_path_factory.mktemp("reference")
    return {name: build_reference(name, folder) for name in REFERENCE_MODELS}


@dataclass(frozen=True)
class Corpus:
    """The good inputs CLI cases start from: a tiny MLP, its calibration file, a fast target."""

    root: Path
    model: Path
    calib: Path
    target: Path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    from tests.bad_inputs import make

    root = tmp_path_factory.mktemp("corpus")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's exporter deprecation notices
        model = make.tiny_mlp(root)
    calib = make.write_npz(root, "calib.npz", make.good_calib())
    return Corpus(root, model, calib, make.fast_target(root))
