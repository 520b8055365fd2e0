"""The `edgeq` command: compile, targets, and the report/dashboard views — one code path with the API."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from edgeq.backends.tensorrt import NEEDS_TENSORRT, tensorrt_available
from edgeq.calibdata.command import calib_command
from edgeq.dashboard.commands import MLFLOW_MISSING, dashboard_command, log_to_mlflow
from edgeq.errors import EdgeqError, GateError, InputError, Interrupted, terminal_safe
from edgeq.quant.observers import CALIBRATION_METHODS
from edgeq.recipe import Recipe, load_recipe
from edgeq.report.command import report_command
from edgeq.report.gates import verdict
from edgeq.store.runs import record_or_explain
from edgeq.sweep.command import sweep_command
from edgeq.targets import NATIVE, builtin_targets, load_target, native_target_name, with_every_runtime


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs, values read as YAML scalars/lists (dims=[8,16] → a list of ints)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--task-option takes KEY=VALUE, got {pair!r}")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"--task-option {key}: cannot read value {value!r}") from None
    return options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeq")
def cli() -> None:
    """edgeq — prune, quantize, compile and measure models for edge targets.

    \b
    A first session:
      edgeq examples ./ex                         copy the shipped recipes, models, data
      edgeq inspect ./ex/examples/mrl_encoder/model.onnx
      edgeq compile --recipe ./ex/examples/mrl_encoder/recipe.yaml -o out/mrl
      edgeq report out/mrl/report.json --min-cosine 0.99          exit 3 if a gate fails
      edgeq dashboard --open                      every recorded compile, in a browser
    \b
    Your own model:
      edgeq inspect model.onnx                    input names, dtypes, shapes
      edgeq calib images/ --model model.onnx -o calib.npz
      edgeq compile model.onnx --target native --calib calib.npz -o out/model
      edgeq targets                               the shipped targets
      edgeq build-engine out/trt/                 finish a TensorRT compile on a GPU machine
      edgeq sweep sweep.yaml -o out/sweep --jobs 2   models x targets x recipes, resumable

    Add --debug to any command for tracebacks and the library warnings a compile captured.
    Exit codes: 0 ok, 2 bad input (one line), 3 a gate failed.
    """


@cli.command("compile")
@click.argument("model", required=False, type=click.Path())
@click.option("-o", "--out", type=click.Path(file_okay=True), help="Output directory (must not exist).")
@click.option(
    "--recipe", "recipe_path", type=click.Path(dir_okay=False), help="Recipe YAML; flags override it."
)
@click.option(
    "--target", help="Target name (see `edgeq targets`; `native` = this machine's CPU) or a target YAML path."
)
@click.option(
    "--runtime",
    type=click.Choice(["auto"]),
    help="auto: also build and measure OpenVINO candidates; keep the fastest within budget.",
)
@click.option("--calib", type=click.Path(dir_okay=False), help="Calibration .npz: one array per model input.")
@click.option(
    "--eval", "eval_path", type=click.Path(dir_okay=False), help="Held-out .npz (default: split --calib)."
)
@click.option(
    "--reference",
    type=click.Path(dir_okay=False),
    help="fp32 ONNX to measure an already-quantized MODEL against (e.g. before QAT).",
)
@click.option("--calib-method", type=click.Choice(CALIBRATION_METHODS))
@click.option("--calib-samples", type=click.IntRange(min=1), help="Calibration samples to use.")
@click.option(
    "--bits",
    type=click.Choice(["8", "4"]),
    help="8: INT8. 4: 4-bit weights where the budget allows (per-layer precision plan).",
)
@click.option("--block-size", type=int, help="4-bit block size along K (power of two >= 16).")
@click.option("--analyze", is_flag=True, help="Measure each layer's sensitivity and print the ranking.")
@click.option(
    "--mode",
    type=click.Choice(["auto", "static", "dynamic"]),
    help="INT8 lowering: static QDQ, dynamic, or auto (measure both, keep the best).",
)
@click.option(
    "--pooling",
    type=click.Choice(["cls", "mean", "none"]),
    help="Hugging Face folder: sentence embedding from the CLS token or the masked mean (default: none, "
    "per-token states).",
)
@click.option("--prune", type=click.Choice(["ifm"]), help="Prune by iterative feature merging first.")
@click.option(
    "--prune-threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="IFM β (default: 0.1 and 0.25 both measured).",
)
@click.option(
    "--prune-max-ratio",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="IFM: most of a layer merged by similarity (default: measured up to 0.5).",
)
@click.option("--task", "task_name", help="Task evaluator: built-in name or module:function.")
@click.option("--task-option", multiple=True, metavar="KEY=VALUE", help="Evaluator option (repeatable).")
@click.option("--exclude", multiple=True, help="Node name or op type to keep fp32 (repeatable).")
@click.option("--max-drop", type=float, help="Gate: worst drop of the task's primary metrics.")
@click.option("--min-speedup", type=float, help="Gate: slowest speedup over the batch sizes.")
@click.option("--min-cosine", type=float, help="Gate: worst output cosine vs fp32.")
@click.option("--no-fallback", is_flag=True, help="Keep INT8 even when it measures slower than fp32.")
@click.option(
    "--allow-unmeasured",
    is_flag=True,
    help="Compile for a target whose runtime is not on this machine: fidelity is measured in "
    "ONNX Runtime CPU, latency is not measured.",
)
@click.option("--force", is_flag=True, help="Replace an existing edgeq output directory.")
@click.option(
    "--mlflow", "to_mlflow", is_flag=True, help="Also log the report to the active MLflow run store."
)
@click.option("--no-cache", is_flag=True, help="Compute every stage afresh and store nothing ($EDGEQ_CACHE).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary (report files only).")
def compile_command(
    model,
    out,
    recipe_path,
    target,
    runtime,
    calib,
    eval_path,
    reference,
    calib_method,
    calib_samples,
    bits,
    block_size,
    analyze,
    mode,
    pooling,
    prune,
    prune_threshold,
    prune_max_ratio,
    task_name,
    task_option,
    exclude,
    max_drop,
    min_speedup,
    min_cosine,
    no_fallback,
    allow_unmeasured,
    force,
    to_mlflow,
    no_cache,
    quiet,
) -> None:
    """Compile MODEL (an .onnx file, or a local Hugging Face encoder folder) for a target and
    measure it against fp32.

    Writes OUT/model.onnx (+ model.ort), OUT/report.json, OUT/report.html and OUT/recipe.yaml. Exit
    codes: 0 ok, 2 bad input or an option the target cannot honour (refused before any work), 3 a
    gate failed (the report is still written). Paths in a recipe are read from the recipe's
    folder; flags override the recipe. `edgeq --debug compile ...` shows tracebacks.

    \b
    Examples:
      edgeq compile model.onnx --target cpu-x86-avx2 --calib calib.npz -o out/model
      edgeq compile --recipe examples/mrl_encoder/recipe.yaml -o out/mrl --bits 4 --force
      edgeq compile ./my-minilm/ --pooling mean --calib tokens.npz -o out/minilm
      edgeq compile model.onnx --calib calib.npz --task mrl-retrieval --task-option 'dims=[8,16]' \\
          --max-drop 1.0 -o out/gated
    """
    from edgeq.api import compile as compile_model
    from edgeq.report.summary import print_summary

    if to_mlflow and importlib.util.find_spec("mlflow") is None:
        raise InputError(MLFLOW_MISSING)  # refused before any work
    base, recipe_model = load_recipe(recipe_path) if recipe_path else (Recipe(), None)
    model = model or recipe_model
    if model is None:
        raise InputError("no model given: pass MODEL.onnx or a recipe with a `model:` key")
    if out is None:
        raise InputError("no output directory: pass -o OUT")
    calibration = {k: v for k, v in {"method": calib_method, "samples": calib_samples}.items() if v}
    prune_settings = {
        k: v for k, v in {"threshold": prune_threshold, "max_ratio": prune_max_ratio}.items() if v
    }
    if prune or prune_settings:
        prune_settings = {"method": "ifm", **(vars(base.prune) if base.prune else {}), **prune_settings}
    task = {"name": task_name, "options": _parse_options(task_option)} if task_name else None
    if task_option and not task_name:
        if base.task is None:
            raise InputError("--task-option needs --task (or a recipe with a task)")
        task = {"name": base.task.name, "options": {**base.task.options, **_parse_options(task_option)}}
    gates = {
        k: v
        for k, v in {"max_drop": max_drop, "min_speedup": min_speedup, "min_cosine": min_cosine}.items()
        if v is not None
    }
    if runtime == "auto":
        target = with_every_runtime(target or base.target)
    result = compile_model(
        model,
        out=out,
        recipe=base,
        force=force,
        progress=not quiet,
        cache=not no_cache,
        target=target,
        calib=calib,
        eval=eval_path,
        reference=reference,
        bits=int(bits) if bits else None,
        mode=mode,
        pooling=pooling,
        block_size=block_size,
        analyze=True if analyze else None,
        calibration=calibration or None,
        prune=prune_settings or None,
        task=task,
        exclude=list(exclude) or None,
        gates=gates or None,
        fallback_fp32=False if no_fallback else None,
        allow_unmeasured=True if allow_unmeasured else None,
    )
    try:
        if not quiet:
            print_summary(result.report)
            click.echo(terminal_safe(f"wrote {result.out_dir}/"), err=True)
        if to_mlflow:
            click.echo(f"mlflow run {log_to_mlflow(result.report)}", err=True)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after the compile finished; {result.out_dir} is complete") from None
    decision = result.report.decision
    if decision.engine_pending:
        click.echo(decision.finish_later, err=True)
        raise InputError(
            f"{NEEDS_TENSORRT}; wrote the TensorRT-ready QDQ model and report to {result.out_dir}"
        )
    failed = [g for g in result.report.gates if not g.passed]
    if failed:
        names = ", ".join(f"{g.name} ({g.detail or f'{_measured(g.value)} vs {g.limit}'})" for g in failed)
        raise GateError(f"gate failed: {names}; report written to {result.out_dir}")


def _measured(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4g}"


@cli.command("targets")
def targets_command() -> None:
    """List the shipped targets (a YAML file path works wherever a target name does; `native`
    picks the CPU target for this machine).

    \b
    Example:
      edgeq targets
      edgeq compile model.onnx --target native --calib calib.npz -o out/model
    """
    table = Table(title="targets")
    for column in ("name", "runtime", "int8 activations / weights", "description"):
        table.add_column(column)
    for name in builtin_targets():
        spec = load_target(name)
        scheme = spec.quantization.int8
        acts = ("s8" if scheme.activations.signed else "u8") + (
            " sym" if scheme.activations.symmetric else " asym"
        )
        weights = "s8 per-channel" + (" 7-bit" if scheme.weights.reduce_range else "")
        table.add_row(spec.name, spec.runtime, f"{acts} / {weights}", spec.description)
    Console().print(table)
    try:
        Console().print(f"{NATIVE}: {native_target_name()} (this machine's CPU)")
    except InputError as exc:
        Console().print(f"{NATIVE}: {exc}")


@cli.command("build-engine")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(dir_okay=False),
    help="Held-out .npz (default: the compile's evaluation data).",
)
def build_engine_command(out_dir: Path, eval_path: str | None) -> None:
    """Build OUT/model.plan with TensorRT, measure it on this GPU and update OUT/report.json.

    \b
    Example (after `edgeq compile model.onnx --target gpu-tensorrt ... -o out/trt` elsewhere):
      edgeq build-engine out/trt/
    """
    from edgeq.stages.engine_finish import finish_engine  # TensorRT, torch: loaded when asked for

    ready, why = tensorrt_available()
    if not ready:
        raise InputError(f"{NEEDS_TENSORRT}: {why}")
    report = finish_engine(out_dir, eval_path)
    click.echo(f"wrote {out_dir / 'model.plan'} and updated {out_dir / 'report.json'}", err=True)
    if (why := record_or_explain(report, out_dir)) is not None:  # the row shows the engine's numbers
        click.echo(terminal_safe(why), err=True)
    if not report.passed:
        raise GateError(f"gates on the engine: {verdict(report.gates)}; report updated in {out_dir}")


@cli.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def inspect_command(model: str, as_json: bool) -> None:
    """Describe MODEL (an .onnx file): inputs and outputs (names, dtypes, shapes with symbolic dims),
    opset, op histogram, parameters and bytes, and what its calibration file must hold.

    \b
    Example:
      edgeq inspect examples/mrl_encoder/model.onnx
      edgeq inspect model.onnx --json | jq '.inputs'
    """
    from edgeq.frontend.inspect import describe, inspect_model

    info = inspect_model(model)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
        return
    defaults = Recipe()
    for line in describe(info, defaults.calibration.samples, defaults.eval_fraction):
        click.echo(line)


@cli.command("examples")
@click.argument("dest", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite example files already in DEST.")
def examples_command(dest: Path | None, force: bool) -> None:
    """List the shipped example recipes, or copy them with their models and calibration files to DEST.

    \b
    Example:
      edgeq examples ./edgeq-examples
      edgeq compile --recipe ./edgeq-examples/examples/mrl_encoder/recipe.yaml -o out/mrl
    """
    from edgeq.examples import copy_examples, recipes

    if dest is None:
        for name in recipes():
            click.echo(name)
        click.echo("copy them with: edgeq examples DEST", err=True)
        return
    copied = copy_examples(dest, force)
    click.echo(f"copied {len(copied)} files to {dest}/; try:", err=True)
    click.echo(f"edgeq compile --recipe {dest / recipes()[0]} -o out/mrl")


cli.add_command(report_command)
cli.add_command(calib_command)
cli.add_command(dashboard_command)
cli.add_command(sweep_command)


INTERRUPTED = (
    "interrupted before the output was put in place; no new output and no staging files were left "
    "(an existing output directory is unchanged)"
)


class _SafeStdout:
    """Standard output with control characters escaped (colour codes kept): a model or layer name in
    a table cannot retitle, move or clear the user's terminal. Everything else is the real stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(terminal_safe(text, keep_style=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line (exit 2/3); --debug shows tracebacks."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
        os.environ["EDGEQ_DEBUG"] = "1"  # compile replays the library warnings it captured
    signal.signal(signal.SIGTERM, _terminate)
    stdout, sys.stdout = sys.stdout, _SafeStdout(sys.stdout)
    try:
        code = cli.main(args=args, prog_name="edgeq", standalone_mode=False)
        if isinstance(code, int) and code:  # ctx.exit(n) returns n when click is not standalone
            sys.exit(code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"edgeq: {INTERRUPTED if args[:1] == ['compile'] else 'interrupted'}", err=True)
        sys.exit(130)
    except Interrupted as exc:
        click.echo(f"edgeq: {terminal_safe(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "edgeq"
        click.echo(f"edgeq: error: {terminal_safe(exc.format_message())} (see '{command} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EdgeqError as exc:
        if debug:
            raise
        click.echo(f"edgeq: error: {terminal_safe(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if debug:
            raise
        first = terminal_safe(str(exc).splitlines()[0] if str(exc) else "")
        click.echo(f"edgeq: internal error: {type(exc).__name__}: {first} (rerun with --debug)", err=True)
        sys.exit(1)
    finally:
        sys.stdout = stdout
