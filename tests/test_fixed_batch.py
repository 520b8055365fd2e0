"""A session on a model whose inputs fix the batch runs every call at that batch, short batches padded."""

from __future__ import annotations

import numpy as np
import onnx
import torch

from edgeq.frontend.input_roles import resolve_roles, with_roles
from edgeq.runtime.session import OrtRunner
from tests.stream_models import HIDDEN, activity_streams, export_detector
from tests.wild import models


def test_fixed_batch_of_four_predicts_any_sample_count_like_the_dynamic_export(tmp_path):
    torch.manual_seed(0)
    module = models.ResidualMlp()
    fixed = models.export(module, (torch.randn(4, 64),), tmp_path / "b4.onnx", ["x"], dynamic_batch=False)
    free = models.export(module, (torch.randn(2, 64),), tmp_path / "free.onnx", ["x"])
    runner = OrtRunner(fixed, batch_size=64)
    assert (runner.fixed_batch, runner.batch_size) == (4, 4)
    assert OrtRunner(free).fixed_batch is None
    x = {"x": np.random.default_rng(0).standard_normal((10, 64)).astype(np.float32)}
    got, want = runner.predict(x), OrtRunner(free).predict(x)
    assert got["y"].shape == (10, 16)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)


def test_a_batch_fixed_on_axis_1_of_a_carried_state_is_padded_along_that_axis(tmp_path):
    """The GRU detector exported at batch 3 (x [3, 16], h [1, 3, 32]): 5 streams run as 3 + 2, the
    short call padded on x's axis 0 and h's axis 1, frame by frame, like the dynamic export."""
    fixed = onnx.load(str(export_detector(tmp_path / "b3.onnx", fixed_batch=3)))
    free = export_detector(tmp_path / "free.onnx")
    runner = OrtRunner(with_roles(fixed, resolve_roles(fixed, {})).SerializeToString())
    assert (runner.fixed_batch, runner.batch_size) == (3, 3)
    x, _ = activity_streams(5, 6, seed=2)
    streams = {"x": x, "h": np.zeros((5, 1, HIDDEN), np.float32)}
    want = OrtRunner(with_roles(onnx.load(str(free)), runner.roles).SerializeToString()).predict(streams)
    got = runner.predict(streams)
    assert got["y"].shape == (5, 6, 1)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)
