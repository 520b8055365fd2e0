"""Binary-code evaluator: does the compiled encoder emit the same bits, and decode as well?

Quantizing an encoder flips the bits whose logits sit near 0; bit agreement with fp32 is the
metric that matters downstream (a diffusion prior or a hash index consumes the code itself).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgeq.measure.tasks import Predictor, TaskMetric, TaskResult

NEAR_ZERO_LOGIT = 0.1


def bit_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """100 * (1 - Hamming distance / bit count) between two codes of equal shape."""
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return 100.0 * float((a == b).mean())


def psnr(images: np.ndarray, recon: np.ndarray, peak: float = 1.0) -> float:
    """Mean over samples of per-image PSNR in dB (images in [0, peak])."""
    errors = ((np.asarray(images, np.float64) - recon) ** 2).reshape(len(images), -1).mean(axis=1)
    return float(np.mean(10.0 * np.log10(peak**2 / np.maximum(errors, 1e-12))))


def evaluate_binary_code(
    fp32: Predictor,
    compiled: Predictor,
    data: Mapping[str, np.ndarray],
    bits: str = "bits",
    recon: str = "recon",
    image_key: str = "image",
    logits: str = "logits",
) -> TaskResult:
    """Bit agreement vs fp32, codes identical per sample, and PSNR when `recon` is an output."""
    reference, candidate = fp32.predict(data), compiled.predict(data)
    old, new = reference[bits] > 0.5, candidate[bits] > 0.5
    flips = (old != new).reshape(len(old), -1).sum(axis=1)
    metrics = [
        TaskMetric("bit_agreement", 100.0, bit_agreement(old, new), True, "%"),
        TaskMetric("identical_codes", 100.0, 100.0 * float((flips == 0).mean()), True, "%"),
    ]
    primary = ["bit_agreement"]
    if recon in reference and recon in candidate:
        image = data[image_key]
        metrics.append(
            TaskMetric("psnr", psnr(image, reference[recon]), psnr(image, candidate[recon]), True, "dB")
        )
        primary.append("psnr")
    details = {
        "bits_per_sample": int(old[0].size),
        "samples": len(old),
        "mean_flipped_bits": float(flips.mean()),
        "max_flipped_bits": int(flips.max()),
        "fp32_ones": 100.0 * float(old.mean()),
    }
    if logits in reference:
        near = np.abs(reference[logits]) < NEAR_ZERO_LOGIT
        details["fp32_logits_near_zero"] = {
            "threshold": NEAR_ZERO_LOGIT,
            "count": int(near.sum()),
            "share_pct": 100.0 * float(near.mean()),
            "flipped_among_them_pct": 100.0 * float((old != new)[near].mean()) if near.any() else 0.0,
        }
    return TaskResult("binary-code", metrics, primary, details)
