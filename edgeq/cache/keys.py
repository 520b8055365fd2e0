"""Cache keys: sha256 of canonical JSON over the inputs of a result and the code that computes it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ("onnx", "onnxruntime", "numpy")


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_arrays(arrays: Mapping[str, np.ndarray], count: int | None = None) -> str:
    """The content of named arrays (the first `count` rows of each when given): name, dtype, shape, bytes."""
    sha = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name][:count] if count is not None else arrays[name])
        sha.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


PRESENTATION = (
    "sweep",
    "dashboard",
)  # edgeq's parts that only show results: no cached result depends on them


@cache
def code_versions() -> dict[str, str | None]:
    """edgeq's version and a hash of its own source (a result computed by other code is never reused),
    with the versions of the libraries whose output a cached result holds."""
    source = Path(__file__).resolve().parents[1]
    sha = hashlib.sha256()
    for path in sorted(source.rglob("*.py")):
        if path.relative_to(source).parts[0] in PRESENTATION:
            continue
        sha.update(str(path.relative_to(source)).encode())
        sha.update(path.read_bytes())
    versions: dict[str, str | None] = {"edgeq-source": sha.hexdigest()[:16]}
    for package in ("edgeq", *PACKAGES):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def content_key(kind: str, parts: Mapping[str, Any]) -> str:
    """The key of a `kind` result computed from `parts` (JSON-able; dataclasses as dicts) by this code."""
    text = json.dumps(
        {"kind": kind, "parts": parts, "versions": code_versions()}, sort_keys=True, default=_plain
    )
    return f"{kind}-{digest_bytes(text.encode())}"


def _plain(value: Any) -> Any:
    """JSON for the values settings hold besides the basic types: paths, tuples via lists, dataclasses."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    if isinstance(value, Path | set | frozenset):
        return sorted(value) if isinstance(value, set | frozenset) else str(value)
    raise TypeError(f"cannot key a cache entry on a {type(value).__name__}")
