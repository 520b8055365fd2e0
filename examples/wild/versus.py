"""edgeq's kept artifact against stock ONNX Runtime quantization, timed in one process, judged alike.

    python examples/wild/versus.py --run OUTDIR [--dir DIR] [--only NAME] [--rounds 9] [--out FILE]

For each model that `run.py` compiled into OUTDIR/<name>/ (exit 0), loads the artifact edgeq kept
(report.json's `artifact`), makes stock.py's `quantize_dynamic`, `quantize_static` (QDQ) and
`MatMulNBits` models from the first half of the calibration set, and judges them all the same way on
the second half against the fp32 input: the model's own metric (recall@10 for an embedding, top-1
agreement for a classifier, else the worst output cosine) against the budget edgeq's run used
(report.json's recipe). Then every model, a second session of the fp32 input (A/A: how far an
identical model strays, the noise), a second session of edgeq's artifact (the same at the fast
model's call size: a sub-millisecond call strays more) and fp32 itself are timed at batch 1
interleaved, in rotating order, with the threads the target timed with; edgeq is compared with a
stock mode by the median of their per-round ratios, a tie within the wider of the two A/A strays.
A model edgeq loses to stock or fp32 by more than that is timed again with three times the rounds,
and judged on the rounds of both timings together: one bad timing does not make a verdict, and its
rounds still count.
Prints a markdown table (also FILE, default OUTDIR/versus.md, and versus.json beside it): per model
the fastest stock mode within the budget, edgeq's artifact, and whether edgeq is at least as fast as
that stock mode and as fp32.
Like stock.py it does not import edgeq: it reads edgeq's files as a user would.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from run import DEFAULT_DIR, corpus, machine
from stock import judged, metric_of, quantize_stock, round_ratios, split_feeds

AGAIN = "fp32 again"  # the A/A twin: a second session of the fp32 input
EDGEQ_AGAIN = "edgeq again"  # edgeq's A/A twin: a second session of its artifact
TWINS = (AGAIN, EDGEQ_AGAIN)
FLOORS = {"recall10": "min_recall", "top1": "min_top1", "cosine": "min_cosine"}


def judge(entry: dict, metric: str | None, budget: dict) -> tuple[float | None, str, bool]:
    """The value edgeq's budget reads for this model (its metric, else the worst cosine), that
    metric's name, and whether it meets the budget's floor."""
    key = {"recall@10": "recall10", "top-1": "top1"}.get(metric or "", "cosine")
    if entry.get(key) is None:
        key = "cosine"
    value = entry.get(key)
    floor = budget.get(FLOORS[key])
    return value, key, value is not None and (floor is None or value >= floor)


def versus_one(meta: dict, run_dir: Path, rounds: int) -> dict:
    """One model: edgeq's artifact and the stock modes, fidelity and interleaved batch-1 speed."""
    report_path = run_dir / meta["name"] / "report.json"
    report = json.loads(report_path.read_text())
    artifact = report_path.parent / report["artifact"]["path"]
    threads = next((e["threads"] for e in report.get("latency", []) if e.get("threads")), 2)
    budget = report["recipe"]["budget"]
    metric = metric_of(meta.get("purpose", ""))
    result: dict = {"name": meta["name"], "chosen": report["decision"]["chosen"], "threads": threads}
    fp32 = Path(meta["dir"]) / "model.onnx"
    calib_feeds, eval_feeds = split_feeds(meta)
    with tempfile.TemporaryDirectory() as work:
        twin = Path(work) / "fp32-again.onnx"
        shutil.copyfile(fp32, twin)
        if (data := fp32.with_name(fp32.name + ".data")).is_file():
            shutil.copyfile(data, twin.with_name(data.name))  # the copy's external data, by its name
        paths, modes = quantize_stock(fp32, calib_feeds, Path(work))
        candidates = {"fp32": fp32, AGAIN: twin, "edgeq": artifact, EDGEQ_AGAIN: artifact} | paths
        sessions, judgements = judged(candidates, eval_feeds, metric, threads)
        modes |= judgements
        if sessions:
            for name, ratios in round_ratios(sessions, eval_feeds[0], rounds).items():
                modes[name] |= {"b1": statistics.median(ratios), "b1_rounds": ratios}
    for entry in modes.values():
        if "error" not in entry:
            entry["value"], entry["metric"], entry["in_budget"] = judge(entry, metric, budget)
    return result | {"modes": modes}


def pooled(first: dict, second: dict) -> dict:
    """`first` with the timing rounds of `second` (the same model timed again) added to each mode's
    own, its speed the median of them all."""
    modes = first["modes"]
    for name, entry in second["modes"].items():
        if "b1_rounds" in entry and "b1_rounds" in modes.get(name, {}):
            rounds = modes[name]["b1_rounds"] + entry["b1_rounds"]
            modes[name] |= {"b1": statistics.median(rounds), "b1_rounds": rounds}
    return first | {"timed_again": True}


def lost(result: dict) -> bool:
    """edgeq slower than the fastest in-budget stock mode or than fp32, beyond the noise."""
    judged = verdict(result)
    return any(judged[against].startswith("no") for against in ("vs_stock", "vs_fp32"))


def paired(modes: dict, name: str, other: str) -> float:
    """How much faster `name` ran than `other`: the median over rounds of their ratio in the same
    round (fp32's own stray in a round cancels), or of their medians where rounds were not kept."""
    mine, theirs = modes[name], modes[other]
    if "b1_rounds" in mine and "b1_rounds" in theirs:
        return statistics.median(a / b for a, b in zip(mine["b1_rounds"], theirs["b1_rounds"], strict=True))
    return mine["b1"] / theirs["b1"]


def edgeq_stray(modes: dict) -> float | None:
    """edgeq's second session against its first (paired), or None where either was not timed."""
    timed = all(modes.get(name, {}).get("b1") is not None for name in ("edgeq", EDGEQ_AGAIN))
    return paired(modes, EDGEQ_AGAIN, "edgeq") if timed else None


def verdict(result: dict) -> dict:
    """Fastest in-budget stock mode, and edgeq against it and fp32: ties within the A/A noise, the
    wider of fp32's and edgeq's own (at least 5%)."""
    modes = result["modes"]
    noise = max(0.05, abs(1.0 - modes.get(AGAIN, {}).get("b1", 1.0)))
    if (itself := edgeq_stray(modes)) is not None:
        noise = max(noise, abs(1.0 - itself))
    stock = [
        (entry["b1"], name)
        for name, entry in modes.items()
        if name not in ("edgeq", *TWINS) and entry.get("in_budget") and entry.get("b1") is not None
    ]
    best = max(stock, default=None)
    edgeq = modes.get("edgeq", {})

    def at_least(other: str | None) -> str:
        ratio = paired(modes, "edgeq", other) if other else edgeq["b1"]
        if ratio >= 1.0:
            return "yes"
        return f"tie ({ratio:.2f})" if ratio >= 1.0 - noise else f"no ({ratio:.2f})"

    fast = "b1" in edgeq
    return {
        "noise": noise,
        "best": best,
        "vs_stock": (at_least(best[1]) if best else "yes (no stock mode in budget)") if fast else "",
        "vs_fp32": at_least(None) if fast else "",
    }


def table(results: list[dict]) -> str:
    """One row per model: edgeq's artifact, the fastest in-budget stock mode, and the two verdicts."""
    head = ["model", "edgeq kept", "edgeq b1", "edgeq metric", "in budget", "fastest stock in budget"]
    head += ["stock b1", "stock metric", "edgeq >= stock", "edgeq >= fp32", "A/A fp32 / edgeq", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        modes, v = r["modes"], verdict(r)
        edgeq = modes.get("edgeq", {})
        best = modes[v["best"][1]] if v["best"] else {}
        errors = [f"{m}: {e['error']}" for m, e in modes.items() if "error" in e]
        if r.get("timed_again"):
            errors.insert(0, f"timed again: {len(edgeq['b1_rounds'])} rounds in all")
        lines.append(
            "| "
            + " | ".join(
                [
                    r["name"],
                    r["chosen"],
                    _fmt(edgeq.get("b1"), ".2f", "x"),
                    _metric(edgeq),
                    "yes" if edgeq.get("in_budget") else "no" if edgeq else "",
                    v["best"][1] if v["best"] else "none",
                    _fmt(best.get("b1"), ".2f", "x"),
                    _metric(best),
                    v["vs_stock"],
                    v["vs_fp32"],
                    _twins(modes),
                    "; ".join(errors).replace("|", "\\|")[:240],
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _twins(modes: dict) -> str:
    """The A/A strays: fp32's second session vs fp32, edgeq's second session vs edgeq's."""
    fp32 = _fmt(modes.get(AGAIN, {}).get("b1"), ".2f", "x")
    itself = edgeq_stray(modes)
    return fp32 if itself is None else f"{fp32} / {_fmt(itself, '.2f', 'x')}"


def _metric(entry: dict) -> str:
    """The judged value, and the worst cosine beside a kind metric (a classifier whose top-1 holds
    while its cosine is 0 outputs near-constant scores: the metric alone would hide that)."""
    if entry.get("value") is None:
        return ""
    text = f"{entry['metric']} {entry['value']:.4f}"
    if entry["metric"] != "cosine" and entry.get("cosine") is not None:
        text += f" (cos {entry['cosine']:.4f})"
    return text


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "" if value is None else f"{format(value, spec)}{unit}"


def summary(results: list[dict]) -> str:
    """How many models edgeq matched the fastest in-budget stock mode and fp32 on (ties counted)."""
    verdicts = [verdict(r) for r in results]
    stock = sum(v["vs_stock"].startswith(("yes", "tie")) for v in verdicts)
    fp32 = sum(v["vs_fp32"].startswith(("yes", "tie")) for v in verdicts)
    return (
        f"{len(results)} models: edgeq at least as fast as the fastest in-budget stock mode on {stock}, "
        f"at least as fast as fp32 on {fp32} (a tie: within the wider A/A stray, at least 5%)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="run.py's output dir (OUTDIR/<name>/)")
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"corpus built by build.py ({DEFAULT_DIR})"
    )
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only NAME")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds (default 9)")
    parser.add_argument("--out", type=Path, help="markdown table (default: RUN/versus.md)")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # the quantizers log every tensor they skip
    metas = [m for m in corpus(args.dir, args.only) if (args.run / m["name"] / "report.json").is_file()]
    if not metas:
        parser.error(f"no compiled models (OUTDIR/<name>/report.json) under {args.run}")
    out = args.out or args.run / "versus.md"
    saved = out.with_suffix(".json")
    previous = {r["name"]: r for r in json.loads(saved.read_text())["results"]} if saved.is_file() else {}
    order = [m["name"] for m in corpus(args.dir, [])]
    header = f"edgeq's kept artifact ({args.run}) vs stock ONNX Runtime, batch 1, CPU: {machine()}"
    for meta in metas:
        try:
            result = versus_one(meta, args.run, args.rounds)
            if lost(result):
                result = pooled(result, versus_one(meta, args.run, 3 * args.rounds))
            previous[meta["name"]] = result
        except Exception as exc:  # noqa: BLE001 - one model's failure is its row, the rest go on
            print(f"{meta['name']}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            continue
        rank = {name: index for index, name in enumerate(order)}
        results = sorted(previous.values(), key=lambda r: rank.get(r["name"], len(rank)))
        print(table([previous[meta["name"]]]).splitlines()[-1], file=sys.stderr, flush=True)
        saved.write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
        out.write_text(f"{header}\n\n{table(results)}\n\n{summary(results)}\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
