"""End to end: ordinary exported models through `edgeq compile`, measured on the artifact."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
import yaml

import edgeq
from edgeq.cli import main
from edgeq.quant.observers import CALIBRATION_METHODS
from edgeq.report.read import load_report
from edgeq.report.schema import SCHEMA
from edgeq.runtime.session import OrtRunner
from tests.conftest import FAST_TARGET, REPO
from tests.reference_models import SmallCNN


def run_cli(*args: str) -> int:
    """The exit code `edgeq ARGS...` would give (0 when main returns normally)."""
    try:
        main(list(args))
    except SystemExit as exit_info:
        return exit_info.code or 0
    return 0


@pytest.mark.parametrize("name", ["mlp", "cnn", "encoder"])
def test_cli_compiles_reference_model_to_int8_with_report(reference_models, tmp_path, name):
    model, data = reference_models[name]
    out = tmp_path / "out"
    code = run_cli(
        "compile",
        str(model),
        "--target",
        FAST_TARGET,
        "--calib",
        str(data),
        "--mode",
        "static",
        "--no-fallback",
        "-q",
        "-o",
        str(out),
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == SCHEMA
    assert set(report["model"]) >= {"path", "sha256", "bytes"}
    assert report["target"]["name"] == "cpu-fast"
    assert (out / report["artifact"]["path"]).is_file() and (out / "model.ort").is_file()
    assert report["decision"]["chosen"].startswith("int8-static")
    names = {c["name"] for c in report["decision"]["candidates"]}
    assert names - {"int8-static-per-tensor"} == {"fp32", "int8-static"}
    assert report["size_ratio"] < 0.6, "int8 weights must shrink the file (graph overhead stays)"
    (output,) = report["accuracy"]["outputs"]
    assert output["name"] == "y" and output["cosine"] > 0.99 and output["sqnr_db"] > 20
    assert [e["batch"] for e in report["latency"]] == [1, 8]
    for entry in report["latency"]:
        assert entry["fp32"]["p50_ms"] > 0 and entry["compiled"]["p50_ms"] > 0 and entry["speedup"] > 0
    assert {s["name"] for s in report["stages"]} >= {
        "load",
        "prepare",
        "quantize-static",
        "compile-int8-static",
        "latency",
    }
    assert report["quantization"]["layers"], "the culprit table lists quantized layers"
    artifact_ops = {n.op_type for n in onnx.load(out / "model.onnx").graph.node}
    assert artifact_ops & {"QLinearConv", "QGemm", "QLinearMatMul", "MatMulIntegerToFloat"}
    assert (out / "report.html").is_file() and yaml.safe_load((out / "recipe.yaml").read_text())
    assert not list(tmp_path.glob(".out.edgeq-*")), "no staging directory left behind"


def test_artifact_runs_in_plain_onnxruntime_and_matches_report(reference_models, tmp_path):
    model, data = reference_models["cnn"]
    result = edgeq.compile(
        model, out=tmp_path / "out", target=FAST_TARGET, calib=str(data), mode="static", fallback_fp32=False
    )
    samples = dict(np.load(data))
    fp32 = OrtRunner(model).predict(samples)["y"]
    compiled = OrtRunner(result.artifact).predict(samples)["y"]
    cosine = float(np.sum(fp32 * compiled) / np.linalg.norm(fp32) / np.linalg.norm(compiled))
    assert cosine == pytest.approx(result.report.outputs[0].cosine, abs=0.01)
    assert load_report(tmp_path / "out" / "report.json").run_id == result.report.run_id


def test_python_api_exports_a_torch_module(tmp_path):
    torch.manual_seed(0)
    module = SmallCNN().eval()
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=np.random.default_rng(1).standard_normal((40, 3, 16, 16)).astype(np.float32))
    result = edgeq.compile(
        module,
        example_inputs=torch.randn(2, 3, 16, 16),
        input_names=["image"],
        output_names=["logits"],
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=str(calib),
        calibration={"method": "minmax"},
    )
    assert result.report.outputs[0].name == "logits"
    assert result.report.worst_cosine > 0.99
    dims = onnx.load(result.artifact).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param, "the batch axis stays dynamic"


def test_recipe_file_equals_flags(reference_models, tmp_path):
    model, data = reference_models["mlp"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": str(model),
                "target": FAST_TARGET,
                "calib": str(data),
                "calibration": {"method": "percentile", "percentile": 99.9},
                "fallback_fp32": False,
            }
        )
    )
    assert run_cli("compile", "--recipe", str(recipe), "-q", "-o", str(tmp_path / "out")) == 0
    saved = yaml.safe_load((tmp_path / "out" / "recipe.yaml").read_text())
    assert saved["calibration"]["method"] == "percentile" and saved["calibration"]["percentile"] == 99.9


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
def test_every_calibration_method_gives_a_faithful_encoder(reference_models, tmp_path, method):
    model, data = reference_models["encoder"]
    result = edgeq.compile(
        model,
        out=tmp_path / method,
        target=FAST_TARGET,
        calib=str(data),
        calibration={"method": method},
        mode="static",
        fallback_fp32=False,
    )
    assert result.report.worst_cosine > 0.98


def test_failed_gate_exits_3_and_still_writes_the_report(reference_models, tmp_path, capsys):
    model, data = reference_models["mlp"]
    out = tmp_path / "out"
    code = run_cli(
        "compile",
        str(model),
        "--target",
        FAST_TARGET,
        "--calib",
        str(data),
        "--min-cosine",
        "1.01",
        "-q",
        "-o",
        str(out),
    )
    assert code == 3
    report = json.loads((out / "report.json").read_text())
    assert report["gates"] == [
        {
            "name": "min_cosine",
            "limit": 1.01,
            "value": report["gates"][0]["value"],
            "passed": False,
            "detail": None,
        },
        {
            "name": "budget",
            "limit": 1.0,
            "value": 1.0,
            "passed": True,
            "detail": None,
        },  # the kept one is within
    ]
    assert "gate failed: min_cosine" in capsys.readouterr().err


def test_separate_eval_file_is_used_for_held_out_metrics(reference_models, tmp_path):
    model, data = reference_models["mlp"]
    held_out = tmp_path / "eval.npz"
    np.savez(held_out, x=np.random.default_rng(7).standard_normal((17, 32)).astype(np.float32))
    result = edgeq.compile(
        model, out=tmp_path / "out", target=FAST_TARGET, calib=str(data), eval=str(held_out)
    )
    assert result.report.accuracy.samples == 17


def test_auto_mode_measures_every_candidate_and_never_returns_a_slower_model(reference_models, tmp_path):
    model, data = reference_models["encoder"]
    result = edgeq.compile(model, out=tmp_path / "out", target=FAST_TARGET, calib=str(data))
    decision = result.report.decision
    names = [c.name for c in decision.candidates]
    assert names == [
        "fp32",
        "int8-static",
        "int8-static-per-tensor",
        "int8-dynamic",
        "int8-dynamic-per-tensor",
    ]
    chosen = next(c for c in decision.candidates if c.name == decision.chosen)
    if decision.chosen != "fp32":
        noise = decision.timing_noise
        assert chosen.within_budget
        assert all(chosen.speedups[b] >= 1.0 - noise[b] for b in chosen.speedups), "never slower"
    assert [e.speedup for e in result.report.latency] == list(chosen.speedups.values())


def test_pointer_decision_head_stays_fp32_and_lstm_goes_dynamic(tmp_path):
    from edgeq.frontend.onnx_load import load_onnx
    from edgeq.passes.prepare import prepare_model
    from edgeq.quant.plan import ensure_node_names, plan_int8
    from edgeq.targets import load_target

    model = prepare_model(load_onnx(REPO / "examples/pointer_net/tsp.onnx"))
    ensure_node_names(model)
    plan = plan_int8(model, load_target("cpu-x86-avx2").quantization.int8)
    by_op = {}
    for decision in plan.decisions:
        by_op.setdefault(decision.op_type, set()).add((decision.precision, decision.reason))
    assert by_op["LSTM"] == {("int8-dynamic", "int8 weights, activations quantized per call")}
    heads = [d for d in plan.decisions if "decision" in d.reason]
    assert heads and all(d.precision == "fp32" and d.op_type == "MatMul" for d in heads)


def test_recipe_switches_on_equalization_bias_correction_and_adaround(reference_models, tmp_path):
    model, data = reference_models["cnn"]
    methods = {"equalize": True, "bias_correction": True, "adaround": True, "adaround_iterations": 20}
    result = edgeq.compile(
        model,
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=str(data),
        mode="static",
        fallback_fp32=False,
        methods=methods,
    )
    assert result.report.recipe["methods"] == methods | {"smoothquant": False, "gptq": False}
    assert {"equalize", "quantize-static"} <= {s.name for s in result.report.stages}
    assert result.report.worst_cosine > 0.99


def test_four_bit_compile_reports_sensitivity_and_compares_plans(reference_models, tmp_path):
    model, data = reference_models["mlp"]
    result = edgeq.compile(
        model, out=tmp_path / "out", target=FAST_TARGET, calib=str(data), bits=4, budget={"min_cosine": 0.95}
    )
    report = result.report
    assert {row.name for row in report.sensitivity} == {"/0/Gemm", "/2/Gemm", "/4/Gemm"}
    assert all(set(row.sensitivity) == {"int4", "int8"} for row in report.sensitivity)
    plans = {row.plan for row in report.precision_plan.comparison}
    assert plans == {"uniform-int8", "uniform-int4", "planned"}
    assert set(report.precision_plan.precisions.values()) <= {"int4", "int8", "fp32"}
    assert any(c.name.startswith("int4") for c in report.decision.candidates)


def test_already_quantized_model_is_compiled_as_given_not_twice(reference_models, tmp_path):
    from edgeq.passes.prepare import prepare_model
    from edgeq.progress import Progress
    from edgeq.quant.plan import ensure_node_names, plan_int8
    from edgeq.recipe import Recipe
    from edgeq.stages.quantize import quantize_static
    from edgeq.targets import load_target

    model, data = reference_models["mlp"]
    prepared = prepare_model(onnx.load(model))
    ensure_node_names(prepared)
    target = load_target(FAST_TARGET)
    plan = plan_int8(prepared, target.quantization.int8)
    qdq, _ = quantize_static(prepared, plan, Recipe(), target, dict(np.load(data)), Progress(False))
    onnx.save(qdq, tmp_path / "given.onnx")
    result = edgeq.compile(
        tmp_path / "given.onnx",
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=str(data),
        reference=str(model),
    )
    report = result.report
    assert report.decision.chosen == "given-qdq"
    assert report.quantization.counts["int8"] == 3 and report.quantization.target_problems == []
    given_q = sum(n.op_type == "QuantizeLinear" for n in qdq.graph.node)
    assert sum(n.op_type == "QuantizeLinear" for n in onnx.load(result.artifact).graph.node) <= given_q
    assert 0.99 < report.worst_cosine < 1.0, "measured against the fp32 reference, not itself"


def test_pruning_and_int8_compose_in_one_compile(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 8)).eval()
    with torch.no_grad():  # plant 16 exact duplicate hidden features: IFM must merge them, lossless
        module[0].weight[32:48] = module[0].weight[:16]
        module[0].bias[32:48] = module[0].bias[:16]
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32))
    result = edgeq.compile(
        module,
        example_inputs=torch.randn(2, 16),
        input_names=["x"],
        output_names=["y"],
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=str(calib),
        prune={"threshold": 0.01, "max_ratio": 0.5},
        mode="static",
        fallback_fp32=False,
    )
    pruning = result.report.pruning
    assert pruning.summary.parameters_after <= pruning.summary.parameters_before - 16 * 16
    assert pruning.accuracy.outputs[0].cosine > 0.99999, "merging duplicates is exact"
    assert result.report.decision.chosen.startswith("int8-static") and result.report.worst_cosine > 0.99


def test_embedding_tables_are_stored_in_int8_and_gathered_row_by_row(tmp_path):
    import torch
    from torch import nn

    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(2000, 64)
            self.head = nn.Linear(64, 16)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(ids).mean(1))

    torch.manual_seed(0)
    calib = tmp_path / "ids.npz"
    np.savez(calib, ids=np.random.default_rng(0).integers(0, 2000, (64, 12)).astype(np.int64))
    result = edgeq.compile(
        Bag().eval(),
        example_inputs=torch.zeros(2, 12, dtype=torch.int64),
        input_names=["ids"],
        output_names=["y"],
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=str(calib),
        mode="dynamic",
        fallback_fp32=False,
    )
    assert result.report.size_ratio < 0.35, "the 2000x64 table dominates the model and is int8"
    assert result.report.worst_cosine > 0.999
    ops = [n.op_type for n in onnx.load(result.artifact).graph.node]
    assert "DequantizeLinear" not in ops, "rows are dequantized after the gather, not the whole table"


def test_convnet_with_dynamic_height_and_width_compiles(tmp_path):
    import torch

    torch.manual_seed(0)
    path = tmp_path / "dynamic_hw.onnx"
    torch.onnx.export(
        SmallCNN().eval(),
        (torch.randn(1, 3, 16, 16),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}},
        opset_version=17,
        dynamo=False,
    )
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_param and dims[3].dim_param
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((48, 3, 24, 20)).astype(np.float32))
    result = edgeq.compile(
        path, out=tmp_path / "out", target=FAST_TARGET, calib=str(calib), mode="static", fallback_fp32=False
    )
    assert result.report.worst_cosine > 0.99


def test_qat_check_compares_simulated_with_the_measured_artifact(tmp_path):
    from edgeq.passes.prepare import prepare_model
    from edgeq.progress import Progress
    from edgeq.quant.plan import ensure_node_names, plan_int8
    from edgeq.recipe import Recipe
    from edgeq.stages.quantize import quantize_static
    from edgeq.targets import load_target

    prepared = prepare_model(onnx.load(REPO / "examples/mrl_encoder/model.onnx"))
    ensure_node_names(prepared)
    target = load_target(FAST_TARGET)
    calib = dict(np.load(REPO / "calib/mrl_digits.npz"))
    qdq, _ = quantize_static(
        prepared, plan_int8(prepared, target.quantization.int8), Recipe(), target, calib, Progress(False)
    )
    onnx.save(qdq, tmp_path / "qat.onnx")
    result = edgeq.compile(
        tmp_path / "qat.onnx",
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=REPO / "calib/mrl_digits.npz",
        reference=REPO / "examples/mrl_encoder/model.onnx",
        task={"name": "mrl-retrieval", "options": {"dims": [8, 128]}},
        qat={"metric": "1nn_acc@8", "simulated": 90.0, "tolerance": 0.5},
    )
    check = result.report.quantization.qat
    assert check.measured == result.report.task.metric("1nn_acc@8").compiled
    assert check.gap == pytest.approx(check.measured - 90.0) and check.flagged


def test_mlflow_flag_without_mlflow_is_refused_before_any_work(reference_models, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here")
    model, data = reference_models["mlp"]
    out = tmp_path / "out"
    assert run_cli("compile", str(model), "--calib", str(data), "-o", str(out), "--mlflow") == 2
    assert "pip install mlflow" in capsys.readouterr().err and not out.exists()
