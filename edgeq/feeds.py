"""In-memory calibration and evaluation data for the API: arrays, dicts, feed iterables, DataLoaders.

Everything becomes the same `{name: array}` a calibration file holds (first axis = samples), then is
checked like a file. torch is never imported here: tensors are recognised by their `.numpy()`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeq.data import Arrays, InputSignature
from edgeq.errors import InputError

EXTRA = "labels"  # the one extra a (inputs..., labels) tuple may carry, for task evaluators


def is_file_data(value: Any) -> bool:
    """Data given as a path (a recipe value) rather than in memory."""
    return value is None or isinstance(value, str | os.PathLike)


def to_arrays(value: Any, inputs: Sequence[InputSignature], what: str) -> Arrays:
    """`value` as one array per name: an array or tensor (one-input models), a dict of them, or an
    iterable of batches (dicts, tensors, or (inputs..., labels) tuples), concatenated on axis 0."""
    if _is_array(value):
        return _single(value, inputs, what)
    if isinstance(value, Mapping):
        return {_key(k, what): _array(v, f"{what}[{k!r}]") for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return _concatenate(value, inputs, what)
    raise InputError(
        f"{what} must be a .npz path, an array, a dict of arrays or an iterable of feed dicts; "
        f"got {describe(value)}"
    )


def _concatenate(batches: Iterable[Any], inputs: Sequence[InputSignature], what: str) -> Arrays:
    parts: dict[str, list[np.ndarray]] = {}
    for number, batch in enumerate(batches):
        where = f"{what}, batch {number}"
        if _is_array(batch):
            feed = _single(batch, inputs, where)
        elif isinstance(batch, Mapping):
            feed = {_key(k, where): _array(v, f"{where}[{k!r}]") for k, v in batch.items()}
        elif isinstance(batch, tuple | list):
            feed = _positional(batch, inputs, where)
        else:
            raise InputError(f"{where} is {describe(batch)}: yield dicts {{input name: array}} or arrays")
        if parts and set(feed) != set(parts):
            raise InputError(f"{where} holds {sorted(feed)}, the first batch held {sorted(parts)}")
        if _one_sample(feed, inputs):
            feed = {name: array[None] for name, array in feed.items()}
        for name, array in feed.items():
            parts.setdefault(name, []).append(array)
    if not parts:
        raise InputError(f"{what} yielded no batches")
    try:
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}
    except ValueError:
        shapes = {name: sorted({c.shape[1:] for c in chunks}) for name, chunks in parts.items()}
        raise InputError(f"{what}: batches differ in shape after the first axis: {shapes}") from None


def _single(value: Any, inputs: Sequence[InputSignature], what: str) -> Arrays:
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise InputError(
            f"{what} is one array but the model has {len(inputs)} inputs ({names}): "
            "pass a dict {name: array}"
        )
    return {inputs[0].name: _array(value, what)}


def _positional(items: Sequence[Any], inputs: Sequence[InputSignature], what: str) -> Arrays:
    """(x,) or (x, labels) for one input; (a, b, ...) in the model's input order, optionally + labels."""
    names = [i.name for i in inputs]
    if len(items) not in (len(names), len(names) + 1):
        raise InputError(
            f"{what} has {len(items)} items; the model takes {len(names)} inputs ({', '.join(names)}), "
            f"optionally followed by {EXTRA}: yield dicts to name anything else"
        )
    named = zip([*names, EXTRA], items, strict=False)
    return {name: _array(item, f"{what}[{name!r}]") for name, item in named}


def _one_sample(feed: Arrays, inputs: Sequence[InputSignature]) -> bool:
    """A feed whose model inputs lack the batch axis (one dim fewer than the input) is one sample."""
    return any(i.name in feed and feed[i.name].ndim == len(i.shape) - 1 for i in inputs)


def _key(key: Any, what: str) -> str:
    if not isinstance(key, str):
        raise InputError(f"{what}: keys must be input names (str), got {describe(key)}")
    return key


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or _is_tensor(value)


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "numpy")


def _array(value: Any, what: str) -> np.ndarray:
    if _is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list | tuple | int | float | bool | np.generic):
        try:
            return np.asarray(value)
        except ValueError:
            raise InputError(f"{what} is a ragged {type(value).__name__}: give equal-length rows") from None
    raise InputError(f"{what} must be an array or tensor, got {describe(value)}")


def describe(value: Any) -> str:
    """A value named by type, dtype and shape, never by its contents."""
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k!r}: {describe(v)}" for k, v in list(value.items())[:4])
        return f"dict {{{inner}{', ...' if len(value) > 4 else ''}}}"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} {dtype} {list(shape)}"
    return type(value).__name__
