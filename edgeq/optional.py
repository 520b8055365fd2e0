"""Optional extras (torch, transformers, mlflow): imported only when a feature needs them, and a
missing one is one clear line naming the pip command, never a traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeq.errors import InputError


def require(module: str, purpose: str, extra: str) -> ModuleType:
    """`module` imported, or an InputError: "<purpose> needs <module>: pip install 'edgeq[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{purpose} needs {module}: pip install 'edgeq[{extra}]'") from None


def require_torch(purpose: str) -> ModuleType:
    """torch, for the features that run a torch module (export, AdaRound, QAT)."""
    return require("torch", purpose, "torch")
