"""Text lines or JSONL records, tokenized by a Hugging Face tokenizer saved in a local folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeq.errors import InputError


@dataclass(frozen=True)
class TextOptions:
    """The tokenizer folder, the padded length, and the JSONL field holding the text."""

    tokenizer: Path | None = None
    max_length: int | None = None  # None: the model input's fixed sequence length, else 128
    field: str = "text"


def read_texts(path: Path, field: str) -> list[str]:
    """One text per non-empty line of a .txt file, or the `field` of each JSONL record."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path} as UTF-8 text: {exc}") from None
    if path.suffix.lower() != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {number} is not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise InputError(f"{path} line {number} has no string field {field!r} (pass --field NAME)")
        texts.append(record[field])
    return texts


def load_tokenizer(folder: Path) -> Any:
    """A tokenizer from a local folder (tokenizer.json / vocab files); never downloads anything."""
    try:
        from transformers import AutoTokenizer  # the `text` extra
    except ImportError:
        raise InputError("text calibration needs transformers: pip install 'edgeq[text]'") from None
    if not folder.is_dir():
        raise InputError(
            f"tokenizer folder {folder} does not exist (save one with tokenizer.save_pretrained)"
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot load a tokenizer from {folder}: {first}") from None


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """Every array the tokenizer makes (input_ids, attention_mask, ...), padded to `max_length`."""
    encoded = tokenizer(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
    )
    return {name: np.asarray(value) for name, value in encoded.items()}
