"""torch is an optional extra: with it unimportable, ONNX files still compile through the real CLI
and the API, and the torch-only features refuse in one line naming the extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.bad_inputs.cli import assert_refused
from tests.conftest import FAST_TARGET

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "mrl_encoder" / "model.onnx"  # a conv net: bias correction runs im2col
CALIB = ROOT / "calib" / "mrl_digits.npz"
# None in sys.modules makes every `import torch` raise ImportError, as on an install without it.
BLOCK_TORCH = "import sys; sys.modules['torch'] = None; "


def _edgeq_without_torch(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    code = BLOCK_TORCH + "from edgeq.entry import main; main()"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-P", "-c", code, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _recipe(tmp_path: Path, **methods: bool) -> Path:
    recipe = {
        "model": str(MODEL),
        "calib": str(CALIB),
        "target": FAST_TARGET,
        "calibration": {"samples": 32},
        "methods": methods,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_an_onnx_model_compiles_without_torch(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, bias_correction=True)
    result = _edgeq_without_torch("compile", "--recipe", recipe, "-o", "out", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["recipe"]["methods"]["bias_correction"] is True
    assert (tmp_path / "out" / "model.onnx").is_file()


def test_adaround_without_torch_names_the_extra(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, adaround=True)
    result = _edgeq_without_torch("compile", "--recipe", recipe, "-o", "out", cwd=tmp_path)
    assert_refused(result, tmp_path / "out", "AdaRound", "edgeq[torch]")


def test_the_api_compiles_without_torch_and_refuses_other_objects(tmp_path: Path) -> None:
    code = BLOCK_TORCH + (
        "import edgeq\n"
        f"result = edgeq.compile({str(MODEL)!r}, target={FAST_TARGET!r}, calib={str(CALIB)!r},"
        " out='out', runs=False)\n"
        "print(result.artifact.is_file())\n"
        "try:\n"
        "    edgeq.compile(object(), target='cpu-x86-avx2', calib={}, out='other', runs=False)\n"
        "except edgeq.EdgeqError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-P", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True",
        "cannot compile a object: give an ONNX path, ModelProto or nn.Module",
    ]
