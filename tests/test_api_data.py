"""`edgeq.compile` takes calibration and evaluation data in memory: arrays, dicts, feed iterables and
torch DataLoaders, checked like a file, and refused in one short line that never shows the values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import edgeq
from edgeq.errors import InputError
from tests.bad_inputs import make
from tests.conftest import FAST_TARGET, Corpus

ROOT = Path(__file__).resolve().parent.parent
MRL = ROOT / "examples" / "mrl_encoder" / "model.onnx"
TASK = {"name": "mrl-retrieval", "options": {"dims": [8, 16]}}


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    with np.load(ROOT / "calib" / "mrl_digits.npz") as archive:
        return {name: archive[name] for name in archive.files}


def _compile(tmp_path: Path, name: str, **data) -> edgeq.CompileResult:
    return edgeq.compile(MRL, out=tmp_path / name, target=FAST_TARGET, task=TASK, runs=False, **data)


def test_a_dict_a_dataloader_and_a_file_give_the_same_measurement(tmp_path: Path, digits) -> None:
    from_file = _compile(tmp_path, "file", calib=ROOT / "calib" / "mrl_digits.npz")
    from_dict = _compile(tmp_path, "dict", calib=digits)
    dataset = torch.utils.data.TensorDataset(
        torch.from_numpy(digits["image"]), torch.from_numpy(digits["labels"])
    )
    from_loader = _compile(tmp_path, "loader", calib=torch.utils.data.DataLoader(dataset, batch_size=64))
    fp32 = [{m.name: m.fp32 for m in r.report.task.metrics} for r in (from_file, from_dict, from_loader)]
    assert fp32[0] == fp32[1] == fp32[2], "the same 300 held-out samples are measured each way"
    assert from_dict.report.accuracy.samples == from_loader.report.accuracy.samples == 300
    assert from_dict.report.recipe["calib"] is None, "in-memory data is not reported as a file"


def test_per_sample_feed_dicts_and_a_separate_eval_array(tmp_path: Path, digits) -> None:
    samples = (
        {"image": image, "labels": label}
        for image, label in zip(digits["image"][:400], digits["labels"][:400], strict=True)
    )
    result = _compile(
        tmp_path,
        "feeds",
        calib=samples,
        eval={"image": digits["image"][400:], "labels": digits["labels"][400:]},
    )
    assert result.report.accuracy.samples == 200
    assert result.report.task.worst_primary_drop <= 1.0


def test_one_array_feeds_a_one_input_model(tmp_path: Path, corpus: Corpus) -> None:
    (array,) = make.good_calib().values()
    result = edgeq.compile(corpus.model, out=tmp_path / "o", target=corpus.target, calib=array, runs=False)
    assert result.artifact.is_file() and result.report.accuracy.samples == len(array) // 2


def test_dataloaders_of_dicts_and_of_bare_tensors(tmp_path: Path, corpus: Corpus) -> None:
    (array,) = make.good_calib().values()
    tensors = torch.from_numpy(array)
    dicts = [{make.INPUT: row} for row in tensors]  # the default collate stacks them into dicts of batches
    for name, data in (("dicts", dicts), ("tensors", tensors)):
        loader = torch.utils.data.DataLoader(data, batch_size=16)
        result = edgeq.compile(
            corpus.model, out=tmp_path / name, target=corpus.target, calib=loader, runs=False
        )
        assert result.report.accuracy.samples == len(array) // 2, name


@pytest.mark.parametrize(
    ("calib", "words"),
    [
        ({"wrong_name": np.zeros((64, 16), np.float32)}, ("lacks model input", "wrong_name")),
        ({make.INPUT: np.zeros((64, 16), np.uint8)}, ("dtype uint8",)),
        ([{make.INPUT: np.zeros((4, 16), np.float32)}, np.zeros((4, 3))], ("batches differ in shape",)),
        ([{make.INPUT: np.zeros((4, 16), np.float32)}, "oops"], ("batch 1 is str",)),
        ([(np.zeros((4, 16), np.float32), np.zeros(4), np.zeros(4))], ("3 items", "labels")),
        (iter([]), ("yielded no batches",)),
        (3.5, ("calib must be", "float")),
        ({make.INPUT: object()}, ("must be an array or tensor", "object")),
    ],
)
def test_bad_in_memory_data_is_refused_in_one_short_line(
    tmp_path: Path, corpus: Corpus, calib, words
) -> None:
    with pytest.raises(InputError) as refused:
        edgeq.compile(corpus.model, out=tmp_path / "o", target=corpus.target, calib=calib, runs=False)
    message = str(refused.value)
    assert all(word in message for word in words), message
    assert "\n" not in message and "array(" not in message and "0., 0." not in message and len(message) < 300
    assert not (tmp_path / "o").exists()


def test_one_array_for_a_two_input_model_names_the_inputs(tmp_path: Path) -> None:
    from tests.test_inspect import _two_input_model

    model = _two_input_model(tmp_path / "two.onnx")
    with pytest.raises(InputError, match=r"one array but the model has 2 inputs \(input_ids, features\)"):
        edgeq.compile(model, out=tmp_path / "o", calib=np.zeros((8, 4), np.float32), runs=False)
