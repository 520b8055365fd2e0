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

# Two channels are identical when their incoming weights (biases included, after canonical scaling
# on homogeneous streams) differ by at most this fraction of the larger one's norm: float32 rounding
# of an exact copy or a positive multiple is ~1e-7, while distinct trained filters differ by > 1e-3.
EXACT_TOLERANCE = 1e-6
_TINY = 1e-30

Weights = dict[str, np.ndarray]


@dataclass
class GroupMerger:
    """Merge bookkeeping for one group; `weights` are float64 copies shared by all groups.

    `limit` caps merges by similarity only: merging identical channels is lossless and never capped."""

    group: ChannelGroup
    exact_only_because: str | None
    limit: int
    counts: np.ndarray
    scales: np.ndarray | None = None  # summed canonical scales of each channel's members
    lossless: int = 0
    similar: int = 0

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

    @property
    def merged(self) -> int:
        return self.lossless + self.similar

    def merge_identical(self, weights: Weights) -> int:
        """Merge every set of channels computing the same feature into its first member (lossless);
        returns how many channels went. Drops run from the last index down, so none shifts a pair
        still to merge."""
        if self.counts.size < 2:
            return 0
        roots = identical_roots(channel_features(self.group, weights, self.counts, ("incoming", "bias")))
        drops = [int(drop) for drop in np.flatnonzero(roots != np.arange(roots.size))]
        for drop in reversed(drops):
            self.merge_pair(weights, int(roots[drop]), drop)
        self.lossless += len(drops)
        return len(drops)

    def try_similar(self, weights: Weights, threshold: float) -> bool:
        """Merge the paper's closest pair under min‖w_i−w_j‖² ≤ β·max‖w_k−w_l‖², within the cap and
        unless only exact merges are allowed."""
        if self.exact_only or self.similar >= self.limit or self.counts.size < 2:
            return False
        pair = self.close_pair(weights, threshold)
        if pair is None:
            return False
        self.merge_pair(weights, *pair)
        self.similar += 1
        return True

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


def pair_distances(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances between all channel pairs, ‖w_i − w_j‖² = A_ii + A_jj − A_ij − A_ji with
    A = F Fᵀ, and each channel's squared norm."""
    gram = features @ features.T
    norms = np.diag(gram).copy()
    return np.maximum(norms[:, None] + norms[None, :] - gram - gram.T, 0.0), norms


def identical_roots(features: np.ndarray) -> np.ndarray:
    """For each channel, the first channel identical to it (itself if none): distance at most
    EXACT_TOLERANCE of the larger norm."""
    distances, norms = pair_distances(features)
    scale = np.maximum(np.maximum(norms[:, None], norms[None, :]), _TINY)
    identical = distances <= EXACT_TOLERANCE**2 * scale
    roots = np.arange(len(features))
    for channel in range(1, len(features)):
        earlier = np.flatnonzero(identical[:channel, channel])
        if earlier.size:
            roots[channel] = roots[earlier[0]]
    return roots


def closest_pair(features: np.ndarray) -> tuple[int, int, float, float]:
    """Closest pair (lower index first), its squared distance and the largest one."""
    distances, _ = pair_distances(features)
    farthest = float(distances.max())
    np.fill_diagonal(distances, np.inf)
    keep, drop = sorted(np.unravel_index(np.argmin(distances), distances.shape))
    return int(keep), int(drop), float(distances[keep, drop]), farthest
