"""The package's layering, read from the source: no import cycles between units, none running upwards.

A unit is a subpackage of `edgeq` (edgeq/quant/, edgeq/report/, ...) or a top-level module
(edgeq/api.py). Every import counts, including ones inside functions: an import deferred to call
time is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgeq

PACKAGE = Path(edgeq.__file__).parent

# Lowest first. A unit may import units of its own rank or below, never above.
RANKS: dict[str, int] = {
    "errors": 0,
    "config": 0,
    "progress": 0,
    "optional": 0,
    "runtime": 1,
    "cache": 1,
    "graph": 1,
    "targets": 2,
    "recipe": 2,
    "data": 2,
    "outdir": 2,
    "zoo": 2,
    "examples": 2,
    "feeds": 2,
    "quant": 3,
    "passes": 4,
    "measure": 4,
    "frontend": 4,
    "source": 5,
    "calibdata": 5,
    "backends": 5,
    "report": 6,
    "store": 7,
    "qat": 7,
    "stages": 8,
    "pipeline": 9,
    "api": 10,
    "dashboard": 11,
    "sweep": 11,
    "cli": 12,
    "entry": 13,
    "__main__": 14,
}


def _unit(module: str) -> str | None:
    """`edgeq.quant.qdq` → `quant`; `edgeq` itself (the package's public face) → None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "edgeq" and len(parts) > 1 else None


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every edgeq module named by an import in the file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {
                f"{module}.{alias.name}" for alias in node.names if _is_module(f"{module}.{alias.name}", root)
            }
    return {name for name in found if name.split(".")[0] == "edgeq"}


def _is_module(name: str, root: Path) -> bool:
    """Whether `from package import name` names a submodule (not a function or constant)."""
    path = root.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = _unit(_module_name(path))
        if unit is None:
            continue
        graph.setdefault(unit, set()).update({_unit(name) for name in _imports(path)} - {None, unit})
    return graph


def test_every_unit_has_a_rank() -> None:
    assert set(_unit_graph()) <= set(RANKS), "add new subpackages/modules to RANKS at their layer"


def test_no_import_runs_upwards() -> None:
    upward = sorted(
        f"{unit} (rank {RANKS[unit]}) imports {target} (rank {RANKS[target]})"
        for unit, targets in _unit_graph().items()
        for target in targets
        if RANKS[target] > RANKS[unit]
    )
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_units() -> None:
    graph = _unit_graph()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), list(graph.get(start, ()))
        while todo:
            unit = todo.pop()
            if unit not in seen:
                seen.add(unit)
                todo += graph.get(unit, ())
        return seen

    in_cycles = sorted(unit for unit in graph if unit in reachable(unit))
    assert not in_cycles, f"units on an import cycle: {', '.join(in_cycles)}"


def test_the_checker_sees_a_planted_upward_import(tmp_path: Path) -> None:
    """The reader must resolve relative and in-function imports, or the tests above prove nothing."""
    root = tmp_path / "edgeq"
    module = root / "quant" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from .. import pipeline\n    import edgeq.report.schema\n")
    (root / "pipeline.py").write_text("")
    assert _imports(module, root) >= {"edgeq.pipeline", "edgeq.report.schema"}
