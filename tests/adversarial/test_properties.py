"""Property-based: any recipe or target YAML and any .npz header is a typed value or one InputError.

The strategies build documents from the real keys (so deep fields are reached) with hostile values:
wrong types, NaN, huge and negative numbers, deep lists, aliases.
"""

from __future__ import annotations

import contextlib
import io
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edgeq.config import LIMITS
from edgeq.data import load_npz
from edgeq.errors import InputError
from edgeq.recipe import Recipe, load_recipe
from edgeq.targets import TargetSpec, load_target
from tests.bad_inputs import make

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["mse", "static", "ifm", "cpu-x86-avx2", "CPUExecutionProvider", "extended", "8", "4"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def documents(base: dict[str, Any]) -> st.SearchStrategy[dict]:
    """A real document with some of its keys (nested ones too) given arbitrary values."""
    keys = sorted(_key_paths(base))
    return st.dictionaries(st.sampled_from(keys), values, max_size=4).map(lambda edits: _apply(base, edits))


def _key_paths(value: Any, prefix: tuple = ()) -> set[tuple]:
    found = {prefix} if prefix else set()
    if isinstance(value, dict):
        for key, child in value.items():
            found |= _key_paths(child, (*prefix, key))
    return found


def _apply(base: dict, edits: dict[tuple, Any]) -> dict:
    document = yaml.safe_load(yaml.safe_dump(base))
    for path, value in edits.items():
        holder = document
        for key in path[:-1]:
            holder = holder.setdefault(key, {}) if isinstance(holder.get(key), dict) else {}
        holder[path[-1]] = value
    return document


RECIPE = Recipe().to_dict() | {
    "task": {"name": "binary-code", "options": {"k": 1}},
    "prune": {"method": "ifm", "threshold": 0.25},
}
TARGET = yaml.safe_load(make.FAST_TARGET)


@given(document=documents(RECIPE))
def test_any_recipe_reads_or_is_refused(document: dict, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        recipe, _ = load_recipe(path)
    except InputError as error:
        assert "\n" not in str(error)
        return
    assert isinstance(recipe, Recipe) and recipe.to_dict()
    assert all(math.isfinite(v) for v in vars(recipe.gates).values() if v is not None)


@given(document=documents(TARGET))
def test_any_target_reads_or_is_refused(document: dict, tmp_path: Path) -> None:
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        spec = load_target(path)
    except InputError:
        return
    assert isinstance(spec, TargetSpec)
    assert 0 <= spec.latency.threads <= LIMITS["EDGEQ_MAX_THREADS"]
    assert math.isfinite(spec.latency.seconds_per_round)


@given(text=st.text(max_size=200))
def test_any_text_as_a_recipe_reads_or_is_refused(text: str, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with contextlib.suppress(InputError):
        load_recipe(path)


headers = st.fixed_dictionaries(
    {
        "descr": st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|O", "<U5", "V8", "<c8", "bogus"]),
        "fortran_order": st.booleans(),
        "shape": st.lists(st.integers(min_value=-2, max_value=2**40), max_size=4).map(tuple),
    }
)


@given(header=headers, payload=st.binary(max_size=256), raw=st.booleans())
def test_any_npz_header_loads_or_is_refused(header: dict, payload: bytes, raw: bool, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buffer, header)
        member = buffer.getvalue()
    except (ValueError, TypeError):
        member = b"\x93NUMPY\x01\x00" + repr(header).encode()  # numpy refuses to write it: write it anyway
    path = tmp_path / "data.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED if raw else zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", member + payload)
    try:
        arrays = load_npz(path)
    except InputError as error:
        assert "\n" not in str(error)
        return
    assert all(
        isinstance(a, np.ndarray) and a.nbytes <= LIMITS["EDGEQ_MAX_DATA_BYTES"] for a in arrays.values()
    )
