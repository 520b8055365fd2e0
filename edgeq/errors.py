"""User-facing errors: each carries one line for the user and the process exit code."""

from __future__ import annotations

import re


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


class Interrupted(EdgeqError):
    """Ctrl-C or SIGTERM; the message says what was and was not left on disk."""

    exit_code = 130


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STYLE = re.compile(r"(\x1b\[[0-9;]*m)")


def terminal_safe(text: str, keep_style: bool = False) -> str:
    """`text` with control characters shown as escapes, so a name cannot retitle or drive the terminal.

    `keep_style` passes colour codes (ESC [ … m, what rich emits for a table) and escapes the rest."""
    if not keep_style:
        return _CONTROL.sub(_escaped, text)
    return "".join(
        part if _STYLE.fullmatch(part) else _CONTROL.sub(_escaped, part) for part in _STYLE.split(text)
    )


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode()
