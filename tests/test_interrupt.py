"""An interrupted compile (Ctrl-C, SIGTERM) leaves no output, no staging dir, a readable runs store.

The model is wide enough and the calibration set large enough that calibration takes a quarter of a
second on a fast CPU (AMD Zen 5) and seconds on a loaded one; the signal is sent the moment the
progress lines show calibration has begun.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.bad_inputs import make
from tests.bad_inputs.cli import EDGEQ, leftovers, run_edgeq

# Stage lines print when a stage ends: calibration runs right after "prepare" and belongs to the
# static-quantization stage, so the signal lands between these two lines.
CALIBRATION_STARTED = "prepare graph"
CALIBRATION_FINISHED = "quantize: static"
SAMPLES = 20_000


@pytest.fixture(scope="module")
def slow_compile(tmp_path_factory: pytest.TempPathFactory) -> list[str | Path]:
    """`compile` arguments (without -o) whose calibration stage takes seconds."""
    root = tmp_path_factory.mktemp("interrupt")
    model = make.wide_mlp(root)
    calib = make.write_npz(root, "calib.npz", make.good_calib(SAMPLES, make.WIDE[0]))
    return [
        "compile",
        model,
        "--calib",
        calib,
        "--target",
        make.fast_target(root),
        "--calib-samples",
        str(SAMPLES),
    ]


def default_signal_dispositions() -> None:
    """In the child before exec: a shell running pytest in the background ignores SIGINT, and an
    ignored signal stays ignored across exec, so Ctrl-C would never reach the compile under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interrupt_during_calibration(args: list, cwd: Path, signum: int) -> subprocess.CompletedProcess:
    """Start `edgeq ARGS`, wait for calibration to begin, send `signum`, collect the result."""
    process = subprocess.Popen(
        [*EDGEQ, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signal_dispositions,
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        if CALIBRATION_STARTED in line:
            process.send_signal(signum)
            break
    stdout, rest = process.communicate(timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, stdout, "".join(seen) + rest)


def integrity(store: Path) -> str:
    with sqlite3.connect(store) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def recorded_runs(store: Path) -> int:
    with sqlite3.connect(store) as connection:
        return connection.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.parametrize(
    ("signum", "exit_code", "says"),
    [(signal.SIGINT, 130, "no new output and no staging files were left"), (signal.SIGTERM, 143, "")],
    ids=["sigint", "sigterm"],
)
def test_interrupted_compile_leaves_nothing_and_rerun_succeeds(
    signum: int, exit_code: int, says: str, slow_compile: list, tmp_path: Path, isolated_runs_store: Path
) -> None:
    first = run_edgeq(*slow_compile, "--calib-samples", "64", "-q", "-o", tmp_path / "first", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out"

    result = interrupt_during_calibration([*slow_compile, "-o", out], tmp_path, signum)

    assert result.returncode == exit_code, result.stderr
    assert CALIBRATION_STARTED in result.stderr and CALIBRATION_FINISHED not in result.stderr
    assert "Traceback" not in result.stderr
    assert says in result.stderr
    assert not leftovers(out), leftovers(out)
    assert integrity(isolated_runs_store) == "ok"
    assert recorded_runs(isolated_runs_store) == 1

    rerun = run_edgeq(*slow_compile, "--calib-samples", "64", "-q", "-o", out, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "report.json").is_file() and leftovers(out) == [out]
    assert recorded_runs(isolated_runs_store) == 2


def test_ctrl_c_while_edgeq_is_still_loading_is_one_line(slow_compile: list, tmp_path: Path) -> None:
    """The signal lands while the command imports ONNX, ONNX Runtime and the compiler."""
    process = subprocess.Popen(
        [*EDGEQ, *map(str, slow_compile), "-o", str(tmp_path / "out")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signal_dispositions,
    )
    time.sleep(0.25)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
