"""The report's account of how the model was fed: every input's role and what one timed call is."""

from __future__ import annotations

from edgeq.report.schema import Feeding, InputFeed
from edgeq.runtime.roles import InputRoles


def describe_feeding(roles: InputRoles) -> Feeding:
    """Each input's role in words, and the unit latency was measured in."""
    inputs = [InputFeed(name, role.describe(), role.how) for name, role in roles.inputs.items()]
    if roles.streaming:
        latency = "one call per frame; batch = streams run together along each input's batch axis"
    elif not roles.batched:
        latency = "one call per sample (an input has no batch axis)"
    else:
        latency = Feeding.latency
    return Feeding(inputs, roles.streaming, latency)
