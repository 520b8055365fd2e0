"""The `edgeq` command's entry point: Ctrl-C while edgeq is still loading is one line, not a traceback."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """Ctrl-C during the imports is held until they end: raised inside a C++ extension's module
    init (onnx's nanobind bindings) it aborts the process instead of unwinding."""
    interrupted: list[int] = []
    previous = signal.getsignal(signal.SIGINT) or signal.SIG_DFL
    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda signum, _frame: interrupted.append(signum))
    try:
        from edgeq.cli import main as run_cli
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        sys.stderr.write("edgeq: interrupted while starting; nothing was done\n")
        sys.exit(130)
    run_cli()
