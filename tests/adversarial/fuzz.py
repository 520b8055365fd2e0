"""The adversarial properties run long: `python tests/adversarial/fuzz.py [--examples N] [pytest args]`.

CI runs them with a few hundred examples each (profile `ci`); this runs the `fuzz` profile (20,000
examples per property by default) over recipe and target YAML, any text and .npz headers, and prints
Hypothesis' statistics. A failure prints the smallest input that breaks edgeq.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PROPERTIES = [str(HERE / "test_properties.py")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, help="examples per property (default: the fuzz profile's)")
    known, rest = parser.parse_known_args(argv)
    os.environ["EDGEQ_HYPOTHESIS_PROFILE"] = "fuzz"
    sys.path.insert(0, str(HERE.parent.parent))
    extra = ["--hypothesis-show-statistics", "-q", "-x", "-p", "no:cacheprovider"]
    if known.examples:
        os.environ["EDGEQ_FUZZ_EXAMPLES"] = str(known.examples)
    return pytest.main([*PROPERTIES, *extra, *rest])


if __name__ == "__main__":
    sys.exit(main())
