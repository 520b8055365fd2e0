"""Closed-form checks of the quantization arithmetic, and bit-exactness against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq.quant.primitives import (
    SCALE_FLOOR,
    QuantFormat,
    block_weight_params,
    dequantize,
    dequantize_blocked,
    fake_quantize,
    quantize,
    quantize_blocked,
    scale_zero_point,
    sqnr_db,
    weight_params,
)

INT8 = QuantFormat()
UINT8_ASYM = QuantFormat(signed=False, symmetric=False)
INT4 = QuantFormat(bits=4)


@pytest.mark.parametrize(
    ("fmt", "qmin", "qmax", "dtype"),
    [
        (QuantFormat(), -128, 127, np.int8),
        (QuantFormat(narrow_range=True), -127, 127, np.int8),
        (QuantFormat(reduce_range=True), -64, 63, np.int8),
        (QuantFormat(narrow_range=True, reduce_range=True), -63, 63, np.int8),
        (QuantFormat(signed=False), 0, 255, np.uint8),
        (QuantFormat(signed=False, reduce_range=True), 0, 127, np.uint8),
        (QuantFormat(bits=4), -8, 7, np.int8),
        (QuantFormat(bits=4, narrow_range=True), -7, 7, np.int8),
        (QuantFormat(bits=4, signed=False), 0, 15, np.uint8),
    ],
)
def test_format_levels(fmt: QuantFormat, qmin: int, qmax: int, dtype: type) -> None:
    assert (fmt.qmin, fmt.qmax, fmt.numpy_dtype) == (qmin, qmax, dtype)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"bits": 3}, "bits must be 4 or 8"), ({"signed": False, "narrow_range": True}, "signed")],
)
def test_invalid_format_is_rejected(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuantFormat(**options)


def test_symmetric_signed_zero_point_is_zero_and_max_maps_to_qmax() -> None:
    scale, zero_point = scale_zero_point(-1.0, 2.0, INT8)
    assert zero_point == 0 and zero_point.dtype == np.int8
    assert scale == np.float32(2.0 / 127)
    assert quantize(np.float32(2.0), scale, zero_point, INT8) == 127


def test_symmetric_unsigned_zero_point_is_mid_level() -> None:
    scale, zero_point = scale_zero_point(-1.0, 2.0, QuantFormat(signed=False))
    assert zero_point == 128 and zero_point.dtype == np.uint8
    assert scale == np.float32(2.0 / 127)


def test_asymmetric_params_closed_form() -> None:
    scale, zero_point = scale_zero_point(-1.0, 2.0, UINT8_ASYM)
    assert scale == np.float32(3.0 / 255)
    assert zero_point == 85


@pytest.mark.parametrize(("lo", "hi", "zero_point"), [(2.0, 5.0, 0), (-5.0, -2.0, 255)])
def test_range_is_widened_to_include_zero(lo: float, hi: float, zero_point: int) -> None:
    scale, zp = scale_zero_point(lo, hi, UINT8_ASYM)
    assert scale == np.float32(5.0 / 255) and zp == zero_point
    assert fake_quantize(np.float32(0.0), scale, zp, UINT8_ASYM) == 0.0


def test_per_channel_ranges_give_per_channel_params() -> None:
    scale, zero_point = scale_zero_point(np.array([-1.0, 0.0, -4.0]), np.array([1.0, 2.0, 2.0]), INT8)
    np.testing.assert_array_equal(scale, np.float32([1, 2, 4]) / np.float32(127))
    assert zero_point.shape == (3,) and not zero_point.any()


@pytest.mark.parametrize("fmt", [INT8, UINT8_ASYM, INT4])
def test_zero_range_gets_floor_scale(fmt: QuantFormat) -> None:
    scale, zero_point = scale_zero_point(0.0, 0.0, fmt)
    assert scale == np.float32(SCALE_FLOOR)
    assert fake_quantize(np.zeros(3, np.float32), scale, zero_point, fmt).tolist() == [0, 0, 0]


@pytest.mark.parametrize(("lo", "hi"), [(np.nan, 1.0), (0.0, np.inf), (2.0, 1.0)])
def test_bad_range_is_rejected(lo: float, hi: float) -> None:
    with pytest.raises(ValueError, match="range"):
        scale_zero_point(lo, hi, INT8)


def test_quantize_rounds_half_to_even_and_saturates() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1000.0, -1000.0], dtype=np.float32)
    q = quantize(x, np.float32(1.0), np.int8(0), INT8)
    assert q.dtype == np.int8
    assert q.tolist() == [0, 2, 2, 0, -2, -2, 127, -128]


def test_dequantize_is_float32_affine() -> None:
    y = dequantize(np.array([0, 10, 255], np.uint8), np.float32(0.5), np.uint8(10))
    assert y.dtype == np.float32 and y.tolist() == [-5.0, 0.0, 122.5]


def test_per_axis_parameter_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="length 3"):
        quantize(np.zeros((2, 3)), np.ones(2, np.float32), np.zeros(2, np.int8), INT8, axis=1)
    with pytest.raises(ValueError, match="one element"):
        quantize(np.zeros((2, 3)), np.ones(2, np.float32), np.zeros(2, np.int8), INT8)


@pytest.mark.parametrize(
    ("layout", "shape", "axis"),
    [("Gemm [N,K]", (6, 5), 0), ("MatMul [K,N]", (5, 6), 1), ("Conv [O,I,kh,kw]", (6, 3, 3, 3), 0)],
)
def test_weight_params_per_output_channel(layout: str, shape: tuple, axis: int) -> None:
    w = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    w *= np.arange(1, 7, dtype=np.float32).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    scale, zero_point = weight_params(w, INT8, axis)
    others = tuple(a for a in range(w.ndim) if a != axis)
    np.testing.assert_array_equal(scale, (np.abs(w).max(axis=others) / 127).astype(np.float32))
    assert zero_point.shape == (6,), layout


def test_weight_params_per_tensor_is_scalar() -> None:
    scale, zero_point = weight_params(np.array([[1.0, -4.0]]), INT8, None)
    assert scale.shape == () and scale == np.float32(4.0 / 127) and zero_point == 0


@pytest.mark.parametrize(("axis", "block_size", "shape"), [(1, 4, (8, 3)), (0, 3, (3, 10)), (-1, 10, (8, 1))])
def test_block_params_shape_follows_onnx(axis: int, block_size: int, shape: tuple) -> None:
    w = np.random.default_rng(1).normal(size=(8, 10)).astype(np.float32)
    scale, zero_point = block_weight_params(w, INT4, axis, block_size)
    assert scale.shape == shape and zero_point.shape == shape and zero_point.dtype == np.int8


def test_block_params_use_each_blocks_own_range() -> None:
    w = np.array([[1.0, -2.0, 7.0, 0.5, -14.0]], dtype=np.float32)
    scale, _ = block_weight_params(w, INT4, axis=1, block_size=2)
    np.testing.assert_array_equal(scale, np.float32([[2.0, 7.0, 14.0]]) / np.float32(7))


def test_blocked_roundtrip_error_is_at_most_half_a_step() -> None:
    w = np.random.default_rng(2).normal(size=(4, 11)).astype(np.float32)
    scale, zero_point = block_weight_params(w, INT4, axis=1, block_size=4)
    q = quantize_blocked(w, scale, zero_point, INT4, axis=1, block_size=4)
    assert q.min() >= -8 and q.max() <= 7
    error = np.abs(dequantize_blocked(q, scale, zero_point, axis=1, block_size=4) - w)
    assert (error <= np.repeat(scale, 4, axis=1)[:, :11] / 2 * (1 + 1e-6)).all()


def test_blocked_param_shape_is_checked() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        dequantize_blocked(np.zeros((2, 9), np.int8), np.ones((2, 2)), np.zeros((2, 2)), 1, 4)


def test_sqnr_db_closed_form() -> None:
    ref = np.array([1.0, 1.0])
    assert sqnr_db(ref, ref) == float("inf")
    assert sqnr_db(ref, np.array([1.1, 0.9])) == pytest.approx(20.0)


# ---------------------------------------------------------------- bit-exactness vs ONNX Runtime

ONNX_TYPES = {
    (8, True): TensorProto.INT8,
    (8, False): TensorProto.UINT8,
    (4, True): TensorProto.INT4,
    (4, False): TensorProto.UINT4,
}


def _ort_qdq(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, fmt: QuantFormat, attributes: dict
) -> list[np.ndarray]:
    """Run x through a one-node QuantizeLinear -> DequantizeLinear opset-21 model in ORT.

    Returns [q, y] for 8-bit formats and [y] for 4-bit ones (ORT cannot hand int4 to numpy)."""
    zp_type = ONNX_TYPES[(fmt.bits, fmt.signed)]
    initializers = [
        numpy_helper.from_array(np.asarray(scale, np.float32), "scale"),
        helper.make_tensor("zero_point", zp_type, zero_point.shape, zero_point.ravel().tolist()),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["q"], **attributes),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero_point"], ["y"], **attributes),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)]
    if fmt.bits == 8:
        outputs.insert(0, helper.make_tensor_value_info("q", zp_type, x.shape))
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _channel_view(param: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """A per-tensor or per-axis parameter reshaped to broadcast against an ndim tensor."""
    if axis is None:
        return param
    return param.reshape([-1 if a == axis % ndim else 1 for a in range(ndim)])


def _probe_values(shape: tuple[int, ...], scale: np.ndarray, axis: int | None) -> np.ndarray:
    """Exact half-step ties, ordinary values and far out-of-range values (saturation)."""
    rng = np.random.default_rng(3)
    steps = rng.integers(-600, 600, size=shape) / 2.0
    view = _channel_view(scale, len(shape), axis)
    x = (steps * view).astype(np.float32)
    x.flat[::3] = rng.normal(scale=100 * float(np.max(scale)), size=x.size)[::3]
    return x


def _storage_levels(fmt: QuantFormat) -> tuple[int, int]:
    info = np.iinfo(fmt.numpy_dtype)
    return (int(info.min), int(info.max)) if fmt.bits == 8 else (int(info.min) >> 4, int(info.max) >> 4)


def _within_levels(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, fmt: QuantFormat, axis: int | None
) -> np.ndarray:
    """Clip x into the range a narrow/reduced format represents: ORT saturates to the storage
    type instead, so the two differ (by design) only beyond it, see the test below."""
    if (fmt.qmin, fmt.qmax) == _storage_levels(fmt):
        return x
    s = _channel_view(scale, x.ndim, axis).astype(np.float32)
    z = _channel_view(zero_point, x.ndim, axis).astype(np.float32)
    return np.clip(x, (fmt.qmin - z) * s, (fmt.qmax - z) * s)


def _assert_matches_ort(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, fmt: QuantFormat, axis: int | None
) -> None:
    x = _within_levels(x, scale, zero_point, fmt, axis)
    q = quantize(x, scale, zero_point, fmt, axis)
    y = dequantize(q, scale, zero_point, axis)
    attributes = {} if axis is None else {"axis": axis}
    ort_outputs = _ort_qdq(x, scale, zero_point, fmt, attributes)
    if fmt.bits == 8:
        np.testing.assert_array_equal(q, ort_outputs[0])
        assert q.dtype == ort_outputs[0].dtype
    np.testing.assert_array_equal(y, ort_outputs[-1])


FORMATS = [
    INT8,
    UINT8_ASYM,
    QuantFormat(symmetric=False),
    QuantFormat(reduce_range=True),
    QuantFormat(narrow_range=True),
    QuantFormat(signed=False, reduce_range=True),
    INT4,
    QuantFormat(bits=4, signed=False, symmetric=False),
]


def test_reduced_range_saturates_at_its_own_levels_unlike_onnxruntime() -> None:
    """Known, intended divergence: ORT's QuantizeLinear saturates to the storage type (int8
    [-128, 127]); quantize() saturates to the format's levels ([-64, 63] with reduce_range)."""
    fmt = QuantFormat(reduce_range=True)
    x = np.array([[1000.0, -1000.0]], np.float32)
    one, zero = np.ones((), np.float32), np.zeros((), np.int8)
    assert quantize(x, one, zero, fmt).tolist() == [[63, -64]]
    assert _ort_qdq(x, one, zero, fmt, {})[0].tolist() == [[127, -128]]


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_per_tensor_qdq_matches_onnxruntime_bit_exactly(fmt: QuantFormat) -> None:
    for lo, hi in [(-1.0, 1.0), (-0.37, 2.9), (0.0, 0.125)]:
        scale, zero_point = scale_zero_point(lo, hi, fmt)
        _assert_matches_ort(_probe_values((7, 9), scale, None), scale, zero_point, fmt, None)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_per_channel_qdq_matches_onnxruntime_bit_exactly(fmt: QuantFormat, axis: int) -> None:
    w = np.random.default_rng(4).normal(size=(5, 6, 3)).astype(np.float32)
    w += np.random.default_rng(5).normal(size=w.shape).astype(np.float32) * np.float32(0.3)
    scale, zero_point = weight_params(w, fmt, axis)
    _assert_matches_ort(_probe_values(w.shape, scale, axis), scale, zero_point, fmt, axis)


@pytest.mark.parametrize("fmt", [INT4, QuantFormat(bits=4, signed=False, symmetric=False), INT8], ids=str)
def test_blocked_qdq_matches_onnxruntime_bit_exactly(fmt: QuantFormat) -> None:
    w = np.random.default_rng(6).normal(size=(6, 10)).astype(np.float32)
    scale, zero_point = block_weight_params(w, fmt, axis=1, block_size=4)
    q = quantize_blocked(w, scale, zero_point, fmt, axis=1, block_size=4)
    y = dequantize_blocked(q, scale, zero_point, axis=1, block_size=4)
    ort_outputs = _ort_qdq(w, scale, zero_point, fmt, {"axis": 1, "block_size": 4})
    np.testing.assert_array_equal(y, ort_outputs[-1])
