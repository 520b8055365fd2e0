"""The cache directory: write-once entries put in place by one rename, evicted least recently used.

An entry is a folder `entries/<key>/` filled in a private temporary folder and renamed into place:
readers see a whole entry or none, and of two processes computing the same key the first rename
wins (the second discards its copy). Reading an entry touches its folder's mtime (the access time
LRU eviction reads); eviction runs under an exclusive lock and renames an entry away before deleting it.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from edgeq.errors import InputError

DEFAULT_MAX_MB = 4096
_ACTIVE: contextvars.ContextVar[Cache | None] = contextvars.ContextVar("edgeq_cache", default=None)


def cache_root() -> Path:
    """`$EDGEQ_CACHE`, else `$XDG_CACHE_HOME/edgeq`, else `~/.cache/edgeq`."""
    given = os.environ.get("EDGEQ_CACHE")
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeq"


def max_bytes() -> int:
    """The size cap: `$EDGEQ_CACHE_MAX_MB` megabytes (default 4096)."""
    given = os.environ.get("EDGEQ_CACHE_MAX_MB", str(DEFAULT_MAX_MB))
    try:
        megabytes = int(given)
    except ValueError:
        megabytes = 0
    if megabytes < 1:
        raise InputError(f"$EDGEQ_CACHE_MAX_MB must be a positive integer, got {given!r}")
    return megabytes << 20


class Cache:
    """One cache directory, capped at `limit` bytes."""

    def __init__(self, root: Path | str | None = None, limit: int | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()
        self.limit = limit if limit is not None else max_bytes()

    @property
    def entries(self) -> Path:
        return self.root / "entries"

    def get(self, key: str) -> Path | None:
        """The entry's folder (its access time renewed), or None."""
        entry = self.entries / key
        try:
            os.utime(entry)
        except OSError:
            return None
        return entry

    def put(self, key: str, fill: Callable[[Path], None]) -> Path | None:
        """Fill a new entry by `fill(folder)` and put it in place (None when the cache cannot be
        written: a cache never fails a compile); an entry another process put first is kept."""
        temporary = self.root / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        entry = self.entries / key
        try:
            temporary.mkdir(parents=True)
            self.entries.mkdir(exist_ok=True)
            fill(temporary)
            (temporary / ".size").write_text(str(_folder_bytes(temporary)))
            os.rename(temporary, entry)
        except Exception:  # noqa: BLE001 - full disk, read-only cache, a value that cannot be
            # written, or another process's entry already there: never a failed compile
            shutil.rmtree(temporary, ignore_errors=True)
            return self.get(key)
        self.evict()
        return entry

    def evict(self) -> list[str]:
        """Remove least recently used entries until the cache is within its limit; their keys."""
        removed = []
        with self._lock():
            entries = []
            for entry in self.entries.iterdir():
                with contextlib.suppress(OSError, ValueError):
                    entries.append((entry.stat().st_mtime, int((entry / ".size").read_text()), entry))
            total = sum(size for _, size, _ in entries)
            for _, size, entry in sorted(entries, key=lambda e: e[0]):
                if total <= self.limit:
                    break
                doomed = self.root / "tmp" / f"evicted.{entry.name}.{uuid.uuid4().hex[:8]}"
                with contextlib.suppress(OSError):
                    os.rename(entry, doomed)
                    shutil.rmtree(doomed, ignore_errors=True)
                    total -= size
                    removed.append(entry.name)
        return removed

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@contextlib.contextmanager
def using_cache(cache: Cache | None) -> Iterator[None]:
    """Make `cache` the one the stages below read and fill (None: no caching) for this block."""
    token = _ACTIVE.set(cache)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_cache() -> Cache | None:
    """The cache of the compile running in this context, or None."""
    return _ACTIVE.get()


def stamp() -> str:
    """A UTC time for 'reused from a run at ...'."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
