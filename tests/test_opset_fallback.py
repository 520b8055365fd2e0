"""Below opset 13 DequantizeLinear has no `axis`: when a model is not upgraded, static INT8 is written
per tensor (weights and int32 biases), loads in ONNX Runtime, and each layer's reason says why."""

from __future__ import annotations

import numpy as np
import onnx

from edgeq.graph import default_opset
from edgeq.measure.fidelity import compare_outputs
from edgeq.passes.prepare import prepare_model
from edgeq.quant.calibrate import calibrate_ranges
from edgeq.quant.plan import ensure_node_names, plan_int8
from edgeq.quant.qdq import activation_format, rewrite_qdq
from edgeq.recipe import Calibration
from edgeq.runtime.session import OrtRunner
from edgeq.targets import load_target
from tests.conftest import FAST_TARGET
from tests.wild import models


def test_opset_12_static_int8_is_per_tensor_and_loads(tmp_path):
    path, calib_path = models.cnn(tmp_path, 12)
    prepared = prepare_model(onnx.load(str(path)))
    ensure_node_names(prepared)
    assert default_opset(prepared) == 12
    scheme = load_target(FAST_TARGET).quantization.int8
    plan = plan_int8(prepared, scheme)
    data = dict(np.load(calib_path))
    ranges = calibrate_ranges(
        prepared, plan.calibration_tensors(), data, Calibration(), activation_format(scheme)
    )
    quantized = rewrite_qdq(prepared, plan, ranges, scheme)
    qdq = [n for n in quantized.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and not [n.name for n in qdq if any(a.name == "axis" for a in n.attribute)]
    convs = [d for d in plan.decisions if d.op_type == "Conv"]
    assert convs and all(d.precision == "int8" for d in convs)
    assert all("weights per tensor: opset 12" in d.reason for d in convs)
    reference = OrtRunner(prepared.SerializeToString()).predict(data)
    outputs = compare_outputs(reference, OrtRunner(quantized.SerializeToString()).predict(data))
    assert min(o.cosine for o in outputs) > 0.999
