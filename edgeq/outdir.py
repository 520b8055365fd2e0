"""Output directories appear whole or not at all: work goes to a hidden sibling, renamed at the end."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeq.errors import InputError

MARKER = "report.json"  # an existing directory holding this is an edgeq output --force may replace


def check_output_path(out: Path, force: bool) -> None:
    """Refuse, before any work, an output path that cannot take a fresh compile."""
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is a file; choose a directory path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InputError(f"output directory {out} already exists; choose another or pass --force")
        if not (out / MARKER).is_file():
            raise InputError(f"--force replaces only edgeq outputs; {out} has no {MARKER}")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {parent}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"output folder {parent} is not writable")


@contextmanager
def staged_output(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a hidden staging directory; on success it replaces `out`, on any failure it vanishes."""
    check_output_path(out, force)
    _remove_stale_staging(out)
    staging = out.resolve().parent / f".{out.name}.edgeq-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            retired = staging.with_name(staging.name + "-old")
            out.rename(retired)
            staging.rename(out)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_stale_staging(out: Path) -> None:
    """Clear staging dirs left by a killed compile of the same output (their process is gone)."""
    for candidate in out.resolve().parent.glob(f".{out.name}.edgeq-*"):
        parts = candidate.name.rsplit("-", 2)
        pid = parts[1] if len(parts) == 3 else ""
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
