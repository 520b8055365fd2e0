"""Which files a source holds, what kind of data they are, and the seeded sample that is read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from edgeq.errors import InputError

Kind = Literal["images", "table", "audio", "text"]
SUFFIXES: dict[Kind, tuple[str, ...]] = {
    "images": (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"),
    "table": (".csv", ".npy"),
    "audio": (".wav",),
    "text": (".txt", ".jsonl"),
}


def list_files(sources: Sequence[Path], kind: Kind | None) -> tuple[Kind, list[Path]]:
    """Every data file in `sources` (folders searched recursively, sorted), and their one kind."""
    found: list[Path] = []
    for source in sources:
        if source.is_dir():
            found += sorted(p for p in source.rglob("*") if p.is_file() and _kind(p) is not None)
        elif not source.is_file():
            raise InputError(f"calibration source {source} does not exist")
        elif _kind(source) is None and kind is None:
            raise InputError(f"cannot tell the kind of data of {source} from its suffix: pass --kind")
        else:
            found.append(source)
    if kind is not None:
        found = [p for p in found if (_kind(p) or kind) == kind]
    kinds = {_kind(p) or kind for p in found}
    if len(kinds) > 1:
        names = ", ".join(sorted(str(k) for k in kinds))
        raise InputError(f"the sources mix kinds of data ({names}): pass --kind to pick one")
    if not found:
        known = " ".join(s for suffixes in SUFFIXES.values() for s in suffixes)
        raise InputError(f"no data files in {', '.join(map(str, sources))} (looked for {known})")
    return kinds.pop(), found


def _kind(path: Path) -> Kind | None:
    return next((k for k, suffixes in SUFFIXES.items() if path.suffix.lower() in suffixes), None)


def seeded_sample(count: int, samples: int | None, seed: int) -> np.ndarray:
    """Indices of `samples` of `count` items, drawn with `seed` and kept in their original order."""
    if samples is None or samples >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:samples])
