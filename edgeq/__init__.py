"""edgeq: prune, quantize, compile and measure representation models for edge targets.

The public names load on first use, so the `edgeq` command starts (and answers Ctrl-C) before
ONNX, ONNX Runtime and the compiler are imported.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "CompileResult": "edgeq.api",
    "compile": "edgeq.api",
    "EdgeqError": "edgeq.errors",
    "Recipe": "edgeq.recipe",
    "load_recipe": "edgeq.recipe",
    "Report": "edgeq.report.schema",
    "load_report": "edgeq.report.read",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edgeq' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
