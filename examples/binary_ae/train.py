"""Train the binary-latent digits autoencoder and export it.

Writes examples/binary_ae/model.pt, model.onnx (image -> bits, recon, logits) and encoder.onnx
(image -> bits) plus calib/binary_ae.npz (the held-out digits test split: `image`), then prints
bit count, PSNR and near-zero logits of the ONNX model.
Run from the repo root: python examples/binary_ae/train.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edgeq.measure.tasks.binary_code import evaluate_binary_code
from edgeq.runtime.session import OrtRunner
from edgeq.zoo import BinaryAE, BitEncoder, digits_split, export_onnx

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SEED = 0


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random one-pixel translation: more positions than 1.2k digits hold."""
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 8, dx : dx + 8]


def train(x: np.ndarray, epochs: int, batch: int) -> BinaryAE:
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = BinaryAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 2e-3, total_steps=epochs * ((len(x) + batch - 1) // batch)
    )
    images = torch.from_numpy(x)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), batch):
            target = augment(images[order[start : start + batch]], generator)
            _, recon, _ = model(target)
            loss = torch.nn.functional.mse_loss(recon, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(target)
        if epoch % 20 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:3d} mse {total / len(images):.5f}", flush=True)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    x_train, x_test, _, _ = digits_split()
    model = train(x_train, args.epochs, args.batch)
    torch.save(model.state_dict(), HERE / "model.pt")
    calib = {"image": x_test}
    np.savez_compressed(ROOT / "calib" / "binary_ae.npz", **calib)
    example = {"image": torch.from_numpy(x_test[:64])}
    errors = export_onnx(model, example, ["bits", "recon", "logits"], HERE / "model.onnx")
    errors |= export_onnx(BitEncoder(model), example, ["bits"], HERE / "encoder.onnx")
    runner = OrtRunner(HERE / "model.onnx", threads=1)
    result = evaluate_binary_code(runner, runner, calib)
    print(f"trained in {time.time() - started:.0f}s; onnx parity {errors}")
    print(json.dumps({m.name: round(m.fp32, 2) for m in result.metrics} | result.details))


if __name__ == "__main__":
    main()
