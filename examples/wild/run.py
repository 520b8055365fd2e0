"""Compile every built corpus model with edgeq's default recipe and tabulate what happened.

    python examples/wild/run.py [--target cpu-x86-avx2] [--runtime auto] [--dir DIR] [--out OUTDIR]
                                [--edgeq "edgeq"]

For each DIR/<name>/ (from build.py) runs
    EDGEQ compile DIR/<name>/model.onnx --calib DIR/<name>/calib.npz --target T [--runtime auto]
          -o OUTDIR/<name> --force -q
under a per-model time limit, then prints a markdown table (also OUTDIR/results.md and results.json):
exit code, what edgeq chose, speedups at batch 1 and 32 (vs fp32 on the target's runtime, and on an
OpenVINO target also vs ONNX Runtime fp32), size ratio and worst output cosine from
OUTDIR/<name>/report.json, or the one-line error of a failed compile. With --only, the named models'
rows replace theirs in the table of the last run in OUTDIR; --retable rewrites that table from the
reports in OUTDIR without compiling.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DIR = Path.home() / ".cache" / "edgeq-wild"
COLUMNS = [
    "model",
    "source",
    "exporter",
    "opset",
    "rc",
    "chosen",
    "b1",
    "b32",
    "ORT b1",
    "ORT b32",
    "vs best fp32",
    "size",
    "worst cos",
    "s",
    "error",
]


def corpus(root: Path, only: list[str]) -> list[dict]:
    """meta.json of every built model under root (in the corpus order of index.json), or of the named ones."""
    metas = [json.loads(p.read_text()) | {"dir": str(p.parent)} for p in root.glob("*/meta.json")]
    index = root / "index.json"
    order = json.loads(index.read_text()) if index.is_file() else []
    metas.sort(key=lambda m: (order.index(m["name"]) if m["name"] in order else len(order), m["name"]))
    return [m for m in metas if not only or m["name"] in only]


def compile_one(meta: dict, edgeq: list[str], target: list[str], out: Path, timeout: float) -> dict:
    """Run one edgeq compile; returns the exit code, seconds taken and the last line it printed.

    `target`: the compile's target options (`--target T`, and `--runtime auto` where asked)."""
    folder = Path(meta["dir"])
    command = [*edgeq, "compile", str(folder / "model.onnx"), "--calib", str(folder / "calib.npz")]
    command += [*target, "-o", str(out), "--force", "-q"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        rc, text = done.returncode, done.stderr + done.stdout
    except subprocess.TimeoutExpired as exc:
        rc, text = "timeout", f"no result within {timeout:.0f}s " + _text(exc.stderr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    error = ""
    if rc == 0 and not (out / "report.json").is_file():  # a command that compiled nothing
        rc, error = "no report", "exit 0 but no report.json: is --edgeq an edgeq command?"
    elif rc != 0:
        paths = {str(folder.parent): "DIR", str(out.parent): "OUTDIR"}
        error = compact(_error_line(lines), paths) or f"exit {rc} with no message"
    return {"rc": rc, "seconds": round(time.perf_counter() - start, 1), "error": error, "command": command}


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def _error_line(lines: list[str]) -> str:
    """The line that says what went wrong: the last one naming edgeq or an error, else the last line."""
    for line in reversed(lines):
        if line.startswith("edgeq:") or "Error" in line or "error" in line:
            return line
    return lines[-1] if lines else ""


def compact(line: str, paths: dict[str, str], limit: int = 320) -> str:
    """An error line with long paths shortened (DIR, OUT, edgeq's temp dirs) and its middle cut to fit."""
    for path in sorted(paths, key=len, reverse=True):  # the longer first: one may prefix the other
        line = line.replace(path, paths[path])
    line = re.sub(r"/\.[\w.-]+\.edgeq-\d+-[0-9a-f]+/", "/TMP/", line)
    return line if len(line) <= limit else line[: limit // 2 - 2] + " … " + line[-(limit // 2 - 2) :]


def read_report(out: Path) -> dict:
    """What OUT/report.json says about the chosen candidate (empty when there is no report)."""
    path = out / "report.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text())
    decision = report.get("decision", {})
    chosen = decision.get("chosen")
    candidate = next((c for c in decision.get("candidates", []) if c.get("name") == chosen), {})
    cosines = [
        o["cosine"] for o in report.get("accuracy", {}).get("outputs", []) if o.get("cosine") is not None
    ]
    return {
        "chosen": chosen,
        "vs_best_fp32": vs_best_fp32(candidate, decision.get("candidates", [])),
        "noise": decision.get("timing_noise", {}),
        "speedups": candidate.get("speedups", {}),
        "speedups_vs_ort": candidate.get("speedups_vs_onnxruntime") or {},
        "size_ratio": report.get("size_ratio", candidate.get("size_ratio")),
        "worst_cosine": min(cosines) if cosines else candidate.get("worst_cosine"),
        "reason": decision.get("reason", ""),
        "candidates": {c["name"]: c.get("speedups", {}) for c in decision.get("candidates", [])},
    }


def vs_best_fp32(chosen: dict, candidates: list[dict]) -> dict[str, float]:
    """The chosen candidate's speedup per batch over the faster fp32 of the runtimes measured: its
    own runtime's (`speedups`), ONNX Runtime's (`speedups_vs_onnxruntime`, an OpenVINO target) and,
    where the compile also built OpenVINO candidates (`--runtime auto`), OpenVINO's (`openvino-fp32`,
    timed against the same reference). The fp32 artifact is its own runtime's fp32 (1.0 against it)."""
    openvino = next((c.get("speedups", {}) for c in candidates if c.get("name") == "openvino-fp32"), {})
    vs_ort = chosen.get("speedups_vs_onnxruntime") or {}
    floor = {}
    for batch, speedup in chosen.get("speedups", {}).items():
        own = 1.0 if chosen.get("name") == "fp32" else speedup
        ratios = [own, vs_ort.get(batch), speedup / openvino[batch] if openvino.get(batch) else None]
        floor[batch] = min(r for r in ratios if r is not None)
    return floor


def _previous(path: Path) -> list[dict]:
    """The results of the last run in an output dir (none when it has no results.json)."""
    return json.loads(path.read_text())["results"] if path.is_file() else []


def merged(previous: list[dict], fresh: dict[str, dict], order: list[dict]) -> list[dict]:
    """Fresh results laid over the previous ones (an --only run), in corpus order."""
    by_name = {r["name"]: r for r in previous} | fresh
    return [by_name[m["name"]] for m in order if m["name"] in by_name]


def row(meta: dict, result: dict) -> list[str]:
    """One markdown table row for a model and its compile result."""
    report = result.get("report", {})
    speedups, vs_ort = report.get("speedups", {}), report.get("speedups_vs_ort", {})
    return [
        meta["name"],
        meta.get("source", ""),
        meta.get("exporter", ""),
        str(meta.get("opset", "")),
        str(result["rc"]),
        report.get("chosen") or "",
        _num(speedups.get("1"), "x"),
        _num(speedups.get("32"), "x"),
        _num(vs_ort.get("1"), "x"),
        _num(vs_ort.get("32"), "x"),
        " / ".join(_num(v, "x") for v in report.get("vs_best_fp32", {}).values()),
        _num(report.get("size_ratio"), ""),
        _num(report.get("worst_cosine"), "", 4),
        f"{result['seconds']:.0f}",
        result["error"].replace("|", "\\|") if result["rc"] != 0 else "",
    ]


def _num(value: float | None, unit: str, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}{unit}"


def table(rows: list[list[str]]) -> str:
    """A markdown table of the rows under COLUMNS."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def summary(results: list[dict]) -> str:
    """One line: how many compiled, how many kept an INT8 candidate, how many failed and how."""
    ok = [r for r in results if r["rc"] == 0]
    chosen = [r.get("report", {}).get("chosen") or "fp32" for r in ok]
    int8 = [name for name in chosen if "int8" in name]
    reduced = [name for name in chosen if "int8" not in name and name.removeprefix("openvino-") != "fp32"]
    internal = [r for r in results if "internal error" in r["error"]]
    slower = [r["name"] for r in ok if _slower(r.get("report", {}))]
    return (
        f"{len(ok)}/{len(results)} compiled (exit 0), {len(int8)} kept an INT8 candidate"
        + (f", {len(reduced)} a bf16/f16 one" if reduced else "")
        + f", {len(results) - len(ok)} failed ({len(internal)} with an edgeq internal error)"
        + f"; {len(slower)} slower than the faster fp32 beyond the timing noise"
        + (f" ({', '.join(slower)})" if slower else "")
    )


def _slower(report: dict) -> bool:
    """The chosen artifact is slower than the faster fp32 at some batch, by more than that batch's
    timing noise (the A/A spread of fp32 against itself in the same run)."""
    noise = report.get("noise", {})
    return any(v < 1 - noise.get(b, 0.0) for b, v in report.get("vs_best_fp32", {}).items())


def machine() -> str:
    """The CPU model name from lscpu (or the platform string)."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="cpu-x86-avx2", help="edgeq target name or YAML (also: native)")
    parser.add_argument(
        "--runtime", choices=["auto"], help="auto: each compile also builds OpenVINO candidates"
    )
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"corpus built by build.py ({DEFAULT_DIR})"
    )
    parser.add_argument("--out", type=Path, help="output dir (default: ~/.cache/edgeq-wild-out/TARGET)")
    parser.add_argument("--edgeq", default="edgeq", help="edgeq command line to run (default: edgeq)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per model compile (default 300)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only NAME")
    parser.add_argument("--retable", action="store_true", help="rewrite OUTDIR's table from its reports")
    args = parser.parse_args(argv)
    run_name = Path(args.target).stem + (f"-{args.runtime}" if args.runtime else "")
    out = args.out or Path.home() / ".cache" / "edgeq-wild-out" / run_name
    if args.retable:
        if not (out / "results.json").is_file():
            parser.error(f"{out} has no results.json: run the corpus into it first")
        print(retable(out))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    metas = corpus(args.dir, args.only)
    if not metas:
        parser.error(f"no built models under {args.dir}: run examples/wild/build.py first")
    edgeq = shlex.split(args.edgeq)
    previous = _previous(out / "results.json") if args.only else []
    order = corpus(args.dir, [])
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    target = ["--target", args.target] + (["--runtime", args.runtime] if args.runtime else [])
    header = f"target `{' '.join(target[1:])}`, edgeq `{args.edgeq}`, {stamp}, CPU: {machine()}"
    fresh: dict[str, dict] = {}
    for meta in metas:
        result = compile_one(meta, edgeq, target, out / meta["name"], args.timeout)
        result["report"] = read_report(out / meta["name"]) if result["rc"] in (0, 3) else {}
        fresh[meta["name"]] = {"name": meta["name"], "meta": meta, **result}
        print(" | ".join(row(meta, result)), file=sys.stderr, flush=True)
        text = write(out, header, merged(previous, fresh, order))  # after each model: a kill keeps the table
    print(text)
    return 0


def retable(out: Path) -> str:
    """OUTDIR's last table again, each row's report read afresh from OUTDIR/<name>/report.json."""
    last = json.loads((out / "results.json").read_text())
    for result in last["results"]:
        if result["rc"] in (0, 3):
            result["report"] = read_report(out / result["name"])
    return write(out, last["header"], last["results"])


def write(out: Path, header: str, results: list[dict]) -> str:
    """Write OUTDIR/results.md and results.json; returns the markdown."""
    text = f"{header}\n\n{table([row(r['meta'], r) for r in results])}\n\n{summary(results)}\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
    return text


if __name__ == "__main__":
    sys.exit(main())
