"""The integer format QAT trains for, taken from a target so training and deployment agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeq.errors import InputError
from edgeq.targets import TargetSpec, load_target


@dataclass(frozen=True)
class QatFormat:
    """8-bit per-tensor activations and symmetric per-channel weights (narrow range).

    Symmetric activations train as int8 (zero point 0, TensorRT); asymmetric ones as uint8 with a
    learned zero point, which is the same grid as int8 with zero point - 128 (ARM targets).
    `reduce_range` trains 8-bit weights on the 7-bit grid ORT uses on CPUs without VNNI.
    """

    symmetric_activations: bool = False
    reduce_range: bool = False

    @classmethod
    def from_target(cls, target: str | Path | TargetSpec) -> QatFormat:
        spec = target if isinstance(target, TargetSpec) else load_target(target)
        if spec.precision != "int8":
            raise InputError(
                f"target {spec.name!r} computes in {spec.precision}, not int8: "
                "quantization-aware training has nothing to train for"
            )
        scheme = spec.quantization.int8
        return cls(scheme.activations.symmetric, scheme.weights.reduce_range)

    def weight_bits(self, bits: int) -> int:
        """The trained bit width: 8-bit weights drop to 7 under reduce_range."""
        return 7 if bits == 8 and self.reduce_range else bits
