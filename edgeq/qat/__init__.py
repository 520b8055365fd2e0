"""Quantization-aware training with Brevitas, for when post-training quantization misses the budget.

Optional extra (`pip install 'edgeq[qat]'`): Brevitas is imported only when a model is wrapped.
"""

# ruff: noqa: E402  (torch is checked first, so a torch-less install gets one line, not a traceback)
from edgeq.optional import require_torch

require_torch("quantization-aware training")

from edgeq.qat.compare import Metric, compare_simulated_measured, task_metric
from edgeq.qat.deps import require_brevitas
from edgeq.qat.format import QatFormat
from edgeq.qat.plan import PrecisionPlan, check_plan, uniform_plan
from edgeq.qat.predictor import TorchPredictor
from edgeq.qat.result import QatResult, quantize_aware_train

__all__ = [
    "Metric",
    "PrecisionPlan",
    "QatFormat",
    "QatResult",
    "TorchPredictor",
    "check_plan",
    "compare_simulated_measured",
    "quantize_aware_train",
    "require_brevitas",
    "task_metric",
    "uniform_plan",
]
