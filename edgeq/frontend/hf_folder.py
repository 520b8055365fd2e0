"""A local Hugging Face `save_pretrained` folder of an encoder (BERT, DistilBERT, MiniLM...) as ONNX:
loaded with transformers' AutoModel, exported through torch with dynamic batch and sequence axes,
and checked against torch at two sequence lengths."""

from __future__ import annotations

import hashlib
import io
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from edgeq.errors import InputError
from edgeq.optional import require

Pooling = Literal["cls", "mean", "none"]
POOLINGS: tuple[str, ...] = ("cls", "mean", "none")
INPUTS = ("input_ids", "attention_mask")
WEIGHT_SUFFIXES = (".safetensors", ".bin")  # model.safetensors, pytorch_model.bin, or their shards
CALIB_HINT = (
    "a Hugging Face model folder needs --calib DATA.npz with int64 `input_ids` and `attention_mask` "
    "arrays [samples, sequence] from its tokenizer (see docs/user-guide.md, 'Hugging Face folders')"
)


def is_hf_folder(model: Any) -> bool:
    """A directory holding a transformers `config.json` (what `save_pretrained` writes)."""
    return isinstance(model, str | Path) and Path(model).is_dir() and (Path(model) / "config.json").is_file()


def folder_digest(folder: Path) -> str:
    """sha256 over the config and weight files, so one saved model hashes the same wherever it lies."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.name == "config.json" or path.suffix in WEIGHT_SUFFIXES):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def export_hf_folder(folder: Path, pooling: Pooling = "none") -> onnx.ModelProto:
    """The folder's encoder as fp32 ONNX taking input_ids and attention_mask [batch, sequence].

    pooling: `none` returns last_hidden_state [batch, sequence, hidden]; `cls` the first token's
    state, `mean` the attention-mask-weighted mean over tokens (sentence embeddings) [batch, hidden]."""
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    transformers = require("transformers", "a Hugging Face model folder", "hf")
    torch = require("torch", "a Hugging Face model folder", "hf")
    from edgeq.frontend.torch_export import check_parity, export_torch

    if not any(path.suffix in WEIGHT_SUFFIXES for path in folder.iterdir()):
        raise InputError(f"{folder} has config.json but no weights (model.safetensors or pytorch_model.bin)")
    try:
        with redirect_stderr(io.StringIO()):  # transformers' loading bar is not the compile's progress
            encoder = transformers.AutoModel.from_pretrained(str(folder), attn_implementation="eager")
    except Exception as exc:  # transformers raises many types for folders it cannot load
        raise InputError(f"transformers cannot load {folder}: {str(exc).splitlines()[0][:200]}") from None
    config = encoder.config
    module = _pooled_encoder(torch, encoder, pooling)
    output = "last_hidden_state" if pooling == "none" else "embedding"
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    axes[output] = {0: "batch", 1: "sequence"} if pooling == "none" else {0: "batch"}
    model, _ = export_torch(
        module,
        _example_inputs(torch, config, batch=2, length=12),
        input_names=INPUTS,
        output_names=[output],
        dynamic_axes=axes,
    )
    other = _example_inputs(torch, config, batch=3, length=7)  # the sequence axis really is dynamic
    with torch.no_grad():
        check_parity(model, other, (module(*other),), [output], atol=1e-4, min_cosine=0.9999)
    model.graph.name = folder.resolve().name
    return model


def _pooled_encoder(torch: Any, encoder: Any, pooling: Pooling) -> Any:
    """A module (input_ids, attention_mask) → the pooled (or per-token) final hidden state."""

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                return hidden[:, 0]
            if pooling == "mean":
                weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return hidden

    return PooledEncoder().eval()


def _example_inputs(torch: Any, config: Any, batch: int, length: int) -> tuple[Any, Any]:
    """Seeded token ids with the later rows padded, so the attention mask is exercised."""
    rng = np.random.default_rng(length)
    ids = rng.integers(0, config.vocab_size, size=(batch, length), dtype=np.int64)
    mask = np.ones((batch, length), dtype=np.int64)
    for row in range(1, batch):
        mask[row, length - 2 * row :] = 0
    return torch.from_numpy(ids), torch.from_numpy(mask)
