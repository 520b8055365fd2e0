"""Build one calibration .npz from files of real data: seeded sample, read with a progress bar,
arrays named after the model's inputs and checked like any calibration file before it is written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.calibdata.audio import AudioOptions, fit_length, log_mel, read_wav
from edgeq.calibdata.files import Kind, list_files, seeded_sample
from edgeq.calibdata.images import ImageOptions, folder_labels, plan_images, read_image
from edgeq.calibdata.tables import TableOptions, read_table
from edgeq.calibdata.text import TextOptions, load_tokenizer, read_texts, tokenize
from edgeq.data import Arrays, InputSignature, validate
from edgeq.errors import InputError
from edgeq.frontend.onnx_load import input_signatures, load_onnx
from edgeq.progress import Progress

LABELS = "labels"
Signatures = Sequence[InputSignature]


@dataclass(frozen=True)
class CalibRequest:
    """Everything `edgeq calib` was asked for."""

    sources: Sequence[Path]
    model: Path
    out: Path
    kind: Kind | None = None
    input: str | None = None  # the model input to fill (needed when it has several)
    samples: int | None = 512
    seed: int = 0
    labels: bool = False  # images: the parent folder's name is the class, saved as `labels`
    force: bool = False
    images: ImageOptions = field(default_factory=ImageOptions)
    table: TableOptions = field(default_factory=TableOptions)
    audio: AudioOptions = field(default_factory=AudioOptions)
    text: TextOptions = field(default_factory=TextOptions)


@dataclass(frozen=True)
class CalibResult:
    """What was written: the file, its arrays, and how many of the available samples were drawn."""

    out: Path
    kind: Kind
    arrays: dict[str, tuple[str, tuple[int, ...]]]
    drawn: int
    available: int


def build_calibration(request: CalibRequest, progress: Progress) -> CalibResult:
    """Read a seeded sample of the sources into arrays for the model's inputs and write the .npz."""
    if request.out.suffix != ".npz":
        raise InputError(f"output {request.out} must end in .npz")
    if request.out.exists() and not request.force:
        raise InputError(f"{request.out} already exists: choose another name or pass --force")
    if request.samples is not None and request.samples < 1:
        raise InputError(f"--samples must be >= 1, got {request.samples}")
    signatures = input_signatures(load_onnx(request.model))
    kind, files = list_files(request.sources, request.kind)
    readers: dict[Kind, Callable[..., tuple[Arrays, int]]] = {
        "images": _images,
        "table": _table,
        "audio": _audio,
        "text": _text,
    }
    arrays, available = readers[kind](request, files, signatures, progress)
    validate(arrays, signatures, f"calibration data from {', '.join(map(str, request.sources))}")
    _write(request.out, arrays)
    described = {name: (str(a.dtype), a.shape) for name, a in arrays.items()}
    return CalibResult(request.out, kind, described, len(next(iter(arrays.values()))), available)


def _images(
    request: CalibRequest, files: list[Path], signatures: Signatures, progress: Progress
) -> tuple[Arrays, int]:
    target = _one_input(signatures, request.input, "images")
    plan = plan_images(request.images, target)
    picked = [files[i] for i in seeded_sample(len(files), request.samples, request.seed)]
    images = []
    with progress.bar("read images", len(picked)) as tick:
        for path in picked:
            images.append(read_image(path, plan, request.images, target.dtype))
            tick()
    arrays = {target.name: np.stack(images)}
    if request.labels:
        arrays[LABELS] = folder_labels(picked)[0]
    return arrays, len(files)


def _table(
    request: CalibRequest, files: list[Path], signatures: Signatures, progress: Progress
) -> tuple[Arrays, int]:
    target = _one_input(signatures, request.input, "table rows")
    values, labels = [], []
    with progress.bar("read tables", len(files)) as tick:
        for path in files:
            rows, row_labels = read_table(path, request.table)
            values.append(rows)
            labels.append(row_labels)
            tick()
    try:
        rows = np.concatenate(values)
    except ValueError:
        raise InputError("the table files have different numbers of columns or array shapes") from None
    index = seeded_sample(len(rows), request.samples, request.seed)
    arrays = {target.name: _as_input(rows[index], target, "table rows")}
    if all(row_labels is not None for row_labels in labels):
        arrays[LABELS] = np.concatenate(labels)[index]
    return arrays, len(rows)


def _audio(
    request: CalibRequest, files: list[Path], signatures: Signatures, progress: Progress
) -> tuple[Arrays, int]:
    target = _one_input(signatures, request.input, "audio")
    options = request.audio
    length = _clip_length(options, target)
    picked = [files[i] for i in seeded_sample(len(files), request.samples, request.seed)]
    clips = []
    with progress.bar("read audio", len(picked)) as tick:
        for path in picked:
            waveform = fit_length(read_wav(path, options.sample_rate), length)
            clips.append(
                waveform
                if options.features == "waveform"
                else log_mel(waveform, options.sample_rate, options)
            )
            tick()
    return {target.name: _as_input(np.stack(clips), target, "audio features")}, len(files)


def _clip_length(options: AudioOptions, target: InputSignature) -> int:
    """Samples per clip: --seconds, else the model input's fixed time axis (the last fixed one)."""
    if options.seconds is not None:
        return round(options.seconds * options.sample_rate)
    fixed = [d for d in target.shape[1:] if d not in (None, 1) and d != options.n_mels]
    if not fixed:
        raise InputError(f"model input {target.name!r} has no fixed time axis: pass --seconds")
    return fixed[-1] if options.features == "waveform" else (fixed[-1] - 1) * options.hop


def _text(
    request: CalibRequest, files: list[Path], signatures: Signatures, progress: Progress
) -> tuple[Arrays, int]:
    options = request.text
    if options.tokenizer is None:
        raise InputError("text needs --tokenizer DIR: a local Hugging Face tokenizer folder")
    tokenizer = load_tokenizer(options.tokenizer)
    texts = [text for path in files for text in read_texts(path, options.field)]
    if not texts:
        raise InputError(f"no text in {', '.join(map(str, files))}")
    picked = [texts[i] for i in seeded_sample(len(texts), request.samples, request.seed)]
    fixed = [s.shape[1] for s in signatures if len(s.shape) == 2 and s.shape[1] is not None]
    length = options.max_length or (fixed[0] if fixed else 128)
    chunks: dict[str, list[np.ndarray]] = {}
    with progress.bar("tokenize", len(picked)) as tick:
        for start in range(0, len(picked), 64):
            for name, array in tokenize(tokenizer, picked[start : start + 64], length).items():
                chunks.setdefault(name, []).append(array)
            for _ in picked[start : start + 64]:
                tick()
    made = {name: np.concatenate(parts) for name, parts in chunks.items()}
    wanted = {s.name: s for s in signatures}
    return {name: _as_input(a, wanted[name], name) for name, a in made.items() if name in wanted}, len(texts)


def _one_input(signatures: Sequence[InputSignature], name: str | None, what: str) -> InputSignature:
    by_name = {s.name: s for s in signatures}
    if name is not None:
        if name not in by_name:
            raise InputError(f"--input {name!r} is not a model input (inputs: {', '.join(by_name)})")
        return by_name[name]
    if len(signatures) > 1:
        raise InputError(
            f"{what} fill one model input and the model has {len(signatures)} ({', '.join(by_name)}): "
            "pass --input NAME"
        )
    return signatures[0]


def _as_input(array: np.ndarray, target: InputSignature, what: str) -> np.ndarray:
    """Samples fitted to the input's dims (20 CSV columns → [10, 2]; [n_mels, frames] features → a
    [frames, n_mels] or [1, n_mels, frames] input) in its dtype; what cannot fit is left to `validate`."""
    want = target.shape[1:]
    kept = tuple(d for d in want if d != 1)
    if not _fits(array.shape[1:], want) and array.ndim == 3 and _fits(array.shape[:0:-1], kept):
        array = np.swapaxes(array, 1, 2)
    if not _fits(array.shape[1:], want) and None not in want and array[0].size == int(np.prod(want)):
        array = array.reshape(len(array), *want)
    integral = array.dtype.kind != "f" or np.array_equal(array, np.round(array))
    if target.dtype.kind in "iu" and not integral:
        raise InputError(f"{what}: model input {target.name!r} is {target.dtype}, the data are not integers")
    return array.astype(target.dtype)


def _fits(shape: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    return len(shape) == len(want) and all(w is None or w == d for d, w in zip(shape, want, strict=True))


def _write(out: Path, arrays: Arrays) -> None:
    """The .npz written next to its final name, then renamed: never a half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".npz", dir=out.parent)
    os.close(handle)
    try:
        np.savez_compressed(temporary, **arrays)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
