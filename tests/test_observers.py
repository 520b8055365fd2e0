"""Closed-form and behavioural checks of the range calibrators."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import InputError
from edgeq.quant.observers import (
    CALIBRATION_METHODS,
    CalibrationDataError,
    Observer,
    make_observer,
)
from edgeq.quant.primitives import QuantFormat, fake_quantize, scale_zero_point

INT8 = QuantFormat()
UINT8_ASYM = QuantFormat(signed=False, symmetric=False)


def calibrate(
    method: str, data: np.ndarray, fmt: QuantFormat, batches: int = 4, **options: object
) -> tuple[float, float]:
    """Run both calibration passes over `data` split into batches; return the clip range."""
    observer = make_observer(method, **options)
    for batch in np.array_split(data, batches):
        observer.update_range(batch)
    for batch in np.array_split(data, batches):
        observer.update_histogram(batch)
    return observer.compute_range(fmt)


def quantization_mse(data: np.ndarray, clip: tuple[float, float], fmt: QuantFormat) -> float:
    scale, zero_point = scale_zero_point(*clip, fmt)
    return float(np.mean((fake_quantize(data, scale, zero_point, fmt) - data) ** 2))


def test_minmax_of_known_data() -> None:
    data = np.array([3.0, -2.0, 7.5, 0.25, -1.0, 4.0])
    assert calibrate("minmax", data, INT8, batches=3) == (-2.0, 7.5)
    assert make_observer("minmax").needs_histogram is False


def test_mean_minmax_averages_each_samples_own_extremes_over_batches() -> None:
    samples = np.array([[0.0, 1.0], [-1.0, 3.0], [-2.0, 5.0], [-5.0, 40.0]])  # the last one loud
    lo, hi = calibrate("mean_minmax", samples, UINT8_ASYM, batches=3)
    assert (lo, hi) == (-2.0, 12.25)
    assert calibrate("minmax", samples, UINT8_ASYM) == (-5.0, 40.0)


def test_empty_batches_are_ignored() -> None:
    observer = make_observer("mse")
    for batch in (np.array([]), np.array([1.0, -1.0]), np.zeros((0, 3))):
        observer.update_range(batch)
    for batch in (np.array([]), np.array([1.0, -1.0])):
        observer.update_histogram(batch)
    lo, hi = observer.compute_range(INT8)
    assert -1.0 <= lo < 0 < hi <= 1.0


@pytest.mark.parametrize(("bad", "word"), [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_non_finite_data_raise_calibration_error(bad: float, word: str) -> None:
    observer = make_observer("minmax")
    with pytest.raises(CalibrationDataError, match=f"1 {word}"):
        observer.update_range(np.array([0.0, bad, 1.0], np.float32))
    assert issubclass(CalibrationDataError, ValueError) and issubclass(CalibrationDataError, InputError)


def test_no_data_is_a_calibration_error() -> None:
    with pytest.raises(CalibrationDataError, match="no calibration data"):
        make_observer("minmax").compute_range(INT8)


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
@pytest.mark.parametrize("value", [0.0, 3.5, -2.0])
def test_constant_tensor_gives_valid_range(method: str, value: float) -> None:
    lo, hi = calibrate(method, np.full(100, value), INT8)
    assert lo == hi == value
    scale, _ = scale_zero_point(lo, hi, INT8)
    assert np.isfinite(scale) and scale > 0


def test_passes_must_run_in_order() -> None:
    observer = make_observer("entropy")
    with pytest.raises(RuntimeError, match="before update_range"):
        observer.update_histogram(np.ones(3))
    observer.update_range(np.arange(5.0))
    with pytest.raises(RuntimeError, match="pass 2"):
        observer.compute_range(INT8)
    observer.update_histogram(np.arange(5.0))
    with pytest.raises(RuntimeError, match="pass 1 must finish"):
        observer.update_range(np.arange(5.0))


def test_unknown_method_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="minmax, percentile, mse, entropy"):
        make_observer("kl")


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("minmax", {"bins": 10}, "allowed: none"),
        ("mse", {"percentile": 99.0}, "allowed: bins"),
        ("percentile", {"percentile": 0.0}, r"\(0, 100\]"),
        ("percentile", {"percentile": "99"}, "must be a number"),
        ("entropy", {"bins": 4}, "bins must be an integer >= 16"),
    ],
)
def test_bad_options_are_rejected(method: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_observer(method, **options)


def test_percentile_of_uniform_ramp() -> None:
    ramp = np.linspace(0.0, 1.0, 100_001)
    lo, hi = calibrate("percentile", ramp, UINT8_ASYM, percentile=99.0)
    assert lo == 0.0 and hi == pytest.approx(0.99, abs=1e-4)


def test_percentile_is_two_sided_for_signed_data() -> None:
    lo, hi = calibrate("percentile", np.linspace(-1.0, 1.0, 200_001), INT8, percentile=99.0)
    assert lo == pytest.approx(-0.99, abs=1e-4) and hi == pytest.approx(0.99, abs=1e-4)


@pytest.mark.parametrize("fmt", [INT8, UINT8_ASYM], ids=["symmetric", "asymmetric"])
def test_mse_clip_of_uniform_is_the_full_range(fmt: QuantFormat) -> None:
    data = np.random.default_rng(0).uniform(-1.0, 1.0, 100_000)
    lo, hi = calibrate("mse", data, fmt)
    assert lo <= -0.99 and hi >= 0.99


def laplace_with_outliers() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.concatenate([rng.laplace(0.0, 1.0, 100_000), [150.0, -120.0, 90.0]])


@pytest.mark.parametrize(
    ("data", "fmt", "max_fraction"),
    [
        (laplace_with_outliers(), QuantFormat(bits=4), 0.1),
        (laplace_with_outliers(), QuantFormat(bits=4, signed=False, symmetric=False), 0.1),
        (np.random.default_rng(2).standard_t(3, 100_000), INT8, 0.75),
    ],
    ids=["laplace-int4", "laplace-uint4-asymmetric", "student-t-int8"],
)
def test_mse_clips_heavy_tails_and_beats_minmax(
    data: np.ndarray, fmt: QuantFormat, max_fraction: float
) -> None:
    clip = calibrate("mse", data, fmt)
    assert max(-clip[0], clip[1]) < max_fraction * np.abs(data).max()
    assert quantization_mse(data, clip, fmt) < 0.8 * quantization_mse(data, (data.min(), data.max()), fmt)


def test_mse_clip_matches_brute_force_search() -> None:
    """8-bit keeps rare huge outliers (clipping them costs more than rounding saves), and the
    histogram model still finds the clip a dense search over real fake-quant errors finds."""
    data = laplace_with_outliers()
    clip = calibrate("mse", data, INT8)
    grid = np.linspace(1.0, 150.0, 300)
    best = min(quantization_mse(data, (-t, t), INT8) for t in grid)
    assert quantization_mse(data, clip, INT8) <= 1.01 * best


def test_entropy_clips_a_gaussian_below_its_max() -> None:
    data = np.random.default_rng(2).normal(0.0, 1.0, 200_000)
    lo, hi = calibrate("entropy", data, INT8)
    assert lo == -hi and 3.0 < hi < 0.99 * np.abs(data).max()


def test_entropy_of_post_relu_data_is_zero_based_for_asymmetric_formats() -> None:
    data = np.maximum(np.random.default_rng(3).normal(0.0, 1.0, 200_000), 0.0)
    lo, hi = calibrate("entropy", data, UINT8_ASYM)
    assert lo == 0.0 and 2.5 < hi <= data.max()
    assert calibrate("entropy", data, INT8) == pytest.approx((-hi, hi), rel=0.1)


def test_entropy_needs_enough_bins_for_the_format() -> None:
    with pytest.raises(ValueError, match="bins >= 256"):
        calibrate("entropy", np.arange(100.0), UINT8_ASYM, bins=128)


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
def test_ranges_contain_no_more_than_the_data(method: str) -> None:
    data = np.random.default_rng(4).normal(1.0, 2.0, 50_000)
    observer_range = calibrate(method, data, INT8)
    assert all(isinstance(v, float) for v in observer_range)
    assert -np.abs(data).max() <= observer_range[0] < observer_range[1] <= np.abs(data).max()


def test_observer_keeps_only_bounded_state() -> None:
    observer: Observer = make_observer("percentile", bins=64)
    for _ in range(3):
        batch = np.random.default_rng(5).normal(size=10_000)
        observer.update_range(batch)
    observer.update_histogram(batch)
    arrays = [v for v in vars(observer).values() if isinstance(v, np.ndarray)]
    assert sum(a.size for a in arrays) == 64
