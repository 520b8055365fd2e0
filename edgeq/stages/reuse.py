"""Lowering, compiling, measuring and repairing the candidates, or all of it restored from the cache.

The entry is keyed by everything those stages read except what only later stages read (gates, the
fp32 fallback; the budget too unless the compile is 4-bit or analyzed, where the planner and the
sensitivity probes read it), and by this machine: latency is never reused from another. The run-off
after the first timing reads the budget through which candidates are within it, and a repair reads
all of it when a candidate misses it, so an entry holds what it read of the budget and is reused
only while the budget reads the same (docs/cache.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pickle
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edgeq.backends.artifact import Artifact
from edgeq.cache import Cache, active_cache, content_key, digest_arrays, digest_bytes
from edgeq.cache.memo import UNREADABLE, memo
from edgeq.cache.store import stamp
from edgeq.recipe import Recipe
from edgeq.report.schema import CacheUse
from edgeq.runtime.machine import describe_machine
from edgeq.runtime.session import OrtRunner
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState

TIMING_LOCK = "EDGEQ_TIMING_LOCK"
"""A file every compile on one machine locks while it measures, so parallel compiles never time at once."""
TIMED_STAGES = ("measure", "repair")
AFTER_MEASUREMENT = ("gates", "fallback_fp32", "allow_unmeasured")
NAMED_BY_CONTENT = ("calib", "eval", "reference", "target")


class CacheReuseWarning(UserWarning):
    """Results in this report were restored from the cache (the report's `cache` says which and when)."""


class ReuseMeasured(Stage):
    """`stages` (lower, compile, measure, repair) run, or restored from the active cache's entry for
    this state; a fresh result is stored for the next compile."""

    name = "measured"

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)

    def check(self, state: CompileState) -> str | None:
        return next((why for stage in self.stages if (why := stage.check(state)) is not None), None)

    def run(self, state: CompileState) -> CompileState:
        cache = active_cache()
        if cache is None:
            return self._measure(state)
        base = content_key("measured", measured_key(state))
        restored = _restore(cache, base, state)
        if restored is not None:
            return restored
        first_warning, before = len(state.caught), dict(vars(state))
        state = self._measure(state)
        changed = {name: value for name, value in vars(state).items() if before.get(name) is not value}
        _store(cache, base, state, changed, state.caught[first_warning:])
        return state

    def _measure(self, state: CompileState) -> CompileState:
        for stage in self.stages:
            with timing_lock() if stage.name in TIMED_STAGES else contextlib.nullcontext():
                state = stage.run(state)
        return state


@contextlib.contextmanager
def timing_lock() -> Iterator[None]:
    """Hold `$EDGEQ_TIMING_LOCK` (when set) exclusively: the measurement of one compile at a time."""
    path = os.environ.get(TIMING_LOCK)
    if not path:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def measured_key(state: CompileState) -> dict[str, Any]:
    """Everything lowering, compiling and measuring read, by content."""
    recipe = state.recipe
    settings = {k: v for k, v in recipe.to_dict().items() if k not in AFTER_MEASUREMENT + NAMED_BY_CONTENT}
    if recipe.bits != 4 and not recipe.analyze:
        settings.pop("budget")
    return {
        "prepared": digest_bytes(state.prepared.SerializeToString()),
        "source": state.source.sha256,
        "deployed": _file_digest(state.deployed),
        "reference": _file_digest(recipe.reference),
        "task_file": _file_digest(recipe.task.name.rpartition(":")[0] if recipe.task else None),
        "calib": digest_arrays(state.calib),
        "eval": digest_arrays(state.evaluation),
        "recipe": settings,
        "target": dataclasses.asdict(state.target),
        "backend": type(state.backend).__name__,
        "unmeasured": state.unmeasured,
        "machine": dataclasses.asdict(describe_machine()),
    }


def _file_digest(path: str | Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return digest_bytes(Path(path).read_bytes())


def budget_read(candidates: list[Candidate], recipe: Recipe) -> dict[str, Any]:
    """What the measurement read of `recipe`'s budget: the candidates within it (the run-off's
    leaders follow from this set) and, once a quantized one misses it, the whole budget (a repair
    then searched for the layers to keep fp32 under exactly that budget)."""
    within = sorted(c.name for c in candidates if c.budget_problem(recipe) is None)
    missed = any(c.plan is not None and c.name not in within for c in candidates)
    return {"within": within, "budget": dataclasses.asdict(recipe.budget) if missed else None}


def _variant(base: str, read: dict[str, Any]) -> str:
    return content_key("measured-variant", {"base": base, **read})


def _without_sessions(candidates: list[Candidate]) -> list[Candidate]:
    """Copies without their sessions (which cannot be stored), a repaired one's base the stored copy."""
    copies = {id(c): dataclasses.replace(c, runner=None) for c in candidates}
    for copy in copies.values():
        base = getattr(copy, "base", None)
        if base is not None:
            copy.base = copies.get(id(base)) or dataclasses.replace(base, runner=None)
    return list(copies.values())


def _store(
    cache: Cache,
    base: str,
    state: CompileState,
    changed: dict[str, Any],
    caught: list[warnings.WarningMessage],
) -> None:
    """The state fields the stages set (candidates without their sessions), the warnings they raised,
    and the work folder's files."""
    changed["candidates"] = _without_sessions(state.candidates)
    saved = {
        "fields": changed,
        "work": state.work,
        "warnings": [(w.message, w.category) for w in caught],
        "budget_read": budget_read(state.candidates, state.recipe),
        "measured_at": stamp(),
    }

    used = _used_folders(state, changed)

    def unused(at: str, names: list[str]) -> set[str]:  # at the work folder's top; a model's .data stays
        return {n for n in names if n.removesuffix(".data") not in used} if Path(at) == state.work else set()

    def fill(folder: Path) -> None:
        shutil.copytree(state.work, folder / "work", ignore=unused)
        (folder / "state.pickle").write_bytes(pickle.dumps(saved, protocol=pickle.HIGHEST_PROTOCOL))

    key = base if cache.get(base) is None else _variant(base, saved["budget_read"])
    cache.put(key, fill)


def _used_folders(state: CompileState, changed: dict[str, Any]) -> set[str]:
    """The work folder's entries a stored path points into: every candidate's artifact and the saved
    reference, not the builds a repair tried and dropped."""
    paths = [f for c in state.candidates if c.artifact for f in (c.artifact.path, *c.artifact.files)]
    paths += [v for v in changed.values() if isinstance(v, Path)]
    return {p.relative_to(state.work).parts[0] for p in paths if p.is_relative_to(state.work)}


def _restore(cache: Cache, base: str, state: CompileState) -> CompileState | None:
    """The state as the stored measurement left it, or None: no entry, an unreadable one, or only
    one measured under a budget that reads differently (`budget_read`)."""
    key = base
    saved = _load(cache, key)
    if saved is None:
        return None
    read = budget_read(saved["fields"]["candidates"], state.recipe)
    if saved["budget_read"] != read:
        key = _variant(base, read)
        saved = _load(cache, key)
    return _apply(state, saved, cache.root / "entries" / key, key) if saved is not None else None


def _load(cache: Cache, key: str) -> dict[str, Any] | None:
    entry = cache.get(key)
    if entry is None:
        return None
    try:
        return pickle.loads((entry / "state.pickle").read_bytes())
    except UNREADABLE:
        return None


def link_or_copy(source: str, destination: str) -> None:
    """A hard link to the cache entry's file (the same disk: no bytes copied), else a copy. The compile
    never writes into a work file it restored, it only adds new ones and renames the kept artifact
    out: bert_l6's warm recompile copied 465 MB of candidates for 2.8 of its 6.2 s."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _apply(state: CompileState, saved: dict[str, Any], entry: Path, key: str) -> CompileState | None:
    """Link (or copy) the entry's work files into this compile's and point the restored candidates at
    them."""
    with state.progress.stage("reuse", "reuse the lowered, compiled and measured candidates (cache)"):
        restoring = state.staging / "restoring"
        try:
            shutil.copytree(entry / "work", restoring, copy_function=link_or_copy)
        except OSError:  # evicted while copied: measure afresh
            shutil.rmtree(restoring, ignore_errors=True)
            return None
        state.work.mkdir(exist_ok=True)
        for path in restoring.iterdir():
            os.replace(path, state.work / path.name)
        restoring.rmdir()
        old = Path(saved["work"])

        def moved(path: Path) -> Path:
            return state.work / path.relative_to(old) if path.is_relative_to(old) else path

        for name, value in saved["fields"].items():
            setattr(state, name, moved(value) if isinstance(value, Path) else value)
        for candidate in state.candidates:
            if candidate.artifact is not None:
                artifact = candidate.artifact
                files = [moved(f) for f in artifact.files]
                candidate.artifact = Artifact(moved(artifact.path), artifact.format, files)
                candidate.runner = SessionOnUse(state, candidate)  # type: ignore[assignment]
        for message, category in saved["warnings"]:
            warnings.warn(message, category, stacklevel=1)
        measured = "latency and fidelity" if state.measures_latency else "fidelity"
        note = f"{measured} reused from a run on this machine at {saved['measured_at']}"
        warnings.warn(note, CacheReuseWarning, stacklevel=1)
        state.progress.note(note)
        state.reused = CacheUse(
            key=key, reused=["lower", "compile", "measure", "repair"], measured_at=saved["measured_at"]
        )
    return state


class SessionOnUse:
    """A restored candidate's session, opened when first used: a warm compile reads only the kept
    one's (opening every candidate's was most of a warm recompile of an encoder)."""

    def __init__(self, state: CompileState, candidate: Candidate) -> None:
        self._state, self._candidate = state, candidate
        self._session: OrtRunner | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            state, candidate = self._state, self._candidate
            kept = candidate is state.chosen and state.artifact is not None  # moved by `keep`
            path = state.artifact.path if kept else candidate.artifact.path
            self._session = open_session(state, path)
        return getattr(self._session, name)


class ReuseLayers(Stage):
    """`stage` (the culprit table), or its result from the active cache: the layer damage of one
    candidate follows from the prepared graph, the candidates' graphs, the choice and the data, and
    the candidates' graphs from what the measurement is keyed by and their names (a repaired one's
    name says how many layers it keeps fp32), so no candidate graph is hashed."""

    name = "layers"

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def run(self, state: CompileState) -> CompileState:
        def parts() -> dict[str, Any]:
            return {
                "measured": content_key("measured", measured_key(state)),
                "candidates": [c.name for c in state.candidates],
                "chosen": state.chosen.name,
            }

        computed = False

        def compute() -> tuple[str | None, list]:
            nonlocal computed
            computed = True
            ran = self.stage.run(state)
            return (ran.explained.name if ran.explained else None), ran.layers

        explained, state.layers = memo("layers", parts, compute)
        state.explained = next((c for c in state.candidates if c.name == explained), None)
        if not computed and state.reused is not None:
            state.reused.reused.append("layers")
        return state


class NoteReuse(Stage):
    """The report says what the cache supplied (its `cache` field): what was not measured now."""

    name = "note-reuse"

    def run(self, state: CompileState) -> CompileState:
        state.report.cache = state.reused
        return state
