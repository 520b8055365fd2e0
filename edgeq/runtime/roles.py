"""How each model input is fed: its batch axis (or none), a constant, or a state carried from an output.

edgeq's data keeps samples on axis 0 of every array; these roles say how a sample becomes a model call.
They travel inside the model (metadata key `edgeq.inputs`), so every session on it and on each of its
compiled forms feeds it the same way, and a deployed artifact says how it is fed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

METADATA_KEY = "edgeq.inputs"


@dataclass(frozen=True)
class InputRole:
    """One input: where a call's samples go (`batch_axis`, None: one sample per call), or the value fed
    on every call (`constant`), or the output whose value the next frame gets (`state_from`)."""

    name: str
    batch_axis: int | None = 0
    constant: np.ndarray | None = None
    state_from: str | None = None
    how: str = "default"
    """`declared` (recipe), `inferred` (from the graph or the data) or `default` (batch on axis 0)."""

    def describe(self) -> str:
        """How the input is fed, in words (the report and `edgeq inspect` show it)."""
        if self.constant is not None:
            return f"constant {self.constant.tolist()!r}, computed into the artifact"
        batch = "no batch axis" if self.batch_axis is None else f"batch axis {self.batch_axis}"
        state = (
            f"state carried from output {self.state_from!r}, starting at zeros; " if self.state_from else ""
        )
        return state + batch


@dataclass(frozen=True)
class InputRoles:
    """Every input's role and the axis each output holds a call's samples on (None: no batch axis)."""

    inputs: dict[str, InputRole]
    output_axes: dict[str, int | None] = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        """State is carried output → input: data are streams of frames, run frame by frame."""
        return any(role.state_from for role in self.inputs.values())

    @property
    def batched(self) -> bool:
        """A call can hold several samples: every input fed from the data has a batch axis."""
        return all(r.batch_axis is not None for r in self.inputs.values() if r.constant is None)

    @property
    def plain(self) -> bool:
        """Every input has its batch on axis 0 and nothing else: the layout edgeq assumed before roles."""
        return all(
            r.batch_axis == 0 and r.constant is None and not r.state_from for r in self.inputs.values()
        )

    def output_axis(self, name: str) -> int | None:
        """The axis of output `name` that holds the call's samples (axis 0 when nothing says otherwise)."""
        batch_inputs = any(r.batch_axis is not None for r in self.inputs.values() if r.constant is None)
        return self.output_axes.get(name, 0 if batch_inputs else None)

    def to_json(self) -> str:
        def entry(role: InputRole) -> dict:
            constant = None
            if role.constant is not None:
                constant = {"value": role.constant.tolist(), "dtype": role.constant.dtype.str}
            return {
                "batch_axis": role.batch_axis,
                "constant": constant,
                "state_from": role.state_from,
                "how": role.how,
            }

        return json.dumps(
            {"inputs": {n: entry(r) for n, r in self.inputs.items()}, "output_axes": self.output_axes}
        )

    @classmethod
    def from_json(cls, text: str) -> InputRoles:
        data = json.loads(text)
        inputs = {}
        for name, entry in data["inputs"].items():
            constant = entry["constant"]
            value = (
                None if constant is None else np.asarray(constant["value"], dtype=np.dtype(constant["dtype"]))
            )
            inputs[name] = InputRole(name, entry["batch_axis"], value, entry["state_from"], entry["how"])
        return cls(inputs, dict(data["output_axes"]))


def default_roles(names: list[str]) -> InputRoles:
    """Batch on axis 0 of every input: how a model without declared roles is fed."""
    return InputRoles({name: InputRole(name) for name in names})


def roles_in_metadata(metadata: Mapping[str, str], names: list[str]) -> InputRoles:
    """The roles a model carries in its metadata, or the default ones."""
    text = metadata.get(METADATA_KEY)
    return InputRoles.from_json(text) if text else default_roles(names)


def to_call(role: InputRole, samples: np.ndarray) -> np.ndarray:
    """Samples of one input (axis 0) as one call's tensor: moved to the batch axis, or the one sample."""
    if role.batch_axis is None:
        if len(samples) != 1:
            raise ValueError(
                f"input {role.name!r} has no batch axis: one sample per call, got {len(samples)}"
            )
        return samples[0]
    return np.moveaxis(samples, 0, role.batch_axis) if role.batch_axis else samples


def from_call(value: np.ndarray, axis: int | None) -> np.ndarray:
    """One call's output as samples on axis 0 (a call without batch axis is one sample)."""
    if axis is None or value.ndim <= axis:
        return value[None]
    return np.moveaxis(value, axis, 0) if axis else value
