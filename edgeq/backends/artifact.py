"""What a backend writes: the file a runtime loads and everything written beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeq.graph import model_bytes


@dataclass
class Artifact:
    """A compiled model on disk; `path` is what a runtime loads, `files` everything written."""

    path: Path
    format: str
    files: list[Path] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """What the runtime loads: the model file, its external data, an OpenVINO IR's weights."""
        weights = self.path.with_suffix(".bin")
        ir_weights = weights.stat().st_size if self.path.suffix == ".xml" and weights.exists() else 0
        return model_bytes(self.path) + ir_weights

    def to_dict(self, root: Path) -> dict:
        return {
            "path": self.path.name,
            "bytes": self.bytes,
            "format": self.format,
            "files": [str(f.relative_to(root)) for f in self.files],
        }
