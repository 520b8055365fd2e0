"""Pointer network (Vinyals et al. 2015) with greedy decoding unrolled for a fixed point count n.

Unrolling lets one traced ONNX graph hold the whole decode (points -> tour), so the compiler
measures the artifact end to end. Visited points are masked with a large finite negative
(-inf turns into NaN under reduced precision).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

MASK_VALUE = -1.0e4
TASKS = ("tsp", "hull")


class PointerNet(nn.Module):
    """LSTM encoder, LSTMCell decoder, additive attention u_j = v^T tanh(W1 e_j + W2 d_i).

    task "tsp": n steps, each point once. task "hull": n + 1 steps; the first vertex stays
    selectable so the polygon closes by pointing back at it, after which it is repeated.
    """

    def __init__(self, n: int = 10, task: str = "tsp", hidden: int = 128) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.n, self.task = n, task
        self.steps = n if task == "tsp" else n + 1
        self.embed = nn.Linear(2, hidden)
        self.encoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.decoder = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.randn(hidden) * 0.1)
        self.w1 = nn.Linear(hidden, hidden, bias=False)
        self.w2 = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)

    def forward(
        self, points: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(tour [b, steps] int64, masked scores [b, steps, n]); `targets` teacher-force training.

        The scores are what each argmax saw, so their fidelity explains any changed pointer.
        """
        embedded = self.embed(points)
        encoded, (h, c) = self.encoder(embedded)
        h, c = h[0], c[0]
        keys = self.w1(encoded)
        x = self.start.expand_as(h)
        slots = torch.arange(self.n, device=points.device)
        visited = torch.zeros_like(points[..., 0], dtype=torch.bool)
        keep_open = torch.zeros_like(visited)
        done = torch.zeros_like(visited[:, 0])
        first = torch.zeros_like(visited[:, 0], dtype=torch.long)
        tour, scores_per_step = [], []
        for step in range(self.steps):
            h, c = self._decoder_step(x, h, c)
            scores = self.v(torch.tanh(keys + self.w2(h).unsqueeze(1))).squeeze(-1)
            scores = scores.masked_fill(visited & ~keep_open, MASK_VALUE)
            choice = scores.argmax(dim=-1)
            if self.task == "hull" and step > 0:
                choice = torch.where(done, first, choice)
            pointer = choice if targets is None else targets[:, step]
            chosen = slots == pointer.unsqueeze(1)
            visited = visited | chosen
            if self.task == "hull":
                if step == 0:
                    first, keep_open = pointer, chosen
                else:
                    done = done | (pointer == first)
            index = pointer.view(-1, 1, 1).expand(-1, 1, embedded.shape[-1])
            x = torch.gather(embedded, 1, index).squeeze(1)
            tour.append(choice)
            scores_per_step.append(scores)
        return torch.stack(tour, dim=1), torch.stack(scores_per_step, dim=1)

    def _decoder_step(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTMCell update written out: the ONNX exporter cannot chunk a traced LSTMCell."""
        cell, size = self.decoder, h.shape[-1]
        gates = nn.functional.linear(x, cell.weight_ih, cell.bias_ih) + nn.functional.linear(
            h, cell.weight_hh, cell.bias_hh
        )
        i, f, g, o = (gates[:, k * size : (k + 1) * size] for k in range(4))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def load_pointer_net(path: str | Path, task: str, n: int = 10) -> PointerNet:
    """The eval-mode pointer net for `task` from a state_dict checkpoint (weights_only=True)."""
    model = PointerNet(n=n, task=task)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()
