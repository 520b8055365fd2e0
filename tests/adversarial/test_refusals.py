"""Each hostile or unlucky input ends in one `edgeq: error:` line and exit 2, before any work starts.

The command runs in-process through `edgeq.cli.main` (the real entry point: argument parsing, error
lines, exit codes); cases that need a fresh interpreter run it in a subprocess.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

import edgeq
from edgeq.errors import InputError
from tests.adversarial.helpers import assert_one_line, compile_api, evaluator_module, run_main
from tests.bad_inputs import make
from tests.bad_inputs.cli import compile_args, leftovers, run_edgeq
from tests.conftest import Corpus

CHUNKS = 20  # 16 MB each
BOMB_LEVELS = 9  # 10**9 values once expanded, 9 aliases deep


def target_with(root: Path, old: str, new: str) -> Path:
    path = root / "target.yaml"
    path.write_text(make.FAST_TARGET.replace(old, new))
    return path


def alias_bomb(levels: int = BOMB_LEVELS) -> str:
    lines = ["task:", "  name: binary-code", "  options:", "    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def header_bomb(root: Path) -> Path:
    """A few hundred bytes whose .npy header claims 64 GB."""
    header = BytesIO()
    descriptor = {"descr": "<f4", "fortran_order": False, "shape": (10**9, make.IN_FEATURES)}
    np.lib.format.write_array_header_1_0(header, descriptor)
    path = root / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{make.INPUT}.npy", header.getvalue() + bytes(64))
    return path


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Corpus, Path], list]  # the compile arguments after the model
    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


def recipe(text: str | bytes) -> Callable[[Corpus, Path], list]:
    def build(corpus: Corpus, root: Path) -> list:
        path = root / "recipe.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["--recipe", path]

    return build


def target(old: str, new: str) -> Callable[[Corpus, Path], list]:
    return lambda corpus, root: ["--target", target_with(root, old, new)]


CASES = [
    Case("recipe-not-utf8", recipe(b"target: cpu-x86-avx2\nexclude: [\xff\xfe]\n"), ("not UTF-8",)),
    Case(
        "target-not-utf8",
        lambda c, root: ["--target", _write(root / "t.yaml", b"name: \xc3\x28\n")],
        ("UTF-8",),
    ),
    Case("optimization-level", target("ort_format: false", "optimization_level: ludicrous"), ("ludicrous",)),
    Case(
        "seconds-nan", target("seconds_per_round: 0.001", "seconds_per_round: .nan"), ("seconds_per_round",)
    ),
    Case("threads-100000", target("threads: 1", "threads: 100000"), ("EDGEQ_MAX_THREADS",)),
    Case("rounds-huge", target("rounds: 1", "rounds: 1000000000"), ("rounds",)),
    Case("batch-huge", target("batch_sizes: [1]", "batch_sizes: [1000000000]"), ("batch_sizes",)),
    Case("runtime-tflite", target("runtime: onnxruntime", "runtime: tflite"), ("tflite",)),
    Case(
        "block-size-2**40",
        lambda c, root: ["--bits", "4", "--block-size", str(2**40)],
        ("EDGEQ_MAX_BLOCK_SIZE",),
    ),
    Case("yaml-alias-bomb", recipe(alias_bomb()), ("EDGEQ_MAX_YAML_NODES",)),
    Case("yaml-too-big", recipe("exclude:\n" + "  - Relu\n" * 300_000), ("EDGEQ_MAX_YAML_BYTES",)),
    Case("yaml-deep", recipe("exclude: " + "[" * 5000 + "]" * 5000 + "\n"), ("nest",)),
    Case(
        "yaml-deep-mapping", recipe("task: {name: x, options: " + "{a: " * 100 + "1" + "}" * 101), ("depth",)
    ),
    Case("npz-header-bomb", lambda c, root: ["--calib", header_bomb(root)], ("EDGEQ_MAX_DATA_BYTES",)),
    Case("budget-nan", recipe("budget: {max_drop: .nan}\n"), ("finite",)),
    Case("gate-nan", lambda c, root: ["--min-cosine", "nan"], ("finite",)),
    Case("max-drop-without-task", lambda c, root: ["--max-drop", "1"], ("max_drop",)),
    Case("exclude-unknown-node", lambda c, root: ["--exclude", "no_such_node"], ("no_such_node", "exclude")),
    Case(
        "cap-override-not-a-number",
        lambda c, root: [],
        ("EDGEQ_MAX_YAML_NODES",),
        (("EDGEQ_MAX_YAML_NODES", "lots"),),
    ),
    Case(
        "pointer-tsp-on-mlp-data",
        lambda c, root: ["--task", "pointer-tsp"],
        ("pointer-tsp", "cannot evaluate"),
    ),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_in_one_line_before_work(
    case: Case, corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    extra = case.build(corpus, tmp_path)
    args = [*compile_args(corpus, None, None, *extra), "-o", out]
    started = time.monotonic()
    code, err = run_main(capsys, *args)
    assert time.monotonic() - started < 20, "refused quickly, not after the work"
    assert_one_line(code, err, *case.words)
    assert not leftovers(out)


def test_an_unrelated_reference_is_refused(
    corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    quantized = compile_api(corpus, tmp_path / "q").artifact
    other = make.wide_mlp(tmp_path)
    args = ["compile", quantized, "--calib", corpus.calib, "--target", corpus.target, "--reference", other]
    code, err = run_main(capsys, *args, "-q", "-o", tmp_path / "out")
    assert_one_line(code, err, "reference", "quantized from")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('return {"accuracy": 0.9}', ("a dict", "TaskResult")),
        ("return TaskResult('t', [], ['m'])", ("no metrics",)),
        ("return TaskResult('t', [TaskMetric('m', 'high', 1.0)], ['m'])", ("non-numeric",)),
        ("return TaskResult('t', [TaskMetric('m', 1.0, 1.0)], ['other'])", ("primary",)),
        ("return TaskResult('t', [TaskMetric('m', 1.0, 1.0)], 'm')", ("primary",)),
    ],
    ids=["dict", "no-metrics", "string-value", "unknown-primary", "primary-not-a-list"],
)
def test_a_malformed_evaluator_result_is_refused(
    body: str, words: tuple[str, ...], corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = evaluator_module(monkeypatch, tmp_path, f"bad_{abs(hash(body))}", body)
    with pytest.raises(InputError) as refused:
        compile_api(corpus, tmp_path / "out", task={"name": task})
    for word in words:
        assert word in str(refused.value)
    assert not leftovers(tmp_path / "out")


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"out": None}, "out= must be"),
        ({"out": 5}, "out= must be"),
        ({"out": ""}, "out= must be"),
        ({"recipe": 5}, "recipe= must be"),
        ({"recipe": {"bits": 3}}, "bits"),
        ({"runs": 5}, "runs= must be"),
    ],
)
def test_api_arguments_are_checked(arguments: dict, words: str, corpus: Corpus, tmp_path: Path) -> None:
    given = {"out": tmp_path / "out"} | arguments
    with pytest.raises(InputError, match=words):
        edgeq.compile(corpus.model, target=str(corpus.target), calib=str(corpus.calib), **given)


def test_a_torch_example_the_module_cannot_take_is_one_line(corpus: Corpus, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    with pytest.raises(InputError, match=r"cannot run on example_inputs of shape \(2, 5\)"):
        edgeq.compile(module, example_inputs=torch.randn(2, 5), out=tmp_path / "out", calib=str(corpus.calib))
    assert not leftovers(tmp_path / "out")


def test_api_recipe_as_a_dict_compiles(corpus: Corpus, tmp_path: Path) -> None:
    result = edgeq.compile(
        corpus.model, out=tmp_path / "out", recipe={"target": str(corpus.target), "calib": str(corpus.calib)}
    )
    assert (result.out_dir / "report.json").is_file()


def test_a_real_decompression_bomb_is_refused_without_inflating(corpus: Corpus, tmp_path: Path) -> None:
    """Deflated zeros (300 KB) that inflate to 320 MB, over a 256 MB cap: refused from the zip directory
    in a fresh process, as a 6 MB file inflating to 6.4 GB is under the default 2 GiB cap."""
    path = tmp_path / "zeros.npz"
    chunk = bytes(1 << 24)
    header = BytesIO()
    count = CHUNKS * (1 << 24) // 4
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (count // 16, 16)}
    )
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("x.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        for _ in range(CHUNKS):
            member.write(chunk)
    out = tmp_path / "out"
    args = [*compile_args(corpus, None, path), "-o", out]
    started = time.monotonic()
    result = run_edgeq(*args, cwd=tmp_path, env={"EDGEQ_MAX_DATA_BYTES": str(1 << 28)})
    assert time.monotonic() - started < 30
    assert result.returncode == 2 and "EDGEQ_MAX_DATA_BYTES" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
