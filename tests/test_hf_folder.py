"""A local Hugging Face `save_pretrained` folder compiles through the real CLI: a tiny BERT built from
a config, exported with dynamic batch and sequence axes, pooled to a sentence embedding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from edgeq.frontend.hf_folder import export_hf_folder
from edgeq.runtime.session import OrtRunner
from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.conftest import FAST_TARGET

transformers = pytest.importorskip("transformers")

VOCAB = 100


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    path = tmp_path_factory.mktemp("hf") / "tiny-bert"
    transformers.BertModel(config).save_pretrained(path)
    return path


def _tokens(samples: int, length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (samples, length)).astype(np.int64)
    mask = np.ones((samples, length), dtype=np.int64)
    for row, kept in enumerate(rng.integers(3, length + 1, samples)):
        mask[row, kept:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _torch_mean_embedding(folder: Path, tokens: dict[str, np.ndarray]) -> np.ndarray:
    """Sentence embeddings computed the usual way, independent of edgeq's export wrapper."""
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    ids, mask = (torch.from_numpy(tokens[k]) for k in ("input_ids", "attention_mask"))
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).float()
    return ((hidden * weights).sum(1) / weights.sum(1)).numpy()


def test_recipe_with_a_model_folder_and_mean_pooling_compiles(folder: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "tokens.npz", **_tokens(48, 16, seed=1))
    recipe = {"model": str(folder), "calib": "tokens.npz", "target": FAST_TARGET, "pooling": "mean"}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_edgeq("compile", "--recipe", "recipe.yaml", "-o", "out", "-q", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model"]["path"] == str(folder.resolve())
    assert report["recipe"]["pooling"] == "mean"
    tokens = _tokens(5, 9, seed=2)  # another batch size and sequence length than calibration
    runner = OrtRunner((tmp_path / "out" / "model.onnx").read_bytes())
    (got,) = runner.predict(tokens).values()
    want = _torch_mean_embedding(folder, tokens)
    cosines = np.sum(got * want, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert got.shape == (5, 32)
    assert cosines.min() > 0.99


@pytest.mark.parametrize(
    ("pooling", "output", "shape"), [("cls", "embedding", (3, 32)), ("none", "last_hidden_state", (3, 7, 32))]
)
def test_cls_and_token_outputs_have_dynamic_batch_and_sequence(
    folder: Path, pooling: str, output: str, shape: tuple[int, ...]
) -> None:
    model = export_hf_folder(folder, pooling)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    got = OrtRunner(model.SerializeToString()).predict(_tokens(3, 7, seed=3))
    assert got[output].shape == shape


def test_a_folder_without_calibration_data_is_refused_before_export(folder: Path, tmp_path: Path) -> None:
    result = run_edgeq("compile", folder, "--pooling", "mean", "-o", "out", cwd=tmp_path)
    assert_refused(result, tmp_path / "out", "--calib", "input_ids", "attention_mask")


def test_pooling_on_an_onnx_file_is_refused(tmp_path: Path) -> None:
    model = Path(__file__).resolve().parent.parent / "examples" / "mrl_encoder" / "model.onnx"
    calib = Path(__file__).resolve().parent.parent / "calib" / "mrl_digits.npz"
    result = run_edgeq("compile", model, "--calib", calib, "--pooling", "cls", "-o", "out", cwd=tmp_path)
    assert_refused(result, tmp_path / "out", "pooling", "Hugging Face")


def test_without_transformers_a_folder_is_one_line(folder: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "tokens.npz", **_tokens(8, 8, seed=4))
    block = "import sys; sys.modules['transformers'] = None; from edgeq.entry import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", block, "compile", str(folder), "--calib", "tokens.npz", "-o", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_refused(result, tmp_path / "out", "transformers", "edgeq[hf]")
