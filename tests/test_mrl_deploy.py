"""Deploying a Matryoshka embedding at a fixed dimension: exact, smaller, judged at that dim."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import edgeq
from edgeq.errors import InputError
from edgeq.passes.mrl import deployed_task_options, slice_embedding
from edgeq.passes.prepare import prepare_model
from edgeq.runtime.session import OrtRunner
from tests.conftest import FAST_TARGET, REPO

MRL_MODEL = str(REPO / "examples/mrl_encoder/model.onnx")
MRL_DATA = str(REPO / "calib/mrl_digits.npz")


@pytest.mark.parametrize("dim", [8, 64, 128])
def test_sliced_projection_equals_truncated_embedding(dim):
    model = prepare_model(onnx.load(MRL_MODEL))
    sliced = slice_embedding(model, "embedding", dim)
    onnx.checker.check_model(sliced)
    data = dict(np.load(MRL_DATA))
    full = OrtRunner(model.SerializeToString()).predict(data)["embedding"]
    cut = OrtRunner(sliced.SerializeToString()).predict(data)["embedding"]
    assert cut.shape == (len(full), dim)
    np.testing.assert_allclose(cut, full[:, :dim], rtol=1e-5, atol=1e-5)
    assert sliced.ByteSize() < model.ByteSize() or dim == 128


def test_bad_dims_and_outputs_are_refused():
    model = prepare_model(onnx.load(MRL_MODEL))
    with pytest.raises(InputError, match="mrl.dim must be in 1..128"):
        slice_embedding(model, "embedding", 256)
    with pytest.raises(InputError, match="not a graph output"):
        slice_embedding(model, "logits", 8)


def test_task_dims_are_limited_to_the_deployed_one():
    assert deployed_task_options({"dims": [8, 16, 32, 64, 128], "k": 10}, 32) == {
        "dims": [8, 16, 32],
        "k": 10,
    }
    assert deployed_task_options({"dims": [8, 16]}, 24) == {"dims": [8, 16, 24]}


def test_compile_at_a_deployed_dim_reports_only_dims_up_to_it(tmp_path):
    result = edgeq.compile(
        MRL_MODEL,
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=MRL_DATA,
        mrl={"dim": 16},
        task={"name": "mrl-retrieval"},
    )
    names = {m.name for m in result.report.task.metrics}
    assert "1nn_acc@16" in names and not any(n.endswith("@32") for n in names)
    (output,) = onnx.load(result.artifact).graph.output
    assert output.type.tensor_type.shape.dim[-1].dim_value == 16
