"""Intake: the model to compile (ONNX file, ModelProto or torch module) and its data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import onnx

from edgeq.data import Arrays, arrange, fed_signatures, load_npz, split, validate
from edgeq.errors import InputError
from edgeq.feeds import to_arrays
from edgeq.frontend.hf_folder import export_hf_folder, folder_digest, is_hf_folder
from edgeq.frontend.input_roles import resolve_roles
from edgeq.frontend.onnx_load import input_signatures, load_onnx
from edgeq.graph import model_bytes
from edgeq.optional import require_torch
from edgeq.recipe import Recipe
from edgeq.runtime.roles import InputRoles


@dataclass
class SourceModel:
    model: onnx.ModelProto
    path: str
    sha256: str
    bytes: int
    name: str


def load_source(
    model: Any,
    example_inputs: Any = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    pooling: str | None = None,
) -> SourceModel:
    """The model as ONNX with its content hash; a Hugging Face folder or a torch module is exported."""
    if pooling is not None and not is_hf_folder(model):
        raise InputError("pooling applies to a Hugging Face model folder (config.json + weights) only")
    if is_hf_folder(model):
        return _hf_source(Path(model), pooling or "none")
    if isinstance(model, str | Path) and Path(model).is_dir():
        raise InputError(
            f"{model} is a directory without config.json: give an .onnx file or a Hugging Face "
            "save_pretrained folder"
        )
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
    if _is_torch_module(model):
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


def _hf_source(folder: Path, pooling: str) -> SourceModel:
    exported = export_hf_folder(folder, pooling)
    return SourceModel(
        exported,
        str(folder.resolve()),
        folder_digest(folder),
        len(exported.SerializeToString()),
        f"{folder.resolve().name}" + ("" if pooling == "none" else f" ({pooling} pooling)"),
    )


def _is_torch_module(model: Any) -> bool:
    """An nn.Module, recognised without importing torch (an ONNX-only install has none)."""
    if not any(cls.__module__.startswith("torch") for cls in type(model).__mro__):
        return False
    return isinstance(model, require_torch("exporting a torch module").nn.Module)


def load_data(
    recipe: Recipe, model: onnx.ModelProto, calib_data: Any = None, eval_data: Any = None
) -> tuple[Arrays, Arrays, InputRoles]:
    """Calibration and held-out evaluation arrays, checked against the model's inputs, and the roles
    (`recipe.inputs`, the rest inferred) they were arranged by.

    `calib_data`/`eval_data` are in-memory data from the API (see `edgeq.feeds`), used instead of
    the recipe's files."""
    if recipe.calib is None and calib_data is None:
        raise InputError("no calibration data: pass --calib DATA.npz (one array per model input)")
    signatures = input_signatures(model)
    resolve = partial(resolve_roles, model, recipe.inputs)
    if calib_data is None:
        calib, what = load_npz(recipe.calib), f"calibration file {recipe.calib}"
        roles = resolve(calib)
    else:
        (calib, roles), what = to_arrays(calib_data, signatures, "calib", resolve), "calib (in memory)"
    fed = fed_signatures(signatures, roles)
    calib = arrange(calib, signatures, roles, what)
    count = validate(calib, fed, what)
    if recipe.eval is None and eval_data is None:
        return (*split(calib, count, recipe.eval_fraction), roles)
    if eval_data is None:
        evaluation, what = load_npz(recipe.eval, "evaluation file"), f"evaluation file {recipe.eval}"
    else:
        evaluation, what = to_arrays(eval_data, signatures, "eval", lambda _: roles)[0], "eval (in memory)"
    evaluation = arrange(evaluation, signatures, roles, what)
    validate(evaluation, fed, what)
    return calib, evaluation, roles


def sample_count(data: Arrays, model: onnx.ModelProto) -> int:
    first = input_signatures(model)[0].name
    return len(data[first])
