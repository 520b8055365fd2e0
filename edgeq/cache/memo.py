"""One result computed once per key: looked up in the active cache, else computed and stored."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from edgeq.cache.keys import content_key
from edgeq.cache.store import active_cache

T = TypeVar("T")
UNREADABLE = (OSError, EOFError, ValueError, pickle.UnpicklingError, AttributeError, ImportError)


def memo(
    kind: str,
    parts: Callable[[], Mapping[str, Any]],
    compute: Callable[[], T],
    save: Callable[[T, Path], None] | None = None,
    load: Callable[[Path], T] | None = None,
) -> T:
    """`compute()`, or its stored result for the key of `kind` and `parts()` (only built when a cache
    is active). `save`/`load` write and read the result in an entry's folder (default: a pickle)."""
    cache = active_cache()
    if cache is None:
        return compute()
    key = content_key(kind, parts())
    entry = cache.get(key)
    if entry is not None:
        try:
            return (load or _load_pickle)(entry)
        except UNREADABLE:  # evicted while read, or written by an incompatible build: recompute
            pass
    value = compute()
    cache.put(key, lambda folder: (save or _save_pickle)(value, folder))
    return value


def _save_pickle(value: Any, folder: Path) -> None:
    (folder / "value.pickle").write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def _load_pickle(folder: Path) -> Any:
    return pickle.loads((folder / "value.pickle").read_bytes())
