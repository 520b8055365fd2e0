"""The compile pipeline: which stages run for a target and model, every check before any run.

    (each starts with check-options: --exclude and --reference checked against the model)
    fp32 model, CPU target:           prepare, prune, subpixel, mrl, lower, compile, measure (+ run-off),
                                      repair, select, best-per-runtime, layers, keep, report, record, write
    already-quantized model:          prepare-given, lower-given, compile, measure, select-given, keep,
                                      report, record, write
    TensorRT target:                  prepare, prune, mrl, lower-tensorrt, compile, measure (fidelity
                                      only), select-engine, layers, engine-inputs, keep, report,
                                      record, write, build-engine

With a cache, lower, compile, measure and repair are one stage (`measured`) restored from it when the
same model, data, recipe (less gates) and target were measured on this machine before (docs/cache.md).

A stage that cannot honour a recipe option refuses it in `check` (one line, exit 2), before the
output's staging directory exists. The stages then run in order inside it; the output is renamed
into place only after the report was written there once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from edgeq.cache import Cache, using_cache
from edgeq.errors import InputError
from edgeq.outdir import OutputAppeared, staged_output
from edgeq.quant.prequantized import is_quantized
from edgeq.stages.base import Stage
from edgeq.stages.compile import CompileCandidates
from edgeq.stages.culprits import Culprits
from edgeq.stages.engine import BuildEngine, EngineInputs
from edgeq.stages.inputs import CheckModelOptions
from edgeq.stages.keep import Keep
from edgeq.stages.lower import LowerCandidates, LowerGiven, LowerTensorRT
from edgeq.stages.measure import Measure
from edgeq.stages.mrl import Mrl
from edgeq.stages.prepare import Prepare, PrepareGiven, Subpixel
from edgeq.stages.prune import Prune
from edgeq.stages.record import Record
from edgeq.stages.repair import Repair
from edgeq.stages.report import BuildReport
from edgeq.stages.reuse import NoteReuse, ReuseLayers, ReuseMeasured
from edgeq.stages.runtime_candidates import BestPerRuntime
from edgeq.stages.select import KeepForEngine, KeepGiven, SelectFastest
from edgeq.stages.state import CompileState
from edgeq.stages.write import Write

FINISH = (BuildReport(), NoteReuse(), Record(), Write())

CANDIDATES: tuple[Stage, ...] = (
    CheckModelOptions(),
    Prepare(),
    Prune(),
    Subpixel(),
    Mrl(),
    ReuseMeasured((LowerCandidates(), CompileCandidates(), Measure(runoff=True), Repair())),
    SelectFastest(),
    BestPerRuntime(),
    ReuseLayers(Culprits()),
    Keep(),
    *FINISH,
)
PREQUANTIZED: tuple[Stage, ...] = (
    CheckModelOptions(),
    PrepareGiven(),
    LowerGiven(),
    CompileCandidates(),
    Measure(),
    KeepGiven(),
    Keep(),
    *FINISH,
)
TENSORRT: tuple[Stage, ...] = (
    CheckModelOptions(),
    Prepare(),
    Prune(),
    Mrl(),
    LowerTensorRT(),
    CompileCandidates(),
    Measure(),
    KeepForEngine(),
    Culprits(),
    EngineInputs(),
    Keep(),
    *FINISH,
    BuildEngine(),
)


def stages_for(state: CompileState) -> tuple[Stage, ...]:
    """The stages of this compile: by the target's runtime, then by whether the model is quantized."""
    if state.target.runtime == "tensorrt":
        return TENSORRT
    if is_quantized(state.source.model):
        return PREQUANTIZED
    return CANDIDATES


def run(
    state: CompileState, force: bool = False, inputs: Iterable[str | Path] = (), cache: Cache | None = None
) -> CompileState:
    """Check every stage, then run them all in a staging directory renamed to `state.out` at the end.

    `inputs` are the files the compile reads: `--force` refuses to replace an output holding one.
    `cache`: where the stages find and store their results (docs/cache.md), None for none."""
    stages = stages_for(state)
    check(stages, state)
    try:
        with using_cache(cache), staged_output(state.out, force, inputs) as staging:
            state.staging = staging
            state.work.mkdir()
            return run_stages(stages, state)
    except OutputAppeared as moved:
        state.out = moved.kept  # the run's record names where its files really are
        Record().run(state)
        raise


def check(stages: Sequence[Stage], state: CompileState) -> None:
    """The first refusal of any stage, as one line (InputError: exit 2)."""
    for stage in stages:
        if (why := stage.check(state)) is not None:
            raise InputError(why)


def run_stages(stages: Sequence[Stage], state: CompileState) -> CompileState:
    for stage in stages:
        state = stage.run(state)
    return state
