"""What stock ONNX Runtime quantization gives on each corpus model: the column edgeq is judged against.

    python examples/wild/stock.py [--dir DIR] [--out OUTDIR] [--only NAME] [--rounds 7]

For each built model, `onnxruntime.quantization.quantize_dynamic` and `quantize_static` (QDQ, MinMax, the
library's defaults otherwise) are run on the first half of its calibration set, as a user following
ONNX Runtime's documentation would, and `MatMulNBitsQuantizer` (4-bit weights, block 128: the stock
4-bit path, for models with MatMuls). Each result is judged on the second half against fp32 by the
metric of what the model is for (meta.json's `purpose`): neighbour recall@10 for an embedding, top-1
agreement for a classifier, and the worst output cosine for every model; then timed at batch 1 against
fp32, interleaved (every session in turn, every round; medians of per-round ratios). Results go to
OUTDIR/stock.json and stock.md (default `~/.cache/edgeq-wild-out/stock/`); run.py's table is edgeq's.
Like the other corpus scripts it does not import edgeq: it is the stock baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_dynamic, quantize_static
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from run import DEFAULT_DIR, corpus, machine

METHODS = ("dynamic", "static", "nbits")


class _Reader(CalibrationDataReader):
    """Calibration feeds one sample at a time (the whole set at once for models without a batch axis)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def feeds_of(arrays: dict[str, np.ndarray], per_sample: bool) -> list[dict[str, np.ndarray]]:
    """Batch-1 feeds (axis 0 = samples), or the arrays as one feed when the model has no batch axis."""
    if not per_sample:
        return [arrays]
    count = min(len(a) for a in arrays.values())
    return [{name: a[i : i + 1] for name, a in arrays.items()} for i in range(count)]


def halves(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    count = min(len(a) for a in arrays.values())
    if count < 2:
        return arrays, arrays
    cut = count // 2
    return {k: v[:cut] for k, v in arrays.items()}, {k: v[cut:] for k, v in arrays.items()}


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def outputs(sess: ort.InferenceSession, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    return [sess.run(None, feed_for(sess, feed)) for feed in feeds]


def metric_of(purpose: str) -> str | None:
    """The model's own metric, from what meta.json says it is for."""
    if any(word in purpose for word in ("embedding", "encoder", "tower")):
        return "recall@10"
    if "classifier" in purpose or "-bin" in purpose:
        return "top-1"
    return None


def recall_at_10(want: np.ndarray, have: np.ndarray) -> float:
    """Share of each row's 10 nearest fp32 neighbours (cosine) that stay in its 10 nearest after."""

    def neighbours(x: np.ndarray, k: int) -> np.ndarray:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        similarity = x @ x.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1)[:, :k]

    k = min(10, len(want) - 1)
    a, b = neighbours(want.astype(np.float64), k), neighbours(have.astype(np.float64), k)
    return float(np.mean([len(set(p) & set(q)) / k for p, q in zip(a, b, strict=True)]))


def fidelity(
    want: list[list[np.ndarray]], have: list[list[np.ndarray]], metric: str | None
) -> dict[str, float | None]:
    """Worst cosine over float outputs (all samples flattened) and the worst of the model's metric:
    top-1 agreement of the last axis, or recall@10 over the rows of 2-D outputs."""
    cosines, agreements, recalls = [], [], []
    for index in range(len(want[0])):
        a = [np.asarray(w[index]) for w in want]
        b = [np.asarray(h[index]) for h in have]
        if a[0].dtype.kind != "f":
            continue
        x = np.concatenate([v.astype(np.float64).ravel() for v in a])
        y = np.concatenate([v.astype(np.float64).ravel() for v in b])
        norms = np.linalg.norm(x) * np.linalg.norm(y)
        cosines.append(float(x @ y / norms) if norms else float(not x.any() and not y.any()))
        if metric == "top-1" and a[0].ndim >= 2 and a[0].shape[-1] >= 2:
            same = [np.mean(np.argmax(p, -1) == np.argmax(q, -1)) for p, q in zip(a, b, strict=True)]
            agreements.append(float(np.mean(same)))
        if metric == "recall@10" and a[0].ndim == 2 and len(a) * len(a[0]) > 2:
            recalls.append(recall_at_10(np.concatenate(a), np.concatenate(b)))
    return {
        "cosine": min(cosines, default=None),
        "top1": min(agreements, default=None),
        "recall10": min(recalls, default=None),
    }


def speedups(sessions: dict[str, ort.InferenceSession], feed: dict[str, np.ndarray], rounds: int) -> dict:
    """Batch-1 speed of each session vs fp32: the median of its per-round ratios (`round_ratios`)."""
    return {name: statistics.median(values) for name, values in round_ratios(sessions, feed, rounds).items()}


def round_ratios(
    sessions: dict[str, ort.InferenceSession], feed: dict[str, np.ndarray], rounds: int
) -> dict[str, list[float]]:
    """Each session's batch-1 speed vs fp32 in every round, the sessions interleaved in an order
    rotated every round (so a model is not always timed right after the same other one)."""
    feeds = {name: feed_for(sess, feed) for name, sess in sessions.items()}
    for name, sess in sessions.items():
        for _ in range(3):
            sess.run(None, feeds[name])
    ratios: dict[str, list[float]] = {name: [] for name in sessions if name != "fp32"}
    names = list(sessions)
    for index in range(rounds):
        turn = names[index % len(names) :] + names[: index % len(names)]
        seconds = {name: _per_call(sessions[name], feeds[name]) for name in turn}
        for name in ratios:
            ratios[name].append(seconds["fp32"] / seconds[name])
    return ratios


def feed_for(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a session declares inputs for, in its dtypes (an artifact may have fewer inputs:
    edgeq bakes a constant input such as silero-vad's `sr` into the graph)."""
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
    types |= {"tensor(bool)": np.bool_, "tensor(float16)": np.float16}
    wanted = {i.name: types.get(i.type) for i in sess.get_inputs()}
    return {k: v if wanted[k] is None else v.astype(wanted[k]) for k, v in feed.items() if k in wanted}


def _per_call(sess: ort.InferenceSession, feed: dict[str, np.ndarray], budget: float = 0.2) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget or calls < 3:
        sess.run(None, feed)
        calls += 1
    return elapsed / calls


def split_feeds(meta: dict) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Calibration feeds (first half of calib.npz) and evaluation feeds (second half), batch 1 per
    feed, or the whole set as one feed for models without a batch axis (both halves then the same)."""
    with np.load(Path(meta["dir"]) / "calib.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    per_sample = meta.get("ort_check") == "ok"
    calib, evaluation = halves(arrays) if per_sample else (arrays, arrays)
    return feeds_of(calib, per_sample), feeds_of(evaluation, per_sample)


def quantize_stock(fp32: Path, calib_feeds: list[dict[str, np.ndarray]], work: Path) -> tuple[dict, dict]:
    """Each stock method's model written into `work` ({method: path}) and the ones that failed
    ({method: {"error": line}}); nbits only for models with MatMuls."""
    paths, failed = {}, {}
    for method in METHODS:
        target = work / f"{method}.onnx"
        try:
            if method == "dynamic":
                quantize_dynamic(fp32, target)
            elif method == "static":
                quantize_static(fp32, target, _Reader(calib_feeds), quant_format=QuantFormat.QDQ)
            elif not _has_matmul(fp32):
                continue
            else:
                quantizer = MatMulNBitsQuantizer(onnx.load(fp32), bits=4, block_size=128)
                quantizer.process()
                quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
            paths[method] = target
        except Exception as exc:  # noqa: BLE001 - the stock tool's failure is the result
            failed[method] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return paths, failed


def judged(
    paths: dict[str, Path], eval_feeds: list[dict[str, np.ndarray]], metric: str | None, threads: int = 2
) -> tuple[dict[str, ort.InferenceSession], dict[str, dict]]:
    """Sessions of every model that loads and runs, and each one's fidelity against `paths["fp32"]`
    on the evaluation feeds (with its bytes over fp32's), or the line saying why it did not."""
    sessions, result = {}, {}
    for name, path in paths.items():
        try:
            sessions[name] = session(path, threads)
        except Exception as exc:  # noqa: BLE001
            result[name] = {"error": f"does not load: {str(exc).splitlines()[0][:200]}"}
    if "fp32" not in sessions:
        return {}, result
    reference = outputs(sessions["fp32"], eval_feeds)
    for name in [n for n in sessions if n != "fp32"]:
        try:
            result[name] = fidelity(reference, outputs(sessions[name], eval_feeds), metric)
            result[name]["bytes_ratio"] = _bytes(paths[name]) / _bytes(paths["fp32"])
        except Exception as exc:  # noqa: BLE001
            result[name] = {"error": f"does not run: {str(exc).splitlines()[0][:200]}"}
            del sessions[name]
    return sessions, result


def _bytes(path: Path) -> int:
    """A model file's bytes plus its external-data file's, if it has one."""
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def stock_one(meta: dict, rounds: int) -> dict:
    """Quantize one model the stock ways; fidelity and batch-1 speed of each against fp32."""
    calib_feeds, eval_feeds = split_feeds(meta)
    fp32 = Path(meta["dir"]) / "model.onnx"
    with tempfile.TemporaryDirectory() as work:
        paths, result = quantize_stock(fp32, calib_feeds, Path(work))
        sessions, judgements = judged({"fp32": fp32} | paths, eval_feeds, metric_of(meta.get("purpose", "")))
        result |= judgements
        if sessions:
            for name, ratio in speedups(sessions, eval_feeds[0], rounds).items():
                result[name]["b1"] = ratio
    return {"name": meta["name"]} | result


def _has_matmul(path: Path) -> bool:
    return any(node.op_type == "MatMul" for node in onnx.load(path, load_external_data=False).graph.node)


def _cell(entry: dict | None, key: str, fmt: str) -> str:
    if not entry or entry.get(key) is None:
        return ""
    return format(entry[key], fmt)


def table(results: list[dict]) -> str:
    """Per model and method: batch-1 speedup, worst cosine, and the model's metric (top-1 or recall@10)."""
    head = ["model"] + [f"{m} {col}" for m in METHODS for col in ("b1", "cos", "metric", "bytes")]
    lines = ["| " + " | ".join([*head, "error"]) + " |", "|" + "---|" * (len(head) + 1)]
    for r in results:
        cells = [r["name"]]
        for method in METHODS:
            entry = r.get(method) or {}
            own = next((f"{k} {entry[k]:.3f}" for k in ("recall10", "top1") if entry.get(k) is not None), "")
            cells += [_cell(entry, "b1", ".2f"), _cell(entry, "cosine", ".4f"), own]
            cells.append(_cell(entry, "bytes_ratio", ".2f"))
        errors = [f"{m}: {r[m]['error']}" for m in (*METHODS, "fp32") if "error" in r.get(m, {})]
        cells.append("; ".join(errors).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"corpus built by build.py ({DEFAULT_DIR})"
    )
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "edgeq-wild-out" / "stock")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only NAME")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # the quantizers log every tensor they skip
    metas = [m for m in corpus(args.dir, args.only) if str(m.get("ort_check", "")).startswith("ok")]
    if not metas:
        parser.error(f"no built models stock ONNX Runtime runs under {args.dir}: run build.py first")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "stock.json"
    previous = {r["name"]: r for r in json.loads(path.read_text())["results"]} if path.is_file() else {}
    for meta in metas:
        result = stock_one(meta, args.rounds)
        previous[meta["name"]] = result
        print(table([result]).splitlines()[-1], file=sys.stderr, flush=True)
        order = [m["name"] for m in corpus(args.dir, [])]
        results = sorted(
            previous.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else 1e9
        )
        header = (
            f"stock onnxruntime {ort.__version__} quantize_dynamic / quantize_static (QDQ), CPU: {machine()}"
        )
        path.write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
        (args.out / "stock.md").write_text(f"{header}\n\n{table(results)}\n")
    print((args.out / "stock.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
