"""Swap a model's Conv2d/Linear layers for Brevitas fake-quant layers, following a precision plan."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from edgeq.qat.deps import require_brevitas
from edgeq.qat.format import QatFormat
from edgeq.qat.plan import Precision, check_plan


def fold_batchnorm(model: nn.Module) -> None:
    """Fold every Conv2d -> BatchNorm2d pair of a Sequential in place (eval statistics).

    Folding first means the weights that get quantized are the ones the deployed conv uses.
    """
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, norm = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv.eval(), norm.eval())
                module._modules[second] = nn.Identity()


def quantize_layers(model: nn.Module, plan: Mapping[str, Precision], fmt: QatFormat) -> nn.Module:
    """A copy of `model` with BatchNorm folded and each planned layer replaced by a quant layer.

    Weights: symmetric per-channel at the planned bits. Inputs: one per-tensor 8-bit quantizer
    per layer, so the exported graph has Q/DQ exactly where a runtime's integer kernels read.
    """
    check_plan(model, plan)
    quantized = copy.deepcopy(model).eval()
    fold_batchnorm(quantized)
    modules = dict(quantized.named_modules())
    for name, precision in plan.items():
        if precision == "fp32":
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = modules[parent_name] if parent_name else quantized
        setattr(parent, attr, _quant_layer(modules[name], fmt.weight_bits(precision), fmt))
    return quantized


def _quant_layer(layer: nn.Module, bits: int, fmt: QatFormat) -> nn.Module:
    require_brevitas()
    from brevitas.nn import QuantConv2d, QuantLinear
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat
    from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat

    quant = {
        "weight_quant": Int8WeightPerChannelFloat,
        "weight_bit_width": bits,
        "input_quant": Int8ActPerTensorFloat if fmt.symmetric_activations else ShiftedUint8ActPerTensorFloat,
    }
    bias = layer.bias is not None
    if isinstance(layer, nn.Conv2d):
        replacement = QuantConv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=bias,
            padding_mode=layer.padding_mode,
            **quant,
        )
    else:
        replacement = QuantLinear(layer.in_features, layer.out_features, bias=bias, **quant)
    with torch.no_grad():
        replacement.weight.copy_(layer.weight)
        if bias:
            replacement.bias.copy_(layer.bias)
    return replacement
