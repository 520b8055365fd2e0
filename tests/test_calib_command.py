"""`edgeq calib` turns real files (images, CSV/NPY, WAV, text) into a calibration .npz named and
shaped for the model, through the real command; the result compiles."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.conftest import FAST_TARGET

ROOT = Path(__file__).resolve().parent.parent
MRL = ROOT / "examples" / "mrl_encoder" / "model.onnx"
TSP = ROOT / "examples" / "pointer_net" / "tsp.onnx"


def _identity_model(path: Path, inputs: dict[str, tuple[int, list]]) -> Path:
    """A model that takes `inputs` {name: (onnx dtype, shape)} and returns the first one."""
    first = next(iter(inputs))
    graph = helper.make_graph(
        [helper.make_node("Identity", [first], ["out"])],
        "probe",
        [helper.make_tensor_value_info(name, dtype, shape) for name, (dtype, shape) in inputs.items()],
        [helper.make_tensor_value_info("out", inputs[first][0], inputs[first][1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _digit_folder(root: Path, count: int = 200) -> Path:
    """Held-out digits as 32x32 PNGs in one folder per class (folder/3/0007.png)."""
    from PIL import Image

    with np.load(ROOT / "calib" / "mrl_digits.npz") as archive:
        images, labels = archive["image"][:count], archive["labels"][:count]
    for number, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / "digits" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = Image.fromarray(np.round(image[0] * 255).astype(np.uint8), "L")
        pixels.resize((32, 32), Image.Resampling.NEAREST).save(folder / f"{number:04d}.png")
    return root / "digits"


def test_an_image_folder_becomes_calibration_data_that_compiles_with_its_labels(tmp_path: Path) -> None:
    folder = _digit_folder(tmp_path)
    made = run_edgeq("calib", folder, "--model", MRL, "-o", "c.npz", "--labels", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "wrote c.npz: image float32 [200, 1, 8, 8], labels int64 [200] (200 of 200 images" in made.stdout
    arrays = _load(tmp_path / "c.npz")
    assert arrays["image"].min() >= 0.0 and arrays["image"].max() <= 1.0
    result = run_edgeq(
        "compile", MRL, "--calib", "c.npz", "--target", FAST_TARGET, "--task", "mrl-retrieval",
        "--task-option", "dims=[8,16]", "-o", "out", "-q", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    task = json.loads((tmp_path / "out" / "report.json").read_text())["accuracy"]["task"]
    fp32 = {m["name"]: m["fp32"] for m in task["metrics"]}
    assert fp32["1nn_acc@16"] > 90, "the images were read as the model's digits, labels from the folders"


def test_rgb_images_are_resized_cropped_normalised_and_laid_out(tmp_path: Path) -> None:
    from PIL import Image

    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :, 0], pixels[:, :, 1], pixels[:, :, 2] = 255, 128, 0
    pixels[:, :4] = 0  # a black band on the left, cut away by the centre crop
    (tmp_path / "imgs").mkdir()
    Image.fromarray(pixels).save(tmp_path / "imgs" / "a.png")
    nchw = _identity_model(
        tmp_path / "nchw.onnx", {"pixel_values": (TensorProto.FLOAT, ["batch", 3, 16, 16])}
    )
    mean, std = "0.485,0.456,0.406", "0.229,0.224,0.225"
    args = ["imgs", "--model", nchw, "-o", "n.npz", "--mean", mean, "--std", std]
    assert run_edgeq("calib", *args, cwd=tmp_path).returncode == 0
    image = _load(tmp_path / "n.npz")["pixel_values"]
    assert image.shape == (1, 3, 16, 16) and image.dtype == np.float32
    expected = (np.array([255, 128, 0]) / 255 - np.array([0.485, 0.456, 0.406])) / np.array(
        [0.229, 0.224, 0.225]
    )
    np.testing.assert_allclose(image[0, :, 8, 8], expected, rtol=1e-5)
    assert np.allclose(image[0, :, :, 0], image[0, :, :, 8]), "the black band is outside the centre crop"
    nhwc = _identity_model(tmp_path / "nhwc.onnx", {"images": (TensorProto.UINT8, ["batch", 16, 16, 3])})
    assert (
        run_edgeq(
            "calib", "imgs", "--model", nhwc, "-o", "h.npz", "--channels", "bgr", cwd=tmp_path
        ).returncode
        == 0
    )
    raw = _load(tmp_path / "h.npz")["images"]
    assert raw.shape == (1, 16, 16, 3) and raw.dtype == np.uint8 and raw[0, 8, 8].tolist() == [0, 128, 255]


def test_csv_rows_fill_a_shaped_input_and_a_label_column_becomes_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = rng.random((50, 20))
    header = ",".join([f"v{i}" for i in range(20)] + ["kind"])
    rows = [",".join([*(str(float(v)) for v in row), "ab"[i % 2]]) for i, row in enumerate(points)]
    (tmp_path / "points.csv").write_text("\n".join([header, *rows]) + "\n")
    args = ["points.csv", "--model", TSP, "-o", "t.npz", "--label-column", "kind", "--samples", "20"]
    made = run_edgeq("calib", *args, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    arrays = _load(tmp_path / "t.npz")
    assert arrays["points"].shape == (20, 10, 2) and arrays["points"].dtype == np.float32
    index = [int(np.argmin(np.abs(points[:, 0] - row[0, 0]))) for row in arrays["points"]]
    assert index == sorted(index) and len(set(index)) == 20, "a seeded sample kept in file order"
    np.testing.assert_allclose(arrays["points"], points[index].reshape(20, 10, 2).astype(np.float32))
    assert arrays["labels"].tolist() == [i % 2 for i in index]
    again = run_edgeq("calib", *args, "--force", "--seed", "0", cwd=tmp_path)
    assert again.returncode == 0 and np.array_equal(_load(tmp_path / "t.npz")["points"], arrays["points"])
    other = run_edgeq("calib", *args[:4], "o.npz", *args[5:], "--seed", "1", cwd=tmp_path)
    assert other.returncode == 0 and not np.array_equal(_load(tmp_path / "o.npz")["points"], arrays["points"])


def test_an_npy_file_of_samples_compiles(tmp_path: Path) -> None:
    np.save(tmp_path / "points.npy", np.random.default_rng(1).random((64, 10, 2)))
    assert run_edgeq("calib", "points.npy", "--model", TSP, "-o", "p.npz", cwd=tmp_path).returncode == 0
    assert _load(tmp_path / "p.npz")["points"].shape == (64, 10, 2)


def _tone(path: Path, hertz: float, rate: int, seconds: float, channels: int = 1) -> None:
    t = np.arange(round(rate * seconds)) / rate
    samples = np.round(0.5 * np.sin(2 * math.pi * hertz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as clip:
        clip.setnchannels(channels)
        clip.setsampwidth(2)
        clip.setframerate(rate)
        clip.writeframes(np.repeat(samples, channels).tobytes())


def test_wav_clips_become_fixed_length_waveforms_or_log_mel_features(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    _tone(tmp_path / "clips" / "a.wav", 440, 8000, 0.5, channels=2)  # stereo, 8 kHz, short
    _tone(tmp_path / "clips" / "b.wav", 1000, 16000, 1.5)  # 16 kHz, too long
    waveform = _identity_model(tmp_path / "w.onnx", {"audio": (TensorProto.FLOAT, ["batch", 16000])})
    assert run_edgeq("calib", "clips", "--model", waveform, "-o", "w.npz", cwd=tmp_path).returncode == 0
    audio = _load(tmp_path / "w.npz")["audio"]
    assert audio.shape == (2, 16000) and audio.dtype == np.float32
    t = np.arange(7990) / 16000
    np.testing.assert_allclose(audio[0, :7990], 0.5 * np.sin(2 * math.pi * 440 * t), atol=0.02)
    assert not audio[0, 8010:].any(), "a short clip is padded with silence"
    mel = _identity_model(tmp_path / "m.onnx", {"features": (TensorProto.FLOAT, ["batch", 1, 40, 101])})
    args = ["clips", "--model", mel, "-o", "m.npz", "--features", "logmel", "--n-mels", "40"]
    made = run_edgeq("calib", *args, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    features = _load(tmp_path / "m.npz")["features"]
    assert features.shape == (2, 1, 40, 101)
    bands = features[:, 0, :, 10:40].mean(axis=2).argmax(axis=1)
    assert bands[0] < bands[1], "the 440 Hz tone peaks in a lower mel band than the 1 kHz tone"


def _tokenizer_folder(root: Path) -> Path:
    """A word-level tokenizer saved like any Hugging Face tokenizer, built offline."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "a", "dog"]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]")
    tokenizer.save_pretrained(root / "tok")
    return root / "tok"


def test_text_and_jsonl_are_tokenized_for_the_models_inputs(tmp_path: Path) -> None:
    tokenizer = _tokenizer_folder(tmp_path)
    model = _identity_model(
        tmp_path / "enc.onnx",
        {
            "input_ids": (TensorProto.INT64, ["batch", 8]),
            "attention_mask": (TensorProto.INT64, ["batch", 8]),
        },
    )
    (tmp_path / "lines.txt").write_text("the cat sat\n\nthe dog sat on a mat\n")
    records = [{"text": "a cat", "id": 1}, {"text": "the mat", "id": 2}]
    (tmp_path / "notes.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    args = ["lines.txt", "notes.jsonl", "--model", model, "-o", "t.npz", "--tokenizer", tokenizer]
    made = run_edgeq("calib", *args, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    arrays = _load(tmp_path / "t.npz")
    assert set(arrays) == {"input_ids", "attention_mask"}, "token_type_ids is not a model input"
    assert arrays["input_ids"].dtype == np.int64 and arrays["input_ids"].shape == (4, 8)
    assert arrays["input_ids"][0].tolist() == [4, 5, 6, 0, 0, 0, 0, 0]
    assert arrays["attention_mask"].sum(axis=1).tolist() == [3, 6, 2, 2]


def test_refusals_are_one_line(tmp_path: Path) -> None:
    two = _identity_model(
        tmp_path / "two.onnx",
        {"a": (TensorProto.FLOAT, ["batch", 4]), "b": (TensorProto.FLOAT, ["batch", 4])},
    )
    np.save(tmp_path / "x.npy", np.zeros((8, 4)))
    assert_refused(run_edgeq("calib", "x.npy", "--model", two, "-o", "c.npz", cwd=tmp_path), None, "--input")
    assert (
        run_edgeq("calib", "x.npy", "--model", two, "-o", "c.npz", "--input", "a", cwd=tmp_path).returncode
        == 2
    )
    (tmp_path / "empty").mkdir()
    assert_refused(
        run_edgeq("calib", "empty", "--model", TSP, "-o", "c.npz", cwd=tmp_path), None, "no data files"
    )
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.txt").write_text("hello\n")
    np.save(tmp_path / "mixed" / "b.npy", np.zeros((2, 10, 2)))
    assert_refused(run_edgeq("calib", "mixed", "--model", TSP, "-o", "c.npz", cwd=tmp_path), None, "--kind")
    assert_refused(
        run_edgeq("calib", "mixed", "--kind", "text", "--model", TSP, "-o", "c.npz", cwd=tmp_path),
        None,
        "--tokenizer",
    )
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    assert_refused(
        run_edgeq("calib", "data.parquet", "--model", TSP, "-o", "c.npz", cwd=tmp_path), None, "--kind"
    )
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not an image")
    assert_refused(run_edgeq("calib", "bad", "--model", MRL, "-o", "c.npz", cwd=tmp_path), None, "broken.png")
    np.save(tmp_path / "wrong.npy", np.zeros((8, 7)))
    assert_refused(
        run_edgeq("calib", "wrong.npy", "--model", TSP, "-o", "c.npz", cwd=tmp_path), None, "points"
    )
    assert (
        run_edgeq("calib", "x.npy", "--model", TSP, "-o", "c.npz", "--samples", "0", cwd=tmp_path).returncode
        == 2
    )
    (tmp_path / "c.npz").write_bytes(b"")
    np.save(tmp_path / "ok.npy", np.zeros((8, 10, 2)))
    assert_refused(run_edgeq("calib", "ok.npy", "--model", TSP, "-o", "c.npz", cwd=tmp_path), None, "--force")
    assert not list(tmp_path.glob(".c.*")), "no temporary file is left behind"
