"""Committed reference models: checkpoints load safely, ONNX matches torch, calib sets fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgeq.runtime.session import OrtRunner
from edgeq.zoo import (
    BitEncoder,
    PointerNet,
    digits_split,
    export_onnx,
    load_binary_ae,
    load_mrl_encoder,
    load_pointer_net,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# (onnx file, calib npz, {output: (dtype, shape after batch)}) for every exported model.
MODELS = {
    "mrl": ("mrl_encoder/model.onnx", "mrl_digits.npz", {"embedding": ("float32", (128,))}),
    "ae": (
        "binary_ae/model.onnx",
        "binary_ae.npz",
        {
            "bits": ("float32", (32, 2, 2)),
            "recon": ("float32", (1, 8, 8)),
            "logits": ("float32", (32, 2, 2)),
        },
    ),
    "ae-encoder": ("binary_ae/encoder.onnx", "binary_ae.npz", {"bits": ("float32", (32, 2, 2))}),
    "tsp": (
        "pointer_net/tsp.onnx",
        "pointer_tsp.npz",
        {"tour": ("int64", (10,)), "logits": ("float32", (10, 10))},
    ),
    "hull": (
        "pointer_net/hull.onnx",
        "pointer_hull.npz",
        {"tour": ("int64", (11,)), "logits": ("float32", (11, 10))},
    ),
}


def torch_model(key: str) -> torch.nn.Module:
    if key == "mrl":
        return load_mrl_encoder(EXAMPLES / "mrl_encoder" / "model.pt")
    if key in ("ae", "ae-encoder"):
        model = load_binary_ae(EXAMPLES / "binary_ae" / "model.pt")
        return model if key == "ae" else BitEncoder(model).eval()
    return load_pointer_net(EXAMPLES / "pointer_net" / f"{key}.pt", task=key)


def calib(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(ROOT / "calib" / name))


@pytest.mark.parametrize("key", MODELS)
def test_onnx_matches_torch_checkpoint_at_any_batch_size(key):
    onnx_file, calib_file, outputs = MODELS[key]
    runner = OrtRunner(EXAMPLES / onnx_file, threads=1, batch_size=37)
    data = {name: array[:100] for name, array in calib(calib_file).items()}
    assert runner.output_names == list(outputs)
    got = runner.predict(data)
    (input_name,) = runner.input_names
    with torch.no_grad():
        expected = torch_model(key)(torch.from_numpy(data[input_name]))
    expected = expected if isinstance(expected, tuple) else (expected,)
    for (name, (dtype, shape)), want in zip(outputs.items(), expected, strict=True):
        assert got[name].dtype == np.dtype(dtype)
        assert got[name].shape == (100, *shape)
        if dtype == "int64":
            np.testing.assert_array_equal(got[name], want.numpy())
        else:
            np.testing.assert_allclose(got[name], want.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("key", MODELS)
def test_calib_sets_hold_every_model_input_and_enough_samples(key):
    onnx_file, calib_file, _ = MODELS[key]
    runner = OrtRunner(EXAMPLES / onnx_file)
    data = calib(calib_file)
    for name, info in runner.inputs.items():
        assert data[name].dtype == np.float32
        assert len(data[name]) >= 512
        assert data[name].shape[1:] == tuple(info.shape[1:])
        assert info.shape[0] == "batch"


def test_digits_calib_is_the_held_out_split():
    _, x_test, _, y_test = digits_split()
    mrl = calib("mrl_digits.npz")
    np.testing.assert_array_equal(mrl["image"], x_test)
    np.testing.assert_array_equal(mrl["labels"], y_test)
    np.testing.assert_array_equal(calib("binary_ae.npz")["image"], x_test)


def test_exported_bits_are_hard_zeros_and_ones():
    runner = OrtRunner(EXAMPLES / "binary_ae" / "model.onnx")
    out = runner.predict(calib("binary_ae.npz"))
    assert set(np.unique(out["bits"]).tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(out["bits"], (out["logits"] > 0).astype(np.float32))


def test_greedy_decoding_never_revisits_a_point():
    data = calib("pointer_tsp.npz")
    tours = OrtRunner(EXAMPLES / "pointer_net" / "tsp.onnx").predict(data)["tour"]
    assert (np.sort(tours, axis=1) == np.arange(10)).all()
    hulls = OrtRunner(EXAMPLES / "pointer_net" / "hull.onnx").predict(calib("pointer_hull.npz"))
    for seq in hulls["tour"]:
        closing = int(np.flatnonzero(seq[1:] == seq[0])[0]) + 1
        assert len(set(seq[:closing].tolist())) == closing
        assert (seq[closing:] == seq[0]).all()


def test_checkpoints_are_small_plain_state_dicts():
    for name in [
        "mrl_encoder/model.pt",
        "binary_ae/model.pt",
        "pointer_net/tsp.pt",
        "pointer_net/hull.pt",
    ]:
        path = EXAMPLES / name
        assert path.stat().st_size <= 5 * 2**20
        state = torch.load(path, weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_export_onnx_rejects_a_graph_that_drifts_from_torch(tmp_path):
    class Drifting(PointerNet):
        """Adds noise only in eager mode, so the traced graph cannot reproduce torch."""

        def forward(self, points):
            tour, logits = super().forward(points)
            return tour, logits + float(torch.rand(()))

    from edgeq.errors import ParityError

    torch.manual_seed(0)
    model = Drifting(n=4, task="tsp", hidden=8)
    with pytest.raises(ParityError, match="logits"):
        export_onnx(model, {"points": torch.rand(2, 4, 2)}, ["tour", "logits"], tmp_path / "drift.onnx")
