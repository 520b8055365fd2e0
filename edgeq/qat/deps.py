"""Brevitas is an optional extra: import it only when quantization-aware training is asked for."""

from __future__ import annotations

from types import ModuleType

from edgeq.errors import InputError

INSTALL_HINT = "pip install 'edgeq[qat]'"


def require_brevitas() -> ModuleType:
    """The brevitas module, or one clear line naming what is missing and how to install it.

    onnxoptimizer is checked too: Brevitas' ONNX export refuses to run without it.
    """
    try:
        import brevitas
        import onnxoptimizer  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "brevitas"
        raise InputError(
            f"quantization-aware training needs Brevitas and onnxoptimizer ({missing} is not "
            f"installed): {INSTALL_HINT}"
        ) from None
    return brevitas
