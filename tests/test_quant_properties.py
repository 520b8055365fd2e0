"""Property tests: the quantization invariants hold for any format, shape, axis and batching."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeq.quant.observers import CALIBRATION_METHODS, make_observer, observer_options
from edgeq.quant.primitives import (
    QuantFormat,
    block_weight_params,
    dequantize_blocked,
    fake_quantize,
    quantize_blocked,
    scale_zero_point,
    weight_params,
)

FAST = settings(max_examples=60, deadline=None)
EPS32 = float(np.finfo(np.float32).eps)

formats = st.builds(
    QuantFormat,
    bits=st.sampled_from([4, 8]),
    signed=st.booleans(),
    symmetric=st.booleans(),
    reduce_range=st.booleans(),
).flatmap(lambda f: st.sampled_from([f, QuantFormat(f.bits, True, f.symmetric, True, f.reduce_range)]))
moderate = st.floats(-1e6, 1e6, allow_nan=False, width=32)
any_finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


def within_half_step(x: np.ndarray, approx: np.ndarray, scale: np.ndarray) -> bool:
    """|x - approx| <= scale/2, allowing float32 rounding of the division and the product."""
    bound = scale * (0.5 + 1e-4) + 4 * EPS32 * np.abs(x)
    return bool((np.abs(x.astype(np.float64) - approx) <= bound).all())


def channel_view(param: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    return param.reshape([-1 if a == axis else 1 for a in range(ndim)])


@FAST
@given(
    fmt=formats,
    lo=moderate,
    hi=moderate,
    fractions=hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(0.0, 1.0)),
)
def test_roundtrip_error_is_at_most_half_a_step_inside_the_range(
    fmt: QuantFormat, lo: float, hi: float, fractions: np.ndarray
) -> None:
    lo, hi = min(lo, hi, 0.0), max(lo, hi, 0.0)
    x = (lo + fractions * (hi - lo)).astype(np.float32)
    scale, zero_point = scale_zero_point(lo, hi, fmt)
    assert within_half_step(x, fake_quantize(x, scale, zero_point, fmt), scale)


@FAST
@given(
    fmt=formats,
    w=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
        elements=any_finite | st.just(0.0),
    ),
)
def test_scales_are_positive_and_finite_for_any_finite_tensor(fmt: QuantFormat, w: np.ndarray) -> None:
    for axis in (None, *range(w.ndim)):
        scale, zero_point = weight_params(w, fmt, axis)
        assert scale.dtype == np.float32 and np.isfinite(scale).all() and (scale > 0).all()
        assert zero_point.dtype == fmt.numpy_dtype
        assert (zero_point >= fmt.qmin).all() and (zero_point <= fmt.qmax).all()


@FAST
@given(fmt=formats, value=any_finite, size=st.integers(1, 20))
def test_constant_and_zero_tensors_get_valid_params(fmt: QuantFormat, value: float, size: int) -> None:
    for constant in (np.full(size, value, np.float32), np.zeros(size, np.float32)):
        scale, _ = weight_params(constant, fmt, None)
        assert np.isfinite(scale) and scale > 0


@FAST
@given(
    fmt=formats,
    w=hnp.arrays(
        np.float32,
        st.one_of(
            hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
            hnp.array_shapes(min_dims=4, max_dims=4, max_side=4),
        ),
        elements=st.floats(-100, 100, width=32),
    ),
)
def test_per_channel_params_bound_each_channels_error_on_every_axis(fmt: QuantFormat, w: np.ndarray) -> None:
    """Every axis of 2-D/4-D weights, which covers Gemm [N,K] axis 0, MatMul [K,N] axis 1 and
    Conv [O,I,kh,kw] axis 0: each channel's error is bounded by its own scale."""
    for axis in range(w.ndim):
        scale, zero_point = weight_params(w, fmt, axis)
        assert scale.shape == (w.shape[axis],)
        restored = fake_quantize(w, scale, zero_point, fmt, axis=axis)
        assert within_half_step(w, restored, channel_view(scale, w.ndim, axis))


@FAST
@given(
    signed=st.booleans(),
    symmetric=st.booleans(),
    w=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
        elements=st.floats(-10, 10, width=32),
    ),
    axis=st.sampled_from([0, 1]),
    block_size=st.integers(1, 8),
)
def test_int4_block_params_shape_and_error(
    signed: bool, symmetric: bool, w: np.ndarray, axis: int, block_size: int
) -> None:
    fmt = QuantFormat(bits=4, signed=signed, symmetric=symmetric)
    scale, zero_point = block_weight_params(w, fmt, axis, block_size)
    n_blocks = -(-w.shape[axis] // block_size)
    assert scale.shape[axis] == n_blocks and scale.ndim == w.ndim
    q = quantize_blocked(w, scale, zero_point, fmt, axis, block_size)
    assert q.min() >= fmt.qmin and q.max() <= fmt.qmax
    restored = dequantize_blocked(q, scale, zero_point, axis, block_size)
    per_element_scale = np.repeat(scale, block_size, axis=axis).take(range(w.shape[axis]), axis=axis)
    assert within_half_step(w, restored, per_element_scale)


@settings(max_examples=40, deadline=None)
@given(
    method=st.sampled_from(CALIBRATION_METHODS),
    fmt=formats,
    data=hnp.arrays(np.float32, st.integers(1, 200), elements=any_finite)
    | hnp.arrays(np.float32, st.integers(1, 200), elements=st.floats(-5, 5, width=32)),
    cuts=st.lists(st.integers(0, 200), max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_every_calibrator_is_invariant_to_batching(
    method: str, fmt: QuantFormat, data: np.ndarray, cuts: list[int], order: object
) -> None:
    batches = np.split(data, sorted(c % (data.size + 1) for c in cuts))
    order.shuffle(batches)
    whole = run_observer(method, [data], fmt)
    split = run_observer(method, batches, fmt)
    assert whole == split
    scale, _ = scale_zero_point(*whole, fmt)
    assert np.isfinite(scale) and scale > 0


def run_observer(method: str, batches: list[np.ndarray], fmt: QuantFormat) -> tuple[float, float]:
    options = {"bins": 256} if "bins" in observer_options(method) else {}
    observer = make_observer(method, **options)
    for batch in batches:
        observer.update_range(batch)
    for batch in batches:
        observer.update_histogram(batch)
    return observer.compute_range(fmt)
