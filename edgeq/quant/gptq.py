"""GPTQ rounding of 4-bit weight blocks: each input row is rounded in turn and its error is spread
over the rows not yet rounded, weighted by the inverse Hessian of the layer's calibration inputs
(Frantar et al. 2022), so the layer's output error ‖(W − Ŵ)ᵀx‖ on real inputs stays small where
round-to-nearest rounds every weight alone. The block scales are fixed up front from the weights
(static groups), so the codes pack into MatMulNBits exactly as round-to-nearest's do.
"""

from __future__ import annotations

import numpy as np

from edgeq.quant.primitives import QuantFormat, block_weight_params

DAMPING = 0.01  # of the mean Hessian diagonal: keeps the inverse stable for nearly collinear inputs
LAZY_ROWS = 128  # rows rounded before the rest of the matrix is updated (one matmul per batch)


def gptq_blocked(
    weight: np.ndarray, hessian: np.ndarray, fmt: QuantFormat, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Signed codes [K, N] and scales [blocks, N] for weight [K, N] (K reduced, blocks along K),
    given the input second moments E[x xᵀ] [K, K]. Symmetric formats only (zero point 0)."""
    if not fmt.symmetric:
        raise ValueError("GPTQ rounding here is for symmetric 4-bit blocks")
    k = weight.shape[0]
    scale, _ = block_weight_params(weight, fmt, axis=0, block_size=block_size)
    row_scale = np.repeat(scale, block_size, axis=0)[:k].astype(np.float64)
    upper = _inverse_cholesky(hessian)
    work = weight.astype(np.float64).copy()
    codes = np.zeros(weight.shape, np.int8)
    for start in range(0, k, LAZY_ROWS):
        stop = min(start + LAZY_ROWS, k)
        errors = np.zeros((stop - start, weight.shape[1]))
        for row in range(start, stop):
            q = np.clip(np.round(work[row] / row_scale[row]), fmt.qmin, fmt.qmax)
            codes[row] = q
            error = (work[row] - q * row_scale[row]) / upper[row, row]
            work[row + 1 : stop] -= np.outer(upper[row, row + 1 : stop], error)
            errors[row - start] = error
        work[stop:] -= upper[start:stop, stop:].T @ errors
    return codes, scale


def _inverse_cholesky(hessian: np.ndarray) -> np.ndarray:
    """Upper U with UᵀU = (H + λI)⁻¹; inputs that never vary (zero diagonal) get a unit diagonal."""
    h = hessian.astype(np.float64).copy()
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    h += DAMPING * np.mean(np.diag(h)) * np.eye(len(h))
    return np.linalg.cholesky(np.linalg.inv(h)).T
