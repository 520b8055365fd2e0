"""Precision plans for QAT: which Conv2d/Linear layers train with 4- or 8-bit weights, which stay fp32."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from torch import nn

from edgeq.errors import InputError

Precision = int | Literal["fp32"]
# Runtimes execute 8- and 4-bit weights; 2, 3, 5-7 bits train and export as clipped int8 values.
WEIGHT_BITS = range(2, 9)
PrecisionPlan = dict[str, Precision]
QUANTIZABLE = (nn.Conv2d, nn.Linear)
# Brevitas 0.13.4 exports a QuantLSTM to QCDQ ONNX only with weight-only quantization, through
# custom cell functions; recurrent layers therefore stay float.
RECURRENT = (nn.LSTM, nn.LSTMCell, nn.GRU, nn.GRUCell, nn.RNN, nn.RNNCell)
FLOAT_REASON = "recurrent layers stay fp32: Brevitas 0.13.4 QCDQ export has no activation-quantized LSTM"


def uniform_plan(model: nn.Module, bits: Precision, skip: Iterable[str] = ()) -> PrecisionPlan:
    """Every Conv2d/Linear at `bits`, except names starting with a `skip` prefix, which stay fp32."""
    prefixes = tuple(skip)
    return {
        name: "fp32" if prefixes and name.startswith(prefixes) else bits
        for name, module in model.named_modules()
        if isinstance(module, QUANTIZABLE)
    }


def check_plan(model: nn.Module, plan: Mapping[str, Precision]) -> None:
    """Reject unknown layer names, layers Brevitas cannot export, and bit widths outside 2..8."""
    modules = dict(model.named_modules())
    for name, precision in plan.items():
        module = modules.get(name)
        if module is None:
            raise InputError(f"precision plan names layer {name!r}, which the model does not have")
        if precision == "fp32":
            continue
        if isinstance(module, RECURRENT):
            raise InputError(f"layer {name!r}: {FLOAT_REASON}; give it 'fp32'")
        if not isinstance(module, QUANTIZABLE):
            raise InputError(
                f"layer {name!r} is a {type(module).__name__}: only Conv2d and Linear are quantized"
            )
        if precision not in WEIGHT_BITS:
            raise InputError(f"layer {name!r}: precision {precision!r} is not 2..8 bits or 'fp32'")


def float_layers(model: nn.Module, plan: Mapping[str, Precision]) -> dict[str, str]:
    """Layers with weights that stay fp32, each with the reason (for the report)."""
    reasons = {}
    for name, module in model.named_modules():
        if isinstance(module, RECURRENT):
            reasons[name] = FLOAT_REASON
        elif isinstance(module, QUANTIZABLE) and plan.get(name, "fp32") == "fp32":
            reasons[name] = "fp32 in the precision plan"
    return reasons
