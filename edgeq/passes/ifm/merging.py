"""The numeric side of IFM: canonical scaling, pair distances and merging inside one group.

Two rules keep the paper's relative stopping rule from over-merging (measured on the reference
models, examples/ifm_results.md):

- Overcomplete groups (more channels than each channel reads inputs, e.g. a 1-channel 3×3 stem
  conv with 32 filters of 9 weights) merge identical channels only. Their filters are crowded into
  a tiny space, so min‖w_i−w_j‖² is small next to max‖w_k−w_l‖² although no filter is redundant.
- The distance weighs the incoming and the outgoing side equally: each side is divided by its mean
  squared channel norm. Canonical scaling gives incoming rows unit norm and moves all magnitude
  into the outgoing columns, so without this one side (whichever is larger) decides every merge.

Weights are held in a "feature form" while merging: a merged channel's incoming rows (and biases)
are the count-weighted mean of its members' rows, its outgoing columns their sum. For identical
members this is exact for any channel-wise activation. For positively homogeneous streams the
final write converts to the paper's form (incoming summed, outgoing averaged), which computes the
same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.passes.ifm.channel_groups import ChannelGroup

# Squared distances below this fraction of the largest squared feature norm count as identical.
EXACT_TOLERANCE = 1e-10
_TINY = 1e-30

Weights = dict[str, np.ndarray]


@dataclass
class GroupMerger:
    """Merge bookkeeping for one group; `weights` are float64 copies shared by all groups."""

    group: ChannelGroup
    exact_only_because: str | None
    limit: int
    counts: np.ndarray
    scales: np.ndarray | None = None  # summed canonical scales of each channel's members
    merged: int = 0

    @classmethod
    def start(
        cls, group: ChannelGroup, weights: Weights, *, max_ratio: float, approximate: bool
    ) -> GroupMerger:
        limit = min(int(np.floor(max_ratio * group.width)), group.width - 1)
        merger = cls(
            group,
            exact_only_because=exact_only_reason(group, weights, approximate),
            limit=limit,
            counts=np.ones(group.width, dtype=np.int64),
        )
        if group.homogeneous:
            merger.scales = canonicalise(group, weights)
        return merger

    @property
    def exact_only(self) -> bool:
        return self.exact_only_because is not None

    def try_merge(self, weights: Weights, threshold: float) -> bool:
        """Merge one pair if allowed: identical features first (lossless), then the paper's
        closest pair under min‖w_i−w_j‖² ≤ β·max‖w_k−w_l‖² unless only exact merges are allowed."""
        if self.merged >= self.limit or self.counts.size < 2:
            return False
        pair = self.identical_pair(weights)
        if pair is None and not self.exact_only:
            pair = self.close_pair(weights, threshold)
        if pair is None:
            return False
        self.merge_pair(weights, *pair)
        return True

    def identical_pair(self, weights: Weights) -> tuple[int, int] | None:
        """Two channels computing the same feature: equal incoming weights, biases included."""
        features = channel_features(self.group, weights, self.counts, ("incoming", "bias"))
        keep, drop, closest, _ = closest_pair(features)
        scale = max(np.square(features).sum(axis=1).max(), _TINY)
        return (keep, drop) if closest <= EXACT_TOLERANCE * scale else None

    def close_pair(self, weights: Weights, threshold: float) -> tuple[int, int] | None:
        """The paper's rule on incoming rows and outgoing columns (biases left out), each side
        weighted equally."""
        keep, drop, closest, farthest = closest_pair(balanced_features(self.group, weights, self.counts))
        return (keep, drop) if closest <= threshold * farthest else None

    def merge_pair(self, weights: Weights, keep: int, drop: int) -> None:
        """Fold channel `drop` into `keep` in every slot and forget it."""
        total = self.counts[keep] + self.counts[drop]
        for slot in self.group.slots:
            array = weights[slot.initializer]
            view = np.moveaxis(array, slot.axis, 0)
            if slot.role == "outgoing":
                view[keep] = view[keep] + view[drop]
            else:
                weighted = self.counts[keep] * view[keep] + self.counts[drop] * view[drop]
                view[keep] = weighted / total
            weights[slot.initializer] = np.delete(array, drop, axis=slot.axis)
        self.counts[keep] = total
        self.counts = np.delete(self.counts, drop)
        if self.scales is not None:
            self.scales[keep] += self.scales[drop]
            self.scales = np.delete(self.scales, drop)
        self.merged += 1

    def finish(self, weights: Weights) -> None:
        """Undo the canonical scaling: unmerged channels get their original weights back."""
        if self.scales is not None:
            scale_channels(self.group, weights, incoming=self.scales, outgoing=1.0 / self.scales)


def exact_only_reason(group: ChannelGroup, weights: Weights, approximate: bool) -> str | None:
    """Why only identical channels may merge in this group, or None when near-duplicates may."""
    if not (group.homogeneous or approximate):
        return "non-homogeneous stream: near-duplicates merge only with approximate=True"
    fan_in = incoming_fan_in(group, weights)
    if fan_in < group.width:
        return f"overcomplete: {group.width} channels read {fan_in} inputs each"
    return None


def incoming_fan_in(group: ChannelGroup, weights: Weights) -> int:
    """Length of a channel's incoming weights over all producers: the space its filter lives in."""
    return sum(
        weights[slot.initializer].size // weights[slot.initializer].shape[slot.axis]
        for slot in group.slots
        if slot.role == "incoming"
    )


def _channel_rows(array: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)


def scale_channels(
    group: ChannelGroup, weights: Weights, *, incoming: np.ndarray, outgoing: np.ndarray
) -> None:
    """Multiply each channel's incoming slots and outgoing slots by per-channel factors."""
    for slot in group.slots:
        factors = outgoing if slot.role == "outgoing" else incoming
        shape = [1] * weights[slot.initializer].ndim
        shape[slot.axis] = -1
        weights[slot.initializer] = weights[slot.initializer] * factors.reshape(shape)


def canonicalise(group: ChannelGroup, weights: Weights) -> np.ndarray:
    """Rescale every channel to a unit incoming norm (bias included) so that positively scaled
    duplicates become identical; valid only for homogeneous streams. Returns the scales."""
    squared = sum(
        np.square(_channel_rows(weights[s.initializer], s.axis)).sum(axis=1)
        for s in group.slots
        if s.role != "outgoing"
    )
    norms = np.sqrt(squared)
    scales = np.where(norms > _TINY, norms, 1.0)
    scale_channels(group, weights, incoming=1.0 / scales, outgoing=scales)
    return scales


def channel_features(
    group: ChannelGroup, weights: Weights, counts: np.ndarray, roles: tuple[str, ...]
) -> np.ndarray:
    """Per channel, the chosen slots side by side; outgoing columns averaged over members."""
    parts = []
    for slot in group.slots:
        if slot.role in roles:
            rows = _channel_rows(weights[slot.initializer], slot.axis)
            parts.append(rows / counts[:, None] if slot.role == "outgoing" else rows)
    return np.concatenate(parts, axis=1)


def balanced_features(group: ChannelGroup, weights: Weights, counts: np.ndarray) -> np.ndarray:
    """Incoming rows and outgoing columns side by side, each side divided by the root of its mean
    squared channel norm, so that neither side's overall scale decides the distance."""
    sides = []
    for role in ("incoming", "outgoing"):
        rows = channel_features(group, weights, counts, (role,))
        scale = np.sqrt(np.square(rows).sum(axis=1).mean())
        sides.append(rows / max(scale, _TINY))
    return np.concatenate(sides, axis=1)


def closest_pair(features: np.ndarray) -> tuple[int, int, float, float]:
    """Closest pair (lower index first), its squared distance and the largest one, via
    D_ij = A_ij + A_ji − A_ii − A_jj = −‖w_i − w_j‖² with A = F Fᵀ."""
    gram = features @ features.T
    norms = np.diag(gram).copy()
    closeness = gram + gram.T - norms[:, None] - norms[None, :]
    np.fill_diagonal(closeness, -np.inf)
    keep, drop = sorted(np.unravel_index(np.argmax(closeness), closeness.shape))
    closest = max(-float(closeness[keep, drop]), 0.0)
    np.fill_diagonal(closeness, np.inf)
    return int(keep), int(drop), closest, -float(closeness.min())
