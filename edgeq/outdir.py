"""Output directories appear whole or not at all: work goes to a hidden sibling, renamed at the end."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
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
    _check_writable(parent)


def _check_writable(folder: Path) -> None:
    """Create and remove a hidden directory: permission bits alone miss root, /proc, read-only mounts."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {folder} is not writable")
    try:
        Path(tempfile.mkdtemp(prefix=".edgeq-probe-", dir=folder)).rmdir()
    except OSError as exc:
        raise InputError(f"output folder {folder} is not writable ({exc.strerror or exc})") from None


@contextmanager
def staged_output(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a hidden staging directory; on success it replaces `out`, on any failure it vanishes."""
    check_output_path(out, force)
    _remove_stale_staging(out)
    staging = out.resolve().parent / f".{out.name}.edgeq-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise InputError(f"cannot create staging directory {staging}: {exc.strerror or exc}") from None
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
    pattern = re.compile(rf"\.{re.escape(out.name)}\.edgeq-(\d+)-[0-9a-f]{{8}}(-old)?")
    for candidate in out.resolve().parent.glob(f".{out.name}.edgeq-*"):
        match = pattern.fullmatch(candidate.name)  # retired "-old" dirs of a killed --force too
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
