"""ONNX Runtime backend's compile: an offline-optimized .onnx plus the .ort format for minimal builds."""

from __future__ import annotations

from pathlib import Path

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.graph import all_nodes, save_model
from edgeq.runtime.session import write_optimized
from edgeq.targets import TargetSpec


def compile_ort_cpu(
    model: onnx.ModelProto, target: TargetSpec, out_dir: Path, stem: str = "model"
) -> Artifact:
    """Bake ORT's hardware-independent fusions into `stem.onnx`; also write `stem.ort` if asked.

    The saved level (extended by default) leaves ORT's layout transformations (NCHWc, NHWC) to the
    session that loads the artifact: ORT runs the same kernels from it as from the input graph."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = save_model(model, out_dir / f"{stem}.input.onnx")
    optimized = out_dir / f"{stem}.onnx"
    level = target.artifact.optimization_level
    write_optimized(source, optimized, level)
    save_model(lean(onnx.load(str(optimized))), optimized)
    files = [optimized]
    if target.artifact.ort_format:
        ort_path = out_dir / f"{stem}.ort"
        write_optimized(optimized, ort_path, level, ort_format=True)
        files.append(ort_path)
    for leftover in (source, source.with_name(source.name + ".data")):
        leftover.unlink(missing_ok=True)
    return Artifact(optimized, "onnx", files)


def lean(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without what no runtime reads: shape annotations (`value_info`, which edgeq's own
    shape inference added: 13% of Basic Pitch's bytes; ORT infers shapes at load) and the opset
    imports ORT writes for every domain it knows, used or not."""
    used = {node.domain for node in all_nodes(model.graph)}
    for function in model.functions:
        used |= {function.domain} | {node.domain for node in function.node}
    kept = [(o.domain, o.version) for o in model.opset_import if o.domain in used | {""}]
    del model.opset_import[:]
    for domain, version in kept:  # the default domain left unset, as exporters write it
        model.opset_import.add(version=version, **({"domain": domain} if domain else {}))
    for graph in _graphs(model.graph):
        del graph.value_info[:]
    return model


def _graphs(graph: onnx.GraphProto):
    """A graph and every subgraph inside its nodes (If branches, Loop/Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for subgraph in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _graphs(subgraph)
