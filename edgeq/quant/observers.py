"""Streaming range calibration: choose the clip range each activation is quantized with.

Two passes over the calibration data keep memory bounded and make every result exactly invariant
to batching: pass 1 (`update_range`) tracks min/max, pass 2 (`update_histogram`) counts values into
a histogram fixed to that range. Integer counts add up the same way however the data is split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from numbers import Real
from typing import Any

import numpy as np

from edgeq.errors import InputError
from edgeq.quant.primitives import QuantFormat

CALIBRATION_METHODS = ("minmax", "mean_minmax", "percentile", "mse", "entropy")
DEFAULT_BINS = 2048
MIN_BINS = 16
CLIP_CANDIDATES = 512
"""Candidate clip points per side searched by the MSE calibrator (resolution: range / 512)."""
_KL_CELLS_PER_CHUNK = 1 << 20


class CalibrationDataError(InputError, ValueError):
    """Calibration data the user supplied cannot define a range (NaN/Inf values, or no data)."""


class Observer(ABC):
    """Gathers one tensor's statistics over the calibration set and turns them into a clip range."""

    needs_histogram: bool = True

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < MIN_BINS:
            raise ValueError(f"bins must be an integer >= {MIN_BINS}, got {bins!r}")
        self.bins = int(bins)
        self._min: float | None = None
        self._max: float | None = None
        self._counts: np.ndarray | None = None

    def update_range(self, x: np.ndarray) -> None:
        """Pass 1: fold a batch into the running min/max; NaN/Inf raise CalibrationDataError."""
        x = np.asarray(x)
        if x.size == 0:
            return
        if self._counts is not None:
            raise RuntimeError("update_range called after update_histogram: pass 1 must finish first")
        batch_min, batch_max = _finite_extremes(x)
        self._min = batch_min if self._min is None else min(self._min, batch_min)
        self._max = batch_max if self._max is None else max(self._max, batch_max)

    def update_histogram(self, x: np.ndarray) -> None:
        """Pass 2: count a batch into `bins` equal bins over [min, max] of pass 1."""
        x = np.asarray(x)
        if not self.needs_histogram or x.size == 0:
            return
        if self._min is None or self._max is None:
            raise RuntimeError("update_histogram called before update_range saw any data")
        _finite_extremes(x)
        if self._counts is None:
            self._counts = np.zeros(self.bins, dtype=np.int64)
        self._counts += np.bincount(self._bin_indices(x), minlength=self.bins)

    def _bin_indices(self, x: np.ndarray) -> np.ndarray:
        """Bin of each value; values outside pass 1's range (data changed) land in the edge bins."""
        flat = x.reshape(-1).astype(np.float64, copy=False)
        width = self._max - self._min
        if width == 0.0:
            return np.zeros(flat.size, dtype=np.int64)
        positions = np.floor((flat - self._min) * (self.bins / width))
        return np.clip(positions, 0, self.bins - 1).astype(np.int64)

    def compute_range(self, fmt: QuantFormat) -> tuple[float, float]:
        """The clip range (lo, hi) to quantize this tensor with in format `fmt`."""
        if self._min is None or self._max is None:
            raise CalibrationDataError("no calibration data reached this tensor (all batches empty)")
        if self._min == self._max:
            return self._min, self._max
        if self.needs_histogram and self._counts is None:
            raise RuntimeError(f"{type(self).__name__} needs update_histogram (pass 2) before compute_range")
        return self._clip_range(fmt)

    def _histogram(self) -> Histogram:
        return Histogram(self._min, self._max, self._counts)

    @abstractmethod
    def _clip_range(self, fmt: QuantFormat) -> tuple[float, float]:
        """Method-specific clip range for a non-constant tensor."""


def _finite_extremes(x: np.ndarray) -> tuple[float, float]:
    """Min and max of a batch, raising CalibrationDataError that counts any NaN/Inf values."""
    batch_min, batch_max = float(x.min()), float(x.max())
    if np.isfinite(batch_min) and np.isfinite(batch_max):
        return batch_min, batch_max
    n_nan = int(np.isnan(x).sum())
    n_inf = int(np.isinf(x).sum())
    raise CalibrationDataError(
        f"calibration data contains non-finite values ({n_nan} NaN, {n_inf} Inf "
        f"of {x.size}); check the calibration inputs and the model's preprocessing"
    )


class MinMaxObserver(Observer):
    """Range = [min, max] of all data: no clipping, so outliers widen the scale."""

    needs_histogram = False

    def _clip_range(self, fmt: QuantFormat) -> tuple[float, float]:
        return self._min, self._max


class MeanMinMaxObserver(Observer):
    """Range = the mean over samples (axis 0) of each sample's own min and max: one loud sample
    widens the scale by its share only (NNCF's default for activations). A tensor of one value per
    sample has no per-sample range: its range is the min-max of all of them."""

    needs_histogram = False

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        super().__init__(bins)
        self._sums, self._samples = np.zeros(2), 0

    def update_range(self, x: np.ndarray) -> None:
        super().update_range(x)
        x = np.asarray(x)
        if x.ndim and x.size > len(x):
            rows = x.reshape(len(x), -1)
            self._sums += (float(rows.min(1).sum()), float(rows.max(1).sum()))
            self._samples += len(rows)

    def _clip_range(self, fmt: QuantFormat) -> tuple[float, float]:
        if not self._samples:
            return self._min, self._max
        lo, hi = self._sums / self._samples
        return float(lo), float(hi)


class PercentileObserver(Observer):
    """Range cut at percentiles: drops the rarest (100 - percentile)% of values as outliers."""

    def __init__(self, bins: int = DEFAULT_BINS, percentile: float = 99.99) -> None:
        super().__init__(bins)
        if isinstance(percentile, bool) or not isinstance(percentile, Real):
            raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}")
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
        self.percentile = float(percentile)

    def _clip_range(self, fmt: QuantFormat) -> tuple[float, float]:
        hist = self._histogram()
        cut = 1.0 - self.percentile / 100.0
        if hist.lo >= 0.0:
            return hist.lo, hist.quantile(1.0 - cut)
        if hist.hi <= 0.0:
            return hist.quantile(cut), hist.hi
        return hist.quantile(cut / 2.0), hist.quantile(1.0 - cut / 2.0)


class MSEObserver(Observer):
    """Range minimising expected quantization MSE, clipping error plus rounding noise."""

    def _clip_range(self, fmt: QuantFormat) -> tuple[float, float]:
        hist = self._histogram()
        if fmt.symmetric:
            return _mse_symmetric_clip(hist, fmt)
        return _mse_asymmetric_clip(hist, fmt)


def _mse_symmetric_clip(hist: Histogram, fmt: QuantFormat) -> tuple[float, float]:
    """Best [-t, t] over t = A·k/K, A = max|x|; the scale is t / (qmax - zero point)."""
    t = _clip_candidates(max(-hist.lo, hist.hi))
    scale = t / (fmt.qmax - fmt.symmetric_zero_point)
    sse = hist.upper_clip_sse(t) + hist.lower_clip_sse(-t) + hist.mass_between(-t, t) * scale**2 / 12
    best = float(t[np.argmin(sse)])
    return -best, best


def _mse_asymmetric_clip(hist: Histogram, fmt: QuantFormat) -> tuple[float, float]:
    """Best [l, h] over a grid of lower × upper clips; the scale is (h - l) / (qmax - qmin)."""
    lows = 0.0 - _clip_candidates(max(-hist.lo, 0.0))
    highs = _clip_candidates(max(hist.hi, 0.0))
    scale = (highs[None, :] - lows[:, None]) / (fmt.qmax - fmt.qmin)
    inside = hist.total - hist.mass_below(lows)[:, None] - hist.mass_above(highs)[None, :]
    sse = hist.lower_clip_sse(lows)[:, None] + hist.upper_clip_sse(highs)[None, :] + inside * scale**2 / 12
    sse[scale == 0.0] = np.inf
    low_index, high_index = np.unravel_index(np.argmin(sse), sse.shape)
    return float(lows[low_index]), float(highs[high_index])


def _clip_candidates(extreme: float) -> np.ndarray:
    """Clip magnitudes extreme·k/K for k = 1..K, or just 0 when the data never reach that side."""
    if extreme == 0.0:
        return np.zeros(1)
    return extreme * np.arange(1, CLIP_CANDIDATES + 1) / CLIP_CANDIDATES


class EntropyObserver(Observer):
    """TensorRT-style KL calibration: the |x| threshold whose quantized histogram loses least."""

    def _clip_range(self, fmt: QuantFormat) -> tuple[float, float]:
        hist = self._histogram()
        one_signed = hist.lo >= 0.0 or hist.hi <= 0.0
        levels = _entropy_levels(fmt, one_signed)
        if levels > self.bins:
            raise ValueError(f"entropy calibration needs bins >= {levels} for {fmt}, got {self.bins}")
        magnitude = max(-hist.lo, hist.hi)
        kept_bins = _min_kl_kept_bins(_without_zero_spike(hist.magnitude_counts(self.bins)), levels)
        t = magnitude * kept_bins / self.bins
        if fmt.symmetric:
            return -t, t
        if one_signed:
            return (0.0, t) if hist.lo >= 0.0 else (-t, 0.0)
        return max(hist.lo, -t), min(hist.hi, t)


def _without_zero_spike(counts: np.ndarray) -> np.ndarray:
    """Replace the first |x| bin by the second, as NVIDIA's entropy calibrator does: exact zeros
    (ReLU, padding) quantize without error, and their spike would otherwise dominate the KL."""
    flattened = counts.copy()
    flattened[0] = flattened[1]
    return flattened


def _entropy_levels(fmt: QuantFormat, one_signed: bool) -> int:
    """Quantization levels covering [0, t]: half the grid (128 for int8) unless data are one-signed
    under an asymmetric format, where the whole grid (256) spans [0, t]."""
    if fmt.symmetric:
        return fmt.qmax - fmt.symmetric_zero_point + 1
    full = fmt.qmax - fmt.qmin + 1
    return full if one_signed else full // 2


def _min_kl_kept_bins(counts: np.ndarray, levels: int) -> int:
    """Number of |x| bins i (levels <= i <= len(counts)) minimising KL(P_i || Q_i)."""
    candidates = np.arange(levels, counts.size + 1)
    rows = max(1, _KL_CELLS_PER_CHUNK // counts.size)
    divergences = np.concatenate(
        [_kl_divergences(counts, candidates[s : s + rows], levels) for s in range(0, candidates.size, rows)]
    )
    return int(candidates[np.argmin(divergences)])


def _kl_divergences(counts: np.ndarray, kept: np.ndarray, levels: int) -> np.ndarray:
    """KL(P||Q) per candidate: P = first i bins with the tail folded into bin i-1; Q = those i bins
    (tail excluded) merged into `levels` groups, each group's mass spread over P's nonzero bins."""
    n_rows, n_bins = kept.size, counts.size
    column = np.arange(n_bins)[None, :]
    inside = column < kept[:, None]
    tail = _suffix_sums(counts)[kept]
    sliced = np.where(inside, counts[None, :], 0.0)
    p = sliced.copy()
    p[np.arange(n_rows), kept - 1] += tail
    group = np.where(inside, column * levels // kept[:, None], levels)
    flat_group = (np.arange(n_rows)[:, None] * (levels + 1) + group).ravel()
    size = n_rows * (levels + 1)
    group_mass = np.bincount(flat_group, weights=sliced.ravel(), minlength=size)
    group_nonzero = np.bincount(flat_group, weights=(p > 0).ravel(), minlength=size)
    spread = group_mass[flat_group] / np.maximum(group_nonzero[flat_group], 1.0)
    q = np.where(p > 0, spread.reshape(p.shape), 0.0)
    p_norm = p / p.sum(axis=1, keepdims=True)
    q_total = q.sum(axis=1, keepdims=True)
    q_norm = np.divide(q, q_total, out=np.zeros_like(q), where=q_total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p_norm > 0, p_norm * np.log(p_norm / q_norm), 0.0)
    return terms.sum(axis=1)


@dataclass(frozen=True)
class Histogram:
    """Equal-width histogram over [lo, hi], read as a piecewise-uniform density."""

    lo: float
    hi: float
    counts: np.ndarray

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.counts.size

    @cached_property
    def total(self) -> float:
        return float(self.counts.sum())

    @cached_property
    def _cumulative(self) -> np.ndarray:
        """Mass at or below each edge: cumulative[k] = counts[:k].sum()."""
        return np.concatenate([[0.0], np.cumsum(self.counts, dtype=np.float64)])

    def _bin_of(self, x: np.ndarray) -> np.ndarray:
        """Index of the bin holding x: -1 below the range, len(counts) above it."""
        raw = np.floor((np.asarray(x, dtype=np.float64) - self.lo) / self.width)
        return np.clip(raw, -1, self.counts.size).astype(np.int64)

    def mass_below(self, x: np.ndarray) -> np.ndarray:
        """Interpolated count of values < x (the CDF times the total)."""
        x = np.clip(np.asarray(x, dtype=np.float64), self.lo, self.hi)
        index = np.minimum(self._bin_of(x), self.counts.size - 1)
        left_edge = self.lo + index * self.width
        return self._cumulative[index] + self.counts[index] * (x - left_edge) / self.width

    def mass_above(self, x: np.ndarray) -> np.ndarray:
        return self.total - self.mass_below(x)

    def mass_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return self.mass_below(hi) - self.mass_below(lo)

    def quantile(self, fraction: float) -> float:
        """Value below which `fraction` of the mass lies, interpolating inside the bin."""
        target = fraction * self.total
        edge = int(np.searchsorted(self._cumulative, target, side="left"))
        if edge == 0:
            return self.lo
        below = self._cumulative[edge - 1]
        return float(self.lo + (edge - 1 + (target - below) / self.counts[edge - 1]) * self.width)

    def upper_clip_sse(self, h: np.ndarray) -> np.ndarray:
        """Σ (x - h)² over values x > h: the squared error a clip at h adds (vectorised over h)."""
        h = np.asarray(h, dtype=np.float64)
        n = self.counts.size
        index = self._bin_of(h)
        first_full = np.clip(index + 1, 0, n)
        center = (self.lo + self.hi) / 2
        mids = self.lo + (np.arange(n) + 0.5) * self.width - center
        s0, s1, s2 = (_suffix_sums(self.counts * mids**k) for k in range(3))
        hc = h - center
        full = (
            s2[first_full]
            - 2 * hc * s1[first_full]
            + hc**2 * s0[first_full]
            + self.width**2 / 12 * s0[first_full]
        )
        in_range = (index >= 0) & (index < n)
        safe = np.clip(index, 0, n - 1)
        overhang = self.lo + (safe + 1) * self.width - h
        partial = np.where(in_range, self.counts[safe] * overhang**3 / (3 * self.width), 0.0)
        return np.maximum(full + partial, 0.0)

    def lower_clip_sse(self, low: np.ndarray) -> np.ndarray:
        """Σ (x - low)² over values x < low, via the mirrored histogram."""
        mirrored = Histogram(-self.hi, -self.lo, self.counts[::-1])
        return mirrored.upper_clip_sse(-np.asarray(low, dtype=np.float64))

    def magnitude_counts(self, bins: int) -> np.ndarray:
        """Histogram of |x| over [0, max|x|] in `bins` bins, resampled from the interpolated CDF."""
        magnitude = max(-self.lo, self.hi)
        edges = np.linspace(0.0, magnitude, bins + 1)
        within = self.mass_between(-edges, edges)
        within[-1] = self.total
        counts = np.maximum(np.diff(within), 0.0)
        counts[counts < self.total * 1e-12] = 0.0
        return counts


def _suffix_sums(values: np.ndarray) -> np.ndarray:
    """suffix[k] = values[k:].sum(), with suffix[len] = 0."""
    return np.concatenate([np.cumsum(values[::-1])[::-1], [0.0]])


_OBSERVERS: dict[str, tuple[type[Observer], tuple[str, ...]]] = {
    "minmax": (MinMaxObserver, ()),
    "mean_minmax": (MeanMinMaxObserver, ()),
    "percentile": (PercentileObserver, ("bins", "percentile")),
    "mse": (MSEObserver, ("bins",)),
    "entropy": (EntropyObserver, ("bins",)),
}


def observer_options(method: str) -> tuple[str, ...]:
    """The options a calibration method takes (`bins`, `percentile`), so callers pass only those."""
    return _OBSERVERS[method][1]


def calibration_passes(method: str) -> int:
    """Passes over the calibration data a method makes: a range pass, and a histogram pass if it needs one."""
    return 2 if _OBSERVERS[method][0].needs_histogram else 1


def make_observer(method: str, **options: Any) -> Observer:
    """Observer for a calibration method name, validating its options."""
    if method not in _OBSERVERS:
        raise ValueError(f"unknown calibration method {method!r}; allowed: {', '.join(CALIBRATION_METHODS)}")
    observer_class, allowed = _OBSERVERS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        allowed_text = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for {method!r} calibration; allowed: {allowed_text}"
        )
    return observer_class(**options)
