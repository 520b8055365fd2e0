"""The output directory is a contract: it appears whole or not at all, and it is replaced only when it
did not exist at start or `--force` was given, and only if it is still the directory that was checked.

Work goes to a hidden sibling of the resolved output (same filesystem), renamed into place at the end
under a per-output lock, so two compiles to one output never both succeed.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeq.errors import InputError

MARKER = "report.json"  # an existing directory holding this is an edgeq output --force may replace


class OutputAppeared(InputError):
    """The output was created or changed by someone else while the compile ran; ours was kept beside it."""

    def __init__(self, out: Path, kept: Path) -> None:
        self.kept = kept
        super().__init__(
            f"{out} appeared or changed while this compile ran; it was left untouched and this compile's "
            f"output was kept in {kept}"
        )


def resolve_output(out: Path) -> Path:
    """The output path with every symlink (dangling ones too) resolved, once, for the whole compile."""
    return Path(os.path.realpath(Path(out).expanduser()))


def check_output_path(out: Path, force: bool, inputs: Iterable[str | Path] = ()) -> None:
    """Refuse, before any work, an output path that cannot take a fresh compile."""
    out = resolve_output(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is a file; choose a directory path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InputError(f"output directory {out} already exists; choose another or pass --force")
        if not (out / MARKER).is_file():
            raise InputError(f"--force replaces only edgeq outputs; {out} has no {MARKER}")
        _refuse_inputs_inside(out, inputs)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {parent}: {exc.strerror or exc}") from None
    _check_writable(parent)


def _refuse_inputs_inside(out: Path, inputs: Iterable[str | Path]) -> None:
    """--force deletes the old output: an input read from inside it would be deleted with it."""
    for given in inputs:
        if resolve_output(Path(given)).is_relative_to(out):
            raise InputError(
                f"--force would delete {given}: it lives inside the output directory {out}; "
                "copy it elsewhere or choose another -o"
            )


def _check_writable(folder: Path) -> None:
    """Create and remove a hidden directory: permission bits alone miss root, /proc, read-only mounts."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {folder} is not writable")
    try:
        Path(tempfile.mkdtemp(prefix=".edgeq-probe-", dir=folder)).rmdir()
    except OSError as exc:
        raise InputError(f"output folder {folder} is not writable ({exc.strerror or exc})") from None


@contextmanager
def staged_output(out: Path, force: bool = False, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a hidden staging directory; on success it replaces `out`, on any failure it vanishes."""
    final = resolve_output(out)
    inputs = list(inputs)
    check_output_path(final, force, inputs)
    with _output_lock(final):
        check_output_path(final, force, inputs)  # again: another compile may have finished meanwhile
        checked = _identity(final)
        _remove_stale_staging(final)
        staging = final.parent / f".{final.name}.edgeq-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()
        except OSError as exc:
            raise InputError(f"cannot create staging directory {staging}: {exc.strerror or exc}") from None
        try:
            yield staging
            _put_in_place(staging, final, checked)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _identity(path: Path) -> tuple[int, ...] | None:
    """What --force was checked against, for a non-empty directory: its inode (which a new directory
    may reuse) and change times (which any file added, removed or renamed in it moves)."""
    try:
        stat = path.lstat()
    except FileNotFoundError:
        return None
    if not (path.is_dir() and any(path.iterdir())):
        return None
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns


def _put_in_place(staging: Path, final: Path, checked: tuple[int, ...] | None) -> None:
    """Rename `staging` to `final` if `final` is still what was checked at start, else keep it beside."""
    if checked is None:
        if _empty_dir(final):
            final.rmdir()  # empty at start, or made empty meanwhile: nothing is lost
        if not os.path.lexists(final):
            staging.rename(final)
            return
    elif _identity(final) == checked and (final / MARKER).is_file():
        retired = staging.with_name(staging.name + "-old")
        final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
        return
    kept = final.with_name(f"{final.name}.edgeq-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    staging.rename(kept)
    raise OutputAppeared(final, kept)


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


@contextmanager
def _output_lock(final: Path) -> Iterator[None]:
    """An exclusive lock per output path, held for the whole compile; a second compile refuses."""
    lock_path = final.parent / f".{final.name}.edgeq-lock"
    while True:
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot create lock file {lock_path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
            os.close(descriptor)
            raise InputError(
                f"another edgeq compile (pid {holder}) is writing {final}; wait for it or choose another -o"
            ) from None
        if _same_file(descriptor, lock_path):  # not unlinked by a holder that finished meanwhile
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(descriptor)


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _remove_stale_staging(out: Path) -> None:
    """Clear staging dirs left by a killed compile of the same output (their process is gone)."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.edgeq-(\d+)-[0-9a-f]{{8}}(-old)?")
    for candidate in out.parent.glob(f".{out.name}.edgeq-*"):
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
