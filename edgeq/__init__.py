"""edgeq: prune, quantize, compile and measure representation models for edge targets."""

__version__ = "0.1.0"

from edgeq.api import CompileResult, compile  # noqa: E402
from edgeq.errors import EdgeqError  # noqa: E402
from edgeq.recipe import Recipe, load_recipe  # noqa: E402
from edgeq.report.schema import Report, load_report  # noqa: E402

__all__ = [
    "CompileResult",
    "EdgeqError",
    "Recipe",
    "Report",
    "compile",
    "load_recipe",
    "load_report",
    "__version__",
]
