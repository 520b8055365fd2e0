"""Calibration and evaluation data: npz files with one array per model input, first axis = samples."""

from __future__ import annotations

import difflib
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.config import limit, over_limit
from edgeq.errors import InputError
from edgeq.runtime.roles import InputRoles

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class InputSignature:
    """A model input as the data must provide it: name, numpy dtype, shape (None = dynamic)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


def load_npz(path: str | Path, what: str = "calibration file") -> Arrays:
    """Every array of an npz file, loaded without pickle (object arrays are refused)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist")
    how = "save one array per model input with np.savez(file, input_name=array)"
    if not zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            npy = handle.read(6) == b"\x93NUMPY"
        kind = "a single .npy array" if npy else "not an .npz archive (or it is truncated)"
        raise InputError(f"{what} {path} is {kind}: {how}")
    arrays = {}
    try:
        _check_inflated_size(path, f"{what} {path}")
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                arrays[name] = _member(archive, name, f"{what} {path}")
    except InputError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy's format reader raise many types
        raise InputError(f"{what} {path} is not a readable .npz file: {exc}") from None
    if not arrays:
        raise InputError(f"{what} {path} holds no arrays: {how}")
    return arrays


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_inflated_size(path: Path, where: str) -> None:
    """Refuse, from the zip directory and the .npy headers alone, an archive that inflates past the cap
    (a few MB of zeros can claim gigabytes): nothing is decompressed beyond each header."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            total += max(member.file_size, _declared_bytes(archive, member))
    if total > limit("EDGEQ_MAX_DATA_BYTES"):
        raise over_limit("EDGEQ_MAX_DATA_BYTES", f"{where}: its size in bytes once decompressed", total)


def _declared_bytes(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> int:
    """The bytes a .npy member's header says its array holds (0 when it is not a readable .npy)."""
    try:
        with archive.open(member) as handle:
            version = np.lib.format.read_magic(handle)
            read = _HEADER_READERS.get(version)
            if read is None:
                return 0  # a newer header: the zip directory's size above still bounds what is read
            shape, _, dtype = read(handle)
    except Exception:  # noqa: BLE001 - not an array header: np.load below says what is wrong
        return 0
    return math.prod(shape) * dtype.itemsize


def _member(archive, name: str, where: str) -> np.ndarray:
    """One array of an open npz; object (pickled) arrays are refused without being unpickled."""
    try:
        value = archive[name]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise InputError(
            f"{where}: array {name!r} holds Python objects (pickle); edgeq never unpickles data "
            "files, save numeric arrays"
        ) from None
    if not isinstance(value, np.ndarray):  # a member that is not a .npy file comes back as bytes
        raise InputError(f"{where}: member {name!r} is not a numpy array (.npy)")
    return value


def validate(arrays: Mapping[str, np.ndarray], inputs: Sequence[InputSignature], what: str) -> int:
    """Check `arrays` feed every model input (names, dtypes, shapes, finite values); returns N."""
    missing = [i.name for i in inputs if i.name not in arrays]
    if missing:
        have = ", ".join(sorted(arrays)) or "nothing"
        extras = [name for name in arrays if name not in {i.name for i in inputs}]
        hint = _close_name(missing[0], extras)
        hint = f"; did you mean {hint!r}? arrays must be named exactly like the inputs" if hint else ""
        raise InputError(f"{what} lacks model input {missing[0]!r} (it holds: {have}){hint}")
    counts = set()
    for signature in inputs:
        array = arrays[signature.name]
        _check_array(array, signature, what)
        counts.add(len(array))
    if len(counts) > 1:
        raise InputError(f"{what}: model inputs have different sample counts {sorted(counts)}")
    (count,) = counts
    if count == 0:
        raise InputError(f"{what} holds no samples")
    return count


def _close_name(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate that looks like a misspelling of `name` (case and small typos), if any."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def _check_array(array: np.ndarray, signature: InputSignature, what: str) -> None:
    name = signature.name
    if array.ndim == 0:
        raise InputError(f"{what}: array {name!r} is a scalar; the first axis must be samples")
    if array.ndim != len(signature.shape):
        raise InputError(
            f"{what}: array {name!r} has {array.ndim} dims {array.shape}, the model input has "
            f"{len(signature.shape)} {_shape_text(signature.shape)}"
        )
    for axis, (have, want) in enumerate(zip(array.shape[1:], signature.shape[1:], strict=True), start=1):
        if want is not None and have != want:
            raise InputError(
                f"{what}: array {name!r} has shape {array.shape}, model input wants "
                f"{_shape_text(signature.shape)} (axis {axis} differs)"
            )
    kind, want_kind = array.dtype.kind, signature.dtype.kind
    # float data for a float input (any width); integers for an integer input. Integers for a float
    # input are refused: raw uint8 pixels or class ids calibrate ranges the model never sees.
    if want_kind == "f" and kind != "f" or want_kind in "iu" and kind not in "iu":
        fix = f"; convert it (e.g. .astype(np.{signature.dtype})) as the model expects"
        raise InputError(
            f"{what}: array {name!r} has dtype {array.dtype}, the model input is {signature.dtype}"
            + (fix if want_kind == "f" else "")
        )
    if kind == "f" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputError(f"{what}: array {name!r} has {bad} NaN/Inf values")


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def take(arrays: Mapping[str, np.ndarray], index: np.ndarray, count: int) -> Arrays:
    """The samples at `index` of every array whose first axis has `count` samples."""
    return {k: v[index] if v.ndim and len(v) == count else v for k, v in arrays.items()}


def split(arrays: Arrays, count: int, eval_fraction: float, seed: int = 0) -> tuple[Arrays, Arrays]:
    """A seeded split of one file into calibration and held-out evaluation samples."""
    if count < 2:
        raise InputError("calibration data needs at least 2 samples to hold some out for evaluation")
    order = np.random.default_rng(seed).permutation(count)
    n_eval = min(count - 1, max(1, round(count * eval_fraction)))
    return take(arrays, np.sort(order[n_eval:]), count), take(arrays, np.sort(order[:n_eval]), count)


def fed_signatures(inputs: Sequence[InputSignature], roles: InputRoles) -> list[InputSignature]:
    """The arrays edgeq holds for each input (axis 0 = samples): the model's shape with its batch
    axis moved first (or a sample axis added), and for streams a frame axis after the stream axis."""
    signatures = []
    for signature in inputs:
        role = roles.inputs[signature.name]
        shape = list(signature.shape)
        if role.constant is None and role.batch_axis is not None:
            del shape[role.batch_axis]
        frames = [None] if roles.streaming and role.constant is None and not role.state_from else []
        signatures.append(InputSignature(signature.name, signature.dtype, (None, *frames, *shape)))
    return signatures


def arrange(
    arrays: Mapping[str, np.ndarray], inputs: Sequence[InputSignature], roles: InputRoles, what: str
) -> Arrays:
    """Arrays as the model takes them (batch on each input's declared axis, scalars for constants) as
    edgeq holds them (`fed_signatures`); constants and carried states are filled in by their roles.

    A stream input given with the model's own rank is one stream whose frames lie on its batch axis;
    one stream is cut in two halves, so a calibration file can hold some out for evaluation."""
    if roles.plain:
        return dict(arrays)
    fed = dict(arrays)
    fed_inputs = [
        s for s in inputs if roles.inputs[s.name].constant is None and not roles.inputs[s.name].state_from
    ]
    for signature in fed_inputs:
        if signature.name in arrays:
            fed[signature.name] = _samples_first(arrays[signature.name], signature, roles)
    present = [fed[s.name] for s in fed_inputs if s.name in fed and fed[s.name].ndim >= 2]
    if roles.streaming and present and len(present[0]) == 1 and present[0].shape[1] >= 2:
        half = present[0].shape[1] // 2
        for signature in fed_inputs:
            if signature.name in fed and fed[signature.name].ndim >= 2:
                stream = fed[signature.name][0, : 2 * half]
                fed[signature.name] = stream.reshape(2, half, *stream.shape[1:])
    count = len(fed[fed_inputs[0].name]) if fed_inputs and fed_inputs[0].name in fed else 1
    for signature in inputs:
        role = roles.inputs[signature.name]
        if role.constant is not None:
            fed[signature.name] = np.broadcast_to(role.constant, (count, *role.constant.shape))
        elif role.state_from:
            fed[signature.name] = _zero_state(signature, role, count, what)
    return fed


def _samples_first(array: np.ndarray, signature: InputSignature, roles: InputRoles) -> np.ndarray:
    """One input's array with its samples (streams) on axis 0: the batch axis moved there, or a
    sample (stream) axis added when the array has the rank of one call."""
    role, rank = roles.inputs[signature.name], len(signature.shape)
    if array.ndim != rank:
        return array  # already samples first (or a wrong rank, which `validate` names)
    if role.batch_axis is None:
        return array[None]
    moved = np.moveaxis(array, role.batch_axis, 0)
    return moved[None] if roles.streaming else moved


def _zero_state(signature: InputSignature, role, count: int, what: str) -> np.ndarray:
    """A carried state's start: zeros, one per stream."""
    dims = [d for axis, d in enumerate(signature.shape) if axis != role.batch_axis]
    if any(d is None for d in dims):
        raise InputError(
            f"{what}: state input {signature.name!r} has dynamic axes besides its batch axis "
            f"{_shape_text(signature.shape)}; edgeq starts a state at zeros and needs its size"
        )
    return np.zeros((count, *dims), dtype=signature.dtype)
