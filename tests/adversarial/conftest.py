"""Hypothesis profiles: `ci` keeps the suite within its time budget; `fuzz` (fuzz.py) runs long."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("EDGEQ_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("EDGEQ_HYPOTHESIS_PROFILE", "ci"))
