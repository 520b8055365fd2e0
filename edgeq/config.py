"""Typed configuration from YAML: dataclasses filled from dicts, with errors that name the bad key."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from edgeq.errors import InputError

T = TypeVar("T")

LIMITS = {  # resource caps: each overridable by its environment variable, checked before any work
    "EDGEQ_MAX_YAML_BYTES": 1 << 20,  # a recipe or target file
    "EDGEQ_MAX_YAML_NODES": 100_000,  # values in it once aliases are expanded (a "billion laughs" file)
    "EDGEQ_MAX_YAML_DEPTH": 64,  # nesting of mappings and lists
    "EDGEQ_MAX_DATA_BYTES": 2 << 30,  # a calibration or evaluation .npz, decompressed
    "EDGEQ_MAX_THREADS": 1024,  # a target's latency threads
    "EDGEQ_MAX_BLOCK_SIZE": 1 << 16,  # 4-bit block size
}


def limit(name: str) -> int:
    """The cap `name` of `LIMITS`, or the positive integer its environment variable sets instead."""
    given = os.environ.get(name)
    if given is None:
        return LIMITS[name]
    try:
        value = int(given)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"${name} must be a positive integer, got {given!r}")
    return value


def over_limit(name: str, what: str, value: int) -> InputError:
    """The one-line refusal of a capped value, naming the cap and how to raise it."""
    return InputError(f"{what} is {value:,}, over the cap of {limit(name):,}; set ${name} to allow more")


def load_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping read with the safe loader (no executable tags), or one clear error.

    Size, nesting and alias expansion are capped (`LIMITS`): a small file must not expand to gigabytes."""
    try:
        size = path.stat().st_size
        if size > limit("EDGEQ_MAX_YAML_BYTES"):
            raise over_limit("EDGEQ_MAX_YAML_BYTES", f"{what} {path} size in bytes", size)
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise InputError(f"{what} {path} nests too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{what} {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must be a mapping of keys to values")
    check_expanded_size(data, f"{what} {path}")
    return data


def check_expanded_size(data: Any, what: str) -> None:
    """Refuse data whose aliases expand past the node cap or that nests past the depth cap; the walk
    stops at the cap, so checking a hostile file is itself bounded."""
    max_nodes, max_depth = limit("EDGEQ_MAX_YAML_NODES"), limit("EDGEQ_MAX_YAML_DEPTH")
    count, stack = 1, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, dict | list | tuple):
            continue
        if depth > max_depth:
            raise over_limit("EDGEQ_MAX_YAML_DEPTH", f"{what}: the nesting depth", depth)
        children = list(value.values()) if isinstance(value, dict) else value
        count += len(children)
        if count > max_nodes:
            raise over_limit(
                "EDGEQ_MAX_YAML_NODES", f"{what}: the number of values (aliases expanded)", count
            )
        stack.extend((child, depth + 1) for child in children)


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from `data`, checking keys and value types; `where` prefixes errors."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        allowed = ", ".join(fields)
        raise InputError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {allowed}")
    hints = get_type_hints(cls)
    values = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check `value` against a type hint, converting nested dicts to dataclasses."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, where)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0])
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise InputError(f"{where}: {value!r} is not allowed; choose one of {choices}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise InputError(f"{where} must be a list, got {_describe(value)}")
        (item,) = get_args(hint)[:1]
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where} must be a mapping, got {_describe(value)}")
        key_hint, value_hint = get_args(hint) or (Any, Any)
        return {_key(key_hint, k, where): _coerce(value_hint, v, f"{where}[{k!r}]") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise InputError(f"{where} must be a {hint.__name__}, got {_describe(value)}")
    if not isinstance(value, hint):
        raise InputError(f"{where} must be a {hint.__name__}, got {_describe(value)}")
    return value


def _key(hint: Any, key: Any, where: str) -> Any:
    """A mapping key as its hinted type: JSON writes every key as a string (batch sizes are ints)."""
    if hint is int and isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            raise InputError(f"{where}: key {key!r} must be an integer") from None
    return _coerce(hint, key, f"{where} key")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"
