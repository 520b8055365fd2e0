"""A session on a model whose inputs fix the batch runs every call at that batch, short batches padded."""

from __future__ import annotations

import numpy as np
import torch

from edgeq.runtime.session import OrtRunner
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
