"""Intake: the model to compile (ONNX file, ModelProto or torch module) and its data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgeq.data import Arrays, load_npz, split, validate
from edgeq.errors import InputError
from edgeq.frontend.onnx_load import input_signatures, load_onnx
from edgeq.graph import model_bytes
from edgeq.recipe import Recipe


@dataclass
class SourceModel:
    model: onnx.ModelProto
    path: str
    sha256: str
    bytes: int
    name: str


def load_source(model, example_inputs, input_names, output_names) -> SourceModel:
    if isinstance(model, str | Path):
        path = Path(model)
        loaded = load_onnx(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        name = f"{path.parent.name}/{path.stem}" if path.stem == "model" and path.parent.name else path.stem
        return SourceModel(loaded, str(path.resolve()), digest, model_bytes(path), name)
    if isinstance(model, onnx.ModelProto):
        serialized = model.SerializeToString()
        return SourceModel(
            model,
            "<ModelProto>",
            hashlib.sha256(serialized).hexdigest(),
            len(serialized),
            model.graph.name or "model",
        )
    import torch

    if isinstance(model, torch.nn.Module):
        from edgeq.frontend.torch_export import export_torch

        if example_inputs is None:
            raise InputError("a torch module needs example_inputs to be exported")
        exported, _ = export_torch(model, example_inputs, input_names=input_names, output_names=output_names)
        serialized = exported.SerializeToString()
        return SourceModel(
            exported,
            f"<torch {type(model).__name__}>",
            hashlib.sha256(serialized).hexdigest(),
            len(serialized),
            type(model).__name__,
        )
    raise InputError(f"cannot compile a {type(model).__name__}: give an ONNX path, ModelProto or nn.Module")


def load_data(recipe: Recipe, model: onnx.ModelProto) -> tuple[Arrays, Arrays]:
    """Calibration and held-out evaluation arrays, checked against the model's inputs."""
    if recipe.calib is None:
        raise InputError("no calibration data: pass --calib DATA.npz (one array per model input)")
    signatures = input_signatures(model)
    calib = load_npz(recipe.calib)
    count = validate(calib, signatures, f"calibration file {recipe.calib}")
    if recipe.eval is None:
        return split(calib, count, recipe.eval_fraction)
    evaluation = load_npz(recipe.eval, "evaluation file")
    validate(evaluation, signatures, f"evaluation file {recipe.eval}")
    return calib, evaluation


def sample_count(data: Arrays, model: onnx.ModelProto) -> int:
    first = input_signatures(model)[0].name
    return len(data[first])
