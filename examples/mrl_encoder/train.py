"""Train the Matryoshka digits encoder and export it.

Writes examples/mrl_encoder/model.pt and model.onnx plus calib/mrl_digits.npz (the held-out test
split: `image`, `labels`), then prints retrieval metrics of the ONNX model at every nested dim.
Run from the repo root: python examples/mrl_encoder/train.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edgeq.measure.tasks.retrieval import evaluate_mrl_retrieval
from edgeq.runtime.session import OrtRunner
from edgeq.zoo import MRLEncoder, digits_split, export_onnx

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SEED = 0


def shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to one pixel (zero fill): cheap augmentation for 1.2k images."""
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    dy, dx = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 8, dx : dx + 8]


def train(x: np.ndarray, y: np.ndarray, epochs: int, batch: int) -> MRLEncoder:
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = MRLEncoder()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 2e-3, total_steps=epochs * ((len(x) + batch - 1) // batch)
    )
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), batch):
            pick = order[start : start + batch]
            loss = model.matryoshka_loss(model(shift(images[pick], generator)), labels[pick])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(pick)
        if epoch % 10 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:3d} loss {total / len(images):.4f}", flush=True)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    x_train, x_test, y_train, y_test = digits_split()
    model = train(x_train, y_train, args.epochs, args.batch)
    torch.save(model.state_dict(), HERE / "model.pt")
    calib = {"image": x_test, "labels": y_test}
    np.savez_compressed(ROOT / "calib" / "mrl_digits.npz", **calib)
    example = {"image": torch.from_numpy(x_test[:64])}
    errors = export_onnx(model, example, ["embedding"], HERE / "model.onnx")
    runner = OrtRunner(HERE / "model.onnx", threads=1)
    result = evaluate_mrl_retrieval(runner, runner, calib)
    print(f"trained in {time.time() - started:.0f}s; onnx parity {errors}")
    print(json.dumps({m.name: round(m.fp32, 2) for m in result.metrics}))
    with torch.no_grad():
        heads = model.heads
        embedding = model(torch.from_numpy(x_test))
        accuracy = {
            m: round(100.0 * float((h(embedding[:, :m]).argmax(1).numpy() == y_test).mean()), 2)
            for m, h in zip(model.dims, heads, strict=True)
        }
    print(json.dumps({"head_top1@m": accuracy, "test_samples": len(y_test)}))


if __name__ == "__main__":
    main()
