"""The `edgeq` command's entry point: Ctrl-C while edgeq is still loading is one line, not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from edgeq.cli import main as run_cli
    except KeyboardInterrupt:
        sys.stderr.write("edgeq: interrupted while starting; nothing was done\n")
        sys.exit(130)
    run_cli()
