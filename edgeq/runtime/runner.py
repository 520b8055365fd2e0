"""What every runtime's runner shares: whole arrays predicted in batches, inputs fed by their roles,
a fixed-batch model padded. A runtime supplies only its feeds, one call and a timer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from edgeq.runtime.roles import InputRoles, default_roles, from_call, to_call
from edgeq.runtime.timing import Timer


class BatchRunner(ABC):
    """A loaded model that predicts whole arrays (axis 0 = samples) in batches of `batch_size`,
    feeding each input by its role (see `edgeq.runtime.roles`): constants added, samples moved to
    the declared batch axis, streams run frame by frame with their state carried.

    A subclass sets `inputs` (name -> the runtime's input info, with `shape`), `dtypes` (name -> the
    numpy dtype it takes) and `output_names`, calls `set_roles` when it loads, and implements `run`
    and `timed`."""

    inputs: Mapping[str, Any]
    dtypes: Mapping[str, Any]
    output_names: list[str]
    roles: InputRoles
    fixed_batch: int | None
    batch_size: int

    def set_roles(self, roles: InputRoles, batch_size: int) -> None:
        """Feed by `roles`: calls of `batch_size` samples, or of the batch the model fixes, or of one
        sample where an input has no batch axis."""
        self.roles = roles
        self.fixed_batch = fixed_batch(self.inputs.values(), roles)
        self.batch_size = self.fixed_batch or batch_size if roles.batched else 1

    def feeds(
        self, data: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None, frame: int = 0
    ) -> dict[str, np.ndarray]:
        """One call's inputs for samples [start, stop) of `data`, cast to the model's dtypes: each by
        its role; for streams, frame `frame` with the streams' initial state."""
        roles, streaming = self.roles.inputs, self.roles.streaming
        feeds = {}
        for name in self.inputs:
            role = roles[name]
            if role.constant is not None:
                value = role.constant
            else:
                samples = data[name][start:stop]
                value = to_call(role, samples[:, frame] if streaming and not role.state_from else samples)
            feeds[name] = np.ascontiguousarray(value, dtype=self.dtypes[name])
        return feeds

    @abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One call on ready feeds, every output by name."""

    @abstractmethod
    def timed(self, feeds: Mapping[str, np.ndarray]) -> Timer:
        """A timer over `feeds`: n calls, each in ms by the host clock."""

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    def calls(self, data: Mapping[str, np.ndarray], start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
        """The outputs of every call samples [start, stop) take: one call, or for streams one per
        frame, each state input given the output it is carried from on the frame before."""
        feeds = self.feeds(data, start, stop)
        if not self.roles.streaming:
            yield self.padded_run(feeds)
            return
        states = {name: role.state_from for name, role in self.roles.inputs.items() if role.state_from}
        frames = next(
            data[n].shape[1] for n, r in self.roles.inputs.items() if not r.state_from and r.constant is None
        )
        outputs = self.padded_run(feeds)
        yield outputs
        for frame in range(1, frames):
            carried = {name: outputs[source] for name, source in states.items()}
            outputs = self.padded_run(self.feeds(data, start, stop, frame) | carried)
            yield outputs

    def predict(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All outputs for every sample in `data` (axis 0 = samples; for streams [streams, frames, ...])."""
        count = len(next(iter(data[name] for name in self.inputs)))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for start in range(0, count, self.batch_size):
            calls = list(self.calls(data, start, min(start + self.batch_size, count)))
            for name in self.output_names:
                values = [from_call(call[name], self.roles.output_axis(name)) for call in calls]
                parts[name].append(np.stack(values, axis=1) if self.roles.streaming else values[0])
        return {name: np.concatenate(values) for name, values in parts.items()}

    def padded_run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`run`, with a batch shorter than the model's fixed one padded by repeating its first sample
        and the padding's rows cut from every output whose batch axis holds that batch."""
        batched = {
            n: r.batch_axis for n, r in self.roles.inputs.items() if r.batch_axis is not None and n in feeds
        }
        name, axis = next(iter(batched.items()), (None, None))
        rows = feeds[name].shape[axis] if name is not None else 0
        missing = (self.fixed_batch or 0) - rows
        if missing <= 0 or rows == 0:
            return self.run(feeds)
        padded = dict(feeds)
        for name, axis in batched.items():
            first = np.take(feeds[name], [0], axis=axis)
            padded[name] = np.concatenate([feeds[name], np.repeat(first, missing, axis=axis)], axis=axis)
        outputs = self.run(padded)
        cut = {}
        for name, value in outputs.items():
            axis = self.roles.output_axis(name) or 0
            keep = value.ndim > axis and value.shape[axis] == self.fixed_batch
            cut[name] = np.take(value, range(rows), axis=axis) if keep else value
        return cut


def fixed_batch(inputs: Iterable[Any], roles: InputRoles | None = None) -> int | None:
    """The batch every call must have: the smallest size the model's inputs fix on their batch axes,
    or None if it is free. Exports without dynamic axes (most ONNX files in the wild) fix it, often to 1."""
    inputs = list(inputs)
    roles = roles or default_roles([i.name for i in inputs])
    dims = []
    for info in inputs:
        role = roles.inputs.get(info.name)
        axis = None if role is None or role.constant is not None else role.batch_axis
        if (
            axis is not None
            and len(info.shape) > axis
            and isinstance(info.shape[axis], int)
            and info.shape[axis] > 0
        ):
            dims.append(info.shape[axis])
    return min(dims) if dims else None
