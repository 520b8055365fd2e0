"""Uniform affine quantization arithmetic, bit-exact with ONNX QuantizeLinear/DequantizeLinear.

Every function here is pure numpy so the QDQ rewrite, calibration and fidelity checks share one
definition of how a float becomes an integer and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE_FLOOR = float(np.finfo(np.float32).eps)
"""Smallest scale we emit: keeps degenerate (all-zero) ranges valid and downstream
products such as bias scales (input_scale * weight_scale) away from float32 underflow."""


@dataclass(frozen=True)
class QuantFormat:
    """How one tensor is quantized: bit width, signedness, zero-point policy and range tweaks."""

    bits: int = 8
    signed: bool = True
    symmetric: bool = True
    narrow_range: bool = False
    reduce_range: bool = False

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"QuantFormat.bits must be 4 or 8, got {self.bits!r}")
        if self.narrow_range and not self.signed:
            raise ValueError("QuantFormat.narrow_range applies to signed formats only")

    @property
    def _range_bits(self) -> int:
        return self.bits - 1 if self.reduce_range else self.bits

    @property
    def qmin(self) -> int:
        """Smallest integer level, e.g. -128 (int8), -127 (narrow), -64 (reduce), 0 (unsigned)."""
        if not self.signed:
            return 0
        lowest = -(2 ** (self._range_bits - 1))
        return lowest + 1 if self.narrow_range else lowest

    @property
    def qmax(self) -> int:
        """Largest integer level, e.g. 127 (int8), 63 (reduce), 255 (uint8), 7 (int4)."""
        if self.signed:
            return 2 ** (self._range_bits - 1) - 1
        return 2**self._range_bits - 1

    @property
    def numpy_dtype(self) -> type[np.integer]:
        """Storage dtype; int4/uint4 values are held unpacked in int8/uint8 arrays."""
        return np.int8 if self.signed else np.uint8

    @property
    def symmetric_zero_point(self) -> int:
        """Zero point a symmetric format uses: 0 when signed, the mid level (e.g. 128) otherwise."""
        return 0 if self.signed else (self.qmin + self.qmax + 1) // 2


def scale_zero_point(
    lo: float | np.ndarray, hi: float | np.ndarray, fmt: QuantFormat
) -> tuple[np.ndarray, np.ndarray]:
    """Scale (float32, > 0) and zero point (fmt.numpy_dtype) mapping the range [lo, hi] onto fmt.

    The range is widened to include 0 so that 0 is exact (padding, ReLU); lo/hi may be
    per-channel arrays, and the result has their broadcast shape.
    """
    lo64, hi64 = _checked_range(lo, hi)
    lo64, hi64 = np.minimum(lo64, 0.0), np.maximum(hi64, 0.0)
    if fmt.symmetric:
        zero_point = np.full(lo64.shape, fmt.symmetric_zero_point, dtype=np.float64)
        scale = np.maximum(-lo64, hi64) / (fmt.qmax - fmt.symmetric_zero_point)
        scale = _floored_float32(scale)
    else:
        scale = _floored_float32((hi64 - lo64) / (fmt.qmax - fmt.qmin))
        zero_point = np.clip(np.rint(fmt.qmin - lo64 / scale.astype(np.float64)), fmt.qmin, fmt.qmax)
    return np.asarray(scale), np.asarray(zero_point, dtype=fmt.numpy_dtype)


def _checked_range(lo: float | np.ndarray, hi: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast lo/hi to float64 and reject non-finite or inverted ranges with a clear message."""
    lo64, hi64 = np.broadcast_arrays(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
    if not (np.isfinite(lo64).all() and np.isfinite(hi64).all()):
        raise ValueError("quantization range must be finite (got NaN or Inf in lo/hi)")
    if (lo64 > hi64).any():
        raise ValueError("quantization range has lo > hi")
    return lo64, hi64


def _floored_float32(scale: np.ndarray) -> np.ndarray:
    """Cast to float32 with degenerate scales raised to SCALE_FLOOR (never 0, never NaN/Inf)."""
    return np.maximum(scale, SCALE_FLOOR).astype(np.float32)


def quantize(
    x: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    fmt: QuantFormat,
    axis: int | None = None,
) -> np.ndarray:
    """QuantizeLinear: saturate(round_half_even(x / scale) + zero_point), per tensor or per axis."""
    x32 = np.asarray(x, dtype=np.float32)
    scale_b = _per_axis_view(np.asarray(scale, dtype=np.float32), x32, axis)
    zero_point_b = _per_axis_view(np.asarray(zero_point), x32, axis)
    return _quantize_broadcast(x32, scale_b, zero_point_b, fmt)


def dequantize(
    q: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    axis: int | None = None,
) -> np.ndarray:
    """DequantizeLinear: (q - zero_point) * scale in float32, per tensor or per axis."""
    q = np.asarray(q)
    scale_b = _per_axis_view(np.asarray(scale, dtype=np.float32), q, axis)
    zero_point_b = _per_axis_view(np.asarray(zero_point), q, axis)
    return _dequantize_broadcast(q, scale_b, zero_point_b)


def fake_quantize(
    x: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    fmt: QuantFormat,
    axis: int | None = None,
) -> np.ndarray:
    """Quantize then dequantize: the float32 values a QDQ pair feeds the next op."""
    return dequantize(quantize(x, scale, zero_point, fmt, axis), scale, zero_point, axis)


def _quantize_broadcast(
    x32: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, fmt: QuantFormat
) -> np.ndarray:
    """Elementwise QuantizeLinear on operands already broadcastable to x32 (float32 division)."""
    levels = np.rint(x32 / scale) + zero_point.astype(np.float32)
    return np.clip(levels, fmt.qmin, fmt.qmax).astype(fmt.numpy_dtype)


def _dequantize_broadcast(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """Elementwise DequantizeLinear: integer subtraction, then one float32 multiply."""
    centered = q.astype(np.int32) - zero_point.astype(np.int32)
    return centered.astype(np.float32) * scale


def _per_axis_view(param: np.ndarray, x: np.ndarray, axis: int | None) -> np.ndarray:
    """Reshape a per-tensor (size 1) or per-axis (1-D, len x.shape[axis]) parameter to broadcast."""
    if axis is None:
        if param.size != 1:
            raise ValueError(f"per-tensor parameter must have one element, got shape {param.shape}")
        return param.reshape(())
    axis = _normalized_axis(axis, x.ndim)
    if param.ndim != 1 or param.shape[0] != x.shape[axis]:
        raise ValueError(
            f"per-axis parameter must be 1-D of length {x.shape[axis]} (x.shape[{axis}]), "
            f"got shape {param.shape}"
        )
    shape = [1] * x.ndim
    shape[axis] = -1
    return param.reshape(shape)


def _normalized_axis(axis: int, ndim: int) -> int:
    """Map a possibly negative axis into [0, ndim), as ONNX does."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a {ndim}-D tensor")
    return axis % ndim


def weight_params(w: np.ndarray, fmt: QuantFormat, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Min/max scale and zero point of a weight, per tensor (axis=None) or per channel of `axis`."""
    w = _nonempty_array(w)
    if axis is None:
        return scale_zero_point(w.min(), w.max(), fmt)
    axis = _normalized_axis(axis, w.ndim)
    reduce_axes = tuple(a for a in range(w.ndim) if a != axis)
    return scale_zero_point(w.min(axis=reduce_axes), w.max(axis=reduce_axes), fmt)


def block_weight_params(
    w: np.ndarray, fmt: QuantFormat, axis: int, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Min/max params per block of `block_size` consecutive elements along axis (last may be short).

    Shapes follow ONNX opset-21 DequantizeLinear: same rank as w, ceil(n / block_size) along axis.
    """
    w = _nonempty_array(w)
    axis = _normalized_axis(axis, w.ndim)
    starts = _block_starts(w.shape[axis], block_size)
    lo = np.minimum.reduceat(w, starts, axis=axis)
    hi = np.maximum.reduceat(w, starts, axis=axis)
    return scale_zero_point(lo, hi, fmt)


def quantize_blocked(
    w: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    fmt: QuantFormat,
    axis: int,
    block_size: int,
) -> np.ndarray:
    """Block-wise QuantizeLinear with opset-21 `block_size` semantics."""
    w32 = np.asarray(w, dtype=np.float32)
    scale_full, zero_point_full = _expanded_block_params(w32.shape, scale, zero_point, axis, block_size)
    return _quantize_broadcast(w32, scale_full.astype(np.float32), zero_point_full, fmt)


def dequantize_blocked(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int, block_size: int
) -> np.ndarray:
    """Block-wise DequantizeLinear with opset-21 `block_size` semantics (float32)."""
    q = np.asarray(q)
    scale_full, zero_point_full = _expanded_block_params(q.shape, scale, zero_point, axis, block_size)
    return _dequantize_broadcast(q, scale_full.astype(np.float32), zero_point_full)


def _block_starts(length: int, block_size: int) -> np.ndarray:
    """First index of each block along an axis of `length` elements."""
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    return np.arange(0, length, block_size)


def _expanded_block_params(
    shape: tuple[int, ...], scale: np.ndarray, zero_point: np.ndarray, axis: int, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Repeat block scale/zero point `block_size` times along axis, trimmed to the tensor shape."""
    axis = _normalized_axis(axis, len(shape))
    n_blocks = len(_block_starts(shape[axis], block_size))
    expected = shape[:axis] + (n_blocks,) + shape[axis + 1 :]
    scale, zero_point = np.asarray(scale), np.asarray(zero_point)
    for name, param in (("scale", scale), ("zero_point", zero_point)):
        if param.shape != expected:
            raise ValueError(f"block {name} must have shape {expected}, got {param.shape}")
    keep = np.arange(shape[axis])
    return (
        np.repeat(scale, block_size, axis=axis).take(keep, axis=axis),
        np.repeat(zero_point, block_size, axis=axis).take(keep, axis=axis),
    )


def _nonempty_array(w: np.ndarray) -> np.ndarray:
    """Weights as an array; an empty weight has no range to quantize."""
    w = np.asarray(w)
    if w.size == 0:
        raise ValueError("cannot compute quantization parameters of an empty tensor")
    return w


def sqnr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio 10·log10(‖ref‖² / ‖ref − approx‖²) dB; +inf if equal."""
    ref = np.asarray(reference, dtype=np.float64)
    approx = np.asarray(approximation, dtype=np.float64)
    if ref.shape != approx.shape:
        raise ValueError(f"sqnr_db needs equal shapes, got {ref.shape} and {approx.shape}")
    noise = float(np.sum((ref - approx) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))
