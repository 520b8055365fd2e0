"""User-facing errors: each carries one line for the user and the process exit code."""

from __future__ import annotations


class EdgeqError(Exception):
    """A problem the user can fix; the CLI prints the message alone and exits with `exit_code`."""

    exit_code = 2


class InputError(EdgeqError):
    """Bad model, data, recipe or path given by the user."""


class ParityError(EdgeqError):
    """The exported ONNX model does not reproduce the torch model within tolerance."""


class GateError(EdgeqError):
    """A quality or speed gate failed; the report was still written."""

    exit_code = 3


class InternalError(Exception):
    """edgeq's own output is wrong, never the user's input: the CLI reports an internal error, exit 1."""
