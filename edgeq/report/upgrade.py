"""Reading an edgeq.report/1 file: its sections reshaped into /2's, so one typed reader serves both.

/1 differed in four places: `pruning` was flat (the IFM summary's fields beside method, threshold
and the pruned model's accuracy), `precision_plan.layers` carried each group's precision, sensitivity
rows carried a `worst_damage`, TensorRT build details sat under `tensorrt` (with `decision.engine`
still saying "pending" after the build), and a report whose engine was still to be built had no
`latency_status` (it is read from `decision.engine`). Anything not in the
expected shape is left as found, for the typed reader to refuse naming the field.
"""

from __future__ import annotations

from typing import Any

_PRUNING_OWN = ("method", "accuracy")
_PRUNING_DERIVED = ("channels_merged", "parameters_kept", "flops_kept")


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a /1 report without its schema key) in /2's shape."""
    data = dict(data)
    decision = data.get("decision")
    if "tensorrt" in data and "engine" not in data:  # written by build-engine, which left decision alone
        data["engine"] = data.pop("tensorrt")
        artifact = data.get("artifact")
        if isinstance(decision, dict) and isinstance(artifact, dict):
            decision = data["decision"] = decision | {
                "engine": f"built: {artifact.get('path')}",
                "finish_later": None,
            }
    if data.get("latency") == [] and isinstance(decision, dict) and isinstance(decision.get("engine"), str):
        data.setdefault("latency_status", f"not measured here: the engine is {decision['engine']}")
    if isinstance(data.get("pruning"), dict):
        data["pruning"] = _pruning(data["pruning"], data.get("accuracy"))
    if isinstance(data.get("precision_plan"), dict):
        data["precision_plan"] = _precision_plan(data["precision_plan"])
    if isinstance(data.get("sensitivity"), list):
        data["sensitivity"] = [_without(row, ("worst_damage",)) for row in data["sensitivity"]]
    return data


def _pruning(flat: dict[str, Any], accuracy: Any) -> dict[str, Any]:
    """{method, accuracy, <summary fields>} → {method, summary, accuracy}; accuracy gets the sample count."""
    pruned_accuracy = flat.get("accuracy")
    if isinstance(pruned_accuracy, dict) and isinstance(accuracy, dict) and "samples" not in pruned_accuracy:
        pruned_accuracy = {"samples": accuracy.get("samples"), **pruned_accuracy}  # the same evaluation set
    summary = _without(flat, _PRUNING_OWN + _PRUNING_DERIVED)
    return {"method": flat.get("method"), "summary": summary, "accuracy": pruned_accuracy}


def _precision_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """Each group's `precision` moved out of `layers` into the `precisions` mapping."""
    layers = plan.get("layers")
    if not isinstance(layers, list) or "precisions" in plan:
        return plan
    groups = [row for row in layers if isinstance(row, dict)]
    precisions = {row.get("name"): row.get("precision") for row in groups}
    return {**plan, "layers": [_without(row, ("precision",)) for row in layers], "precisions": precisions}


def _without(row: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in row.items() if k not in keys} if isinstance(row, dict) else row
