"""In-memory calibration and evaluation data for the API: arrays, dicts, feed iterables, DataLoaders.

Everything becomes the same `{name: array}` a calibration file holds (each input as the model takes
it, batch on its declared axis), then is arranged and checked like a file. torch is never imported
here: tensors are recognised by their `.numpy()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeq.data import Arrays, InputSignature
from edgeq.errors import InputError
from edgeq.runtime.roles import InputRoles, default_roles

EXTRA = "labels"  # the one extra a (inputs..., labels) tuple may carry, for task evaluators


def is_file_data(value: Any) -> bool:
    """Data given as a path (a recipe value) rather than in memory."""
    return value is None or isinstance(value, str | os.PathLike)


def to_arrays(
    value: Any, inputs: Sequence[InputSignature], what: str, resolve: Resolve | None = None
) -> tuple[Arrays, InputRoles]:
    """`value` as one array per name, as the model takes them (see `edgeq.data.arrange`), and the
    input roles `resolve` gives for it: an array or tensor (one-input models), a dict of them, an
    iterable of batches (dicts, tensors, or (inputs..., labels) tuples) joined along each input's
    batch axis, or a list of streams (each a list of feed dicts, one per frame)."""
    resolve = resolve or (lambda _: default_roles([i.name for i in inputs]))
    if _is_array(value):
        arrays = _single(value, inputs, what)
        return arrays, resolve(arrays)
    if isinstance(value, Mapping):
        arrays = {_key(k, what): _array(v, f"{what}[{k!r}]") for k, v in value.items()}
        return arrays, resolve(arrays)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = list(value)
        if items and all(_is_stream(item) for item in items):
            streams = [
                [_feed(f, inputs, f"{what}, stream {s}, frame {n}") for n, f in enumerate(stream)]
                for s, stream in enumerate(items)
            ]
            roles = resolve(_probe([f for stream in streams for f in stream], inputs))
            return _streams(streams, inputs, roles, what), roles
        feeds = [_feed(batch, inputs, f"{what}, batch {number}") for number, batch in enumerate(items)]
        roles = resolve(_probe(feeds, inputs))
        return _join(feeds, inputs, roles, what), roles
    raise InputError(
        f"{what} must be a .npz path, an array, a dict of arrays, an iterable of feed dicts or a list "
        f"of streams (lists of feed dicts); got {describe(value)}"
    )


Resolve = Callable[[Arrays], InputRoles]
"""The input roles for data (from the recipe and the graph; a scalar's one value makes a constant)."""


def _is_stream(item: Any) -> bool:
    return isinstance(item, list | tuple) and bool(item) and all(isinstance(f, Mapping) for f in item)


def _feed(batch: Any, inputs: Sequence[InputSignature], where: str) -> Arrays:
    """One call's data (a dict, an array or an (inputs..., labels) tuple) as named arrays."""
    if _is_array(batch):
        return _single(batch, inputs, where)
    if isinstance(batch, Mapping):
        return {_key(k, where): _array(v, f"{where}[{k!r}]") for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return _positional(batch, inputs, where)
    raise InputError(f"{where} is {describe(batch)}: yield dicts {{input name: array}} or arrays")


def _probe(feeds: list[Arrays], inputs: Sequence[InputSignature]) -> Arrays:
    """Each scalar input's values over the feeds (what role inference reads: one value = a constant)."""
    scalars = [i.name for i in inputs if not i.shape]
    return {
        name: np.stack([f[name] for f in feeds])
        for name in scalars
        if all(name in f and not f[name].ndim for f in feeds)
    }


def _join(feeds: list[Arrays], inputs: Sequence[InputSignature], roles: InputRoles, what: str) -> Arrays:
    """Feeds joined along each input's batch axis (stacked where it has none); constants and carried
    states are left to their roles."""
    if not feeds:
        raise InputError(f"{what} yielded no batches")
    first = feeds[0]
    for number, feed in enumerate(feeds):
        if set(feed) != set(first):
            raise InputError(
                f"{what}, batch {number} holds {sorted(feed)}, the first batch held {sorted(first)}"
            )
    ranks = {i.name: len(i.shape) for i in inputs}
    one_sample = _one_sample(first, inputs, roles)
    joined = {}
    for name in first:
        role = roles.inputs.get(name)
        if role is not None and (role.constant is not None or role.state_from):
            joined[name] = first[name]
            continue
        axis = 0 if role is None else role.batch_axis
        chunks = [f[name] for f in feeds]
        try:
            if axis is None or name not in ranks:
                joined[name] = np.stack(chunks) if one_sample or axis is None else np.concatenate(chunks)
            else:
                joined[name] = np.stack(chunks, axis) if one_sample else np.concatenate(chunks, axis)
        except ValueError:
            shapes = sorted({c.shape for c in chunks})
            raise InputError(
                f"{what}: batches differ in shape off the batch axis: {name!r} {shapes}"
            ) from None
    return joined


def _streams(
    streams: list[list[Arrays]], inputs: Sequence[InputSignature], roles: InputRoles, what: str
) -> Arrays:
    """Streams of per-frame feeds as [streams, frames, ...] arrays (one stream per feed, frames in order)."""
    if not roles.streaming:
        raise InputError(
            f"{what} is a list of streams, but no input carries a state: declare one "
            "(inputs: {name: {state_from: output}}) or pass a flat list of feeds"
        )
    lengths = sorted({len(stream) for stream in streams})
    if len(lengths) > 1:
        raise InputError(f"{what}: streams have {lengths[0]} to {lengths[-1]} frames; cut them to one length")
    joined = [_join(stream, inputs, roles, f"{what}, stream {s}") for s, stream in enumerate(streams)]
    framed = [
        i.name
        for i in inputs
        if roles.inputs[i.name].constant is None and not roles.inputs[i.name].state_from
    ]
    arrays = {name: value for name, value in joined[0].items() if name not in framed}
    for name in framed:
        axis = roles.inputs[name].batch_axis
        arrays[name] = np.stack([np.moveaxis(j[name], axis, 0) if axis else j[name] for j in joined])
    return arrays


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


def _one_sample(feed: Arrays, inputs: Sequence[InputSignature], roles: InputRoles) -> bool:
    """A feed whose batched inputs lack the batch axis (one dim fewer than the input) is one sample."""
    return any(
        i.name in feed and feed[i.name].ndim == len(i.shape) - 1
        for i in inputs
        if roles.inputs[i.name].batch_axis is not None and roles.inputs[i.name].constant is None
    )


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
